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
