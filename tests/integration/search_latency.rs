//! How long `GET /sessions?q=` takes for one user with 10,000 sessions of 20 messages each:
//! the rows go straight into the database in bulk, then N searches over HTTP are timed and
//! p50/p99 printed. Ignored by default (it writes 200,000 messages); run it with
//!
//! `cargo test --test integration search_latency -- --ignored --nocapture`
//!
//! (and `OMNICHAT_TEST_DATABASE_URL=postgres://…` for PostgreSQL).

use std::time::{Duration, Instant};

use chrono::Utc;
use omnichat_entity::{messages, sessions};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, EntityTrait, Set, TransactionTrait};
use serde_json::Value;
use uuid::Uuid;

use crate::support::TestServer;

const SESSIONS: usize = 10_000;
const MESSAGES_PER_SESSION: usize = 20;
const REQUESTS: usize = 50;
/// Rows per INSERT: under SQLite's and PostgreSQL's bound-parameter limits.
const ROWS_PER_INSERT: usize = 1_000;

/// A deterministic pseudo-random source (no dependency, same data every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// A pseudo-word for `n`: a vocabulary of 2,000 distinct words.
fn word(n: u64) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "be", "do", "fu", "ga", "hi", "ja", "po",
        "se",
    ];
    let n = n % 2_000;
    format!(
        "{}{}{}",
        SYLLABLES[(n % 16) as usize],
        SYLLABLES[((n / 16) % 16) as usize],
        SYLLABLES[((n / 256) % 16) as usize]
    )
}

/// A message of 15 to 40 words; "hello" in half of them, "kumquat" in one message in 10,000.
fn text(rng: &mut Lcg, index: usize) -> String {
    let words = 15 + rng.next() % 26;
    let mut text: Vec<String> = (0..words).map(|_| word(rng.next())).collect();
    if index.is_multiple_of(2) {
        text.push("hello".into());
    }
    if index % 10_000 == 7 {
        text.push("kumquat".into());
    }
    text.join(" ")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::test]
#[ignore = "writes 200,000 messages; run by hand for the latency numbers"]
async fn search_latency_with_ten_thousand_sessions() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let user_id = Uuid::parse_str(&user.id).unwrap();
    let db = Database::connect(&server.db.url).await.expect("connect");

    let started = Instant::now();
    let mut rng = Lcg(42);
    let base = Utc::now() - chrono::Duration::days(30);
    let txn = db.begin().await.unwrap();
    let mut session_rows = Vec::with_capacity(ROWS_PER_INSERT);
    let mut message_rows = Vec::with_capacity(ROWS_PER_INSERT);
    let mut index = 0;
    for s in 0..SESSIONS {
        let at = base + chrono::Duration::seconds(s as i64 * 60);
        let session_id = Uuid::now_v7();
        session_rows.push(sessions::ActiveModel {
            id: Set(session_id),
            user_id: Set(user_id),
            title: Set(format!("{} {}", word(rng.next()), word(rng.next()))),
            created_at: Set(at),
            updated_at: Set(at),
            version: Set(0),
            system_prompt: Set(None),
            title_is_default: Set(false),
        });
        for m in 0..MESSAGES_PER_SESSION {
            let assistant = m % 2 == 1;
            message_rows.push(messages::ActiveModel {
                id: Set(Uuid::now_v7()),
                session_id: Set(session_id),
                role: Set(if assistant { "assistant" } else { "user" }.into()),
                content: Set(text(&mut rng, index)),
                status: Set(assistant.then(|| "complete".into())),
                provider: Set(assistant.then(|| "echo".into())),
                model: Set(assistant.then(|| "echo-1".into())),
                generation_id: Set(None),
                finish_reason: Set(None),
                prompt_tokens: Set(None),
                completion_tokens: Set(None),
                created_at: Set(at + chrono::Duration::milliseconds(m as i64)),
                node: Set(None),
                usage_estimated: Set(None),
                context_omitted: Set(None),
                superseded_at: Set(None),
            });
            index += 1;
            if message_rows.len() == ROWS_PER_INSERT {
                if !session_rows.is_empty() {
                    sessions::Entity::insert_many(std::mem::take(&mut session_rows))
                        .exec_without_returning(&txn)
                        .await
                        .unwrap();
                }
                messages::Entity::insert_many(std::mem::take(&mut message_rows))
                    .exec_without_returning(&txn)
                    .await
                    .unwrap();
            }
        }
    }
    if !session_rows.is_empty() {
        sessions::Entity::insert_many(session_rows)
            .exec_without_returning(&txn)
            .await
            .unwrap();
    }
    if !message_rows.is_empty() {
        messages::Entity::insert_many(message_rows)
            .exec_without_returning(&txn)
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
    if server.db.url.starts_with("postgres") {
        db.execute_unprepared("ANALYZE sessions; ANALYZE messages")
            .await
            .unwrap();
    }
    let backend = if server.db.url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "{backend}: inserted {SESSIONS} sessions x {MESSAGES_PER_SESSION} messages in {:?}",
        started.elapsed()
    );

    // A word in one message of 10,000 (20 sessions), one in about 1 of 2,000 words (a few
    // thousand sessions), and one in half the messages (every session).
    let vocabulary_word = word(1234);
    for (label, q) in [
        ("rare (20 sessions)", "kumquat".to_owned()),
        ("medium (a vocabulary word)", vocabulary_word),
        ("common (half the messages)", "hello".to_owned()),
    ] {
        let path = format!("/sessions?q={q}");
        // One untimed request warms the caches.
        let warm = server.get(&user, &path).send().await.unwrap();
        assert_eq!(warm.status(), StatusCode::OK);
        let found: Vec<Value> = warm.json().await.unwrap();
        assert!(!found.is_empty(), "{q}");
        let mut times = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            let started = Instant::now();
            let response = server.get(&user, &path).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let _ = response.bytes().await.unwrap();
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "{backend}: GET /sessions?q={q} [{label}], first page of {} hits: p50 {:?}, p99 {:?}, max {:?} over {REQUESTS} requests",
            found.len(),
            percentile(&times, 0.50),
            percentile(&times, 0.99),
            times[times.len() - 1],
        );
    }
    let started = Instant::now();
    let list = server
        .get(&user, "/sessions?limit=20")
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    println!(
        "{backend}: GET /sessions?limit=20 once: {:?}",
        started.elapsed()
    );
}
