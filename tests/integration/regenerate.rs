//! Regenerate and edit on `POST /chat/stream`: the last prompt answered again, or replaced and
//! answered; the replaced messages stay readable as earlier versions (`superseded: true`), and
//! only the current line of the conversation goes upstream (checked at the fake upstream).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    fake_upstream::{FakeUpstream, Wire},
    support::{expect_error, read_sse, streamed_text, TestServer, TestUser},
};

async fn rig() -> (TestServer, FakeUpstream) {
    let fake = FakeUpstream::start(Wire::OpenAi).await;
    let flags = [
        "--openai-api-key",
        "sk-test",
        "--openai-base-url",
        &fake.base_url,
    ];
    (TestServer::start_with(&flags).await, fake)
}

/// One turn through the OpenAI fake, answered with `reply`; returns the streamed text.
async fn turn(
    server: &TestServer,
    fake: &FakeUpstream,
    user: &TestUser,
    body: Value,
    reply: &str,
) -> String {
    fake.set_reply(vec![reply.to_owned()]);
    let mut body = body;
    body["provider"] = json!("openai");
    let response = server.chat(user, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = streamed_text(&read_sse(response).await);
    assert_eq!(text, reply);
    text
}

/// A new session's id.
async fn session_id(server: &TestServer, user: &TestUser, title: &str) -> String {
    server.session(user, title).await["id"]
        .as_str()
        .expect("a session id")
        .to_owned()
}

/// Two answered turns in session `id`: `first` → `A1`, `second` → `A2`.
async fn two_turns(server: &TestServer, fake: &FakeUpstream, user: &TestUser, id: &str) {
    turn(
        server,
        fake,
        user,
        json!({ "session_id": id, "prompt": "first" }),
        "A1",
    )
    .await;
    turn(
        server,
        fake,
        user,
        json!({ "session_id": id, "prompt": "second" }),
        "A2",
    )
    .await;
}

/// The conversation the last upstream request carried, as `role: content` lines.
fn last_sent(fake: &FakeUpstream) -> Vec<String> {
    let requests = fake.requests();
    let body = &requests.last().expect("a request upstream").body;
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            format!(
                "{}: {}",
                m["role"].as_str().unwrap_or("?"),
                m["content"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// The session's messages as `role: content` lines, earlier versions marked ` (earlier)`;
/// also checks the marker's shape: `superseded` is `true` or absent.
async fn stored(server: &TestServer, user: &TestUser, session: &str) -> Vec<String> {
    let detail: Value = server.get_json(user, &format!("/sessions/{session}")).await;
    detail["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let earlier = match m.get("superseded") {
                None => "",
                Some(Value::Bool(true)) => " (earlier)",
                Some(other) => panic!("superseded is {other}"),
            };
            format!(
                "{}: {}{earlier}",
                m["role"].as_str().unwrap_or("?"),
                m["content"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// The id of the newest message with `role`.
async fn last_id(server: &TestServer, user: &TestUser, session: &str, role: &str) -> String {
    let detail: Value = server.get_json(user, &format!("/sessions/{session}")).await;
    detail["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .rev()
        .find(|m| m["role"] == role)
        .and_then(|m| m["id"].as_str())
        .expect("a message")
        .to_owned()
}

#[tokio::test]
async fn regenerate_sends_the_same_conversation_again_and_keeps_the_earlier_answers() {
    let (server, fake) = rig().await;
    let user = server.user().await;
    let id = session_id(&server, &user, "regen").await;
    two_turns(&server, &fake, &user, &id).await;
    let asked = last_sent(&fake);
    assert_eq!(asked, ["user: first", "assistant: A1", "user: second"]);

    // No prompt needed: the stored one is answered again, with the same history.
    turn(
        &server,
        &fake,
        &user,
        json!({ "session_id": id, "regenerate": true }),
        "A2b",
    )
    .await;
    assert_eq!(last_sent(&fake), asked);
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(
        stored(&server, &user, &id).await,
        [
            "user: first",
            "assistant: A1",
            "user: second",
            "assistant: A2 (earlier)",
            "assistant: A2b"
        ]
    );

    // A second regenerate, this time with the prompt sent as it is stored.
    turn(
        &server,
        &fake,
        &user,
        json!({ "session_id": id, "prompt": "second", "regenerate": true }),
        "A2c",
    )
    .await;
    assert_eq!(last_sent(&fake), asked);
    assert_eq!(
        stored(&server, &user, &id).await,
        [
            "user: first",
            "assistant: A1",
            "user: second",
            "assistant: A2 (earlier)",
            "assistant: A2b (earlier)",
            "assistant: A2c"
        ]
    );

    // The next turn carries the current line only.
    turn(
        &server,
        &fake,
        &user,
        json!({ "session_id": id, "prompt": "third", "regenerate": false }),
        "A3",
    )
    .await;
    assert_eq!(
        last_sent(&fake),
        [
            "user: first",
            "assistant: A1",
            "user: second",
            "assistant: A2c",
            "user: third"
        ]
    );

    // Held in memory or loaded afresh, the same: a new server on the same database.
    let db = server.stop().await;
    let flags = [
        "--openai-api-key",
        "sk-test",
        "--openai-base-url",
        &fake.base_url,
    ];
    let server = TestServer::start_on(db, &flags).await;
    turn(
        &server,
        &fake,
        &user,
        json!({ "session_id": id, "regenerate": true }),
        "A3b",
    )
    .await;
    assert_eq!(
        last_sent(&fake),
        [
            "user: first",
            "assistant: A1",
            "user: second",
            "assistant: A2c",
            "user: third"
        ]
    );
    turn(
        &server,
        &fake,
        &user,
        json!({ "session_id": id, "prompt": "fourth" }),
        "A4",
    )
    .await;
    assert_eq!(
        last_sent(&fake),
        [
            "user: first",
            "assistant: A1",
            "user: second",
            "assistant: A2c",
            "user: third",
            "assistant: A3b",
            "user: fourth"
        ]
    );
    // The export carries the earlier versions with their marker too.
    let export: Value = server
        .get(&user, &format!("/sessions/{id}/export?format=json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let marked = export["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["superseded"] == true)
        .count();
    assert_eq!(marked, 3, "A2, A2b, A3");
    let markdown = server
        .get(&user, &format!("/sessions/{id}/export?format=markdown"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        markdown.matches("(earlier version)").count(),
        3,
        "{markdown}"
    );
    assert!(
        markdown.contains("A2c") && markdown.contains("A2b"),
        "{markdown}"
    );
}

#[tokio::test]
async fn edit_replaces_the_last_prompt_and_sends_the_history_before_it() {
    let (server, fake) = rig().await;
    let user = server.user().await;
    let id = session_id(&server, &user, "edit").await;
    two_turns(&server, &fake, &user, &id).await;
    let second = last_id(&server, &user, &id, "user").await;

    let body = json!({ "session_id": id, "prompt": "second, edited", "edit_message_id": second });
    turn(&server, &fake, &user, body, "E1").await;
    assert_eq!(
        last_sent(&fake),
        ["user: first", "assistant: A1", "user: second, edited"]
    );
    assert_eq!(
        stored(&server, &user, &id).await,
        [
            "user: first",
            "assistant: A1",
            "user: second (earlier)",
            "assistant: A2 (earlier)",
            "user: second, edited",
            "assistant: E1"
        ]
    );

    // The edited prompt is the last one now: it can be edited in turn, the first version not.
    let stale = server
        .chat(&user, json!({ "session_id": id, "prompt": "x", "provider": "openai", "edit_message_id": second }))
        .await;
    let detail = expect_error(stale, StatusCode::CONFLICT).await;
    assert!(detail.contains("edit_message_id"), "{detail}");
    let edited = last_id(&server, &user, &id, "user").await;
    let body = json!({ "session_id": id, "prompt": "second, again", "edit_message_id": edited });
    turn(&server, &fake, &user, body, "E2").await;
    assert_eq!(
        last_sent(&fake),
        ["user: first", "assistant: A1", "user: second, again"]
    );

    turn(
        &server,
        &fake,
        &user,
        json!({ "session_id": id, "prompt": "third" }),
        "A3",
    )
    .await;
    assert_eq!(
        last_sent(&fake),
        [
            "user: first",
            "assistant: A1",
            "user: second, again",
            "assistant: E2",
            "user: third"
        ]
    );
    let all = stored(&server, &user, &id).await;
    assert_eq!(all.len(), 10);
    assert_eq!(all.iter().filter(|m| m.ends_with("(earlier)")).count(), 4);
}

#[tokio::test]
async fn replacing_is_refused_while_streaming_and_for_anything_but_the_last_prompt() {
    let (server, fake) = rig().await;
    let user = server.user().await;
    let id = session_id(&server, &user, "refusals").await;
    let refused = |body: Value, status: StatusCode| {
        let (server, user) = (&server, &user);
        async move {
            let mut body = body;
            body["provider"] = json!("openai");
            expect_error(server.chat(user, body).await, status).await
        }
    };

    // Nothing to replace yet: well-formed requests the session's state refuses (409).
    let detail = refused(
        json!({ "session_id": id, "regenerate": true }),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(detail.contains("regenerate"), "{detail}");
    let detail = refused(
        json!({ "session_id": id, "prompt": "p", "edit_message_id": uuid::Uuid::now_v7() }),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(detail.contains("edit_message_id"), "{detail}");

    two_turns(&server, &fake, &user, &id).await;
    let before = stored(&server, &user, &id).await;
    let first = {
        let detail: Value = server.get_json(&user, &format!("/sessions/{id}")).await;
        detail["messages"][0]["id"].as_str().unwrap().to_owned()
    };
    let answer = last_id(&server, &user, &id, "assistant").await;
    let second = last_id(&server, &user, &id, "user").await;

    // Anything but the last prompt: the session's state refuses it (409).
    for target in [&first, &answer] {
        let body = json!({ "session_id": id, "prompt": "p", "edit_message_id": target });
        let detail = refused(body.clone(), StatusCode::CONFLICT).await;
        assert!(detail.contains("edit_message_id"), "{body}: {detail}");
    }
    let body = json!({ "session_id": id, "prompt": "not the last prompt", "regenerate": true });
    let detail = refused(body, StatusCode::CONFLICT).await;
    assert!(detail.contains("prompt"), "{detail}");
    // Malformed requests (422).
    for (body, field) in [
        (
            json!({ "session_id": id, "prompt": "p", "edit_message_id": "nope" }),
            "edit_message_id",
        ),
        (
            json!({ "session_id": id, "prompt": "p", "edit_message_id": second, "regenerate": true }),
            "edit_message_id",
        ),
        (
            json!({ "session_id": id, "prompt": "  ", "edit_message_id": second }),
            "prompt",
        ),
        (
            json!({ "session_id": id, "edit_message_id": second }),
            "prompt",
        ),
        (json!({ "session_id": id }), "prompt"),
    ] {
        let detail = refused(body.clone(), StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(detail.contains(field), "{body}: {detail}");
    }
    // Another user's session is not found, whatever the message.
    let other = server.user().await;
    let response = server
        .chat(
            &other,
            json!({ "session_id": id, "regenerate": true, "provider": "openai" }),
        )
        .await;
    expect_error(response, StatusCode::NOT_FOUND).await;
    let response = server
        .chat(&other, json!({ "session_id": id, "prompt": "p", "edit_message_id": second, "provider": "openai" }))
        .await;
    expect_error(response, StatusCode::NOT_FOUND).await;
    assert_eq!(
        stored(&server, &user, &id).await,
        before,
        "refusals write nothing"
    );
    let sent = fake.requests().len();

    // While an answer streams, neither replaces anything.
    fake.set_reply(["slow", " answer"].map(String::from).to_vec());
    fake.set_token_delay(Duration::from_millis(700));
    let live = server
        .chat(
            &user,
            json!({ "session_id": id, "prompt": "third", "provider": "openai" }),
        )
        .await;
    assert_eq!(live.status(), StatusCode::OK);
    let third = last_id(&server, &user, &id, "user").await;
    refused(
        json!({ "session_id": id, "regenerate": true }),
        StatusCode::CONFLICT,
    )
    .await;
    refused(
        json!({ "session_id": id, "prompt": "p", "edit_message_id": third }),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(streamed_text(&read_sse(live).await), "slow answer");
    assert_eq!(fake.requests().len(), sent + 1);
    fake.set_token_delay(Duration::ZERO);
    // Once it ended, both work again.
    turn(
        &server,
        &fake,
        &user,
        json!({ "session_id": id, "regenerate": true }),
        "A3b",
    )
    .await;
    assert_eq!(
        last_sent(&fake),
        [
            "user: first",
            "assistant: A1",
            "user: second",
            "assistant: A2",
            "user: third"
        ]
    );
}

#[tokio::test]
async fn an_answer_streaming_on_another_node_blocks_a_replace_there_too() {
    let fake = FakeUpstream::start(Wire::OpenAi).await;
    let flags = [
        "--openai-api-key",
        "sk-test",
        "--openai-base-url",
        &fake.base_url,
    ];
    let Some((a, b)) = crate::support::two_nodes(&flags).await else {
        return;
    };
    let user = a.user().await;
    let id = a.session(&user, "two nodes").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    turn(
        &a,
        &fake,
        &user,
        json!({ "session_id": id, "prompt": "first" }),
        "A1",
    )
    .await;

    fake.set_reply(["slow", " answer"].map(String::from).to_vec());
    fake.set_token_delay(Duration::from_millis(700));
    let live = a
        .chat(
            &user,
            json!({ "session_id": id, "prompt": "second", "provider": "openai" }),
        )
        .await;
    assert_eq!(live.status(), StatusCode::OK);
    let second = last_id(&b, &user, &id, "user").await;
    for body in [
        json!({ "session_id": id, "regenerate": true, "provider": "openai" }),
        json!({ "session_id": id, "prompt": "p", "edit_message_id": second, "provider": "openai" }),
    ] {
        expect_error(b.chat(&user, body).await, StatusCode::CONFLICT).await;
    }
    assert_eq!(streamed_text(&read_sse(live).await), "slow answer");
    fake.set_token_delay(Duration::ZERO);
    // Ended there, node B regenerates it with what node A stored.
    turn(
        &b,
        &fake,
        &user,
        json!({ "session_id": id, "regenerate": true }),
        "A2b",
    )
    .await;
    assert_eq!(
        last_sent(&fake),
        ["user: first", "assistant: A1", "user: second"]
    );
    assert_eq!(
        stored(&a, &user, &id).await,
        [
            "user: first",
            "assistant: A1",
            "user: second",
            "assistant: slow answer (earlier)",
            "assistant: A2b"
        ]
    );
    // Node A held the session: the change on B is noticed, and its next turn sends the current line.
    turn(
        &a,
        &fake,
        &user,
        json!({ "session_id": id, "prompt": "third" }),
        "A3",
    )
    .await;
    assert_eq!(
        last_sent(&fake),
        [
            "user: first",
            "assistant: A1",
            "user: second",
            "assistant: A2b",
            "user: third"
        ]
    );
}
