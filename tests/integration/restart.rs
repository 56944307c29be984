//! The real binary as a daemon: SIGKILL and restart keep everything (tokens included, with no
//! secret configured); SIGTERM stops it cleanly with exit status 0.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{read_sse, streamed_text, TestDb};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Daemon {
    child: Child,
    base: String,
}

impl Daemon {
    async fn spawn(db: &TestDb, port: u16) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_omnichat"))
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                &db.url,
            ])
            .args(["--scrypt-log-n", "4", "--echo-delay-ms", "1"])
            .env_remove("OMNICHAT_JWT_SECRET")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn omnichat");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{base}/healthz")).await {
                if r.status() == StatusCode::OK {
                    return Daemon { child, base };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("omnichat did not become healthy");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "omnichat did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sigkill_and_restart_keep_users_sessions_messages_and_tokens() {
    let db = TestDb::new();
    let port = free_port();
    let client = reqwest::Client::new();
    let mut daemon = Daemon::spawn(&db, port).await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let email = format!("kill-{tag}@example.com");
    let created = client
        .post(format!("{}/users/", daemon.base))
        .json(&json!({ "username": format!("kill-{}", &tag[..10]), "email": email, "password": "strongpassword" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let token: Value = client
        .post(format!("{}/token", daemon.base))
        .form(&[("username", email.as_str()), ("password", "strongpassword")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let session: Value = client
        .post(format!("{}/sessions", daemon.base))
        .bearer_auth(&token)
        .json(&json!({ "title": "Survives" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stream = client
        .post(format!("{}/chat/stream", daemon.base))
        .bearer_auth(&token)
        .json(&json!({ "session_id": session["id"], "prompt": "still here" }))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed_text(&read_sse(stream).await), "still here");

    daemon.signal("KILL");
    daemon.wait(Duration::from_secs(10));
    drop(daemon);

    let daemon = Daemon::spawn(&db, port).await;
    let me = client
        .get(format!("{}/users/me/", daemon.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "a token issued before the kill still works"
    );
    let detail: Value = client
        .get(format!(
            "{}/sessions/{}",
            daemon.base,
            session["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["title"], "Survives");
    let contents: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["still here", "still here"]);
    let login = client
        .post(format!("{}/token", daemon.base))
        .form(&[("username", email.as_str()), ("password", "strongpassword")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn sigterm_stops_cleanly() {
    let db = TestDb::new();
    let mut daemon = Daemon::spawn(&db, free_port()).await;
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
}
