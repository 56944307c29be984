//! `GET /metrics` as Prometheus scrapes it (text format, parsed here) after real chat turns,
//! upstream failures, refused logins and database trouble; on the public address, or only on
//! `--metrics-addr` / `OMNICHAT_METRICS_ADDR`.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use reqwest::{header, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::{
    fake_upstream::{FakeUpstream, Fault, Wire},
    support::{generation_id, read_sse, streamed_text, TestServer},
};

/// One sample of the text exposition format: the metric name and its labels.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Series {
    name: String,
    labels: Vec<(String, String)>,
}

/// Parses the Prometheus text format (version 0.0.4): `# HELP`/`# TYPE` lines and samples
/// `name{label="value",…} number`. Panics on anything else, so a malformed scrape fails the test.
fn parse_exposition(text: &str) -> HashMap<Series, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let labels = body
                    .split("\",")
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once("=\"").expect("label=\"value\"");
                        (key.to_owned(), value.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name}"
        );
        let mut labels: Vec<(String, String)> = labels;
        labels.sort();
        samples.insert(Series { name, labels }, value);
    }
    samples
}

/// The value of `name` with exactly `labels`, 0 when the series is absent.
fn value(samples: &HashMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    samples
        .get(&Series {
            name: name.to_owned(),
            labels,
        })
        .copied()
        .unwrap_or(0.0)
}

async fn scrape(client: &reqwest::Client, base: &str) -> (String, HashMap<Series, f64>) {
    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let samples = parse_exposition(&text);
    (text, samples)
}

fn words(n: usize) -> String {
    (1..=n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `omnichat_generation_actors` once it reads `want`, within two seconds.
async fn generation_actors_reach(server: &TestServer, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (_, samples) = scrape(&server.client, &server.base).await;
        let now = value(&samples, "omnichat_generation_actors", &[]);
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "generation actors: {now}, not {want}, after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_answer_leaves_memory_when_it_ends_and_is_still_served_from_the_store() {
    let server = TestServer::start_with(&["--echo-delay-ms", "20"]).await;
    let user = server.user().await;
    let session = server.session(&user, "Memory").await["id"].clone();

    // Running, an answer holds its actor; ended, it holds nothing.
    let prompt = words(40);
    let response = server
        .chat(&user, json!({ "session_id": session, "prompt": prompt }))
        .await;
    let generation = generation_id(&response);
    generation_actors_reach(&server, 1.0).await;
    assert_eq!(streamed_text(&read_sse(response).await), prompt);
    generation_actors_reach(&server, 0.0).await;
    // Coming back for it after the end: the whole answer, from the store.
    let again = server
        .get(&user, &format!("/chat/stream/{generation}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again = read_sse(again).await;
    assert_eq!(streamed_text(&again), prompt);
    assert_eq!(again.last().map(|e| e.data.as_str()), Some("[DONE]"));

    // An answer stopped by deleting its session is released too.
    let doomed = server.session(&user, "Doomed").await["id"].clone();
    let response = server
        .chat(&user, json!({ "session_id": doomed, "prompt": words(40) }))
        .await;
    generation_actors_reach(&server, 1.0).await;
    let deleted = server
        .delete(&user, &format!("/sessions/{}", doomed.as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let rest = response.text().await.unwrap();
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    generation_actors_reach(&server, 0.0).await;
}

#[tokio::test]
async fn metrics_move_with_real_chat_turns() {
    let server = TestServer::start_with(&["--echo-delay-ms", "5"]).await;
    let user = server.user().await;
    let session = server.session(&user, "Metrics").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for turn in 0..3 {
        let prompt = format!("turn {turn} of three");
        let response = server
            .chat(&user, json!({ "session_id": session, "prompt": prompt }))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(streamed_text(&read_sse(response).await), prompt);
    }
    // A read by id, a 404 and a 401: their routes are templates, never the raw path.
    let detail = server
        .get(&user, &format!("/sessions/{session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(detail.status(), StatusCode::OK);
    let missing = server
        .get(&user, &format!("/sessions/{}", Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let nowhere = server
        .client
        .get(server.url(&format!("/no/such/{}", Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);

    // A long answer still streaming is a live generation.
    let mut live = server
        .chat(
            &user,
            json!({ "session_id": server.session(&user, "Live").await["id"], "prompt": words(200) }),
        )
        .await;
    assert_eq!(live.status(), StatusCode::OK);
    live.chunk().await.unwrap().expect("a first event");
    let (_, during) = scrape(&server.client, &server.base).await;
    assert_eq!(value(&during, "omnichat_generations_live", &[]), 1.0);
    let rest = live.text().await.unwrap();
    assert!(rest.ends_with("data: [DONE]\n\n"));

    // The generation counts itself out right after its last event.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (text, samples) = loop {
        let (text, samples) = scrape(&server.client, &server.base).await;
        if value(&samples, "omnichat_generations_live", &[]) == 0.0 || Instant::now() > deadline {
            break (text, samples);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(value(&samples, "omnichat_generations_live", &[]), 0.0);
    let requests = |method, route, status| {
        value(
            &samples,
            "omnichat_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("POST", "/chat/stream", "200"), 4.0);
    assert_eq!(requests("GET", "/sessions/{session_id}", "200"), 1.0);
    assert_eq!(requests("GET", "/sessions/{session_id}", "404"), 1.0);
    assert_eq!(requests("GET", "unmatched", "404"), 1.0);
    assert_eq!(requests("POST", "/token", "200"), 1.0);
    assert!(!text.contains(&session), "no raw id in any label");
    assert_eq!(
        value(
            &samples,
            "omnichat_http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/chat/stream")]
        ),
        4.0
    );
    let echo = [("provider", "echo")];
    assert_eq!(
        value(
            &samples,
            "omnichat_time_to_first_token_seconds_count",
            &echo
        ),
        4.0
    );
    assert_eq!(
        value(&samples, "omnichat_answer_duration_seconds_count", &echo),
        4.0
    );
    assert!(value(&samples, "omnichat_answer_duration_seconds_sum", &echo) > 0.0);
    assert_eq!(
        value(
            &samples,
            "omnichat_generations_total",
            &[("provider", "echo"), ("status", "complete")]
        ),
        4.0
    );
    let tokens = |direction| {
        value(
            &samples,
            "omnichat_tokens_total",
            &[
                ("provider", "echo"),
                ("model", "echo-1"),
                ("direction", direction),
            ],
        )
    };
    assert!(tokens("out") >= 4.0 * 3.0, "out: {}", tokens("out"));
    assert!(tokens("in") > 0.0);
    assert!(value(&samples, "omnichat_session_actors", &[]) >= 1.0);
    // Every turn wrote its prompt and its answer through the group-commit writer.
    assert!(value(&samples, "omnichat_db_batch_size_sum", &[]) >= 8.0);
    assert!(value(&samples, "omnichat_db_batch_commit_seconds_count", &[]) >= 1.0);
    for present in [
        "omnichat_password_hash_queue_depth",
        "omnichat_password_hashes_running",
        "omnichat_password_hash_refusals_total",
    ] {
        assert!(
            samples.keys().any(|s| s.name == present),
            "{present} is exposed"
        );
    }
}

#[tokio::test]
async fn a_metrics_address_takes_metrics_off_the_public_port() {
    let server = TestServer::start_with(&["--metrics-addr", "127.0.0.1:0"]).await;
    let public = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    let metrics_base = server.metrics_base.clone().expect("a metrics address");
    assert_ne!(metrics_base, server.base);
    let (_, samples) = scrape(&server.client, &metrics_base).await;
    assert_eq!(
        value(
            &samples,
            "omnichat_http_requests_total",
            &[("method", "GET"), ("route", "/metrics"), ("status", "404")]
        ),
        1.0,
        "the public 404 was counted"
    );
    let elsewhere = server
        .client
        .get(format!("{metrics_base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
    let post = server
        .client
        .post(format!("{metrics_base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn upstream_retries_and_errors_are_counted_by_provider_and_kind() {
    let openai = FakeUpstream::start(Wire::OpenAi).await;
    let server = TestServer::start_with(&[
        "--openai-api-key",
        "sk-metrics-test",
        "--openai-base-url",
        &openai.base_url,
        "--upstream-retry-base-delay-ms",
        "1",
        "--upstream-max-retries",
        "2",
    ])
    .await;
    let user = server.user().await;
    let session = server.session(&user, "Upstream").await;
    let chat = |prompt: &'static str| {
        server.chat(
            &user,
            json!({ "session_id": session["id"], "prompt": prompt, "provider": "openai" }),
        )
    };
    // One 503, then an answer: one retry.
    openai.set_fault(Fault::StatusThenOk {
        times: 1,
        status: 503,
    });
    let answered = chat("first").await;
    assert_eq!(answered.status(), StatusCode::OK);
    assert!(!streamed_text(&read_sse(answered).await).is_empty());
    // A provider failing for good: two retries, then a 502 and one error of kind upstream_error.
    openai.set_fault(Fault::Status(500, None));
    let failed = chat("second").await;
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(openai.requests().len(), 2 + 3);

    let (_, samples) = scrape(&server.client, &server.base).await;
    let openai_label = [("provider", "openai")];
    assert_eq!(
        value(&samples, "omnichat_upstream_retries_total", &openai_label),
        3.0
    );
    assert_eq!(
        value(
            &samples,
            "omnichat_upstream_errors_total",
            &[("provider", "openai"), ("kind", "upstream_error")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "omnichat_generations_total",
            &[("provider", "openai"), ("status", "error")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "omnichat_generations_total",
            &[("provider", "openai"), ("status", "complete")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "omnichat_time_to_first_token_seconds_count",
            &openai_label
        ),
        1.0,
        "only the answer that had text has a first token"
    );
}

#[tokio::test]
async fn password_hash_refusals_are_counted() {
    // One hash at a time and none waiting, at a cost that takes a while: concurrent logins
    // beyond the first are refused.
    let server = TestServer::start_with(&[
        "--scrypt-log-n",
        "15",
        "--hash-parallelism",
        "1",
        "--hash-queue",
        "0",
    ])
    .await;
    // Different accounts: logins of one account from one address take turns (login
    // throttling), so only different accounts make a burst the hasher sees at once.
    let mut users = Vec::new();
    for _ in 0..8 {
        users.push(server.user().await);
    }
    let attempts = users
        .iter()
        .map(|user| server.login(&user.email, "not the password"));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(refused > 0, "{statuses:?}");
    assert_eq!(
        refused
            + statuses
                .iter()
                .filter(|s| **s == StatusCode::UNAUTHORIZED)
                .count(),
        8,
        "{statuses:?}"
    );
    let (_, samples) = scrape(&server.client, &server.base).await;
    assert_eq!(
        value(&samples, "omnichat_password_hash_refusals_total", &[]),
        refused as f64
    );
    assert_eq!(
        value(&samples, "omnichat_password_hash_queue_depth", &[]),
        0.0
    );
    assert_eq!(
        value(&samples, "omnichat_password_hashes_running", &[]),
        0.0
    );
}

/// The binary itself, configured through the environment alone; killed when dropped.
struct EnvDaemon(std::process::Child);

impl Drop for EnvDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

#[tokio::test]
async fn omnichat_metrics_addr_in_the_environment_moves_metrics_off_the_public_port() {
    let db = crate::support::TestDb::new();
    let (port, metrics_port) = (free_port(), free_port());
    let _daemon = EnvDaemon(
        std::process::Command::new(env!("CARGO_BIN_EXE_omnichat"))
            .env("OMNICHAT_ADDR", format!("127.0.0.1:{port}"))
            .env("OMNICHAT_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("DATABASE_URL", &db.url)
            .env("OMNICHAT_SCRYPT_LOG_N", "4")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn omnichat"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.get(format!("{base}/readyz")).send().await {
            Ok(r) if r.status() == StatusCode::OK => break,
            _ => {
                assert!(Instant::now() < deadline, "omnichat did not become ready");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let public = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    let (_, samples) = scrape(&client, &format!("http://127.0.0.1:{metrics_port}")).await;
    assert!(
        value(
            &samples,
            "omnichat_http_requests_total",
            &[("method", "GET"), ("route", "/readyz"), ("status", "200")]
        ) >= 1.0
    );
}
