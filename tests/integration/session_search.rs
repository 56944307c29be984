//! `GET /sessions` beyond the spec's plain list: pages with a cursor and a `Link` header,
//! full-text search over titles and message text (ranked, paged, with snippets), and the
//! per-user cap on sessions that keeps the unpaged list bounded.

use std::collections::HashSet;

use reqwest::{header, StatusCode};
use serde_json::{json, Value};

use crate::{
    fake_upstream::{FakeUpstream, Wire},
    support::{expect_error, read_sse, streamed_text, TestServer, TestUser},
};

/// One echo turn (the answer repeats the prompt), read to its end.
pub async fn echo_turn(server: &TestServer, user: &TestUser, session: &Value, prompt: &str) {
    let response = server
        .chat(
            user,
            json!({ "session_id": session["id"], "prompt": prompt, "provider": "echo" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(streamed_text(&read_sse(response).await), prompt);
}

/// `GET path` as JSON with its `Link: <…>; rel="next"` target, if any.
pub async fn page(
    server: &TestServer,
    user: &TestUser,
    path: &str,
) -> (Vec<Value>, Option<String>) {
    let response = server.get(user, path).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    let next = response
        .headers()
        .get(header::LINK)
        .map(|v| v.to_str().expect("ascii link").to_owned())
        .map(|link| {
            assert!(link.ends_with(">; rel=\"next\""), "{link}");
            link.trim_start_matches('<')
                .trim_end_matches(">; rel=\"next\"")
                .to_owned()
        });
    (response.json().await.expect("json"), next)
}

pub fn ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn pages_follow_the_link_header_and_survive_new_sessions() {
    let server = TestServer::start().await;
    let user = server.user().await;
    for n in 0..5 {
        server.session(&user, &format!("Chat {n}")).await;
    }
    let (all, next) = page(&server, &user, "/sessions").await;
    assert_eq!(all.len(), 5);
    assert!(next.is_none(), "no parameters: the whole list, no Link");
    assert!(all.iter().all(|s| s.get("snippet").is_none()));

    let (first, next) = page(&server, &user, "/sessions?limit=2").await;
    assert_eq!(ids(&first), ids(&all[..2]));
    let next = next.expect("more pages");
    // A session created between pages sorts first and shifts nothing after the cursor.
    server.session(&user, "Newcomer").await;
    let (second, next) = page(&server, &user, &next).await;
    assert_eq!(ids(&second), ids(&all[2..4]));
    let (third, next) = page(&server, &user, &next.expect("a third page")).await;
    assert_eq!(ids(&third), ids(&all[4..]));
    assert!(next.is_none(), "the last page has no Link");

    for bad in [
        "/sessions?limit=0",
        "/sessions?limit=101",
        "/sessions?limit=ten",
        "/sessions?cursor=nonsense",
        "/sessions?cursor=01ff",
    ] {
        let response = server.get(&user, bad).send().await.unwrap();
        let detail = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            detail.contains("limit") || detail.contains("cursor"),
            "{bad}: {detail}"
        );
    }
}

#[tokio::test]
async fn past_the_session_cap_creating_is_409() {
    let server = TestServer::start_with(&["--max-sessions-per-user", "3"]).await;
    let user = server.user().await;
    for n in 0..3 {
        server.session(&user, &format!("Chat {n}")).await;
    }
    let response = server
        .post(&user, "/sessions")
        .json(&json!({ "title": "One too many" }))
        .send()
        .await
        .unwrap();
    let detail = expect_error(response, StatusCode::CONFLICT).await;
    assert!(detail.contains("limit"), "{detail}");
    // Another user has a cap of their own.
    let other = server.user().await;
    server.session(&other, "Mine").await;
}

#[tokio::test]
async fn search_finds_words_in_titles_and_bodies_ranked_with_snippets() {
    let fake = FakeUpstream::start(Wire::OpenAi).await;
    let server = TestServer::start_with(&[
        "--openai-api-key",
        "sk-test",
        "--openai-base-url",
        &fake.base_url,
    ])
    .await;
    let user = server.user().await;
    let often = server.session(&user, "Alpha").await;
    echo_turn(&server, &user, &often, "quokka quokka quokka quokka").await;
    let once = server.session(&user, "Beta").await;
    echo_turn(
        &server,
        &user,
        &once,
        "a long note that mentions the quokka only once among many other ordinary words of \
         little interest to anybody reading it at all",
    )
    .await;
    let titled = server.session(&user, "Quokka notes").await;
    let unrelated = server.session(&user, "Gamma").await;
    echo_turn(&server, &user, &unrelated, "nothing to see here").await;
    // The word of this answer is only in the answer, which is written by the final update.
    let answered = server.session(&user, "Delta").await;
    fake.set_reply(vec!["the ".into(), "wombat ".into(), "sleeps".into()]);
    let response = server
        .chat(
            &user,
            json!({ "session_id": answered["id"], "prompt": "who sleeps?", "provider": "openai" }),
        )
        .await;
    assert_eq!(
        streamed_text(&read_sse(response).await),
        "the wombat sleeps"
    );
    // Another user's matching session is never found.
    let stranger = server.user().await;
    let theirs = server.session(&stranger, "Quokka too").await;
    echo_turn(&server, &stranger, &theirs, "quokka").await;

    let (found, next) = page(&server, &user, "/sessions?q=QUOKKA").await;
    assert!(next.is_none());
    assert_eq!(
        ids(&found).into_iter().collect::<HashSet<_>>(),
        ids(&[often.clone(), once.clone(), titled.clone()])
            .into_iter()
            .collect::<HashSet<_>>()
    );
    let position = |s: &Value| found.iter().position(|f| f["id"] == s["id"]).unwrap();
    assert!(
        position(&often) < position(&once),
        "four mentions in a short message rank above one in a long one: {found:#?}"
    );
    for hit in &found {
        let snippet = hit["snippet"].as_str().expect("a snippet on every hit");
        assert!(snippet.to_lowercase().contains("quokka"), "{snippet}");
        assert!(snippet.chars().count() <= 201, "{snippet}");
        assert_eq!(hit["user_id"], user.id.as_str());
    }
    let snippet_of_once = found[position(&once)]["snippet"].as_str().unwrap();
    assert!(
        snippet_of_once.len() < 120,
        "a window, not the message: {snippet_of_once}"
    );

    let (found, _) = page(&server, &user, "/sessions?q=wombat").await;
    assert_eq!(ids(&found), ids(std::slice::from_ref(&answered)));
    let snippet = found[0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("wombat sleeps"), "{snippet}");
    // Every word must match.
    let (found, _) = page(&server, &user, "/sessions?q=wombat+quokka").await;
    assert!(found.is_empty(), "{found:#?}");

    // Renames and deletes follow.
    let path = |s: &Value| format!("/sessions/{}", s["id"].as_str().unwrap());
    let renamed = server
        .put(&user, &path(&titled))
        .json(&json!({ "title": "Plain notes" }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    let renamed = server
        .put(&user, &path(&unrelated))
        .json(&json!({ "title": "Wombat facts" }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    let deleted = server.delete(&user, &path(&often)).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (found, _) = page(&server, &user, "/sessions?q=quokka").await;
    assert_eq!(ids(&found), ids(std::slice::from_ref(&once)));
    let (found, _) = page(&server, &user, "/sessions?q=wombat").await;
    assert_eq!(
        ids(&found).into_iter().collect::<HashSet<_>>(),
        ids(&[answered.clone(), unrelated.clone()])
            .into_iter()
            .collect::<HashSet<_>>()
    );
    let titled_hit = found.iter().find(|f| f["id"] == unrelated["id"]).unwrap();
    assert_eq!(titled_hit["snippet"], "Wombat facts");
}

#[tokio::test]
async fn search_results_page_and_bad_queries_are_422() {
    let server = TestServer::start().await;
    let user = server.user().await;
    for n in 0..5 {
        let session = server.session(&user, &format!("Chat {n}")).await;
        echo_turn(&server, &user, &session, &format!("platypus number {n}")).await;
    }
    let (all, next) = page(&server, &user, "/sessions?q=platypus").await;
    assert_eq!(all.len(), 5);
    assert!(next.is_none());
    let mut seen = Vec::new();
    let mut next = Some("/sessions?q=platypus&limit=2".to_owned());
    let mut pages = 0;
    while let Some(path) = next {
        let (found, link) = page(&server, &user, &path).await;
        assert!(found.len() <= 2);
        seen.extend(ids(&found));
        next = link;
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids(&all), "pages in the same order as one big page");

    let (_, link) = page(&server, &user, "/sessions?q=platypus&limit=2").await;
    let cursor = link.unwrap().split("cursor=").nth(1).unwrap().to_owned();
    let cursor = cursor.split('&').next().unwrap().to_owned();
    for bad in [
        format!("/sessions?q=other&cursor={cursor}"),
        format!("/sessions?cursor={cursor}"),
        format!("/sessions?q={}", "a".repeat(201)),
        "/sessions?q=platypus&limit=500".to_owned(),
    ] {
        let response = server.get(&user, &bad).send().await.unwrap();
        expect_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    // A query of no word at all finds nothing; an empty one is the plain listing.
    let (found, _) = page(&server, &user, "/sessions?q=%2A%2A%2A").await;
    assert!(found.is_empty(), "{found:?}");
    let (listed, _) = page(&server, &user, "/sessions?q=").await;
    let (plain, _) = page(&server, &user, "/sessions").await;
    assert_eq!(ids(&listed), ids(&plain));
    assert!(!plain.is_empty());
    // FTS syntax in a query is only words: no error, no match-everything.
    for tricky in [
        "platypus OR x",
        "platypus*",
        "\"platypus",
        "NEAR(platypus)",
        "x:platypus",
    ] {
        let path = format!("/sessions?q={}", urlencode(tricky));
        let response = server.get(&user, &path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{tricky}");
    }
    let (found, _) = page(&server, &user, "/sessions?q=number+3").await;
    assert_eq!(found.len(), 1);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
