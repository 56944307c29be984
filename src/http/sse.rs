//! Server-Sent Events bodies: a generation's events as `id:`/`data:` frames, a keep-alive comment
//! after each quiet spell (and one at once for a stream opened before its first event), and
//! always a final `data: [DONE]`.

use std::{collections::VecDeque, convert::Infallible, time::Duration};

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::{body::Frame, header, Response};
use omnichat_actors::chat::StreamEvent;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::body::Body;

/// The `data:` of a token chunk: the next piece of the answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamDelta {
    pub delta: String,
}

/// The `data:` of the event that says the answer failed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamError {
    pub error: StreamErrorDetail,
}

/// What went wrong with an answer after its stream began.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamErrorDetail {
    /// For people: names the provider, its HTTP status and its own error message where one
    /// failed (credentials redacted).
    pub message: String,
    /// For programs, e.g. `upstream_error`, `upstream_closed`, `upstream_timeout`,
    /// `upstream_rate_limited`, `provider_quota_exhausted`, `upstream_unauthorized`,
    /// `upstream_rejected`, `upstream_unreachable`, `upstream_malformed`, `content_filtered`,
    /// `answer_too_long`, `answer_not_stored`, `stream_interrupted`.
    #[schema(example = "upstream_closed")]
    pub code: String,
}

/// The JSON Schema of one event of an answer's stream, as an SSE parser hands it over (`data`,
/// `id`, `event` as strings): a token chunk, the error event, or `[DONE]`. The OpenAPI document
/// gives it as the schema of every `text/event-stream` answer, read as OpenAPI 3.2 reads an event
/// stream's schema: it describes each event, the JSON in `data` by `contentSchema`.
pub fn event_schema() -> serde_json::Value {
    let json_data = |schema: &str, starts: &str| {
        serde_json::json!({
            "type": "string",
            "pattern": starts,
            "contentMediaType": "application/json",
            "contentSchema": { "$ref": format!("#/components/schemas/{schema}") },
        })
    };
    serde_json::json!({
        "description": "One event of an answer's stream: a token chunk (with its id), the \
                        error event, or the final `[DONE]`.",
        "type": "object",
        "required": ["data"],
        "properties": {
            "id": { "type": "string", "pattern": "^[0-9]+$" },
            "data": { "type": "string" },
        },
        "anyOf": [
            {
                "title": "token chunk",
                "required": ["id"],
                "properties": { "data": json_data("StreamDelta", "^\\{\"delta\":") },
            },
            {
                "title": "error",
                "properties": { "data": json_data("StreamError", "^\\{\"error\":") },
            },
            {
                "title": "end",
                "properties": { "data": { "const": "[DONE]" } },
            },
        ],
    })
}

/// How an answer's stream reads, for the OpenAPI document of the two endpoints that send one.
pub const STREAM_DESCRIPTION: &str = "The answer as Server-Sent Events (`text/event-stream`), \
in this order:

* token chunks: `id: <n>` then `data: {\"delta\": \"<text>\"}` (schema `StreamDelta`). The answer \
is the concatenation of the deltas. The id `<n>` is the answer's length in bytes (UTF-8) once \
this chunk is added, so ids only grow, and `Last-Event-ID: <n>` on \
`GET /chat/stream/{generation_id}` resumes after exactly that much: the rest comes once, live \
or from the stored answer;
* at most one error event, when the answer fails after its stream began: \
`data: {\"error\": {\"message\": \"…\", \"code\": \"…\"}}` (schema `StreamError`), with no id;
* always last: `data: [DONE]`. Without an error before it, the answer is complete and stored \
(or was stopped).

Comments may come between events: `: waiting for the provider` first, when the provider sent \
nothing within the server's first-event wait (a failure after that is the error event, not a \
status), and `: keep-alive` after every quiet spell. Clients ignore them, as the SSE format says.";

const DONE: &[u8] = b"data: [DONE]\n\n";
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
const WAITING: &[u8] = b": waiting for the provider\n\n";

/// One event as an SSE frame. The payload is JSON, so provider text can never contain a bare
/// newline that would start a forged event.
pub fn frame(event: &StreamEvent) -> Bytes {
    match event {
        StreamEvent::Delta { id, text } => delta_frame(*id, text),
        StreamEvent::Error { failure } => error_frame(&failure.message, &failure.code),
        StreamEvent::Done => Bytes::from_static(DONE),
    }
}

/// `data: {"error":{"message":…,"code":…}}\n\n`.
fn error_frame(message: &str, code: &str) -> Bytes {
    let event = StreamError {
        error: StreamErrorDetail {
            message: message.to_owned(),
            code: code.to_owned(),
        },
    };
    // Serialising two strings cannot fail.
    let json = serde_json::to_string(&event).unwrap_or_default();
    Bytes::from(format!("data: {json}\n\n"))
}

/// `id: <id>\ndata: {"delta":"<text>"}\n\n`, written straight into one buffer: this runs once
/// per token per subscriber, so it builds no JSON value and formats nothing twice.
fn delta_frame(id: u64, text: &str) -> Bytes {
    let mut out = Vec::with_capacity(text.len() + 48);
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(b"\ndata: {\"delta\":");
    // Writing JSON into a Vec cannot fail for a string.
    let _ = serde_json::to_writer(&mut out, text);
    out.extend_from_slice(b"}\n\n");
    Bytes::from(out)
}

/// What a stream ends with when its generation vanished without saying goodbye (it crashed, or
/// dropped this subscriber for falling behind): an error the client can act on, then `[DONE]`.
/// Resuming then gets whatever is left, or the stored answer and how it ended.
fn lost_frames(generation_id: Uuid) -> [Bytes; 2] {
    let message = format!(
        "The answer stream ended unexpectedly; GET /chat/stream/{generation_id} with Last-Event-ID for the rest"
    );
    [
        error_frame(&message, "stream_interrupted"),
        Bytes::from_static(DONE),
    ]
}

struct SseState {
    generation_id: Uuid,
    pending: VecDeque<Bytes>,
    events: mpsc::Receiver<StreamEvent>,
    keep_alive: Duration,
    finished: bool,
}

/// A 200 `text/event-stream` response that starts with `first` (already received) and goes on
/// with whatever arrives on `events`.
pub fn sse_response(
    generation_id: Uuid,
    first: Vec<StreamEvent>,
    events: mpsc::Receiver<StreamEvent>,
    keep_alive: Duration,
) -> Response<Body> {
    let finished = first.iter().any(|e| matches!(e, StreamEvent::Done));
    let pending = first.iter().map(frame).collect();
    build(generation_id, pending, finished, events, keep_alive)
}

/// A 200 `text/event-stream` response for a generation that has sent nothing yet: a comment at
/// once (so the headers and a first byte reach the client through any proxy), then the events.
pub fn sse_waiting_response(
    generation_id: Uuid,
    events: mpsc::Receiver<StreamEvent>,
    keep_alive: Duration,
) -> Response<Body> {
    let pending = VecDeque::from([Bytes::from_static(WAITING)]);
    build(generation_id, pending, false, events, keep_alive)
}

fn build(
    generation_id: Uuid,
    pending: VecDeque<Bytes>,
    finished: bool,
    events: mpsc::Receiver<StreamEvent>,
    keep_alive: Duration,
) -> Response<Body> {
    let state = SseState {
        generation_id,
        pending,
        events,
        keep_alive,
        finished,
    };
    let frames = stream::unfold(state, |mut state| async move {
        loop {
            if let Some(bytes) = state.pending.pop_front() {
                return Some((Ok::<_, Infallible>(Frame::data(bytes)), state));
            }
            if state.finished {
                return None;
            }
            match tokio::time::timeout(state.keep_alive, state.events.recv()).await {
                Ok(Some(event)) => {
                    state.finished = matches!(event, StreamEvent::Done);
                    state.pending.push_back(frame(&event));
                }
                Ok(None) => {
                    state.finished = true;
                    state.pending.extend(lost_frames(state.generation_id));
                }
                Err(_) => state.pending.push_back(Bytes::from_static(KEEP_ALIVE)),
            }
        }
    });
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    headers.insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    if let Ok(value) = header::HeaderValue::from_str(&generation_id.to_string()) {
        headers.insert("x-generation-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_schema_tells_the_frames_apart_by_how_their_data_starts() {
        let schema = event_schema();
        let delta = delta_frame(3, "abc");
        let error = error_frame("it broke", "upstream_closed");
        let patterns: Vec<&str> = schema["anyOf"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|branch| branch["properties"]["data"]["pattern"].as_str())
            .collect();
        assert_eq!(patterns, [r#"^\{"delta":"#, r#"^\{"error":"#]);
        assert!(std::str::from_utf8(&delta)
            .unwrap()
            .contains("\ndata: {\"delta\":"));
        assert!(std::str::from_utf8(&error)
            .unwrap()
            .starts_with("data: {\"error\":"));
        let done = frame(&StreamEvent::Done);
        assert_eq!(schema["anyOf"][2]["properties"]["data"]["const"], "[DONE]");
        assert_eq!(&done[..], b"data: [DONE]\n\n");
    }

    #[test]
    fn a_delta_frame_is_the_json_a_client_parses() {
        let bytes = frame(&StreamEvent::Delta {
            id: 12,
            text: "a \"quoted\"\nline".into(),
        });
        let text = std::str::from_utf8(&bytes).unwrap();
        let data = text
            .strip_prefix("id: 12\ndata: ")
            .and_then(|rest| rest.strip_suffix("\n\n"))
            .expect("one id line and one data line");
        // The hand-written frame is exactly the documented `StreamDelta`, and nothing more.
        let parsed: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(parsed, serde_json::json!({ "delta": "a \"quoted\"\nline" }));
        let delta: StreamDelta = serde_json::from_str(data).unwrap();
        assert_eq!(delta.delta, "a \"quoted\"\nline");
    }
}
