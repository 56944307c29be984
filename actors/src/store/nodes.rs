//! Node liveness: each server heartbeats its row in `nodes`, and answers left `streaming` by a
//! node that restarted or stopped heartbeating are marked interrupted, never those of a live peer.

use std::time::Duration;

use chrono::Utc;
use omnichat_entity::{messages, nodes};
use sea_orm::{
    sea_query::{Expr, ExprTrait, Query},
    ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, Set, UpdateMany,
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
        let result = interrupted_answers(self.node(), now, including_own)
            .exec(self.writer())
            .await?;
        nodes::Entity::delete_many()
            .filter(alive_at(now).not())
            .exec(self.writer())
            .await?;
        Ok(result.rows_affected)
    }
}

/// The update that marks interrupted the `streaming` answers of nodes dead at `now` (and, when
/// `including_own`, those of `node` itself).
fn interrupted_answers(
    node: &str,
    now: chrono::DateTime<Utc>,
    including_own: bool,
) -> UpdateMany<messages::Entity> {
    let live_peers = Query::select()
        .column(nodes::Column::Id)
        .from(nodes::Entity)
        .cond_where(alive_at(now))
        .and_where(Expr::col(nodes::Column::Id).ne(node))
        .to_owned();
    let mut orphaned = Condition::any().add(messages::Column::Node.is_null()).add(
        Condition::all()
            .add(messages::Column::Node.ne(node))
            .add(messages::Column::Node.not_in_subquery(live_peers)),
    );
    if including_own {
        orphaned = orphaned.add(messages::Column::Node.eq(node));
    }
    messages::Entity::update_many()
        .col_expr(messages::Column::Status, Some("error".to_owned()).into())
        .col_expr(
            messages::Column::FinishReason,
            Some("interrupted".to_owned()).into(),
        )
        // A literal, not a bound value: PostgreSQL's generic plan for a bound `status` cannot
        // use the partial index of running answers (migration `index_only_streaming_answers`)
        // and scans every message instead.
        .filter(Expr::col(messages::Column::Status).eq(Expr::cust("'streaming'")))
        .filter(orphaned)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement};

    use super::*;
    use crate::store::test_writes;

    /// How SQLite would run `statement`: its query plan's lines, joined.
    async fn plan_of(store: &Store, statement: Statement) -> String {
        let explain = Statement::from_sql_and_values(
            DbBackend::Sqlite,
            format!("EXPLAIN QUERY PLAN {}", statement.sql),
            statement.values.map(|values| values.0).unwrap_or_default(),
        );
        let rows = store.writer().query_all_raw(explain).await.unwrap();
        rows.iter()
            .map(|row| row.try_get::<String>("", "detail").unwrap())
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[tokio::test]
    async fn the_sweep_finds_running_answers_through_their_own_index_not_every_message() {
        let (store, _, _) = test_writes::store_with_session("sqlite::memory:").await;
        for including_own in [false, true] {
            let sweep =
                interrupted_answers("node-a", Utc::now(), including_own).build(DbBackend::Sqlite);
            let plan = plan_of(&store, sweep).await;
            // It may walk that index whole: it holds only the answers running.
            assert!(
                plan.contains("USING COVERING INDEX idx_messages_streaming"),
                "{plan}"
            );
            assert!(
                !plan.split("; ").any(|step| step == "SCAN messages"),
                "{plan}"
            );
        }
    }
}
