//! Sessions: reads scoped by owner (a session of another user looks exactly like a missing one),
//! and the session writes, which go through the group-commit writer in order.

use chrono::{DateTime, Utc};
use omnichat_entity::sessions;
use sea_orm::{
    sea_query::Condition, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::{
    session_writes::{Write, Written},
    writer::WriteError,
    Store,
};

impl Store {
    /// Creates a session for `user_id`; returns it as stored. `title_is_default`: the title is
    /// a stand-in that an automatic title may replace.
    pub async fn insert_session(
        &self,
        user_id: Uuid,
        title: &str,
        title_is_default: bool,
        system_prompt: Option<String>,
    ) -> Result<sessions::Model, WriteError> {
        let now = Utc::now();
        let row = sessions::Model {
            id: Uuid::now_v7(),
            user_id,
            title: title.to_owned(),
            created_at: now,
            updated_at: now,
            version: 0,
            system_prompt,
            title_is_default,
        };
        self.writes()
            .write(row.id, Write::CreateSession(row.clone()))
            .await?;
        Ok(row)
    }

    /// A page of the user's sessions, newest activity first: at most `limit` of those after
    /// `after` (the `(updated_at, id)` of the last session of the previous page).
    pub async fn session_page(
        &self,
        user_id: Uuid,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: u64,
    ) -> Result<Vec<sessions::Model>, DbErr> {
        let mut find = sessions::Entity::find().filter(sessions::Column::UserId.eq(user_id));
        if let Some((updated_at, id)) = after {
            find = find.filter(
                Condition::any()
                    .add(sessions::Column::UpdatedAt.lt(updated_at))
                    .add(
                        Condition::all()
                            .add(sessions::Column::UpdatedAt.eq(updated_at))
                            .add(sessions::Column::Id.lt(id)),
                    ),
            );
        }
        find.order_by_desc(sessions::Column::UpdatedAt)
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

    /// Changes an owned session's title and/or system prompt (`Some(None)` removes it);
    /// `false` when there is no such session of this user.
    pub async fn update_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        title: Option<String>,
        system_prompt: Option<Option<String>>,
    ) -> Result<bool, WriteError> {
        let write = Write::Update {
            user_id,
            session_id,
            title,
            system_prompt,
            at: Utc::now(),
        };
        Ok(self.writes().write(session_id, write).await? == Written::Done)
    }

    /// Gives a session an automatic title if its title is still the default; `false` when it
    /// is not (a client named it meanwhile) or the session is gone.
    pub async fn auto_title_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        title: String,
    ) -> Result<bool, WriteError> {
        let write = Write::AutoTitle {
            user_id,
            session_id,
            title,
        };
        Ok(self.writes().write(session_id, write).await? == Written::Done)
    }

    /// Deletes an owned session and (by cascade) its messages; `false` when there was none.
    pub async fn delete_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> Result<bool, WriteError> {
        let write = Write::Delete {
            user_id,
            session_id,
        };
        Ok(self.writes().write(session_id, write).await? == Written::Done)
    }
}
