//! The real binary as a daemon: SIGKILL and restart keep everything (tokens included, with no
//! secret configured); SIGTERM stops it cleanly with exit status 0.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    parse_sse, read_sse, sign_up_and_log_in, streamed_text, TestDb, UNTHROTTLED_ADDRESS,
};

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) struct Daemon {
    child: Child,
    pub(crate) base: String,
}

impl Daemon {
    async fn spawn(db: &TestDb, port: u16) -> Daemon {
        Self::spawn_with(db, port, &[]).await
    }

    /// Starts the binary; `extra` flags come last, so they override the defaults above them.
    pub(crate) async fn spawn_with(db: &TestDb, port: u16, extra: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_omnichat"))
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                &db.url,
            ])
            .args(["--scrypt-log-n", "4", "--echo-delay-ms", "1"])
            .args(UNTHROTTLED_ADDRESS)
            .args(extra)
            .env_remove("OMNICHAT_JWT_SECRET")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn omnichat");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{base}/healthz")).await {
                if r.status() == StatusCode::OK {
                    return Daemon { child, base };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("omnichat did not become healthy");
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub(crate) fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "omnichat did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sigkill_and_restart_keep_users_sessions_messages_and_tokens() {
    let db = TestDb::new();
    let port = free_port();
    let client = reqwest::Client::new();
    let mut daemon = Daemon::spawn(&db, port).await;
    let (email, token) = sign_up_and_log_in(&client, &daemon.base).await;
    let session = new_session(&client, &daemon.base, &token).await;
    let stream = client
        .post(format!("{}/chat/stream", daemon.base))
        .bearer_auth(&token)
        .json(&json!({ "session_id": session, "prompt": "still here" }))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed_text(&read_sse(stream).await), "still here");

    daemon.signal("KILL");
    daemon.wait(Duration::from_secs(10));
    drop(daemon);

    let daemon = Daemon::spawn(&db, port).await;
    let me = client
        .get(format!("{}/users/me/", daemon.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "a token issued before the kill still works"
    );
    let detail = session_detail(&client, &daemon.base, &token, &session).await;
    assert_eq!(detail["title"], SESSION_TITLE);
    let contents: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["still here", "still here"]);
    let login = client
        .post(format!("{}/token", daemon.base))
        .form(&[("username", email.as_str()), ("password", "strongpassword")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn sigterm_and_sigint_stop_cleanly() {
    for signal in ["TERM", "INT"] {
        let db = TestDb::new();
        let mut daemon = Daemon::spawn(&db, free_port()).await;
        daemon.signal(signal);
        let status = daemon.wait(Duration::from_secs(20));
        assert!(status.success(), "SIG{signal}: exit status {status:?}");
    }
}

const SESSION_TITLE: &str = "daemon";

async fn new_session(client: &reqwest::Client, base: &str, token: &str) -> String {
    let session: Value = client
        .post(format!("{base}/sessions"))
        .bearer_auth(token)
        .json(&json!({ "title": SESSION_TITLE }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    session["id"].as_str().unwrap().to_string()
}

async fn start_stream(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    session: &str,
    prompt: &str,
) -> reqwest::Response {
    let mut response = client
        .post(format!("{base}/chat/stream"))
        .bearer_auth(token)
        .json(&json!({ "session_id": session, "prompt": prompt }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Wait for the first event, so the generation is surely running.
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("delta"));
    response
}

async fn session_detail(client: &reqwest::Client, base: &str, token: &str, session: &str) -> Value {
    let response = client
        .get(format!("{base}/sessions/{session}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn last_answer(client: &reqwest::Client, base: &str, token: &str, session: &str) -> Value {
    let detail = session_detail(client, base, token, session).await;
    detail["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone()
}

fn words(n: usize) -> String {
    (1..=n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn sigterm_lets_short_answers_finish_and_stores_long_ones_as_stopped() {
    let db = TestDb::new();
    let port = free_port();
    let client = reqwest::Client::new();
    let mut daemon = Daemon::spawn_with(
        &db,
        port,
        &["--echo-delay-ms", "100", "--shutdown-grace-secs", "2"],
    )
    .await;
    let (_, token) = sign_up_and_log_in(&client, &daemon.base).await;
    let short = new_session(&client, &daemon.base, &token).await;
    let long = new_session(&client, &daemon.base, &token).await;
    let short_stream = start_stream(&client, &daemon.base, &token, &short, &words(5)).await;
    let long_stream = start_stream(&client, &daemon.base, &token, &long, &words(200)).await;

    let signalled = Instant::now();
    daemon.signal("TERM");
    // Both clients see their stream end properly.
    let short_rest = short_stream.text().await.unwrap();
    assert!(short_rest.ends_with("data: [DONE]\n\n"), "{short_rest}");
    let long_rest = long_stream.text().await.unwrap();
    assert!(long_rest.ends_with("data: [DONE]\n\n"), "{long_rest}");
    let status = daemon.wait(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "the grace period bounds shutdown"
    );
    drop(daemon);

    let daemon = Daemon::spawn(&db, port).await;
    let short_answer = last_answer(&client, &daemon.base, &token, &short).await;
    assert_eq!(short_answer["status"], "complete");
    assert_eq!(short_answer["content"], words(5).as_str());
    let long_answer = last_answer(&client, &daemon.base, &token, &long).await;
    assert_eq!(long_answer["status"], "stopped");
    let partial = long_answer["content"].as_str().unwrap();
    assert!(
        partial.starts_with("w1 w2") && partial.len() < words(200).len(),
        "{partial}"
    );
    // What the client received is exactly what was stored.
    let received = streamed_text(&parse_sse(&long_rest));
    assert!(
        partial.ends_with(&received),
        "stored {partial:?}, streamed tail {received:?}"
    );
}

#[tokio::test]
async fn after_sigkill_an_answer_left_streaming_is_marked_interrupted() {
    let db = TestDb::new();
    let port = free_port();
    let client = reqwest::Client::new();
    let mut daemon = Daemon::spawn_with(&db, port, &["--echo-delay-ms", "100"]).await;
    let (_, token) = sign_up_and_log_in(&client, &daemon.base).await;
    let session = new_session(&client, &daemon.base, &token).await;
    let stream = start_stream(&client, &daemon.base, &token, &session, &words(100)).await;
    let before = last_answer(&client, &daemon.base, &token, &session).await;
    assert_eq!(before["status"], "streaming");
    daemon.signal("KILL");
    daemon.wait(Duration::from_secs(10));
    drop(stream);
    drop(daemon);

    let daemon = Daemon::spawn(&db, port).await;
    let after = last_answer(&client, &daemon.base, &token, &session).await;
    assert_eq!(
        after["status"], "error",
        "not left streaming forever: {after}"
    );
    // The session takes new prompts.
    let again = client
        .post(format!("{}/chat/stream", daemon.base))
        .bearer_auth(&token)
        .json(&json!({ "session_id": session, "prompt": "back" }))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed_text(&read_sse(again).await), "back");
}

/// One client's closed loop of turns in its own session; records each turn whose stream it saw
/// end with `[DONE]` and no error, until the server goes away.
async fn turns_until_killed(
    client: reqwest::Client,
    base: String,
    token: String,
    session: String,
    tag: usize,
    finished: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
) {
    for turn in 0.. {
        let prompt = format!("client {tag} turn {turn} {}", words(8));
        let Ok(response) = client
            .post(format!("{base}/chat/stream"))
            .bearer_auth(&token)
            .json(&json!({ "session_id": session, "prompt": prompt }))
            .send()
            .await
        else {
            return;
        };
        let Ok(body) = response.text().await else {
            return;
        };
        let events = parse_sse(&body);
        let clean = events.last().is_some_and(|e| e.data == "[DONE]")
            && !events.iter().any(|e| e.data.contains("\"error\""));
        if !clean {
            return;
        }
        assert_eq!(streamed_text(&events), prompt);
        finished.lock().unwrap().push((session.clone(), prompt));
    }
}

#[tokio::test]
async fn sigkill_right_after_a_burst_keeps_every_answer_whose_client_saw_done() {
    const CLIENTS: usize = 24;
    let db = TestDb::new();
    let port = free_port();
    let client = reqwest::Client::new();
    let mut daemon = Daemon::spawn_with(&db, port, &["--max-generations-per-user", "64"]).await;
    let (_, token) = sign_up_and_log_in(&client, &daemon.base).await;
    let finished = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut loops = Vec::new();
    for tag in 0..CLIENTS {
        let session = new_session(&client, &daemon.base, &token).await;
        loops.push(tokio::spawn(turns_until_killed(
            client.clone(),
            daemon.base.clone(),
            token.clone(),
            session,
            tag,
            finished.clone(),
        )));
    }
    // Kill in the middle of the burst: many turns done, many more in flight.
    let deadline = Instant::now() + Duration::from_secs(30);
    while finished.lock().unwrap().len() < 3 * CLIENTS {
        assert!(Instant::now() < deadline, "the burst did not get going");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    daemon.signal("KILL");
    daemon.wait(Duration::from_secs(10));
    for task in loops {
        task.await.unwrap();
    }
    drop(daemon);

    let daemon = Daemon::spawn(&db, port).await;
    let finished = finished.lock().unwrap().clone();
    let mut sessions: std::collections::HashMap<String, Value> = Default::default();
    for (session, prompt) in &finished {
        if !sessions.contains_key(session) {
            let detail = session_detail(&client, &daemon.base, &token, session).await;
            sessions.insert(session.clone(), detail);
        }
        let messages = sessions[session]["messages"].as_array().unwrap();
        let at = messages
            .iter()
            .position(|m| m["role"] == "user" && m["content"] == prompt.as_str())
            .unwrap_or_else(|| panic!("prompt {prompt:?} was lost"));
        let answer = &messages[at + 1];
        assert_eq!(answer["status"], "complete", "{answer}");
        assert_eq!(answer["content"], prompt.as_str(), "{answer}");
    }
    // Nothing is left `streaming` after the restart.
    for detail in sessions.values() {
        assert!(detail["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["status"] != "streaming"));
    }
}

/// `GET /readyz` as a load balancer's probe sends it: a fresh connection each time.
async fn readyz(base: &str) -> Option<StatusCode> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .ok()
        .map(|r| r.status())
}

#[tokio::test]
async fn readyz_turns_503_the_moment_sigterm_arrives_while_answers_drain() {
    let db = TestDb::new();
    let client = reqwest::Client::new();
    let mut daemon = Daemon::spawn_with(
        &db,
        free_port(),
        &["--echo-delay-ms", "50", "--shutdown-grace-secs", "20"],
    )
    .await;
    assert_eq!(readyz(&daemon.base).await, Some(StatusCode::OK));
    let (_, token) = sign_up_and_log_in(&client, &daemon.base).await;
    let session = new_session(&client, &daemon.base, &token).await;
    let other = new_session(&client, &daemon.base, &token).await;
    // 60 words at 50 ms: about three seconds of answer left when the signal comes.
    let stream = start_stream(&client, &daemon.base, &token, &session, &words(60)).await;

    daemon.signal("TERM");
    let signalled = Instant::now();
    let mut status = readyz(&daemon.base).await;
    while status == Some(StatusCode::OK) && signalled.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = readyz(&daemon.base).await;
    }
    assert_eq!(status, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "503 within {:?}",
        signalled.elapsed()
    );
    // Still alive, and still draining: the answer has not ended yet.
    let health = reqwest::get(format!("{}/healthz", daemon.base))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let probe = reqwest::get(format!("{}/readyz", daemon.base))
        .await
        .unwrap();
    assert_eq!(probe.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = probe.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("shutting down"));
    // A new answer would be cut off by the shutdown: it is sent elsewhere.
    let refused = client
        .post(format!("{}/chat/stream", daemon.base))
        .bearer_auth(&token)
        .json(&json!({ "session_id": other, "prompt": "too late" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));

    // The running answer finishes whole, and then the process exits cleanly.
    let rest = stream.text().await.unwrap();
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    assert!(rest.contains("w60"), "the answer was not cut: {rest}");
    let exit = daemon.wait(Duration::from_secs(20));
    assert!(exit.success(), "exit status {exit:?}");
}
