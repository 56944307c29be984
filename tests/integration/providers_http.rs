//! Issue 3 through the real HTTP interface: each provider against its fake upstream, driven by
//! `POST /chat/stream` and checked by what a client sees (the stream, `GET /sessions/{id}`,
//! `GET /providers`) and by exactly what went upstream, including every fault mode.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::{
    fake_upstream::{FakeUpstream, Fault, RecordedRequest, Wire},
    support::{expect_error, read_sse, streamed_text, SseEvent, TestServer, TestUser},
};

const WIRES: [Wire; 4] = [Wire::OpenAi, Wire::Gemini, Wire::Anthropic, Wire::Ollama];

/// What the fakes stream unless told otherwise: four deltas, a split-prone UTF-8 mix.
const DEFAULT_REPLY: &str = "Hello, wörld 😀";
/// The first half of the default reply: what a fault mid-stream leaves.
const HALF_REPLY: &str = "Hello,";

const OPENAI_KEY: &str = "sk-test-openai";
const GEMINI_KEY: &str = "gm-test-gemini";
const ANTHROPIC_KEY: &str = "ant-test-anthropic";

fn name(wire: Wire) -> &'static str {
    match wire {
        Wire::OpenAi => "openai",
        Wire::Gemini => "gemini",
        Wire::Anthropic => "anthropic",
        Wire::Ollama => "ollama",
    }
}

/// The flags that point the server at `fake` for its wire, with a key where one is needed.
fn provider_flags(wire: Wire, fake: &FakeUpstream) -> Vec<String> {
    let flags = match wire {
        Wire::OpenAi => vec![
            "--openai-api-key",
            OPENAI_KEY,
            "--openai-base-url",
            &fake.base_url,
        ],
        Wire::Gemini => vec![
            "--gemini-api-key",
            GEMINI_KEY,
            "--gemini-base-url",
            &fake.base_url,
        ],
        Wire::Anthropic => vec![
            "--anthropic-api-key",
            ANTHROPIC_KEY,
            "--anthropic-base-url",
            &fake.base_url,
        ],
        Wire::Ollama => vec!["--ollama-host", &fake.base_url],
    };
    flags.into_iter().map(str::to_owned).collect()
}

/// One server configured with all four providers, each pointed at its own fake.
struct Rig {
    server: TestServer,
    fakes: Vec<(Wire, FakeUpstream)>,
}

impl Rig {
    /// Retries pause about a millisecond, so retry paths cost no wall time.
    async fn start(extra: &[&str]) -> Rig {
        let mut fakes = Vec::new();
        for wire in WIRES {
            fakes.push((wire, FakeUpstream::start(wire).await));
        }
        let mut flags: Vec<String> = fakes
            .iter()
            .flat_map(|(wire, fake)| provider_flags(*wire, fake))
            .collect();
        flags.extend(["--upstream-retry-base-delay-ms", "1"].map(str::to_owned));
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Rig {
            server: TestServer::start_with(&flags).await,
            fakes,
        }
    }

    fn fake(&self, wire: Wire) -> &FakeUpstream {
        self.fakes
            .iter()
            .find(|(w, _)| *w == wire)
            .map(|(_, fake)| fake)
            .expect("a fake per wire")
    }

    /// A new session of `user`'s; returns its id.
    async fn new_session(&self, user: &TestUser) -> String {
        let session = self.server.session(user, "Provider test").await;
        session["id"].as_str().expect("session id").to_owned()
    }

    /// `POST /chat/stream` naming the provider of `wire` (and `model` when given).
    async fn chat(
        &self,
        user: &TestUser,
        session_id: &str,
        wire: Wire,
        prompt: &str,
        model: Option<&str>,
    ) -> Response {
        let mut body =
            json!({ "session_id": session_id, "prompt": prompt, "provider": name(wire) });
        if let Some(model) = model {
            body["model"] = json!(model);
        }
        self.server.chat(user, body).await
    }

    /// `GET /sessions/{id}`'s messages.
    async fn messages(&self, user: &TestUser, session_id: &str) -> Vec<Value> {
        let response = self
            .server
            .get(user, &format!("/sessions/{session_id}"))
            .send()
            .await
            .expect("get session");
        assert_eq!(response.status(), StatusCode::OK);
        let detail: Value = response.json().await.expect("session json");
        detail["messages"].as_array().expect("messages").clone()
    }

    /// `GET /providers` as `(name, default_model)` pairs.
    async fn providers(&self, user: &TestUser) -> Vec<(String, String)> {
        provider_list(&self.server, user).await
    }

    /// After a fault: the server answers `/healthz`, the echo provider still chats, and the
    /// provider that failed streams a whole answer again once its upstream behaves.
    async fn assert_healthy_after(&self, user: &TestUser, wire: Wire) {
        let health = self
            .server
            .client
            .get(self.server.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status(), StatusCode::OK, "{wire:?}: /healthz");

        let session = self.new_session(user).await;
        let echo = self
            .server
            .chat(
                user,
                json!({ "session_id": session, "prompt": "still alive", "provider": "echo" }),
            )
            .await;
        assert_eq!(
            echo.status(),
            StatusCode::OK,
            "{wire:?}: echo after a fault"
        );
        assert_eq!(streamed_text(&read_sse(echo).await), "still alive");

        self.fake(wire).set_fault(Fault::None);
        let again = self.chat(user, &session, wire, "once more", None).await;
        assert_eq!(again.status(), StatusCode::OK, "{wire:?}: recovered");
        let events = read_sse(again).await;
        assert_eq!(streamed_text(&events), DEFAULT_REPLY, "{wire:?}: recovered");
        assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    }
}

async fn provider_list(server: &TestServer, user: &TestUser) -> Vec<(String, String)> {
    let response = server.get(user, "/providers").send().await.expect("list");
    assert_eq!(response.status(), StatusCode::OK);
    let list: Value = response.json().await.expect("providers json");
    list.as_array()
        .expect("an array")
        .iter()
        .map(|p| {
            let field = |key: &str| p[key].as_str().expect("string field").to_owned();
            (field("name"), field("default_model"))
        })
        .collect()
}

/// The auth header each provider expects, with the key the rig configured.
fn assert_auth(wire: Wire, request: &RecordedRequest) {
    match wire {
        Wire::OpenAi => assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {OPENAI_KEY}").as_str())
        ),
        Wire::Gemini => {
            assert_eq!(request.header("x-goog-api-key"), Some(GEMINI_KEY));
            assert_eq!(request.header("authorization"), None);
        }
        Wire::Anthropic => {
            assert_eq!(request.header("x-api-key"), Some(ANTHROPIC_KEY));
            assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
            assert_eq!(request.header("authorization"), None);
        }
        Wire::Ollama => assert_eq!(request.header("authorization"), None),
    }
}

/// The path a request for `model` takes, and the model as the request names it.
fn assert_route(wire: Wire, request: &RecordedRequest, model: &str) {
    assert_eq!(request.method, "POST");
    match wire {
        Wire::OpenAi => assert_eq!(request.path, "/v1/chat/completions"),
        Wire::Gemini => assert_eq!(
            request.path,
            format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
        ),
        Wire::Anthropic => assert_eq!(request.path, "/v1/messages"),
        Wire::Ollama => assert_eq!(request.path, "/api/chat"),
    }
    if wire != Wire::Gemini {
        assert_eq!(request.body["model"], model, "{wire:?}");
        assert_eq!(request.body["stream"], true, "{wire:?}");
    }
}

/// `turns` (user, assistant, user, …) in the provider's own request shape, and nothing else.
fn assert_conversation(wire: Wire, body: &Value, turns: &[&str]) {
    let role = |index: usize| {
        let user = index.is_multiple_of(2);
        match wire {
            Wire::Gemini if !user => "model",
            _ if user => "user",
            _ => "assistant",
        }
    };
    match wire {
        Wire::OpenAi | Wire::Ollama | Wire::Anthropic => {
            let expected: Vec<Value> = turns
                .iter()
                .enumerate()
                .map(|(i, text)| json!({ "role": role(i), "content": text }))
                .collect();
            assert_eq!(body["messages"], json!(expected), "{wire:?}");
        }
        Wire::Gemini => {
            let expected: Vec<Value> = turns
                .iter()
                .enumerate()
                .map(|(i, text)| json!({ "role": role(i), "parts": [{ "text": text }] }))
                .collect();
            assert_eq!(body["contents"], json!(expected), "{wire:?}");
            assert!(body.get("messages").is_none(), "{body}");
        }
    }
    match wire {
        Wire::OpenAi => assert_eq!(body["stream_options"]["include_usage"], true),
        Wire::Anthropic => {
            assert!(body["max_tokens"].as_u64().is_some_and(|n| n > 0), "{body}");
            assert!(body.get("system").is_none(), "no empty system: {body}");
        }
        Wire::Gemini => assert!(body.get("systemInstruction").is_none(), "{body}"),
        Wire::Ollama => {}
    }
}

fn finish_reason(wire: Wire) -> &'static str {
    match wire {
        Wire::Anthropic => "end_turn",
        _ => "stop",
    }
}

/// The `{"error": {"message", "code"}}` event that ends a failed stream, just before `[DONE]`.
fn stream_error(events: &[SseEvent]) -> Value {
    assert!(events.len() >= 2, "{events:?}");
    assert_eq!(events[events.len() - 1].data, "[DONE]", "{events:?}");
    let error: Value =
        serde_json::from_str(&events[events.len() - 2].data).expect("error event is JSON");
    assert!(error["error"]["message"].is_string(), "{error}");
    assert!(error["error"]["code"].is_string(), "{error}");
    error["error"].clone()
}

fn assistant(messages: &[Value], wire: Wire) -> &Value {
    let last = messages.last().expect("an answer");
    assert_eq!(last["role"], "assistant", "{wire:?}: {messages:?}");
    assert_eq!(last["provider"], name(wire), "{wire:?}");
    last
}

#[tokio::test]
async fn two_turn_conversation_through_every_provider() {
    let rig = Rig::start(&[]).await;
    let user = rig.server.user().await;
    let defaults = rig.providers(&user).await;
    for wire in WIRES {
        let fake = rig.fake(wire);
        let session = rig.new_session(&user).await;
        let default_model = &defaults
            .iter()
            .find(|(n, _)| n == name(wire))
            .expect("listed")
            .1;
        let chosen_model = format!("{}-chosen-model", name(wire));

        // Turn 1: an explicit model.
        fake.set_reply(["Hello", ",", " wörld", " 😀"].map(String::from).to_vec());
        let first = rig
            .chat(&user, &session, wire, "Tell me a joke", Some(&chosen_model))
            .await;
        assert_eq!(first.status(), StatusCode::OK, "{wire:?}");
        let events = read_sse(first).await;
        assert_eq!(streamed_text(&events), DEFAULT_REPLY, "{wire:?}");
        assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));

        // Turn 2: no model, so the provider's default.
        fake.set_reply(["Why", " not", "?"].map(String::from).to_vec());
        let second = rig
            .chat(&user, &session, wire, "And another one please", None)
            .await;
        assert_eq!(second.status(), StatusCode::OK, "{wire:?}");
        let events = read_sse(second).await;
        assert_eq!(streamed_text(&events), "Why not?", "{wire:?}");
        assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));

        // The stored history, oldest first. The fakes count whitespace-separated words of the
        // request's texts as prompt tokens and one token per delta.
        let messages = rig.messages(&user, &session).await;
        let shape: Vec<(&str, &str)> = messages
            .iter()
            .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        assert_eq!(
            shape,
            [
                ("user", "Tell me a joke"),
                ("assistant", DEFAULT_REPLY),
                ("user", "And another one please"),
                ("assistant", "Why not?"),
            ],
            "{wire:?}"
        );
        for (answer, model, prompt_tokens, completion_tokens) in [
            (&messages[1], chosen_model.as_str(), 4, 4),
            (&messages[3], default_model.as_str(), 4 + 3 + 4, 3),
        ] {
            assert_eq!(answer["status"], "complete", "{wire:?}");
            assert_eq!(answer["provider"], name(wire), "{wire:?}");
            assert_eq!(answer["model"], model, "{wire:?}");
            assert_eq!(answer["finish_reason"], finish_reason(wire), "{wire:?}");
            assert_eq!(
                answer["usage"],
                json!({ "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                        "estimated": false }),
                "{wire:?}"
            );
        }
        for question in [&messages[0], &messages[2]] {
            assert!(question.get("status").is_none(), "{question}");
        }

        // Exactly what went upstream.
        let requests = fake.requests();
        assert_eq!(requests.len(), 2, "{wire:?}: one request per turn");
        assert_route(wire, &requests[0], &chosen_model);
        assert_conversation(wire, &requests[0].body, &["Tell me a joke"]);
        let turn2 = &requests[1];
        assert_route(wire, turn2, default_model);
        assert_auth(wire, turn2);
        assert_conversation(
            wire,
            &turn2.body,
            &["Tell me a joke", DEFAULT_REPLY, "And another one please"],
        );
        assert_eq!(
            turn2
                .body
                .to_string()
                .matches("And another one please")
                .count(),
            1,
            "{wire:?}: the new prompt goes up once"
        );
    }
}

#[tokio::test]
async fn upstream_auth_failure_is_a_502_naming_the_provider() {
    let rig = Rig::start(&[]).await;
    let user = rig.server.user().await;
    for wire in WIRES {
        let fake = rig.fake(wire);
        fake.set_fault(Fault::Status(401, None));
        let session = rig.new_session(&user).await;
        let response = rig.chat(&user, &session, wire, "hi", None).await;
        let detail = expect_error(response, StatusCode::BAD_GATEWAY).await;
        assert!(detail.contains(name(wire)), "{wire:?}: {detail}");
        assert!(
            detail.contains("fake upstream error 401"),
            "the provider's own message: {detail}"
        );
        for key in [OPENAI_KEY, GEMINI_KEY, ANTHROPIC_KEY] {
            assert!(!detail.contains(key), "no key in the detail: {detail}");
        }
        assert_eq!(fake.requests().len(), 1, "{wire:?}: a 401 is not retried");
        let messages = rig.messages(&user, &session).await;
        assert_eq!(messages[0]["content"], "hi");
        let answer = assistant(&messages, wire);
        assert_eq!(answer["status"], "error");
        assert_eq!(answer["content"], "");
        rig.assert_healthy_after(&user, wire).await;
    }
}

#[tokio::test]
async fn upstream_rate_limit_is_a_429_with_retry_after() {
    let rig = Rig::start(&[]).await;
    let user = rig.server.user().await;
    for wire in WIRES {
        let fake = rig.fake(wire);
        // Longer than the server waits for itself (8 s): passed on at once.
        fake.set_fault(Fault::Status(429, Some(30)));
        let session = rig.new_session(&user).await;
        let response = rig.chat(&user, &session, wire, "hi", None).await;
        let retry_after = response.headers().get("retry-after").cloned();
        let detail = expect_error(response, StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(
            retry_after.as_ref().and_then(|v| v.to_str().ok()),
            Some("30"),
            "{wire:?}: the upstream's Retry-After is passed on"
        );
        assert!(detail.contains(name(wire)), "{wire:?}: {detail}");
        // The provider's limit, told apart from the user's own quota.
        assert!(
            detail.contains("provider is rate limiting"),
            "{wire:?}: {detail}"
        );
        assert!(detail.contains("not your own quota"), "{wire:?}: {detail}");
        assert_eq!(fake.requests().len(), 1, "{wire:?}");
        rig.assert_healthy_after(&user, wire).await;
    }
}

#[tokio::test]
async fn upstream_5xx_is_retried_then_a_502() {
    let rig = Rig::start(&["--upstream-max-retries", "2"]).await;
    let user = rig.server.user().await;
    for wire in WIRES {
        let fake = rig.fake(wire);
        for status in [500, 503] {
            let before = fake.requests().len();
            fake.set_fault(Fault::Status(status, None));
            let session = rig.new_session(&user).await;
            let response = rig.chat(&user, &session, wire, "hi", None).await;
            let detail = expect_error(response, StatusCode::BAD_GATEWAY).await;
            assert!(detail.contains(name(wire)), "{wire:?}: {detail}");
            assert!(detail.contains(&status.to_string()), "{wire:?}: {detail}");
            assert_eq!(
                fake.requests().len() - before,
                3,
                "{wire:?} {status}: one try and two retries"
            );
            let answer = assistant(&rig.messages(&user, &session).await, wire).clone();
            assert_eq!(answer["status"], "error");
            rig.assert_healthy_after(&user, wire).await;
        }
    }
}

#[tokio::test]
async fn a_5xx_that_clears_within_the_retries_streams_normally() {
    let rig = Rig::start(&["--upstream-max-retries", "2"]).await;
    let user = rig.server.user().await;
    for wire in WIRES {
        let fake = rig.fake(wire);
        fake.set_fault(Fault::StatusThenOk {
            times: 2,
            status: 503,
        });
        let session = rig.new_session(&user).await;
        let response = rig.chat(&user, &session, wire, "hi", None).await;
        assert_eq!(response.status(), StatusCode::OK, "{wire:?}");
        let events = read_sse(response).await;
        assert_eq!(streamed_text(&events), DEFAULT_REPLY, "{wire:?}");
        assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
        assert_eq!(fake.requests().len(), 3, "{wire:?}: two failures, then ok");
        let messages = rig.messages(&user, &session).await;
        let answer = assistant(&messages, wire);
        assert_eq!(answer["status"], "complete");
        assert_eq!(answer["content"], DEFAULT_REPLY);
    }
}

#[tokio::test]
async fn a_slow_first_byte_is_a_504() {
    let rig = Rig::start(&["--upstream-first-byte-timeout-secs", "1"]).await;
    let user = rig.server.user().await;
    // The wires run side by side: each waits out the same one-second timeout.
    let (rig, user) = (&rig, &user);
    join_all(WIRES.map(|wire| async move {
        rig.fake(wire)
            .set_fault(Fault::SlowFirstByte(Duration::from_secs(4)));
        let session = rig.new_session(user).await;
        let started = Instant::now();
        let response = rig.chat(user, &session, wire, "hi", None).await;
        let detail = expect_error(response, StatusCode::GATEWAY_TIMEOUT).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{wire:?}: answered at the timeout, not when the upstream woke: {:?}",
            started.elapsed()
        );
        assert!(detail.contains(name(wire)), "{wire:?}: {detail}");
        assert_eq!(rig.fake(wire).requests().len(), 1, "{wire:?}: not retried");
        rig.assert_healthy_after(user, wire).await;
    }))
    .await;
}

#[tokio::test]
async fn failures_after_the_first_token_end_the_stream_with_an_error() {
    let rig = Rig::start(&["--upstream-idle-timeout-secs", "1"]).await;
    let user = rig.server.user().await;
    let (rig, user) = (&rig, &user);
    join_all(WIRES.map(|wire| async move {
        let fake = rig.fake(wire);
        for (fault, code) in [
            (Fault::MidStreamError, "upstream_error"),
            (Fault::AbruptClose, "upstream_closed"),
            (Fault::Stall, "upstream_stall"),
        ] {
            fake.set_fault(fault.clone());
            let session = rig.new_session(user).await;
            let response = rig.chat(user, &session, wire, "hi", None).await;
            assert_eq!(response.status(), StatusCode::OK, "{wire:?} {fault:?}");
            let events = read_sse(response).await;
            assert_eq!(streamed_text(&events), HALF_REPLY, "{wire:?} {fault:?}");
            let error = stream_error(&events);
            assert_eq!(error["code"], code, "{wire:?} {fault:?}: {error}");
            assert!(
                error["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(name(wire))),
                "{wire:?} {fault:?}: {error}"
            );

            let messages = rig.messages(user, &session).await;
            let answer = assistant(&messages, wire);
            assert_eq!(answer["content"], HALF_REPLY, "{wire:?} {fault:?}");
            assert_eq!(answer["status"], "error", "{wire:?} {fault:?}");

            // The upstream connection is not left open behind the ended stream.
            let deadline = Instant::now() + Duration::from_secs(5);
            while fake.open_streams() > 0 {
                assert!(Instant::now() < deadline, "{wire:?} {fault:?}: still open");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            rig.assert_healthy_after(user, wire).await;
        }
    }))
    .await;
}

#[tokio::test]
async fn a_gemini_safety_block_is_a_visible_error() {
    let rig = Rig::start(&[]).await;
    let user = rig.server.user().await;
    rig.fake(Wire::Gemini).set_fault(Fault::SafetyBlock);
    let session = rig.new_session(&user).await;
    let response = rig
        .chat(&user, &session, Wire::Gemini, "something risky", None)
        .await;
    // Blocked before any text, so the client gets a status rather than an empty stream.
    let detail = expect_error(response, StatusCode::BAD_GATEWAY).await;
    assert!(
        detail.contains("gemini") && detail.contains("SAFETY"),
        "says who blocked it and why: {detail}"
    );
    let messages = rig.messages(&user, &session).await;
    let answer = assistant(&messages, Wire::Gemini);
    assert_eq!(answer["status"], "error");
    assert_eq!(answer["content"], "");
    rig.assert_healthy_after(&user, Wire::Gemini).await;
}

#[tokio::test]
async fn a_provider_without_a_key_is_refused_naming_the_variable() {
    // Base URLs point at fakes, but no key is set: nothing may go upstream.
    let fakes = join_all(WIRES.map(FakeUpstream::start)).await;
    let server = TestServer::start_with(&[
        "--openai-base-url",
        &fakes[0].base_url,
        "--gemini-base-url",
        &fakes[1].base_url,
        "--anthropic-base-url",
        &fakes[2].base_url,
    ])
    .await;
    let user = server.user().await;
    let session = server.session(&user, "No keys").await;
    let id = session["id"].as_str().unwrap();
    for (provider, variable) in [
        ("openai", "OPENAI_API_KEY"),
        ("gemini", "GEMINI_API_KEY"),
        ("anthropic", "ANTHROPIC_API_KEY"),
    ] {
        let response = server
            .chat(
                &user,
                json!({ "session_id": id, "prompt": "hi", "provider": provider }),
            )
            .await;
        assert!(response.status().is_client_error(), "{provider}");
        let detail = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(detail.contains(variable), "{provider}: {detail}");
    }
    for fake in &fakes[..3] {
        assert!(fake.requests().is_empty(), "nothing went upstream");
    }
    let detail: Value = server.get_json(&user, &format!("/sessions/{id}")).await;
    assert_eq!(
        detail["messages"],
        json!([]),
        "refused prompts are not stored"
    );
}

#[tokio::test]
async fn providers_lists_exactly_the_configured_ones() {
    let expected_default = |provider: &str| match provider {
        "echo" => "echo-1",
        "openai" => "gpt-4o-mini",
        "gemini" => "gemini-2.0-flash",
        "anthropic" => "claude-3-5-haiku-latest",
        "ollama" => "llama3.2",
        other => panic!("unexpected provider {other}"),
    };
    let pairs = |names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), expected_default(n).to_owned()))
            .collect()
    };

    let rig = Rig::start(&[]).await;
    let user = rig.server.user().await;
    assert_eq!(
        rig.providers(&user).await,
        pairs(&["echo", "openai", "gemini", "anthropic", "ollama"])
    );
    let anonymous = rig
        .server
        .client
        .get(rig.server.url("/providers"))
        .send()
        .await
        .unwrap();
    expect_error(anonymous, StatusCode::UNAUTHORIZED).await;

    // Only Anthropic has a key: it joins the two that need none.
    let only_anthropic = TestServer::start_with(&["--anthropic-api-key", "ant-only"]).await;
    let user = only_anthropic.user().await;
    assert_eq!(
        provider_list(&only_anthropic, &user).await,
        pairs(&["echo", "anthropic", "ollama"])
    );

    let bare = TestServer::start().await;
    let user = bare.user().await;
    assert_eq!(
        provider_list(&bare, &user).await,
        pairs(&["echo", "ollama"])
    );
}
