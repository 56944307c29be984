//! The status index holds only the answers still `streaming`, not every message.
//!
//! Every lookup by status asks for `streaming` rows: start-up's recovery, the sweep of a dead
//! node's answers, the live-answer count of a per-user limit. An index over every status made
//! each chat turn write three entries into it (the prompt's, the answer's `streaming`, then the
//! answer's final status, after deleting the `streaming` one) and grew with the whole history.
//! Partial, it takes one entry when an answer starts and drops it when the answer ends, and its
//! size is the number of answers running. Keyed by `node`, which the sweep filters on.
//!
//! A query should say `status = 'streaming'` as a literal: PostgreSQL's generic plan for a bound
//! parameter cannot prove the index's condition and scans the table instead.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_messages_status")
            .await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS idx_messages_streaming ON messages (node) \
             WHERE status = 'streaming'",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_messages_streaming")
            .await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS idx_messages_status ON messages (status)",
        )
        .await?;
        Ok(())
    }
}
