//! The OpenAPI document against the live router: `GET /openapi.json` and `omnichat openapi`
//! give the same document, every route of the table (the one the document is checked against)
//! is served with and without a trailing slash, and any other method is 405 with that table's
//! `Allow`.

use std::{collections::BTreeMap, process::Command};

use omnichat::router::ROUTES;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::support::TestServer;

#[tokio::test]
async fn the_document_is_served_and_printed_alike() {
    let server = TestServer::start().await;
    let served = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.headers()["content-type"], "application/json");
    let served: Value = served.json().await.expect("the document is JSON");
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served["info"]["title"], "OmniChat");
    for path in [
        "/users/",
        "/users/me/",
        "/sessions/{session_id}",
        "/chat/stream",
    ] {
        assert!(served["paths"][path].is_object(), "{path} missing");
    }

    let printed = Command::new(env!("CARGO_BIN_EXE_omnichat"))
        .arg("openapi")
        .output()
        .expect("omnichat openapi runs");
    assert!(printed.status.success());
    let printed: Value = serde_json::from_slice(&printed.stdout).expect("stdout is the JSON");
    assert_eq!(printed, served);

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    let status = Command::new(env!("CARGO_BIN_EXE_omnichat"))
        .args(["openapi", "--output"])
        .arg(&file)
        .status()
        .expect("omnichat openapi --output runs");
    assert!(status.success());
    let written: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("the file")).expect("JSON");
    assert_eq!(written, served);

    let unwritable = Command::new(env!("CARGO_BIN_EXE_omnichat"))
        .args(["openapi", "--output", "/nonexistent-dir/openapi.json"])
        .output()
        .expect("runs");
    assert!(!unwritable.status.success());
    assert!(String::from_utf8_lossy(&unwritable.stderr).contains("/nonexistent-dir/openapi.json"));
}

/// A concrete path for a template: a real asset for `{name}`, a fresh UUID for an id.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|part| match part {
            "{name}" => "app.css".to_owned(),
            p if p.starts_with('{') => Uuid::new_v4().to_string(),
            p => p.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_route_is_served_with_and_without_a_trailing_slash_and_other_methods_are_405() {
    let server = TestServer::start().await;
    let user = server.user().await;
    // The logouts go last: they revoke the token the others use.
    let mut routes: Vec<_> = ROUTES.iter().collect();
    routes.sort_by_key(|(_, path)| path.starts_with("/logout"));
    for (method, template) in routes {
        let path = concrete(template);
        let other = match path.strip_suffix('/') {
            Some(bare) if !bare.is_empty() => bare.to_owned(),
            Some(_) => path.clone(),
            None => format!("{path}/"),
        };
        for path in [&path, &other] {
            let response = server
                .client
                .request(method.clone(), server.url(path))
                .bearer_auth(&user.token)
                .send()
                .await
                .expect("request");
            let status = response.status();
            let detail = response.text().await.unwrap_or_default();
            // A handler answered: not the router's 404/405, nor its 501 for a route it lists
            // but does not dispatch.
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED
                    && status != StatusCode::NOT_IMPLEMENTED
                    && !(status == StatusCode::NOT_FOUND && detail.contains("\"Not Found\"")),
                "{method} {path}: {status} {detail}"
            );
        }
    }

    let mut methods: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (method, template) in ROUTES {
        methods.entry(template).or_default().push(method.as_str());
    }
    for (template, listed) in methods {
        let path = concrete(template);
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ] {
            if listed.contains(&method.as_str()) {
                continue;
            }
            let response = server
                .client
                .request(method.clone(), server.url(&path))
                .send()
                .await
                .expect("request");
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(
                response.headers()["allow"],
                listed.join(", ").as_str(),
                "{path}"
            );
            let body: Value = response.json().await.expect("a JSON error");
            assert_eq!(body["detail"], "Method Not Allowed");
        }
    }
}

/// Where the document states a rule JSON Schema can check, the server checks exactly that rule
/// (schemathesis found each of these apart): lengths as sent and in characters, control
/// characters anywhere, blank only after the rules.
#[tokio::test]
async fn the_server_checks_exactly_the_rules_the_document_states() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let sign_up = |username: String, password: &'static str| {
        let email = format!("{}@example.com", Uuid::new_v4().simple());
        let server = &server;
        async move { server.sign_up(&username, &email, password).await.status() }
    };
    // 64 characters as sent, the white space around the name included.
    let long_name = format!(" {}", "a".repeat(64));
    assert_eq!(
        sign_up(long_name, "correct horse battery").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        sign_up("\tann".into(), "correct horse battery").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Passwords are counted in characters: four two-byte ones are too few, eight are enough.
    // (A fresh username: the PostgreSQL suite may share its database with earlier runs.)
    let ann = format!("ann{}", &Uuid::new_v4().simple().to_string()[..8]);
    assert_eq!(
        sign_up(ann.clone(), "éééé").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(sign_up(ann, "éàüöçñøå").await, StatusCode::OK);

    let session = server.session(&user, "Rules").await;
    let id = session["id"].as_str().expect("id");
    for title in [format!(" {} ", "t".repeat(199)), "\tTitle".to_owned()] {
        let renamed = server
            .put(&user, &format!("/sessions/{id}"))
            .json(&serde_json::json!({ "title": title }))
            .send()
            .await
            .expect("rename");
        assert_eq!(
            renamed.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{title:?}"
        );
    }

    // A model of tabs breaks "no control characters"; one of spaces is blank: the default.
    let tabs = server
        .chat(
            &user,
            serde_json::json!({ "session_id": id, "prompt": "hi", "model": "\t\t" }),
        )
        .await;
    assert_eq!(tabs.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let spaces = server
        .chat(
            &user,
            serde_json::json!({ "session_id": id, "prompt": "hi", "model": "  " }),
        )
        .await;
    assert_eq!(spaces.status(), StatusCode::OK);
    let events = crate::support::read_sse(spaces).await;
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
}
