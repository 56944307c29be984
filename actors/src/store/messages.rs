//! Reads of `messages`, and the shapes of the two answer writes (see `session_writes`).

use omnichat_entity::{messages, sessions};
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{usage::UsageRecord, Store};
use crate::providers::TokenUsage;

/// The `streaming` row written when a generation starts, before its first token is sent.
#[derive(Clone, Debug)]
pub struct NewAssistantMessage {
    pub id: Uuid,
    pub session_id: Uuid,
    pub provider: String,
    pub model: String,
    pub generation_id: Uuid,
}

/// How a generation ended: written once, at the end, never per token.
#[derive(Clone, Debug)]
pub struct AssistantOutcome {
    pub content: String,
    /// `complete`, `stopped` or `error`.
    pub status: &'static str,
    pub finish_reason: Option<String>,
    /// As the provider reported it, or estimated (then `usage_estimated`).
    pub usage: TokenUsage,
    pub usage_estimated: bool,
    /// Earlier messages of the session that did not go upstream with the prompt.
    pub context_omitted: u32,
    /// What the user is charged in `usage_daily`; `None` when nothing was spent.
    pub charge: Option<UsageRecord>,
}

/// A session as a SessionActor loads it once: the row, the newest messages (oldest first) and
/// how many messages it holds in all.
#[derive(Debug)]
pub struct LoadedSession {
    pub session: sessions::Model,
    pub recent: Vec<messages::Model>,
    pub message_count: u64,
}

impl Store {
    /// Loads an owned session with its `window` newest messages; `None` when there is no such
    /// session of this user. Three reads, side by side: one round trip of latency.
    pub async fn load_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        window: u64,
    ) -> Result<Option<LoadedSession>, DbErr> {
        let (session, recent, count) = tokio::join!(
            self.owned_session(user_id, session_id),
            self.list_messages(session_id, window),
            self.count_messages(session_id),
        );
        let Some(session) = session? else {
            return Ok(None);
        };
        Ok(Some(LoadedSession {
            session,
            recent: recent?,
            message_count: count?,
        }))
    }

    /// How many messages a session holds.
    pub async fn count_messages(&self, session_id: Uuid) -> Result<u64, DbErr> {
        messages::Entity::find()
            .filter(messages::Column::SessionId.eq(session_id))
            .count(self.conn())
            .await
    }

    /// The assistant message a generation wrote, if its session belongs to `user_id`.
    pub async fn owned_generation(
        &self,
        user_id: Uuid,
        generation_id: Uuid,
    ) -> Result<Option<messages::Model>, DbErr> {
        messages::Entity::find()
            .inner_join(sessions::Entity)
            .filter(messages::Column::GenerationId.eq(generation_id))
            .filter(sessions::Column::UserId.eq(user_id))
            .one(self.conn())
            .await
    }

    /// A session's messages, oldest first, at most `limit` (the most recent ones).
    pub async fn list_messages(
        &self,
        session_id: Uuid,
        limit: u64,
    ) -> Result<Vec<messages::Model>, DbErr> {
        let mut newest_first = messages::Entity::find()
            .filter(messages::Column::SessionId.eq(session_id))
            .order_by_desc(messages::Column::CreatedAt)
            .order_by_desc(messages::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?;
        newest_first.reverse();
        Ok(newest_first)
    }
}
