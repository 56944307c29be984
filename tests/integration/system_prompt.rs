//! A session's system prompt: set on `POST`/`PUT /sessions`, shown by `GET`, and sent upstream
//! in each provider's own form (OpenAI and Ollama a system message, Anthropic `system`, Gemini
//! `systemInstruction`), with a length cap.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    fake_upstream::{FakeUpstream, Wire},
    support::{expect_error, read_sse, streamed_text, TestServer, TestUser},
};

const WIRES: [(Wire, &str); 4] = [
    (Wire::OpenAi, "openai"),
    (Wire::Gemini, "gemini"),
    (Wire::Anthropic, "anthropic"),
    (Wire::Ollama, "ollama"),
];

/// A server with all four providers, each pointed at its own fake.
async fn rig() -> (TestServer, Vec<FakeUpstream>) {
    let mut fakes = Vec::new();
    for (wire, _) in WIRES {
        fakes.push(FakeUpstream::start(wire).await);
    }
    let flags = [
        "--openai-api-key",
        "sk-test",
        "--openai-base-url",
        &fakes[0].base_url,
        "--gemini-api-key",
        "gm-test",
        "--gemini-base-url",
        &fakes[1].base_url,
        "--anthropic-api-key",
        "ant-test",
        "--anthropic-base-url",
        &fakes[2].base_url,
        "--ollama-host",
        &fakes[3].base_url,
    ];
    (TestServer::start_with(&flags).await, fakes)
}

/// The system prompt as the last request to `fake` carried it, read the way `wire` puts it.
fn sent_system_prompt(wire: Wire, fake: &FakeUpstream) -> Option<String> {
    let requests = fake.requests();
    let body = &requests.last().expect("a request upstream").body;
    let text = match wire {
        Wire::OpenAi | Wire::Ollama => {
            let first = &body["messages"][0];
            (first["role"] == "system").then(|| first["content"].clone())
        }
        Wire::Anthropic => {
            let messages = body["messages"].as_array().unwrap();
            assert!(messages.iter().all(|m| m["role"] != "system"), "{body}");
            Some(body["system"].clone())
        }
        Wire::Gemini => {
            let contents = body["contents"].as_array().unwrap();
            assert!(contents.iter().all(|c| c["role"] != "system"), "{body}");
            Some(body["systemInstruction"]["parts"][0]["text"].clone())
        }
    };
    text.and_then(|t| t.as_str().map(str::to_owned))
}

async fn turn(server: &TestServer, user: &TestUser, session: &Value, provider: &str) {
    let response = server
        .chat(
            user,
            json!({ "session_id": session["id"], "prompt": "Hi", "provider": provider }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{provider}");
    assert!(!streamed_text(&read_sse(response).await).is_empty());
}

#[tokio::test]
async fn the_system_prompt_goes_upstream_in_each_providers_form() {
    let (server, fakes) = rig().await;
    let user = server.user().await;
    let response = server
        .post(&user, "/sessions")
        .json(&json!({ "title": "Terse", "system_prompt": "  You are terse.  " }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let session: Value = response.json().await.unwrap();
    assert_eq!(session["system_prompt"], "You are terse.");
    let id = session["id"].as_str().unwrap();
    let shown: Value = server.get_json(&user, &format!("/sessions/{id}")).await;
    assert_eq!(shown["system_prompt"], "You are terse.");

    for ((wire, provider), fake) in WIRES.iter().zip(&fakes) {
        turn(&server, &user, &session, provider).await;
        assert_eq!(
            sent_system_prompt(*wire, fake).as_deref(),
            Some("You are terse."),
            "{provider}"
        );
    }

    // A change applies to the next turn, and the title stays.
    let response = server
        .put(&user, &format!("/sessions/{id}"))
        .json(&json!({ "system_prompt": "Answer in French." }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let changed: Value = response.json().await.unwrap();
    assert_eq!(changed["system_prompt"], "Answer in French.");
    assert_eq!(changed["title"], "Terse");
    for ((wire, provider), fake) in WIRES.iter().zip(&fakes) {
        turn(&server, &user, &session, provider).await;
        assert_eq!(
            sent_system_prompt(*wire, fake).as_deref(),
            Some("Answer in French."),
            "{provider}"
        );
    }

    // Removed with null: nothing goes upstream, and GET shows the spec's shape again.
    let response = server
        .put(&user, &format!("/sessions/{id}"))
        .json(&json!({ "system_prompt": null }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let shown: Value = server.get_json(&user, &format!("/sessions/{id}")).await;
    assert!(shown.get("system_prompt").is_none(), "{shown}");
    let (openai, fake) = (WIRES[0].1, &fakes[0]);
    turn(&server, &user, &session, openai).await;
    let requests = fake.requests();
    let messages = requests.last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        messages.iter().all(|m| m["role"] != "system"),
        "{messages:?}"
    );
    // Renaming alone keeps the prompt state as it is.
    let response = server
        .put(&user, &format!("/sessions/{id}"))
        .json(&json!({ "title": "Renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn system_prompts_are_bounded_and_puts_need_a_field() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let long = "x".repeat(16_001);
    let response = server
        .post(&user, "/sessions")
        .json(&json!({ "system_prompt": long }))
        .send()
        .await
        .unwrap();
    let detail = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(detail.contains("system_prompt"), "{detail}");
    let at_cap = server
        .post(&user, "/sessions")
        .json(&json!({ "system_prompt": "y".repeat(16_000) }))
        .send()
        .await
        .unwrap();
    assert_eq!(at_cap.status(), StatusCode::OK);
    let session: Value = at_cap.json().await.unwrap();
    let path = format!("/sessions/{}", session["id"].as_str().unwrap());
    // Nothing to change changes nothing: the session comes back as it is.
    let unchanged = server
        .put(&user, &path)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), StatusCode::OK);
    let unchanged: Value = unchanged.json().await.unwrap();
    assert_eq!(unchanged["system_prompt"].as_str().unwrap().len(), 16_000);
    assert_eq!(unchanged["title"], session["title"]);
    for (body, status) in [
        (
            json!({ "system_prompt": long }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "system_prompt": 7 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({ "prompt": "x" }), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let response = server.put(&user, &path).json(&body).send().await.unwrap();
        expect_error(response, status).await;
    }
    let shown: Value = server.get_json(&user, &path).await;
    assert_eq!(shown["system_prompt"].as_str().unwrap().len(), 16_000);
}

#[tokio::test]
async fn a_prompt_changed_on_one_node_is_sent_by_the_other() {
    let fake = FakeUpstream::start(Wire::OpenAi).await;
    let flags = [
        "--openai-api-key",
        "sk-test",
        "--openai-base-url",
        &fake.base_url,
    ];
    let Some((a, b)) = crate::support::two_nodes(&flags).await else {
        return;
    };
    let user = a.user().await;
    let session = a.session(&user, "Two nodes").await;
    // A holds the session (and its empty system prompt) in memory after a turn.
    turn(&a, &user, &session, "openai").await;
    assert_eq!(sent_system_prompt(Wire::OpenAi, &fake), None);
    let response = b
        .put(
            &user,
            &format!("/sessions/{}", session["id"].as_str().unwrap()),
        )
        .json(&json!({ "system_prompt": "Set on B." }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    turn(&a, &user, &session, "openai").await;
    assert_eq!(
        sent_system_prompt(Wire::OpenAi, &fake).as_deref(),
        Some("Set on B.")
    );
}
