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

/// The most bytes of frames sent as one: a bound on one write, far above a burst of tokens.
const MAX_COALESCED_BYTES: usize = 64 * 1024;

struct SseState {
    generation_id: Uuid,
    pending: VecDeque<Bytes>,
    events: mpsc::Receiver<StreamEvent>,
    keep_alive: Duration,
    finished: bool,
}

impl SseState {
    fn push(&mut self, event: StreamEvent) {
        self.finished = matches!(event, StreamEvent::Done);
        self.pending.push_back(frame(&event));
    }

    /// The generation went away without `[DONE]`.
    fn lost(&mut self) {
        self.finished = true;
        self.pending.extend(lost_frames(self.generation_id));
    }

    /// Queues the events that have arrived already, without waiting for more.
    fn take_ready(&mut self) {
        let mut bytes: usize = self.pending.iter().map(Bytes::len).sum();
        while !self.finished && bytes < MAX_COALESCED_BYTES {
            match self.events.try_recv() {
                Ok(event) => {
                    self.push(event);
                    bytes += self.pending.back().map_or(0, Bytes::len);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.lost(),
            }
        }
    }

    /// The queued frames as one (up to [`MAX_COALESCED_BYTES`] unless a single frame is larger).
    fn take_pending(&mut self) -> Bytes {
        let Some(first) = self.pending.pop_front() else {
            return Bytes::new();
        };
        if self.pending.is_empty() {
            return first;
        }
        let mut joined = bytes::BytesMut::with_capacity(
            MAX_COALESCED_BYTES
                .min(first.len() + self.pending.iter().map(Bytes::len).sum::<usize>()),
        );
        joined.extend_from_slice(&first);
        while let Some(next) = self.pending.front() {
            if joined.len() + next.len() > MAX_COALESCED_BYTES {
                break;
            }
            joined.extend_from_slice(next);
            self.pending.pop_front();
        }
        joined.freeze()
    }
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
            if !state.pending.is_empty() {
                // Everything ready goes out as one frame: a burst of tokens is one write to the
                // socket (and one read for the client), not one each.
                let bytes = state.take_pending();
                return Some((Ok::<_, Infallible>(Frame::data(bytes)), state));
            }
            if state.finished {
                return None;
            }
            // What is queued already is taken at once; only an empty queue arms the keep-alive
            // timer.
            state.take_ready();
            if state.pending.is_empty() {
                match tokio::time::timeout(state.keep_alive, state.events.recv()).await {
                    Ok(Some(event)) => state.push(event),
                    Ok(None) => state.lost(),
                    Err(_) => state.pending.push_back(Bytes::from_static(KEEP_ALIVE)),
                }
                state.take_ready();
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

    /// The body's frames, each as text, until it ends.
    async fn frames_of(response: Response<Body>) -> Vec<String> {
        let mut body = response.into_body();
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                frames.push(String::from_utf8(data.to_vec()).unwrap());
            }
        }
        frames
    }

    #[tokio::test]
    async fn events_already_queued_go_out_together_in_order() {
        let (tx, rx) = mpsc::channel(8);
        let response = sse_waiting_response(Uuid::nil(), rx, Duration::from_secs(30));
        for (id, text) in [(1, "a"), (2, "b"), (3, "c")] {
            tx.try_send(StreamEvent::Delta {
                id,
                text: text.into(),
            })
            .unwrap();
        }
        tx.try_send(StreamEvent::Done).unwrap();
        let frames = frames_of(response).await;
        // The waiting comment at once, then the burst as one write (one read for the client).
        assert_eq!(
            frames,
            [
                ": waiting for the provider\n\n".to_owned(),
                "id: 1\ndata: {\"delta\":\"a\"}\n\nid: 2\ndata: {\"delta\":\"b\"}\n\n\
                 id: 3\ndata: {\"delta\":\"c\"}\n\ndata: [DONE]\n\n"
                    .to_owned(),
            ]
        );
    }

    #[tokio::test]
    async fn a_generation_gone_mid_burst_still_ends_the_stream_properly() {
        let (tx, rx) = mpsc::channel(8);
        let response = sse_response(
            Uuid::nil(),
            vec![StreamEvent::Delta {
                id: 1,
                text: "a".into(),
            }],
            rx,
            Duration::from_secs(30),
        );
        tx.try_send(StreamEvent::Delta {
            id: 2,
            text: "b".into(),
        })
        .unwrap();
        drop(tx);
        let text = frames_of(response).await.concat();
        assert!(
            text.starts_with("id: 1\ndata: {\"delta\":\"a\"}\n\nid: 2\n"),
            "{text}"
        );
        assert!(text.contains("\"code\":\"stream_interrupted\""), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }
}
