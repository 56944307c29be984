//! Test helpers: migrated stores with a user (and a session), and the writes of a turn, built
//! the way the SessionActor builds them.

use std::{path::PathBuf, time::Duration};

use chrono::Utc;
use uuid::Uuid;

use super::{BeginAnswer, NewAssistantMessage, Store, Write};

/// A new SQLite database file (where the group-commit writer is a thread of its own over
/// rusqlite and the log is checkpointed in the background): its path and URL.
pub(crate) fn database_file() -> (PathBuf, String) {
    let path = std::env::temp_dir().join(format!("omnichat-store-{}.db", Uuid::now_v7()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    (path, url)
}

/// A migrated store at `url` (`sqlite::memory:` or a [`database_file`]) with user `ada`.
pub(crate) async fn store_with_user(url: &str) -> (Store, Uuid) {
    let store = Store::connect(url, 1, Duration::from_secs(3))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let user = store
        .insert_user("ada", "ada@example.com", "x".into())
        .await
        .unwrap();
    (store, user.id)
}

/// [`store_with_user`], and a session of hers.
pub(crate) async fn store_with_session(url: &str) -> (Store, Uuid, Uuid) {
    let (store, user) = store_with_user(url).await;
    let session = store
        .insert_session(user, "New chat", true, None)
        .await
        .unwrap();
    (store, user, session.id)
}

/// The write of `prompt` and its `streaming` `echo` answer in `session_id` on node `node-a`,
/// expecting the session at `expected_version`; and the answer's id. The prompt's id is made
/// first, so it sorts before its answer, as the SessionActor's do.
pub(crate) fn begin(
    user_id: Uuid,
    expected_version: i64,
    prompt: &str,
    session_id: Uuid,
) -> (Write, Uuid) {
    let prompt_id = Uuid::now_v7();
    let answer = NewAssistantMessage {
        id: Uuid::now_v7(),
        session_id,
        provider: "echo".into(),
        model: "echo-1".into(),
        generation_id: Uuid::now_v7(),
    };
    let answer_id = answer.id;
    let write = Write::BeginAnswer(Box::new(BeginAnswer {
        user_id,
        expected_version,
        prompt_id,
        prompt: prompt.into(),
        answer,
        node: "node-a".into(),
        at: Utc::now(),
        quota: crate::budget::QuotaSettings::default().database_check(Utc::now()),
        live_limit: None,
        supersede: Vec::new(),
        new_prompt: true,
    }));
    (write, answer_id)
}
