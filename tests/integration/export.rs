//! `GET /sessions/{id}/export`: a session as a JSON or Markdown download.

use reqwest::{header, StatusCode};
use serde_json::{json, Value};

use crate::{
    session_search::echo_turn,
    support::{expect_error, TestServer},
};

#[tokio::test]
async fn a_session_downloads_as_json_and_markdown() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let session = server.session(&user, "Trip: Lisbon & Porto").await;
    echo_turn(&server, &user, &session, "Plan **three** days").await;
    let id = session["id"].as_str().unwrap();

    let response = server
        .get(&user, &format!("/sessions/{id}/export?format=json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        response.headers()[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"trip-lisbon-porto-{id}.json\"").as_str()
    );
    let exported: Value = response.json().await.unwrap();
    let shown: Value = server.get_json(&user, &format!("/sessions/{id}")).await;
    assert_eq!(
        exported, shown,
        "the JSON export is the session as GET shows it"
    );
    assert_eq!(exported["messages"].as_array().unwrap().len(), 2);

    // JSON is the default.
    let response = server
        .get(&user, &format!("/sessions/{id}/export"))
        .send()
        .await
        .unwrap();
    assert!(response.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .ends_with(".json\""));

    let response = server
        .get(&user, &format!("/sessions/{id}/export?format=markdown"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/markdown; charset=utf-8"
    );
    assert_eq!(
        response.headers()[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"trip-lisbon-porto-{id}.md\"").as_str()
    );
    let text = response.text().await.unwrap();
    assert!(text.starts_with("# Trip: Lisbon & Porto\n"), "{text}");
    let user_at = text.find("## User\n\nPlan **three** days").expect(&text);
    let answer_at = text
        .find("## Assistant (echo · echo-1)\n\nPlan **three** days")
        .expect(&text);
    assert!(user_at < answer_at, "{text}");

    for (path, status) in [
        (
            format!("/sessions/{id}/export?format=pdf"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/sessions/not-an-id/export".to_owned(),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let response = server.get(&user, &path).send().await.unwrap();
        expect_error(response, status).await;
    }
    let stranger = server.user().await;
    let response = server
        .get(&stranger, &format!("/sessions/{id}/export"))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND).await;
    let response = server
        .post(&user, &format!("/sessions/{id}/export"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "GET");
    let response = server
        .client
        .get(server.url(&format!("/sessions/{id}/export")))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED).await;
}
