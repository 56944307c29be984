//! Before the clock starts: sign up and log in the users (unique random emails), and open one
//! session per client, a bounded number at a time.

use std::time::Duration;

use futures_util::{stream, StreamExt, TryStreamExt};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{turn::ErrorKind, LoadtestError, Plan, Target};

/// Sign-ups and session creations in flight at once.
const SETUP_PARALLELISM: usize = 16;
/// Tries of a request the server turned away as busy (429/503) before giving up.
const BUSY_TRIES: u32 = 20;

/// What one client starts with.
#[derive(Clone, Debug, Default)]
pub(super) struct ClientStart {
    /// The user's token (OmniChat only).
    pub token: Option<String>,
    /// The first session (OmniChat only).
    pub session: Option<String>,
}

fn setup_error(what: impl Into<String>, detail: impl ToString) -> LoadtestError {
    LoadtestError::Setup {
        what: what.into(),
        detail: detail.to_string(),
    }
}

/// An error with its causes, which say what actually went wrong ("connection refused").
fn with_causes(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Users and sessions for every client of the plan.
pub(super) async fn prepare(http: &Client, plan: &Plan) -> Result<Vec<ClientStart>, LoadtestError> {
    let Target::OmniChat {
        base,
        users,
        password,
        ..
    } = &plan.target
    else {
        return Ok(vec![ClientStart::default(); plan.concurrency]);
    };
    let tag = Uuid::new_v4().simple().to_string();
    let tag = &tag[..12];
    let tokens: Vec<String> = stream::iter(0..*users)
        .map(|i| user(http, base, format!("lt-{tag}-{i}"), password, plan.timeout))
        .buffered(SETUP_PARALLELISM)
        .try_collect()
        .await?;
    stream::iter(0..plan.concurrency)
        .map(|i| {
            let token = tokens[i % tokens.len()].clone();
            async move {
                let session = session(http, base, &token, plan.timeout)
                    .await
                    .map_err(|kind| {
                        setup_error(format!("opening a session for client {i}"), kind.label())
                    })?;
                Ok(ClientStart {
                    token: Some(token),
                    session: Some(session),
                })
            }
        })
        .buffered(SETUP_PARALLELISM)
        .try_collect()
        .await
}

/// Sends the request `make` builds, again while the server says it is busy.
async fn send_patiently(
    make: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut tries = 0;
    loop {
        let response = make().send().await?;
        let busy = matches!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        tries += 1;
        if !busy || tries >= BUSY_TRIES {
            return Ok(response);
        }
        tokio::time::sleep(Duration::from_millis(100 * u64::from(tries.min(10)))).await;
    }
}

/// Signs up `name` and logs in; returns the access token.
async fn user(
    http: &Client,
    base: &str,
    name: String,
    password: &str,
    timeout: Duration,
) -> Result<String, LoadtestError> {
    let email = format!("{name}@example.com");
    let body = json!({ "username": name, "email": email, "password": password });
    let created = send_patiently(|| {
        http.post(format!("{base}/users/"))
            .json(&body)
            .timeout(timeout)
    })
    .await
    .map_err(|err| setup_error(format!("signing up {email} at {base}"), with_causes(&err)))?;
    if !created.status().is_success() {
        let status = created.status();
        let detail = created.text().await.unwrap_or_default();
        return Err(setup_error(
            format!("signing up {email}"),
            format!("HTTP {status} {detail}"),
        ));
    }
    let form = [("username", email.as_str()), ("password", password)];
    let login = send_patiently(|| {
        http.post(format!("{base}/token"))
            .form(&form)
            .timeout(timeout)
    })
    .await
    .map_err(|err| setup_error(format!("logging in {email}"), with_causes(&err)))?;
    let status = login.status();
    let answer: Value = login
        .json()
        .await
        .map_err(|err| setup_error(format!("logging in {email}"), err))?;
    answer["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            setup_error(
                format!("logging in {email}"),
                format!("HTTP {status} {answer}"),
            )
        })
}

/// Opens a session; the error says why not, sorted like a turn's.
pub(super) async fn session(
    http: &Client,
    base: &str,
    token: &str,
    timeout: Duration,
) -> Result<String, ErrorKind> {
    let response = send_patiently(|| {
        http.post(format!("{base}/sessions"))
            .bearer_auth(token)
            .json(&json!({ "title": "load test" }))
            .timeout(timeout)
    })
    .await
    .map_err(|err| ErrorKind::of_request(&err))?;
    if !response.status().is_success() {
        return Err(ErrorKind::Http(response.status().as_u16()));
    }
    let answer: Value = response
        .json()
        .await
        .map_err(|err| ErrorKind::of_body(&err))?;
    answer["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or(ErrorKind::Protocol)
}
