//! SQLite: message text enters the full-text index in batches, not statement by statement.
//!
//! FTS5 writes its pending terms out as a new segment at every statement that changes it (its
//! savepoint hook), so a trigger per message row cost each chat turn two index segments and the
//! merges that follow: a third of a turn's CPU. Now the triggers only queue the row's `rowid` in
//! `messages_fts_pending`, and the store indexes the queue in one statement (see the store's
//! `search_index`): about once a second, and always before a search, so a search still finds
//! every message written before it.
//!
//! A row is indexed once its text is final (an answer still `streaming` waits in the queue), so
//! an answer is indexed once, with its whole text. A row indexed already whose text changes, or
//! that is deleted, leaves the index at once, as before (rare: an answer's text is written when
//! it ends). Titles keep their immediate triggers: they change once or twice per session.
//!
//! After an FTS5 `rebuild` (see `create_search_index`), empty the queue as well:
//! `DELETE FROM messages_fts_pending`. PostgreSQL is unchanged (a generated `tsvector`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE_UP: &str = "
CREATE TABLE messages_fts_pending (msg_rowid INTEGER PRIMARY KEY);
DROP TRIGGER IF EXISTS messages_fts_insert;
DROP TRIGGER IF EXISTS messages_fts_update;
DROP TRIGGER IF EXISTS messages_fts_delete;
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT OR IGNORE INTO messages_fts_pending(msg_rowid) VALUES (new.rowid);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
WHEN old.content IS NOT new.content BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content)
    SELECT 'delete', old.rowid, old.content
    WHERE NOT EXISTS (SELECT 1 FROM messages_fts_pending WHERE msg_rowid = old.rowid);
    INSERT OR IGNORE INTO messages_fts_pending(msg_rowid) VALUES (new.rowid);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content)
    SELECT 'delete', old.rowid, old.content
    WHERE NOT EXISTS (SELECT 1 FROM messages_fts_pending WHERE msg_rowid = old.rowid);
    DELETE FROM messages_fts_pending WHERE msg_rowid = old.rowid;
END;
";

/// Back to a trigger per row: what is still queued is indexed first.
const SQLITE_DOWN: &str = "
INSERT INTO messages_fts(rowid, content)
SELECT m.rowid, m.content FROM messages m
WHERE m.rowid IN (SELECT msg_rowid FROM messages_fts_pending);
DROP TRIGGER IF EXISTS messages_fts_insert;
DROP TRIGGER IF EXISTS messages_fts_update;
DROP TRIGGER IF EXISTS messages_fts_delete;
DROP TABLE IF EXISTS messages_fts_pending;
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
END;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DbBackend::Sqlite {
            manager
                .get_connection()
                .execute_unprepared(SQLITE_UP)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DbBackend::Sqlite {
            manager
                .get_connection()
                .execute_unprepared(SQLITE_DOWN)
                .await?;
        }
        Ok(())
    }
}
