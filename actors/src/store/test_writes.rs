//! Test helpers: the writes of a turn, built the way the SessionActor builds them.

use chrono::Utc;
use uuid::Uuid;

use super::{BeginAnswer, NewAssistantMessage, Write};

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
