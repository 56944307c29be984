//! What a load balancer and a log pipeline rely on: `GET /readyz` while all is well (its 503s are
//! in `database_outage` and `restart`), and the `X-Request-Id` every response carries.

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{read_sse, streamed_text, TestServer};

#[tokio::test]
async fn readyz_is_ok_while_the_database_answers() {
    let server = TestServer::start().await;
    for _ in 0..3 {
        let response = server
            .client
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ready");
    }
    let post = server
        .client
        .post(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let client = &server.client;

    // Made up when the client sends none: a UUID, a new one each time.
    let first = client.get(server.url("/healthz")).send().await.unwrap();
    let second = client.get(server.url("/healthz")).send().await.unwrap();
    let (a, b) = (request_id(&first), request_id(&second));
    assert!(Uuid::parse_str(&a).is_ok(), "{a}");
    assert_ne!(a, b);

    // A sane one from the client comes back as it was, on success, errors and streams alike.
    let unauthorised = client
        .get(server.url("/sessions"))
        .header("x-request-id", "lb-7f3a.42")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(request_id(&unauthorised), "lb-7f3a.42");
    let not_found = server
        .get(&user, &format!("/sessions/{}", Uuid::new_v4()))
        .header("x-request-id", "trace-404")
        .send()
        .await
        .unwrap();
    assert_eq!(not_found.status(), StatusCode::NOT_FOUND);
    assert_eq!(request_id(&not_found), "trace-404");
    let malformed = server
        .post(&user, "/sessions")
        .header("x-request-id", "trace-422")
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert!(malformed.status().is_client_error());
    assert_eq!(request_id(&malformed), "trace-422");
    let session = server.session(&user, "Ids").await;
    let stream = server
        .post(&user, "/chat/stream")
        .header("x-request-id", "trace-sse")
        .json(&json!({ "session_id": session["id"], "prompt": "hello" }))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(request_id(&stream), "trace-sse");
    assert_eq!(streamed_text(&read_sse(stream).await), "hello");

    // One that is too long or not visible ASCII is replaced, not echoed.
    for bad in [
        "x".repeat(129),
        "two words".to_owned(),
        "tab\there".to_owned(),
    ] {
        let response = client
            .get(server.url("/healthz"))
            .header("x-request-id", bad.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let id = request_id(&response);
        assert!(Uuid::parse_str(&id).is_ok(), "{bad:?} became {id}");
    }
    let at_the_limit = "y".repeat(128);
    let response = client
        .get(server.url("/healthz"))
        .header("x-request-id", at_the_limit.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(request_id(&response), at_the_limit);
}
