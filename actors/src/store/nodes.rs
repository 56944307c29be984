//! Node liveness: each server heartbeats its row in `nodes`, and answers left `streaming` by a
//! node that restarted or stopped heartbeating are marked interrupted, never those of a live peer.

use std::time::Duration;

use chrono::Utc;
use omnichat_entity::{messages, nodes};
use sea_orm::{
    sea_query::{Expr, ExprTrait, Query},
    ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, Set,
};

use super::Store;

/// How often a node heartbeats (and sweeps up after dead peers) unless configured otherwise; a
/// node silent for three times as long is presumed dead (see [`Store::stale_after`]).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// How long a heartbeat without `alive_until` (from a node of an older version) counts.
pub(super) const LEGACY_STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// The nodes alive at `now`: each by the `alive_until` its last heartbeat promised.
pub(super) fn alive_at(now: chrono::DateTime<Utc>) -> Condition {
    Condition::any()
        .add(nodes::Column::AliveUntil.gte(now))
        .add(
            Condition::all()
                .add(nodes::Column::AliveUntil.is_null())
                .add(nodes::Column::HeartbeatAt.gte(now - LEGACY_STALE_AFTER)),
        )
}

impl Store {
    /// Records that this node is alive now.
    pub async fn heartbeat(&self) -> Result<(), DbErr> {
        let now = Utc::now();
        let stale_after =
            chrono::TimeDelta::from_std(self.stale_after()).unwrap_or(LEGACY_STALE_AFTER);
        let row = nodes::ActiveModel {
            id: Set(self.node().to_owned()),
            heartbeat_at: Set(now),
            alive_until: Set(Some(now + stale_after)),
        };
        nodes::Entity::insert(row)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(nodes::Column::Id)
                    .update_columns([nodes::Column::HeartbeatAt, nodes::Column::AliveUntil])
                    .to_owned(),
            )
            .exec_without_returning(self.writer())
            .await
            .map(|_| ())
    }

    /// Removes this node's row on a clean shutdown.
    pub async fn leave(&self) -> Result<(), DbErr> {
        nodes::Entity::delete_by_id(self.node().to_owned())
            .exec(self.writer())
            .await
            .map(|_| ())
    }

    /// Marks `streaming` answers whose generation can no longer be running as `error`
    /// (`interrupted`): those of dead nodes and, when `including_own` (at start), this node's
    /// own from before a crash.
    pub async fn mark_interrupted_generations(&self, including_own: bool) -> Result<u64, DbErr> {
        let now = Utc::now();
        let live_peers = Query::select()
            .column(nodes::Column::Id)
            .from(nodes::Entity)
            .cond_where(alive_at(now))
            .and_where(Expr::col(nodes::Column::Id).ne(self.node()))
            .to_owned();
        let mut orphaned = Condition::any().add(messages::Column::Node.is_null()).add(
            Condition::all()
                .add(messages::Column::Node.ne(self.node()))
                .add(messages::Column::Node.not_in_subquery(live_peers)),
        );
        if including_own {
            orphaned = orphaned.add(messages::Column::Node.eq(self.node()));
        }
        let result = messages::Entity::update_many()
            .col_expr(messages::Column::Status, Some("error".to_owned()).into())
            .col_expr(
                messages::Column::FinishReason,
                Some("interrupted".to_owned()).into(),
            )
            .filter(messages::Column::Status.eq("streaming"))
            .filter(orphaned)
            .exec(self.writer())
            .await?;
        nodes::Entity::delete_many()
            .filter(alive_at(now).not())
            .exec(self.writer())
            .await?;
        Ok(result.rows_affected)
    }
}
