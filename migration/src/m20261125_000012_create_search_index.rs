//! The full-text index behind `GET /sessions?q=`: session titles and message text.
//!
//! SQLite: FTS5 external-content tables (`sessions_fts`, `messages_fts`) that store no text of
//! their own, kept by triggers on insert, on an update of the indexed column (an answer's text is
//! written by an update when it ends, a title by a rename) and on delete (a session's messages go
//! by cascade, which fires the triggers too). Every row is indexed, even the empty text of an
//! answer still streaming (a row of sizes, no terms): an index that skipped rows would fail
//! FTS5's own `integrity-check` and clash with its `rebuild`.
//! They key on `rowid`: `VACUUM` may renumber the rowids of these tables (their keys are uuids),
//! after which the index must be rebuilt (`INSERT INTO messages_fts(messages_fts) VALUES
//! ('rebuild')`, likewise `sessions_fts`); OmniChat itself never vacuums.
//!
//! PostgreSQL: a stored generated `tsvector` column on each table with a GIN index, so every
//! write keeps it without a trigger. The `simple` configuration (no stemming, no stop words)
//! matches what SQLite's `unicode61` tokenizer does, so both databases find the same words. Only
//! the first 100,000 characters of a message are indexed: a `tsvector` is capped at 1 MB, and an
//! answer past that must still be storable.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE_UP: &str = "
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content='messages', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2');
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
INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');

CREATE VIRTUAL TABLE sessions_fts USING fts5(
    title, content='sessions', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER sessions_fts_insert AFTER INSERT ON sessions BEGIN
    INSERT INTO sessions_fts(rowid, title) VALUES (new.rowid, new.title);
END;
CREATE TRIGGER sessions_fts_delete AFTER DELETE ON sessions BEGIN
    INSERT INTO sessions_fts(sessions_fts, rowid, title) VALUES ('delete', old.rowid, old.title);
END;
CREATE TRIGGER sessions_fts_update AFTER UPDATE OF title ON sessions BEGIN
    INSERT INTO sessions_fts(sessions_fts, rowid, title) VALUES ('delete', old.rowid, old.title);
    INSERT INTO sessions_fts(rowid, title) VALUES (new.rowid, new.title);
END;
INSERT INTO sessions_fts(sessions_fts) VALUES ('rebuild');
";

const SQLITE_DOWN: &str = "
DROP TRIGGER IF EXISTS messages_fts_insert;
DROP TRIGGER IF EXISTS messages_fts_delete;
DROP TRIGGER IF EXISTS messages_fts_update;
DROP TABLE IF EXISTS messages_fts;
DROP TRIGGER IF EXISTS sessions_fts_insert;
DROP TRIGGER IF EXISTS sessions_fts_delete;
DROP TRIGGER IF EXISTS sessions_fts_update;
DROP TABLE IF EXISTS sessions_fts;
";

const POSTGRES_UP: &str = "
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', left(content, 100000))) STORED;
CREATE INDEX messages_search ON messages USING gin (search);
ALTER TABLE sessions ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', title)) STORED;
CREATE INDEX sessions_search ON sessions USING gin (search);
";

const POSTGRES_DOWN: &str = "
DROP INDEX IF EXISTS messages_search;
ALTER TABLE messages DROP COLUMN IF EXISTS search;
DROP INDEX IF EXISTS sessions_search;
ALTER TABLE sessions DROP COLUMN IF EXISTS search;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            sea_orm_migration::sea_orm::DbBackend::Postgres => POSTGRES_UP,
            _ => SQLITE_UP,
        };
        manager.get_connection().execute_unprepared(sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            sea_orm_migration::sea_orm::DbBackend::Postgres => POSTGRES_DOWN,
            _ => SQLITE_DOWN,
        };
        manager.get_connection().execute_unprepared(sql).await?;
        Ok(())
    }
}
