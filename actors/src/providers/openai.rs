//! OpenAI's Chat Completions streaming format, also spoken by every "OpenAI-compatible" server
//! (vLLM, LiteLLM, llama.cpp, LM Studio, …) reached through `OPENAI_BASE_URL`.
//!
//! `POST {base}/chat/completions` with `stream: true`; SSE `data:` chunks carry
//! `choices[0].delta.content`, then a chunk with `finish_reason`, a usage chunk with
//! `choices: []` (asked for with `stream_options.include_usage`), and `data: [DONE]`.

use std::fmt;

use reqwest::header::HeaderValue;
use serde::{
    de::{SeqAccess, Visitor},
    Deserialize, Deserializer,
};
use serde_json::{value::RawValue, Value};

use super::{
    endpoints::Endpoint,
    error_body,
    json_body::{self, JsonBody},
    pipeline::{self, Events},
    ChatRequest, ProviderError, ProviderEvent, ProviderSettings, TokenUsage,
};

const PROVIDER: &str = "openai";

/// The upstream request for `request`: `{"model", "messages": [{"role", "content"}…], "stream",
/// "stream_options": {"include_usage"}, "max_tokens"}` (`max_tokens` only when set; it is the name
/// every OpenAI-compatible server takes, OpenAI's own newer `max_completion_tokens` is unknown to
/// most of them).
pub(crate) fn build_request(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    settings: &ProviderSettings,
    request: &ChatRequest,
) -> reqwest::RequestBuilder {
    let mut body = JsonBody::with_texts(request.messages.iter().map(|message| &message.content));
    body.model_and_messages(request);
    body.raw("],\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    if let Some(max_tokens) = request.max_tokens {
        body.raw(",\"max_tokens\":").number(max_tokens);
    }
    body.raw("}");
    let key = settings.openai_api_key.as_deref().unwrap_or_default();
    let builder = endpoint.post(client).bearer_auth(key).header(
        reqwest::header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    json_body::attach(builder, body)
}

/// What a chunk says that we read; every other field is skipped without being kept.
#[derive(Deserialize)]
struct Chunk<'a> {
    /// The choice with index 0, the only one asked for (the others are checked and dropped).
    #[serde(default, rename = "choices", deserialize_with = "first_choice")]
    choice: Option<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
    /// Left as JSON text: read only in the rare chunk that carries one.
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Default, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    /// A refusal streams here instead of `content`; it is the answer the user gets.
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
}

/// `choices`: the first choice with index 0, without collecting them all.
fn first_choice<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Choice>, D::Error> {
    struct FirstChoice;

    impl<'de> Visitor<'de> for FirstChoice {
        type Value = Option<Choice>;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a sequence")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut first = None;
            while let Some(choice) = seq.next_element::<Choice>()? {
                if first.is_none() && choice.index == 0 {
                    first = Some(choice);
                }
            }
            Ok(first)
        }
    }

    deserializer.deserialize_seq(FirstChoice)
}

/// Decodes the chunks of one completion.
#[derive(Default)]
pub(crate) struct Decoder {
    /// Held back until `[DONE]` so that `Finish` comes after the usage chunk.
    finish_reason: Option<String>,
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
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            events.extend(self.finish_reason.take().map(ProviderEvent::Finish));
            return Ok(());
        }
        if event == "error" {
            // Some compatible servers name their error events; the data may not even be JSON.
            let message = error_body::message_from_body(data.as_bytes());
            return Err(upstream_error(message));
        }
        if data.is_empty() {
            return Ok(());
        }
        let unreadable = |err: serde_json::Error| {
            pipeline::malformed::<Self>(format!(
                "unreadable chunk ({err}): {}",
                error_body::clip(data)
            ))
        };
        let chunk: Chunk = serde_json::from_str(data).map_err(unreadable)?;
        if let Some(error) = chunk.error {
            let error: Value = serde_json::from_str(error.get()).map_err(unreadable)?;
            return Err(upstream_error(error_body::message_from_value(&error)));
        }
        if let Some(choice) = chunk.choice {
            let delta = choice.delta.unwrap_or_default();
            for text in [delta.content, delta.refusal].into_iter().flatten() {
                if !text.is_empty() {
                    events.push_back(ProviderEvent::Delta(text));
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
            }
        }
        if let Some(usage) = chunk.usage {
            events.push_back(ProviderEvent::Usage(TokenUsage {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            }));
        }
        Ok(())
    }

    fn on_end(&mut self, _events: &mut Events) -> Result<(), ProviderError> {
        Err(ProviderError::Stream {
            provider: PROVIDER,
            code: "upstream_closed",
            message: "the stream ended before [DONE]".to_owned(),
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
        awkward_conversation, body_bytes, built, conversation, endpoints, error_code, every_split,
        role_and_content, settings, text, RoleAndContent,
    };
    use serde::Serialize;
    use serde_json::json;

    fn chunk(delta: Value, finish: Value) -> String {
        let chunk = json!({
            "id": "chatcmpl-AZ9", "object": "chat.completion.chunk", "created": 1_730_000_000,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0ba0d124f1",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            "usage": null,
        });
        format!("data: {chunk}\n\n")
    }

    fn recorded() -> String {
        let usage = json!({
            "id": "chatcmpl-AZ9", "object": "chat.completion.chunk", "created": 1_730_000_000,
            "model": "gpt-4o-mini-2024-07-18", "choices": [],
            "usage": {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25,
                      "prompt_tokens_details": {"cached_tokens": 0}},
        });
        [
            ": OPENROUTER PROCESSING\n\n".to_owned(),
            chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                Value::Null,
            ),
            chunk(json!({"content": "Your name"}), Value::Null),
            chunk(json!({"content": " is Zoë 😀"}), Value::Null),
            // Text that looks like SSE framing is still just text.
            chunk(json!({"content": "\n\ndata: [DONE]\n\n"}), Value::Null),
            chunk(json!({}), json!("stop")),
            format!("data: {usage}\n\n"),
            "data: [DONE]\n\n".to_owned(),
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
        let outcome = decode(&recorded()).await;
        let events: Vec<_> = outcome.into_iter().map(|event| event.ok()).collect();
        let delta = |text: &str| Some(ProviderEvent::Delta(text.to_owned()));
        assert_eq!(
            events,
            [
                delta("Your name"),
                delta(" is Zoë 😀"),
                delta("\n\ndata: [DONE]\n\n"),
                Some(ProviderEvent::Usage(TokenUsage {
                    prompt_tokens: Some(21),
                    completion_tokens: Some(4),
                })),
                Some(ProviderEvent::Finish("stop".into())),
            ]
        );
    }

    #[tokio::test]
    async fn an_error_chunk_ends_the_stream() {
        let recorded = [
            chunk(json!({"content": "Par"}), Value::Null),
            "data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n"
                .to_owned(),
            chunk(json!({"content": "never"}), Value::Null),
        ]
        .concat();
        let outcome = decode(&recorded).await;
        assert_eq!(text(&outcome), "Par");
        assert_eq!(error_code(&outcome), Some("upstream_error"));
        assert!(matches!(&outcome[1], Err(err) if err.to_string().contains("server had an error")));
    }

    #[tokio::test]
    async fn eof_without_done_is_an_abrupt_close() {
        let recorded = [
            chunk(json!({"content": "Half"}), Value::Null),
            chunk(json!({}), json!("stop")),
        ]
        .concat();
        let outcome = decode(&recorded).await;
        assert_eq!(text(&outcome), "Half");
        assert_eq!(error_code(&outcome), Some("upstream_closed"));
    }

    #[tokio::test]
    async fn only_the_first_choice_is_the_answer() {
        let recorded = "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other\"}},\
                        {\"index\":0,\"delta\":{\"content\":\"mine\"},\"finish_reason\":null},\
                        {\"index\":0,\"delta\":{\"content\":\"again\"}}]}\n\n\
                        data: [DONE]\n\n";
        let outcome = decode(recorded).await;
        assert_eq!(text(&outcome), "mine");
        assert_eq!(outcome.len(), 1);
        let null_choices = "data: {\"choices\":null}\n\ndata: [DONE]\n\n";
        assert_eq!(
            error_code(&decode(null_choices).await),
            Some("upstream_malformed")
        );
    }

    #[tokio::test]
    async fn garbage_is_malformed() {
        let outcome = decode("data: {not json\n\n").await;
        assert_eq!(error_code(&outcome), Some("upstream_malformed"));
    }

    #[tokio::test]
    async fn invalid_utf8_is_malformed() {
        let mut recorded = chunk(json!({"content": "ok"}), Value::Null).into_bytes();
        recorded.extend_from_slice(b"data: {\"choices\":[{\"delta\":{\"content\":\"\xff\"}}]}\n\n");
        recorded.extend_from_slice(b"data: [DONE]\n\n");
        let outcome = every_split(&recorded, |body| pipeline::sse(body, Decoder::default())).await;
        assert_eq!(error_code(&outcome), Some("upstream_malformed"));
    }

    #[test]
    fn builds_the_request() {
        let client = reqwest::Client::new();
        let request = build_request(
            &client,
            &endpoints().openai,
            &settings(),
            &conversation("gpt-4o"),
        );
        let (url, headers, body) = built(request);
        assert_eq!(url, "http://fake.test/v1/chat/completions");
        assert_eq!(headers["authorization"], "Bearer sk-openai");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "Hi, I'm Zoë"},
                    {"role": "assistant", "content": "Hello Zoë!"},
                    {"role": "user", "content": "What's my name?"},
                ],
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
    }

    /// The body as `serde_json` wrote it from these structs before it was written by hand.
    #[derive(Serialize)]
    struct RequestBody<'a> {
        model: &'a str,
        messages: Vec<RoleAndContent<'a>>,
        stream: bool,
        stream_options: StreamOptions,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_tokens: Option<u32>,
    }

    #[derive(Serialize)]
    struct StreamOptions {
        include_usage: bool,
    }

    #[test]
    fn the_body_is_byte_for_byte_what_serde_json_writes() {
        let client = reqwest::Client::new();
        for max_tokens in [Some(77), None] {
            let mut request = awkward_conversation("gpt-\"4o\"");
            request.max_tokens = max_tokens;
            let expected = serde_json::to_vec(&RequestBody {
                model: &request.model,
                messages: role_and_content(&request),
                stream: true,
                stream_options: StreamOptions {
                    include_usage: true,
                },
                max_tokens: request.max_tokens,
            })
            .unwrap();
            let built = build_request(&client, &endpoints().openai, &settings(), &request);
            assert_eq!(
                String::from_utf8(body_bytes(built)).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }
}
