//! A running server node and its last heartbeat.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "nodes")]
pub struct Model {
    /// `OMNICHAT_NODE_ID`, or host name and listen address.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub heartbeat_at: DateTimeUtc,
    /// Until when the node counts as alive without another heartbeat (three of its heartbeat
    /// intervals); `None` from a node of an older version: 30 s after `heartbeat_at`.
    pub alive_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
