//! Ollama's native chat format: `POST {host}/api/chat`, answered with newline-delimited JSON.
//!
//! Each line carries a piece of `message.content`; the last one has `done: true`, its
//! `done_reason` and the token counts (`prompt_eval_count`, `eval_count`). Ollama reports some
//! failures as an `{"error": "…"}` line inside a 200 response.

use reqwest::header::HeaderValue;
use serde::Deserialize;

use super::{
    endpoints::Endpoint,
    error_body,
    json_body::{self, JsonBody},
    pipeline::{self, Events},
    ChatRequest, ProviderError, ProviderEvent, TokenUsage,
};

const PROVIDER: &str = "ollama";

/// The upstream request for `request`: `{"model", "messages": [{"role", "content"}…], "stream",
/// "options": {"num_predict"}}` (`options` only with a longest answer: `num_predict` is Ollama's
/// longest answer in tokens).
pub(crate) fn build_request(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    request: &ChatRequest,
) -> reqwest::RequestBuilder {
    let mut body = JsonBody::with_texts(request.messages.iter().map(|message| &message.content));
    body.model_and_messages(request);
    body.raw("],\"stream\":true");
    if let Some(num_predict) = request.max_tokens {
        body.raw(",\"options\":{\"num_predict\":")
            .number(num_predict)
            .raw("}");
    }
    body.raw("}");
    let builder = endpoint.post(client).header(
        reqwest::header::ACCEPT,
        HeaderValue::from_static("application/x-ndjson"),
    );
    json_body::attach(builder, body)
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    message: Option<LineMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u32>,
    #[serde(default)]
    eval_count: Option<u32>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct LineMessage {
    /// Thinking models put their reasoning in `thinking`, which is not part of the answer.
    #[serde(default)]
    content: Option<String>,
}

/// Decodes the lines of one answer.
#[derive(Default)]
pub(crate) struct Decoder {
    done: bool,
}

impl pipeline::Decoder for Decoder {
    const PROVIDER: &'static str = PROVIDER;

    fn on_frame(
        &mut self,
        _event: &str,
        line: &str,
        events: &mut Events,
    ) -> Result<(), ProviderError> {
        let line: Line = serde_json::from_str(line).map_err(|err| {
            pipeline::malformed::<Self>(format!(
                "unreadable line ({err}): {}",
                error_body::clip(line)
            ))
        })?;
        if let Some(error) = line.error.filter(|error| !error.is_null()) {
            return Err(ProviderError::Stream {
                provider: PROVIDER,
                code: "upstream_error",
                message: error_body::message_from_value(&error)
                    .unwrap_or_else(|| "the provider reported an error".to_owned()),
            });
        }
        let text = line.message.and_then(|message| message.content);
        events.extend(text.filter(|t| !t.is_empty()).map(ProviderEvent::Delta));
        if line.done {
            self.done = true;
            if line.prompt_eval_count.is_some() || line.eval_count.is_some() {
                events.push_back(ProviderEvent::Usage(TokenUsage {
                    prompt_tokens: line.prompt_eval_count,
                    completion_tokens: line.eval_count,
                }));
            }
            events.extend(line.done_reason.map(ProviderEvent::Finish));
        }
        Ok(())
    }

    fn on_end(&mut self, _events: &mut Events) -> Result<(), ProviderError> {
        Err(ProviderError::Stream {
            provider: PROVIDER,
            code: "upstream_closed",
            message: "the stream ended before its done line".to_owned(),
        })
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::pipeline::testing::{
        awkward_conversation, body_bytes, built, conversation, endpoints, error_code, every_split,
        role_and_content, text, RoleAndContent,
    };
    use serde::Serialize;
    use serde_json::json;

    fn line(content: &str) -> String {
        let line = json!({
            "model": "llama3.2", "created_at": "2025-01-10T11:03:18.123456Z",
            "message": {"role": "assistant", "content": content}, "done": false,
        });
        format!("{line}\n")
    }

    fn last() -> String {
        let line = json!({
            "model": "llama3.2", "created_at": "2025-01-10T11:03:18.523456Z",
            "message": {"role": "assistant", "content": ""}, "done_reason": "stop", "done": true,
            "total_duration": 4_883_583_458u64, "load_duration": 1_334_875,
            "prompt_eval_count": 26, "prompt_eval_duration": 342_546_000,
            "eval_count": 4, "eval_duration": 4_535_599_000u64,
        });
        format!("{line}\n")
    }

    async fn decode(recorded: &str) -> pipeline::testing::Outcome {
        every_split(recorded.as_bytes(), |body| {
            pipeline::ndjson(body, Decoder::default())
        })
        .await
    }

    #[tokio::test]
    async fn decodes_a_recorded_stream_split_anywhere() {
        // Blank and CRLF-terminated lines are tolerated; text never frames anything.
        let recorded = [
            line("Your name"),
            "\n".to_owned(),
            line(" is Zoë 😀").replace('\n', "\r\n"),
            line("\n{\"done\":true}\n"),
            last(),
        ]
        .concat();
        let events: Vec<_> = decode(&recorded)
            .await
            .into_iter()
            .map(|e| e.ok())
            .collect();
        let delta = |text: &str| Some(ProviderEvent::Delta(text.to_owned()));
        assert_eq!(
            events,
            [
                delta("Your name"),
                delta(" is Zoë 😀"),
                delta("\n{\"done\":true}\n"),
                Some(ProviderEvent::Usage(TokenUsage {
                    prompt_tokens: Some(26),
                    completion_tokens: Some(4),
                })),
                Some(ProviderEvent::Finish("stop".into())),
            ]
        );
    }

    #[tokio::test]
    async fn an_error_line_ends_the_stream() {
        let recorded = [
            line("Par"),
            "{\"error\":\"an error was encountered while running the model\"}\n".to_owned(),
        ]
        .concat();
        let outcome = decode(&recorded).await;
        assert_eq!(text(&outcome), "Par");
        assert_eq!(error_code(&outcome), Some("upstream_error"));
        assert!(format!("{:?}", outcome.last()).contains("while running the model"));
    }

    #[tokio::test]
    async fn eof_before_done_is_an_error() {
        let outcome = decode(&[line("Half"), line(" a")].concat()).await;
        assert_eq!(text(&outcome), "Half a");
        assert_eq!(error_code(&outcome), Some("upstream_closed"));
        // A last line without its newline still counts.
        let outcome = decode(&[line("Whole"), last().trim_end().to_owned()].concat()).await;
        assert!(matches!(outcome.last(), Some(Ok(ProviderEvent::Finish(_)))));
    }

    #[tokio::test]
    async fn invalid_utf8_is_malformed() {
        let mut recorded = line("ok").into_bytes();
        recorded.extend_from_slice(b"{\"message\":{\"content\":\"\xff\"}}\n");
        let outcome =
            every_split(&recorded, |body| pipeline::ndjson(body, Decoder::default())).await;
        assert_eq!(error_code(&outcome), Some("upstream_malformed"));
    }

    #[test]
    fn builds_the_request() {
        let client = reqwest::Client::new();
        let request = build_request(&client, &endpoints().ollama, &conversation("llama3.2:1b"));
        let (url, headers, body) = built(request);
        assert_eq!(url, "http://fake.test:11434/api/chat");
        assert!(headers.get("authorization").is_none());
        assert_eq!(
            body,
            json!({
                "model": "llama3.2:1b",
                "messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "Hi, I'm Zoë"},
                    {"role": "assistant", "content": "Hello Zoë!"},
                    {"role": "user", "content": "What's my name?"},
                ],
                "stream": true,
            })
        );
    }

    /// The body as `serde_json` wrote it from these structs before it was written by hand.
    #[derive(Serialize)]
    struct RequestBody<'a> {
        model: &'a str,
        messages: Vec<RoleAndContent<'a>>,
        stream: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        options: Option<Options>,
    }

    #[derive(Serialize)]
    struct Options {
        num_predict: u32,
    }

    #[test]
    fn the_body_is_byte_for_byte_what_serde_json_writes() {
        let client = reqwest::Client::new();
        for max_tokens in [Some(77), None] {
            let mut request = awkward_conversation("llama\"3\"");
            request.max_tokens = max_tokens;
            let expected = serde_json::to_vec(&RequestBody {
                model: &request.model,
                messages: role_and_content(&request),
                stream: true,
                options: request
                    .max_tokens
                    .map(|num_predict| Options { num_predict }),
            })
            .unwrap();
            let built = build_request(&client, &endpoints().ollama, &request);
            assert_eq!(
                String::from_utf8(body_bytes(built)).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }
}
