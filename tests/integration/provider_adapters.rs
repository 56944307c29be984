//! The provider adapters straight against the fake upstreams: every wire format and fault mode.

use std::time::{Duration, Instant};

use crate::fake_upstream::{FakeUpstream, Fault, Wire};
use futures_util::StreamExt;
use omnichat_actors::providers::{
    ChatMessage, ChatRequest, ProviderError, ProviderEvent, ProviderKind, ProviderSettings,
    Providers, Role, TokenUsage,
};

const WIRES: [Wire; 4] = [Wire::OpenAi, Wire::Gemini, Wire::Anthropic, Wire::Ollama];

fn kind(wire: Wire) -> ProviderKind {
    match wire {
        Wire::OpenAi => ProviderKind::OpenAi,
        Wire::Gemini => ProviderKind::Gemini,
        Wire::Anthropic => ProviderKind::Anthropic,
        Wire::Ollama => ProviderKind::Ollama,
    }
}

fn providers(
    fake: &FakeUpstream,
    wire: Wire,
    tune: impl FnOnce(&mut ProviderSettings),
) -> Providers {
    let mut settings = ProviderSettings {
        retry_base_delay: Duration::from_millis(10),
        retry_max_delay: Duration::from_secs(2),
        ..ProviderSettings::default()
    };
    match wire {
        Wire::OpenAi => {
            settings.openai_api_key = Some("sk-test".into());
            settings.openai_base_url = fake.base_url.clone();
        }
        Wire::Gemini => {
            settings.gemini_api_key = Some("gm-test".into());
            settings.gemini_base_url = fake.base_url.clone();
        }
        Wire::Anthropic => {
            settings.anthropic_api_key = Some("ant-test".into());
            settings.anthropic_base_url = fake.base_url.clone();
        }
        Wire::Ollama => settings.ollama_host = fake.base_url.clone(),
    }
    tune(&mut settings);
    Providers::new(settings).expect("valid settings")
}

fn conversation() -> ChatRequest {
    let message = |role, content: &str| ChatMessage {
        role,
        content: content.into(),
    };
    ChatRequest {
        model: String::new(),
        messages: vec![
            message(Role::System, "Be brief."),
            message(Role::User, "Hi there"),
            message(Role::Assistant, "Hello!"),
            message(Role::User, "Say hello"),
        ],
        max_tokens: None,
    }
}

type Outcome = Vec<Result<ProviderEvent, ProviderError>>;

async fn run(providers: &Providers, wire: Wire) -> Result<Outcome, ProviderError> {
    let stream = providers.open(kind(wire), conversation()).await?;
    Ok(stream.collect().await)
}

fn text(outcome: &Outcome) -> String {
    outcome
        .iter()
        .filter_map(|event| match event {
            Ok(ProviderEvent::Delta(text)) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn last_error(outcome: &Outcome) -> Option<&ProviderError> {
    outcome.last().and_then(|last| last.as_ref().err())
}

async fn wait_closed(fake: &FakeUpstream) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.open_streams() > 0 {
        assert!(Instant::now() < deadline, "upstream stream still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_wire_streams_a_whole_answer() {
    for wire in WIRES {
        let fake = FakeUpstream::start(wire).await;
        let providers = providers(&fake, wire, |_| {});
        let outcome = run(&providers, wire).await.expect("opens");
        assert_eq!(text(&outcome), "Hello, wörld 😀", "{wire:?}");
        let usage = outcome.iter().rev().find_map(|event| match event {
            Ok(ProviderEvent::Usage(usage)) => Some(*usage),
            _ => None,
        });
        // Prompt words: "Be brief." + "Hi there" + "Hello!" + "Say hello" = 7.
        assert_eq!(
            usage,
            Some(TokenUsage {
                prompt_tokens: Some(7),
                completion_tokens: Some(4)
            }),
            "{wire:?}"
        );
        let finish = match wire {
            Wire::Anthropic => "end_turn",
            _ => "stop",
        };
        assert!(
            matches!(outcome.last(), Some(Ok(ProviderEvent::Finish(r))) if r == finish),
            "{wire:?}: {outcome:?}"
        );

        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        let default_model = Providers::default_model(kind(wire));
        match wire {
            Wire::OpenAi => {
                assert_eq!(request.path, "/v1/chat/completions");
                assert_eq!(request.header("authorization"), Some("Bearer sk-test"));
                assert_eq!(request.body["model"], default_model);
                assert_eq!(request.body["messages"][2]["role"], "assistant");
                assert_eq!(request.body["stream_options"]["include_usage"], true);
            }
            Wire::Gemini => {
                assert_eq!(
                    request.path,
                    format!("/v1beta/models/{default_model}:streamGenerateContent?alt=sse")
                );
                assert_eq!(request.header("x-goog-api-key"), Some("gm-test"));
                assert_eq!(request.body["contents"][1]["role"], "model");
                assert_eq!(
                    request.body["systemInstruction"]["parts"][0]["text"],
                    "Be brief."
                );
            }
            Wire::Anthropic => {
                assert_eq!(request.path, "/v1/messages");
                assert_eq!(request.header("x-api-key"), Some("ant-test"));
                assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
                assert_eq!(request.body["system"], "Be brief.");
                assert_eq!(request.body["max_tokens"], 4096);
                assert_eq!(request.body["messages"].as_array().map(Vec::len), Some(3));
            }
            Wire::Ollama => {
                assert_eq!(request.path, "/api/chat");
                assert_eq!(request.body["model"], default_model);
                assert_eq!(request.body["messages"][3]["content"], "Say hello");
            }
        }
        wait_closed(&fake).await;
    }
}

#[tokio::test]
async fn error_statuses_map_and_retry_per_policy() {
    for wire in WIRES {
        let fake = FakeUpstream::start(wire).await;
        let providers = providers(&fake, wire, |_| {});

        fake.set_fault(Fault::Status(401, None));
        let err = run(&providers, wire).await.expect_err("401");
        assert!(matches!(err, ProviderError::Unauthorized { .. }), "{err:?}");
        assert!(err.to_string().contains("fake upstream error 401"), "{err}");
        assert_eq!(fake.requests().len(), 1, "401 is not retried");

        fake.set_fault(Fault::Status(400, None));
        let err = run(&providers, wire).await.expect_err("400");
        assert!(
            matches!(err, ProviderError::Rejected { status: 400, .. }),
            "{err:?}"
        );
        assert_eq!(fake.requests().len(), 2, "400 is not retried");

        fake.set_fault(Fault::Status(429, Some(30)));
        let err = run(&providers, wire).await.expect_err("429");
        assert!(
            matches!(err, ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(30)),
            "{err:?}"
        );
        assert_eq!(
            fake.requests().len(),
            3,
            "a Retry-After beyond the cap is passed on"
        );

        fake.set_fault(Fault::Status(503, None));
        let err = run(&providers, wire).await.expect_err("503");
        assert!(
            matches!(err, ProviderError::Upstream { status: 503, .. }),
            "{err:?}"
        );
        assert_eq!(fake.requests().len(), 6, "503 is retried twice");

        fake.set_fault(Fault::StatusThenOk {
            times: 2,
            status: 500,
        });
        let outcome = run(&providers, wire).await.expect("recovers");
        assert_eq!(text(&outcome), "Hello, wörld 😀");
        assert_eq!(fake.requests().len(), 9);

        fake.set_fault(Fault::Status(429, Some(1)));
        let started = Instant::now();
        let err = run(&providers, wire).await.expect_err("429 again");
        assert!(matches!(err, ProviderError::RateLimited { .. }), "{err:?}");
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "Retry-After honoured"
        );
        assert_eq!(fake.requests().len(), 12);
    }
}

#[tokio::test]
async fn mid_stream_failures_end_the_stream_with_an_error() {
    for wire in WIRES {
        let fake = FakeUpstream::start(wire).await;
        let providers = providers(&fake, wire, |settings| {
            settings.idle_timeout = Duration::from_millis(300);
        });
        for (fault, code) in [
            (Fault::MidStreamError, "upstream_error"),
            (Fault::AbruptClose, "upstream_closed"),
            (Fault::Stall, "upstream_stall"),
        ] {
            fake.set_fault(fault.clone());
            let outcome = run(&providers, wire).await.expect("opens");
            assert_eq!(text(&outcome), "Hello,", "{wire:?} {fault:?}");
            let err =
                last_error(&outcome).unwrap_or_else(|| panic!("{wire:?} {fault:?}: {outcome:?}"));
            assert_eq!(err.code(), code, "{wire:?} {fault:?}: {err}");
            wait_closed(&fake).await;
        }
    }
}

#[tokio::test]
async fn gemini_safety_block_is_visible() {
    let fake = FakeUpstream::start(Wire::Gemini).await;
    let providers = providers(&fake, Wire::Gemini, |_| {});
    fake.set_fault(Fault::SafetyBlock);
    let outcome = run(&providers, Wire::Gemini).await.expect("opens");
    assert_eq!(outcome.len(), 1);
    assert_eq!(
        last_error(&outcome).map(ProviderError::code),
        Some("content_filtered")
    );
}

#[tokio::test]
async fn slow_first_byte_times_out() {
    for wire in WIRES {
        let fake = FakeUpstream::start(wire).await;
        let providers = providers(&fake, wire, |settings| {
            settings.first_byte_timeout = Duration::from_millis(200);
        });
        fake.set_fault(Fault::SlowFirstByte(Duration::from_millis(600)));
        let err = run(&providers, wire).await.expect_err("times out");
        assert!(
            matches!(
                err,
                ProviderError::Timeout {
                    phase: "first byte",
                    ..
                }
            ),
            "{err:?}"
        );

        fake.set_fault(Fault::SlowFirstByte(Duration::from_millis(50)));
        let outcome = run(&providers, wire).await.expect("in time");
        assert_eq!(text(&outcome), "Hello, wörld 😀");
    }
}

#[tokio::test]
async fn total_timeout_cuts_a_slow_generation() {
    let fake = FakeUpstream::start(Wire::OpenAi).await;
    let providers = providers(&fake, Wire::OpenAi, |settings| {
        settings.total_timeout = Duration::from_millis(300);
    });
    fake.set_token_delay(Duration::from_millis(120));
    let outcome = run(&providers, Wire::OpenAi).await.expect("opens");
    assert_eq!(
        last_error(&outcome).map(ProviderError::code),
        Some("upstream_timeout")
    );
    wait_closed(&fake).await;
}

#[tokio::test]
async fn dropping_the_stream_closes_the_upstream() {
    for wire in WIRES {
        let fake = FakeUpstream::start(wire).await;
        let providers = providers(&fake, wire, |_| {});
        fake.set_token_delay(Duration::from_millis(100));
        fake.set_reply((0..50).map(|i| format!(" w{i}")).collect());
        let mut stream = providers
            .open(kind(wire), conversation())
            .await
            .expect("opens");
        let first = stream.next().await;
        assert!(matches!(first, Some(Ok(_))), "{wire:?}: {first:?}");
        assert_eq!(fake.open_streams(), 1);
        drop(stream);
        wait_closed(&fake).await;
    }
}

#[tokio::test]
async fn unreachable_upstream_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let settings = ProviderSettings {
        ollama_host: format!("http://{addr}"),
        retry_base_delay: Duration::from_millis(5),
        ..ProviderSettings::default()
    };
    let providers = Providers::new(settings).expect("valid");
    let err = run(&providers, Wire::Ollama).await.expect_err("refused");
    assert!(matches!(err, ProviderError::Connect { .. }), "{err:?}");
    assert!(
        !err.to_string().contains(&addr.to_string()),
        "no internal URL: {err}"
    );
}

#[tokio::test]
async fn configuration_is_checked() {
    let providers = Providers::new(ProviderSettings::default()).expect("defaults are valid");
    let names: Vec<_> = providers.available().iter().map(|info| info.name).collect();
    assert_eq!(names, ["echo", "ollama"]);
    let err = providers
        .open(ProviderKind::Anthropic, conversation())
        .await
        .err()
        .expect("not configured");
    assert!(err.to_string().contains("ANTHROPIC_API_KEY"), "{err}");
    let bad = ProviderSettings {
        openai_base_url: "not a url".into(),
        ..ProviderSettings::default()
    };
    assert!(Providers::new(bad).is_err());

    let outcome: Outcome = providers
        .open(ProviderKind::Echo, conversation())
        .await
        .expect("echo")
        .collect()
        .await;
    assert_eq!(text(&outcome), "Say hello");
}
