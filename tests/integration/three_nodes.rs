//! Three real `omnichat` processes on one PostgreSQL database, each request of a user sent to
//! the next node in turn (as a load balancer without sticky sessions would): sign-up, login,
//! sessions, a stream resumed on another node mid-answer (nothing lost, nothing twice), a stop
//! from a third node, the per-user answer limit across nodes, and a node killed mid-answer whose
//! answer the others mark interrupted (its follower told so). Skipped without
//! `OMNICHAT_TEST_DATABASE_URL`.

use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::{
    restart::{free_port, Daemon},
    support::{parse_sse, postgres_url, SseEvent, TestDb},
};

/// Heartbeats this fast make a killed node count as dead after 0.9 s.
const HEARTBEAT_MS: &str = "300";

fn words(n: usize) -> String {
    (1..=n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The nodes, each request going to the next one.
struct Cluster {
    nodes: Vec<Daemon>,
    next: usize,
    client: reqwest::Client,
    token: String,
}

impl Cluster {
    /// The base URL of the node the next request goes to.
    fn next(&mut self) -> String {
        let base = self.nodes[self.next % self.nodes.len()].base.clone();
        self.next += 1;
        base
    }

    fn at(&self, node: usize) -> &str {
        &self.nodes[node].base
    }

    async fn chat(&self, node: usize, session: &str, prompt: &str) -> Response {
        self.client
            .post(format!("{}/chat/stream", self.at(node)))
            .bearer_auth(&self.token)
            .json(&json!({ "session_id": session, "prompt": prompt }))
            .send()
            .await
            .unwrap()
    }

    async fn resume(&self, node: usize, generation: &str, after: &str) -> Response {
        self.client
            .get(format!("{}/chat/stream/{generation}", self.at(node)))
            .bearer_auth(&self.token)
            .header("Last-Event-ID", after)
            .send()
            .await
            .unwrap()
    }

    async fn session(&mut self, title: &str) -> String {
        let base = self.next();
        let created = self
            .client
            .post(format!("{base}/sessions"))
            .bearer_auth(&self.token)
            .json(&json!({ "title": title }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::OK, "{base}");
        let created: Value = created.json().await.unwrap();
        created["id"].as_str().unwrap().to_owned()
    }

    async fn last_answer(&mut self, session: &str) -> Value {
        let base = self.next();
        let detail: Value = self
            .client
            .get(format!("{base}/sessions/{session}"))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        detail["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone()
    }
}

/// Reads a stream until it has at least `deltas` delta events; returns them and the rest of
/// the response to go on with.
async fn read_deltas(response: &mut Response, deltas: usize) -> Vec<SseEvent> {
    let mut body = String::new();
    loop {
        let events = parse_sse(body.rsplit_once("\n\n").map_or("", |(done, _)| done));
        if events.iter().filter(|e| e.id.is_some()).count() >= deltas {
            return events;
        }
        let chunk = response.chunk().await.unwrap().expect("stream ended early");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// The text of the delta events, checking their ids: each the answer's length so far.
fn checked_text(events: &[SseEvent], from: u64) -> String {
    let mut text = String::new();
    let mut position = from;
    for event in events.iter().filter(|e| e.id.is_some()) {
        let delta: Value = serde_json::from_str(&event.data).unwrap();
        let delta = delta["delta"].as_str().unwrap();
        position += delta.len() as u64;
        assert_eq!(event.id.as_deref(), Some(position.to_string().as_str()));
        text.push_str(delta);
    }
    text
}

fn generation(response: &Response) -> String {
    response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn three_nodes_on_one_database_serve_any_request_of_a_user() {
    let Some(url) = postgres_url() else {
        eprintln!("skipped: three nodes need PostgreSQL (OMNICHAT_TEST_DATABASE_URL)");
        return;
    };
    let db = TestDb::at(url);
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3"] {
        let flags = [
            "--node-id",
            name,
            "--heartbeat-ms",
            HEARTBEAT_MS,
            "--echo-delay-ms",
            "10",
            "--max-generations-per-user",
            "2",
        ];
        nodes.push(Daemon::spawn_with(&db, free_port(), &flags).await);
    }
    let client = reqwest::Client::new();
    let mut cluster = Cluster {
        nodes,
        next: 0,
        client: client.clone(),
        token: String::new(),
    };

    // Sign up on one node, log in on the next, use the token on the third.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let email = format!("n-{tag}@example.com");
    let base = cluster.next();
    let created = client
        .post(format!("{base}/users/"))
        .json(&json!({ "username": format!("n-{}", &tag[..12]), "email": email, "password": "strongpassword" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let base = cluster.next();
    let token: Value = client
        .post(format!("{base}/token"))
        .form(&[("username", email.as_str()), ("password", "strongpassword")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    cluster.token = token["access_token"].as_str().unwrap().to_owned();

    // Sessions created and renamed on different nodes; every node lists the same.
    let first = cluster.session("first").await;
    let second = cluster.session("second").await;
    let base = cluster.next();
    let renamed = client
        .put(format!("{base}/sessions/{first}"))
        .bearer_auth(&cluster.token)
        .json(&json!({ "title": "renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    for node in 0..3 {
        let list: Value = client
            .get(format!("{}/sessions", cluster.at(node)))
            .bearer_auth(&cluster.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut titles: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["title"].as_str().unwrap())
            .collect();
        titles.sort_unstable();
        assert_eq!(titles, ["renamed", "second"], "node {node}");
    }

    // A stream on node 1, left mid-answer and resumed on node 2 with Last-Event-ID, while
    // node 3 follows it from the start: both get the whole answer exactly once, in order.
    let prompt = words(150);
    let mut started = cluster.chat(0, &first, &prompt).await;
    assert_eq!(started.status(), StatusCode::OK);
    let generation_id = generation(&started);
    let head = read_deltas(&mut started, 5).await;
    drop(started);
    let had = checked_text(&head, 0);
    let last_id = head.iter().rev().find_map(|e| e.id.clone()).unwrap();
    let resumed = cluster.resume(1, &generation_id, &last_id).await;
    assert_eq!(resumed.status(), StatusCode::OK);
    let from_start = cluster.resume(2, &generation_id, "").await;
    assert_eq!(from_start.status(), StatusCode::OK);
    let rest = parse_sse(&resumed.text().await.unwrap());
    assert!(rest.len() > 1, "the answer was still running: {rest:?}");
    assert_eq!(rest.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let rest_text = checked_text(&rest, last_id.parse().unwrap());
    assert_eq!(
        format!("{had}{rest_text}"),
        prompt,
        "nothing lost, nothing twice"
    );
    let whole = parse_sse(&from_start.text().await.unwrap());
    assert_eq!(whole.last().map(|e| e.data.as_str()), Some("[DONE]"));
    assert_eq!(checked_text(&whole, 0), prompt);
    let stored = cluster.last_answer(&first).await;
    assert_eq!(stored["status"], "complete");
    assert_eq!(stored["content"], prompt.as_str());

    // A Last-Event-ID past the answer is refused by the follower as by the owner.
    let mut long = cluster.chat(0, &first, &words(400)).await;
    let long_id = generation(&long);
    read_deltas(&mut long, 1).await;
    let refused = cluster.resume(1, &long_id, "999999").await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let owner = cluster.resume(0, &long_id, "999999").await;
    assert_eq!(owner.status(), StatusCode::CONFLICT);

    // The limit of two live answers per user holds across nodes.
    let mut other = cluster.chat(1, &second, &words(400)).await;
    assert_eq!(other.status(), StatusCode::OK);
    read_deltas(&mut other, 1).await;
    let third_session = cluster.session("third").await;
    let over = cluster.chat(2, &third_session, "one more").await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);

    // Stopped from a third node while node 2 follows it: the follower gets everything up to
    // the stop, which is what is stored.
    let follower = cluster.resume(1, &long_id, "").await;
    assert_eq!(follower.status(), StatusCode::OK);
    let stop = client
        .post(format!("{}/chat/stream/{long_id}/stop", cluster.at(2)))
        .bearer_auth(&cluster.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), StatusCode::OK);
    let stop: Value = stop.json().await.unwrap();
    assert_eq!(stop["status"], "stopped");
    let followed = parse_sse(&follower.text().await.unwrap());
    assert_eq!(followed.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let stored = cluster.last_answer(&first).await;
    assert_eq!(stored["status"], "stopped");
    assert_eq!(
        checked_text(&followed, 0),
        stored["content"].as_str().unwrap()
    );
    drop(long);
    let stop = client
        .post(format!(
            "{}/chat/stream/{}/stop",
            cluster.at(0),
            generation(&other)
        ))
        .bearer_auth(&cluster.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), StatusCode::OK);
    drop(other);

    // Node 3 runs an answer and is killed; node 1 follows it. Within a bound the others mark
    // it interrupted, and the follower is told.
    let mut doomed = cluster.chat(2, &third_session, &words(1000)).await;
    assert_eq!(doomed.status(), StatusCode::OK);
    let doomed_id = generation(&doomed);
    read_deltas(&mut doomed, 3).await;
    let follower = cluster.resume(0, &doomed_id, "").await;
    assert_eq!(follower.status(), StatusCode::OK);
    let killed_at = Instant::now();
    cluster.nodes[2].signal("KILL");
    cluster.nodes[2].wait(Duration::from_secs(10));
    drop(doomed);
    cluster.nodes.truncate(2);
    let follower = tokio::spawn(async move { follower.text().await });
    loop {
        let answer = cluster.last_answer(&third_session).await;
        if answer["status"] == "error" {
            assert_eq!(answer["finish_reason"], "interrupted");
            eprintln!(
                "killed node's answer marked after {:?}",
                killed_at.elapsed()
            );
            break;
        }
        assert_eq!(answer["status"], "streaming");
        // Three missed heartbeats, a sweep, and slack for a loaded machine.
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "the killed node's answer was not marked interrupted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let followed = parse_sse(&follower.await.unwrap().unwrap());
    assert_eq!(followed.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let error = followed
        .iter()
        .rev()
        .find_map(|e| {
            serde_json::from_str::<Value>(&e.data)
                .ok()
                .filter(|v| v.get("error").is_some())
        })
        .expect("the follower is told the answer broke off");
    assert_eq!(error["error"]["code"], "interrupted");
    eprintln!(
        "follower of a killed node got {error} after {:?}",
        killed_at.elapsed()
    );
}

/// Arrival times of a stream's delta events: (end position, when).
async fn arrivals(mut response: Response, started: Instant) -> Vec<(u64, Duration)> {
    let mut seen = Vec::new();
    let mut body = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let at = started.elapsed();
        body.push_str(&String::from_utf8_lossy(&chunk));
        while let Some((event, rest)) = body.split_once("\n\n") {
            let id = parse_sse(&format!("{event}\n\n"))
                .first()
                .and_then(|e| e.id.as_deref().and_then(|id| id.parse().ok()));
            if let Some(id) = id {
                seen.push((id, at));
            }
            body = rest.to_owned();
        }
    }
    seen
}

/// Not a timed assertion: prints how much later a follower on another node gets each event
/// than the client on the node that runs the answer (`--nocapture` to see it).
#[tokio::test]
async fn the_delay_a_remote_follower_adds_per_event() {
    let flags = ["--echo-delay-ms", "20"];
    let Some((owner, other)) = crate::support::two_nodes(&flags).await else {
        return;
    };
    let user = owner.user().await;
    let session = owner.session(&user, "delay").await;
    let started = Instant::now();
    let direct = owner
        .chat(
            &user,
            json!({ "session_id": session["id"], "prompt": words(300) }),
        )
        .await;
    assert_eq!(direct.status(), StatusCode::OK);
    let generation_id = generation(&direct);
    let followed = other
        .get(&user, &format!("/chat/stream/{generation_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), StatusCode::OK);
    let (direct, followed) = tokio::join!(arrivals(direct, started), arrivals(followed, started));
    // For each event the follower got, the delay after the direct client reached that position.
    let mut delays: Vec<Duration> = followed
        .iter()
        .filter_map(|(id, at)| {
            let reached = direct.iter().find(|(d, _)| d >= id)?.1;
            Some(at.saturating_sub(reached))
        })
        .skip(1) // the first carries the backlog from before the follow began
        .collect();
    assert!(delays.len() > 100, "the follower saw the answer live");
    delays.sort_unstable();
    let quantile = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize];
    eprintln!(
        "remote follower: {} events, added delay per event p50 {:?} p90 {:?} p99 {:?} max {:?}",
        delays.len(),
        quantile(0.5),
        quantile(0.9),
        quantile(0.99),
        quantile(1.0)
    );
}

/// Two nodes start a turn of the same user at the same moment with room for one: one of them
/// gets it, the other 429, every time (the count is taken under the user's lock).
#[tokio::test]
async fn the_answer_limit_holds_when_two_nodes_race() {
    let flags = ["--echo-delay-ms", "20", "--max-generations-per-user", "1"];
    let Some((a, b)) = crate::support::two_nodes(&flags).await else {
        return;
    };
    let user = a.user().await;
    let first = a.session(&user, "a").await;
    let second = a.session(&user, "b").await;
    for round in 0..5 {
        let (on_a, on_b) = tokio::join!(
            a.chat(
                &user,
                json!({ "session_id": first["id"], "prompt": words(200) })
            ),
            b.chat(
                &user,
                json!({ "session_id": second["id"], "prompt": words(200) })
            ),
        );
        let mut statuses = [on_a.status(), on_b.status()];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS],
            "round {round}"
        );
        let (winner, node) = if on_a.status() == StatusCode::OK {
            (on_a, &a)
        } else {
            (on_b, &b)
        };
        let stop = node
            .post(&user, &format!("/chat/stream/{}/stop", generation(&winner)))
            .send()
            .await
            .unwrap();
        assert_eq!(stop.status(), StatusCode::OK);
        assert!(winner.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    }
}

/// A node judges a peer by the heartbeat interval the peer announced, not by its own: a node
/// that heartbeats every 200 ms leaves alone the answer of a peer that heartbeats every 10 s.
#[tokio::test]
async fn a_fast_heartbeat_node_leaves_a_slow_heartbeat_peer_alone() {
    if postgres_url().is_none() {
        eprintln!("skipped: two nodes need PostgreSQL (OMNICHAT_TEST_DATABASE_URL)");
        return;
    }
    let db = TestDb::new();
    let shared = db.shared();
    let slow = crate::support::TestServer::start_on(db, &["--echo-delay-ms", "10"]).await;
    let fast = crate::support::TestServer::start_on(shared, &["--heartbeat-ms", "200"]).await;
    let user = slow.user().await;
    let session = slow.session(&user, "slow peer").await;
    let prompt = words(250);
    let stream = slow
        .chat(
            &user,
            json!({ "session_id": session["id"], "prompt": prompt }),
        )
        .await;
    assert_eq!(stream.status(), StatusCode::OK);
    // Ten of the fast node's sweeps while the answer runs; the slow node's next heartbeat is
    // seconds away.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let id = session["id"].as_str().unwrap();
    let last_answer = || async {
        let detail = fast
            .get_json::<Value>(&user, &format!("/sessions/{id}"))
            .await;
        detail["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone()
    };
    let answer = last_answer().await;
    assert_eq!(answer["status"], "streaming", "{answer}");
    let events = parse_sse(&stream.text().await.unwrap());
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    assert_eq!(checked_text(&events, 0), prompt);
    let answer = last_answer().await;
    assert_eq!(answer["status"], "complete", "{answer}");
}
