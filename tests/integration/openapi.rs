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
