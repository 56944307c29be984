//! The cap on concurrent connections (`OMNICHAT_MAX_CONNECTIONS`): past it a new connection waits
//! unserved, while those already accepted keep being served; it is served once one closes.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use serde_json::Value;

use crate::support::{sign_up_and_log_in, TestServer};

/// A client that opens a fresh connection for every request and keeps none idle: an idle pooled
/// connection would hold one of the server's slots.
fn unpooled() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Starts a long echo answer on its own connection and waits for its first event.
async fn held_stream(server: &TestServer, token: &str) -> reqwest::Response {
    let client = unpooled();
    let session: Value = client
        .post(server.url("/sessions"))
        .bearer_auth(token)
        .json(&json!({ "title": "Held" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prompt = (0..60)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut response = client
        .post(server.url("/chat/stream"))
        .bearer_auth(token)
        .json(&json!({ "session_id": session["id"], "prompt": prompt }))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.chunk().await.unwrap().expect("a first event");
    response
}

#[tokio::test]
async fn past_the_cap_new_connections_wait_and_accepted_ones_go_on() {
    let server = TestServer::start_with(&["--max-connections", "2", "--echo-delay-ms", "50"]).await;
    // Signed up over connections that close after each request: an idle one would hold a slot.
    let (_, token) = sign_up_and_log_in(&unpooled(), &server.base).await;
    let first = held_stream(&server, &token).await;
    let mut second = held_stream(&server, &token).await;

    let waiting = unpooled()
        .get(server.url("/healthz"))
        .timeout(Duration::from_millis(700))
        .send()
        .await;
    assert!(
        waiting.is_err(),
        "a third connection was served past the cap"
    );

    // Those already accepted keep streaming.
    let more = tokio::time::timeout(Duration::from_secs(5), second.chunk())
        .await
        .expect("the second stream goes on")
        .unwrap();
    assert!(more.is_some());

    // Once one closes, the waiting kind of request is served again.
    drop(first);
    let served = unpooled()
        .get(server.url("/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("served once a slot is free");
    assert_eq!(served.status(), StatusCode::OK);
}
