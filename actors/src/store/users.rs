//! Queries on `users`.

use chrono::Utc;
use omnichat_entity::users;
use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ColumnTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, Set,
};
use uuid::Uuid;

use super::{is_unique_violation, Store};
use crate::error::CoreError;

impl Store {
    /// Inserts a user; a taken email or username is a `Conflict`.
    pub async fn insert_user(
        &self,
        username: &str,
        email: &str,
        password_hash: String,
    ) -> Result<users::Model, CoreError> {
        let id = Uuid::now_v7();
        let row = users::ActiveModel {
            id: Set(id),
            username: Set(username.to_owned()),
            email: Set(email.to_owned()),
            password_hash: Set(password_hash),
            created_at: Set(Utc::now()),
            token_generation: Set(0),
        };
        match users::Entity::insert(row)
            .exec_without_returning(self.writer())
            .await
        {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => {
                return Err(self.which_taken(email).await);
            }
            Err(err) => return Err(err.into()),
        }
        self.user_by_id(id)
            .await?
            .ok_or_else(|| CoreError::Internal("user vanished after insert".into()))
    }

    /// Names the field that clashed, so the client can fix the right one.
    async fn which_taken(&self, email: &str) -> CoreError {
        match self.user_by_email(email).await {
            Ok(Some(_)) => CoreError::Conflict("A user with this email already exists".into()),
            Ok(None) => CoreError::Conflict("A user with this username already exists".into()),
            Err(err) => err.into(),
        }
    }

    pub async fn user_by_id(&self, id: Uuid) -> Result<Option<users::Model>, DbErr> {
        users::Entity::find_by_id(id).one(self.conn()).await
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<users::Model>, DbErr> {
        users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .one(self.conn())
            .await
    }

    /// Renames a user; a taken username is a `Conflict`, a vanished user `NotFound`.
    pub async fn rename_user(&self, id: Uuid, username: &str) -> Result<users::Model, CoreError> {
        let row = users::ActiveModel {
            id: Set(id),
            username: Set(username.to_owned()),
            ..Default::default()
        };
        match users::Entity::update(row).exec(self.writer()).await {
            Ok(model) => Ok(model),
            Err(DbErr::RecordNotUpdated) => Err(CoreError::NotFound("User")),
            Err(err) if is_unique_violation(&err) => Err(CoreError::Conflict(
                "A user with this username already exists".into(),
            )),
            Err(err) => Err(err.into()),
        }
    }

    /// Replaces a user's password hash (a rehash with stronger parameters).
    pub async fn set_password_hash(
        &self,
        id: Uuid,
        password_hash: String,
    ) -> Result<(), CoreError> {
        let row = users::ActiveModel {
            id: Set(id),
            password_hash: Set(password_hash),
            ..Default::default()
        };
        match users::Entity::update(row).exec(self.writer()).await {
            Ok(_) => Ok(()),
            Err(DbErr::RecordNotUpdated) => Err(CoreError::NotFound("User")),
            Err(err) => Err(err.into()),
        }
    }

    /// The user's current token generation; `None` when the user does not exist.
    pub async fn token_generation(&self, id: Uuid) -> Result<Option<i64>, DbErr> {
        users::Entity::find_by_id(id)
            .select_only()
            .column(users::Column::TokenGeneration)
            .into_tuple::<i64>()
            .one(self.conn())
            .await
    }

    /// Adds one to the user's token generation and answers the new value, read from the
    /// writer so it sees its own write; `NotFound` for a vanished user.
    pub async fn bump_token_generation(&self, id: Uuid) -> Result<i64, CoreError> {
        let updated = users::Entity::update_many()
            .col_expr(
                users::Column::TokenGeneration,
                Expr::col(users::Column::TokenGeneration).add(1),
            )
            .filter(users::Column::Id.eq(id))
            .exec(self.writer())
            .await?;
        if updated.rows_affected == 0 {
            return Err(CoreError::NotFound("User"));
        }
        users::Entity::find_by_id(id)
            .select_only()
            .column(users::Column::TokenGeneration)
            .into_tuple::<i64>()
            .one(self.writer())
            .await?
            .ok_or(CoreError::NotFound("User"))
    }

    /// Deletes a user; the schema cascades to their sessions and messages.
    pub async fn delete_user(&self, id: Uuid) -> Result<(), CoreError> {
        let deleted = users::Entity::delete_by_id(id).exec(self.writer()).await?;
        if deleted.rows_affected == 0 {
            return Err(CoreError::NotFound("User"));
        }
        Ok(())
    }
}
