//! What the real binary writes to its logs with `RUST_LOG=debug` while it signs up, logs in
//! (right, wrong and unknown) and chats through providers that fail with leaky error bodies and
//! are retried: every login attempt is there (a throttled one too), and no provider key, JWT
//! secret or password is.
//! (The tracing subscriber is per process, hence a spawned binary rather than the in-process
//! server.)

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
    fake_upstream::{FakeUpstream, Fault, Wire},
    support::{TestDb, UNTHROTTLED_ADDRESS},
};

const OPENAI_KEY: &str = "sk-logs-openai-secret-4";
const GEMINI_KEY: &str = "plain-logs-gemini-secret-5";
const ANTHROPIC_KEY: &str = "plain-logs-anthropic-secret-6";
const JWT_SECRET: &str = "logs-jwt-secret-0123456789abcdef0123456789";
const PASSWORD: &str = "right-password-7a1f";
const WRONG_PASSWORD: &str = "wrong-password-8b2e";
const GHOST_PASSWORD: &str = "ghost-password-9c3d";

/// The running binary; killed if the test fails before it stops it.
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

/// Starts the binary with its stdout and stderr (tracing writes to stdout) in `log`, the
/// providers pointed at `fakes` (the others unconfigured) and `extra` flags.
async fn spawn(
    db: &TestDb,
    port: u16,
    fakes: &[(Wire, FakeUpstream)],
    log: &Path,
    extra: &[&str],
) -> Daemon {
    let out = File::create(log).expect("log file");
    let err = out.try_clone().expect("log file handle");
    let base = |wire: Wire| {
        fakes
            .iter()
            .find(|(w, _)| *w == wire)
            .map(|(_, fake)| fake.base_url.clone())
            .unwrap_or_else(|| "http://127.0.0.1:9".to_owned())
    };
    let child = Command::new(env!("CARGO_BIN_EXE_omnichat"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--database-url", &db.url, "--scrypt-log-n", "4"])
        .args([
            "--upstream-retry-base-delay-ms",
            "1",
            "--upstream-max-retries",
            "2",
        ])
        .env("OPENAI_API_KEY", OPENAI_KEY)
        .env("OPENAI_BASE_URL", base(Wire::OpenAi))
        .env("GEMINI_API_KEY", GEMINI_KEY)
        .env("GEMINI_BASE_URL", base(Wire::Gemini))
        .env("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        .env("ANTHROPIC_BASE_URL", base(Wire::Anthropic))
        .env("OMNICHAT_JWT_SECRET", JWT_SECRET)
        .args(UNTHROTTLED_ADDRESS)
        .args(extra)
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
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

/// Stops the daemon with SIGTERM (which flushes its log) and returns the log.
async fn stop_and_read(daemon: &mut Daemon, log_path: &Path) -> String {
    let stopped = Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while daemon.0.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "omnichat did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    plain(&std::fs::read_to_string(log_path).expect("read the log"))
}

/// The log without ANSI colour codes, in case the subscriber ignores `NO_COLOR`.
fn plain(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn a_debug_log_has_every_login_and_no_secret() {
    let mut fakes = Vec::new();
    for wire in [Wire::OpenAi, Wire::Gemini, Wire::Anthropic] {
        let fake = FakeUpstream::start(wire).await;
        // The bodies echo the credential header: a retry WARN line that printed them would leak.
        fake.set_fault(Fault::Leaky {
            status: 500,
            delay: Duration::ZERO,
        });
        fakes.push((wire, fake));
    }
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("omnichat.log");
    let port = free_port();
    let mut daemon = spawn(&db, port, &fakes, &log_path, &[]).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let tag = Uuid::new_v4().simple().to_string();
    let email = format!("logs-{}@example.com", &tag[..12]);
    let ghost = format!("ghost-{}@example.com", &tag[..12]);
    let signed_up = client
        .post(format!("{base}/users/"))
        .json(&json!({ "username": format!("logs-{}", &tag[..12]), "email": email, "password": PASSWORD }))
        .send()
        .await
        .expect("sign up");
    assert_eq!(signed_up.status(), StatusCode::OK);
    let login = |email: &str, password: &str| {
        client
            .post(format!("{base}/token"))
            .form(&[("username", email), ("password", password)])
            .send()
    };
    let ok = login(&email, PASSWORD).await.expect("login");
    assert_eq!(ok.status(), StatusCode::OK);
    let token: Value = ok.json().await.expect("token");
    let token = token["access_token"].as_str().expect("token").to_owned();
    let wrong = login(&email, WRONG_PASSWORD).await.expect("login");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let unknown = login(&ghost, GHOST_PASSWORD).await.expect("login");
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let other_grant = client
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("username", email.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(other_grant.status(), StatusCode::BAD_REQUEST);

    for provider in ["openai", "gemini", "anthropic"] {
        let session: Value = client
            .post(format!("{base}/sessions"))
            .bearer_auth(&token)
            .json(&json!({ "title": "Logs" }))
            .send()
            .await
            .expect("session")
            .json()
            .await
            .expect("session json");
        let chat = client
            .post(format!("{base}/chat/stream"))
            .bearer_auth(&token)
            .json(&json!({ "session_id": session["id"], "prompt": "hi", "provider": provider }))
            .send()
            .await
            .expect("chat");
        assert_eq!(chat.status(), StatusCode::BAD_GATEWAY, "{provider}");
    }
    for (wire, fake) in &fakes {
        assert_eq!(
            fake.requests().len(),
            3,
            "{wire:?}: one try and two retries"
        );
    }

    // A clean stop flushes everything the server had to say.
    let log = stop_and_read(&mut daemon, &log_path).await;

    // The log is really at debug level and saw the retries and the logins.
    assert!(log.contains("DEBUG"), "debug lines: {log}");
    assert!(
        log.matches("retrying upstream request").count() >= 6,
        "two retry WARN lines per provider: {log}"
    );
    let logins: Vec<&str> = log.lines().filter(|l| l.contains(" login")).collect();
    let has = |parts: &[&str]| logins.iter().any(|l| parts.iter().all(|p| l.contains(p)));
    assert!(
        has(&["INFO", &email, "success", "client=127.0.0.1:"]),
        "{logins:#?}"
    );
    assert!(
        has(&["INFO", &email, "wrong password", "client=127.0.0.1:"]),
        "{logins:#?}"
    );
    assert!(
        has(&[
            "INFO",
            "account=\"unknown\"",
            "unknown account",
            "client=127.0.0.1:"
        ]),
        "{logins:#?}"
    );
    assert!(
        has(&["INFO", "unsupported grant type", "client=127.0.0.1:"]),
        "{logins:#?}"
    );
    assert!(
        !log.contains(&ghost),
        "what was typed for an unknown account is not logged"
    );

    for secret in [
        OPENAI_KEY,
        GEMINI_KEY,
        ANTHROPIC_KEY,
        JWT_SECRET,
        PASSWORD,
        WRONG_PASSWORD,
        GHOST_PASSWORD,
    ] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(secret)).collect();
        assert!(lines.is_empty(), "{secret} is in the log: {lines:#?}");
    }
}

#[tokio::test]
async fn a_throttled_login_is_logged_without_its_password() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("omnichat.log");
    let port = free_port();
    let flags = [
        "--login-slow-after",
        "1",
        "--login-block-after",
        "2",
        "--login-max-delay-ms",
        "10",
    ];
    let mut daemon = spawn(&db, port, &[], &log_path, &flags).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let tag = Uuid::new_v4().simple().to_string();
    let email = format!("guessed-{}@example.com", &tag[..12]);
    let signed_up = client
        .post(format!("{base}/users/"))
        .json(&json!({ "username": format!("guessed-{}", &tag[..12]), "email": email, "password": PASSWORD }))
        .send()
        .await
        .expect("sign up");
    assert_eq!(signed_up.status(), StatusCode::OK);
    let login = |password: &str| {
        client
            .post(format!("{base}/token"))
            .form(&[("username", email.as_str()), ("password", password)])
            .send()
    };
    for _ in 0..2 {
        let wrong = login(WRONG_PASSWORD).await.expect("login");
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    // Blocked: even the right password is refused, and that attempt is logged too.
    let blocked = login(PASSWORD).await.expect("login");
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(blocked.headers().contains_key("retry-after"));

    let log = stop_and_read(&mut daemon, &log_path).await;
    let throttled: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" login") && l.contains("outcome=\"throttled\""))
        .collect();
    assert_eq!(throttled.len(), 1, "{log}");
    assert!(throttled[0].contains("INFO"), "{throttled:?}");
    assert!(throttled[0].contains("client=127.0.0.1:"), "{throttled:?}");
    assert!(throttled[0].contains("retry_after_secs="), "{throttled:?}");
    let slowed = log
        .lines()
        .filter(|l| l.contains("wrong password") && l.contains("delay_ms=10"))
        .count();
    assert_eq!(slowed, 1, "the second failure was slowed: {log}");
    for secret in [PASSWORD, WRONG_PASSWORD] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(secret)).collect();
        assert!(lines.is_empty(), "{secret} is in the log: {lines:#?}");
    }
}
