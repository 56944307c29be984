//! Memory benchmark (issue 4): RSS of the real release binary per idle SessionActor and per live
//! generation, with 1,000 concurrent slow streams. Prints numbers; asserts nothing about speed.
//!
//! cargo test --release --all-features --test integration bench_memory -- --ignored --nocapture

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use futures_util::{stream, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::TestDb;

const USERS: usize = 1_000;

/// Resident set size of `pid` in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn settle(pid: u32) -> u64 {
    tokio::time::sleep(Duration::from_secs(2)).await;
    rss_kib(pid)
}

#[tokio::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn bench_memory_per_generation_and_idle_session_actor() {
    let db = TestDb::new();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_omnichat"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db.url,
        ])
        .args([
            "--scrypt-log-n",
            "4",
            "--echo-delay-ms",
            "1000",
            "--max-generations-per-user",
            "4",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn omnichat");
    let pid = child.id();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Warm up the paths every later phase uses, so the baseline already holds their caches.
    let warm = make_user(&client, &base, usize::MAX).await;
    drop(warm);
    let baseline = settle(pid).await;

    // Phase 1: 1,000 users, each with a session: 1,000 live, idle SessionActors.
    let users: Vec<(String, String)> = stream::iter(0..USERS)
        .map(|i| make_user(&client, &base, i))
        .buffer_unordered(16)
        .collect()
        .await;
    let idle = settle(pid).await;

    // Phase 2: one slow stream per user, all at once (each its own connection).
    let streams: Vec<reqwest::Response> = stream::iter(users.iter())
        .map(|(token, session)| {
            let client = reqwest::Client::new();
            let base = base.clone();
            async move {
                let prompt = (0..200)
                    .map(|i| format!("w{i}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut response = client
                    .post(format!("{base}/chat/stream"))
                    .bearer_auth(token)
                    .json(&json!({ "session_id": session, "prompt": prompt }))
                    .send()
                    .await
                    .expect("stream");
                assert_eq!(response.status(), StatusCode::OK);
                let _first = response.chunk().await;
                response
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let streaming = settle(pid).await;
    let live = streams.len();
    drop(streams);
    let _ = child.kill();
    let _ = child.wait();

    let per = |a: u64, b: u64, n: usize| (b.saturating_sub(a) as f64) * 1024.0 / n as f64;
    println!();
    println!("memory (RSS of the release binary, echo provider at 1 word/s)");
    println!("  baseline after warm-up        {:>8} KiB", baseline);
    println!(
        "  + {USERS} idle SessionActors  {:>8} KiB  -> {:>8.0} bytes per idle SessionActor",
        idle,
        per(baseline, idle, USERS)
    );
    println!(
        "  + {live} live generations     {:>8} KiB  -> {:>8.0} bytes per live generation",
        streaming,
        per(idle, streaming, live)
    );
    println!("  (a live generation includes its HTTP connection, SSE body, ChatStreamActor and reader task)");
}

/// Signs up and logs in user `i`, creates a session; returns (token, session id).
async fn make_user(client: &reqwest::Client, base: &str, i: usize) -> (String, String) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let email = format!("m{i}-{}@example.com", &tag[..8]);
    let created = client
        .post(format!("{base}/users/"))
        .json(&json!({ "username": format!("m{i}-{}", &tag[..8]), "email": email, "password": "strongpassword" }))
        .send()
        .await
        .expect("sign up");
    assert_eq!(created.status(), StatusCode::OK);
    let token: Value = client
        .post(format!("{base}/token"))
        .form(&[("username", email.as_str()), ("password", "strongpassword")])
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("token");
    let token = token["access_token"].as_str().expect("token").to_owned();
    let session: Value = client
        .post(format!("{base}/sessions"))
        .bearer_auth(&token)
        .json(&json!({ "title": "bench" }))
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("session json");
    (token, session["id"].as_str().expect("id").to_owned())
}
