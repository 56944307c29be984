//! Automatic titles: a session still titled by default gets a short title after its first
//! answer ends, from the same provider (or `--title-provider`/`--title-model`), without holding
//! that answer up; `echo` makes a deterministic one; a title a client set is never replaced.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    fake_upstream::{FakeUpstream, Wire},
    session_search::echo_turn,
    support::{read_sse, streamed_text, TestServer, TestUser},
};

async fn create(server: &TestServer, user: &TestUser, body: Value) -> Value {
    let response = server
        .post(user, "/sessions")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn title_of(server: &TestServer, user: &TestUser, session: &Value) -> String {
    let path = format!("/sessions/{}", session["id"].as_str().unwrap());
    let shown: Value = server.get_json(user, &path).await;
    shown["title"].as_str().unwrap().to_owned()
}

/// Polls until the title is no longer `from` (or 5 s pass); returns the last title seen.
async fn title_after(server: &TestServer, user: &TestUser, session: &Value, from: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let title = title_of(server, user, session).await;
        if title != from || Instant::now() > deadline {
            return title;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn echo_titles_a_default_session_and_never_a_clients() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let untitled = create(&server, &user, json!({})).await;
    assert_eq!(untitled["title"], "New Chat");
    echo_turn(
        &server,
        &user,
        &untitled,
        "plan a weekend trip to lisbon with kids, please",
    )
    .await;
    let title = title_after(&server, &user, &untitled, "New Chat").await;
    assert_eq!(title, "Plan a weekend trip to lisbon");
    // Found by search under its new title, and listed with it.
    let list: Vec<Value> = server.get_json(&user, "/sessions").await;
    assert_eq!(list[0]["title"], title);
    // Only the first answer names it.
    echo_turn(&server, &user, &untitled, "something else entirely now").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(title_of(&server, &user, &untitled).await, title);

    // A client's title, even one equal to the default, stays.
    let named = create(&server, &user, json!({ "title": "New Chat" })).await;
    echo_turn(&server, &user, &named, "rename me if you dare").await;
    let mine = create(&server, &user, json!({ "title": "Mine" })).await;
    echo_turn(&server, &user, &mine, "rename me if you dare").await;
    // Renamed before its first answer: the client's title wins.
    let renamed = create(&server, &user, json!({})).await;
    let response = server
        .put(
            &user,
            &format!("/sessions/{}", renamed["id"].as_str().unwrap()),
        )
        .json(&json!({ "title": "Chosen" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    echo_turn(&server, &user, &renamed, "rename me if you dare").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(title_of(&server, &user, &named).await, "New Chat");
    assert_eq!(title_of(&server, &user, &mine).await, "Mine");
    assert_eq!(title_of(&server, &user, &renamed).await, "Chosen");

    // The title write bumped the version: a turn after it is still accepted (no stale 409).
    echo_turn(&server, &user, &untitled, "one more").await;
}

#[tokio::test]
async fn the_title_provider_writes_titles_without_delaying_the_answer() {
    let titler = FakeUpstream::start(Wire::OpenAi).await;
    titler.set_reply(
        [
            "\"Lisbon",
            " weekend",
            " with",
            " kids.\"",
            "\n",
            "Extra line",
        ]
        .map(String::from)
        .to_vec(),
    );
    // The title takes over a second to write; the answer must not wait for it.
    titler.set_token_delay(Duration::from_millis(250));
    let server = TestServer::start_with(&[
        "--openai-api-key",
        "sk-test",
        "--openai-base-url",
        &titler.base_url,
        "--title-provider",
        "openai",
        "--title-model",
        "gpt-title",
    ])
    .await;
    let user = server.user().await;
    let session = create(&server, &user, json!({})).await;
    let started = Instant::now();
    let response = server
        .chat(
            &user,
            json!({ "session_id": session["id"], "prompt": "Plan a weekend in Lisbon", "provider": "echo" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        streamed_text(&read_sse(response).await),
        "Plan a weekend in Lisbon"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "the answer ended in {:?}",
        started.elapsed()
    );
    assert_eq!(title_of(&server, &user, &session).await, "New Chat");
    let title = title_after(&server, &user, &session, "New Chat").await;
    assert_eq!(title, "Lisbon weekend with kids");
    let requests = titler.requests();
    assert_eq!(requests.len(), 1, "only the title went to OpenAI");
    let body = &requests[0].body;
    assert_eq!(body["model"], "gpt-title");
    let quoted = body["messages"][1]["content"].as_str().unwrap();
    assert!(quoted.contains("Plan a weekend in Lisbon"), "{quoted}");
}
