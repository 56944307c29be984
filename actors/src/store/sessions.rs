//! Queries on `sessions`. Every read and write is scoped by owner, so a session of another
//! user looks exactly like a missing one.

use chrono::{DateTime, Utc};
use omnichat_entity::sessions;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::Store;

impl Store {
    pub async fn insert_session(
        &self,
        user_id: Uuid,
        title: &str,
    ) -> Result<sessions::Model, DbErr> {
        let now = Utc::now();
        let id = Uuid::now_v7();
        let row = sessions::ActiveModel {
            id: Set(id),
            user_id: Set(user_id),
            title: Set(title.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        sessions::Entity::insert(row)
            .exec_without_returning(self.writer())
            .await?;
        Ok(sessions::Model {
            id,
            user_id,
            title: title.to_owned(),
            created_at: now,
            updated_at: now,
        })
    }

    /// The user's sessions, newest activity first, at most `limit`.
    pub async fn list_sessions(
        &self,
        user_id: Uuid,
        limit: u64,
    ) -> Result<Vec<sessions::Model>, DbErr> {
        sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user_id))
            .order_by_desc(sessions::Column::UpdatedAt)
            .order_by_desc(sessions::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await
    }

    pub async fn count_sessions(&self, user_id: Uuid) -> Result<u64, DbErr> {
        sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user_id))
            .count(self.conn())
            .await
    }

    /// The session if it exists and belongs to `user_id`.
    pub async fn owned_session(
        &self,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<Option<sessions::Model>, DbErr> {
        sessions::Entity::find_by_id(id)
            .filter(sessions::Column::UserId.eq(user_id))
            .one(self.conn())
            .await
    }

    /// Renames an owned session; `None` when there is no such session of this user.
    pub async fn rename_session(
        &self,
        user_id: Uuid,
        id: Uuid,
        title: &str,
    ) -> Result<Option<sessions::Model>, DbErr> {
        let result = sessions::Entity::update_many()
            .col_expr(sessions::Column::Title, title.into())
            .col_expr(sessions::Column::UpdatedAt, Utc::now().into())
            .filter(sessions::Column::Id.eq(id))
            .filter(sessions::Column::UserId.eq(user_id))
            .exec(self.writer())
            .await?;
        if result.rows_affected == 0 {
            return Ok(None);
        }
        self.owned_session(user_id, id).await
    }

    /// Marks activity on a session now, so it rises to the top of the list.
    pub async fn touch_session(&self, id: Uuid) -> Result<(), DbErr> {
        touch_session(self.writer(), id, Utc::now()).await
    }

    /// Deletes an owned session and (by cascade) its messages; false when there was none.
    pub async fn delete_session(&self, user_id: Uuid, id: Uuid) -> Result<bool, DbErr> {
        let result = sessions::Entity::delete_many()
            .filter(sessions::Column::Id.eq(id))
            .filter(sessions::Column::UserId.eq(user_id))
            .exec(self.writer())
            .await?;
        Ok(result.rows_affected > 0)
    }
}

/// Marks activity on a session so it rises to the top of the list; `db` may be a transaction,
/// so the activity and the write that caused it commit together.
pub(super) async fn touch_session<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    sessions::Entity::update_many()
        .col_expr(sessions::Column::UpdatedAt, at.into())
        .filter(sessions::Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}
