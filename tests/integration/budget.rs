//! Issue 10 over HTTP: context windows (the newest turns that fit go upstream, the rest are
//! counted out; a prompt too long alone is 422 before any upstream call), `max_tokens` in each
//! provider's form, token usage per answer, per session and per day, and each user's own
//! quotas (429 with `RateLimit-*` headers before the upstream is called, kept across a
//! restart and, on PostgreSQL, enforced as one budget by two nodes).

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::{
    fake_upstream::{FakeUpstream, Fault, Wire},
    support::{expect_error, postgres_url, read_sse, streamed_text, TestDb, TestServer, TestUser},
};

/// The fake OpenAI upstream and the flags that point a server at it.
async fn openai_fake() -> (FakeUpstream, Vec<String>) {
    let fake = FakeUpstream::start(Wire::OpenAi).await;
    let flags = vec![
        "--openai-api-key".to_owned(),
        "sk-test".to_owned(),
        "--openai-base-url".to_owned(),
        fake.base_url.clone(),
    ];
    (fake, flags)
}

async fn start(db: TestDb, flags: &[String], extra: &[&str]) -> TestServer {
    let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    TestServer::start_on(db, &all).await
}

async fn chat(server: &TestServer, user: &TestUser, session: &str, prompt: &str) -> Response {
    server
        .chat(
            user,
            json!({"session_id": session, "prompt": prompt, "provider": "openai"}),
        )
        .await
}

/// `n` distinct words: one token each for tiktoken, whatever the encoding.
fn words(tag: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{tag}{}", ["apple", "river", "stone", "cloud"][i % 4]))
        .collect::<Vec<_>>()
        .join(" ")
}

fn sent_contents(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn new_session(server: &TestServer, user: &TestUser) -> String {
    server.session(user, "budget").await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[tokio::test]
async fn a_long_session_keeps_answering_with_the_oldest_turns_left_out() {
    let (fake, flags) = openai_fake().await;
    // Room for the prompt and about two earlier turns.
    let server = start(
        TestDb::new(),
        &flags,
        &[
            "--context-windows",
            "gpt-4o=200",
            "--answer-reserve-tokens",
            "50",
        ],
    )
    .await;
    let user = server.user().await;
    let session = new_session(&server, &user).await;
    let prompts: Vec<String> = (0..6)
        .map(|i| format!("turn{i} {}", words("w", 30)))
        .collect();
    let mut omitted_seen = Vec::new();
    for prompt in &prompts {
        let response = chat(&server, &user, &session, prompt).await;
        assert_eq!(response.status(), StatusCode::OK);
        let omitted: u32 = response.headers()["x-context-omitted"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        omitted_seen.push(omitted);
        let events = read_sse(response).await;
        assert_eq!(streamed_text(&events), "Hello, wörld 😀");
    }
    assert_eq!(omitted_seen[0], 0, "nothing to leave out at first");
    assert!(
        omitted_seen[5] >= 6,
        "most of the ten earlier messages are left out: {omitted_seen:?}"
    );
    // The upstream saw only what fits: the newest turns, the prompt last, never the oldest.
    let requests = fake.requests();
    assert_eq!(requests.len(), 6);
    let last = sent_contents(&requests[5].body);
    assert_eq!(last.last(), Some(&prompts[5]));
    assert!(!last.contains(&prompts[0]) && !last.contains(&prompts[1]));
    assert!(
        last.contains(&prompts[4]),
        "the newest earlier turn still fits"
    );
    assert_eq!(
        last.len() as u32 + omitted_seen[5],
        11,
        "sent plus left out is every message before the answer"
    );
    let words_sent: usize = last.iter().map(|c| c.split_whitespace().count()).sum();
    assert!(
        words_sent <= 150,
        "{words_sent} words do not fit 150 tokens"
    );
    // The stored answers say how many messages their turn left out.
    let detail: Value = server
        .get_json(&user, &format!("/sessions/{session}"))
        .await;
    let answers: Vec<&Value> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .collect();
    let stored: Vec<u32> = answers
        .iter()
        .map(|m| m["context_omitted"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(stored, omitted_seen);
}

#[tokio::test]
async fn a_prompt_too_long_for_the_window_is_422_and_nothing_goes_upstream() {
    let (fake, flags) = openai_fake().await;
    let server = start(
        TestDb::new(),
        &flags,
        &[
            "--context-windows",
            "gpt-4o=200",
            "--answer-reserve-tokens",
            "50",
        ],
    )
    .await;
    let user = server.user().await;
    let session = new_session(&server, &user).await;
    let detail = expect_error(
        chat(&server, &user, &session, &words("x", 400)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(detail.contains("200 tokens"), "{detail}");
    // max_tokens of 0 is refused the same way.
    let response = server
        .chat(
            &user,
            json!({"session_id": session, "prompt": "hi", "provider": "openai", "max_tokens": 0}),
        )
        .await;
    let detail = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(detail.contains("max_tokens"), "{detail}");
    assert!(fake.requests().is_empty(), "the upstream saw nothing");
    let detail: Value = server
        .get_json(&user, &format!("/sessions/{session}"))
        .await;
    assert_eq!(
        detail["messages"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );
}

#[tokio::test]
async fn max_tokens_reaches_each_provider_in_its_own_form() {
    let mut flags = Vec::new();
    let mut fakes = Vec::new();
    for (wire, key_flag, url_flag) in [
        (Wire::OpenAi, Some("--openai-api-key"), "--openai-base-url"),
        (Wire::Gemini, Some("--gemini-api-key"), "--gemini-base-url"),
        (
            Wire::Anthropic,
            Some("--anthropic-api-key"),
            "--anthropic-base-url",
        ),
        (Wire::Ollama, None, "--ollama-host"),
    ] {
        let fake = FakeUpstream::start(wire).await;
        if let Some(key_flag) = key_flag {
            flags.extend([key_flag.to_owned(), "k-test".to_owned()]);
        }
        flags.extend([url_flag.to_owned(), fake.base_url.clone()]);
        fakes.push(fake);
    }
    let server = start(TestDb::new(), &flags, &[]).await;
    let user = server.user().await;
    let session = new_session(&server, &user).await;
    for provider in ["openai", "gemini", "anthropic", "ollama"] {
        let response = server
            .chat(
                &user,
                json!({"session_id": session, "prompt": "hi", "provider": provider,
                       "max_tokens": 77}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{provider}");
        read_sse(response).await;
    }
    let body = |i: usize| fakes[i].requests()[0].body.clone();
    assert_eq!(body(0)["max_tokens"], 77);
    assert_eq!(body(1)["generationConfig"]["maxOutputTokens"], 77);
    assert_eq!(body(2)["max_tokens"], 77);
    assert_eq!(body(3)["options"]["num_predict"], 77);
}

#[tokio::test]
async fn usage_is_shown_per_answer_per_session_and_per_day() {
    let (fake, flags) = openai_fake().await;
    let server = start(TestDb::new(), &flags, &[]).await;
    let user = server.user().await;
    let session = new_session(&server, &user).await;
    read_sse(chat(&server, &user, &session, "one two three").await).await;
    // An answer cut off mid-stream reports no usage: it is estimated, and marked so.
    fake.set_fault(Fault::MidStreamError);
    read_sse(chat(&server, &user, &session, "four five").await).await;

    let detail: Value = server
        .get_json(&user, &format!("/sessions/{session}"))
        .await;
    let answers: Vec<&Value> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .collect();
    assert_eq!(answers[0]["usage"]["estimated"], false);
    assert!(answers[0]["usage"]["prompt_tokens"].as_i64().unwrap() > 0);
    assert_eq!(answers[1]["status"], "error");
    assert_eq!(answers[1]["usage"]["estimated"], true);
    assert!(answers[1]["usage"]["completion_tokens"].as_i64().unwrap() > 0);
    let sum = |field: &str| -> i64 {
        answers
            .iter()
            .map(|a| a["usage"][field].as_i64().unwrap())
            .sum()
    };
    let (prompt, completion) = (sum("prompt_tokens"), sum("completion_tokens"));
    assert_eq!(detail["usage"]["prompt_tokens"], prompt);
    assert_eq!(detail["usage"]["completion_tokens"], completion);
    assert_eq!(detail["usage"]["total_tokens"], prompt + completion);

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let report: Value = server
        .get_json(&user, &format!("/users/me/usage?from={today}&to={today}"))
        .await;
    let days = report["days"].as_array().unwrap();
    assert_eq!(days.len(), 1, "{report}");
    assert_eq!(days[0]["day"], today.as_str());
    assert_eq!(days[0]["provider"], "openai");
    assert_eq!(days[0]["model"], "gpt-4o-mini");
    assert_eq!(days[0]["answers"], 2);
    assert_eq!(report["total"]["total_tokens"], prompt + completion);
    // The default range (the last 30 days) holds today too; another user's report is empty.
    let default: Value = server.get_json(&user, "/users/me/usage").await;
    assert_eq!(default["total"]["total_tokens"], prompt + completion);
    let other = server.user().await;
    let theirs: Value = server.get_json(&other, "/users/me/usage").await;
    assert_eq!(theirs["days"].as_array().unwrap().len(), 0);
    // A range with nothing in it reports nothing; a long one reports what there is.
    for (range, days) in [
        ("?from=2026-01-02&to=2026-01-01".to_owned(), 0),
        (format!("?from=2000-01-01&to={today}"), 1),
    ] {
        let report: Value = server
            .get_json(&user, &format!("/users/me/usage{range}"))
            .await;
        assert_eq!(report["days"].as_array().unwrap().len(), days, "{range}");
    }
    for bad in ["?from=yesterday", "?to=2026-13-01", "?since=2026-01-01"] {
        let response = server
            .get(&user, &format!("/users/me/usage{bad}"))
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
}

/// Asserts a quota refusal: 429 with `Retry-After` and the `RateLimit-*` headers.
async fn expect_quota_refusal(response: Response, limit: u64) -> String {
    let header = |name: &str| -> u64 {
        response.headers()[name]
            .to_str()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number"))
    };
    assert_eq!(header("ratelimit-limit"), limit);
    assert_eq!(header("ratelimit-remaining"), 0);
    assert!(header("ratelimit-reset") >= 1);
    assert!(header("retry-after") >= 1);
    expect_error(response, StatusCode::TOO_MANY_REQUESTS).await
}

const DAILY: &[&str] = &["--tokens-per-day", "50"];

#[tokio::test]
async fn past_the_daily_budget_a_user_gets_429_before_the_upstream_and_keeps_it_across_a_restart() {
    let (fake, flags) = openai_fake().await;
    let server = start(TestDb::new(), &flags, DAILY).await;
    let (spender, other) = (server.user().await, server.user().await);
    let session = new_session(&server, &spender).await;
    // About 60 tokens: the budget is spent by this turn.
    let response = chat(&server, &spender, &session, &words("s", 60)).await;
    assert_eq!(response.status(), StatusCode::OK);
    read_sse(response).await;
    assert_eq!(fake.requests().len(), 1);

    let detail = expect_quota_refusal(chat(&server, &spender, &session, "more").await, 50).await;
    assert!(detail.contains("daily token quota"), "{detail}");
    assert_eq!(fake.requests().len(), 1, "the upstream was not called");

    let theirs = new_session(&server, &other).await;
    let response = chat(&server, &other, &theirs, "hello").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "another user is not limited"
    );
    read_sse(response).await;
    assert_eq!(fake.requests().len(), 2);

    let db = server.stop().await;
    let server = start(db, &flags, DAILY).await;
    expect_quota_refusal(chat(&server, &spender, &session, "again").await, 50).await;
    assert_eq!(fake.requests().len(), 2, "still refused after the restart");
}

#[tokio::test]
async fn past_the_prompts_a_minute_a_user_gets_429_and_the_count_survives_a_restart() {
    // Away from a minute's end, so the three prompts share one minute.
    let second = chrono::Utc::now().timestamp() % 60;
    if second > 45 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - second) as u64)).await;
    }
    let (fake, flags) = openai_fake().await;
    let limit = ["--prompts-per-minute", "2"];
    let server = start(TestDb::new(), &flags, &limit).await;
    let user = server.user().await;
    let session = new_session(&server, &user).await;
    for prompt in ["a", "b"] {
        read_sse(chat(&server, &user, &session, prompt).await).await;
    }
    let detail = expect_quota_refusal(chat(&server, &user, &session, "c").await, 2).await;
    assert!(detail.contains("prompts a minute"), "{detail}");
    assert_eq!(fake.requests().len(), 2);
    let db = server.stop().await;
    let server = start(db, &flags, &limit).await;
    expect_quota_refusal(chat(&server, &user, &session, "d").await, 2).await;
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn on_postgres_two_nodes_enforce_one_daily_budget() {
    if postgres_url().is_none() {
        eprintln!("skipped: set OMNICHAT_TEST_DATABASE_URL to run");
        return;
    }
    let (fake, flags) = openai_fake().await;
    let db = TestDb::new();
    let shared = db.shared();
    let a = start(db, &flags, DAILY).await;
    let b = start(shared, &flags, DAILY).await;
    let user = a.user().await;
    let session = new_session(&a, &user).await;
    // Node B holds the user's counters first, while the budget is still whole.
    read_sse(chat(&b, &user, &session, "hi").await).await;
    // Node A spends it.
    read_sse(chat(&a, &user, &session, &words("s", 60)).await).await;
    assert_eq!(fake.requests().len(), 2);
    // B's own counters would let it through; the shared ones refuse it.
    expect_quota_refusal(chat(&b, &user, &session, "more").await, 50).await;
    expect_quota_refusal(chat(&a, &user, &session, "more").await, 50).await;
    assert_eq!(fake.requests().len(), 2, "neither node called the upstream");
}

#[tokio::test]
async fn max_tokens_past_the_cap_or_the_window_is_capped() {
    let (fake, flags) = openai_fake().await;
    let server = start(
        TestDb::new(),
        &flags,
        &["--context-windows", "gpt-4o=200", "--max-tokens-cap", "150"],
    )
    .await;
    let user = server.user().await;
    let session = new_session(&server, &user).await;
    for (asked, at_most) in [(40_000, 150), (199, 150), (120, 120)] {
        let response = server
            .chat(
                &user,
                json!({"session_id": session, "prompt": "hi", "provider": "openai",
                       "max_tokens": asked}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "max_tokens {asked}");
        read_sse(response).await;
        let sent = fake.requests().last().expect("a request").body["max_tokens"].as_u64();
        let sent = sent.expect("max_tokens sent upstream");
        assert!(sent > 0 && sent <= at_most, "asked {asked}, sent {sent}");
    }
    // The cap (150) fits beside a short prompt in the 200-token window: it is sent whole.
    assert_eq!(fake.requests()[0].body["max_tokens"], 150);
}
