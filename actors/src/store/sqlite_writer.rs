//! The group-commit writer on a SQLite file: a thread of its own, holding a connection of its
//! own (rusqlite), that takes whatever writes have queued and commits them in one transaction.
//!
//! Through sqlx every statement is a hop to SQLite's worker thread and back, and the async side
//! around it (sea-orm's statement values, sqlx's arguments, the pool check-out, the time-out
//! future) cost about as much as SQLite's own work: a turn's two writes took ~340 K instructions,
//! ~200 K of them SQLite's. Here a batch costs one hand-off each way, statements are prepared
//! once and kept, and each runs where its outcome is known at once (a stale begin stops after
//! its version check instead of guarding the later statements with `changes()`).
//!
//! It writes exactly what the sea-orm path writes, in the same encodings as sqlx (ids as 16-byte
//! blobs, times as RFC 3339 text, booleans as 0/1), so either reads the other's rows.
//! PostgreSQL and in-memory SQLite keep the async writer (`writer::drain`).

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, types::Value as SqlValue, Connection, ErrorCode, OpenFlags};
use sea_orm::{DbErr, RuntimeErr};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    messages::AssistantOutcome,
    search_index::{INDEX_BATCH, INDEX_QUEUED, UNQUEUE_INDEXED},
    session_writes::{found, BeginAnswer, Write, Written},
    sqlite_writes::{BUMP_AT_VERSION, COUNT_PROMPT},
    usage::{sqlite_placeholders, RECORD_USAGE},
    wal_checkpoint::{CHECKPOINT, LOG_SIZE_LIMIT_BYTES},
    writer::{gather, Job, WriteError},
};
use crate::metrics::WriterMetrics;

/// [`RECORD_USAGE`] as SQLite numbers its placeholders, made once.
static RECORD_USAGE_SQLITE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| sqlite_placeholders(RECORD_USAGE));

/// Opens the writer's connection to the database file at `path` and starts its thread, which
/// ends when every sender of `jobs` is gone.
pub(super) fn spawn(
    path: &Path,
    jobs: mpsc::Receiver<Job>,
    timeout: Duration,
    metrics: WriterMetrics,
    checkpoint_due: Arc<AtomicBool>,
) -> Result<(), DbErr> {
    let conn =
        open(path, timeout).map_err(|err| DbErr::Conn(RuntimeErr::Internal(err.to_string())))?;
    let writer = SqliteWriter {
        conn,
        timeout,
        deadline: Arc::new(std::sync::Mutex::new(Instant::now())),
    };
    std::thread::Builder::new()
        .name("omnichat-sqlite-writer".into())
        .spawn(move || writer.run(jobs, metrics, checkpoint_due))
        .map_err(|err| DbErr::Conn(RuntimeErr::Internal(err.to_string())))?;
    Ok(())
}

/// The connection as the sqlx pools set theirs up, plus what only the writer needs.
fn open(path: &Path, timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(timeout)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {LOG_SIZE_LIMIT_BYTES};"
    ))?;
    // Enough for every statement below with room to spare; they stay prepared for good.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

struct SqliteWriter {
    conn: Connection,
    timeout: Duration,
    /// When the running transaction must give up (read by SQLite's progress handler).
    deadline: Arc<std::sync::Mutex<Instant>>,
}

/// Why a batch failed, before it is told to its writers.
enum Failure {
    /// Busy past the bound, or interrupted at it: the database is unavailable, not broken.
    TimedOut,
    Database(String),
}

impl From<rusqlite::Error> for Failure {
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::OperationInterrupted,
            ) => Failure::TimedOut,
            _ => Failure::Database(err.to_string()),
        }
    }
}

impl SqliteWriter {
    fn run(
        self,
        mut jobs: mpsc::Receiver<Job>,
        metrics: WriterMetrics,
        checkpoint_due: Arc<AtomicBool>,
    ) {
        let deadline = self.deadline.clone();
        // A statement still running at the deadline is interrupted, so its transaction rolls
        // back and its writers hear of it within the bound, as with the async writer.
        let interrupts = self.conn.progress_handler(
            1_000,
            Some(move || {
                deadline
                    .lock()
                    .map(|deadline| Instant::now() > *deadline)
                    .unwrap_or(false)
            }),
        );
        if let Err(err) = interrupts {
            tracing::warn!(%err, "the SQLite writer cannot bound its statements' time");
        }
        let mut batch = Vec::with_capacity(16);
        while let Some(job) = jobs.blocking_recv() {
            gather(job, &mut jobs, &mut batch, &metrics);
            let started = Instant::now();
            self.commit(&mut batch);
            metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            // The batch's writers have their answers already: only the next batch waits.
            if checkpoint_due.swap(false, Ordering::AcqRel) {
                if let Err(err) = self.conn.query_row(CHECKPOINT, [], |_| Ok(())) {
                    tracing::debug!(%err, "checkpointing the SQLite log's tail failed");
                }
            }
        }
    }

    /// Commits `batch` in one transaction; if that fails (other than by time-out), each write
    /// alone, so one write the database refuses cannot take the others down with it.
    fn commit(&self, batch: &mut Vec<Job>) {
        let all = self.transaction(|writer| {
            batch
                .iter()
                .map(|job| writer.apply(&job.write))
                .collect::<Result<Vec<_>, _>>()
        });
        match all {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            Err(Failure::TimedOut) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(WriteError::TimedOut(self.timeout)));
                }
            }
            Err(Failure::Database(message)) if batch.len() == 1 => {
                if let Some(job) = batch.pop() {
                    let _ = job.reply.send(Err(database_error(message)));
                }
            }
            Err(Failure::Database(message)) => {
                tracing::warn!(error = %message, writes = batch.len(), "a batch of writes failed; writing them one by one");
                for job in batch.drain(..) {
                    let result =
                        self.transaction(|writer| writer.apply(&job.write))
                            .map_err(|failure| match failure {
                                Failure::TimedOut => WriteError::TimedOut(self.timeout),
                                Failure::Database(message) => database_error(message),
                            });
                    let _ = job.reply.send(result);
                }
            }
        }
    }

    /// Runs `work` in a `BEGIN IMMEDIATE … COMMIT` bounded by the time-out; any failure rolls
    /// it back on this connection before anything else runs on it.
    fn transaction<T>(&self, work: impl FnOnce(&Self) -> Result<T, Failure>) -> Result<T, Failure> {
        let deadline = Instant::now() + self.timeout;
        if let Ok(mut shared) = self.deadline.lock() {
            *shared = deadline;
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = work(self).and_then(|value| {
            // SQLite asks its progress handler only every thousand VM steps, so a statement of
            // a few steps that was slow (a huge row, a slow disk) is never interrupted. Its
            // writers are told "timed out, nothing written" past the deadline: so it must not
            // commit.
            if Instant::now() > deadline {
                return Err(Failure::TimedOut);
            }
            self.conn.execute_batch("COMMIT")?;
            Ok(value)
        });
        if result.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }

    fn apply(&self, write: &Write) -> Result<Written, Failure> {
        let conn = &self.conn;
        match write {
            Write::CreateSession(row) => {
                conn.prepare_cached(
                    "INSERT INTO sessions (id, user_id, title, created_at, updated_at, version, \
                     system_prompt, title_is_default) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    id(row.id),
                    id(row.user_id),
                    row.title,
                    time(row.created_at),
                    time(row.updated_at),
                    row.version,
                    row.system_prompt,
                    row.title_is_default,
                ])?;
                Ok(Written::Done)
            }
            Write::Update {
                user_id,
                session_id,
                title,
                system_prompt,
                at,
            } => {
                // Each of the three shapes is its own statement, prepared once.
                let sql = match (title.is_some(), system_prompt.is_some()) {
                    (true, true) => {
                        "UPDATE sessions SET version = version + 1, updated_at = ?1, \
                        title = ?4, title_is_default = 0, system_prompt = ?5 \
                        WHERE id = ?2 AND user_id = ?3"
                    }
                    (true, false) => {
                        "UPDATE sessions SET version = version + 1, updated_at = ?1, \
                        title = ?4, title_is_default = 0 WHERE id = ?2 AND user_id = ?3"
                    }
                    (false, true) => {
                        "UPDATE sessions SET version = version + 1, updated_at = ?1, \
                        system_prompt = ?5 WHERE id = ?2 AND user_id = ?3"
                    }
                    (false, false) => {
                        "UPDATE sessions SET version = version + 1, updated_at = ?1 \
                        WHERE id = ?2 AND user_id = ?3"
                    }
                };
                let mut statement = conn.prepare_cached(sql)?;
                statement.raw_bind_parameter(1, time(*at))?;
                statement.raw_bind_parameter(2, id(*session_id))?;
                statement.raw_bind_parameter(3, id(*user_id))?;
                if let Some(title) = title {
                    statement.raw_bind_parameter(4, title)?;
                }
                if let Some(prompt) = system_prompt {
                    statement.raw_bind_parameter(5, prompt)?;
                }
                Ok(found(statement.raw_execute()? as u64))
            }
            Write::AutoTitle {
                user_id,
                session_id,
                title,
            } => {
                // Not activity: the session keeps its place in the list.
                let changed = conn
                    .prepare_cached(
                        "UPDATE sessions SET version = version + 1, title = ?1, \
                         title_is_default = 0 \
                         WHERE id = ?2 AND user_id = ?3 AND title_is_default = 1",
                    )?
                    .execute(params![title, id(*session_id), id(*user_id)])?;
                Ok(found(changed as u64))
            }
            Write::Delete {
                user_id,
                session_id,
            } => {
                let changed = conn
                    .prepare_cached("DELETE FROM sessions WHERE id = ?1 AND user_id = ?2")?
                    .execute(params![id(*session_id), id(*user_id)])?;
                Ok(found(changed as u64))
            }
            Write::BeginAnswer(begin) => self.begin_answer(begin),
            Write::FinishAnswer {
                message_id,
                session_id,
                outcome,
            } => {
                self.finish_answer(*session_id, *message_id, outcome)?;
                Ok(Written::Done)
            }
            Write::IndexSearch => {
                // A backlog past one pass is worked off pass by pass.
                while self.index_pending()? >= INDEX_BATCH as usize {}
                Ok(Written::Done)
            }
        }
    }

    /// The session bumped if it is still at the expected version (else nothing is written),
    /// the prompt counted in the user's minute, the messages it replaces marked superseded, then
    /// the prompt (unless it is a stored one answered again) and the `streaming` answer row.
    /// (The quotas were checked by the SessionActor: alone on SQLite, its counters are the
    /// truth; this keeps them for a restart. A live limit is only ever set on PostgreSQL.)
    fn begin_answer(&self, begin: &BeginAnswer) -> Result<Written, Failure> {
        let conn = &self.conn;
        let answer = &begin.answer;
        let bumped = conn.prepare_cached(BUMP_AT_VERSION)?.execute(params![
            time(begin.at),
            id(answer.session_id),
            id(begin.user_id),
            begin.expected_version
        ])?;
        if bumped == 0 {
            return Ok(Written::Stale);
        }
        conn.prepare_cached(COUNT_PROMPT)?
            .execute(params![id(begin.user_id), begin.quota.minute])?;
        // The version check above is what makes these the session's current last messages: the
        // SessionActor chose them at the version this write expected.
        for replaced in &begin.supersede {
            conn.prepare_cached(
                "UPDATE messages SET superseded_at = ?1 \
                 WHERE id = ?2 AND session_id = ?3 AND superseded_at IS NULL",
            )?
            .execute(params![
                time(begin.at),
                id(*replaced),
                id(answer.session_id)
            ])?;
        }
        let mut insert = conn.prepare_cached(
            "INSERT INTO messages (id, session_id, role, content, status, provider, model, \
             generation_id, created_at, node) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        if begin.new_prompt {
            insert.execute(params![
                id(begin.prompt_id),
                id(answer.session_id),
                "user",
                begin.prompt,
                None::<&str>,
                None::<&str>,
                None::<&str>,
                None::<Vec<u8>>,
                time(begin.at),
                None::<&str>,
            ])?;
        }
        insert.execute(params![
            id(answer.id),
            id(answer.session_id),
            "assistant",
            "",
            "streaming",
            answer.provider,
            answer.model,
            id(answer.generation_id),
            time(begin.at),
            begin.node,
        ])?;
        Ok(Written::Done)
    }

    /// Marks the session active (bumping its version), stores the answer's final state, and
    /// charges the user's day (a session deleted meanwhile is no error: nothing matches).
    fn finish_answer(
        &self,
        session_id: Uuid,
        message_id: Uuid,
        outcome: &AssistantOutcome,
    ) -> Result<(), Failure> {
        let conn = &self.conn;
        let to_i32 = |n: Option<u32>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        let now = Utc::now();
        conn.prepare_cached(
            "UPDATE sessions SET version = version + 1, updated_at = ?1 WHERE id = ?2",
        )?
        .execute(params![time(now), id(session_id)])?;
        conn.prepare_cached(
            "UPDATE messages SET content = ?1, status = ?2, finish_reason = ?3, \
             prompt_tokens = ?4, completion_tokens = ?5, usage_estimated = ?6, \
             context_omitted = ?7 WHERE id = ?8",
        )?
        .execute(params![
            outcome.content,
            outcome.status,
            outcome.finish_reason,
            to_i32(outcome.usage.prompt_tokens),
            to_i32(outcome.usage.completion_tokens),
            outcome.usage_estimated,
            i32::try_from(outcome.context_omitted).unwrap_or(i32::MAX),
            id(message_id),
        ])?;
        if let Some(charge) = &outcome.charge {
            let values = charge
                .values(now)
                .iter()
                .map(to_sqlite)
                .collect::<Result<Vec<_>, _>>()?;
            conn.prepare_cached(&RECORD_USAGE_SQLITE)?
                .execute(rusqlite::params_from_iter(values))?;
        }
        Ok(())
    }

    /// One pass of the search index's queue (see `search_index`); how many rows went in.
    fn index_pending(&self) -> Result<usize, Failure> {
        self.conn
            .prepare_cached(INDEX_QUEUED)?
            .execute([INDEX_BATCH])?;
        Ok(self
            .conn
            .prepare_cached(UNQUEUE_INDEXED)?
            .execute([INDEX_BATCH])?)
    }
}

/// An id as sqlx stores it on SQLite: its 16 bytes.
fn id(id: Uuid) -> [u8; 16] {
    id.into_bytes()
}

/// A time as sqlx stores it on SQLite.
fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// A sea-orm value bound as sqlx binds it on SQLite (only the kinds the writes use).
fn to_sqlite(value: &sea_orm::Value) -> Result<SqlValue, Failure> {
    use sea_orm::Value;
    Ok(match value {
        Value::String(Some(text)) => SqlValue::Text(text.clone()),
        Value::BigInt(Some(n)) => SqlValue::Integer(*n),
        Value::Int(Some(n)) => SqlValue::Integer(i64::from(*n)),
        Value::Bool(Some(b)) => SqlValue::Integer(i64::from(*b)),
        Value::Uuid(Some(uuid)) => SqlValue::Blob(uuid.as_bytes().to_vec()),
        Value::ChronoDateTimeUtc(Some(at)) => SqlValue::Text(time(*at)),
        Value::String(None)
        | Value::BigInt(None)
        | Value::Int(None)
        | Value::Bool(None)
        | Value::Uuid(None)
        | Value::ChronoDateTimeUtc(None) => SqlValue::Null,
        other => {
            return Err(Failure::Database(format!(
                "the SQLite writer cannot bind {other:?}"
            )))
        }
    })
}

fn database_error(message: String) -> WriteError {
    WriteError::Database(DbErr::Exec(RuntimeErr::Internal(message)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{
        test_writes::{begin, database_file, store_with_session},
        Store, WriteError,
    };

    #[tokio::test]
    async fn a_write_still_running_at_the_deadline_is_rolled_back_as_timed_out() {
        let (path, url) = database_file();
        let (store, user, session) = store_with_session(&url).await;
        // A second store on the same file whose writer has 20 ms, and a prompt that takes far
        // longer than that to store (64 MiB: pages spilled to the log, then committed).
        let hurried = Store::connect(&url, 1, Duration::from_millis(20))
            .await
            .unwrap();
        let huge = "x".repeat(64 << 20);
        let (write, _) = begin(user, 0, &huge, session);
        let refused = hurried.writes().write(session, write).await;
        assert!(
            matches!(refused, Err(WriteError::TimedOut(_))),
            "a write past the deadline is refused as timed out: {refused:?}"
        );

        // Nothing of it was stored, and the database is free for the next write at once.
        let loaded = store
            .load_session(user, session, 10)
            .await
            .unwrap()
            .unwrap();
        assert!(loaded.recent.is_empty(), "the timed-out write left rows");
        let (write, _) = begin(user, 0, "a normal prompt", session);
        store.writes().write(session, write).await.unwrap();
        let loaded = store
            .load_session(user, session, 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded.recent.len(), 2, "the prompt and its answer");
        let _ = std::fs::remove_file(path);
    }
}
