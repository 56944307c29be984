//! The store: every sea-orm call OmniChat makes, over SQLite (default) or PostgreSQL.

mod answer_limit;
mod login_failures;
mod messages;
mod nodes;
mod revoked_tokens;
mod search;
mod search_index;
mod session_writes;
mod sessions;
mod settings;
mod sqlite_writer;
mod sqlite_writes;
#[cfg(test)]
pub(crate) mod test_writes;
mod usage;
mod users;
mod wal_checkpoint;
mod writer;

use std::{str::FromStr, sync::Arc, time::Duration};

use omnichat_migration::{Migrator, MigratorTrait};
use sea_orm::{
    sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, SqlErr,
    TransactionTrait,
};

pub use messages::{AssistantOutcome, LoadedSession, NewAssistantMessage};
pub use nodes::HEARTBEAT_EVERY;
pub use search::SearchHit;
pub use session_writes::{BeginAnswer, LiveLimit, Write, Written};
pub use usage::{UsageRecord, UsageRow};
pub use writer::{WriteError, WriteQueue};

/// A cheap-to-clone handle on the database pools.
#[derive(Clone, Debug)]
pub struct Store {
    /// Reads: several connections side by side.
    db: DatabaseConnection,
    /// Writes. On SQLite a single connection: its writers take turns anyway, and queueing them
    /// here spares them SQLite's busy-wait sleeps when several collide. On PostgreSQL the same
    /// pool as reads.
    writer: DatabaseConnection,
    /// The group-commit writer every chat write goes through.
    writes: WriteQueue,
    /// The server node this process is, recorded on the generations it runs.
    node: Arc<str>,
    /// How often this node heartbeats; a node silent for three times as long is presumed dead.
    heartbeat_every: Duration,
    /// This process's followers of answers that run on other nodes.
    follows: crate::follow::Follows,
}

/// SQLite: how often messages written meanwhile enter the search index (a search does not wait
/// for it: it catches the index up first).
const SEARCH_INDEX_EVERY: Duration = Duration::from_secs(1);

/// Writer tasks on PostgreSQL, where commits can run side by side; SQLite has one writer.
const POSTGRES_WRITE_SHARDS: usize = 4;

/// Arbitrary but fixed: every node takes this advisory lock while migrating, so nodes starting
/// together over one PostgreSQL database never run the same migration twice.
const MIGRATION_LOCK_KEY: i64 = 0x6f6d_6e69_6368_6174;

impl Store {
    /// Connects to `url`. SQLite gets WAL, `synchronous=NORMAL` and a busy timeout: the settings
    /// that let readers and one writer work side by side without `database is locked` errors.
    ///
    /// `timeout` bounds every wait on the database (a connection, a lock, a statement, a
    /// commit), so a database that is gone or locked fails requests fast instead of hanging them.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        timeout: Duration,
    ) -> Result<Self, DbErr> {
        let millis = timeout.as_millis().to_string();
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(max_connections)
            .min_connections(1)
            .connect_timeout(timeout)
            .acquire_timeout(timeout)
            // sqlx pings a pooled connection on every checkout by default: a round trip per
            // statement (to SQLite's worker thread, or over the network to PostgreSQL). Only a
            // connection idle long enough to have been dropped is worth that check; a dead one
            // that slips through fails its statement, which the callers handle as any error.
            .test_before_acquire_if_idle_for(Duration::from_secs(10))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(move |opts| {
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(timeout)
                    .foreign_keys(true)
                    // Checkpoints run in the background instead (see `wal_checkpoint`).
                    .pragma("wal_autocheckpoint", "0")
                    .pragma(
                        "journal_size_limit",
                        wal_checkpoint::LOG_SIZE_LIMIT_BYTES.to_string(),
                    )
            })
            .map_sqlx_postgres_opts(move |opts| {
                opts.options([
                    ("statement_timeout", millis.as_str()),
                    ("lock_timeout", millis.as_str()),
                ])
            });
        let db = Database::connect(options.clone()).await?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let sqlite_file = db.get_database_backend() == DbBackend::Sqlite && !in_memory;
        let (writer, writes) = if sqlite_file {
            options.max_connections(1).min_connections(1);
            let writer = Database::connect(options).await?;
            // The group-commit writer gets a thread and a connection of its own (see
            // `sqlite_writer`). The other writes (accounts, sign-ins, migrations) are few;
            // SQLite's busy wait orders the two.
            let path = SqliteConnectOptions::from_str(url)
                .map_err(|err| DbErr::Conn(sea_orm::RuntimeErr::Internal(err.to_string())))?
                .get_filename()
                .to_owned();
            let writes = WriteQueue::spawn_sqlite_thread(&path, timeout)?;
            wal_checkpoint::spawn(db.clone(), writes.clone(), wal_checkpoint::CHECKPOINT_EVERY);
            (writer, writes)
        } else {
            let shards = if db.get_database_backend() == DbBackend::Postgres {
                POSTGRES_WRITE_SHARDS
            } else {
                1
            };
            let writes = WriteQueue::spawn(db.clone(), shards, timeout);
            (db.clone(), writes)
        };
        Ok(Store {
            db,
            writer,
            writes,
            node: Arc::from(""),
            heartbeat_every: nodes::HEARTBEAT_EVERY,
            follows: crate::follow::Follows::default(),
        })
    }

    /// Applies pending migrations inside one transaction (serialised across nodes on PostgreSQL).
    pub async fn migrate(&self) -> Result<(), DbErr> {
        let txn = self.writer.begin().await?;
        if self.writer.get_database_backend() == DbBackend::Postgres {
            // Migrations may take longer than the bound on ordinary statements, and so may
            // waiting for another node's migrations.
            txn.execute_unprepared("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
                .await?;
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
            ))
            .await?;
        }
        Migrator::up(&txn, None).await?;
        txn.commit().await?;
        // The search index's queue exists from here on (and is indexed in batches on SQLite).
        if self.writer.get_database_backend() == DbBackend::Sqlite {
            self.writes.spawn_search_indexer(SEARCH_INDEX_EVERY);
        }
        Ok(())
    }

    /// This store, acting for server node `node`, which heartbeats every `heartbeat_every`.
    pub fn for_node(self, node: &str, heartbeat_every: Duration) -> Self {
        Store {
            node: Arc::from(node),
            heartbeat_every: heartbeat_every.max(Duration::from_millis(100)),
            ..self
        }
    }

    /// How often this node heartbeats.
    pub fn heartbeat_every(&self) -> Duration {
        self.heartbeat_every
    }

    /// A node whose heartbeat is older than this is presumed dead: three missed heartbeats.
    pub fn stale_after(&self) -> Duration {
        self.heartbeat_every * 3
    }

    pub(crate) fn follows(&self) -> &crate::follow::Follows {
        &self.follows
    }

    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    pub(crate) fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    /// The group-commit writer.
    pub fn writes(&self) -> &WriteQueue {
        &self.writes
    }

    /// True when the database answers `SELECT 1` within `timeout` (the readiness probe).
    pub async fn ping(&self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.db.execute_unprepared("SELECT 1")).await,
            Ok(Ok(_))
        )
    }

    /// Closes the pools, waiting for queries in flight.
    pub async fn close(self) -> Result<(), DbErr> {
        if self.db.get_database_backend() == DbBackend::Sqlite {
            self.writer.close().await?;
        }
        self.db.close().await
    }
}

/// True when `err` is a unique-constraint violation (a taken email or username, say).
pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}
