//! Reads of `messages`, and the shapes of the two answer writes (see `session_writes`).

use omnichat_entity::{messages, sessions};
use sea_orm::{
    sea_query::Condition, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
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

/// A session as a SessionActor loads it once: the row, the newest current messages (oldest
/// first; no earlier versions a regenerate or an edit replaced) and how many messages it holds
/// in all, earlier versions included (the session's size limit counts them).
#[derive(Debug)]
pub struct LoadedSession {
    pub session: sessions::Model,
    pub recent: Vec<messages::Model>,
    pub message_count: u64,
    /// How many of those messages are earlier versions.
    pub superseded_count: u64,
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
        let (session, recent, count, superseded) = tokio::join!(
            self.owned_session(user_id, session_id),
            self.list_messages(session_id, window),
            self.count_messages(session_id),
            self.count_superseded(session_id),
        );
        let Some(session) = session? else {
            return Ok(None);
        };
        Ok(Some(LoadedSession {
            session,
            recent: recent?,
            message_count: count?,
            superseded_count: superseded?,
        }))
    }

    /// How many earlier versions (replaced by a regenerate or an edit) a session holds.
    pub async fn count_superseded(&self, session_id: Uuid) -> Result<u64, DbErr> {
        messages::Entity::find()
            .filter(messages::Column::SessionId.eq(session_id))
            .filter(messages::Column::SupersededAt.is_not_null())
            .count(self.conn())
            .await
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

    /// A session's token totals over all its answers, summed by the database (the usage a page
    /// of messages reports is the whole session's).
    pub async fn session_token_totals(
        &self,
        session_id: Uuid,
    ) -> Result<crate::session::SessionUsage, DbErr> {
        let backend = self.conn().get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => {
                "SELECT CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS p, \
                 CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS c \
                 FROM messages WHERE session_id = $1"
            }
            _ => {
                "SELECT COALESCE(SUM(prompt_tokens), 0) AS p, COALESCE(SUM(completion_tokens), 0) \
                 AS c FROM messages WHERE session_id = ?"
            }
        };
        let row = self
            .conn()
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [session_id.into()],
            ))
            .await?;
        let (p, c): (i64, i64) = match row {
            Some(row) => (row.try_get("", "p")?, row.try_get("", "c")?),
            None => (0, 0),
        };
        Ok(crate::session::SessionUsage {
            prompt_tokens: p,
            completion_tokens: c,
            total_tokens: p + c,
        })
    }

    /// A page of a session's messages: the `limit` newest of those older than message `before`
    /// (all when `None`), oldest first. `None` when `before` is no message of this session.
    pub async fn message_page(
        &self,
        session_id: Uuid,
        before: Option<Uuid>,
        limit: u64,
    ) -> Result<Option<Vec<messages::Model>>, DbErr> {
        let mut find = messages::Entity::find().filter(messages::Column::SessionId.eq(session_id));
        if let Some(before) = before {
            let Some(anchor) = messages::Entity::find_by_id(before)
                .filter(messages::Column::SessionId.eq(session_id))
                .one(self.conn())
                .await?
            else {
                return Ok(None);
            };
            find = find.filter(
                Condition::any()
                    .add(messages::Column::CreatedAt.lt(anchor.created_at))
                    .add(
                        Condition::all()
                            .add(messages::Column::CreatedAt.eq(anchor.created_at))
                            .add(messages::Column::Id.lt(anchor.id)),
                    ),
            );
        }
        let mut newest_first = find
            .order_by_desc(messages::Column::CreatedAt)
            .order_by_desc(messages::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?;
        newest_first.reverse();
        Ok(Some(newest_first))
    }

    /// A session's current messages (the line that goes upstream, without earlier versions),
    /// oldest first, at most `limit` (the most recent ones).
    pub async fn list_messages(
        &self,
        session_id: Uuid,
        limit: u64,
    ) -> Result<Vec<messages::Model>, DbErr> {
        let mut newest_first = messages::Entity::find()
            .filter(messages::Column::SessionId.eq(session_id))
            .filter(messages::Column::SupersededAt.is_null())
            .order_by_desc(messages::Column::CreatedAt)
            .order_by_desc(messages::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?;
        newest_first.reverse();
        Ok(newest_first)
    }
}
