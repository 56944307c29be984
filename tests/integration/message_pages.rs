//! `GET /sessions/{id}` with `limit` and `before`: the newest page first, each page oldest
//! first, older pages through `Link: <…>; rel="next"`; without them, the spec's whole body.

use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    session_search::echo_turn,
    support::{expect_error, TestServer},
};

/// `GET path` as a session body with its `Link` target.
async fn detail(
    server: &TestServer,
    user: &crate::support::TestUser,
    path: &str,
) -> (Value, Option<String>) {
    let response = server.get(user, path).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    let next = response
        .headers()
        .get(reqwest::header::LINK)
        .map(|v| v.to_str().unwrap().to_owned());
    let next = next.map(|link| {
        link.trim_start_matches('<')
            .trim_end_matches(">; rel=\"next\"")
            .to_owned()
    });
    (response.json().await.expect("json"), next)
}

fn contents(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn messages_page_newest_first_each_page_oldest_first() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let session = server.session(&user, "Long chat").await;
    for n in 1..=3 {
        echo_turn(&server, &user, &session, &format!("turn {n}")).await;
    }
    let id = session["id"].as_str().unwrap();
    let path = format!("/sessions/{id}");

    let (whole, next) = detail(&server, &user, &path).await;
    assert!(next.is_none());
    assert_eq!(
        contents(&whole),
        ["turn 1", "turn 1", "turn 2", "turn 2", "turn 3", "turn 3"]
    );

    let (newest, next) = detail(&server, &user, &format!("{path}?limit=4")).await;
    assert_eq!(contents(&newest), ["turn 2", "turn 2", "turn 3", "turn 3"]);
    assert_eq!(
        newest["title"], "Long chat",
        "the session's fields on every page"
    );
    let next = next.expect("older messages exist");
    let first_shown = newest["messages"][0]["id"].as_str().unwrap();
    assert!(next.contains(&format!("before={first_shown}")), "{next}");
    let (older, last) = detail(&server, &user, &next).await;
    assert_eq!(contents(&older), ["turn 1", "turn 1"]);
    assert!(last.is_none(), "the oldest page has no Link");

    // A page that ends exactly at the first message has no Link either.
    let (exact, none) = detail(&server, &user, &format!("{path}?limit=6")).await;
    assert_eq!(contents(&exact).len(), 6);
    assert!(none.is_none());

    let other = server.session(&user, "Other").await;
    echo_turn(&server, &user, &other, "elsewhere").await;
    let foreign = {
        let (body, _) = detail(
            &server,
            &user,
            &format!("/sessions/{}", other["id"].as_str().unwrap()),
        )
        .await;
        body["messages"][0]["id"].as_str().unwrap().to_owned()
    };
    for bad in [
        format!("{path}?limit=0"),
        format!("{path}?limit=101"),
        format!("{path}?before=not-an-id"),
        format!("{path}?before={foreign}"),
    ] {
        let response = server.get(&user, &bad).send().await.unwrap();
        expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    // Still the owner's session only.
    let stranger = server.user().await;
    let response = server
        .get(&stranger, &format!("{path}?limit=2"))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND).await;
}
