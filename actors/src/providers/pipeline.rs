//! The byte stream → normalised events pipeline shared by the wire modules.
//!
//! Framing (SSE by [`SseFramer`], NDJSON by a line splitter, both our own) is
//! separated from decoding (a synchronous [`Decoder`] per wire format), so the decoders are pure
//! and every format can be tested by feeding recorded bytes cut at any offset.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{ready, Context, Poll},
};

use futures_util::{Stream, StreamExt};

use super::{
    http::ByteStream, ndjson_framer::NdjsonFramer, sse_framer::SseFramer, ProviderError,
    ProviderEvent, ProviderStream,
};

/// The events one frame turned into, in order.
pub(crate) type Events = VecDeque<ProviderEvent>;

/// A wire format's decoder: turns framed units into normalised events.
pub(crate) trait Decoder: Send + Unpin + 'static {
    /// The provider named in errors.
    const PROVIDER: &'static str;

    /// One SSE event (its `event:` name, `"message"` by default, and its joined `data:` lines),
    /// or one NDJSON line (with an empty name); its events are appended to `events`. On an error,
    /// whatever it appended is discarded.
    fn on_frame(
        &mut self,
        event: &str,
        data: &str,
        events: &mut Events,
    ) -> Result<(), ProviderError>;

    /// The body ended cleanly; an answer that was not finished is an error here.
    fn on_end(&mut self, events: &mut Events) -> Result<(), ProviderError>;

    /// Whether the provider said the answer is complete; the rest of the body is not read.
    fn is_done(&self) -> bool;
}

/// Cuts a body into frames that borrow from the framer (no copy or allocation per frame beyond
/// the framer's own buffers).
pub(crate) trait Framer: Default + Send + Unpin + 'static {
    fn feed(&mut self, chunk: &[u8]);

    /// The next frame `(event name, data)` if the bytes fed so far hold one; `at_end`: no more
    /// bytes will come. An error is a message for an `upstream_malformed` error, and final.
    fn next_frame(&mut self, at_end: bool) -> Option<Result<(&str, &str), &'static str>>;
}

/// Decodes a Server-Sent Events body.
pub(crate) fn sse<D: Decoder>(body: ByteStream, decoder: D) -> ProviderStream {
    Box::pin(Decoding::<SseFramer, D>::new(body, decoder))
}

/// Decodes a newline-delimited JSON body.
pub(crate) fn ndjson<D: Decoder>(body: ByteStream, decoder: D) -> ProviderStream {
    Box::pin(Decoding::<NdjsonFramer, D>::new(body, decoder))
}

/// The body read through a framer into a decoder, as one stream: the first error, the
/// decoder's completion or the end of the body ends it, and the body is dropped (closing the
/// connection) right then.
struct Decoding<F, D> {
    /// `None` once nothing more is read from it.
    body: Option<ByteStream>,
    /// The body said it has no more bytes.
    body_ended: bool,
    framer: F,
    decoder: D,
    /// Events decoded and not yet handed on.
    pending: Events,
    /// The error that ends the stream, once `pending` is drained.
    failure: Option<ProviderError>,
    /// Nothing follows `pending` and `failure`.
    finished: bool,
}

impl<F: Framer, D: Decoder> Decoding<F, D> {
    fn new(body: ByteStream, decoder: D) -> Self {
        Decoding {
            body: Some(body),
            body_ended: false,
            framer: F::default(),
            decoder,
            pending: VecDeque::new(),
            failure: None,
            finished: false,
        }
    }

    /// Ends the stream after what is pending (and `failure`, if any).
    fn finish(&mut self, failure: Option<ProviderError>) {
        self.failure = failure;
        self.finished = true;
        self.body = None;
    }

    /// Decodes the frames the framer holds; `false` when it needs more bytes first.
    fn decode_buffered(&mut self) -> bool {
        loop {
            let before = self.pending.len();
            let outcome = match self.framer.next_frame(self.body_ended) {
                Some(Ok((event, data))) => self.decoder.on_frame(event, data, &mut self.pending),
                // Nothing after a framing error can be trusted: the stream ends with it.
                Some(Err(message)) => Err(malformed::<D>(message.to_owned())),
                None if self.body_ended => {
                    let outcome = self.decoder.on_end(&mut self.pending);
                    if outcome.is_err() {
                        self.pending.truncate(before);
                    }
                    self.finish(outcome.err());
                    return true;
                }
                None => return false,
            };
            match outcome {
                Ok(()) if self.decoder.is_done() => {
                    self.finish(None);
                    return true;
                }
                Ok(()) => {
                    if !self.pending.is_empty() {
                        return true;
                    }
                }
                Err(err) => {
                    self.pending.truncate(before);
                    self.finish(Some(err));
                    return true;
                }
            }
        }
    }
}

impl<F: Framer, D: Decoder> Stream for Decoding<F, D> {
    type Item = Result<ProviderEvent, ProviderError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(event) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if this.finished {
                return Poll::Ready(this.failure.take().map(Err));
            }
            if this.decode_buffered() {
                continue;
            }
            let Some(body) = this.body.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(body.poll_next_unpin(cx)) {
                Some(Ok(chunk)) => this.framer.feed(&chunk),
                Some(Err(err)) => this.finish(Some(err)),
                None => this.body_ended = true,
            }
        }
    }
}

/// An upstream that sent something no decoder can read.
pub(crate) fn malformed<D: Decoder>(message: String) -> ProviderError {
    ProviderError::Stream {
        provider: D::PROVIDER,
        code: "upstream_malformed",
        message,
    }
}

/// Test helpers: run recorded bytes through the real pipeline, cut every possible way.
#[cfg(test)]
pub(crate) mod testing {
    use bytes::Bytes;
    use futures_util::{stream, StreamExt};

    use super::super::{
        http::ByteStream, ChatMessage, ChatRequest, ProviderError, ProviderEvent, ProviderSettings,
        ProviderStream, Role,
    };

    /// A request to `model` with these messages.
    fn request(model: &str, messages: &[(Role, &str)], max_tokens: Option<u32>) -> ChatRequest {
        ChatRequest {
            model: model.to_owned(),
            messages: messages
                .iter()
                .map(|&(role, content)| ChatMessage {
                    role,
                    content: content.into(),
                })
                .collect(),
            max_tokens,
        }
    }

    /// A two-turn conversation with a system prompt, the new prompt last.
    pub(crate) fn conversation(model: &str) -> ChatRequest {
        request(
            model,
            &[
                (Role::System, "You are terse."),
                (Role::User, "Hi, I'm Zoë"),
                (Role::Assistant, "Hello Zoë!"),
                (Role::User, "What's my name?"),
            ],
            None,
        )
    }

    /// A conversation whose texts need escaping, with two system prompts, an empty answer and a
    /// longest answer: what request bodies are checked against byte for byte.
    pub(crate) fn awkward_conversation(model: &str) -> ChatRequest {
        request(
            model,
            &[
                (Role::System, "Be \"terse\".\n"),
                (Role::User, "Hi, I'm Zoë 😀 \\ \t \u{1} </script>"),
                (Role::Assistant, ""),
                (Role::System, "  "),
                (Role::System, "Answer in French."),
                (Role::Assistant, "Hello\r\nZoë!"),
                (Role::User, "What's my name?"),
            ],
            Some(77),
        )
    }

    /// [`awkward_conversation`] as it is, and without its system prompts or `max_tokens`: the
    /// two shapes of body the formats that take system prompts apart must write.
    pub(crate) fn awkward_with_and_without_system(model: &str) -> [ChatRequest; 2] {
        let full = awkward_conversation(model);
        let mut no_system = full.clone();
        no_system
            .messages
            .retain(|message| message.role != Role::System);
        no_system.max_tokens = None;
        [full, no_system]
    }

    /// A message as the OpenAI and Ollama formats carry it, for the serde reference bodies.
    #[derive(serde::Serialize)]
    pub(crate) struct RoleAndContent<'a> {
        role: &'static str,
        content: &'a super::super::MessageText,
    }

    /// `request`'s messages, every one, as [`RoleAndContent`].
    pub(crate) fn role_and_content(request: &ChatRequest) -> Vec<RoleAndContent<'_>> {
        request
            .messages
            .iter()
            .map(|message| RoleAndContent {
                role: message.role.as_str(),
                content: &message.content,
            })
            .collect()
    }

    /// The endpoints of [`settings`].
    pub(crate) fn endpoints() -> super::super::endpoints::Endpoints {
        super::super::endpoints::Endpoints::new(&settings())
    }

    /// The bytes of a built request's body.
    pub(crate) fn body_bytes(builder: reqwest::RequestBuilder) -> Vec<u8> {
        let request = builder.build().expect("request builds");
        request
            .body()
            .and_then(|body| body.as_bytes())
            .expect("a buffered body")
            .to_vec()
    }

    /// Settings with every key set and every base URL pointing at a fake host.
    pub(crate) fn settings() -> ProviderSettings {
        ProviderSettings {
            openai_api_key: Some("sk-openai".into()),
            openai_base_url: "http://fake.test/v1/".into(),
            gemini_api_key: Some("gm-key".into()),
            gemini_base_url: "http://fake.test".into(),
            anthropic_api_key: Some("sk-ant".into()),
            anthropic_base_url: "http://fake.test".into(),
            ollama_host: "http://fake.test:11434".into(),
            ..ProviderSettings::default()
        }
    }

    /// The URL, a header and the JSON body of a built request.
    pub(crate) fn built(
        builder: reqwest::RequestBuilder,
    ) -> (String, reqwest::header::HeaderMap, serde_json::Value) {
        let request = builder.build().expect("request builds");
        let body = request
            .body()
            .and_then(|body| body.as_bytes())
            .expect("a buffered body");
        let body = serde_json::from_slice(body).expect("a JSON body");
        (request.url().to_string(), request.headers().clone(), body)
    }

    /// Everything a stream yields, errors included.
    pub(crate) type Outcome = Vec<Result<ProviderEvent, ProviderError>>;

    fn body(chunks: Vec<Vec<u8>>) -> ByteStream {
        Box::pin(stream::iter(
            chunks.into_iter().map(|chunk| Ok(Bytes::from(chunk))),
        ))
    }

    async fn collect(stream: ProviderStream) -> Outcome {
        stream.collect().await
    }

    /// Runs `recorded` through `pipeline` whole, cut in two at every byte offset and in 1-byte
    /// chunks, asserts every run yields the same, and returns that.
    pub(crate) async fn every_split(
        recorded: &[u8],
        pipeline: impl Fn(ByteStream) -> ProviderStream,
    ) -> Outcome {
        let whole = collect(pipeline(body(vec![recorded.to_vec()]))).await;
        let shown = |outcome: &Outcome| format!("{outcome:?}");
        for cut in 0..=recorded.len() {
            let (head, tail) = recorded.split_at(cut);
            let split = collect(pipeline(body(vec![head.to_vec(), tail.to_vec()]))).await;
            assert_eq!(shown(&split), shown(&whole), "split at byte {cut}");
        }
        let bytewise = recorded.iter().map(|byte| vec![*byte]).collect();
        let bytewise = collect(pipeline(body(bytewise))).await;
        assert_eq!(shown(&bytewise), shown(&whole), "1-byte chunks");
        whole
    }

    /// The text of all deltas.
    pub(crate) fn text(outcome: &Outcome) -> String {
        outcome
            .iter()
            .filter_map(|item| match item {
                Ok(ProviderEvent::Delta(text)) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The final error's code, if the stream failed.
    pub(crate) fn error_code(outcome: &Outcome) -> Option<&'static str> {
        match outcome.last() {
            Some(Err(err)) => Some(err.code()),
            _ => None,
        }
    }
}
