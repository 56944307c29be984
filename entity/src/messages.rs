//! One turn of a session: the user's prompt or an assistant's answer.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    /// UUIDv7, so ids sort in creation order when timestamps tie.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    /// `user`, `assistant` or `system`.
    pub role: String,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    /// Assistant only: `streaming`, `complete`, `stopped` or `error`.
    pub status: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// Assistant only: the generation that wrote it, for resuming a live stream.
    pub generation_id: Option<Uuid>,
    pub finish_reason: Option<String>,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    /// Assistant only: the counts above are OmniChat's estimates (the provider reported none).
    pub usage_estimated: Option<bool>,
    /// Assistant only: how many earlier messages of the session were left out of what went
    /// upstream (the context window or the history length did not take them).
    pub context_omitted: Option<i32>,
    pub created_at: DateTimeUtc,
    /// The server node running (or that ran) this answer's generation.
    pub node: Option<String>,
    /// Set when a regenerate or an edit replaced this message: an earlier version, kept
    /// readable, never sent upstream again.
    pub superseded_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::sessions::Entity",
        from = "Column::SessionId",
        to = "super::sessions::Column::Id",
        on_delete = "Cascade"
    )]
    Session,
}

impl Related<super::sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
