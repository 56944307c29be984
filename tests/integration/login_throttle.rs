//! Login throttling over HTTP: wrong passwords are slowed, then refused with 429 and
//! `Retry-After` (the right password too, from that address, while it lasts); the owner gets in
//! from another address after a bounded delay; parallel guesses are counted as they go;
//! unknown emails fare exactly like known ones;
//! `X-Forwarded-For` counts only from a trusted proxy, and only its right-most untrusted entry;
//! and on PostgreSQL a failure counted on one node counts on the other.
//!
//! Addresses are simulated with `X-Forwarded-For` behind the trusted proxy 127.0.0.1, each test
//! with addresses of its own, as PostgreSQL runs share one database.

use std::time::{Duration, Instant};

use reqwest::{header, Response, StatusCode};
use uuid::Uuid;

use crate::support::{expect_error, TestServer, TestUser};

/// Slowed from the 3rd attempt (250 ms, then 500, capped at 600), blocked from the 5th for 2 s.
const THROTTLE: &[&str] = &[
    "--trusted-proxies",
    "127.0.0.1",
    "--login-slow-after",
    "2",
    "--login-block-after",
    "4",
    "--login-max-delay-ms",
    "600",
    "--login-block-secs",
    "2",
];
const MAX_DELAY: Duration = Duration::from_millis(600);
/// Room for a loaded test machine on top of a deliberate delay.
const SLACK: Duration = Duration::from_secs(3);
const WRONG: &str = "not the password";
const BLOCKED: &str = "Too many failed logins; try again later";

/// An address no other test (or earlier run) uses.
fn fresh_ip() -> String {
    let b = Uuid::new_v4().into_bytes();
    format!("100.{}.{}.{}", b[0] & 0x3f | 0x40, b[1], b[2].max(1))
}

/// A login with `X-Forwarded-For: forwarded`, and how long its answer took.
async fn login_via(
    server: &TestServer,
    forwarded: &str,
    email: &str,
    password: &str,
) -> (Response, Duration) {
    let started = Instant::now();
    let response = server
        .client
        .post(server.url("/token"))
        .header("x-forwarded-for", forwarded)
        .form(&[("username", email), ("password", password)])
        .send()
        .await
        .expect("login request");
    (response, started.elapsed())
}

/// Asserts a 429 with the throttle's detail and returns its `Retry-After` in seconds.
async fn expect_blocked(response: Response, max_secs: u64) -> u64 {
    let retry_after: u64 = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(
        (1..=max_secs).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let detail = expect_error(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(detail, BLOCKED);
    retry_after
}

/// Four wrong passwords for `email` from `forwarded`: all 401, the 3rd and 4th slowed.
async fn four_failures(server: &TestServer, forwarded: &str, email: &str) {
    for attempt in 1..=4 {
        let (response, took) = login_via(server, forwarded, email, WRONG).await;
        let detail = expect_error(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(detail, "Incorrect username or password");
        let least = match attempt {
            3 => Duration::from_millis(250),
            4 => Duration::from_millis(500),
            _ => Duration::ZERO,
        };
        assert!(took >= least, "attempt {attempt} took {took:?}");
    }
}

#[tokio::test]
async fn wrong_passwords_are_slowed_then_refused_but_the_owner_gets_in_from_elsewhere() {
    let server = TestServer::start_with(THROTTLE).await;
    let user = server.user().await;
    let attacker = fresh_ip();
    four_failures(&server, &attacker, &user.email).await;

    // Blocked now, the right password included; no scrypt runs for a blocked attempt. What the
    // client forges left of the proxy's entry changes nothing.
    let forged = format!("6.6.6.6, {attacker}");
    let (wrong, _) = login_via(&server, &forged, &user.email, WRONG).await;
    expect_blocked(wrong, 2).await;
    let (right, _) = login_via(&server, &attacker, &user.email, &user.password).await;
    let retry_after = expect_blocked(right, 2).await;

    // The owner, from another address: in after the account's bounded delay.
    let (owner, took) = login_via(&server, &fresh_ip(), &user.email, &user.password).await;
    assert_eq!(owner.status(), StatusCode::OK);
    assert!(
        took >= MAX_DELAY && took < MAX_DELAY + SLACK,
        "the owner waited {took:?}"
    );

    // Once Retry-After has passed, the right password works from the blocked address too, and
    // that success clears the count there: the next mistake is a plain 401 again.
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(100)).await;
    let (right, _) = login_via(&server, &attacker, &user.email, &user.password).await;
    assert_eq!(right.status(), StatusCode::OK);
    let (wrong, _) = login_via(&server, &attacker, &user.email, WRONG).await;
    expect_error(wrong, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_burst_of_parallel_guesses_is_counted_as_it_goes() {
    let server = TestServer::start_with(THROTTLE).await;
    let user = server.user().await;
    let attacker = fresh_ip();
    // Eight guesses at once: were they all judged before any was counted, all would be 401.
    let guesses = (0..8).map(|_| login_via(&server, &attacker, &user.email, WRONG));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(guesses)
        .await
        .into_iter()
        .map(|(response, _)| response.status())
        .collect();
    let refused = |status| statuses.iter().filter(|s| **s == status).count();
    assert_eq!(refused(StatusCode::UNAUTHORIZED), 4, "{statuses:?}");
    assert_eq!(refused(StatusCode::TOO_MANY_REQUESTS), 4, "{statuses:?}");
}

#[tokio::test]
async fn an_unknown_email_is_throttled_like_a_known_one() {
    let server = TestServer::start_with(THROTTLE).await;
    let ghost = format!("ghost-{}@example.com", Uuid::new_v4().simple());
    let attacker = fresh_ip();
    four_failures(&server, &attacker, &ghost).await;
    let (fifth, _) = login_via(&server, &attacker, &ghost, WRONG).await;
    expect_blocked(fifth, 2).await;
    // Typed differently, it is the same (unknown) account.
    let (upper, _) = login_via(&server, &attacker, &ghost.to_uppercase(), WRONG).await;
    expect_blocked(upper, 2).await;
}

#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // 127.0.0.1 is not among the trusted proxies here: each attempt claims another address,
    // and all of them count against 127.0.0.1.
    let mut flags = THROTTLE.to_vec();
    flags.extend(["--trusted-proxies", "10.0.0.0/8"]);
    let server = TestServer::start_with(&flags).await;
    let user = server.user().await;
    for _ in 0..4 {
        let (response, _) = login_via(&server, &fresh_ip(), &user.email, WRONG).await;
        expect_error(response, StatusCode::UNAUTHORIZED).await;
    }
    let (fifth, _) = login_via(&server, &fresh_ip(), &user.email, &user.password).await;
    expect_blocked(fifth, 2).await;
}

#[tokio::test]
async fn one_address_trying_many_accounts_is_blocked_for_all_of_them() {
    let mut flags = THROTTLE.to_vec();
    flags.extend([
        "--login-address-slow-after",
        "3",
        "--login-address-block-after",
        "6",
    ]);
    let server = TestServer::start_with(&flags).await;
    let user = server.user().await;
    let sprayer = fresh_ip();
    // One guess per account: no account-at-address count comes near its limit.
    for _ in 0..6 {
        let email = format!("spray-{}@example.com", Uuid::new_v4().simple());
        let (response, _) = login_via(&server, &sprayer, &email, WRONG).await;
        expect_error(response, StatusCode::UNAUTHORIZED).await;
    }
    let (next, _) = login_via(&server, &sprayer, &user.email, &user.password).await;
    expect_blocked(next, 2).await;
    let (elsewhere, _) = login_via(&server, &fresh_ip(), &user.email, &user.password).await;
    assert_eq!(elsewhere.status(), StatusCode::OK);
}

#[tokio::test]
async fn failures_on_one_node_count_on_the_other() {
    let Some((a, b)) = crate::support::two_nodes(THROTTLE).await else {
        return;
    };
    let user: TestUser = a.user().await;
    let attacker = fresh_ip();
    four_failures(&a, &attacker, &user.email).await;
    let (on_b, _) = login_via(&b, &attacker, &user.email, &user.password).await;
    expect_blocked(on_b, 2).await;
    // Node B also slows the account for the owner elsewhere, within the bound.
    let (owner, took) = login_via(&b, &fresh_ip(), &user.email, &user.password).await;
    assert_eq!(owner.status(), StatusCode::OK);
    assert!(took >= MAX_DELAY && took < MAX_DELAY + SLACK, "{took:?}");
}
