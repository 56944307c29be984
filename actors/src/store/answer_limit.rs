//! The per-user limit on answers streaming at once, held across every node sharing a
//! PostgreSQL database: a turn's first write (`BeginAnswer` with a `LiveLimit`) counts the user's
//! `streaming` answers on live nodes and is refused at the limit, under a per-user lock.
//!
//! The cost, per turn on PostgreSQL: the write runs in a transaction even alone in its batch,
//! plus two statements, a lock and a count over the `streaming` rows (the status index; live
//! answers are few) joined to their sessions. The lock is per user, so only one user's own turns
//! wait on each other.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use uuid::Uuid;

use super::session_writes::LiveLimit;

/// The first key of the per-user advisory locks (the second is a hash of the user id); the
/// two-key lock space is apart from the one-key lock that migrations take.
const ANSWER_LOCK_SPACE: i32 = 0x6f6d_6e69;

/// True when `user_id` already has `limit.most` answers streaming on live nodes. Takes the
/// user's lock until the transaction `db` ends, so another node's turn of the same user waits
/// and then counts this one.
pub(super) async fn at_limit<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    limit: LiveLimit,
) -> Result<bool, DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        [ANSWER_LOCK_SPACE.into(), user_id.to_string().into()],
    ))
    .await?;
    // A statement after the lock: under READ COMMITTED it sees what the lock's last holder
    // committed.
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) AS live FROM messages m \
             JOIN sessions s ON s.id = m.session_id \
             JOIN nodes n ON n.id = m.node \
             WHERE m.status = 'streaming' AND s.user_id = $1 \
             AND (n.alive_until >= $2 OR (n.alive_until IS NULL AND n.heartbeat_at >= $3))",
            [
                user_id.into(),
                limit.now.into(),
                (limit.now - super::nodes::LEGACY_STALE_AFTER).into(),
            ],
        ))
        .await?;
    let live: i64 = match row {
        Some(row) => row.try_get("", "live")?,
        None => 0,
    };
    Ok(live >= i64::try_from(limit.most).unwrap_or(i64::MAX))
}
