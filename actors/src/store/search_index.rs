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

/// Indexes the first [`INDEX_BATCH`] queued rows whose text is final (an answer still
/// `streaming` stays queued), then takes those off the queue; `indexed` is how many went in.
/// Both statements pick the same rows: nothing else writes in between.
pub(super) const INDEX_PENDING: &str = "\
INSERT INTO messages_fts(rowid, content) \
SELECT m.rowid, m.content FROM messages_fts_pending p CROSS JOIN messages m ON m.rowid = p.msg_rowid \
WHERE m.status IS NOT 'streaming' ORDER BY p.msg_rowid LIMIT ?1; \
DELETE FROM messages_fts_pending WHERE msg_rowid IN ( \
SELECT p.msg_rowid FROM messages_fts_pending p CROSS JOIN messages m ON m.rowid = p.msg_rowid \
WHERE m.status IS NOT 'streaming' ORDER BY p.msg_rowid LIMIT ?1); \
SELECT changes() AS indexed";

/// One pass over the queue; how many rows it indexed. Nothing to do on PostgreSQL, whose index
/// is a generated column.
pub(super) async fn index_pending<C: ConnectionTrait>(db: &C) -> Result<i64, DbErr> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(0);
    }
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            INDEX_PENDING,
            [Value::from(INDEX_BATCH)],
        ))
        .await?;
    match rows.first() {
        Some(row) => row.try_get("", "indexed"),
        None => Ok(0),
    }
}
