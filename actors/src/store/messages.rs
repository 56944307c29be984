//! Queries on `messages`: prompts, assistant answers and their final outcome.

use chrono::Utc;
use omnichat_entity::{messages, sessions};
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use uuid::Uuid;

use super::{sessions::touch_session, Store};
use crate::providers::TokenUsage;

/// The `streaming` row written when a generation starts, before its first token.
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
    pub usage: TokenUsage,
}

impl Store {
    /// Stores a prompt and the `streaming` row of its answer: the only write before the first
    /// token, and a single statement, since a burst of prompts queues on the database's writes.
    /// `prompt_id` must be older than the answer's id: ids break the tie of equal timestamps.
    pub async fn begin_answer(
        &self,
        prompt_id: Uuid,
        prompt: &str,
        answer: NewAssistantMessage,
    ) -> Result<(), DbErr> {
        let now = Utc::now();
        let user = messages::ActiveModel {
            id: Set(prompt_id),
            session_id: Set(answer.session_id),
            role: Set("user".into()),
            content: Set(prompt.to_owned()),
            status: Set(None),
            provider: Set(None),
            model: Set(None),
            generation_id: Set(None),
            finish_reason: Set(None),
            prompt_tokens: Set(None),
            completion_tokens: Set(None),
            created_at: Set(now),
            node: Set(None),
        };
        let assistant = messages::ActiveModel {
            id: Set(answer.id),
            session_id: Set(answer.session_id),
            role: Set("assistant".into()),
            content: Set(String::new()),
            status: Set(Some("streaming".into())),
            provider: Set(Some(answer.provider)),
            model: Set(Some(answer.model)),
            generation_id: Set(Some(answer.generation_id)),
            finish_reason: Set(None),
            prompt_tokens: Set(None),
            completion_tokens: Set(None),
            created_at: Set(now),
            node: Set(Some(self.node().to_owned())),
        };
        // One statement, so atomic without a transaction: one round trip on the first-token path.
        messages::Entity::insert_many([user, assistant])
            .exec_without_returning(self.writer())
            .await
            .map(|_| ())
    }

    /// How many messages a session holds.
    pub async fn count_messages(&self, session_id: Uuid) -> Result<u64, DbErr> {
        messages::Entity::find()
            .filter(messages::Column::SessionId.eq(session_id))
            .count(self.conn())
            .await
    }

    /// Writes an answer's final text, status and usage. A session deleted meanwhile is no error.
    pub async fn finish_assistant_message(
        &self,
        id: Uuid,
        session_id: Uuid,
        outcome: AssistantOutcome,
    ) -> Result<(), DbErr> {
        let to_i32 = |n: Option<u32>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        let now = Utc::now();
        let txn = self.writer().begin().await?;
        messages::Entity::update_many()
            .col_expr(messages::Column::Content, outcome.content.into())
            .col_expr(
                messages::Column::Status,
                Some(outcome.status.to_owned()).into(),
            )
            .col_expr(messages::Column::FinishReason, outcome.finish_reason.into())
            .col_expr(
                messages::Column::PromptTokens,
                to_i32(outcome.usage.prompt_tokens).into(),
            )
            .col_expr(
                messages::Column::CompletionTokens,
                to_i32(outcome.usage.completion_tokens).into(),
            )
            .filter(messages::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        touch_session(&txn, session_id, now).await?;
        txn.commit().await
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
