//! `GET /providers` says which providers can answer now: echo always, the others when a TCP
//! connection to their host opens within the probe timeout, the answer cached for a while.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpListener;

use crate::support::TestServer;

/// `(name, reachable)` for every listed provider.
async fn reachability(server: &TestServer) -> Vec<(String, bool)> {
    let user = server.user().await;
    let list: Value = server.get_json(&user, "/providers").await;
    list.as_array()
        .expect("a list")
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("name").to_owned();
            let reachable = p["reachable"].as_bool().expect("a reachable boolean");
            (name, reachable)
        })
        .collect()
}

/// A local address where nothing listens: bound, then released.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

fn pairs(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(n, r)| (n.to_string(), *r)).collect()
}

#[tokio::test]
async fn a_provider_with_nothing_listening_is_reported_unreachable_quickly() {
    let nothing = closed_port().await;
    let server = TestServer::start_with(&[
        "--ollama-host",
        &nothing,
        "--openai-api-key",
        "sk-test",
        "--openai-base-url",
        &format!("{nothing}/v1"),
    ])
    .await;
    let started = Instant::now();
    assert_eq!(
        reachability(&server).await,
        pairs(&[("echo", true), ("openai", false), ("ollama", false)])
    );
    // Sign-up and login included, still far below one probe timeout per provider in a row.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_listening_provider_is_reachable_and_the_answer_is_cached() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let host = format!("http://{}", listener.local_addr().expect("addr"));
    let server = TestServer::start_with(&["--ollama-host", &host]).await;
    assert_eq!(
        reachability(&server).await,
        pairs(&[("echo", true), ("ollama", true)])
    );
    // The daemon goes away: within the cache time the list still shows the last probe, so a
    // page refresh costs no connection.
    drop(listener);
    assert_eq!(
        reachability(&server).await,
        pairs(&[("echo", true), ("ollama", true)])
    );
}

/// A real process (the proxy comes from its environment), with OpenAI configured at a host that
/// only the proxy could reach; returns whether `GET /providers` calls OpenAI reachable.
async fn openai_reachable_through(https_proxy: &str) -> bool {
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let db = crate::support::TestDb::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_omnichat"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--database-url", &db.url, "--scrypt-log-n", "4"])
            .args(crate::support::UNTHROTTLED_ADDRESS)
            // `.invalid` never resolves (RFC 6761): only the proxy can reach it.
            .env("OPENAI_BASE_URL", "https://api.openai.invalid/v1")
            .env("OPENAI_API_KEY", "x")
            .env("HTTPS_PROXY", https_proxy)
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn omnichat"),
    );
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "omnichat did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, token) = crate::support::sign_up_and_log_in(&client, &base).await;
    let list: Value = client
        .get(format!("{base}/providers"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /providers")
        .json()
        .await
        .expect("a JSON list");
    list.as_array()
        .expect("a list")
        .iter()
        .find(|p| p["name"] == "openai")
        .and_then(|p| p["reachable"].as_bool())
        .expect("openai listed with a reachable boolean")
}

#[tokio::test]
async fn behind_an_http_proxy_the_proxy_is_what_must_answer() {
    let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let listening = format!("http://{}", proxy.local_addr().expect("addr"));
    assert!(
        openai_reachable_through(&listening).await,
        "a listening proxy makes a provider behind it reachable"
    );
    let nothing = closed_port().await;
    assert!(
        !openai_reachable_through(&nothing).await,
        "a proxy with nothing listening makes it unreachable"
    );
}
