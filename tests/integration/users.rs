//! Sign-up and profile: `POST /users/`, `GET` and `PUT /users/me/`, and their error paths.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{expect_error, TestServer};

#[tokio::test]
async fn sign_up_returns_the_profile_without_the_password() {
    let server = TestServer::start().await;
    // Unique per run: the PostgreSQL database may outlive one run of the suite.
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let username = format!("ann-{tag}");
    let response = server
        .sign_up(
            &username,
            &format!("ann-{tag}@Example.com"),
            "strongpassword",
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["username"], username.as_str());
    assert!(
        body["email"].as_str().unwrap().ends_with("@example.com"),
        "email is normalised: {body}"
    );
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert_eq!(
        body.as_object().unwrap().len(),
        3,
        "only id, username, email: {body}"
    );
}

#[tokio::test]
async fn taken_email_or_username_is_a_conflict() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let same_email = server
        .sign_up("someone-else", &user.email, "strongpassword")
        .await;
    let detail = expect_error(same_email, StatusCode::CONFLICT).await;
    assert!(detail.contains("email"), "{detail}");
    let same_name = server
        .sign_up(
            &user.username,
            &format!("{}@example.org", uuid::Uuid::new_v4()),
            "strongpassword",
        )
        .await;
    let detail = expect_error(same_name, StatusCode::CONFLICT).await;
    assert!(detail.contains("username"), "{detail}");
}

#[tokio::test]
async fn invalid_fields_are_422() {
    let server = TestServer::start().await;
    let email = || format!("{}@example.com", uuid::Uuid::new_v4());
    let long_name = "x".repeat(65);
    let long_password = "p".repeat(1025);
    let cases = [
        ("", email(), "strongpassword".to_string(), "username"),
        (
            long_name.as_str(),
            email(),
            "strongpassword".to_string(),
            "username",
        ),
        (
            "bob",
            "not-an-email".to_string(),
            "strongpassword".to_string(),
            "email",
        ),
        ("bob", email(), "short".to_string(), "password"),
        ("bob", email(), long_password, "password"),
    ];
    for (username, email, password, field) in cases {
        let response = server.sign_up(username, &email, &password).await;
        let detail = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(detail.contains(field), "{field}: {detail}");
    }
    let missing = server
        .client
        .post(server.url("/users/"))
        .json(&json!({ "username": "bob", "password": "strongpassword" }))
        .send()
        .await
        .unwrap();
    expect_error(missing, StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[tokio::test]
async fn malformed_wrong_type_and_oversized_bodies() {
    let server = TestServer::start().await;
    let malformed = server
        .client
        .post(server.url("/users/"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    expect_error(malformed, StatusCode::BAD_REQUEST).await;

    let not_json = server
        .client
        .post(server.url("/users/"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    expect_error(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    let huge = server
        .client
        .post(server.url("/users/"))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    expect_error(huge, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn me_with_and_without_trailing_slash_and_rename() {
    let server = TestServer::start().await;
    let user = server.user().await;
    for path in ["/users/me", "/users/me/"] {
        let response = server.get(&user, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["id"], user.id.as_str());
        assert_eq!(body["email"], user.email.as_str());
    }
    let new_name = format!(
        "renamed-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let renamed = server
        .put(&user, "/users/me/")
        .json(&json!({ "username": new_name }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    let body: Value = renamed.json().await.unwrap();
    assert_eq!(body["username"], new_name.as_str());
    assert_eq!(body["email"], user.email.as_str());
    let again: Value = server.get_json(&user, "/users/me/").await;
    assert_eq!(again["username"], new_name.as_str());

    let other = server.user().await;
    let clash = server
        .put(&other, "/users/me")
        .json(&json!({ "username": new_name }))
        .send()
        .await
        .unwrap();
    expect_error(clash, StatusCode::CONFLICT).await;
    let empty = server
        .put(&other, "/users/me")
        .json(&json!({ "username": "  " }))
        .send()
        .await
        .unwrap();
    expect_error(empty, StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let server = TestServer::start().await;
    let missing = server
        .client
        .get(server.url("/nowhere"))
        .send()
        .await
        .unwrap();
    expect_error(missing, StatusCode::NOT_FOUND).await;
    let wrong = server
        .client
        .patch(server.url("/users/me/"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.headers()["allow"], "GET, PUT, DELETE");
    expect_error(wrong, StatusCode::METHOD_NOT_ALLOWED).await;
    let health = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn cors_lets_listed_web_origins_call_the_api() {
    let server = TestServer::start_with(&["--cors-origins", "https://app.example.com"]).await;
    let user = server.user().await;
    let preflight = server
        .client
        .request(reqwest::Method::OPTIONS, server.url("/chat/stream"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("last-event-id"));

    let me = server
        .get(&user, "/users/me")
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(me.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("x-generation-id"));

    let stranger = server
        .get(&user, "/users/me")
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), StatusCode::OK);
    assert!(!stranger
        .headers()
        .contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn the_root_serves_the_chat_page() {
    let server = TestServer::start().await;
    let page = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("connect-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>OmniChat</title>"));
    assert!(html.contains("/assets/app.js"), "the page loads its script");
    let script = server
        .client
        .get(server.url("/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        script.text().await.unwrap().contains("/chat/stream"),
        "the page drives the streaming endpoint"
    );
}
