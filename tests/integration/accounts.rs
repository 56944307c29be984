//! Accounts you can trust, over HTTP: no common or personal passwords, weak hashes upgraded at
//! login, tokens bound to our issuer and audience, and request bodies that are objects with
//! only the fields the API documents.

use jsonwebtoken::{encode, EncodingKey, Header};
use omnichat_entity::users;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, Database, EntityTrait, QueryFilter};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{expect_error, TestDb, TestServer, TestUser};

fn unique(prefix: &str) -> (String, String) {
    let tag = &Uuid::new_v4().simple().to_string()[..12];
    (
        format!("{prefix}-{tag}"),
        format!("{prefix}-{tag}@example.com"),
    )
}

/// Sends `body` as raw JSON and returns the error detail, expecting `status`.
async fn send_raw(
    server: &TestServer,
    user: &TestUser,
    method: reqwest::Method,
    path: &str,
    body: &str,
    status: StatusCode,
) -> String {
    let response = server
        .client
        .request(method, server.url(path))
        .bearer_auth(&user.token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    expect_error(response, status).await
}

#[tokio::test]
async fn a_body_must_be_an_object() {
    let server = TestServer::start().await;
    let user = server.user().await;
    for body in ["[]", "[\"a title\"]", "\"a title\"", "42", "null"] {
        let detail = send_raw(
            &server,
            &user,
            reqwest::Method::POST,
            "/sessions",
            body,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(detail.contains("must be a JSON object"), "{body}: {detail}");
    }
    let sessions: Vec<Value> = server.get_json(&user, "/sessions").await;
    assert!(sessions.is_empty(), "no session was created: {sessions:?}");
    // Broken JSON stays a 400, whatever it starts with.
    send_raw(
        &server,
        &user,
        reqwest::Method::POST,
        "/sessions",
        "[1,",
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn unknown_fields_are_refused_by_name_and_documented_bodies_still_work() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let session = server.session(&user, "Strict").await;
    let id = session["id"].as_str().expect("id").to_owned();

    let (username, email) = unique("strict");
    let smuggled = [
        (
            reqwest::Method::POST,
            "/users/".to_owned(),
            json!({ "username": username, "email": email, "password": "correct horse battery", "is_admin": true }),
            "is_admin",
        ),
        (
            reqwest::Method::PUT,
            "/users/me/".to_owned(),
            json!({ "username": "renamed", "email": "other@example.com" }),
            "email",
        ),
        (
            reqwest::Method::POST,
            "/sessions".to_owned(),
            json!({ "title": "t", "user_id": Uuid::new_v4() }),
            "user_id",
        ),
        (
            reqwest::Method::PUT,
            format!("/sessions/{id}"),
            json!({ "title": "t", "owner": "someone" }),
            "owner",
        ),
        (
            reqwest::Method::POST,
            "/chat/stream".to_owned(),
            json!({ "session_id": id, "prompt": "hi", "provider": "echo", "api_base": "http://127.0.0.1:9/v1" }),
            "api_base",
        ),
        (
            reqwest::Method::POST,
            "/chat/stream".to_owned(),
            json!({ "session_id": id, "prompt": "hi", "provider": "openai", "base_url": "http://127.0.0.1:9/v1" }),
            "base_url",
        ),
    ];
    for (method, path, body, field) in smuggled {
        let detail = send_raw(
            &server,
            &user,
            method.clone(),
            &path,
            &body.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            detail.contains(&format!("unknown field `{field}`")),
            "{method} {path}: {detail}"
        );
    }
    // Nothing was done: the account does not exist, the names and history are unchanged.
    let detail = expect_error(
        server.login(&email, "correct horse battery").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(detail, "Incorrect username or password");
    let me: Value = server.get_json(&user, "/users/me/").await;
    assert_eq!(me["username"], user.username.as_str());
    let stored: Value = server.get_json(&user, &format!("/sessions/{id}")).await;
    assert_eq!(stored["title"], "Strict");
    assert_eq!(stored["messages"], json!([]), "{stored}");

    // The documented bodies, exactly as the README walk sends them.
    let (username, email) = unique("walk");
    let created = server
        .sign_up(&username, &email, "correct horse battery")
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let renamed = server
        .put(&user, "/users/me/")
        .json(&json!({ "username": format!("{username}-2") }))
        .send()
        .await
        .expect("rename me");
    assert_eq!(renamed.status(), StatusCode::OK);
    let untitled = server
        .post(&user, "/sessions")
        .json(&json!({}))
        .send()
        .await
        .expect("create untitled");
    assert_eq!(untitled.status(), StatusCode::OK);
    let retitled = server
        .put(&user, &format!("/sessions/{id}"))
        .json(&json!({ "title": "Jokes" }))
        .send()
        .await
        .expect("rename session");
    assert_eq!(retitled.status(), StatusCode::OK);
    let chat = server
        .chat(
            &user,
            json!({ "session_id": id, "prompt": "Tell me a joke", "provider": "echo", "model": "echo" }),
        )
        .await;
    assert_eq!(chat.status(), StatusCode::OK);
    let events = crate::support::read_sse(chat).await;
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
}

const SECRET: &str = "accounts-test-secret-0123456789abcdef";

fn forge(claims: &Value) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

async fn me_status(server: &TestServer, token: &str) -> StatusCode {
    server
        .client
        .get(server.url("/users/me/"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /users/me/")
        .status()
}

#[tokio::test]
async fn tokens_carry_and_need_our_issuer_audience_and_lifetime() {
    let server = TestServer::start_with(&["--jwt-secret", SECRET, "--token-ttl-secs", "900"]).await;
    let user = server.user().await;
    let login = server.login(&user.email, &user.password).await;
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(login.headers()["x-content-type-options"], "nosniff");
    let body: Value = login.json().await.expect("token json");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    let issued = body["access_token"].as_str().expect("token");
    assert_eq!(me_status(&server, issued).await, StatusCode::OK);

    let now = chrono::Utc::now().timestamp();
    let claims = |extra: Value| {
        let mut claims = json!({ "sub": user.id, "iat": now, "exp": now + 600 });
        if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            claims.extend(extra.clone());
        }
        claims
    };
    let ours = json!({ "iss": "omnichat", "aud": "omnichat-api" });
    assert_eq!(
        me_status(&server, &forge(&claims(ours))).await,
        StatusCode::OK,
        "a forged token with every claim right passes, so the refusals below are for their claim"
    );
    let past_nbf = json!({ "iss": "omnichat", "aud": "omnichat-api", "nbf": now - 60 });
    assert_eq!(
        me_status(&server, &forge(&claims(past_nbf))).await,
        StatusCode::OK
    );
    let refused = [
        ("no iss or aud", json!({})),
        ("no aud", json!({ "iss": "omnichat" })),
        ("no iss", json!({ "aud": "omnichat-api" })),
        (
            "wrong aud",
            json!({ "iss": "omnichat", "aud": "another-api" }),
        ),
        (
            "wrong iss",
            json!({ "iss": "someone-else", "aud": "omnichat-api" }),
        ),
        (
            "nbf in an hour",
            json!({ "iss": "omnichat", "aud": "omnichat-api", "nbf": now + 3600 }),
        ),
    ];
    for (what, extra) in refused {
        let response = server
            .client
            .get(server.url("/users/me/"))
            .bearer_auth(forge(&claims(extra)))
            .send()
            .await
            .expect("GET /users/me/");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        expect_error(response, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn json_answers_and_errors_say_nosniff() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let ok = server.get(&user, "/sessions").send().await.expect("list");
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
    let missing = server
        .get(&user, &format!("/sessions/{}", Uuid::new_v4()))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn common_passwords_and_the_own_email_or_username_are_refused() {
    let server = TestServer::start().await;
    let (username, email) = unique("pw");
    for common in ["password", "12345678", "PassWord1", "iloveyou"] {
        let detail = expect_error(
            server.sign_up(&username, &email, common).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(detail.contains("too common"), "{common}: {detail}");
    }
    let detail = expect_error(
        server
            .sign_up(&username, &email, &email.to_uppercase())
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(detail.contains("the email or the username"), "{detail}");
    let detail = expect_error(
        server
            .sign_up(&username, &email, &username.to_uppercase())
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(detail.contains("the email or the username"), "{detail}");
    // None of the refusals created the account: a good password still can.
    let ok = server
        .sign_up(&username, &email, "correct horse battery")
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

/// The stored hash of the account with `email`, read from the database itself.
async fn stored_hash(db: &TestDb, email: &str) -> String {
    let conn = Database::connect(db.url.clone()).await.expect("connect");
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(&conn)
        .await
        .expect("query")
        .expect("user exists");
    user.password_hash
}

#[tokio::test]
async fn a_hash_weaker_than_the_current_cost_is_replaced_at_login() {
    let old = TestServer::start_with(&["--scrypt-log-n", "4"]).await;
    let (username, email) = unique("rehash");
    let password = "correct horse battery";
    assert_eq!(
        old.sign_up(&username, &email, password).await.status(),
        StatusCode::OK
    );
    let db = old.stop().await;
    let before = stored_hash(&db, &email).await;
    assert!(before.starts_with("$scrypt$ln=4,"), "{before}");

    let new = TestServer::start_on(db.shared(), &["--scrypt-log-n", "5"]).await;
    let wrong = new.login(&email, "not the password").await;
    expect_error(wrong, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        stored_hash(&db, &email).await,
        before,
        "a failed login changes nothing"
    );
    assert_eq!(new.login(&email, password).await.status(), StatusCode::OK);
    let after = stored_hash(&db, &email).await;
    assert!(after.starts_with("$scrypt$ln=5,"), "{after}");
    // The new hash is the same password: it still logs in, and is not rehashed again.
    assert_eq!(new.login(&email, password).await.status(), StatusCode::OK);
    assert_eq!(stored_hash(&db, &email).await, after);
    new.stop().await;

    // A server configured weaker again never downgrades the hash.
    let weak = TestServer::start_on(db.shared(), &["--scrypt-log-n", "4"]).await;
    assert_eq!(weak.login(&email, password).await.status(), StatusCode::OK);
    assert_eq!(stored_hash(&db, &email).await, after);
    weak.stop().await;
    drop(db);
}
