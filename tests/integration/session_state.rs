//! Sessions held in memory by their SessionActor: the history that goes upstream stays exact
//! turn after turn, across nodes sharing one database (a turn, rename or delete on one node is
//! seen by a prompt on the other), and text a database cannot hold (U+0000) is stored the same
//! way on SQLite and PostgreSQL.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    fake_upstream::{FakeUpstream, Wire},
    support::{
        expect_error, generation_id, postgres_url, read_sse, streamed_text, TestDb, TestServer,
        TestUser,
    },
};

/// Runs one echo turn and returns the stored answer (echo reports as prompt tokens the words of
/// everything it was sent, so `usage.prompt_tokens` shows how much history went upstream).
async fn turn(server: &TestServer, user: &TestUser, session: &str, prompt: &str) -> Value {
    let response = server
        .chat(user, json!({ "session_id": session, "prompt": prompt }))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = read_sse(response).await;
    assert_eq!(streamed_text(&events), prompt);
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let detail: Value = server.get_json(user, &format!("/sessions/{session}")).await;
    detail["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone()
}

fn prompt_tokens(answer: &Value) -> u64 {
    answer["usage"]["prompt_tokens"].as_u64().unwrap()
}

#[tokio::test]
async fn every_turn_sends_the_whole_history_upstream() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let id = server.session(&user, "History").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Each turn adds two words as prompt and two as answer: the upstream sees 2, 6, 10, ...
    for n in 0..6u64 {
        let answer = turn(&server, &user, &id, &format!("turn {n}")).await;
        assert_eq!(answer["status"], "complete");
        assert_eq!(prompt_tokens(&answer), 2 + 4 * n, "turn {n}");
    }
}

#[tokio::test]
async fn two_nodes_see_each_others_turns_renames_and_deletes() {
    let db = TestDb::new();
    let shared = db.shared();
    let a = TestServer::start_on(db, &[]).await;
    let b = TestServer::start_on(shared, &[]).await;
    let user = a.user().await;
    let id = a.session(&user, "Two nodes").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Both nodes hold the session after a turn each.
    assert_eq!(prompt_tokens(&turn(&a, &user, &id, "one two").await), 2);
    assert_eq!(prompt_tokens(&turn(&b, &user, &id, "three four").await), 6);

    // B's turn and a rename on B, then a prompt on A: A must not use what it held.
    let renamed = b
        .put(&user, &format!("/sessions/{id}"))
        .json(&json!({ "title": "Renamed on B" }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    if postgres_url().is_none() {
        // SQLite offers no signal between processes: A finds out in the prompt's own write,
        // after it has started, and says so instead of answering from a stale history.
        let first = a
            .chat(&user, json!({ "session_id": id, "prompt": "five six" }))
            .await;
        let detail = expect_error(first, StatusCode::CONFLICT).await;
        assert!(detail.contains("another server"), "{detail}");
    }
    let answer = turn(&a, &user, &id, "five six").await;
    assert_eq!(prompt_tokens(&answer), 10, "A sent B's turn upstream");
    let seen_on_a: Value = a.get_json(&user, &format!("/sessions/{id}")).await;
    assert_eq!(seen_on_a["title"], "Renamed on B");
    assert_eq!(seen_on_a["messages"].as_array().unwrap().len(), 6);

    // Deleted on B: a prompt on A finds no session.
    let deleted = b
        .delete(&user, &format!("/sessions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let prompt = json!({ "session_id": id, "prompt": "seven" });
    let mut response = a.chat(&user, prompt.clone()).await;
    if postgres_url().is_none() && response.status() == StatusCode::CONFLICT {
        response = a.chat(&user, prompt).await;
    }
    expect_error(response, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn nul_characters_are_stored_as_replacement_characters_on_every_database() {
    let fake = FakeUpstream::start(Wire::OpenAi).await;
    fake.set_reply(vec!["a\u{0}b".into(), " c\u{0}".into()]);
    let server = TestServer::start_with(&[
        "--openai-api-key",
        "sk-test",
        "--openai-base-url",
        &fake.base_url,
    ])
    .await;
    let user = server.user().await;
    let id = server.session(&user, "Nul\u{0}title").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A prompt holding U+0000, echoed back: streamed and stored with U+FFFD in its place.
    let echoed = server
        .chat(&user, json!({ "session_id": id, "prompt": "x\u{0}y" }))
        .await;
    assert_eq!(echoed.status(), StatusCode::OK);
    assert_eq!(streamed_text(&read_sse(echoed).await), "x\u{FFFD}y");

    // Provider output holding U+0000.
    let streamed = server
        .chat(
            &user,
            json!({ "session_id": id, "prompt": "go", "provider": "openai" }),
        )
        .await;
    assert_eq!(streamed.status(), StatusCode::OK);
    let generation = generation_id(&streamed);
    let events = read_sse(streamed).await;
    assert_eq!(streamed_text(&events), "a\u{FFFD}b c\u{FFFD}");
    assert_eq!(events.last().unwrap().data, "[DONE]");

    let detail: Value = server.get_json(&user, &format!("/sessions/{id}")).await;
    assert_eq!(detail["title"], "Nul\u{FFFD}title");
    let stored: Vec<(&str, &str, &str)> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap(),
                m["content"].as_str().unwrap(),
                m["status"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        stored,
        [
            ("user", "x\u{FFFD}y", "-"),
            ("assistant", "x\u{FFFD}y", "complete"),
            ("user", "go", "-"),
            ("assistant", "a\u{FFFD}b c\u{FFFD}", "complete"),
        ]
    );

    // Resuming after the first delta gives exactly the rest of what was streamed: event ids
    // count the bytes of the stored text, so the replacement is counted the same everywhere.
    let first_id = events[0].id.clone().expect("a delta has an id");
    assert_eq!(first_id, "a\u{FFFD}b".len().to_string());
    let resumed = server
        .get(&user, &format!("/chat/stream/{generation}"))
        .header("last-event-id", first_id)
        .send()
        .await
        .unwrap();
    assert_eq!(streamed_text(&read_sse(resumed).await), " c\u{FFFD}");
}
