//! One streamed answer, timed: send the request, read the SSE body to `[DONE]`, note when the
//! first text arrived. Works for OmniChat's `{"delta": …}` events and for OpenAI's chunks.

use std::{
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;

/// Why a turn failed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The response had this status instead of 200.
    Http(u16),
    /// The stream carried an error event with this code.
    Sse(String),
    /// No connection could be made.
    Connect,
    /// The turn took longer than the timeout.
    Timeout,
    /// The connection broke, or the body ended without `[DONE]`.
    Lost,
    /// `[DONE]` came without any text, or an answer was not what the API promises.
    Protocol,
}

impl ErrorKind {
    /// The name it is counted under, e.g. `http_429`, `sse_upstream_error`, `timeout`.
    pub fn label(&self) -> String {
        match self {
            ErrorKind::Http(status) => format!("http_{status}"),
            ErrorKind::Sse(code) => format!("sse_{code}"),
            ErrorKind::Connect => "connect".to_owned(),
            ErrorKind::Timeout => "timeout".to_owned(),
            ErrorKind::Lost => "lost_connection".to_owned(),
            ErrorKind::Protocol => "protocol".to_owned(),
        }
    }

    /// A failure to send a request or get its response head.
    pub(super) fn of_request(err: &reqwest::Error) -> ErrorKind {
        if err.is_timeout() {
            ErrorKind::Timeout
        } else if err.is_connect() {
            ErrorKind::Connect
        } else {
            ErrorKind::Lost
        }
    }

    /// A failure while reading a body.
    pub(super) fn of_body(err: &reqwest::Error) -> ErrorKind {
        if err.is_timeout() {
            ErrorKind::Timeout
        } else if err.is_decode() {
            ErrorKind::Protocol
        } else {
            ErrorKind::Lost
        }
    }
}

/// How a turn went.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnOutcome {
    Done {
        first_token: Duration,
        total: Duration,
    },
    Failed(ErrorKind),
    /// The stop time came while the stream was still open (holding streams).
    Held,
}

/// Which events carry text.
#[derive(Clone, Copy, Debug)]
pub enum Dialect {
    /// `{"delta": "…"}` events, `{"error": {"code": …}}` on failure.
    OmniChat,
    /// OpenAI chunks: `{"choices": [{"delta": {"content": "…"}}]}`.
    OpenAi,
}

impl Dialect {
    /// Whether this event's data carries answer text. Checked on the bytes, not parsed: the
    /// client must not be what the run measures.
    fn has_text(self, data: &str) -> bool {
        match self {
            Dialect::OmniChat => data.starts_with("{\"delta\"") && !data.contains("\"delta\":\"\""),
            Dialect::OpenAi => data
                .split_once("\"content\":\"")
                .is_some_and(|(_, rest)| !rest.starts_with('"')),
        }
    }
}

/// The code of an error event, when the data is one.
fn error_code(data: &str) -> Option<String> {
    if !data.starts_with("{\"error\"") {
        return None;
    }
    let value: Value = serde_json::from_str(data).ok()?;
    let code = match &value["error"]["code"] {
        Value::String(code) => code.clone(),
        Value::Number(code) => code.to_string(),
        _ => "upstream_error".to_owned(),
    };
    Some(code)
}

/// Splits an SSE body into the data of its events, chunk by chunk.
#[derive(Default)]
pub struct SseParser {
    pending: Vec<u8>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// Feeds a chunk; calls `event` with the data of every event it completes.
    pub fn feed(&mut self, chunk: &[u8], mut event: impl FnMut(&str)) {
        self.pending.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            let line = &self.pending[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if self.has_data {
                    event(&self.data);
                }
                self.data.clear();
                self.has_data = false;
            } else if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            start = end + 1;
        }
        self.pending.drain(..start);
    }
}

/// Live streams and events received, shared by all clients for the progress line and report.
#[derive(Default)]
pub struct Gauges {
    pub live: AtomicUsize,
    pub events: AtomicU64,
}

/// Counts a stream live while it is read.
struct Live<'a>(&'a AtomicUsize);

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a turn waits, after `[DONE]`, for the end of the body before it gives up the
/// connection instead of reusing it.
const BODY_END_WAIT: Duration = Duration::from_secs(1);

/// Sends `request` and reads its stream to `[DONE]`, or until `stop_at`.
pub async fn run_turn(
    request: reqwest::RequestBuilder,
    dialect: Dialect,
    stop_at: Option<Instant>,
    gauges: &Gauges,
) -> TurnOutcome {
    let started = Instant::now();
    let far = started + Duration::from_secs(365 * 24 * 3600);
    let stop = tokio::time::sleep_until(stop_at.unwrap_or(far).into());
    tokio::pin!(stop);
    let mut response = tokio::select! {
        sent = request.send() => match sent {
            Ok(response) => response,
            Err(err) => return TurnOutcome::Failed(ErrorKind::of_request(&err)),
        },
        () = &mut stop => return TurnOutcome::Held,
    };
    if response.status() != reqwest::StatusCode::OK {
        return TurnOutcome::Failed(ErrorKind::Http(response.status().as_u16()));
    }
    gauges.live.fetch_add(1, Ordering::Relaxed);
    let _live = Live(&gauges.live);
    let mut parser = SseParser::default();
    let mut first_token = None;
    let mut failure = None;
    let mut done = false;
    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk,
            () = &mut stop => return TurnOutcome::Held,
        };
        let chunk = match chunk {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(err) => return TurnOutcome::Failed(ErrorKind::of_body(&err)),
        };
        parser.feed(&chunk, |data| {
            if data == "[DONE]" {
                done = true;
            } else if dialect.has_text(data) {
                gauges.events.fetch_add(1, Ordering::Relaxed);
                first_token.get_or_insert_with(|| started.elapsed());
            } else if let Some(code) = error_code(data) {
                failure.get_or_insert(ErrorKind::Sse(code));
            }
        });
        if done {
            break;
        }
    }
    let total = started.elapsed();
    if done {
        // The body's own end follows `[DONE]` at once: reading it lets the connection go back to
        // the pool, as a browser's would, instead of a new connection for every turn.
        let end = async { while let Ok(Some(_)) = response.chunk().await {} };
        let _ = tokio::time::timeout(BODY_END_WAIT, end).await;
    }
    match (failure, done, first_token) {
        (Some(kind), _, _) => TurnOutcome::Failed(kind),
        (None, false, _) => TurnOutcome::Failed(ErrorKind::Lost),
        (None, true, None) => TurnOutcome::Failed(ErrorKind::Protocol),
        (None, true, Some(first_token)) => TurnOutcome::Done { first_token, total },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&str]) -> Vec<String> {
        let mut parser = SseParser::default();
        let mut seen = Vec::new();
        for chunk in chunks {
            parser.feed(chunk.as_bytes(), |data| seen.push(data.to_owned()));
        }
        seen
    }

    #[test]
    fn events_split_across_chunks_and_line_endings_come_out_whole() {
        let seen = events(&[
            "id: 3\ndata: {\"del",
            "ta\":\"a\"}\n\n: keep-alive\n\n",
            "data: x\r\n\r\ndata: [DONE]\n",
            "\n",
        ]);
        assert_eq!(seen, ["{\"delta\":\"a\"}", "x", "[DONE]"]);
    }

    #[test]
    fn text_and_errors_are_told_apart() {
        assert!(Dialect::OmniChat.has_text("{\"delta\":\"Hi\"}"));
        assert!(!Dialect::OmniChat.has_text("{\"error\":{\"code\":\"x\"}}"));
        let role = r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#;
        let text = r#"{"choices":[{"delta":{"content":"Hi"}}]}"#;
        assert!(!Dialect::OpenAi.has_text(role));
        assert!(Dialect::OpenAi.has_text(text));
        assert_eq!(
            error_code(r#"{"error":{"message":"m","code":"upstream_error"}}"#),
            Some("upstream_error".to_owned())
        );
        assert_eq!(error_code(r#"{"delta":"x"}"#), None);
    }
}
