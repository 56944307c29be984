//! Token usage and quota counters in the database: the per-user, per-day totals by provider and
//! model (`usage_daily`, added to by each answer's final write), the prompts of the current
//! minute (`prompt_rate`), and the reads of both.
//!
//! The statements are written once for both databases: `$n` placeholders, which SQLite takes as
//! `?n` (see [`statement`]).

use chrono::{DateTime, Utc};
use omnichat_entity::sessions;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    Statement, Value,
};
use serde::Serialize;
use uuid::Uuid;

use super::{session_writes::BeginAnswer, Store};
use crate::budget::{utc_day, utc_minute, QuotaCheck, UserQuota};

/// A statement for `backend` from SQL with `$n` placeholders.
pub(super) fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Sqlite => sqlite_placeholders(sql),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// `sql` with SQLite's numbered placeholders (`?n` for `$n`: SQLite would number `$n` in the
/// order they first appear, not by their digits).
pub(super) fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Counts a prompt in the user's current minute, only while neither the day's tokens nor the
/// minute's prompts have reached their limits: no row changes when they have. (A deleted user
/// gets no row either: the `users` join.)
const CLAIM_PROMPT: &str = "\
INSERT INTO prompt_rate (user_id, minute, prompts) \
SELECT id, $2, 1 FROM users WHERE id = $1 AND \
(SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage_daily \
WHERE user_id = $1 AND day = $3) < $4 \
ON CONFLICT (user_id) DO UPDATE SET \
prompts = CASE WHEN prompt_rate.minute = excluded.minute THEN prompt_rate.prompts + 1 ELSE 1 END, \
minute = excluded.minute \
WHERE prompt_rate.minute <> excluded.minute OR prompt_rate.prompts < $5";

/// A prompt's begin on a shared database, in one statement (one round trip, as without quotas):
/// [`CLAIM_PROMPT`], then the session's version bump only if the claim counted the prompt.
/// No row changed means a refusal or a stale session; [`begin_refused_by_quota`] tells which.
fn claim_and_bump() -> String {
    format!(
        "WITH claimed AS ({CLAIM_PROMPT} RETURNING 1) \
         UPDATE sessions SET version = version + 1, updated_at = $6 \
         WHERE id = $7 AND user_id = $1 AND version = $8 AND EXISTS (SELECT 1 FROM claimed)"
    )
}

/// Adds an answer's tokens to its user's day.
pub(super) const RECORD_USAGE: &str = "\
INSERT INTO usage_daily (user_id, day, provider, model, prompt_tokens, completion_tokens, answers) \
SELECT id, $2, $3, $4, $5, $6, 1 FROM users WHERE id = $1 \
ON CONFLICT (user_id, day, provider, model) DO UPDATE SET \
prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, \
completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens, \
answers = usage_daily.answers + 1";

/// What an answer spent, for `usage_daily`.
#[derive(Clone, Debug)]
pub struct UsageRecord {
    pub user_id: Uuid,
    pub provider: String,
    pub model: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl UsageRecord {
    /// The values of [`RECORD_USAGE`], for the day of `at`.
    pub(super) fn values(&self, at: DateTime<Utc>) -> Vec<Value> {
        vec![
            self.user_id.into(),
            utc_day(at).into(),
            self.provider.as_str().into(),
            self.model.as_str().into(),
            i64::from(self.prompt_tokens).into(),
            i64::from(self.completion_tokens).into(),
        ]
    }
}

/// Counts the prompt and bumps the session (see [`claim_and_bump`]); true when both happened.
pub(super) async fn claim_prompt_and_bump<C: ConnectionTrait>(
    db: &C,
    begin: &BeginAnswer,
    check: &QuotaCheck,
) -> Result<bool, DbErr> {
    let values: Vec<Value> = vec![
        begin.user_id.into(),
        check.minute.into(),
        check.day.as_str().into(),
        check.tokens_per_day.into(),
        check.prompts_per_minute.into(),
        begin.at.into(),
        begin.answer.session_id.into(),
        begin.expected_version.into(),
    ];
    let result = db
        .execute_raw(statement(
            db.get_database_backend(),
            &claim_and_bump(),
            values,
        ))
        .await?;
    Ok(result.rows_affected() > 0)
}

/// After [`claim_prompt_and_bump`] changed nothing: true when the session is still at the
/// expected version, so it was the quota that refused (a read on the refusal path only).
pub(super) async fn begin_refused_by_quota<C: ConnectionTrait>(
    db: &C,
    begin: &BeginAnswer,
) -> Result<bool, DbErr> {
    let session = sessions::Entity::find_by_id(begin.answer.session_id)
        .filter(sessions::Column::UserId.eq(begin.user_id))
        .one(db)
        .await?;
    Ok(session.is_some_and(|s| s.version == begin.expected_version))
}

/// One row of a usage report: a UTC day's tokens for one provider and model.
#[derive(Clone, Debug, Serialize, FromQueryResult, utoipa::ToSchema)]
pub struct UsageRow {
    #[schema(format = Date, example = "2026-11-25")]
    pub day: String,
    pub provider: String,
    pub model: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub answers: i64,
}

#[derive(FromQueryResult)]
struct Total {
    total: Option<i64>,
}

#[derive(FromQueryResult)]
struct Rate {
    minute: i64,
    prompts: i64,
}

impl Store {
    /// The tokens `user_id` has spent on the day of `now`, by every node.
    pub async fn tokens_today(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, DbErr> {
        let backend = self.conn().get_database_backend();
        // CAST: PostgreSQL sums BIGINT into NUMERIC.
        let total = Total::find_by_statement(statement(
            backend,
            "SELECT CAST(COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS BIGINT) AS total \
             FROM usage_daily WHERE user_id = $1 AND day = $2",
            vec![user_id.into(), utc_day(now).into()],
        ))
        .one(self.conn())
        .await?;
        Ok(total
            .and_then(|t| t.total)
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(0))
    }

    /// The user's counters as stored: loaded once by a SessionActor.
    pub async fn load_quota(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<UserQuota, DbErr> {
        let backend = self.conn().get_database_backend();
        let rate = Rate::find_by_statement(statement(
            backend,
            "SELECT minute, prompts FROM prompt_rate WHERE user_id = $1",
            vec![user_id.into()],
        ))
        .one(self.conn());
        let (tokens, rate) = tokio::join!(self.tokens_today(user_id, now), rate);
        let (minute, prompts) = rate?
            .filter(|r| r.minute == utc_minute(now))
            .map_or((utc_minute(now), 0), |r| {
                (r.minute, u64::try_from(r.prompts).unwrap_or(0))
            });
        Ok(UserQuota::loaded(utc_day(now), tokens?, minute, prompts))
    }

    /// The user's usage by day, provider and model from `from` to `to` (both `YYYY-MM-DD`,
    /// inclusive), oldest day first.
    pub async fn usage_report(
        &self,
        user_id: Uuid,
        from: &str,
        to: &str,
    ) -> Result<Vec<UsageRow>, DbErr> {
        let backend = self.conn().get_database_backend();
        UsageRow::find_by_statement(statement(
            backend,
            "SELECT day, provider, model, prompt_tokens, completion_tokens, answers \
             FROM usage_daily WHERE user_id = $1 AND day >= $2 AND day <= $3 \
             ORDER BY day, provider, model",
            vec![user_id.into(), from.into(), to.into()],
        ))
        .all(self.conn())
        .await
    }
}
