//! The SQLite statements both writers run for a turn's begin: the async writer (an in-memory
//! database) and the thread of a database file (`sqlite_writer`).

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use super::session_writes::BeginAnswer;

/// Bumps the session if it is still at the expected version (`?1` the time, `?2` the session,
/// `?3` its user, `?4` the version): no row changes when another write got there first.
pub(super) const BUMP_AT_VERSION: &str = "\
UPDATE sessions SET version = version + 1, updated_at = ?1 \
WHERE id = ?2 AND user_id = ?3 AND version = ?4";

/// Counts a prompt in its user's minute (`?1` the user, `?2` the minute). (The quota itself was
/// checked by the SessionActor: alone on SQLite, its counters are the truth; this keeps them for
/// a restart.)
pub(super) const COUNT_PROMPT: &str = "\
INSERT INTO prompt_rate (user_id, minute, prompts) VALUES (?1, ?2, 1) \
ON CONFLICT (user_id) DO UPDATE SET \
prompts = CASE WHEN prompt_rate.minute = excluded.minute THEN prompt_rate.prompts + 1 ELSE 1 END, \
minute = excluded.minute";

/// Bumps the session if it is at the expected version, then counts the prompt; false when the
/// session was not at that version (nothing written).
pub(super) async fn bump_and_count_prompt<C: ConnectionTrait>(
    db: &C,
    begin: &BeginAnswer,
) -> Result<bool, DbErr> {
    let bump = Statement::from_sql_and_values(
        DbBackend::Sqlite,
        BUMP_AT_VERSION,
        [
            Value::from(begin.at),
            begin.answer.session_id.into(),
            begin.user_id.into(),
            begin.expected_version.into(),
        ],
    );
    if db.execute_raw(bump).await?.rows_affected() == 0 {
        return Ok(false);
    }
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        COUNT_PROMPT,
        [Value::from(begin.user_id), begin.quota.minute.into()],
    ))
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;
    use uuid::Uuid;

    use crate::store::{test_writes, AssistantOutcome, Store, Write, Written};

    async fn store_with_session() -> (Store, Uuid, Uuid) {
        test_writes::store_with_session("sqlite::memory:").await
    }

    /// On a database file its writer is a thread of its own over rusqlite (`sqlite_writer`);
    /// in memory, the async writer over sea-orm writes instead. Both must write the same rows.
    async fn store_on_a_file_with_session() -> (Store, Uuid, Uuid) {
        test_writes::store_with_session(&test_writes::database_file().1).await
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
        begins_at_and_off_the_expected_version(store_on_a_file_with_session().await).await;
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
        finishes_an_answer(store_on_a_file_with_session().await).await;
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
