//! SQLite statements of the async writer (an in-memory database; a database file has its own
//! writer, `sqlite_writer`), and the usage charge in SQLite's placeholders for both.

use std::sync::LazyLock;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use super::{session_writes::BeginAnswer, usage::RECORD_USAGE};

/// Bumps the session if it is still at the expected version, then counts the prompt in the
/// user's minute only if the bump changed a row (`changes()` is the row count of the statement
/// just before). (The quota itself was checked by the SessionActor: alone on SQLite, its
/// counters are the truth; this keeps them for a restart.)
const BUMP_AND_COUNT_PROMPT: &str = "\
UPDATE sessions SET version = version + 1, updated_at = ? \
WHERE id = ? AND user_id = ? AND version = ?; \
INSERT INTO prompt_rate (user_id, minute, prompts) SELECT ?, ?, 1 WHERE changes() = 1 \
ON CONFLICT (user_id) DO UPDATE SET \
prompts = CASE WHEN prompt_rate.minute = excluded.minute THEN prompt_rate.prompts + 1 ELSE 1 END, \
minute = excluded.minute";

/// [`RECORD_USAGE`] with SQLite's numbered placeholders: `$n` there would be numbered in the
/// order they first appear, which is not theirs.
pub(super) static RECORD_USAGE_SQLITE: LazyLock<String> = LazyLock::new(|| {
    let mut sql = RECORD_USAGE.to_owned();
    for n in (1..=6).rev() {
        sql = sql.replace(&format!("${n}"), &format!("?{n}"));
    }
    sql
});

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

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use chrono::Utc;
    use uuid::Uuid;

    use crate::store::{test_writes, AssistantOutcome, Store, Write, Written};

    async fn store_with_session() -> (Store, Uuid, Uuid) {
        store_at_with_session("sqlite::memory:").await
    }

    /// A database file: its writer is a thread of its own over rusqlite (`sqlite_writer`); in
    /// memory, the async writer over sea-orm writes instead. Both must write the same rows.
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
    async fn the_same_holds_for_the_writer_of_a_database_file() {
        // A stale begin right after a begin that went in, too.
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
        finishes_an_answer(store_with_session().await).await;
    }

    #[tokio::test]
    async fn the_writer_of_a_database_file_finishes_an_answer_alike() {
        finishes_an_answer(store_at_with_session(&database_file()).await).await;
    }

    async fn finishes_an_answer((store, user, session): (Store, Uuid, Uuid)) {
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
