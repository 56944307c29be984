//! Answers share upstream HTTP/2 connections, and never wait for room on one: through
//! `POST /chat/stream`, against a fake provider speaking h2c that allows two streams per
//! connection.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    fake_upstream::{FakeUpstream, Wire},
    support::{parse_sse, streamed_text, TestServer, TestUser},
};

/// Streams the fake allows on one connection.
const STREAMS_PER_CONNECTION: u32 = 2;
/// Answers streaming at once: more than two connections' worth.
const ANSWERS: usize = 5;
/// Each answer: ten words, one every 150 ms, so it streams for 1.5 s.
const WORDS: usize = 10;
const WORD_GAP: Duration = Duration::from_millis(150);

/// What one client saw: how long its first word took, and the whole answer.
struct Answer {
    first_word_after: Duration,
    text: String,
}

/// Starts an answer in a fresh session and reads it to its end.
async fn answer(server: &TestServer, user: &TestUser, started: Instant) -> Answer {
    let session = server.session(user, "Parallel").await;
    let mut response = server
        .chat(
            user,
            json!({ "session_id": session["id"], "prompt": "go", "provider": "openai" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = String::new();
    let mut first_word_after = None;
    while let Some(chunk) = response.chunk().await.expect("the stream reads") {
        body.push_str(&String::from_utf8_lossy(&chunk));
        if first_word_after.is_none() && !streamed_text(&parse_sse(&body)).is_empty() {
            first_word_after = Some(started.elapsed());
        }
    }
    Answer {
        first_word_after: first_word_after.expect("a word arrived"),
        text: streamed_text(&parse_sse(&body)),
    }
}

#[tokio::test]
async fn more_answers_than_a_connection_allows_all_stream_at_once() {
    let fake = FakeUpstream::start_with_stream_limit(Wire::OpenAi, STREAMS_PER_CONNECTION).await;
    let words: Vec<String> = (1..=WORDS).map(|i| format!(" w{i}")).collect();
    fake.set_reply(words.clone());
    fake.set_token_delay(WORD_GAP);
    let per_connection = STREAMS_PER_CONNECTION.to_string();
    let server = TestServer::start_with(&[
        "--openai-api-key",
        "sk-test",
        "--openai-base-url",
        &fake.base_url,
        "--upstream-h2c",
        "openai",
        "--upstream-streams-per-connection",
        &per_connection,
        "--max-generations-per-user",
        "10",
    ])
    .await;
    let user = server.user().await;

    let started = Instant::now();
    let answers = join_all((0..ANSWERS).map(|_| answer(&server, &user, started))).await;

    for answer in &answers {
        assert_eq!(answer.text, words.concat(), "every answer arrives whole");
        // An answer queued behind a full connection would start only when one of the first
        // two ended, after 1.5 s.
        assert!(
            answer.first_word_after < WORD_GAP * WORDS as u32,
            "a first word came after {:?}, behind another answer",
            answer.first_word_after
        );
    }
    let requests = fake.requests();
    assert_eq!(requests.len(), ANSWERS);
    assert!(
        requests.iter().all(|request| request.version == "HTTP/2.0"),
        "the provider was spoken to in HTTP/2"
    );
    assert_eq!(
        fake.connections(),
        ANSWERS.div_ceil(STREAMS_PER_CONNECTION as usize),
        "streams share connections, two to each"
    );
}

/// What `omnichat serve` says on stderr when it refuses to start with `args`.
fn refusal(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_omnichat"))
        .arg("serve")
        .args(args)
        .args(["--addr", "127.0.0.1:0", "--database-url", "sqlite::memory:"])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "it started with {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn h2c_is_only_for_remote_providers_on_plaintext_urls() {
    let offline = refusal(&["--upstream-h2c", "echo"]);
    assert!(offline.contains("echo is offline"), "{offline}");
    // OpenAI's default base URL is https://.
    let tls = refusal(&["--upstream-h2c", "openai"]);
    assert!(tls.contains("not plaintext"), "{tls}");
    let zero = refusal(&["--upstream-streams-per-connection", "0"]);
    assert!(zero.contains("streams-per-connection"), "{zero}");
}
