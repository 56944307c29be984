//! A database that goes away or stays locked: requests fail fast with 503 and `Retry-After`
//! (never hang, never 500), a stream whose answer cannot be stored says so before `[DONE]`, and
//! once the database is back the server heals by itself and the answer is stored after all.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::support::{
    expect_error, parse_sse, postgres_url, streamed_text, TestDb, TestServer, TestUser,
};

/// The bound on database waits the servers here run with.
const BOUND: Duration = Duration::from_millis(800);

/// A TCP pass-through between the server and PostgreSQL that a test can cut and restore.
struct PassThrough {
    port: u16,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl PassThrough {
    async fn start(target: SocketAddr) -> PassThrough {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = PassThrough {
            port,
            target,
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (target, tasks) = (self.target, self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Closes every connection and refuses new ones.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}

/// Polls `GET /sessions` until it answers 200.
async fn wait_until_healthy(server: &TestServer, user: &TestUser, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let response = server.get(user, "/sessions").send().await.unwrap();
        if response.status() == StatusCode::OK {
            return;
        }
        assert!(Instant::now() < deadline, "the server did not heal");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the session until its last answer is stored as `status` with `text`.
async fn wait_for_stored_answer(
    server: &TestServer,
    user: &TestUser,
    session: &str,
    text: &str,
    status: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = server
            .get(user, &format!("/sessions/{session}"))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            let detail: Value = response.json().await.unwrap();
            let last = detail["messages"].as_array().unwrap().last().cloned();
            if let Some(last) = last {
                if last["status"] == status && last["content"] == text {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the answer was never stored after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts an echo answer of `words` words and reads until its first event is in; returns the
/// response, the prompt and what was read so far.
async fn start_answer(
    server: &TestServer,
    user: &TestUser,
    session: &str,
    words: usize,
) -> (reqwest::Response, String, String) {
    let prompt = (1..=words)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut response = server
        .chat(user, json!({ "session_id": session, "prompt": prompt }))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut head = String::new();
    while !head.contains("\n\n") {
        let chunk = response.chunk().await.unwrap().expect("a first event");
        head.push_str(&String::from_utf8_lossy(&chunk));
    }
    (response, prompt, head)
}

/// Reads the rest of a stream and returns all its events, `head` included.
async fn all_events(head: String, response: reqwest::Response) -> Vec<crate::support::SseEvent> {
    let rest = tokio::time::timeout(Duration::from_secs(30), response.text())
        .await
        .expect("the stream ended")
        .unwrap();
    parse_sse(&(head + &rest))
}

fn assert_not_stored_then_done(events: &[crate::support::SseEvent]) {
    let n = events.len();
    assert!(n >= 2, "{events:?}");
    assert_eq!(events[n - 1].data, "[DONE]");
    let error: Value = serde_json::from_str(&events[n - 2].data).unwrap();
    assert_eq!(error["error"]["code"], "answer_not_stored", "{events:?}");
}

fn new_session(server: &TestServer, user: &TestUser) -> reqwest::RequestBuilder {
    server
        .post(user, "/sessions")
        .json(&json!({ "title": "another" }))
}

/// Times a request that must fail within the bound with 503 and `Retry-After`.
async fn expect_fast_503(request: reqwest::RequestBuilder) {
    let started = Instant::now();
    let response = request.send().await.unwrap();
    let waited = started.elapsed();
    assert!(response.headers().contains_key("retry-after"));
    expect_error(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(waited < BOUND * 4, "waited {waited:?} for a 503");
}

#[tokio::test]
async fn postgres_cut_off_mid_stream_fails_fast_and_heals() {
    let Some(url) = postgres_url() else {
        return; // the pass-through needs PostgreSQL (CI sets OMNICHAT_TEST_DATABASE_URL)
    };
    let parsed = reqwest::Url::parse(&url).unwrap();
    let target: SocketAddr = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5432)
    )
    .parse()
    .unwrap();
    let proxy = PassThrough::start(target).await;
    let mut through = parsed.clone();
    through.set_port(Some(proxy.port)).unwrap();
    let db = TestDb::at(through.to_string());
    let bound = BOUND.as_millis().to_string();
    let server =
        TestServer::start_on(db, &["--db-timeout-ms", &bound, "--echo-delay-ms", "40"]).await;
    let user = server.user().await;
    let session = server.session(&user, "Outage").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (stream, prompt, head) = start_answer(&server, &user, &session, 30).await;
    proxy.cut();
    expect_fast_503(server.get(&user, "/sessions")).await;
    expect_fast_503(new_session(&server, &user)).await;
    let events = all_events(head, stream).await;
    assert_eq!(
        streamed_text(&events),
        prompt,
        "every token still reaches the client"
    );
    assert_not_stored_then_done(&events);

    proxy.restore().await;
    wait_until_healthy(&server, &user, Duration::from_secs(15)).await;
    wait_for_stored_answer(&server, &user, &session, &prompt, "complete").await;
    // And chatting works again, without a restart.
    let again = server
        .chat(&user, json!({ "session_id": session, "prompt": "back" }))
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        streamed_text(&parse_sse(&again.text().await.unwrap())),
        "back"
    );
}

#[tokio::test]
async fn sqlite_locked_by_another_writer_fails_writes_fast_and_heals() {
    if postgres_url().is_some() {
        return; // the lock below is SQLite's
    }
    let bound = BOUND.as_millis().to_string();
    let server =
        TestServer::start_with(&["--db-timeout-ms", &bound, "--echo-delay-ms", "40"]).await;
    let user = server.user().await;
    let session = server.session(&user, "Locked").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (stream, prompt, head) = start_answer(&server, &user, &session, 20).await;
    // Another process holding the write lock, as a long migration or a backup tool would.
    let locker = Database::connect(server.db.url.clone()).await.unwrap();
    locker.execute_unprepared("BEGIN IMMEDIATE").await.unwrap();

    expect_fast_503(new_session(&server, &user)).await;
    let events = all_events(head, stream).await;
    assert_eq!(
        streamed_text(&events),
        prompt,
        "every token still reaches the client"
    );
    assert_not_stored_then_done(&events);
    // Reads go on beside the lock.
    let listed = server.get(&user, "/sessions").send().await.unwrap();
    assert_eq!(listed.status(), StatusCode::OK);

    locker.execute_unprepared("ROLLBACK").await.unwrap();
    wait_for_stored_answer(&server, &user, &session, &prompt, "complete").await;
    let again = server
        .chat(&user, json!({ "session_id": session, "prompt": "back" }))
        .await;
    assert_eq!(again.status(), StatusCode::OK);

    // The metrics saw it: the final write tried again twice, then in the background until stored.
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let retries = |write: &str| -> f64 {
        let prefix = format!("omnichat_store_retries_total{{write=\"{write}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .map_or(0.0, |v| v.parse().unwrap())
    };
    assert_eq!(retries("final_answer"), 2.0, "{metrics}");
    assert!(retries("deferred_answer") >= 1.0, "{metrics}");
}

/// Polls `GET /readyz` until it answers `want` (the check is cached for about a second).
async fn wait_for_readyz(server: &TestServer, want: StatusCode) -> Duration {
    let started = Instant::now();
    loop {
        let response = server
            .client
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap();
        if response.status() == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "/readyz stayed {} instead of {want}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn readyz_is_503_while_postgres_is_cut_off_and_200_once_it_is_back() {
    let Some(url) = postgres_url() else {
        return; // the pass-through needs PostgreSQL (a SQLite file cannot be cut off)
    };
    let parsed = reqwest::Url::parse(&url).unwrap();
    let target: SocketAddr = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5432)
    )
    .parse()
    .unwrap();
    let proxy = PassThrough::start(target).await;
    let mut through = parsed.clone();
    through.set_port(Some(proxy.port)).unwrap();
    let bound = BOUND.as_millis().to_string();
    let server = TestServer::start_on(
        TestDb::at(through.to_string()),
        &["--db-timeout-ms", &bound],
    )
    .await;
    wait_for_readyz(&server, StatusCode::OK).await;

    proxy.cut();
    let took = wait_for_readyz(&server, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(took < Duration::from_secs(4), "noticed after {took:?}");
    let body: Value = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("database"),
        "{body}"
    );
    // Liveness is another question: the process is fine.
    let health = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    proxy.restore().await;
    wait_for_readyz(&server, StatusCode::OK).await;
}
