//! A chat session owned by one user.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub created_at: DateTimeUtc,
    /// Last activity: a rename or a new message.
    pub updated_at: DateTimeUtc,
    /// Bumped by every write that changes the session or its messages, so a node holding the
    /// session in memory can tell, in its next write, whether another node changed it meanwhile.
    pub version: i64,
    /// Sent upstream before the history; `None`: no system prompt.
    pub system_prompt: Option<String>,
    /// True while the title is the default given at creation, which an automatic title may
    /// replace; a title a client set is never replaced.
    pub title_is_default: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    User,
    #[sea_orm(has_many = "super::messages::Entity")]
    Messages,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::messages::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Messages.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
