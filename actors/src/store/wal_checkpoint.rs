//! SQLite: moves the write-ahead log into the database file mostly in the background, so chat
//! writes seldom wait for it and the log stays small.
//!
//! By default SQLite checkpoints inside whichever commit pushes the log past 1,000 pages: that
//! commit then copies about 4 MB and syncs the database file twice, and every turn queued behind
//! it waits (at one client, most of the slowest percent of first tokens). So every connection
//! turns that off (`wal_autocheckpoint=0`, set in `Store::connect`), and checkpoints run in two
//! steps:
//!
//! 1. the bulk: a PASSIVE checkpoint on a read connection, beside the group-commit writer rather
//!    than in its way;
//! 2. the tail: right after, the writer checkpoints again on its own connection, between two
//!    batches, copying only what was committed meanwhile. This step is what lets the log start
//!    over: SQLite rewinds the log only in a write transaction that began with every frame
//!    already copied, which a checkpoint running beside a busy writer never leaves it.
//!
//! `journal_size_limit` (also set in `connect`) cuts the log file back once it has started over.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};

use super::writer::WriteQueue;

/// Copies what the log holds into the database file, as far as readers allow, without waiting
/// for anyone.
pub(super) const CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// How often the log is checkpointed: often enough that a copy of the database file is at most a
/// moment behind and the log stays a few megabytes. A pass with nothing new to copy only reads
/// the log's index.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The size the log file is cut back to once it has started over.
pub(super) const LOG_SIZE_LIMIT_BYTES: u64 = 32 * 1024 * 1024;

/// Every `every`, checkpoints the bulk of the log on `db` (a read pool), then has `writes` do
/// the tail. Runs for as long as the process does (one per file database a process opens).
pub(super) fn spawn(db: DatabaseConnection, writes: WriteQueue, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = db.execute_unprepared(CHECKPOINT).await {
                // Tried again at the next tick; until then the log only grows.
                tracing::debug!(%err, "checkpointing the SQLite log failed");
                continue;
            }
            writes.checkpoint_after_next_batch();
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use uuid::Uuid;

    use super::CHECKPOINT_EVERY;
    use crate::store::{test_writes, Store, Written};

    /// Stores `turns` turns in `session`, one write at a time, as a lone client would.
    async fn turns(store: &Store, user: Uuid, session: Uuid, from_version: i64, turns: i64) {
        for version in from_version..from_version + turns {
            let (begin, _) = test_writes::begin(user, version, "hello", session);
            let written = store.writes().write(session, begin).await.unwrap();
            assert_eq!(written, Written::Done);
        }
    }

    #[tokio::test]
    async fn the_database_file_alone_soon_holds_what_was_written() {
        // What a backup that copies only the database file gets.
        let (path, url) = test_writes::database_file();
        let (store, user, session) = test_writes::store_with_session(&url).await;
        turns(&store, user, session, 0, 3).await;
        let mut found = 0;
        for attempt in 0..40 {
            tokio::time::sleep(CHECKPOINT_EVERY / 2).await;
            let copy = path.with_extension(format!("copy-{attempt}.db"));
            std::fs::copy(&path, &copy).unwrap();
            let url = format!("sqlite://{}", copy.display());
            let copied = Store::connect(&url, 1, Duration::from_secs(3))
                .await
                .unwrap();
            // Until a checkpoint, the file may not even have the tables.
            found = copied.count_messages(session).await.unwrap_or(0);
            copied.close().await.unwrap();
            if found == 6 {
                break;
            }
        }
        assert_eq!(
            found, 6,
            "the file alone holds {found} of the 6 messages written"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_starts_over_while_writes_keep_coming() {
        // A checkpoint beside a writer that never pauses never leaves every frame copied, and
        // without the writer's own checkpoint the log would grow by every commit (hundreds of
        // megabytes a minute under load).
        let (path, url) = test_writes::database_file();
        let (store, user) = test_writes::store_with_user(&url).await;
        let mut clients = Vec::new();
        for _ in 0..4 {
            let session = store
                .insert_session(user, "New chat", true, None)
                .await
                .unwrap();
            let store = store.clone();
            clients.push(tokio::spawn(async move {
                let started = std::time::Instant::now();
                let mut version = 0;
                while started.elapsed() < CHECKPOINT_EVERY * 12 {
                    turns(&store, user, session.id, version, 10).await;
                    version += 10;
                }
                version
            }));
        }
        let mut commits = 0;
        for client in clients {
            commits += client.await.unwrap();
        }
        let log = std::fs::metadata(format!("{}-wal", path.display()))
            .unwrap()
            .len() as i64;
        // Every commit of a turn's begin writes at least four pages (the session, the two
        // messages, their index entries, the search queue) of 4 KiB.
        let written = commits * 4 * 4096;
        assert!(
            log < written / 3,
            "the log file is {log} bytes after {commits} commits of at least {written} bytes in all"
        );
    }
}
