//! The shapes sessions and messages take in API answers.

use chrono::{DateTime, SecondsFormat, Utc};
use omnichat_entity::{messages, sessions};
use serde::{Serialize, Serializer};
use uuid::Uuid;

fn rfc3339<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// A session as listed.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    #[schema(example = "My First Chat")]
    pub title: String,
    pub user_id: Uuid,
    /// RFC 3339, UTC.
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// RFC 3339, UTC: the last rename or chat turn. Lists are ordered by it, newest first.
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Shown only when the session has one, so a session without keeps the spec's shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
}

impl From<sessions::Model> for SessionView {
    fn from(s: sessions::Model) -> Self {
        SessionView {
            id: s.id,
            title: s.title,
            user_id: s.user_id,
            created_at: s.created_at,
            updated_at: s.updated_at,
            system_prompt: s.system_prompt,
        }
    }
}

/// A session with its history, oldest message first.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: SessionView,
    pub messages: Vec<MessageView>,
    /// The tokens every answer of the session cost.
    pub usage: SessionUsage,
    /// When only a page of messages was asked for and older ones exist: the id to ask
    /// `before` for them (the front end turns it into a `Link` header, not a field).
    #[serde(skip)]
    pub older: Option<Uuid>,
}

/// Token counts an assistant message cost: as the provider reported them, or OmniChat's
/// estimate (`estimated: true`) when it reported none.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UsageView {
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub estimated: bool,
}

/// A session's totals over its answers.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct SessionUsage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
}

impl SessionUsage {
    /// The totals of `messages`.
    pub fn of(messages: &[MessageView]) -> Self {
        let mut total = SessionUsage::default();
        for usage in messages.iter().filter_map(|m| m.usage.as_ref()) {
            total.prompt_tokens += i64::from(usage.prompt_tokens.unwrap_or(0));
            total.completion_tokens += i64::from(usage.completion_tokens.unwrap_or(0));
        }
        total.total_tokens = total.prompt_tokens + total.completion_tokens;
        total
    }
}

/// One message. The assistant-only fields are left out of user messages.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    /// `user` or `assistant`.
    #[schema(example = "assistant")]
    pub role: String,
    /// The text; for an answer still streaming, what was stored so far (empty until it ends).
    pub content: String,
    /// RFC 3339, UTC.
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// Assistant messages only: `streaming`, `complete`, `stopped` or `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Assistant messages only: the provider that wrote the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Assistant messages only: the model asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Assistant messages only: why the answer ended (the provider's reason, or the error code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageView>,
    /// How many earlier messages of the session did not go upstream with this answer's prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_omitted: Option<i32>,
    /// Present while the answer is streaming, so a reloaded page can resume it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_id: Option<Uuid>,
    /// `true` for an earlier version a regenerate or an edit replaced: kept readable, never
    /// sent upstream again. Absent on the current line of the conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded: Option<bool>,
}

impl From<messages::Model> for MessageView {
    fn from(m: messages::Model) -> Self {
        let usage =
            (m.prompt_tokens.is_some() || m.completion_tokens.is_some()).then_some(UsageView {
                prompt_tokens: m.prompt_tokens,
                completion_tokens: m.completion_tokens,
                estimated: m.usage_estimated == Some(true),
            });
        let streaming = m.status.as_deref() == Some("streaming");
        MessageView {
            id: m.id,
            role: m.role,
            content: m.content,
            created_at: m.created_at,
            status: m.status,
            provider: m.provider,
            model: m.model,
            finish_reason: m.finish_reason,
            usage,
            context_omitted: m.context_omitted,
            generation_id: if streaming { m.generation_id } else { None },
            superseded: m.superseded_at.is_some().then_some(true),
        }
    }
}
