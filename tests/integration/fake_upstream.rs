//! Fake LLM providers for the integration tests: real HTTP servers on 127.0.0.1, port 0, that
//! speak each upstream wire format the way the provider does (event names, framing, usage,
//! OpenAI's `[DONE]`, Gemini's `\r\n\r\n` frames and closing instead of `[DONE]`, Anthropic's named
//! events with `ping`, Ollama's NDJSON), with fault modes and a record of every request.

#![allow(dead_code)] // Each test uses a different part of this toolbox.

use std::{
    collections::HashMap,
    convert::Infallible,
    io,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::{
    body::{Frame, Incoming},
    server::conn::http1,
    service::service_fn,
    Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle};
use tokio_stream::wrappers::ReceiverStream;

mod wire;

pub use wire::INTERNAL_HOST;
use wire::{count_words, route, wire_frames, Tail};

type Body = BoxBody<Bytes, io::Error>;

/// The wire format a fake speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Gemini,
    Anthropic,
    Ollama,
}

/// How the fake misbehaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    None,
    /// Answer every request with this status (and `Retry-After: secs` when given), with the
    /// provider's JSON error body.
    Status(u16, Option<u64>),
    /// Answer the first `times` requests with `status`, then normally.
    StatusThenOk { times: usize, status: u16 },
    /// Stream half the reply, then the provider's in-stream error event.
    MidStreamError,
    /// Stream half the reply, then cut the connection mid-body.
    AbruptClose,
    /// Wait this long before sending the response headers.
    SlowFirstByte(Duration),
    /// Stream half the reply, then go silent until the client leaves.
    Stall,
    /// Gemini only: a `finishReason: SAFETY` with no text (other wires answer normally).
    SafetyBlock,
    /// After `delay`, answer with `status` and an error body that leaks: its message echoes the
    /// credential header the request carried, and extra fields name an internal host.
    Leaky { status: u16, delay: Duration },
    /// After `delay`, answer with the provider's own "out of quota / credit" error.
    QuotaExhausted { delay: Duration },
    /// Answer the first `times` requests with the provider's own plain rate-limit 429 (no
    /// `Retry-After`), then normally.
    RateLimitedThenOk { times: usize },
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// Lower-cased header names.
    pub headers: HashMap<String, String>,
    /// The JSON body (`Null` when it was not JSON).
    pub body: Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

struct Shared {
    wire: Wire,
    reply: Mutex<Vec<String>>,
    fault: Mutex<Fault>,
    /// Requests answered with the fault's status since it was set (for `StatusThenOk`).
    fault_hits: AtomicUsize,
    token_delay: Mutex<Duration>,
    requests: Mutex<Vec<RecordedRequest>>,
    open_streams: AtomicUsize,
}

/// A running fake provider; dropping it stops accepting connections.
pub struct FakeUpstream {
    /// What the matching OmniChat setting takes (`…/v1` for OpenAI, the bare host otherwise).
    pub base_url: String,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FakeUpstream {
    pub async fn start(wire: Wire) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            wire,
            reply: Mutex::new(["Hello", ",", " wörld", " 😀"].map(String::from).to_vec()),
            fault: Mutex::new(Fault::None),
            fault_hits: AtomicUsize::new(0),
            token_delay: Mutex::new(Duration::ZERO),
            requests: Mutex::new(Vec::new()),
            open_streams: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        let base_url = match wire {
            Wire::OpenAi => format!("http://{addr}/v1"),
            Wire::Gemini | Wire::Anthropic | Wire::Ollama => format!("http://{addr}"),
        };
        FakeUpstream {
            base_url,
            shared,
            accept,
        }
    }

    /// The text deltas the fake streams.
    pub fn set_reply(&self, words: Vec<String>) {
        *lock(&self.shared.reply) = words;
    }

    pub fn set_fault(&self, fault: Fault) {
        *lock(&self.shared.fault) = fault;
        self.shared.fault_hits.store(0, Ordering::SeqCst);
    }

    /// Pause before each delta.
    pub fn set_token_delay(&self, delay: Duration) {
        *lock(&self.shared.token_delay) = delay;
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Response bodies currently being written; drops to 0 once clients went away.
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(shared.clone(), request));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    let mut headers: HashMap<String, String> = HashMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let credential = ["authorization", "x-api-key", "x-goog-api-key"]
        .into_iter()
        .find_map(|name| Some((name, headers.get(name)?.clone())));
    lock(&shared.requests).push(RecordedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        headers,
        body: body.clone(),
    });

    let wire = shared.wire;
    let Some(model) = route(wire, parts.method.as_str(), &path, &body) else {
        return Ok(error_response(wire, 404, None));
    };
    let fault = lock(&shared.fault).clone();
    match fault {
        Fault::Status(status, retry_after) => return Ok(error_response(wire, status, retry_after)),
        Fault::StatusThenOk { times, status }
            if shared.fault_hits.fetch_add(1, Ordering::SeqCst) < times =>
        {
            return Ok(error_response(wire, status, None));
        }
        Fault::SlowFirstByte(delay) => tokio::time::sleep(delay).await,
        Fault::Leaky { status, delay } => {
            tokio::time::sleep(delay).await;
            let (name, value) = credential.unwrap_or(("authorization", String::new()));
            let body = wire::leaky_error_body(wire, status, name, &value);
            return Ok(json_response(status, &body, None));
        }
        Fault::QuotaExhausted { delay } => {
            tokio::time::sleep(delay).await;
            let (status, body) = wire::quota_error(wire);
            return Ok(json_response(status, &body, None));
        }
        Fault::RateLimitedThenOk { times }
            if shared.fault_hits.fetch_add(1, Ordering::SeqCst) < times =>
        {
            return Ok(json_response(429, &wire::rate_limit_error(wire), None));
        }
        _ => {}
    }

    let words = lock(&shared.reply).clone();
    let half = words.len().div_ceil(2);
    let (sent, tail, ending) = match fault {
        Fault::MidStreamError => (&words[..half], Tail::Error, Ending::Close),
        Fault::AbruptClose => (&words[..half], Tail::Nothing, Ending::Abort),
        Fault::Stall => (&words[..half], Tail::Nothing, Ending::Stall),
        Fault::SafetyBlock if wire == Wire::Gemini => (&words[..0], Tail::Safety, Ending::Close),
        _ => (&words[..], Tail::Finish, Ending::Close),
    };
    let prompt_tokens = count_words(&body);
    let (head, frames) = wire_frames(wire, &model, sent, prompt_tokens, tail);
    let delay = *lock(&shared.token_delay);

    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, io::Error>>(16);
    shared.open_streams.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        let _open = OpenStream(shared);
        let send = |text: String| tx.send(Ok(Frame::data(Bytes::from(text))));
        for text in head {
            if send(text).await.is_err() {
                return;
            }
        }
        for text in frames {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if send(text).await.is_err() {
                return;
            }
        }
        match ending {
            Ending::Close => {}
            // An error from the body makes hyper drop the connection without ending the chunked
            // body: the client sees a connection cut mid-stream.
            Ending::Abort => {
                // Let hyper flush what was sent first: it drops unflushed bytes when it aborts.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tx.send(Err(io::Error::other("abrupt close"))).await;
            }
            Ending::Stall => tx.closed().await,
        }
    });
    let content_type = match wire {
        Wire::Ollama => "application/x-ndjson",
        _ => "text/event-stream",
    };
    let body = StreamBody::new(ReceiverStream::new(rx)).boxed();
    let response = Response::builder()
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .body(body)
        .unwrap_or_else(|_| Response::new(empty()));
    Ok(response)
}

/// Counts a stream as open while its writer task lives.
struct OpenStream(Arc<Shared>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy)]
enum Ending {
    Close,
    Abort,
    Stall,
}

/// The provider's own error response for `status`.
fn error_response(wire: Wire, status: u16, retry_after: Option<u64>) -> Response<Body> {
    json_response(status, &wire::error_body(wire, status), retry_after)
}

/// A JSON response with `status` (and `Retry-After: secs` when given).
fn json_response(status: u16, body: &Value, retry_after: Option<u64>) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json");
    if let Some(secs) = retry_after {
        builder = builder.header("retry-after", secs.to_string());
    }
    let body = Full::new(Bytes::from(body.to_string()))
        .map_err(|never| match never {})
        .boxed();
    builder
        .body(body)
        .unwrap_or_else(|_| Response::new(empty()))
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}
