//! A fake LLM provider for load tests and the integration tests: a real HTTP server that speaks
//! each upstream wire format the way the provider does (event names, framing, usage, OpenAI's
//! `[DONE]`, Gemini's `\r\n\r\n` frames and closing instead of `[DONE]`, Anthropic's named events
//! with `ping`, Ollama's NDJSON), with a configurable pace, fault modes and, when asked, a record
//! of every request. One instance answers all four formats on one address, or only one of them.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::{body::Incoming, service::service_fn, Request, Response};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use serde_json::Value;
use tokio::{net::TcpListener, task::JoinHandle};

pub mod cli;
mod record;
mod request_body;
mod stream;
mod wire;

pub use record::RecordedRequest;
use request_body::RequestSummary;
use stream::{Ending, FrameCache, Frames};
pub use wire::INTERNAL_HOST;
use wire::{route, Tail};

type Body = BoxBody<Bytes, io::Error>;

/// Largest request body read; a larger one is treated as no JSON at all.
const MAX_REQUEST_BYTES: usize = 16 << 20;

/// The wire format a request is answered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wire {
    OpenAi,
    Gemini,
    Anthropic,
    Ollama,
}

impl Wire {
    /// The format whose endpoint `path` (with its query) is, when it is one.
    fn of_path(path: &str) -> Option<Wire> {
        match path {
            "/v1/chat/completions" => Some(Wire::OpenAi),
            "/v1/messages" => Some(Wire::Anthropic),
            "/api/chat" => Some(Wire::Ollama),
            _ if path.starts_with("/v1beta/models/") => Some(Wire::Gemini),
            _ => None,
        }
    }
}

/// How the mock misbehaves.
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

/// What the mock answers and how fast; every field can be changed while it runs.
#[derive(Clone, Debug)]
pub struct MockSettings {
    /// Answer only this format (others get 404), or all four when `None`.
    pub only: Option<Wire>,
    /// The text deltas of every answer.
    pub reply: Vec<String>,
    /// Pause before the first delta (after the headers and any opening frames).
    pub ttft: Duration,
    /// Pause before every later frame.
    pub gap: Duration,
    pub fault: Fault,
    /// Share of requests that get `fault` (spread evenly, not at random, so runs repeat).
    pub fault_rate: f64,
    /// Keep every request for `requests()`; off for load tests, where it would only grow.
    pub record_requests: bool,
    /// The `MAX_CONCURRENT_STREAMS` an HTTP/2 (h2c) client is told; HTTP/1.1 clients are
    /// answered too, on the same port.
    pub max_streams_per_connection: u32,
}

impl Default for MockSettings {
    fn default() -> Self {
        MockSettings {
            only: None,
            reply: reply_of(20),
            ttft: Duration::ZERO,
            gap: Duration::ZERO,
            fault: Fault::None,
            fault_rate: 1.0,
            record_requests: false,
            // The least RFC 9113 recommends a server allow, and a common setting.
            max_streams_per_connection: 100,
        }
    }
}

/// A reply of `tokens` short words, the first without a leading space.
pub fn reply_of(tokens: usize) -> Vec<String> {
    const WORDS: [&str; 9] = [
        "The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog",
    ];
    (0..tokens)
        .map(|i| {
            let word = WORDS[i % WORDS.len()];
            if i == 0 {
                word.to_owned()
            } else {
                format!(" {word}")
            }
        })
        .collect()
}

/// The settings as one request sees them: the reply is shared, not copied.
#[derive(Clone)]
struct Behaviour {
    reply: Arc<[String]>,
    /// Bumped with every new reply, so cached frames of an old one are never sent.
    reply_version: u64,
    ttft: Duration,
    gap: Duration,
    fault: Fault,
    fault_rate: f64,
}

struct Shared {
    only: Option<Wire>,
    record_requests: bool,
    behaviour: Mutex<Behaviour>,
    /// Requests answered with the fault's status since it was set (for `StatusThenOk`).
    fault_hits: AtomicUsize,
    /// Requests that reached a fault decision, for spreading `fault_rate`.
    seen: AtomicU64,
    requests: Mutex<Vec<RecordedRequest>>,
    open_streams: AtomicUsize,
    /// TCP connections accepted since the start.
    connections: AtomicUsize,
    cache: FrameCache,
}

/// A running mock provider; dropping it stops accepting connections.
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl MockUpstream {
    /// Listens on `addr` (port 0 picks a free one) and answers in the background.
    pub async fn start(addr: SocketAddr, settings: MockSettings) -> io::Result<MockUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            only: settings.only,
            record_requests: settings.record_requests,
            behaviour: Mutex::new(Behaviour {
                reply: settings.reply.into(),
                reply_version: 0,
                ttft: settings.ttft,
                gap: settings.gap,
                fault: settings.fault,
                fault_rate: settings.fault_rate.clamp(0.0, 1.0),
            }),
            fault_hits: AtomicUsize::new(0),
            seen: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
            open_streams: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            cache: FrameCache::default(),
        });
        let mut connections = auto::Builder::new(TokioExecutor::new());
        connections
            .http2()
            .max_concurrent_streams(settings.max_streams_per_connection.max(1));
        let accept = tokio::spawn(accept_loop(listener, connections, shared.clone()));
        Ok(MockUpstream {
            addr,
            shared,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What OmniChat's setting for `wire` takes (`…/v1` for OpenAI, the bare host otherwise).
    pub fn base_url(&self, wire: Wire) -> String {
        match wire {
            Wire::OpenAi => format!("http://{}/v1", self.addr),
            Wire::Gemini | Wire::Anthropic | Wire::Ollama => format!("http://{}", self.addr),
        }
    }

    /// The text deltas the mock streams.
    pub fn set_reply(&self, words: Vec<String>) {
        let mut behaviour = lock(&self.shared.behaviour);
        behaviour.reply = words.into();
        behaviour.reply_version += 1;
    }

    pub fn set_fault(&self, fault: Fault) {
        lock(&self.shared.behaviour).fault = fault;
        self.shared.fault_hits.store(0, Ordering::SeqCst);
    }

    /// Pause before each frame, the first delta included.
    pub fn set_token_delay(&self, delay: Duration) {
        let mut behaviour = lock(&self.shared.behaviour);
        behaviour.ttft = delay;
        behaviour.gap = delay;
    }

    /// Requests received so far (only kept when `record_requests` is on).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Response bodies currently being written; drops to 0 once clients went away.
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(
    listener: TcpListener,
    connections: auto::Builder<TokioExecutor>,
    shared: Arc<Shared>,
) {
    let connections = Arc::new(connections);
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            // Out of file descriptors or similar: back off instead of spinning or stopping.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(shared.clone(), request));
            let _ = connections
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Whether the `n`th request (from 0) gets the fault: `rate` of them, evenly spread.
fn faulted(n: u64, rate: f64) -> bool {
    let n = n as f64;
    ((n + 1.0) * rate).floor() > (n * rate).floor()
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
    let body = Limited::new(body, MAX_REQUEST_BYTES)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let summary = RequestSummary::read(&body);
    if shared.record_requests {
        // Only a recording keeps the whole body, as a tree tests can look into.
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        lock(&shared.requests).push(RecordedRequest::new(&parts, &path, &body));
    }

    let wire = shared
        .only
        .or_else(|| Wire::of_path(&path))
        .unwrap_or(Wire::OpenAi);
    let Some(model) = route(wire, parts.method.as_str(), &path, summary.model) else {
        return Ok(error_response(wire, 404, None));
    };
    let behaviour = lock(&shared.behaviour).clone();
    let fault = if faulted(
        shared.seen.fetch_add(1, Ordering::Relaxed),
        behaviour.fault_rate,
    ) {
        behaviour.fault.clone()
    } else {
        Fault::None
    };
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
            let (name, value) = ["authorization", "x-api-key", "x-goog-api-key"]
                .into_iter()
                .find_map(|name| Some((name, parts.headers.get(name)?.to_str().ok()?)))
                .unwrap_or(("authorization", ""));
            let body = wire::leaky_error_body(wire, status, name, value);
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

    let words = behaviour.reply.len();
    let half = words.div_ceil(2);
    let (sent, tail, ending) = match fault {
        Fault::MidStreamError => (half, Tail::Error, Ending::Close),
        Fault::AbruptClose => (half, Tail::Nothing, Ending::Abort),
        Fault::Stall => (half, Tail::Nothing, Ending::Stall),
        Fault::SafetyBlock if wire == Wire::Gemini => (0, Tail::Safety, Ending::Close),
        _ => (words, Tail::Finish, Ending::Close),
    };
    let prompt_tokens = summary.prompt_tokens;
    let (encoded, prompt_frame) = shared.cache.get_or_encode(
        wire,
        &model,
        (&behaviour.reply[..sent], behaviour.reply_version),
        prompt_tokens,
        tail,
    );
    let frames = Frames {
        encoded,
        prompt_frame,
        ttft: behaviour.ttft,
        gap: behaviour.gap,
        ending,
    };
    let content_type = match wire {
        Wire::Ollama => "application/x-ndjson",
        _ => "text/event-stream",
    };
    let response = Response::builder()
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .body(frames.into_body(&shared))
        .unwrap_or_else(|_| Response::new(empty()));
    Ok(response)
}

/// Counts a stream as open while its body lives.
struct OpenStream(Arc<Shared>);

impl OpenStream {
    fn new(shared: &Arc<Shared>) -> OpenStream {
        shared.open_streams.fetch_add(1, Ordering::SeqCst);
        OpenStream(shared.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The provider's own error response for `status`.
fn error_response(wire: Wire, status: u16, retry_after: Option<u64>) -> Response<Body> {
    json_response(status, &wire::error_body(wire, status), retry_after)
}

/// A JSON response with `status` (and `Retry-After: secs` when given).
fn json_response(status: u16, body: &Value, retry_after: Option<u64>) -> Response<Body> {
    let mut builder = Response::builder()
        .status(
            hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR),
        )
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
