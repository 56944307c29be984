//! SQLite: the messages waiting in `messages_fts_pending` enter the full-text index in one
//! statement (see the migration `defer_message_indexing` for why not row by row).
//!
//! It runs as a write of the group-commit writer: about once a second while anything was written
//! (`Store::spawn_search_indexer`), and before every search, so a search finds every message
//! stored before it began.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

/// The most rows one pass indexes: bounds the pass's transaction after a long backlog. A search
/// after a backlog this large runs passes until it is gone.
pub(super) const INDEX_BATCH: i64 = 20_000;

/// Indexes the first `?1` queued rows whose text is final (an answer still `streaming` stays
/// queued). [`UNQUEUE_INDEXED`] then takes the same rows off the queue: nothing else writes in
/// between, and the number it removes is the number indexed.
pub(super) const INDEX_QUEUED: &str = "\
INSERT INTO messages_fts(rowid, content) \
SELECT m.rowid, m.content FROM messages_fts_pending p CROSS JOIN messages m ON m.rowid = p.msg_rowid \
WHERE m.status IS NOT 'streaming' ORDER BY p.msg_rowid LIMIT ?1";

/// The rows [`INDEX_QUEUED`] indexed, off the queue.
pub(super) const UNQUEUE_INDEXED: &str = "\
DELETE FROM messages_fts_pending WHERE msg_rowid IN ( \
SELECT p.msg_rowid FROM messages_fts_pending p CROSS JOIN messages m ON m.rowid = p.msg_rowid \
WHERE m.status IS NOT 'streaming' ORDER BY p.msg_rowid LIMIT ?1)";

/// One pass over the queue; how many rows it indexed. Nothing to do on PostgreSQL, whose index
/// is a generated column.
pub(super) async fn index_pending<C: ConnectionTrait>(db: &C) -> Result<i64, DbErr> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(0);
    }
    let pass =
        |sql| Statement::from_sql_and_values(DbBackend::Sqlite, sql, [Value::from(INDEX_BATCH)]);
    db.execute_raw(pass(INDEX_QUEUED)).await?;
    let indexed = db.execute_raw(pass(UNQUEUE_INDEXED)).await?.rows_affected();
    Ok(i64::try_from(indexed).unwrap_or(i64::MAX))
}
