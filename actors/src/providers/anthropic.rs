//! Anthropic's Messages API streaming format.
//!
//! `POST {base}/v1/messages` with `x-api-key`, `anthropic-version: 2023-06-01`, the required
//! `max_tokens` and the system prompt in its own top-level field. The SSE stream names every
//! event: `message_start` (input usage), `content_block_delta` (text), `message_delta` (stop
//! reason, cumulative output usage), `message_stop`; `ping` and event types added later are
//! ignored, `error` ends the stream.

use reqwest::header::HeaderValue;
use serde::Deserialize;
use serde_json::Value;

use super::{
    endpoints::Endpoint,
    error_body,
    json_body::{self, JsonBody},
    pipeline::{self, Events},
    ChatRequest, ProviderError, ProviderEvent, ProviderSettings, Role, TokenUsage,
};

const PROVIDER: &str = "anthropic";

/// The API version whose stream format this module speaks.
const API_VERSION: &str = "2023-06-01";

/// The upstream request for `request`: `{"model", "max_tokens", "stream", "system",
/// "messages": [{"role", "content"}…]}` (`system` only when there is one).
pub(crate) fn build_request(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    settings: &ProviderSettings,
    request: &ChatRequest,
) -> reqwest::RequestBuilder {
    // Anthropic rejects empty text blocks, and has no system role among the messages.
    let (system, turns) = json_body::system_apart(&request.messages);
    let mut body = JsonBody::with_texts(request.messages.iter().map(|message| &message.content));
    // Required by Anthropic: the request's own, else the configured default.
    let max_tokens = request.max_tokens.unwrap_or(settings.anthropic_max_tokens);
    body.raw("{\"model\":")
        .string(&request.model)
        .raw(",\"max_tokens\":")
        .number(max_tokens)
        .raw(",\"stream\":true");
    if !system.is_empty() {
        body.raw(",\"system\":").string(&system.join("\n\n"));
    }
    body.raw(",\"messages\":[");
    body.turns(
        turns,
        |role| match role {
            Role::Assistant => "{\"role\":\"assistant\",\"content\":",
            _ => "{\"role\":\"user\",\"content\":",
        },
        "}",
    );
    body.raw("]}");
    let key = settings.anthropic_api_key.as_deref().unwrap_or_default();
    let builder = endpoint
        .post(client)
        .header("x-api-key", key)
        .header("anthropic-version", HeaderValue::from_static(API_VERSION))
        .header(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
    json_body::attach(builder, body)
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<MessageStart>,
    #[serde(default)]
    content_block: Option<Block>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct MessageStart {
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    /// `text_delta` carries answer text; `thinking_delta`, `input_json_delta`, … do not.
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u32>,
    #[serde(default)]
    cache_read_input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
}

impl Usage {
    /// Cached prompt tokens are reported apart from `input_tokens`; the prompt is all of them.
    fn prompt_tokens(&self) -> Option<u32> {
        let parts = [
            self.input_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
        ];
        parts
            .into_iter()
            .flatten()
            .reduce(|sum, part| sum.saturating_add(part))
    }
}

/// Decodes the events of one message.
#[derive(Default)]
pub(crate) struct Decoder {
    usage: TokenUsage,
    stop_reason: Option<String>,
    done: bool,
}

impl pipeline::Decoder for Decoder {
    const PROVIDER: &'static str = PROVIDER;

    fn on_frame(
        &mut self,
        event: &str,
        data: &str,
        events: &mut Events,
    ) -> Result<(), ProviderError> {
        if matches!(event, "ping" | "content_block_stop") {
            return Ok(());
        }
        let parsed: Event = match serde_json::from_str(data) {
            Ok(parsed) => parsed,
            Err(_) if event == "error" => {
                let message = error_body::message_from_body(data.as_bytes());
                return Err(upstream_error(message));
            }
            Err(err) => {
                let message = format!("unreadable event ({err}): {}", error_body::clip(data));
                return Err(pipeline::malformed::<Self>(message));
            }
        };
        // The event name and the data's `type` agree; a nameless event goes by its `type`.
        let kind = match event {
            "message" => parsed.kind.as_deref().unwrap_or_default(),
            named => named,
        };
        match kind {
            "message_start" => {
                if let Some(usage) = parsed.message.and_then(|message| message.usage) {
                    self.usage.prompt_tokens = usage.prompt_tokens();
                    self.usage.completion_tokens = usage.output_tokens;
                    events.push_back(ProviderEvent::Usage(self.usage));
                }
            }
            "content_block_start" => {
                let text = parsed.content_block.and_then(|block| block.text);
                events.extend(text.filter(|t| !t.is_empty()).map(ProviderEvent::Delta));
            }
            "content_block_delta" => {
                let delta = parsed
                    .delta
                    .filter(|d| d.kind.as_deref() == Some("text_delta"));
                let text = delta.and_then(|delta| delta.text);
                events.extend(text.filter(|t| !t.is_empty()).map(ProviderEvent::Delta));
            }
            "message_delta" => {
                if let Some(reason) = parsed.delta.and_then(|delta| delta.stop_reason) {
                    self.stop_reason = Some(reason);
                }
                if let Some(usage) = parsed.usage {
                    // Cumulative counts: replace, never add.
                    if let Some(prompt) = usage.prompt_tokens() {
                        self.usage.prompt_tokens = Some(prompt);
                    }
                    if let Some(output) = usage.output_tokens {
                        self.usage.completion_tokens = Some(output);
                    }
                    events.push_back(ProviderEvent::Usage(self.usage));
                }
            }
            "message_stop" => {
                self.done = true;
                events.extend(self.stop_reason.take().map(ProviderEvent::Finish));
            }
            "error" => {
                let message = parsed
                    .error
                    .as_ref()
                    .and_then(error_body::message_from_value);
                return Err(upstream_error(message));
            }
            _ => {}
        }
        Ok(())
    }

    fn on_end(&mut self, _events: &mut Events) -> Result<(), ProviderError> {
        Err(ProviderError::Stream {
            provider: PROVIDER,
            code: "upstream_closed",
            message: "the stream ended before message_stop".to_owned(),
        })
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

fn upstream_error(message: Option<String>) -> ProviderError {
    ProviderError::Stream {
        provider: PROVIDER,
        code: "upstream_error",
        message: message.unwrap_or_else(|| "the provider reported an error".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::pipeline::testing::{
        awkward_with_and_without_system, body_bytes, built, conversation, endpoints, error_code,
        every_split, settings, text,
    };
    use crate::providers::MessageText;
    use serde::Serialize;
    use serde_json::json;

    fn event(name: &str, data: Value) -> String {
        format!("event: {name}\ndata: {data}\n\n")
    }

    fn delta(text: &str) -> String {
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": text}}),
        )
    }

    fn start() -> String {
        [
            event(
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": "msg_01XF", "type": "message", "role": "assistant",
                    "model": "claude-3-5-haiku-20241022", "content": [], "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 0, "output_tokens": 1}}}),
            ),
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}),
            ),
            event("ping", json!({"type": "ping"})),
        ]
        .concat()
    }

    async fn decode(recorded: &str) -> pipeline::testing::Outcome {
        every_split(recorded.as_bytes(), |body| {
            pipeline::sse(body, Decoder::default())
        })
        .await
    }

    #[tokio::test]
    async fn decodes_a_recorded_stream_split_anywhere() {
        let recorded = [
            start(),
            delta("Your name"),
            event("future_event", json!({"type": "future_event", "x": 1})),
            delta(" is Zoë 😀"),
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
            ),
            event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            event(
                "message_delta",
                json!({"type": "message_delta",
                       "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                       "usage": {"output_tokens": 6}}),
            ),
            event("message_stop", json!({"type": "message_stop"})),
        ]
        .concat();
        let events: Vec<_> = decode(&recorded)
            .await
            .into_iter()
            .map(|e| e.ok())
            .collect();
        let usage = |output| {
            Some(ProviderEvent::Usage(TokenUsage {
                prompt_tokens: Some(25),
                completion_tokens: Some(output),
            }))
        };
        assert_eq!(
            events,
            [
                usage(1),
                Some(ProviderEvent::Delta("Your name".into())),
                Some(ProviderEvent::Delta(" is Zoë 😀".into())),
                usage(6),
                Some(ProviderEvent::Finish("end_turn".into())),
            ]
        );
    }

    #[tokio::test]
    async fn an_error_event_ends_the_stream() {
        let recorded = [
            start(),
            delta("Par"),
            event(
                "error",
                json!({"type": "error",
                       "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
        ]
        .concat();
        let outcome = decode(&recorded).await;
        assert_eq!(text(&outcome), "Par");
        assert_eq!(error_code(&outcome), Some("upstream_error"));
        assert!(format!("{:?}", outcome.last()).contains("overloaded_error: Overloaded"));
    }

    #[tokio::test]
    async fn eof_before_message_stop_is_an_error() {
        let outcome = decode(&[start(), delta("Half")].concat()).await;
        assert_eq!(text(&outcome), "Half");
        assert_eq!(error_code(&outcome), Some("upstream_closed"));
    }

    #[test]
    fn builds_the_request() {
        let client = reqwest::Client::new();
        let mut request = conversation("claude-sonnet-4-0");
        // An earlier failed answer stored empty is left out: Anthropic rejects empty text.
        request.messages.insert(
            3,
            crate::providers::ChatMessage {
                role: Role::Assistant,
                content: "".into(),
            },
        );
        let (url, headers, body) = built(build_request(
            &client,
            &endpoints().anthropic,
            &settings(),
            &request,
        ));
        assert_eq!(url, "http://fake.test/v1/messages");
        assert_eq!(headers["x-api-key"], "sk-ant");
        assert_eq!(headers["anthropic-version"], "2023-06-01");
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-0",
                "max_tokens": 4096,
                "stream": true,
                "system": "You are terse.",
                "messages": [
                    {"role": "user", "content": "Hi, I'm Zoë"},
                    {"role": "assistant", "content": "Hello Zoë!"},
                    {"role": "user", "content": "What's my name?"},
                ],
            })
        );
    }

    /// The body as `serde_json` wrote it from these structs before it was written by hand.
    #[derive(Serialize)]
    struct RequestBody<'a> {
        model: &'a str,
        max_tokens: u32,
        stream: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        system: Option<String>,
        messages: Vec<Message<'a>>,
    }

    #[derive(Serialize)]
    struct Message<'a> {
        role: &'static str,
        content: &'a MessageText,
    }

    #[test]
    fn the_body_is_byte_for_byte_what_serde_json_writes() {
        let client = reqwest::Client::new();
        for request in awkward_with_and_without_system("claude-\"x\"") {
            let not_empty = |content: &str| !content.trim().is_empty();
            let system: Vec<&str> = request
                .messages
                .iter()
                .filter(|message| message.role == Role::System && not_empty(&message.content))
                .map(|message| message.content.as_str())
                .collect();
            let expected = serde_json::to_vec(&RequestBody {
                model: &request.model,
                max_tokens: request
                    .max_tokens
                    .unwrap_or(settings().anthropic_max_tokens),
                stream: true,
                system: (!system.is_empty()).then(|| system.join("\n\n")),
                messages: request
                    .messages
                    .iter()
                    .filter(|message| message.role != Role::System && not_empty(&message.content))
                    .map(|message| Message {
                        role: if message.role == Role::Assistant {
                            "assistant"
                        } else {
                            "user"
                        },
                        content: &message.content,
                    })
                    .collect(),
            })
            .unwrap();
            let built = build_request(&client, &endpoints().anthropic, &settings(), &request);
            assert_eq!(
                String::from_utf8(body_bytes(built)).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }
}
