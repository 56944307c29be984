//! The floor under OmniChat's chat-turn overhead: the least a relay built on the same crates
//! (hyper serving, reqwest calling, serde decoding) must do per turn, with no authentication,
//! no database, no actors. It takes an OpenAI-wire streaming request, sends one to the upstream,
//! decodes every chunk's text and sends it on as an OpenAI-wire chunk, then `[DONE]`.
//!
//! `bench/relay_floor.sh` runs it beside the mock called directly and beside OmniChat, so the
//! benchmark's ratios can be read against what the crates alone cost on the same machine.
//!
//!   cargo run --release --example relay_floor -- 127.0.0.1:19120 http://127.0.0.1:19100/v1
//!
//! With `--hop` each answer also passes through a spawned task and a channel, as an answer
//! passes through its generation's reader task and actor in OmniChat: the cost of one hop.

use std::{convert::Infallible, net::SocketAddr};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::{body::Frame, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::{net::TcpListener, sync::mpsc};

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<std::borrow::Cow<'a, str>>,
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

const USAGE: &str = "usage: relay_floor ADDR UPSTREAM_BASE [--hop]";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().ok_or(USAGE)?.parse()?;
    let upstream = format!("{}/chat/completions", args.next().ok_or(USAGE)?);
    let hop = args.next().as_deref() == Some("--hop");
    let client = reqwest::Client::builder().build()?;
    let listener = TcpListener::bind(addr).await?;
    loop {
        // Out of descriptors while streams are held, say: wait and go on, as a server would.
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (client, upstream) = (client.clone(), upstream.clone());
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            relay(client.clone(), upstream.clone(), req, hop)
        });
        tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    }
}

async fn relay(
    client: reqwest::Client,
    upstream: String,
    req: Request<hyper::body::Incoming>,
    hop: bool,
) -> Result<Response<Body>, Infallible> {
    let Ok(prompt) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(Response::new(BodyExt::boxed_unsync(
            http_body_util::Empty::new(),
        )));
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let answer = async move {
        let Ok(response) = client.post(&upstream).body(prompt).send().await else {
            return;
        };
        let mut body = response.bytes_stream();
        let mut pending = BytesMut::new();
        while let Some(Ok(bytes)) = body.next().await {
            pending.extend_from_slice(&bytes);
            let mut out = BytesMut::new();
            while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                let frame = pending.split_to(end + 2);
                let Some(data) = frame.strip_prefix(b"data: ") else {
                    continue;
                };
                let data = &data[..data.len() - 2];
                if data == b"[DONE]" {
                    out.extend_from_slice(b"data: [DONE]\n\n");
                    continue;
                }
                let Ok(chunk) = serde_json::from_slice::<Chunk>(data) else {
                    continue;
                };
                let text = chunk.choices.into_iter().find_map(|c| c.delta?.content);
                if let Some(text) = text {
                    out.extend_from_slice(b"data: {\"choices\":[{\"delta\":{\"content\":");
                    let _ = serde_json::to_writer(OutWriter(&mut out), &text);
                    out.extend_from_slice(b"}}]}\n\n");
                }
            }
            if !out.is_empty() && tx.send(out.freeze()).await.is_err() {
                return;
            }
        }
    };
    let rx = if hop {
        // One more task and channel, as the generation's actor stands between reader and body.
        let (hop_tx, hop_rx) = mpsc::channel::<Bytes>(64);
        tokio::spawn(answer);
        tokio::spawn(async move {
            let mut rx = rx;
            while let Some(bytes) = rx.recv().await {
                if hop_tx.send(bytes).await.is_err() {
                    return;
                }
            }
        });
        hop_rx
    } else {
        tokio::spawn(answer);
        rx
    };
    let frames = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    Ok(response)
}

/// `io::Write` into a `BytesMut`, for serde_json's string escaping.
struct OutWriter<'a>(&'a mut BytesMut);

impl std::io::Write for OutWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
