//! A turn's two writes on SQLite, each in one round trip to SQLite's worker thread.
//!
//! sqlx runs SQLite on a worker thread, and every statement is a hop to it and back: on the path
//! to the first token those hops, not SQLite's own work, are most of what a write costs. SQLite
//! (unlike PostgreSQL's extended protocol) takes several statements in one query with their
//! parameters bound in order, so each write here is one query. The statements keep the order of
//! the portable versions in `session_writes` (the version is bumped first), and the insert of a
//! begin is guarded by `changes()`, so a stale session gets nothing written.
//!
//! A write the writer commits alone is wrapped in `BEGIN IMMEDIATE … COMMIT` inside the same
//! query (`wrapped`): one commit for the write rather than one per statement, and all or nothing
//! if the process dies. Only the writer's own connection runs them (see `writer`), which rolls
//! back at once if one fails midway.

use std::sync::LazyLock;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use super::{
    messages::AssistantOutcome,
    session_writes::{BeginAnswer, Written},
    usage::RECORD_USAGE,
};

/// Bumps the session if it is still at the expected version, then inserts the prompt and the
/// `streaming` answer row only if that bump changed a row, then counts the prompt in the user's
/// minute only if both rows went in. `changes()` is the row count of the last completed
/// statement on this connection: the one just before. (The quota itself was checked by the
/// SessionActor: alone on SQLite, its counters are the truth; this keeps them for a restart.)
/// Placeholders are anonymous, bound in order: sqlx stops binding a statement's numbered
/// placeholders at the first one past the values left after the statements before it.
const BEGIN_ANSWER: &str = "\
UPDATE sessions SET version = version + 1, updated_at = ? \
WHERE id = ? AND user_id = ? AND version = ?; \
INSERT INTO messages (id, session_id, role, content, status, provider, model, generation_id, \
finish_reason, prompt_tokens, completion_tokens, created_at, node) \
SELECT * FROM (VALUES \
(?, ?, 'user', ?, NULL, NULL, NULL, NULL, NULL, NULL, NULL, ?, NULL), \
(?, ?, 'assistant', '', 'streaming', ?, ?, ?, NULL, NULL, NULL, ?, ?)) \
WHERE changes() = 1; \
INSERT INTO prompt_rate (user_id, minute, prompts) SELECT ?, ?, 1 WHERE changes() = 2 \
ON CONFLICT (user_id) DO UPDATE SET \
prompts = CASE WHEN prompt_rate.minute = excluded.minute THEN prompt_rate.prompts + 1 ELSE 1 END, \
minute = excluded.minute; \
SELECT changes() AS stored";

/// The first half of [`BEGIN_ANSWER`] for a replacing begin (which writes its rows itself): the
/// bump at the expected version, then the prompt counted only if the bump changed a row.
const BUMP_AND_COUNT_PROMPT: &str = "\
UPDATE sessions SET version = version + 1, updated_at = ? \
WHERE id = ? AND user_id = ? AND version = ?; \
INSERT INTO prompt_rate (user_id, minute, prompts) SELECT ?, ?, 1 WHERE changes() = 1 \
ON CONFLICT (user_id) DO UPDATE SET \
prompts = CASE WHEN prompt_rate.minute = excluded.minute THEN prompt_rate.prompts + 1 ELSE 1 END, \
minute = excluded.minute";

/// Marks the session active (bumping its version), then stores the answer's final state.
const FINISH_ANSWER: &str = "\
UPDATE sessions SET version = version + 1, updated_at = ?1 WHERE id = ?2; \
UPDATE messages SET content = ?3, status = ?4, finish_reason = ?5, prompt_tokens = ?6, \
completion_tokens = ?7, usage_estimated = ?8, context_omitted = ?9 WHERE id = ?10";

/// [`FINISH_ANSWER`], then the user's day charged (its placeholders renumbered after the ten).
/// Built once: every finished answer runs it.
static FINISH_AND_CHARGE: LazyLock<String> = LazyLock::new(|| {
    let mut charge = RECORD_USAGE.to_owned();
    for n in (1..=6).rev() {
        charge = charge.replace(&format!("${n}"), &format!("?{}", n + 10));
    }
    format!("{FINISH_ANSWER}; {charge}")
});

/// The writes above, each in a transaction of its own: built once (the statement cache keys on
/// the text).
static BEGIN_ANSWER_ALONE: LazyLock<String> = LazyLock::new(|| alone(BEGIN_ANSWER));
static FINISH_ANSWER_ALONE: LazyLock<String> = LazyLock::new(|| alone(FINISH_ANSWER));
static FINISH_AND_CHARGE_ALONE: LazyLock<String> = LazyLock::new(|| alone(&FINISH_AND_CHARGE));

/// `sql` in a transaction of its own, for a write committed alone.
pub(super) fn alone(sql: &str) -> String {
    format!("BEGIN IMMEDIATE; {sql}; COMMIT")
}

/// `sql` as it runs: in a transaction of its own when `wrapped` (`alone` is that form, built
/// once), as it is inside a batch's transaction.
fn pick(sql: &'static str, alone: &'static LazyLock<String>, wrapped: bool) -> &'static str {
    if wrapped {
        alone.as_str()
    } else {
        sql
    }
}

pub(super) async fn begin_answer<C: ConnectionTrait>(
    db: &C,
    begin: &BeginAnswer,
    wrapped: bool,
) -> Result<Written, DbErr> {
    let answer = &begin.answer;
    let values: Vec<Value> = vec![
        begin.at.into(),
        answer.session_id.into(),
        begin.user_id.into(),
        begin.expected_version.into(),
        // The prompt.
        begin.prompt_id.into(),
        answer.session_id.into(),
        begin.prompt.as_str().into(),
        begin.at.into(),
        // The answer.
        answer.id.into(),
        answer.session_id.into(),
        answer.provider.as_str().into(),
        answer.model.as_str().into(),
        answer.generation_id.into(),
        begin.at.into(),
        begin.node.as_str().into(),
        // The prompt's minute.
        begin.user_id.into(),
        begin.quota.minute.into(),
    ];
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            pick(BEGIN_ANSWER, &BEGIN_ANSWER_ALONE, wrapped),
            values,
        ))
        .await?;
    // The last statement's row count says whether the chain went through: one session bumped
    // and two messages inserted, or nothing at all. (Not the query's summed row count: sqlx adds
    // `changes()` after `BEGIN` too, which is whatever the connection's previous write changed.)
    let stored: i64 = match rows.first() {
        Some(row) => row.try_get("", "stored")?,
        None => 0,
    };
    Ok(if stored == 0 {
        Written::Stale
    } else {
        Written::Done
    })
}

/// Bumps the session if it is at the expected version and counts the prompt; false when the
/// session was not at that version (nothing written).
pub(super) async fn bump_and_count_prompt<C: ConnectionTrait>(
    db: &C,
    begin: &BeginAnswer,
) -> Result<bool, DbErr> {
    let values: Vec<Value> = vec![
        begin.at.into(),
        begin.answer.session_id.into(),
        begin.user_id.into(),
        begin.expected_version.into(),
        begin.user_id.into(),
        begin.quota.minute.into(),
    ];
    let result = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            BUMP_AND_COUNT_PROMPT,
            values,
        ))
        .await?;
    Ok(result.rows_affected() > 0)
}

pub(super) async fn finish_answer<C: ConnectionTrait>(
    db: &C,
    session_id: uuid::Uuid,
    message_id: uuid::Uuid,
    outcome: &AssistantOutcome,
    wrapped: bool,
) -> Result<(), DbErr> {
    let to_i32 = |n: Option<u32>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let now = chrono::Utc::now();
    let mut values: Vec<Value> = vec![
        now.into(),
        session_id.into(),
        outcome.content.as_str().into(),
        outcome.status.into(),
        outcome.finish_reason.clone().into(),
        to_i32(outcome.usage.prompt_tokens).into(),
        to_i32(outcome.usage.completion_tokens).into(),
        outcome.usage_estimated.into(),
        i32::try_from(outcome.context_omitted)
            .unwrap_or(i32::MAX)
            .into(),
        message_id.into(),
    ];
    let sql = match &outcome.charge {
        Some(charge) => {
            values.extend(charge.values(now));
            pick(
                FINISH_AND_CHARGE.as_str(),
                &FINISH_AND_CHARGE_ALONE,
                wrapped,
            )
        }
        None => pick(FINISH_ANSWER, &FINISH_ANSWER_ALONE, wrapped),
    };
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        sql,
        values,
    ))
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use chrono::Utc;
    use uuid::Uuid;

    use crate::store::{test_writes, AssistantOutcome, Store, Write, Written};

    async fn store_with_session() -> (Store, Uuid, Uuid) {
        store_at_with_session("sqlite::memory:").await
    }

    /// A database file: the writer then has its own connection, and a write alone carries its
    /// own transaction (`BEGIN IMMEDIATE … COMMIT` in the query).
    fn database_file() -> String {
        let path = std::env::temp_dir().join(format!("omnichat-writes-{}.db", Uuid::now_v7()));
        format!("sqlite://{}?mode=rwc", path.display())
    }

    async fn store_at_with_session(url: &str) -> (Store, Uuid, Uuid) {
        let store = Store::connect(url, 1, Duration::from_secs(3))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let user = store
            .insert_user("ada", "ada@example.com", "x".into())
            .await
            .unwrap();
        let session = store
            .insert_session(user.id, "New chat", true, None)
            .await
            .unwrap();
        (store, user.id, session.id)
    }

    fn begin(user_id: Uuid, session_id: Uuid, expected_version: i64) -> Write {
        let prompt = "it's a 'quoted' prompt; DROP TABLE messages; --";
        test_writes::begin(user_id, expected_version, prompt, session_id).0
    }

    #[tokio::test]
    async fn a_begin_at_the_expected_version_writes_both_rows_and_a_stale_one_writes_none() {
        begins_at_and_off_the_expected_version(store_with_session().await).await;
    }

    #[tokio::test]
    async fn the_same_holds_for_writes_that_carry_their_own_transaction() {
        // A stale begin right after a begin that went in: the connection's last row count is
        // not zero then, and must not be taken for this write's.
        begins_at_and_off_the_expected_version(store_at_with_session(&database_file()).await).await;
    }

    async fn begins_at_and_off_the_expected_version((store, user, session): (Store, Uuid, Uuid)) {
        let stale = store.writes().write(session, begin(user, session, 7)).await;
        assert!(matches!(stale, Ok(Written::Stale)), "{stale:?}");
        assert_eq!(store.count_messages(session).await.unwrap(), 0);

        let other_user = store
            .writes()
            .write(session, begin(Uuid::now_v7(), session, 0))
            .await;
        assert!(matches!(other_user, Ok(Written::Stale)), "{other_user:?}");
        assert_eq!(store.count_messages(session).await.unwrap(), 0);
        // A prompt a minute: a stale begin counted none, the one that went in counts one.
        let one_a_minute = crate::budget::QuotaSettings {
            tokens_per_day: None,
            prompts_per_minute: Some(1),
        };
        let counted = || async {
            let quota = store.load_quota(user, Utc::now()).await.unwrap();
            quota.check(&one_a_minute, Utc::now()).is_err()
        };
        assert!(!counted().await);

        let done = store.writes().write(session, begin(user, session, 0)).await;
        assert!(matches!(done, Ok(Written::Done)), "{done:?}");
        assert!(counted().await);
        let loaded = store
            .load_session(user, session, 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded.session.version, 1);
        assert_eq!(loaded.message_count, 2);
        let roles: Vec<_> = loaded.recent.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant"]);
        assert_eq!(
            loaded.recent[0].content,
            "it's a 'quoted' prompt; DROP TABLE messages; --"
        );
        assert_eq!(loaded.recent[1].status.as_deref(), Some("streaming"));
        assert_eq!(loaded.recent[1].node.as_deref(), Some("node-a"));

        // The same version again is stale now: the first begin moved it on.
        let again = store.writes().write(session, begin(user, session, 0)).await;
        assert!(matches!(again, Ok(Written::Stale)), "{again:?}");
        assert_eq!(store.count_messages(session).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_finish_stores_the_answer_and_bumps_the_session() {
        let (store, user, session) = store_with_session().await;
        store
            .writes()
            .write(session, begin(user, session, 0))
            .await
            .unwrap();
        let answer_id = store
            .load_session(user, session, 10)
            .await
            .unwrap()
            .unwrap()
            .recent[1]
            .id;

        let outcome = AssistantOutcome {
            content: "done \u{fffd} here".into(),
            status: "complete",
            finish_reason: Some("stop".into()),
            usage: crate::providers::TokenUsage {
                prompt_tokens: Some(3),
                completion_tokens: Some(u32::MAX),
            },
            usage_estimated: false,
            context_omitted: 7,
            charge: Some(crate::store::UsageRecord {
                user_id: user,
                provider: "echo".into(),
                model: "echo-1".into(),
                prompt_tokens: 3,
                completion_tokens: 4,
            }),
        };
        let finished = store
            .writes()
            .write(
                session,
                Write::FinishAnswer {
                    message_id: answer_id,
                    session_id: session,
                    outcome: Arc::new(outcome),
                },
            )
            .await;
        assert!(matches!(finished, Ok(Written::Done)), "{finished:?}");
        let loaded = store
            .load_session(user, session, 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded.session.version, 2);
        let answer = &loaded.recent[1];
        assert_eq!(answer.content, "done \u{fffd} here");
        assert_eq!(answer.status.as_deref(), Some("complete"));
        assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
        assert_eq!(answer.prompt_tokens, Some(3));
        assert_eq!(answer.completion_tokens, Some(i32::MAX));
        assert_eq!(answer.usage_estimated, Some(false));
        assert_eq!(answer.context_omitted, Some(7));
        let today = crate::budget::utc_day(Utc::now());
        let report = store.usage_report(user, &today, &today).await.unwrap();
        assert_eq!(report.len(), 1);
        assert_eq!(
            (report[0].prompt_tokens, report[0].completion_tokens),
            (3, 4)
        );
        assert_eq!(store.tokens_today(user, Utc::now()).await.unwrap(), 7);
    }
}
