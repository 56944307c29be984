//! The edges of a chat, through the real HTTP interface: provider errors reach clients naming
//! the provider, status and vendor error but no credential or internal host; a slow provider
//! gets the SSE headers and keep-alive comments before its first token; an account out of quota
//! is not retried (402 / `provider_quota_exhausted`) while a plain rate limit still is;
//! `POST /token` refuses other grant types; per-provider model allow-lists.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::{header, Response, StatusCode};
use serde_json::{json, Value};

use crate::{
    fake_upstream::{FakeUpstream, Fault, Wire, INTERNAL_HOST},
    support::{expect_error, parse_sse, read_sse, streamed_text, SseEvent, TestServer, TestUser},
};

const OPENAI_KEY: &str = "sk-edges-openai-secret-1";
/// Not shaped like any known credential: only the configured-key redaction can catch it.
const GEMINI_KEY: &str = "plain-gemini-edges-secret-2";
const ANTHROPIC_KEY: &str = "plain-anthropic-edges-secret-3";
const KEYS: [&str; 3] = [OPENAI_KEY, GEMINI_KEY, ANTHROPIC_KEY];

/// The wires that need a key (and so can leak one).
const KEYED: [Wire; 3] = [Wire::OpenAi, Wire::Gemini, Wire::Anthropic];

const REPLY: &str = "Hello, wörld 😀";

fn name(wire: Wire) -> &'static str {
    match wire {
        Wire::OpenAi => "openai",
        Wire::Gemini => "gemini",
        Wire::Anthropic => "anthropic",
        Wire::Ollama => "ollama",
    }
}

/// A server with every wire pointed at its own fake (keys where needed) and ~1 ms retry pauses.
struct Edge {
    server: TestServer,
    fakes: Vec<(Wire, FakeUpstream)>,
}

impl Edge {
    async fn start(extra: &[&str]) -> Edge {
        let mut fakes = Vec::new();
        for wire in [Wire::OpenAi, Wire::Gemini, Wire::Anthropic, Wire::Ollama] {
            fakes.push((wire, FakeUpstream::start(wire).await));
        }
        let mut flags: Vec<String> = Vec::new();
        for (wire, fake) in &fakes {
            let pair: &[&str] = match wire {
                Wire::OpenAi => &["--openai-api-key", OPENAI_KEY, "--openai-base-url"],
                Wire::Gemini => &["--gemini-api-key", GEMINI_KEY, "--gemini-base-url"],
                Wire::Anthropic => &["--anthropic-api-key", ANTHROPIC_KEY, "--anthropic-base-url"],
                Wire::Ollama => &["--ollama-host"],
            };
            flags.extend(pair.iter().map(|s| s.to_string()));
            flags.push(fake.base_url.clone());
        }
        flags.extend(["--upstream-retry-base-delay-ms", "1"].map(str::to_owned));
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Edge {
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

    /// `POST /chat/stream` in a new session of `user`'s; returns the response and the session id.
    async fn chat(&self, user: &TestUser, wire: Wire, model: Option<&str>) -> (Response, String) {
        let session = self.server.session(user, "Edges").await;
        let id = session["id"].as_str().expect("session id").to_owned();
        let mut body = json!({ "session_id": id, "prompt": "hi there", "provider": name(wire) });
        if let Some(model) = model {
            body["model"] = json!(model);
        }
        (self.server.chat(user, body).await, id)
    }
}

/// Asserts `text` names no configured key, no echoed credential and no internal host.
fn assert_no_leak(text: &str) {
    for key in KEYS {
        assert!(!text.contains(key), "a key leaked: {text}");
    }
    assert!(
        !text.contains(INTERNAL_HOST),
        "the internal host leaked: {text}"
    );
    assert!(
        !text.contains("Bearer sk-"),
        "a bearer token leaked: {text}"
    );
}

/// The vendor's own error type in the fake's leaky body.
fn leaky_type(wire: Wire) -> &'static str {
    match wire {
        Wire::OpenAi => "server_error",
        Wire::Gemini => "INTERNAL",
        _ => "api_error",
    }
}

/// The `{"error": …}` event just before `[DONE]`.
fn error_event(events: &[SseEvent]) -> Value {
    assert!(events.len() >= 2, "{events:?}");
    assert_eq!(events[events.len() - 1].data, "[DONE]", "{events:?}");
    let error: Value = serde_json::from_str(&events[events.len() - 2].data).expect("JSON event");
    error["error"].clone()
}

#[tokio::test]
async fn a_leaky_upstream_error_reaches_the_client_without_credentials_or_hosts() {
    // The default first-event wait (3 s): an error before it keeps its JSON status.
    let edge = Edge::start(&[]).await;
    let user = edge.server.user().await;
    for wire in KEYED {
        edge.fake(wire).set_fault(Fault::Leaky {
            status: 500,
            delay: Duration::ZERO,
        });
        let (response, _) = edge.chat(&user, wire, None).await;
        let detail = expect_error(response, StatusCode::BAD_GATEWAY).await;
        assert!(detail.contains(name(wire)), "{wire:?}: {detail}");
        assert!(detail.contains("500"), "{wire:?}: {detail}");
        assert!(detail.contains(leaky_type(wire)), "{wire:?}: {detail}");
        assert!(
            detail.contains("upstream failed while handling a request"),
            "{wire:?}: the vendor's own message: {detail}"
        );
        assert_no_leak(&detail);
        assert!(
            detail.contains("[redacted]"),
            "{wire:?}: the echoed credential is redacted, not the message dropped: {detail}"
        );
        assert!(detail.chars().count() < 450, "{wire:?}: clipped: {detail}");
        assert_eq!(edge.fake(wire).requests().len(), 3, "{wire:?}: 5xx retried");
    }
}

#[tokio::test]
async fn a_slow_first_token_gets_the_headers_and_keep_alive_comments_first() {
    let edge = Edge::start(&["--first-event-wait-ms", "200", "--sse-keep-alive-secs", "1"]).await;
    let user = edge.server.user().await;
    let upstream_delay = Duration::from_millis(2_500);
    edge.fake(Wire::OpenAi)
        .set_fault(Fault::SlowFirstByte(upstream_delay));
    let started = Instant::now();
    let (mut response, _) = edge.chat(&user, Wire::OpenAi, None).await;
    let headers_after = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        headers_after < Duration::from_millis(1_500),
        "headers come after the wait, not with the first token: {headers_after:?}"
    );
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );

    let mut body = String::new();
    let mut first_data_after = None;
    while let Some(chunk) = response.chunk().await.expect("body chunk") {
        body.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        if first_data_after.is_none() && body.contains("data: ") {
            first_data_after = Some(started.elapsed());
        }
    }
    let first_data_after = first_data_after.expect("tokens arrived");
    assert!(first_data_after >= upstream_delay, "{first_data_after:?}");
    let before_tokens = &body[..body.find("data: ").expect("a data line")];
    assert!(before_tokens.starts_with(':'), "a comment first: {body:?}");
    assert!(
        before_tokens.contains(": keep-alive\n"),
        "a keep-alive comment each second while waiting: {body:?}"
    );
    let events = parse_sse(&body);
    assert_eq!(streamed_text(&events), REPLY);
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
}

#[tokio::test]
async fn a_provider_failing_after_the_wait_ends_a_200_stream_with_an_error_event() {
    let edge = Edge::start(&[
        "--first-event-wait-ms",
        "200",
        "--sse-keep-alive-secs",
        "1",
        "--upstream-first-byte-timeout-secs",
        "1",
        "--upstream-max-retries",
        "0",
    ])
    .await;
    let user = edge.server.user().await;
    let (edge, user) = (&edge, &user);
    join_all(KEYED.map(|wire| async move {
        // A 5xx after the wait: the vendor's error, redacted, as the stream's error event.
        edge.fake(wire).set_fault(Fault::Leaky {
            status: 500,
            delay: Duration::from_millis(600),
        });
        let (response, session) = edge.chat(user, wire, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{wire:?}");
        let error = error_event(&read_sse(response).await);
        assert_eq!(error["code"], "upstream_error", "{wire:?}: {error}");
        let message = error["message"].as_str().expect("message");
        assert!(message.contains(name(wire)), "{wire:?}: {message}");
        assert!(message.contains("500"), "{wire:?}: {message}");
        assert!(message.contains(leaky_type(wire)), "{wire:?}: {message}");
        assert_no_leak(message);
        let stored: Value = edge
            .server
            .get_json(user, &format!("/sessions/{session}"))
            .await;
        assert_eq!(stored["messages"][1]["status"], "error", "{wire:?}");

        // No first byte within the upstream timeout, long after the wait.
        edge.fake(wire)
            .set_fault(Fault::SlowFirstByte(Duration::from_secs(3)));
        let (response, _) = edge.chat(user, wire, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{wire:?}");
        let events = read_sse(response).await;
        assert_eq!(streamed_text(&events), "", "{wire:?}");
        let error = error_event(&events);
        assert_eq!(error["code"], "upstream_timeout", "{wire:?}: {error}");
    }))
    .await;
}

#[tokio::test]
async fn an_exhausted_quota_is_a_402_after_a_single_request() {
    let edge = Edge::start(&["--upstream-max-retries", "2"]).await;
    let user = edge.server.user().await;
    for wire in KEYED {
        let fake = edge.fake(wire);
        fake.set_fault(Fault::QuotaExhausted {
            delay: Duration::ZERO,
        });
        let (response, _) = edge.chat(&user, wire, None).await;
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            None,
            "{wire:?}"
        );
        let detail = expect_error(response, StatusCode::PAYMENT_REQUIRED).await;
        assert!(detail.contains(name(wire)), "{wire:?}: {detail}");
        assert!(detail.contains("quota exhausted"), "{wire:?}: {detail}");
        assert_eq!(fake.requests().len(), 1, "{wire:?}: never retried");
    }
}

#[tokio::test]
async fn an_exhausted_quota_after_the_wait_is_a_provider_quota_exhausted_event() {
    let edge = Edge::start(&[
        "--first-event-wait-ms",
        "200",
        "--upstream-max-retries",
        "2",
    ])
    .await;
    let user = edge.server.user().await;
    let fake = edge.fake(Wire::OpenAi);
    fake.set_fault(Fault::QuotaExhausted {
        delay: Duration::from_millis(500),
    });
    let (response, _) = edge.chat(&user, Wire::OpenAi, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let error = error_event(&read_sse(response).await);
    assert_eq!(error["code"], "provider_quota_exhausted", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("openai") && m.contains("insufficient_quota")),
        "{error}"
    );
    assert_eq!(fake.requests().len(), 1, "never retried");
}

#[tokio::test]
async fn a_plain_rate_limit_is_still_retried() {
    let edge = Edge::start(&["--upstream-max-retries", "2"]).await;
    let user = edge.server.user().await;
    for wire in KEYED {
        let fake = edge.fake(wire);
        // Gemini's per-minute limit speaks of "quota" and "billing": still a rate limit.
        fake.set_fault(Fault::RateLimitedThenOk { times: 2 });
        let (response, _) = edge.chat(&user, wire, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{wire:?}");
        assert_eq!(streamed_text(&read_sse(response).await), REPLY, "{wire:?}");
        assert_eq!(
            fake.requests().len(),
            3,
            "{wire:?}: two 429s, then the answer"
        );

        fake.set_fault(Fault::RateLimitedThenOk { times: 100 });
        let (response, _) = edge.chat(&user, wire, None).await;
        expect_error(response, StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(
            fake.requests().len(),
            6,
            "{wire:?}: one try and two retries"
        );
    }
}

#[tokio::test]
async fn token_accepts_only_the_password_grant() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let login = |grant: &'static str| {
        server.client.post(server.url("/token")).form(&[
            ("grant_type", grant),
            ("username", user.email.as_str()),
            ("password", user.password.as_str()),
        ])
    };
    let ok = login("password").send().await.expect("login");
    assert_eq!(ok.status(), StatusCode::OK);
    let token: Value = ok.json().await.expect("token json");
    assert!(token["access_token"].is_string(), "{token}");
    for grant in ["client_credentials", "refresh_token", "PASSWORD"] {
        let refused = login(grant).send().await.expect("login");
        let detail = expect_error(refused, StatusCode::BAD_REQUEST).await;
        assert_eq!(detail, "unsupported_grant_type", "{grant}");
    }
}

#[tokio::test]
async fn models_outside_the_allow_list_are_refused_before_going_upstream() {
    let edge = Edge::start(&[
        "--openai-models",
        "gpt-4o, o3",
        "--ollama-models",
        "llama3.2",
    ])
    .await;
    let user = edge.server.user().await;
    let providers: Value = edge.server.get_json(&user, "/providers").await;
    let entry = |provider: &str| {
        providers
            .as_array()
            .expect("a list")
            .iter()
            .find(|p| p["name"] == provider)
            .cloned()
            .expect("listed")
    };
    // The built-in default (gpt-4o-mini) is not allowed, so the first listed model replaces it.
    assert_eq!(
        entry("openai"),
        json!({"name": "openai", "default_model": "gpt-4o", "models": ["gpt-4o", "o3"], "reachable": true})
    );
    assert_eq!(
        entry("ollama"),
        json!({"name": "ollama", "default_model": "llama3.2", "models": ["llama3.2"], "reachable": true})
    );
    assert_eq!(entry("gemini")["models"], json!([]), "no list: any model");

    let openai = edge.fake(Wire::OpenAi);
    let (response, session) = edge.chat(&user, Wire::OpenAi, Some("gpt-4o-mini")).await;
    let detail = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        detail.contains("gpt-4o-mini") && detail.contains("gpt-4o, o3"),
        "{detail}"
    );
    assert!(openai.requests().is_empty(), "nothing went upstream");
    let stored: Value = edge
        .server
        .get_json(&user, &format!("/sessions/{session}"))
        .await;
    assert_eq!(
        stored["messages"],
        json!([]),
        "the refused prompt is not stored"
    );
    let (response, _) = edge.chat(&user, Wire::Ollama, Some("mistral")).await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;

    let (response, _) = edge.chat(&user, Wire::OpenAi, Some("o3")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(streamed_text(&read_sse(response).await), REPLY);
    let (response, session) = edge.chat(&user, Wire::OpenAi, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    read_sse(response).await;
    let sent: Vec<Value> = openai
        .requests()
        .iter()
        .map(|r| r.body["model"].clone())
        .collect();
    assert_eq!(sent, [json!("o3"), json!("gpt-4o")]);
    let stored: Value = edge
        .server
        .get_json(&user, &format!("/sessions/{session}"))
        .await;
    assert_eq!(stored["messages"][1]["model"], "gpt-4o");
    // Gemini has no list: any model goes.
    let (response, _) = edge
        .chat(&user, Wire::Gemini, Some("gemini-anything"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}
