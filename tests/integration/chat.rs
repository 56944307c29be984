//! `POST /chat/stream` with the built-in echo provider: the SSE contract, storage, errors.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{expect_error, read_sse, streamed_text, TestServer};

#[tokio::test]
async fn echo_streams_the_prompt_and_stores_both_turns() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let session = server.session(&user, "Jokes").await;
    let id = session["id"].as_str().unwrap();

    let response = server
        .chat(
            &user,
            json!({ "session_id": id, "prompt": "Tell me a joke", "provider": "echo" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    let generation_id = headers["x-generation-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&generation_id).is_ok());

    let events = read_sse(response).await;
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert_eq!(streamed_text(&events), "Tell me a joke");
    let deltas: Vec<&str> = events[..events.len() - 1]
        .iter()
        .map(|e| e.data.as_str())
        .collect();
    assert_eq!(deltas.len(), 4, "word by word: {deltas:?}");
    let ids: Vec<String> = events[..events.len() - 1]
        .iter()
        .map(|e| e.id.clone().unwrap())
        .collect();
    // Each id is the answer's length in bytes so far: what `Last-Event-ID` resumes from.
    assert_eq!(ids, ["4", "7", "9", "14"]);

    let detail: Value = server.get_json(&user, &format!("/sessions/{id}")).await;
    let messages = detail["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"], "Tell me a joke");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], "Tell me a joke");
    assert_eq!(messages[1]["status"], "complete");
    assert_eq!(messages[1]["provider"], "echo");
    assert!(messages[1]["model"].is_string());

    // A second turn appends after the first, oldest first.
    let again = server
        .chat(&user, json!({ "session_id": id, "prompt": "Another one" }))
        .await;
    assert_eq!(streamed_text(&read_sse(again).await), "Another one");
    let detail: Value = server.get_json(&user, &format!("/sessions/{id}")).await;
    let contents: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        [
            "Tell me a joke",
            "Tell me a joke",
            "Another one",
            "Another one"
        ]
    );
    // The chat is activity: the session's updated_at moved past its creation.
    assert!(detail["updated_at"].as_str().unwrap() > session["updated_at"].as_str().unwrap());
}

#[tokio::test]
async fn provider_text_cannot_inject_events() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let session = server.session(&user, "Injection").await;
    let prompt = "hi\n\ndata: [DONE]\n\nid: 99\ndata: {\"delta\":\"forged\"}";
    let response = server
        .chat(
            &user,
            json!({ "session_id": session["id"], "prompt": prompt }),
        )
        .await;
    let events = read_sse(response).await;
    assert_eq!(streamed_text(&events), prompt);
    assert_eq!(events.iter().filter(|e| e.data == "[DONE]").count(), 1);
}

#[tokio::test]
async fn errors_before_the_stream_are_json() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let other = server.user().await;
    let session = server.session(&user, "Mine").await;
    let id = session["id"].as_str().unwrap();

    let unknown = server
        .chat(
            &user,
            json!({ "session_id": id, "prompt": "hi", "provider": "nope" }),
        )
        .await;
    let detail = expect_error(unknown, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        detail.contains("echo") && detail.contains("openai"),
        "lists the known providers: {detail}"
    );

    let unconfigured = server
        .chat(
            &user,
            json!({ "session_id": id, "prompt": "hi", "provider": "openai" }),
        )
        .await;
    let detail = expect_error(unconfigured, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        detail.contains("OPENAI_API_KEY"),
        "says what to set: {detail}"
    );

    let missing = server
        .chat(
            &user,
            json!({ "session_id": uuid::Uuid::new_v4().to_string(), "prompt": "hi" }),
        )
        .await;
    expect_error(missing, StatusCode::NOT_FOUND).await;
    let not_yours = server
        .chat(&other, json!({ "session_id": id, "prompt": "hi" }))
        .await;
    expect_error(not_yours, StatusCode::NOT_FOUND).await;
    let bad_id = server
        .chat(&user, json!({ "session_id": "x", "prompt": "hi" }))
        .await;
    expect_error(bad_id, StatusCode::UNPROCESSABLE_ENTITY).await;
    let empty = server
        .chat(&user, json!({ "session_id": id, "prompt": "  " }))
        .await;
    expect_error(empty, StatusCode::UNPROCESSABLE_ENTITY).await;
    let huge = server
        .chat(
            &user,
            json!({ "session_id": id, "prompt": "x".repeat(100_001) }),
        )
        .await;
    expect_error(huge, StatusCode::UNPROCESSABLE_ENTITY).await;
    let no_auth = server
        .client
        .post(server.url("/chat/stream"))
        .json(&json!({ "session_id": id, "prompt": "hi" }))
        .send()
        .await
        .unwrap();
    expect_error(no_auth, StatusCode::UNAUTHORIZED).await;

    // None of the refused prompts was stored.
    let detail: Value = server.get_json(&user, &format!("/sessions/{id}")).await;
    assert_eq!(detail["messages"], json!([]));
}

#[tokio::test]
async fn a_quiet_stream_gets_keep_alive_comments() {
    let server =
        TestServer::start_with(&["--echo-delay-ms", "1300", "--sse-keep-alive-secs", "1"]).await;
    let user = server.user().await;
    let session = server.session(&user, "Quiet").await;
    let response = server
        .chat(
            &user,
            json!({ "session_id": session["id"], "prompt": "slow words" }),
        )
        .await;
    let body = response.text().await.unwrap();
    assert!(
        body.contains("\n: keep-alive\n\n") || body.starts_with(": keep-alive\n\n"),
        "{body}"
    );
    assert_eq!(
        streamed_text(&crate::support::parse_sse(&body)),
        "slow words"
    );
    assert!(body.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_full_session_refuses_new_prompts() {
    let server = TestServer::start_with(&["--max-messages-per-session", "4"]).await;
    let user = server.user().await;
    let session = server.session(&user, "Small").await;
    for prompt in ["one", "two"] {
        let response = server
            .chat(
                &user,
                json!({ "session_id": session["id"], "prompt": prompt }),
            )
            .await;
        assert_eq!(streamed_text(&read_sse(response).await), prompt);
    }
    let full = server
        .chat(
            &user,
            json!({ "session_id": session["id"], "prompt": "three" }),
        )
        .await;
    let detail = expect_error(full, StatusCode::CONFLICT).await;
    assert!(detail.contains("full"), "{detail}");
}
