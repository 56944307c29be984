//! The end of a token's and an account's life, over HTTP: logging out refuses that token, and
//! logging out everywhere every old token (on every node and after a restart), a password change needs the current password and refuses
//! every old token, and a deleted account stops its answers, leaves no rows and frees its email.

use std::time::{Duration, Instant};

use omnichat_entity::{messages, sessions};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, Database, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{expect_error, postgres_url, TestDb, TestServer, TestUser};

/// `user` with another token, from a fresh login with `password`.
async fn relogin(server: &TestServer, user: &TestUser, password: &str) -> TestUser {
    let login = server.login(&user.email, password).await;
    assert_eq!(login.status(), StatusCode::OK);
    let token: Value = login.json().await.expect("token json");
    TestUser {
        token: token["access_token"].as_str().expect("token").to_owned(),
        ..user.clone()
    }
}

async fn me_status(server: &TestServer, user: &TestUser) -> StatusCode {
    server
        .get(user, "/users/me")
        .send()
        .await
        .expect("GET /users/me")
        .status()
}

#[tokio::test]
async fn logout_refuses_that_token_and_logout_all_every_one() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let other_device = relogin(&server, &user, &user.password).await;
    assert_eq!(me_status(&server, &user).await, StatusCode::OK);
    assert_eq!(me_status(&server, &other_device).await, StatusCode::OK);

    let out = server.post(&user, "/logout/all").send().await.unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    for old in [&user, &other_device] {
        let refused = server.get(old, "/users/me").send().await.unwrap();
        let detail = expect_error(refused, StatusCode::UNAUTHORIZED).await;
        assert!(detail.contains("revoked"), "{detail}");
    }
    // A revoked token cannot log out again, and a fresh login is unaffected.
    let again = server.post(&user, "/logout").send().await.unwrap();
    expect_error(again, StatusCode::UNAUTHORIZED).await;
    let fresh = relogin(&server, &user, &user.password).await;
    assert_eq!(me_status(&server, &fresh).await, StatusCode::OK);

    // `/logout` logs out the token it is called with, and only it: another login of the same
    // account (another device) stays in, until `/logout/all`.
    let second = relogin(&server, &user, &user.password).await;
    let out = server.post(&fresh, "/logout").send().await.unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let refused = server.get(&fresh, "/users/me").send().await.unwrap();
    let detail = expect_error(refused, StatusCode::UNAUTHORIZED).await;
    assert!(detail.contains("revoked"), "{detail}");
    assert_eq!(me_status(&server, &second).await, StatusCode::OK);
    let again = server.post(&fresh, "/logout").send().await.unwrap();
    expect_error(again, StatusCode::UNAUTHORIZED).await;
    let third = relogin(&server, &user, &user.password).await;
    let out = server.post(&second, "/logout/all").send().await.unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_eq!(me_status(&server, &second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&server, &third).await, StatusCode::UNAUTHORIZED);
    let wrong_method = server.get(&user, "/logout/all").send().await.unwrap();
    expect_error(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn a_revocation_outlives_a_restart() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let out = server.post(&user, "/logout/all").send().await.unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let fresh = relogin(&server, &user, &user.password).await;
    // One token logged out alone, beside one that was not.
    let single = relogin(&server, &user, &user.password).await;
    let out = server.post(&single, "/logout").send().await.unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let db = server.stop().await;

    // The new process has nothing in memory: it must read the generation and the logged-out
    // tokens from the database.
    let server = TestServer::start_on(db, &[]).await;
    assert_eq!(me_status(&server, &user).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&server, &single).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&server, &fresh).await, StatusCode::OK);
}

#[tokio::test]
async fn logout_on_one_node_is_refused_on_the_other_at_once() {
    let Some((a, b)) = crate::support::two_nodes(&[]).await else {
        return;
    };
    let user = a.user().await;
    // Node B has now seen the user and holds its generation in memory.
    assert_eq!(me_status(&b, &user).await, StatusCode::OK);
    let other_device = relogin(&b, &user, &user.password).await;

    let out = a.post(&user, "/logout").send().await.unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if me_status(&b, &user).await == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node B still accepts the token 2 s after a logout on node A"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Only that token: the user's other login works on both nodes.
    assert_eq!(me_status(&b, &other_device).await, StatusCode::OK);
    assert_eq!(me_status(&a, &other_device).await, StatusCode::OK);
    let fresh = relogin(&b, &user, &user.password).await;
    assert_eq!(me_status(&a, &fresh).await, StatusCode::OK);

    // A node that starts now reads the logged-out token from the database.
    let c = TestServer::start_on(TestDb::at(a.db.url.clone()), &[]).await;
    assert_eq!(me_status(&c, &user).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&c, &other_device).await, StatusCode::OK);
}

async fn change_password(
    server: &TestServer,
    user: &TestUser,
    current: &str,
    new: &str,
) -> reqwest::Response {
    server
        .put(user, "/users/me/password")
        .json(&json!({ "current_password": current, "new_password": new }))
        .send()
        .await
        .expect("PUT /users/me/password")
}

#[tokio::test]
async fn a_password_change_needs_the_current_one_and_refuses_old_tokens() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let new_password = "a much better passphrase";

    let wrong = change_password(&server, &user, "not my password", new_password).await;
    let detail = expect_error(wrong, StatusCode::FORBIDDEN).await;
    assert_eq!(detail, "Current password is incorrect");
    for weak in ["password", "12345678", user.email.as_str(), "short"] {
        let refused = change_password(&server, &user, &user.password, weak).await;
        expect_error(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    // None of the refused attempts changed anything.
    assert_eq!(me_status(&server, &user).await, StatusCode::OK);
    relogin(&server, &user, &user.password).await;

    let changed = change_password(&server, &user, &user.password, new_password).await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(me_status(&server, &user).await, StatusCode::UNAUTHORIZED);
    let old = server.login(&user.email, &user.password).await;
    expect_error(old, StatusCode::UNAUTHORIZED).await;
    let fresh = relogin(&server, &user, new_password).await;
    assert_eq!(me_status(&server, &fresh).await, StatusCode::OK);
}

/// A prompt of `n` words; echo streams it back one word per delay.
fn long_prompt(n: usize) -> String {
    (1..=n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn deleting_an_account_stops_its_answers_removes_its_rows_and_frees_its_email() {
    let server = TestServer::start_with(&["--echo-delay-ms", "20"]).await;
    let user = server.user().await;
    let session = server.session(&user, "Soon gone").await;
    let session_id = session["id"].as_str().unwrap().to_owned();

    let wrong = server
        .delete(&user, "/users/me/")
        .json(&json!({ "password": "not my password" }))
        .send()
        .await
        .unwrap();
    expect_error(wrong, StatusCode::FORBIDDEN).await;
    let missing = server
        .delete(&user, "/users/me/")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(missing, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(me_status(&server, &user).await, StatusCode::OK);

    // An answer of 300 words at 20 ms a word would run 6 s if nothing stopped it.
    let mut stream = server
        .chat(
            &user,
            json!({ "session_id": session_id, "prompt": long_prompt(300) }),
        )
        .await;
    assert_eq!(stream.status(), StatusCode::OK);
    stream.chunk().await.unwrap().expect("a first event");

    let started = Instant::now();
    let deleted = server
        .delete(&user, "/users/me/")
        .json(&json!({ "password": user.password }))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let rest = tokio::time::timeout(Duration::from_secs(3), stream.text())
        .await
        .expect("the stream ends once the account is deleted")
        .unwrap();
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    assert!(started.elapsed() < Duration::from_secs(3));

    let refused = server.get(&user, "/users/me").send().await.unwrap();
    expect_error(refused, StatusCode::UNAUTHORIZED).await;
    let login = server.login(&user.email, &user.password).await;
    expect_error(login, StatusCode::UNAUTHORIZED).await;

    let conn = Database::connect(server.db.url.clone()).await.unwrap();
    let user_id = Uuid::parse_str(&user.id).unwrap();
    let session_uuid = Uuid::parse_str(&session_id).unwrap();
    let left_sessions = sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(user_id))
        .count(&conn)
        .await
        .unwrap();
    let left_messages = messages::Entity::find()
        .filter(messages::Column::SessionId.eq(session_uuid))
        .count(&conn)
        .await
        .unwrap();
    assert_eq!((left_sessions, left_messages), (0, 0));

    let again = server
        .sign_up(&user.username, &user.email, &user.password)
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    let reborn = relogin(&server, &user, &user.password).await;
    let sessions: Vec<Value> = server.get_json(&reborn, "/sessions").await;
    assert!(sessions.is_empty(), "{sessions:?}");
    assert_eq!(me_status(&server, &user).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deleting_an_account_on_one_node_stops_its_answer_on_the_other() {
    if postgres_url().is_none() {
        eprintln!("skipped: two nodes need PostgreSQL (OMNICHAT_TEST_DATABASE_URL)");
        return;
    }
    let db = TestDb::new();
    let shared = db.shared();
    let a = TestServer::start_on(db, &[]).await;
    let b = TestServer::start_on(shared, &["--echo-delay-ms", "20"]).await;
    let user = a.user().await;
    let session = b.session(&user, "Elsewhere").await;
    // 300 words at 20 ms a word: 6 s unless the deletion stops it.
    let mut stream = b
        .chat(
            &user,
            json!({ "session_id": session["id"], "prompt": long_prompt(300) }),
        )
        .await;
    assert_eq!(stream.status(), StatusCode::OK);
    stream.chunk().await.unwrap().expect("a first event");

    let deleted = a
        .delete(&user, "/users/me/")
        .json(&json!({ "password": user.password }))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let rest = tokio::time::timeout(Duration::from_secs(3), stream.text())
        .await
        .expect("node B ends the stream once the account is deleted on node A")
        .unwrap();
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    assert_eq!(me_status(&b, &user).await, StatusCode::UNAUTHORIZED);
}
