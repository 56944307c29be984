//! The load-testing tools: the mock upstream answering every wire format on one address, and the
//! load generator run as a library against an in-process server and against the mock directly.

use std::time::{Duration, Instant};

use clap::Parser;
use omnichat::{
    config::{Cli, Command},
    loadtest::{self, LoadtestError, Plan, Summary},
    mock_upstream::{reply_of, Fault, MockSettings, MockUpstream, Wire},
};
use serde_json::{json, Value};

use crate::support::TestServer;

const TOKENS: usize = 7;

async fn mock(settings: MockSettings) -> MockUpstream {
    MockUpstream::start(([127, 0, 0, 1], 0).into(), settings)
        .await
        .expect("mock starts")
}

/// The request each wire format expects, with its path.
fn request_for(wire: Wire) -> (&'static str, Value) {
    let messages = json!([{"role": "user", "content": "hello there"}]);
    match wire {
        Wire::OpenAi => (
            "/v1/chat/completions",
            json!({"model": "m", "messages": messages, "stream": true,
                   "stream_options": {"include_usage": true}}),
        ),
        Wire::Gemini => (
            "/v1beta/models/m:streamGenerateContent?alt=sse",
            json!({"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}),
        ),
        Wire::Anthropic => (
            "/v1/messages",
            json!({"model": "m", "messages": messages, "stream": true, "max_tokens": 100}),
        ),
        Wire::Ollama => ("/api/chat", json!({"model": "m", "messages": messages})),
    }
}

/// The JSON payloads of an SSE or NDJSON body.
fn payloads(body: &str) -> Vec<Value> {
    body.lines()
        .map(|line| line.strip_prefix("data: ").unwrap_or(line))
        .filter_map(|data| serde_json::from_str(data).ok())
        .collect()
}

/// The text pieces of a streamed reply, as the wire format carries them.
fn texts(wire: Wire, body: &str) -> Vec<String> {
    let text = |value: &Value| value.as_str().map(str::to_owned);
    payloads(body)
        .iter()
        .filter_map(|p| match wire {
            Wire::OpenAi => text(&p["choices"][0]["delta"]["content"]),
            Wire::Gemini => text(&p["candidates"][0]["content"]["parts"][0]["text"]),
            Wire::Anthropic => text(&p["delta"]["text"]),
            Wire::Ollama => text(&p["message"]["content"]),
        })
        .filter(|t| !t.is_empty())
        .collect()
}

#[tokio::test]
async fn mock_upstream_streams_the_configured_tokens_in_every_wire_format_on_one_address() {
    let mock = mock(MockSettings {
        reply: reply_of(TOKENS),
        ..MockSettings::default()
    })
    .await;
    let client = reqwest::Client::new();
    for wire in [Wire::OpenAi, Wire::Gemini, Wire::Anthropic, Wire::Ollama] {
        let (path, body) = request_for(wire);
        let response = client
            .post(format!("http://{}{path}", mock.addr()))
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{wire:?}");
        let body = response.text().await.expect("body");
        let pieces = texts(wire, &body);
        assert_eq!(pieces.len(), TOKENS, "{wire:?}: {body}");
        assert_eq!(pieces.concat(), reply_of(TOKENS).concat(), "{wire:?}");
        let all = payloads(&body);
        match wire {
            Wire::OpenAi => {
                assert!(body.ends_with("data: [DONE]\n\n"));
                let usage = all.iter().find(|p| p["usage"].is_object()).expect("usage");
                assert_eq!(usage["usage"]["completion_tokens"], TOKENS);
            }
            Wire::Gemini => assert_eq!(
                all.last().expect("frames")["candidates"][0]["finishReason"],
                "STOP"
            ),
            Wire::Anthropic => {
                assert!(body.contains("event: message_start\n"));
                assert!(
                    body.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
                );
            }
            Wire::Ollama => assert_eq!(all.last().expect("lines")["done"], true),
        }
    }
    let unknown = client
        .post(format!("http://{}/v2/else", mock.addr()))
        .send()
        .await
        .expect("request");
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn mock_upstream_paces_its_first_token_and_spreads_faults_by_rate() {
    let mock = mock(MockSettings {
        ttft: Duration::from_millis(150),
        fault: Fault::Status(503, None),
        fault_rate: 0.5,
        ..MockSettings::default()
    })
    .await;
    let client = reqwest::Client::new();
    let (path, body) = request_for(Wire::OpenAi);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let started = Instant::now();
        let response = client
            .post(format!("http://{}{path}", mock.addr()))
            .json(&body)
            .send()
            .await
            .expect("request");
        statuses.push(response.status().as_u16());
        if response.status() == 200 {
            let body = response.text().await.expect("body");
            assert_eq!(texts(Wire::OpenAi, &body).len(), 20, "the default length");
            assert!(started.elapsed() >= Duration::from_millis(150));
        }
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 503, 503]);
}

/// The plan `omnichat loadtest <flags>` makes, without progress lines.
fn plan(flags: &[&str]) -> Result<Plan, LoadtestError> {
    let args = ["omnichat", "loadtest"].iter().chain(flags);
    let cli = Cli::try_parse_from(args).expect("flags parse");
    let Some(Command::Loadtest(args)) = cli.command else {
        panic!("not the loadtest command");
    };
    let mut plan = args.plan()?;
    plan.progress = false;
    Ok(plan)
}

async fn run(flags: &[&str]) -> Summary {
    let plan = plan(flags).expect("a valid plan");
    loadtest::run(&plan).await.expect("the load test runs")
}

#[tokio::test]
async fn loadtest_counts_every_turn_through_omnichat_and_against_the_mock_directly() {
    let mock = mock(MockSettings::default()).await;
    let upstream = mock.base_url(Wire::OpenAi);
    let server =
        TestServer::start_with(&["--openai-api-key", "x", "--openai-base-url", &upstream]).await;
    let through = run(&[
        "--url",
        &server.base,
        "--concurrency",
        "2",
        "--users",
        "1",
        "--turns",
        "6",
        "--turns-per-session",
        "2",
    ])
    .await;
    assert_eq!((through.turns, through.errors), (6, 0), "{through:?}");
    assert_eq!(through.target, "omnichat");
    assert!(through.first_token_ms.p50.is_some() && through.total_ms.p99.is_some());
    assert!(through.first_token_p50_ms_turns_1_10.is_some());
    assert!(through.turns_per_sec > 0.0);

    let direct = run(&[
        "--direct-upstream",
        &upstream,
        "--concurrency",
        "3",
        "--turns",
        "9",
    ])
    .await;
    assert_eq!((direct.turns, direct.errors), (9, 0), "{direct:?}");
    assert_eq!(direct.target, "direct");
}

#[tokio::test]
async fn loadtest_sorts_errors_by_kind() {
    let mock = mock(MockSettings {
        fault: Fault::Status(503, None),
        ..MockSettings::default()
    })
    .await;
    let upstream = mock.base_url(Wire::OpenAi);
    let failed = run(&["--direct-upstream", &upstream, "--turns", "2"]).await;
    assert_eq!(failed.turns, 0);
    assert_eq!(failed.errors_by_kind.get("http_503"), Some(&2));

    mock.set_fault(Fault::MidStreamError);
    let server =
        TestServer::start_with(&["--openai-api-key", "x", "--openai-base-url", &upstream]).await;
    let cut = run(&["--url", &server.base, "--turns", "1"]).await;
    assert_eq!((cut.turns, cut.errors), (0, 1), "{cut:?}");
    let kind = cut.errors_by_kind.keys().next().expect("one kind");
    assert!(kind.starts_with("sse_"), "{kind}");

    let nobody = run(&["--direct-upstream", "http://127.0.0.1:9", "--turns", "1"]).await;
    assert_eq!(nobody.errors_by_kind.get("connect"), Some(&1));
}

#[tokio::test]
async fn loadtest_holds_streams_open_and_counts_their_events() {
    let mock = mock(MockSettings {
        gap: Duration::from_millis(100),
        reply: reply_of(100),
        ..MockSettings::default()
    })
    .await;
    let upstream = mock.base_url(Wire::OpenAi);
    let server = TestServer::start_with(&[
        "--openai-api-key",
        "x",
        "--openai-base-url",
        &upstream,
        "--max-generations-per-user",
        "10",
    ])
    .await;
    let pid = std::process::id().to_string();
    let held = run(&[
        "--url",
        &server.base,
        "--hold-streams",
        "3",
        "--users",
        "1",
        "--hold-secs",
        "1",
        "--watch-pid",
        &pid,
    ])
    .await;
    assert_eq!(held.errors, 0, "{held:?}");
    let hold = held.hold.expect("a hold report");
    assert_eq!((hold.streams, hold.lost_connections), (3, 0));
    // Three streams for a second at a token per 100 ms: about 30 text events.
    assert!(hold.events >= 15, "{hold:?}");
    let memory = hold.memory.expect("memory was watched");
    assert_eq!(memory.live_streams, 3);
}

#[test]
fn loadtest_refuses_bad_flags_with_a_clear_message() {
    for (flags, message) in [
        (&["--concurrency", "0"][..], "--concurrency"),
        (&["--url", "ftp://x"][..], "http(s) URL"),
        (&["--hold-streams", "100000"][..], "--hold-streams"),
        (&["--password", "short"][..], "--password"),
        (
            &["--concurrency", "2", "--users", "3"][..],
            "more than the 2 clients",
        ),
    ] {
        let err = plan(flags).expect_err("refused");
        assert!(err.to_string().contains(message), "{flags:?}: {err}");
    }
}
