//! The mock's response bodies: frames encoded once and kept, then written at the configured pace
//! by the body itself (no task or channel per response), ending as the fault says.

use std::{collections::HashMap, io, sync::Arc, sync::Mutex, time::Duration};

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::{
    lock,
    wire::{self, PromptFrame},
    Body, OpenStream, Shared, Tail, Wire,
};

/// Cached encodings kept at most; past it the cache starts over (model names come from clients).
const CACHE_CAPACITY: usize = 1024;

/// How a body ends after its frames.
#[derive(Clone, Copy, Debug)]
pub(super) enum Ending {
    Close,
    /// Cut the connection without ending the chunked body.
    Abort,
    /// Go silent until the client leaves.
    Stall,
}

/// One response's frames: the head is sent at once, the rest paced.
pub(super) struct Encoded {
    head: Vec<Bytes>,
    frames: Vec<Bytes>,
}

#[derive(Hash, PartialEq, Eq)]
struct Key {
    wire: Wire,
    model: String,
    sent: usize,
    reply_version: u64,
    prompt_tokens: usize,
    tail: Tail,
}

/// Encoded responses by everything they depend on, so a load test's repeated requests cost no
/// JSON encoding. The prompt's token count is part of the key only where every frame names it
/// (Gemini); elsewhere the one frame that names it is made per request.
#[derive(Default)]
pub(super) struct FrameCache(Mutex<HashMap<Key, Arc<Encoded>>>);

impl FrameCache {
    /// The frames of `words` (the first `sent` of reply version `reply_version`), and the frame
    /// to send instead of the cached one that names another prompt's token count.
    pub(super) fn get_or_encode(
        &self,
        wire: Wire,
        model: &str,
        (words, reply_version): (&[String], u64),
        prompt_tokens: usize,
        tail: Tail,
    ) -> (Arc<Encoded>, Option<PromptFrame>) {
        let prompt_frame = wire::prompt_frame(wire, model, words.len(), prompt_tokens, tail);
        let prompt_tokens = if wire::prompt_in_every_frame(wire) {
            prompt_tokens
        } else {
            0
        };
        let key = Key {
            wire,
            model: model.to_owned(),
            sent: words.len(),
            reply_version,
            prompt_tokens,
            tail,
        };
        if let Some(encoded) = lock(&self.0).get(&key) {
            return (encoded.clone(), prompt_frame);
        }
        let (head, frames) = wire::wire_frames(wire, model, words, prompt_tokens, tail);
        let encoded = Arc::new(Encoded {
            head: head.into_iter().map(Bytes::from).collect(),
            frames: frames.into_iter().map(Bytes::from).collect(),
        });
        let mut cache = lock(&self.0);
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(key, encoded.clone());
        (encoded, prompt_frame)
    }
}

/// A response to write: its frames, pace and ending.
pub(super) struct Frames {
    pub(super) encoded: Arc<Encoded>,
    /// Sent in place of the encoded frame at its position.
    pub(super) prompt_frame: Option<PromptFrame>,
    pub(super) ttft: Duration,
    pub(super) gap: Duration,
    pub(super) ending: Ending,
}

struct Writer {
    frames: Frames,
    /// Index into head then frames.
    next: usize,
    ended: bool,
    _open: OpenStream,
}

impl Frames {
    /// The streaming body; it counts as an open stream until hyper drops it.
    pub(super) fn into_body(self, shared: &Arc<Shared>) -> Body {
        let writer = Writer {
            frames: self,
            next: 0,
            ended: false,
            _open: OpenStream::new(shared),
        };
        let body = stream::unfold(writer, |mut w| async move {
            if w.ended {
                return None;
            }
            let head = w.frames.encoded.head.len();
            let index = w.next;
            w.next += 1;
            if index < head {
                let frame = match &w.frames.prompt_frame {
                    Some(PromptFrame::Head(at, frame)) if *at == index => {
                        Bytes::from(frame.clone())
                    }
                    _ => w.frames.encoded.head[index].clone(),
                };
                return Some((Ok(Frame::data(frame)), w));
            }
            let paced = index - head;
            let frame = match &w.frames.prompt_frame {
                Some(PromptFrame::Paced(at, frame)) if *at == paced => {
                    Some(Bytes::from(frame.clone()))
                }
                _ => w.frames.encoded.frames.get(paced).cloned(),
            };
            if let Some(frame) = frame {
                let pause = if paced == 0 {
                    w.frames.ttft
                } else {
                    w.frames.gap
                };
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                return Some((Ok(Frame::data(frame)), w));
            }
            w.ended = true;
            match w.frames.ending {
                Ending::Close => None,
                // An error from the body makes hyper drop the connection without ending the
                // chunked body: the client sees a connection cut mid-stream. Let hyper flush what
                // was sent first: it drops unflushed bytes when it aborts.
                Ending::Abort => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((Err(io::Error::other("abrupt close")), w))
                }
                Ending::Stall => {
                    std::future::pending::<()>().await;
                    None
                }
            }
        });
        StreamBody::new(body).boxed()
    }
}
