//! Queries on `users`.

use chrono::Utc;
use omnichat_entity::users;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, Set};
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
}
