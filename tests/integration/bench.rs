//! Latency and throughput benchmarks of the real release binary over loopback (issues 2 and 3).
//! They print tables and assert nothing about speed:
//!
//! cargo test --release --test integration bench:: -- --ignored --nocapture --test-threads 1
//!
//! - `bench_reads_alone_and_beside_logins`: `GET /users/me/` and `GET /sessions` (20 sessions),
//!   32 closed-loop clients for 5 s, alone and while 20 clients log in back to back at the real
//!   default scrypt cost (ln=17).
//! - `bench_stream_overhead_against_direct_upstream`: time to first token and per-token overhead
//!   of a stream through OmniChat against the same fake OpenAI-wire upstream called directly, at 1
//!   and 100 concurrent streams. Per-token overhead is the mean inter-token gap through OmniChat
//!   minus the mean gap of the direct call (first to last token, so TTFT is excluded); the table
//!   also shows the whole-stream time difference divided by the token count (TTFT included).

use std::{
    future::Future,
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::{future::join_all, StreamExt};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::{
    fake_upstream::{FakeUpstream, Wire},
    support::TestDb,
};

/// The release binary as a child process, so the load generator does not share its runtime.
struct Daemon {
    child: Child,
    base: String,
    _db: TestDb,
}

impl Daemon {
    async fn spawn(args: &[&str]) -> Daemon {
        let db = TestDb::new();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_omnichat"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--database-url", &db.url])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn omnichat");
        // Owned at once, so a panic below still kills and reaps the child.
        let daemon = Daemon {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _db: db,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(daemon.url("/healthz")).await {
                if r.status() == StatusCode::OK {
                    return daemon;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("omnichat did not become healthy");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Signs up and logs in; returns the token.
    async fn user(&self, client: &Client, email: &str, password: &str) -> String {
        let name = email.split('@').next().unwrap_or("bench");
        let created = client
            .post(self.url("/users/"))
            .json(&json!({ "username": name, "email": email, "password": password }))
            .send()
            .await
            .expect("sign up");
        assert_eq!(created.status(), StatusCode::OK, "sign-up");
        let login = client
            .post(self.url("/token"))
            .form(&[("username", email), ("password", password)])
            .send()
            .await
            .expect("login");
        assert_eq!(login.status(), StatusCode::OK, "login");
        let token: Value = login.json().await.expect("token json");
        token["access_token"].as_str().expect("token").to_owned()
    }

    async fn session(&self, client: &Client, token: &str) -> String {
        let session: Value = client
            .post(self.url("/sessions"))
            .bearer_auth(token)
            .json(&json!({ "title": "bench" }))
            .send()
            .await
            .expect("create session")
            .json()
            .await
            .expect("session json");
        session["id"].as_str().expect("id").to_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Latencies of one measured run.
#[derive(Default)]
struct Run {
    ok: Vec<Duration>,
    failed: usize,
    elapsed: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ok.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn row(&mut self, name: &str) -> String {
        self.ok.sort();
        format!(
            "{name:<34} {:>9.0} {:>9} {:>9} {:>9} {:>7}",
            self.rate(),
            ms(quantile(&self.ok, 0.50)),
            ms(quantile(&self.ok, 0.99)),
            ms(self.ok.last().copied()),
            self.failed
        )
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get(((last as f64) * q).round() as usize).copied()
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2}", d.as_secs_f64() * 1e3))
        .unwrap_or_else(|| "-".into())
}

/// `clients` tasks call `op` back to back until `duration` is over; `op` says whether the answer
/// was the expected one.
async fn closed_loop<F, Fut>(clients: usize, duration: Duration, op: F) -> Run
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let tasks = (0..clients).map(|_| {
        let op = op.clone();
        tokio::spawn(async move {
            let mut run = Run::default();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                if op().await {
                    run.ok.push(t0.elapsed());
                } else {
                    run.failed += 1;
                }
            }
            run
        })
    });
    let mut total = Run::default();
    for run in join_all(tasks).await.into_iter().flatten() {
        total.ok.extend(run.ok);
        total.failed += run.failed;
    }
    total.elapsed = started.elapsed();
    total
}

const HEADER: &str =
    "scenario                           req/s   p50(ms)   p99(ms)   max(ms)  failed";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
async fn bench_reads_alone_and_beside_logins() {
    const CLIENTS: usize = 32;
    const LOGINS: usize = 20;
    const WINDOW: Duration = Duration::from_secs(5);
    // No --scrypt-log-n: the real default cost (ln=17, 128 MiB, one hash per core at a time).
    let daemon = Arc::new(Daemon::spawn(&[]).await);
    let client = Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let password = "correct horse battery";
    let token = daemon.user(&client, "reader@example.com", password).await;
    daemon.user(&client, "login@example.com", password).await;
    for _ in 0..20 {
        daemon.session(&client, &token).await;
    }

    let read = |path: &'static str| {
        let (client, daemon, token) = (client.clone(), daemon.clone(), token.clone());
        move || {
            let request = client.get(daemon.url(path)).bearer_auth(&token).send();
            async move {
                match request.await {
                    Ok(r) if r.status() == StatusCode::OK => r.bytes().await.is_ok(),
                    _ => false,
                }
            }
        }
    };
    let login = {
        let (client, daemon) = (client.clone(), daemon.clone());
        move || {
            let request = client
                .post(daemon.url("/token"))
                .form(&[("username", "login@example.com"), ("password", password)])
                .send();
            async move {
                // A 503 (hash queue full) counts as failed; it is the designed back-pressure.
                matches!(request.await, Ok(r) if r.status() == StatusCode::OK)
            }
        }
    };

    let sessions: Value = client
        .get(daemon.url("/sessions"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(sessions.as_array().map(Vec::len), Some(20));
    closed_loop(CLIENTS, Duration::from_secs(1), read("/users/me/")).await; // warm-up

    let mut rows = Vec::new();
    for (path, name) in [
        ("/users/me/", "GET /users/me/"),
        ("/sessions", "GET /sessions"),
    ] {
        let mut alone = closed_loop(CLIENTS, WINDOW, read(path)).await;
        rows.push(alone.row(&format!("{name} alone")));
        let logins = tokio::spawn(closed_loop(LOGINS, WINDOW, login.clone()));
        let mut beside = closed_loop(CLIENTS, WINDOW, read(path)).await;
        let mut logins = logins.await.expect("login load");
        rows.push(beside.row(&format!("{name} + {LOGINS} logins")));
        rows.push(logins.row("  POST /token (ln=17) during it"));
    }
    println!(
        "\nReads: {CLIENTS} closed-loop clients, {} s each; logins: {LOGINS} clients back to back",
        WINDOW.as_secs()
    );
    println!("(failed logins = 503 answers from the full hash queue)\n{HEADER}");
    for row in rows {
        println!("{row}");
    }
}

/// Arrival times of a stream's tokens, from the moment the request was sent.
struct Timeline {
    tokens: Vec<Duration>,
    done: Duration,
}

impl Timeline {
    fn ttft(&self) -> Duration {
        self.tokens.first().copied().unwrap_or(self.done)
    }
}

/// Reads an SSE body, noting when each text token arrives. `text` extracts the token from an
/// event's data (OpenAI chunks for the direct call, `{"delta": …}` for OmniChat).
async fn timeline(
    request: reqwest::RequestBuilder,
    text: fn(&Value) -> Option<&str>,
) -> Option<Timeline> {
    let t0 = Instant::now();
    let response = request.send().await.ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    let mut body = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut tokens = Vec::new();
    while let Some(chunk) = body.next().await {
        buffer.extend_from_slice(&chunk.ok()?);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buffer.drain(..end + 2).collect();
            let event = String::from_utf8_lossy(&event);
            for data in event.lines().filter_map(|l| l.strip_prefix("data: ")) {
                if data == "[DONE]" {
                    continue;
                }
                let value: Value = serde_json::from_str(data).ok()?;
                if text(&value).is_some_and(|t| !t.is_empty()) {
                    tokens.push(t0.elapsed());
                }
            }
        }
    }
    Some(Timeline {
        tokens,
        done: t0.elapsed(),
    })
}

fn openai_text(v: &Value) -> Option<&str> {
    v["choices"][0]["delta"]["content"].as_str()
}

fn omnichat_text(v: &Value) -> Option<&str> {
    v["delta"].as_str()
}

/// What one configuration's streams looked like.
struct StreamStats {
    ttft: Vec<Duration>,
    gaps: Vec<Duration>,
    totals: Vec<Duration>,
    incomplete: usize,
}

impl StreamStats {
    fn new(timelines: Vec<Option<Timeline>>, tokens: usize) -> StreamStats {
        let mut stats = StreamStats {
            ttft: Vec::new(),
            gaps: Vec::new(),
            totals: Vec::new(),
            incomplete: 0,
        };
        for timeline in timelines {
            match timeline {
                Some(t) if t.tokens.len() == tokens => {
                    stats.ttft.push(t.ttft());
                    stats.gaps.extend(t.tokens.windows(2).map(|w| w[1] - w[0]));
                    stats.totals.push(t.done);
                }
                _ => stats.incomplete += 1,
            }
        }
        stats.ttft.sort();
        stats.gaps.sort();
        stats.totals.sort();
        stats
    }

    fn mean(values: &[Duration]) -> Duration {
        values.iter().sum::<Duration>() / (values.len().max(1) as u32)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
async fn bench_stream_overhead_against_direct_upstream() {
    const TOKENS: usize = 50;
    const TOKEN_DELAY: Duration = Duration::from_millis(5);
    let fake = FakeUpstream::start(Wire::OpenAi).await;
    fake.set_reply((0..TOKENS).map(|i| format!(" t{i}")).collect());
    fake.set_token_delay(TOKEN_DELAY);
    let daemon = Daemon::spawn(&[
        "--scrypt-log-n",
        "4",
        "--openai-api-key",
        "sk-bench",
        "--openai-base-url",
        &fake.base_url,
        "--max-generations-per-user",
        "1000",
    ])
    .await;
    let client = Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    // Streams come from one user (every StartChat queues on that user's SessionActor) or from
    // 100 users (each its own SessionActor, as with the default cap of 4 answers per user).
    let mut tokens = Vec::new();
    for i in 0..100 {
        let email = format!("streamer{i}@example.com");
        tokens.push(daemon.user(&client, &email, "correct horse battery").await);
    }
    let direct_body = json!({
        "model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Say fifty words"}],
    });

    println!(
        "\nStreams of {TOKENS} tokens, fake OpenAI-wire upstream pausing {} ms before each token",
        TOKEN_DELAY.as_millis()
    );
    println!(
        "path          streams  ttft p50  ttft p99  gap p50  gap p99  gap mean  stream mean  incomplete  (ms)"
    );
    let mut summary = Vec::new();
    for (concurrency, rounds, users) in [(1usize, 30usize, 1usize), (100, 3, 1), (100, 3, 100)] {
        let mut results = Vec::new();
        for via_omnichat in [false, true] {
            let mut timelines = Vec::new();
            for _ in 0..rounds {
                let mut requests = Vec::new();
                for k in 0..concurrency {
                    let token = &tokens[k % users];
                    requests.push(if via_omnichat {
                        let session = daemon.session(&client, token).await;
                        client
                            .post(daemon.url("/chat/stream"))
                            .bearer_auth(token)
                            .json(&json!({ "session_id": session, "prompt": "Say fifty words",
                                           "provider": "openai" }))
                    } else {
                        client
                            .post(format!("{}/chat/completions", fake.base_url))
                            .bearer_auth("sk-bench")
                            .json(&direct_body)
                    });
                }
                let barrier = Arc::new(Barrier::new(concurrency));
                let text = if via_omnichat {
                    omnichat_text
                } else {
                    openai_text
                };
                let tasks = requests.into_iter().map(|request| {
                    let barrier = barrier.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        timeline(request, text).await
                    })
                });
                timelines.extend(join_all(tasks).await.into_iter().map(|t| t.ok().flatten()));
            }
            let stats = StreamStats::new(timelines, TOKENS);
            println!(
                "{:<9} {:>11} {:>9} {:>9} {:>8} {:>8} {:>9} {:>12} {:>11}",
                if via_omnichat { "omnichat" } else { "direct" },
                format!("{concurrency}x{rounds}/{users}u"),
                ms(quantile(&stats.ttft, 0.5)),
                ms(quantile(&stats.ttft, 0.99)),
                ms(quantile(&stats.gaps, 0.5)),
                ms(quantile(&stats.gaps, 0.99)),
                ms(Some(StreamStats::mean(&stats.gaps))),
                ms(Some(StreamStats::mean(&stats.totals))),
                stats.incomplete,
            );
            results.push(stats);
        }
        let (direct, omni) = (&results[0], &results[1]);
        let diff = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()) * 1e3;
        summary.push(format!(
            "{concurrency:>3} concurrent, {users:>3} user(s): ttft overhead p50 {:+.2} ms, p99 {:+.2} ms; per-token \
             overhead {:+.3} ms (mean inter-token gap difference), {:+.3} ms (whole-stream time \
             difference incl. ttft / {TOKENS})",
            diff(
                quantile(&omni.ttft, 0.5).unwrap_or_default(),
                quantile(&direct.ttft, 0.5).unwrap_or_default()
            ),
            diff(
                quantile(&omni.ttft, 0.99).unwrap_or_default(),
                quantile(&direct.ttft, 0.99).unwrap_or_default()
            ),
            diff(
                StreamStats::mean(&omni.gaps),
                StreamStats::mean(&direct.gaps)
            ),
            diff(
                StreamStats::mean(&omni.totals),
                StreamStats::mean(&direct.totals)
            ) / TOKENS as f64,
        ));
    }
    println!("\nOmniChat minus direct:");
    for line in summary {
        println!("  {line}");
    }
}
