//! The `/sessions` endpoints: CRUD, ordering, ownership and error paths.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{expect_error, TestServer};

#[tokio::test]
async fn create_list_get_rename_delete() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let first = server.session(&user, "First").await;
    assert_eq!(first["title"], "First");
    assert_eq!(first["user_id"], user.id.as_str());
    for field in ["created_at", "updated_at"] {
        let at = first[field].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(at).is_ok() && at.ends_with('Z'),
            "{field}: {at}"
        );
    }
    let second = server.session(&user, "Second").await;

    let list: Vec<Value> = server.get_json(&user, "/sessions").await;
    let titles: Vec<&str> = list.iter().map(|s| s["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Second", "First"], "newest activity first");

    // Renaming is activity: the renamed session moves to the top.
    let id = first["id"].as_str().unwrap();
    let renamed = server
        .put(&user, &format!("/sessions/{id}"))
        .json(&json!({ "title": "Renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    let renamed: Value = renamed.json().await.unwrap();
    assert_eq!(renamed["title"], "Renamed");
    assert_eq!(renamed["id"], first["id"]);
    let list: Vec<Value> = server.get_json(&user, "/sessions/").await;
    assert_eq!(list[0]["title"], "Renamed");

    let detail: Value = server.get_json(&user, &format!("/sessions/{id}/")).await;
    assert_eq!(detail["title"], "Renamed");
    assert_eq!(detail["messages"], json!([]));

    let deleted = server
        .delete(&user, &format!("/sessions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = server
        .get(&user, &format!("/sessions/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(gone, StatusCode::NOT_FOUND).await;
    let again = server
        .delete(&user, &format!("/sessions/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(again, StatusCode::NOT_FOUND).await;
    let list: Vec<Value> = server.get_json(&user, "/sessions").await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], second["id"]);
}

#[tokio::test]
async fn another_users_session_is_not_found() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let intruder = server.user().await;
    let session = server.session(&owner, "Private").await;
    let path = format!("/sessions/{}", session["id"].as_str().unwrap());

    let get = server.get(&intruder, &path).send().await.unwrap();
    let get_detail = expect_error(get, StatusCode::NOT_FOUND).await;
    let missing = server
        .get(&intruder, &format!("/sessions/{}", uuid::Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_error(missing, StatusCode::NOT_FOUND).await,
        get_detail,
        "indistinguishable from missing"
    );
    let put = server
        .put(&intruder, &path)
        .json(&json!({ "title": "Mine now" }))
        .send()
        .await
        .unwrap();
    expect_error(put, StatusCode::NOT_FOUND).await;
    let delete = server.delete(&intruder, &path).send().await.unwrap();
    expect_error(delete, StatusCode::NOT_FOUND).await;
    let list: Vec<Value> = server.get_json(&intruder, "/sessions").await;
    assert!(list.is_empty());

    let still: Value = server.get_json(&owner, &path).await;
    assert_eq!(
        still["title"], "Private",
        "the owner's session is untouched"
    );
}

#[tokio::test]
async fn session_error_paths() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let no_token = server
        .client
        .get(server.url("/sessions"))
        .send()
        .await
        .unwrap();
    expect_error(no_token, StatusCode::UNAUTHORIZED).await;
    let bad_id = server
        .get(&user, "/sessions/not-a-uuid")
        .send()
        .await
        .unwrap();
    expect_error(bad_id, StatusCode::NOT_FOUND).await;
    let empty = server
        .post(&user, "/sessions")
        .json(&json!({ "title": "   " }))
        .send()
        .await
        .unwrap();
    expect_error(empty, StatusCode::UNPROCESSABLE_ENTITY).await;
    let long = server
        .post(&user, "/sessions")
        .json(&json!({ "title": "t".repeat(201) }))
        .send()
        .await
        .unwrap();
    expect_error(long, StatusCode::UNPROCESSABLE_ENTITY).await;
    let wrong_type = server
        .post(&user, "/sessions")
        .json(&json!({ "title": 42 }))
        .send()
        .await
        .unwrap();
    expect_error(wrong_type, StatusCode::UNPROCESSABLE_ENTITY).await;
    let untitled = server
        .post(&user, "/sessions")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(untitled.status(), StatusCode::OK, "the title is optional");
    let patch = server
        .client
        .patch(server.url("/sessions/x"))
        .send()
        .await
        .unwrap();
    expect_error(patch, StatusCode::METHOD_NOT_ALLOWED).await;
}
