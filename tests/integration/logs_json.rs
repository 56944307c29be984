//! The real binary at `RUST_LOG=trace` with `--log-format json`: every line is a JSON object;
//! the lines of a request (its own, the login line the AuthActor writes for it, the lines of
//! the answer it started) carry its `X-Request-Id`; and no password, bearer token, JWT secret or
//! provider key appears anywhere, whatever the outcome of the request.

use std::{
    fs::File,
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    fake_upstream::{FakeUpstream, Wire},
    support::{parse_sse, streamed_text, TestDb},
};

const OPENAI_KEY: &str = "sk-json-logs-openai-secret-31";
const JWT_SECRET: &str = "json-logs-jwt-secret-0123456789abcdef012345";
const PASSWORD: &str = "first-password-5d7c";
const WRONG_PASSWORD: &str = "wrong-password-6e8d";
const NEW_PASSWORD: &str = "second-password-7f9e";

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

async fn spawn(db: &TestDb, port: u16, openai: &FakeUpstream, log: &Path) -> Daemon {
    let out = File::create(log).expect("log file");
    let err = out.try_clone().expect("log file handle");
    let child = Command::new(env!("CARGO_BIN_EXE_omnichat"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--database-url", &db.url, "--scrypt-log-n", "4"])
        .env("OPENAI_API_KEY", OPENAI_KEY)
        .env("OPENAI_BASE_URL", &openai.base_url)
        .env("OMNICHAT_JWT_SECRET", JWT_SECRET)
        .env("OMNICHAT_LOG_FORMAT", "json")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn omnichat");
    let daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await {
            if r.status() == StatusCode::OK {
                return daemon;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("omnichat did not become healthy");
}

/// The request ids on a JSON log line: those of the spans it was written in.
fn request_ids(line: &Value) -> Vec<String> {
    line["spans"]
        .as_array()
        .map(|spans| {
            spans
                .iter()
                .filter_map(|span| span["request_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_trace_json_log_carries_request_ids_and_no_secret() {
    let openai = FakeUpstream::start(Wire::OpenAi).await;
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("omnichat.log");
    let port = free_port();
    let mut daemon = spawn(&db, port, &openai, &log_path).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let tag = Uuid::new_v4().simple().to_string();
    let tag = &tag[..12];
    let id = |what: &str| format!("{what}-{tag}");
    let email = format!("json-{tag}@example.com");

    let signed_up = client
        .post(format!("{base}/users/"))
        .header("x-request-id", id("signup"))
        .json(&json!({ "username": format!("json-{tag}"), "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), StatusCode::OK);
    let login = |password: &'static str, request_id: String| {
        client
            .post(format!("{base}/token"))
            .header("x-request-id", request_id)
            .form(&[("username", email.as_str()), ("password", password)])
            .send()
    };
    let wrong = login(WRONG_PASSWORD, id("wrong")).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let ok = login(PASSWORD, id("login")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let token: Value = ok.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    let session: Value = client
        .post(format!("{base}/sessions"))
        .bearer_auth(&token)
        .json(&json!({ "title": "Json logs" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for provider in ["openai", "echo"] {
        let chat = client
            .post(format!("{base}/chat/stream"))
            .bearer_auth(&token)
            .header("x-request-id", id(provider))
            .json(
                &json!({ "session_id": session["id"], "prompt": "hi there", "provider": provider }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(chat.status(), StatusCode::OK, "{provider}");
        let events = parse_sse(&chat.text().await.unwrap());
        assert!(!streamed_text(&events).is_empty(), "{provider}");
    }
    assert_eq!(openai.requests().len(), 1, "the fake provider was asked");
    assert_eq!(
        openai.requests()[0]
            .headers
            .get("authorization")
            .map(String::as_str),
        Some(format!("Bearer {OPENAI_KEY}").as_str()),
        "the key really went upstream"
    );

    let change = |current: &'static str, request_id: String| {
        client
            .put(format!("{base}/users/me/password"))
            .bearer_auth(&token)
            .header("x-request-id", request_id)
            .json(&json!({ "current_password": current, "new_password": NEW_PASSWORD }))
            .send()
    };
    let refused = change(WRONG_PASSWORD, id("change-wrong")).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let changed = change(PASSWORD, id("change")).await.unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let revoked = client
        .get(format!("{base}/users/me/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
    let again = login(NEW_PASSWORD, id("relogin")).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let new_token: Value = again.json().await.unwrap();
    let new_token = new_token["access_token"].as_str().unwrap().to_owned();

    let stopped = Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while daemon.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "omnichat did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let raw = std::fs::read_to_string(&log_path).unwrap();

    for secret in [
        OPENAI_KEY,
        JWT_SECRET,
        PASSWORD,
        WRONG_PASSWORD,
        NEW_PASSWORD,
        token.as_str(),
        new_token.as_str(),
    ] {
        let lines: Vec<&str> = raw.lines().filter(|l| l.contains(secret)).collect();
        assert!(lines.is_empty(), "{secret} is in the log: {lines:#?}");
    }
    // Not even the signature part of a token (the part only the secret could make).
    let signature = token.rsplit('.').next().unwrap();
    assert!(!raw.contains(signature));

    let lines: Vec<Value> = raw
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "TRACE" || l["level"] == "DEBUG"),
        "the log is really verbose"
    );
    let of = |request_id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| request_ids(l).iter().any(|r| r == request_id))
            .collect()
    };
    // Each request's own line, whatever its outcome, carries its id.
    for what in [
        "signup",
        "wrong",
        "login",
        "openai",
        "echo",
        "change-wrong",
        "change",
        "relogin",
    ] {
        let request_id = id(what);
        let mine = of(&request_id);
        assert!(
            mine.iter().any(|l| message(l) == "request"),
            "{request_id}: {mine:#?}"
        );
    }
    // The login lines the AuthActor writes are tied to their requests.
    let login_line = |what: &str, outcome: &str| {
        of(&id(what))
            .iter()
            .any(|l| message(l) == "login" && l["fields"]["outcome"] == outcome)
    };
    assert!(login_line("login", "success"));
    assert!(login_line("wrong", "wrong password"));
    assert!(login_line("relogin", "success"));
    // And so are the lines of the answers the chat requests started.
    for provider in ["openai", "echo"] {
        assert!(
            of(&id(provider))
                .iter()
                .any(|l| message(l) == "generation ended" && l["fields"]["provider"] == provider),
            "{provider}"
        );
    }
}
