//! Login and tokens: `POST /token` and every way a bearer token can be wrong.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{encode, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{expect_error, TestServer};

const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

#[tokio::test]
async fn login_issues_a_bearer_token_that_is_not_cached() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let response = server.login(&user.email, &user.password).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    let token = body["access_token"].as_str().unwrap();
    let me = server
        .client
        .get(server.url("/users/me/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    // The email is matched case-insensitively, as it was stored.
    let upper = server
        .login(&user.email.to_uppercase(), &user.password)
        .await;
    assert_eq!(upper.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let wrong = server.login(&user.email, "not the password").await;
    assert_eq!(wrong.headers()["www-authenticate"], "Bearer");
    let wrong_detail = expect_error(wrong, StatusCode::UNAUTHORIZED).await;
    // A fresh unknown email each run: on the shared PostgreSQL database a fixed one would pile
    // up failures across runs and be throttled.
    let nobody = format!("nobody-{}@example.com", uuid::Uuid::new_v4().simple());
    let unknown = server.login(&nobody, "not the password").await;
    let unknown_detail = expect_error(unknown, StatusCode::UNAUTHORIZED).await;
    assert_eq!(wrong_detail, "Incorrect username or password");
    assert_eq!(unknown_detail, wrong_detail);
}

#[tokio::test]
async fn login_form_errors() {
    let server = TestServer::start().await;
    let as_json = server
        .client
        .post(server.url("/token"))
        .json(&json!({ "username": "a@example.com", "password": "x" }))
        .send()
        .await
        .unwrap();
    expect_error(as_json, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let missing = server
        .client
        .post(server.url("/token"))
        .form(&[("username", "a@example.com")])
        .send()
        .await
        .unwrap();
    expect_error(missing, StatusCode::UNPROCESSABLE_ENTITY).await;
}

fn forge(claims: &Value, secret: &str) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let server = TestServer::start_with(&["--jwt-secret", SECRET]).await;
    let user = server.user().await;
    let now = chrono::Utc::now().timestamp();
    let good = forge(
        &json!({ "sub": user.id, "iat": now, "exp": now + 600, "iss": "omnichat", "aud": "omnichat-api" }),
        SECRET,
    );
    let me = |token: String| {
        let client = server.client.clone();
        let url = server.url("/users/me");
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(
        me(good.clone()).await.status(),
        StatusCode::OK,
        "a token we signed ourselves works"
    );

    let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload =
        URL_SAFE_NO_PAD.encode(json!({ "sub": user.id, "iat": now, "exp": now + 600, "iss": "omnichat", "aud": "omnichat-api" }).to_string());
    let mut tampered = good.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'a' { b'b' } else { b'a' };
    let bad = [
        ("no token", None),
        ("garbage", Some("not.a.token".to_string())),
        ("alg none", Some(format!("{header_none}.{payload}."))),
        (
            "other key",
            Some(forge(
                &json!({ "sub": user.id, "iat": now, "exp": now + 600, "iss": "omnichat", "aud": "omnichat-api" }),
                "another-secret-that-is-32-bytes-long!!",
            )),
        ),
        ("changed byte", Some(String::from_utf8(tampered).unwrap())),
        (
            "expired",
            Some(forge(
                &json!({ "sub": user.id, "iat": now - 7200, "exp": now - 3600, "iss": "omnichat", "aud": "omnichat-api" }),
                SECRET,
            )),
        ),
        (
            "string exp",
            Some(forge(
                &json!({ "sub": user.id, "iat": now, "exp": "tomorrow", "iss": "omnichat", "aud": "omnichat-api" }),
                SECRET,
            )),
        ),
        (
            "no exp",
            Some(forge(
                &json!({ "sub": user.id, "iat": now, "iss": "omnichat", "aud": "omnichat-api" }),
                SECRET,
            )),
        ),
        (
            "no sub",
            Some(forge(
                &json!({ "iat": now, "exp": now + 600, "iss": "omnichat", "aud": "omnichat-api" }),
                SECRET,
            )),
        ),
        (
            "sub not a user id",
            Some(forge(
                &json!({ "sub": "admin", "iat": now, "exp": now + 600, "iss": "omnichat", "aud": "omnichat-api" }),
                SECRET,
            )),
        ),
    ];
    for (what, token) in bad {
        let mut request = server.client.get(server.url("/users/me"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{what}");
    }
}

#[tokio::test]
async fn a_short_configured_secret_is_refused_at_start() {
    let db = crate::support::TestDb::new();
    let mut args = crate::support::base_args(&db);
    args.extend(["--jwt-secret".to_string(), "too-short".to_string()]);
    let cli = <omnichat::config::Cli as clap::Parser>::try_parse_from(args).unwrap();
    let started = omnichat::start(cli.serve.server_config(), |bound| {
        cli.serve.core_config(bound)
    })
    .await;
    let error = started.err().expect("start must fail").to_string();
    assert!(error.contains("32 bytes"), "{error}");
}

#[tokio::test]
async fn tokens_survive_a_restart_with_a_generated_secret() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let db = server.stop().await;
    let again = TestServer::start_on(db, &[]).await;
    let me = again.get(&user, "/users/me").send().await.unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "the generated secret was kept in the database"
    );
}

#[tokio::test]
async fn a_login_burst_past_the_hash_queue_gets_503_and_others_are_served() {
    // One hash at a time, none waiting, and a cost high enough that the logins overlap.
    let server = TestServer::start_with(&[
        "--hash-parallelism",
        "1",
        "--hash-queue",
        "0",
        "--scrypt-log-n",
        "15",
    ])
    .await;
    // Six accounts: logins of one account from one address take turns (login throttling), so
    // only different accounts make a burst the hasher sees at once.
    let mut users = Vec::new();
    for _ in 0..6 {
        users.push(server.user().await);
    }
    let user = &users[0];
    let logins = users.iter().map(|u| server.login(&u.email, &u.password));
    let me = server.get(user, "/users/me").send();
    let (responses, me) = tokio::join!(futures_util::future::join_all(logins), me);
    let ok = responses
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    let refused: Vec<_> = responses
        .iter()
        .filter(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(ok >= 1, "the admitted login succeeds");
    assert!(
        !refused.is_empty(),
        "the rest are refused at once, not queued"
    );
    assert!(refused
        .iter()
        .all(|r| r.headers().contains_key("retry-after")));
    assert_eq!(ok + refused.len(), 6);
    // Requests that need no hashing are served meanwhile.
    assert_eq!(me.unwrap().status(), StatusCode::OK);
}
