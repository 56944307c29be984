//! The byte stream → normalised events pipeline shared by the wire modules.
//!
//! Framing (SSE by [`SseFramer`], NDJSON by a line splitter, both our own) is
//! separated from decoding (a synchronous [`Decoder`] per wire format), so the decoders are pure
//! and every format can be tested by feeding recorded bytes cut at any offset.

use std::{collections::VecDeque, pin::Pin};

use futures_util::{stream, Stream, StreamExt};

use super::{
    http::ByteStream,
    sse_framer::{SseFramer, MAX_LINE_BYTES},
    ProviderError, ProviderEvent, ProviderStream,
};

/// A wire format's decoder: turns framed units into normalised events.
pub(crate) trait Decoder: Send + 'static {
    /// The provider named in errors.
    const PROVIDER: &'static str;

    /// One SSE event (its `event:` name, `"message"` by default, and its joined `data:` lines),
    /// or one NDJSON line (with an empty name).
    fn on_frame(&mut self, event: &str, data: &str) -> Result<Vec<ProviderEvent>, ProviderError>;

    /// The body ended cleanly; an answer that was not finished is an error here.
    fn on_end(&mut self) -> Result<Vec<ProviderEvent>, ProviderError>;

    /// Whether the provider said the answer is complete; the rest of the body is not read.
    fn is_done(&self) -> bool;
}

/// Framed units: (event name, data).
type Frames = Pin<Box<dyn Stream<Item = Result<(String, String), ProviderError>> + Send>>;

/// Decodes a Server-Sent Events body.
pub(crate) fn sse<D: Decoder>(body: ByteStream, decoder: D) -> ProviderStream {
    struct State {
        body: ByteStream,
        framer: SseFramer,
        ended: bool,
    }
    let state = State {
        body,
        framer: SseFramer::default(),
        ended: false,
    };
    let frames = stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            match state.framer.next_event(state.ended) {
                Some(Ok(event)) => return Some((Ok(event), Some(state))),
                // Nothing after a framing error can be trusted: the stream ends with it.
                Some(Err(err)) => return Some((Err(malformed::<D>(err.message())), None)),
                None if state.ended => return None,
                None => {}
            }
            match state.body.next().await {
                Some(Ok(chunk)) => state.framer.feed(&chunk),
                Some(Err(err)) => return Some((Err(err), None)),
                None => state.ended = true,
            }
        }
    });
    drive(Box::pin(frames), decoder)
}

/// Decodes a newline-delimited JSON body.
pub(crate) fn ndjson<D: Decoder>(body: ByteStream, decoder: D) -> ProviderStream {
    struct State {
        body: ByteStream,
        buffer: Vec<u8>,
        /// Complete lines not yet decoded; a framing error queues behind the lines before it.
        lines: VecDeque<Result<(String, String), ProviderError>>,
        ended: bool,
    }
    let state = State {
        body,
        buffer: Vec::new(),
        lines: VecDeque::new(),
        ended: false,
    };
    let frames = stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            if let Some(line) = state.lines.pop_front() {
                return Some((line, Some(state)));
            }
            if state.ended {
                return None;
            }
            // Lines are cut on raw bytes: `\n` never occurs inside a UTF-8 sequence, so a
            // character split across chunks is whole again by the time its line is decoded.
            let cut = match state.body.next().await {
                Some(Ok(chunk)) => {
                    state.buffer.extend_from_slice(&chunk);
                    match state.buffer.iter().rposition(|byte| *byte == b'\n') {
                        Some(last) => last + 1,
                        None => 0,
                    }
                }
                Some(Err(err)) => {
                    state.lines.push_back(Err(err));
                    state.ended = true;
                    continue;
                }
                None => {
                    // A last line without its newline still counts.
                    state.ended = true;
                    state.buffer.len()
                }
            };
            let rest = state.buffer.split_off(cut);
            let complete = std::mem::replace(&mut state.buffer, rest);
            for raw in complete.split(|byte| *byte == b'\n') {
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                if raw.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match String::from_utf8(raw.to_vec()) {
                    Ok(line) => state.lines.push_back(Ok((String::new(), line))),
                    Err(_) => {
                        let error = malformed::<D>("a line is not valid UTF-8".to_owned());
                        state.lines.push_back(Err(error));
                        state.ended = true;
                        break;
                    }
                }
            }
            if state.buffer.len() > MAX_LINE_BYTES {
                let error = malformed::<D>("a line is longer than 4 MiB".to_owned());
                state.lines.push_back(Err(error));
                state.ended = true;
            }
        }
    });
    drive(Box::pin(frames), decoder)
}

/// Feeds frames to the decoder; the first error, the decoder's completion or the end of the body
/// ends the stream, and the body is dropped (closing the connection) right then.
fn drive<D: Decoder>(frames: Frames, decoder: D) -> ProviderStream {
    struct State<D> {
        frames: Option<Frames>,
        decoder: D,
        pending: VecDeque<Result<ProviderEvent, ProviderError>>,
    }
    let state = State {
        frames: Some(frames),
        decoder,
        pending: VecDeque::new(),
    };
    Box::pin(stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.pending.pop_front() {
                return Some((item, state));
            }
            let frames = state.frames.as_mut()?;
            let outcome = match frames.next().await {
                Some(Ok((event, data))) => state
                    .decoder
                    .on_frame(&event, &data)
                    .map(|events| (events, state.decoder.is_done())),
                Some(Err(err)) => Err(err),
                None => state.decoder.on_end().map(|events| (events, true)),
            };
            match outcome {
                Ok((events, done)) => {
                    state.pending.extend(events.into_iter().map(Ok));
                    if done {
                        state.frames = None;
                    }
                }
                Err(err) => {
                    state.pending.push_back(Err(err));
                    state.frames = None;
                }
            }
        }
    }))
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

    /// A two-turn conversation with a system prompt, the new prompt last.
    pub(crate) fn conversation(model: &str) -> ChatRequest {
        let message = |role, content: &str| ChatMessage {
            role,
            content: content.into(),
        };
        ChatRequest {
            model: model.to_owned(),
            messages: vec![
                message(Role::System, "You are terse."),
                message(Role::User, "Hi, I'm Zoë"),
                message(Role::Assistant, "Hello Zoë!"),
                message(Role::User, "What's my name?"),
            ],
            max_tokens: None,
        }
    }

    /// A conversation whose texts need escaping, with two system prompts, an empty answer and a
    /// longest answer: what request bodies are checked against byte for byte.
    pub(crate) fn awkward_conversation(model: &str) -> ChatRequest {
        let message = |role, content: &str| ChatMessage {
            role,
            content: content.into(),
        };
        ChatRequest {
            model: model.to_owned(),
            messages: vec![
                message(Role::System, "Be \"terse\".\n"),
                message(Role::User, "Hi, I'm Zoë 😀 \\ \t \u{1} </script>"),
                message(Role::Assistant, ""),
                message(Role::System, "  "),
                message(Role::System, "Answer in French."),
                message(Role::Assistant, "Hello\r\nZoë!"),
                message(Role::User, "What's my name?"),
            ],
            max_tokens: Some(77),
        }
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
