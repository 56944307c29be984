//! Queries on `login_failures`: reading the counters a login is judged by, counting a failure
//! under several keys at once, blocking a key, clearing one and pruning what is forgotten.

use omnichat_entity::login_failures::{self, Column, Entity};
use sea_orm::{
    sea_query::{Expr, ExprTrait, OnConflict},
    ColumnTrait, DbErr, EntityTrait, QueryFilter, Set,
};

use super::Store;

impl Store {
    /// The counters stored under `keys` (missing keys have none).
    pub async fn login_failures(
        &self,
        keys: &[String],
    ) -> Result<Vec<login_failures::Model>, DbErr> {
        Entity::find()
            .filter(Column::Id.is_in(keys.iter().cloned()))
            .all(self.conn())
            .await
    }

    /// Adds one failure at `now_ms` under each key, atomically per key (so failures counted by
    /// several nodes at once all count). A count whose latest failure is older than
    /// `forget_before_ms` starts again from one. Returns the counters as they now stand.
    pub async fn count_login_failure(
        &self,
        keys: &[String],
        now_ms: i64,
        forget_before_ms: i64,
    ) -> Result<Vec<login_failures::Model>, DbErr> {
        let rows = keys.iter().map(|key| login_failures::ActiveModel {
            id: Set(key.clone()),
            failures: Set(1),
            last_failure_at: Set(now_ms),
            blocked_until: Set(0),
        });
        let stale = Expr::col((Entity, Column::LastFailureAt)).lt(forget_before_ms);
        let counted = Expr::case(stale, 1).finally(Expr::col((Entity, Column::Failures)).add(1));
        let on_conflict = OnConflict::column(Column::Id)
            .value(Column::Failures, counted)
            .value(Column::LastFailureAt, now_ms)
            .to_owned();
        Entity::insert_many(rows)
            .on_conflict(on_conflict)
            .exec_without_returning(self.writer())
            .await?;
        self.login_failures(keys).await
    }

    /// Refuses logins under `key` until `until_ms`, unless a later block stands already.
    pub async fn block_login(&self, key: &str, until_ms: i64) -> Result<(), DbErr> {
        Entity::update_many()
            .col_expr(Column::BlockedUntil, Expr::value(until_ms))
            .filter(Column::Id.eq(key))
            .filter(Column::BlockedUntil.lt(until_ms))
            .exec(self.writer())
            .await
            .map(|_| ())
    }

    /// Forgets the failures under `key` (a successful login from that account and address).
    pub async fn clear_login_failures(&self, key: &str) -> Result<(), DbErr> {
        Entity::delete_by_id(key.to_owned())
            .exec(self.writer())
            .await
            .map(|_| ())
    }

    /// Deletes counters whose latest failure is older than `forget_before_ms` and whose block,
    /// if any, is over: they no longer slow anyone down.
    pub async fn prune_login_failures(
        &self,
        now_ms: i64,
        forget_before_ms: i64,
    ) -> Result<u64, DbErr> {
        Entity::delete_many()
            .filter(Column::LastFailureAt.lt(forget_before_ms))
            .filter(Column::BlockedUntil.lt(now_ms))
            .exec(self.writer())
            .await
            .map(|done| done.rows_affected)
    }
}
