//! The group-commit writer: every write a chat makes (a session created, renamed or deleted, a
//! prompt with its `streaming` answer row, an answer's final text) goes through a queue that one
//! task drains, committing whatever has gathered in one transaction. Under load many turns share a
//! commit; alone, a write waits for nothing.
//!
//! Writes are sharded by session, and each shard is one task, so the writes of one session are
//! applied in the order they were queued: a rename queued after a prompt never overtakes it.
//! A SQLite database file has one shard, drained by a thread of its own (`sqlite_writer`); the
//! tasks here serve PostgreSQL and an in-memory SQLite database.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::session_writes::{apply, Write, Written};
use crate::metrics::WriterMetrics;

/// The most writes one transaction takes: enough to amortise a commit, few enough that one
/// failing batch (retried write by write) stays cheap.
const MAX_BATCH: usize = 256;
/// Writes waiting per shard; past it the store is overloaded and says so at once.
const QUEUE_DEPTH: usize = 8_192;

/// Why a queued write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Database(#[from] DbErr),
    /// The database did not answer within the configured bound; nothing was written.
    #[error("the database did not answer within {0:?}")]
    TimedOut(Duration),
    /// Too many writes are waiting already; nothing was queued.
    #[error("too many database writes are waiting")]
    Overloaded,
    /// The writer has shut down (the server is stopping).
    #[error("the database writer has stopped")]
    Closed,
}

type Reply = oneshot::Sender<Result<Written, WriteError>>;

pub(super) struct Job {
    pub(super) write: Write,
    pub(super) reply: Reply,
}

/// A cheap-to-clone handle on the writer tasks.
#[derive(Clone, Debug)]
pub struct WriteQueue {
    shards: Arc<[mpsc::Sender<Job>]>,
    metrics: WriterMetrics,
    /// Set by every write queued since the search index last caught up (SQLite).
    unindexed: Arc<AtomicBool>,
    /// The indexer runs once per writer, however often the schema is migrated.
    indexer_started: Arc<AtomicBool>,
    /// SQLite: set when the log's tail is to be checkpointed on the writer's own connection
    /// (see `wal_checkpoint`).
    checkpoint_due: Arc<AtomicBool>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl WriteQueue {
    /// Starts `shards` writer tasks over `conn` (PostgreSQL, or an in-memory SQLite database);
    /// each transaction gets at most `timeout`.
    pub(super) fn spawn(conn: DatabaseConnection, shards: usize, timeout: Duration) -> Self {
        let Ok(queue) = Self::start(shards, |jobs, metrics, _| {
            tokio::spawn(drain(conn.clone(), jobs, timeout, metrics));
            Ok::<_, std::convert::Infallible>(())
        });
        queue
    }

    /// Starts the writer of a SQLite database file: a thread of its own with a connection of
    /// its own (see `sqlite_writer`).
    pub(super) fn spawn_sqlite_thread(
        path: &std::path::Path,
        timeout: Duration,
    ) -> Result<Self, DbErr> {
        Self::start(1, |jobs, metrics, checkpoint_due| {
            super::sqlite_writer::spawn(path, jobs, timeout, metrics, checkpoint_due)
        })
    }

    /// The queue over `shards` shards, each drained by what `start_shard` starts with the
    /// shard's jobs, the shared metrics and the checkpoint flag (which only a SQLite file's
    /// writer reads).
    fn start<E>(
        shards: usize,
        mut start_shard: impl FnMut(
            mpsc::Receiver<Job>,
            WriterMetrics,
            Arc<AtomicBool>,
        ) -> Result<(), E>,
    ) -> Result<Self, E> {
        let metrics = WriterMetrics::default();
        let checkpoint_due = Arc::new(AtomicBool::new(false));
        let senders = (0..shards.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
                start_shard(rx, metrics.clone(), checkpoint_due.clone()).map(|()| tx)
            })
            .collect::<Result<Vec<_>, E>>()?;
        Ok(WriteQueue {
            shards: senders.into(),
            metrics,
            // Rows a previous run queued and never indexed are indexed at the first tick.
            unindexed: Arc::new(AtomicBool::new(true)),
            indexer_started: Arc::new(AtomicBool::new(false)),
            checkpoint_due,
        })
    }

    /// SQLite: asks the writer to checkpoint the log on its own connection after its next batch
    /// (see `wal_checkpoint` for why there).
    pub(super) fn checkpoint_after_next_batch(&self) {
        self.checkpoint_due.store(true, Ordering::Release);
    }

    /// SQLite: every `every`, if anything was written since, the messages queued for the search
    /// index go in as one write. Ends when the writer has stopped.
    pub(super) fn spawn_search_indexer(&self, every: Duration) {
        if self.indexer_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let queue = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Cleared before the job is queued: a write queued after it sets it again.
                if !queue.unindexed.swap(false, Ordering::AcqRel) {
                    continue;
                }
                match queue.write(Uuid::nil(), Write::IndexSearch).await {
                    Ok(_) => {}
                    Err(WriteError::Closed) => return,
                    Err(err) => {
                        // Tried again at the next tick; a search catches up by itself anyway.
                        queue.unindexed.store(true, Ordering::Release);
                        tracing::warn!(%err, "indexing new messages for search failed");
                    }
                }
            }
        });
    }

    /// The batch commit time and size histograms.
    pub fn metrics(&self) -> &WriterMetrics {
        &self.metrics
    }

    /// Queues `write` (ordered with the other writes of session `key`); the receiver resolves
    /// once it is committed, or failed and rolled back.
    pub fn submit(
        &self,
        key: Uuid,
        write: Write,
    ) -> oneshot::Receiver<Result<Written, WriteError>> {
        let (reply, done) = oneshot::channel();
        if !matches!(write, Write::IndexSearch) {
            self.unindexed.store(true, Ordering::Release);
        }
        let shard = &self.shards[(key.as_u128() % self.shards.len() as u128) as usize];
        if let Err(err) = shard.try_send(Job { write, reply }) {
            let (job, error) = match err {
                mpsc::error::TrySendError::Full(job) => (job, WriteError::Overloaded),
                mpsc::error::TrySendError::Closed(job) => (job, WriteError::Closed),
            };
            let _ = job.reply.send(Err(error));
        }
        done
    }

    /// Queues `write` and waits for its outcome.
    pub async fn write(&self, key: Uuid, write: Write) -> Result<Written, WriteError> {
        self.submit(key, write)
            .await
            .unwrap_or(Err(WriteError::Closed))
    }
}

/// One shard's loop: take what is queued, commit it as one batch, answer every writer.
async fn drain(
    conn: DatabaseConnection,
    mut jobs: mpsc::Receiver<Job>,
    timeout: Duration,
    metrics: WriterMetrics,
) {
    let mut batch = Vec::with_capacity(16);
    while let Some(job) = jobs.recv().await {
        gather(job, &mut jobs, &mut batch, &metrics);
        let started = Instant::now();
        commit(&conn, &mut batch, timeout).await;
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Makes the next batch: `first`, then whatever else is queued already (up to [`MAX_BATCH`]);
/// nothing waits for more.
pub(super) fn gather(
    first: Job,
    jobs: &mut mpsc::Receiver<Job>,
    batch: &mut Vec<Job>,
    metrics: &WriterMetrics,
) {
    batch.push(first);
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    metrics.batch_size.observe(batch.len() as f64);
}

/// Commits `batch` in one transaction. If that fails, each write is tried alone, so one write
/// the database refuses cannot take the others of its batch down with it. A write alone runs its
/// statements as they are (see `session_writes`), or in a transaction if it needs one.
async fn commit(conn: &DatabaseConnection, batch: &mut Vec<Job>, timeout: Duration) {
    if let [job] = batch.as_slice() {
        let result = if job.write.needs_transaction() {
            bounded(timeout, async {
                let txn = conn.begin().await?;
                let written = apply(&txn, &job.write).await?;
                txn.commit().await?;
                Ok(written)
            })
            .await
        } else {
            bounded(timeout, apply(conn, &job.write)).await
        };
        if let Some(job) = batch.pop() {
            let _ = job.reply.send(result);
        }
        return;
    }
    let all = bounded(timeout, async {
        let txn = conn.begin().await?;
        let mut results = Vec::with_capacity(batch.len());
        for job in batch.iter() {
            results.push(apply(&txn, &job.write).await?);
        }
        txn.commit().await?;
        Ok(results)
    })
    .await;
    match all {
        Ok(results) => {
            for (job, result) in batch.drain(..).zip(results) {
                let _ = job.reply.send(Ok(result));
            }
        }
        Err(err) if batch.len() == 1 => {
            if let Some(job) = batch.pop() {
                let _ = job.reply.send(Err(err));
            }
        }
        Err(WriteError::TimedOut(bound)) => {
            // The database is not answering: trying each write alone would only multiply the wait.
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(WriteError::TimedOut(bound)));
            }
        }
        Err(err) => {
            tracing::warn!(%err, writes = batch.len(), "a batch of writes failed; writing them one by one");
            for job in batch.drain(..) {
                let result = bounded(timeout, async {
                    let txn = conn.begin().await?;
                    let written = apply(&txn, &job.write).await?;
                    txn.commit().await?;
                    Ok(written)
                })
                .await;
                let _ = job.reply.send(result);
            }
        }
    }
}

/// Runs a transaction within `timeout`. Dropping it on time-out rolls it back: a write the
/// caller was told failed never lands later.
async fn bounded<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, DbErr>>,
) -> Result<T, WriteError> {
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result.map_err(WriteError::from),
        Err(_) => Err(WriteError::TimedOut(timeout)),
    }
}
