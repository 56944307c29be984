//! The per-user limit on answers streaming at once, held across every node sharing a
//! PostgreSQL database: a turn's first write counts the user's `streaming` answers on live nodes
//! and is refused past the limit, in a transaction serialised per user.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, TransactionTrait};

use super::{
    session_writes::{apply, BeginAnswer, Write, Written},
    Store,
};

/// The first key of the per-user advisory locks (the second is a hash of the user id); the
/// two-key lock space is apart from the one-key lock that migrations take.
const ANSWER_LOCK_SPACE: i32 = 0x6f6d_6e69;

impl Store {
    /// Writes the prompt and the `streaming` answer row (as [`Write::BeginAnswer`]) unless
    /// `user_id` already has `limit` answers streaming on live nodes: then `None`, nothing
    /// written. PostgreSQL only.
    ///
    /// The cost, per turn: one transaction of four statements instead of the batched write, and
    /// a count over the `streaming` rows (the status index; live answers are few) joined to
    /// their sessions. The lock is per user, so only one user's own turns wait on each other.
    pub async fn begin_answer_within(
        &self,
        begin: &BeginAnswer,
        limit: usize,
    ) -> Result<Option<Written>, DbErr> {
        let stale_before = Utc::now()
            - chrono::Duration::from_std(self.stale_after())
                .unwrap_or(chrono::Duration::seconds(30));
        let txn = self.writer().begin().await?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            [ANSWER_LOCK_SPACE.into(), begin.user_id.to_string().into()],
        ))
        .await?;
        // Read after the lock: another node's turn of this user that held it is committed and
        // counted.
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT count(*) AS live FROM messages m \
                 JOIN sessions s ON s.id = m.session_id \
                 JOIN nodes n ON n.id = m.node \
                 WHERE m.status = 'streaming' AND s.user_id = $1 AND n.heartbeat_at >= $2",
                [begin.user_id.into(), stale_before.into()],
            ))
            .await?;
        let live: i64 = match row {
            Some(row) => row.try_get("", "live")?,
            None => 0,
        };
        if live >= i64::try_from(limit).unwrap_or(i64::MAX) {
            txn.rollback().await?;
            return Ok(None);
        }
        let written = apply(&txn, &Write::BeginAnswer(Box::new(begin.clone()))).await?;
        txn.commit().await?;
        Ok(Some(written))
    }
}
