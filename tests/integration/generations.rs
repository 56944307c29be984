//! Generations that outlive their connection: disconnect policies, resume with `Last-Event-ID`,
//! stop, ownership, per-session and per-user limits, delete during a stream, injected panics.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    fake_upstream::{FakeUpstream, Wire},
    support::{
        expect_error, generation_id, parse_sse, read_sse, streamed_text, SseEvent, TestServer,
        TestUser,
    },
};

/// A prompt of `n` numbered words; echo streams it back one word per delay.
fn long_prompt(n: usize) -> String {
    (1..=n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a stream until at least `count` complete events have arrived, then returns them
/// (the response is dropped by the caller to simulate a disconnect).
async fn read_events(response: &mut reqwest::Response, count: usize) -> Vec<SseEvent> {
    let (events, _partial) = read_events_keeping_rest(response, count).await;
    events
}

/// Like [`read_events`], also returning the bytes of any event that had only partly arrived.
async fn read_events_keeping_rest(
    response: &mut reqwest::Response,
    count: usize,
) -> (Vec<SseEvent>, String) {
    let mut buffer = String::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .expect("chunk")
            .expect("stream ended early");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        let Some(end) = buffer.rfind("\n\n") else {
            continue;
        };
        let events = parse_sse(&buffer[..end + 2]);
        if events.len() >= count {
            return (events, buffer[end + 2..].to_string());
        }
    }
}

/// Polls the session until its last assistant message has left `streaming`.
async fn settled_answer(server: &TestServer, user: &TestUser, session_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let detail: Value = server
            .get_json(user, &format!("/sessions/{session_id}"))
            .await;
        let last = detail["messages"]
            .as_array()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or(Value::Null);
        if last["role"] == "assistant" && last["status"] != "streaming" {
            return last;
        }
        assert!(
            Instant::now() < deadline,
            "the answer never settled: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn openai_flags(fake: &FakeUpstream) -> Vec<String> {
    vec![
        "--openai-api-key".into(),
        "sk-test".into(),
        "--openai-base-url".into(),
        fake.base_url.clone(),
    ]
}

async fn fake_server(fake: &FakeUpstream, extra: &[&str]) -> TestServer {
    let mut flags = openai_flags(fake);
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    TestServer::start_with(&flags).await
}

/// A server on a slow fake OpenAI upstream, a user, and an answer of that user streaming in a
/// fresh session, read up to its first `events` events.
struct SlowAnswer {
    fake: FakeUpstream,
    server: TestServer,
    user: TestUser,
    session_id: String,
    response: reqwest::Response,
}

async fn slow_answer(extra: &[&str], events: usize) -> SlowAnswer {
    let fake = slow_fake(100).await;
    let server = fake_server(&fake, extra).await;
    let user = server.user().await;
    let session = server.session(&user, "Slow").await;
    let session_id = session["id"].as_str().unwrap().to_string();
    let mut response = server
        .chat(
            &user,
            json!({ "session_id": session_id, "prompt": "go", "provider": "openai" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    read_events(&mut response, events).await;
    SlowAnswer {
        fake,
        server,
        user,
        session_id,
        response,
    }
}

async fn slow_fake(words: usize) -> FakeUpstream {
    let fake = FakeUpstream::start(Wire::OpenAi).await;
    fake.set_reply((1..=words).map(|i| format!(" t{i}")).collect());
    fake.set_token_delay(Duration::from_millis(40));
    fake
}

async fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn by_default_a_disconnected_answer_runs_to_the_end() {
    let server = TestServer::start_with(&["--echo-delay-ms", "10"]).await;
    let user = server.user().await;
    let session = server.session(&user, "Tab closed").await;
    let id = session["id"].as_str().unwrap();
    let prompt = long_prompt(40);
    let mut response = server
        .chat(&user, json!({ "session_id": id, "prompt": prompt }))
        .await;
    read_events(&mut response, 2).await;
    drop(response);
    let answer = settled_answer(&server, &user, id).await;
    assert_eq!(answer["status"], "complete");
    assert_eq!(
        answer["content"],
        prompt.as_str(),
        "the whole answer was stored"
    );
}

#[tokio::test]
async fn cancel_policy_closes_the_upstream_and_keeps_the_partial_answer() {
    let SlowAnswer {
        fake,
        server,
        user,
        session_id,
        response,
    } = slow_answer(&["--on-disconnect", "cancel"], 2).await;
    let id = session_id.as_str();
    assert_eq!(fake.open_streams(), 1);
    let dropped_at = Instant::now();
    drop(response);
    wait_until(
        "the upstream connection closing",
        Duration::from_millis(1500),
        || fake.open_streams() == 0,
    )
    .await;
    let closed_after = dropped_at.elapsed();
    let answer = settled_answer(&server, &user, id).await;
    assert_eq!(answer["status"], "stopped");
    let content = answer["content"].as_str().unwrap();
    assert!(
        content.starts_with(" t1 t2"),
        "partial text kept: {content:?}"
    );
    assert!(
        !content.contains("t100"),
        "not the whole answer: {content:?}"
    );
    assert!(closed_after < Duration::from_millis(1500));
}

#[tokio::test]
async fn resume_with_and_without_last_event_id() {
    let server = TestServer::start_with(&["--echo-delay-ms", "15"]).await;
    let user = server.user().await;
    let session = server.session(&user, "Resume").await;
    let id = session["id"].as_str().unwrap();
    let prompt = long_prompt(30);
    let mut response = server
        .chat(&user, json!({ "session_id": id, "prompt": prompt }))
        .await;
    let generation = generation_id(&response);
    let first = read_events(&mut response, 3).await;
    drop(response);
    let have = streamed_text(&first);
    let last_id = first.last().unwrap().id.clone().unwrap();

    // While it runs, the session shows the answer as streaming, with its generation id.
    let detail: Value = server.get_json(&user, &format!("/sessions/{id}")).await;
    let live = detail["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(live["status"], "streaming");
    assert_eq!(live["generation_id"], generation.as_str());

    let rest = server
        .get(&user, &format!("/chat/stream/{generation}"))
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), StatusCode::OK);
    assert_eq!(rest.headers()["content-type"], "text/event-stream");
    let rest = read_sse(rest).await;
    assert_eq!(rest.last().unwrap().data, "[DONE]");
    assert_eq!(
        format!("{have}{}", streamed_text(&rest)),
        prompt,
        "nothing lost, nothing twice"
    );

    // A fresh attach without Last-Event-ID gets the whole answer; after the end it still does.
    let all = server
        .get(&user, &format!("/chat/stream/{generation}"))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed_text(&read_sse(all).await), prompt);
    settled_answer(&server, &user, id).await;
    let stored = server
        .get(&user, &format!("/chat/stream/{generation}/"))
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    let stored = read_sse(stored).await;
    assert_eq!(format!("{have}{}", streamed_text(&stored)), prompt);
    assert_eq!(stored.last().unwrap().data, "[DONE]");

    let bad = server
        .get(&user, &format!("/chat/stream/{generation}"))
        .header("last-event-id", "not-a-number")
        .send()
        .await
        .unwrap();
    expect_error(bad, StatusCode::BAD_REQUEST).await;
    // Well formed but past the end of this answer: it clashes with the answer, 409.
    let past_the_end = server
        .get(&user, &format!("/chat/stream/{generation}"))
        .header("last-event-id", (prompt.len() + 1).to_string())
        .send()
        .await
        .unwrap();
    let detail = expect_error(past_the_end, StatusCode::CONFLICT).await;
    assert!(detail.contains("Last-Event-ID"), "{detail}");
}

#[tokio::test]
async fn stop_closes_the_upstream_and_ends_every_stream() {
    let SlowAnswer {
        fake,
        server,
        user,
        session_id,
        response: first,
    } = slow_answer(&[], 2).await;
    let id = session_id.as_str();
    let generation = generation_id(&first);
    let second = server
        .get(&user, &format!("/chat/stream/{generation}"))
        .send()
        .await
        .unwrap();

    let stopped = server
        .post(&user, &format!("/chat/stream/{generation}/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.status(), StatusCode::OK);
    let body: Value = stopped.json().await.unwrap();
    assert_eq!(body["status"], "stopped");
    wait_until(
        "the upstream connection closing",
        Duration::from_secs(1),
        || fake.open_streams() == 0,
    )
    .await;

    let rest_of_first = first.text().await.unwrap();
    assert!(
        rest_of_first.ends_with("data: [DONE]\n\n"),
        "{rest_of_first}"
    );
    let second = read_sse(second).await;
    assert_eq!(second.last().unwrap().data, "[DONE]");
    let answer = settled_answer(&server, &user, id).await;
    assert_eq!(answer["status"], "stopped");
    assert!(answer["content"].as_str().unwrap().starts_with(" t1"));
    assert_eq!(streamed_text(&second), answer["content"].as_str().unwrap());

    // Stopping again reports how it ended.
    let again: Value = server
        .post(&user, &format!("/chat/stream/{generation}/stop"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["status"], "stopped");
}

#[tokio::test]
async fn only_the_owner_can_resume_or_stop() {
    let server = TestServer::start_with(&["--echo-delay-ms", "20"]).await;
    let owner = server.user().await;
    let other = server.user().await;
    let session = server.session(&owner, "Mine").await;
    let mut response = server
        .chat(
            &owner,
            json!({ "session_id": session["id"], "prompt": long_prompt(30) }),
        )
        .await;
    let generation = generation_id(&response);
    read_events(&mut response, 1).await;
    for path in [format!("/chat/stream/{generation}")] {
        expect_error(
            server.get(&other, &path).send().await.unwrap(),
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    let stop = server
        .post(&other, &format!("/chat/stream/{generation}/stop"))
        .send()
        .await
        .unwrap();
    expect_error(stop, StatusCode::NOT_FOUND).await;
    let unknown = server
        .get(&owner, &format!("/chat/stream/{}", uuid::Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    expect_error(unknown, StatusCode::NOT_FOUND).await;
    let garbage = server
        .post(&owner, "/chat/stream/xyz/stop")
        .send()
        .await
        .unwrap();
    expect_error(garbage, StatusCode::NOT_FOUND).await;
    // The owner's answer was not disturbed.
    let rest = response.text().await.unwrap();
    assert!(rest.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn one_answer_per_session_and_a_cap_per_user() {
    let server =
        TestServer::start_with(&["--echo-delay-ms", "20", "--max-generations-per-user", "2"]).await;
    let user = server.user().await;
    let a = server.session(&user, "A").await;
    let b = server.session(&user, "B").await;
    let c = server.session(&user, "C").await;
    let mut first = server
        .chat(
            &user,
            json!({ "session_id": a["id"], "prompt": long_prompt(50) }),
        )
        .await;
    read_events(&mut first, 1).await;
    let busy = server
        .chat(&user, json!({ "session_id": a["id"], "prompt": "me too" }))
        .await;
    expect_error(busy, StatusCode::CONFLICT).await;
    let mut second = server
        .chat(
            &user,
            json!({ "session_id": b["id"], "prompt": long_prompt(50) }),
        )
        .await;
    read_events(&mut second, 1).await;
    let third = server
        .chat(
            &user,
            json!({ "session_id": c["id"], "prompt": "one more" }),
        )
        .await;
    assert!(third.headers().contains_key("retry-after"));
    expect_error(third, StatusCode::TOO_MANY_REQUESTS).await;
    // Another user is not limited by this one.
    let other = server.user().await;
    let theirs = server.session(&other, "Theirs").await;
    let ok = server
        .chat(
            &other,
            json!({ "session_id": theirs["id"], "prompt": "hello" }),
        )
        .await;
    assert_eq!(streamed_text(&read_sse(ok).await), "hello");
    // The refused prompts were not stored.
    let detail: Value = server
        .get_json(&user, &format!("/sessions/{}", c["id"].as_str().unwrap()))
        .await;
    assert_eq!(detail["messages"], json!([]));
}

#[tokio::test]
async fn deleting_a_session_stops_its_answer() {
    let SlowAnswer {
        fake,
        server,
        user,
        session_id,
        response,
    } = slow_answer(&[], 1).await;
    let id = session_id.as_str();
    let deleted = server
        .delete(&user, &format!("/sessions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let rest = response.text().await.unwrap();
    assert!(rest.ends_with("data: [DONE]\n\n"));
    wait_until(
        "the upstream connection closing",
        Duration::from_secs(1),
        || fake.open_streams() == 0,
    )
    .await;
    expect_error(
        server
            .get(&user, &format!("/sessions/{id}"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    // The user can start a new answer at once: the stopped one no longer counts.
    let fresh = server.session(&user, "Fresh").await;
    let ok = server
        .chat(&user, json!({ "session_id": fresh["id"], "prompt": "hi" }))
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_slow_reader_does_not_slow_the_generation() {
    let server = TestServer::start_with(&["--echo-delay-ms", "0"]).await;
    let user = server.user().await;
    let session = server.session(&user, "Fast").await;
    let id = session["id"].as_str().unwrap();
    let prompt = long_prompt(3000);
    // Open the stream and do not read it: the generation must finish and store regardless.
    let response = server
        .chat(&user, json!({ "session_id": id, "prompt": prompt }))
        .await;
    let answer = settled_answer(&server, &user, id).await;
    assert_eq!(answer["status"], "complete");
    assert_eq!(answer["content"].as_str().unwrap().len(), prompt.len());
    // And the reader still gets all of it, late.
    assert_eq!(streamed_text(&read_sse(response).await), prompt);
}

#[cfg(feature = "fault-injection")]
mod faults {
    use super::*;
    use omnichat_actors::faults::{PANIC_GENERATION, PANIC_SESSION};

    #[tokio::test]
    async fn a_panicking_generation_ends_alone() {
        let server = TestServer::start_with(&["--echo-delay-ms", "10"]).await;
        let user = server.user().await;
        let calm = server.session(&user, "Calm").await;
        let doomed = server.session(&user, "Doomed").await;
        let mut calm_stream = server
            .chat(
                &user,
                json!({ "session_id": calm["id"], "prompt": long_prompt(30) }),
            )
            .await;
        let (calm_head, calm_partial) = read_events_keeping_rest(&mut calm_stream, 1).await;

        let prompt = format!("one two {PANIC_GENERATION} four");
        let response = server
            .chat(
                &user,
                json!({ "session_id": doomed["id"], "prompt": prompt }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let events = read_sse(response).await;
        assert_eq!(events.last().unwrap().data, "[DONE]");
        let error: Value = serde_json::from_str(&events[events.len() - 2].data).unwrap();
        assert!(
            error["error"]["message"].is_string(),
            "an error event before [DONE]: {events:?}"
        );
        assert_eq!(
            streamed_text(&events),
            "one two",
            "the text before the panic arrived"
        );
        let answer = settled_answer(&server, &user, doomed["id"].as_str().unwrap()).await;
        assert_eq!(answer["status"], "error");

        // The other answer of the same user is untouched, and the user can go on.
        let calm_rest = format!("{calm_partial}{}", calm_stream.text().await.unwrap());
        let calm_text = format!(
            "{}{}",
            streamed_text(&calm_head),
            streamed_text(&parse_sse(&calm_rest))
        );
        assert_eq!(calm_text, long_prompt(30));
        let again = server
            .chat(
                &user,
                json!({ "session_id": doomed["id"], "prompt": "still here" }),
            )
            .await;
        assert_eq!(streamed_text(&read_sse(again).await), "still here");
    }

    #[tokio::test]
    async fn a_failing_session_actor_is_restarted_and_others_never_notice() {
        let server = TestServer::start_with(&["--echo-delay-ms", "10"]).await;
        let victim = server.user().await;
        let bystander = server.user().await;
        let theirs = server.session(&bystander, "Bystander").await;
        let mut theirs_stream = server
            .chat(
                &bystander,
                json!({ "session_id": theirs["id"], "prompt": long_prompt(30) }),
            )
            .await;
        let (theirs_head, theirs_partial) = read_events_keeping_rest(&mut theirs_stream, 1).await;

        // The victim has an answer streaming when its SessionActor fails.
        let running = server.session(&victim, "Running").await;
        let running_id = running["id"].as_str().unwrap();
        let mut running_stream = server
            .chat(
                &victim,
                json!({ "session_id": running_id, "prompt": long_prompt(200) }),
            )
            .await;
        read_events(&mut running_stream, 1).await;

        let session = server.session(&victim, "Victim").await;
        let crash = server
            .chat(
                &victim,
                json!({ "session_id": session["id"], "prompt": PANIC_SESSION }),
            )
            .await;
        assert_eq!(crash.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(crash.headers().contains_key("retry-after"));

        // The running answer ends properly (error, then [DONE]) and is stored, not left streaming.
        let rest = running_stream.text().await.unwrap();
        assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
        assert!(rest.contains("\"error\""), "{rest}");
        let answer = settled_answer(&server, &victim, running_id).await;
        assert_eq!(answer["status"], "error");
        assert!(
            answer["content"].as_str().unwrap().starts_with("w1"),
            "partial text kept"
        );
        // ... and its session takes a new prompt at once: nothing orphaned still holds it.
        let again = server
            .chat(
                &victim,
                json!({ "session_id": running_id, "prompt": "next" }),
            )
            .await;
        assert_eq!(streamed_text(&read_sse(again).await), "next");

        // The victim's next requests are served by a fresh SessionActor.
        let list: Vec<Value> = server.get_json(&victim, "/sessions").await;
        assert_eq!(list.len(), 2);
        let ok = server
            .chat(
                &victim,
                json!({ "session_id": session["id"], "prompt": "recovered" }),
            )
            .await;
        assert_eq!(streamed_text(&read_sse(ok).await), "recovered");
        // The bystander's stream went on undisturbed.
        let theirs_rest = format!("{theirs_partial}{}", theirs_stream.text().await.unwrap());
        let theirs_text = format!(
            "{}{}",
            streamed_text(&theirs_head),
            streamed_text(&parse_sse(&theirs_rest))
        );
        assert_eq!(theirs_text, long_prompt(30));
    }

    #[tokio::test]
    async fn a_session_actor_that_keeps_failing_is_held_off() {
        let server = TestServer::start().await;
        let user = server.user().await;
        let session = server.session(&user, "Crashy").await;
        for _ in 0..5 {
            let crash = server
                .chat(
                    &user,
                    json!({ "session_id": session["id"], "prompt": PANIC_SESSION }),
                )
                .await;
            assert_eq!(crash.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        // Past the restart budget the user is told to come back later, not crashed again.
        let held = server.get(&user, "/sessions").send().await.unwrap();
        assert!(held.headers().contains_key("retry-after"));
        expect_error(held, StatusCode::SERVICE_UNAVAILABLE).await;
        // Other users are served as usual.
        let other = server.user().await;
        let list = server.get(&other, "/sessions").send().await.unwrap();
        assert_eq!(list.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn an_answer_past_the_size_cap_is_cut_off_with_an_error() {
    let server =
        TestServer::start_with(&["--echo-delay-ms", "0", "--max-answer-bytes", "100"]).await;
    let user = server.user().await;
    let session = server.session(&user, "Long").await;
    let id = session["id"].as_str().unwrap();
    let response = server
        .chat(
            &user,
            json!({ "session_id": id, "prompt": long_prompt(100) }),
        )
        .await;
    let events = read_sse(response).await;
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let error: Value = serde_json::from_str(&events[events.len() - 2].data).unwrap();
    assert_eq!(error["error"]["code"], "answer_too_long");
    let streamed = streamed_text(&events);
    assert!(
        !streamed.is_empty() && streamed.len() <= 100,
        "{} bytes",
        streamed.len()
    );
    let answer = settled_answer(&server, &user, id).await;
    assert_eq!(answer["status"], "error");
    assert_eq!(
        answer["content"],
        streamed.as_str(),
        "what was streamed is what was kept"
    );
}

#[tokio::test]
async fn two_nodes_on_one_database_stop_across_nodes_and_never_fake_an_end() {
    let db = crate::support::TestDb::new();
    let shared = db.shared();
    let a = TestServer::start_on(db, &["--echo-delay-ms", "20"]).await;
    let b = TestServer::start_on(shared, &[]).await;
    let user = a.user().await;
    let session = a.session(&user, "Two nodes").await;
    let id = session["id"].as_str().unwrap();
    let mut stream = a
        .chat(
            &user,
            json!({ "session_id": id, "prompt": long_prompt(200) }),
        )
        .await;
    let generation = generation_id(&stream);
    read_events(&mut stream, 1).await;

    // Node B does not hold the generation: resuming there must not pretend it has ended. Over
    // PostgreSQL it follows the answer from node A; over SQLite it says to come back later.
    let elsewhere = b
        .get(&user, &format!("/chat/stream/{generation}"))
        .send()
        .await
        .unwrap();
    let followed = if crate::support::postgres_url().is_some() {
        assert_eq!(elsewhere.status(), StatusCode::OK);
        Some(elsewhere)
    } else {
        assert!(elsewhere.headers().contains_key("retry-after"));
        expect_error(elsewhere, StatusCode::SERVICE_UNAVAILABLE).await;
        None
    };

    let stop = b
        .post(&user, &format!("/chat/stream/{generation}/stop"))
        .send()
        .await
        .unwrap();
    if crate::support::postgres_url().is_some() {
        // PostgreSQL carries the stop to node A, which stores the answer and ends the stream.
        assert_eq!(stop.status(), StatusCode::OK);
        let body: Value = stop.json().await.unwrap();
        assert_eq!(body["status"], "stopped");
        let rest = stream.text().await.unwrap();
        assert!(rest.ends_with("data: [DONE]\n\n"));
        let answer = settled_answer(&a, &user, id).await;
        assert_eq!(answer["status"], "stopped");
        // The follower on node B got the answer up to the stop, and its end.
        let followed = read_sse(followed.expect("followed on PostgreSQL")).await;
        assert_eq!(followed.last().unwrap().data, "[DONE]");
        assert_eq!(
            streamed_text(&followed),
            answer["content"].as_str().unwrap()
        );
    } else {
        // SQLite has no signal between processes: say so rather than claim a stop.
        expect_error(stop, StatusCode::SERVICE_UNAVAILABLE).await;
        let stopped = a
            .post(&user, &format!("/chat/stream/{generation}/stop"))
            .send()
            .await
            .unwrap();
        assert_eq!(stopped.status(), StatusCode::OK);
    }
    // Once it is over, either node serves the stored answer.
    settled_answer(&a, &user, id).await;
    let replay = b
        .get(&user, &format!("/chat/stream/{generation}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(read_sse(replay).await.last().unwrap().data, "[DONE]");
}
