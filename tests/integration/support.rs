//! Test support: the real server in-process on port 0, over a fresh SQLite file or (when
//! `OMNICHAT_TEST_DATABASE_URL` is set) the shared PostgreSQL database, and a small HTTP client.

use std::time::Duration;

use clap::Parser;
use omnichat::{config::Cli, RunningServer};
use reqwest::{header, Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use uuid::Uuid;

/// The PostgreSQL URL CI sets; without it every test runs on SQLite.
pub fn postgres_url() -> Option<String> {
    std::env::var("OMNICHAT_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Two server nodes on the one PostgreSQL database, both started with `extra`; `None`, with a
/// line saying the test is skipped, when no PostgreSQL is configured.
pub async fn two_nodes(extra: &[&str]) -> Option<(TestServer, TestServer)> {
    if postgres_url().is_none() {
        eprintln!("skipped: two nodes need PostgreSQL (OMNICHAT_TEST_DATABASE_URL)");
        return None;
    }
    let db = TestDb::new();
    let shared = db.shared();
    let first = TestServer::start_on(db, extra).await;
    Some((first, TestServer::start_on(shared, extra).await))
}

/// A database for one test: its own SQLite file, or the shared PostgreSQL database.
pub struct TestDb {
    pub url: String,
    _dir: Option<TempDir>,
}

impl TestDb {
    /// The same database for a second server node (the first keeps the files alive).
    pub fn shared(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            _dir: None,
        }
    }

    /// A database at `url` that this test does not own (nothing is cleaned up).
    pub fn at(url: String) -> TestDb {
        TestDb { url, _dir: None }
    }

    pub fn new() -> TestDb {
        match postgres_url() {
            Some(url) => TestDb { url, _dir: None },
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("omnichat.db").display()
                );
                TestDb {
                    url,
                    _dir: Some(dir),
                }
            }
        }
    }
}

/// Flags every test server gets: fast hashing, a fast echo, no real provider keys.
pub fn base_args(db: &TestDb) -> Vec<String> {
    [
        "omnichat",
        "--addr",
        "127.0.0.1:0",
        "--database-url",
        &db.url,
        "--scrypt-log-n",
        "4",
        "--echo-delay-ms",
        "2",
        "--openai-api-key",
        "",
        "--gemini-api-key",
        "",
        "--anthropic-api-key",
        "",
        "--shutdown-grace-secs",
        "5",
    ]
    .iter()
    .chain(UNTHROTTLED_ADDRESS.iter())
    .map(|s| s.to_string())
    .collect()
}

/// Every test logs in from 127.0.0.1, and on PostgreSQL into one database shared by the whole
/// suite and by earlier runs: per-address throttling would add failures up across tests until
/// 127.0.0.1 is blocked for all. Servers (and spawned binaries) get these flags; the throttling
/// tests set their own limits and stand behind addresses of their own.
pub const UNTHROTTLED_ADDRESS: [&str; 4] = [
    "--login-address-slow-after",
    "1000000",
    "--login-address-block-after",
    "1000000",
];

pub struct TestServer {
    pub base: String,
    /// `http://<metrics address>` when the server was started with `--metrics-addr`.
    pub metrics_base: Option<String>,
    pub client: reqwest::Client,
    server: Option<RunningServer>,
    pub db: TestDb,
}

/// A signed-up, logged-in user.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password: String,
    pub token: String,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(&[]).await
    }

    /// Starts a server with extra command-line flags.
    pub async fn start_with(extra: &[&str]) -> TestServer {
        Self::start_on(TestDb::new(), extra).await
    }

    pub async fn start_on(db: TestDb, extra: &[&str]) -> TestServer {
        let mut args = base_args(&db);
        args.extend(extra.iter().map(|s| s.to_string()));
        let cli = Cli::try_parse_from(args).expect("test flags parse");
        let server = omnichat::start(cli.serve.server_config(), |bound| {
            cli.serve.core_config(bound)
        })
        .await
        .expect("server starts");
        TestServer {
            base: format!("http://{}", server.addr),
            metrics_base: server.metrics_addr.map(|addr| format!("http://{addr}")),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            server: Some(server),
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the server gracefully, keeping its database.
    pub async fn stop(mut self) -> TestDb {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.db
    }

    pub async fn sign_up(&self, username: &str, email: &str, password: &str) -> Response {
        self.client
            .post(self.url("/users/"))
            .json(&json!({ "username": username, "email": email, "password": password }))
            .send()
            .await
            .expect("sign-up request")
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.client
            .post(self.url("/token"))
            .form(&[("username", email), ("password", password)])
            .send()
            .await
            .expect("login request")
    }

    /// A new user with a unique name and email, logged in.
    pub async fn user(&self) -> TestUser {
        let tag = Uuid::new_v4().simple().to_string();
        let username = format!("user-{}", &tag[..12]);
        let email = format!("{username}@example.com");
        let password = "correct horse battery".to_string();
        let created = self.sign_up(&username, &email, &password).await;
        assert_eq!(created.status(), StatusCode::OK);
        let created: Value = created.json().await.expect("user json");
        let login = self.login(&email, &password).await;
        assert_eq!(login.status(), StatusCode::OK);
        let token: Value = login.json().await.expect("token json");
        TestUser {
            id: created["id"].as_str().expect("id").to_string(),
            username,
            email,
            password,
            token: token["access_token"].as_str().expect("token").to_string(),
        }
    }

    pub fn get(&self, user: &TestUser, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(&user.token)
    }

    pub fn post(&self, user: &TestUser, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(&user.token)
    }

    pub fn put(&self, user: &TestUser, path: &str) -> reqwest::RequestBuilder {
        self.client.put(self.url(path)).bearer_auth(&user.token)
    }

    pub fn delete(&self, user: &TestUser, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(&user.token)
    }

    /// GETs `path` as `user`, expecting 200, and returns the JSON body.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, user: &TestUser, path: &str) -> T {
        let response = self.get(user, path).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("json body")
    }

    /// Creates a session and returns its JSON.
    pub async fn session(&self, user: &TestUser, title: &str) -> Value {
        let response = self
            .post(user, "/sessions")
            .json(&json!({ "title": title }))
            .send()
            .await
            .expect("create session");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("session json")
    }

    /// Starts a chat stream and returns the raw response.
    pub async fn chat(&self, user: &TestUser, body: Value) -> Response {
        self.post(user, "/chat/stream")
            .json(&body)
            .send()
            .await
            .expect("chat request")
    }
}

/// One parsed SSE event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub data: String,
}

/// Splits an SSE body into events (comments dropped).
pub fn parse_sse(body: &str) -> Vec<SseEvent> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut id = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push(v.to_string());
                }
            }
            (!data.is_empty()).then(|| SseEvent {
                id,
                data: data.join("\n"),
            })
        })
        .collect()
}

/// The text of every `{"delta": …}` event, concatenated.
pub fn streamed_text(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|v| v["delta"].as_str().map(str::to_owned))
        .collect()
}

/// Reads a whole SSE response and parses it.
pub async fn read_sse(response: Response) -> Vec<SseEvent> {
    let body = response.text().await.expect("sse body");
    parse_sse(&body)
}

/// Asserts an error response: status, JSON `detail`, and returns the detail.
pub async fn expect_error(response: Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type}"
    );
    let body: Value = response.json().await.expect("error json");
    body["detail"]
        .as_str()
        .expect("detail is a string")
        .to_string()
}

/// The `X-Generation-Id` of a chat stream response.
pub fn generation_id(response: &Response) -> String {
    response.headers()["x-generation-id"]
        .to_str()
        .expect("generation id")
        .to_string()
}

/// Signs up a new user and logs in with `client` (for tests that need their own client, or a
/// server not started in-process); returns its email and bearer token.
pub async fn sign_up_and_log_in(client: &reqwest::Client, base: &str) -> (String, String) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let email = format!("d-{tag}@example.com");
    let created = client
        .post(format!("{base}/users/"))
        .json(&json!({ "username": format!("d-{}", &tag[..12]), "email": email, "password": "strongpassword" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let token: Value = client
        .post(format!("{base}/token"))
        .form(&[("username", email.as_str()), ("password", "strongpassword")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (email, token["access_token"].as_str().unwrap().to_string())
}
