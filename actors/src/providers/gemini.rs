//! Google Gemini's `streamGenerateContent` format (the Generative Language API).
//!
//! `POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse` with the key in
//! `x-goog-api-key`. Each SSE frame (terminated by `\r\n\r\n`) is a full `GenerateContentResponse`:
//! text in `candidates[0].content.parts[].text`, a running-total `usageMetadata`, and a
//! `finishReason` on the last one. There is no `[DONE]`: the server closes the connection, so a
//! close before any `finishReason` is the only sign of a broken stream.

use reqwest::header::HeaderValue;
use serde::Deserialize;
use serde_json::Value;

use super::{
    error_body,
    json_body::{self, JsonBody},
    pipeline::{self, Events},
    settings::base,
    ChatRequest, ProviderError, ProviderEvent, ProviderSettings, Role, TokenUsage,
};

const PROVIDER: &str = "gemini";

/// Finish reasons meaning the answer was withheld, not completed.
const BLOCKED: [&str; 6] = [
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
];

/// The upstream request for `request`: `{"contents": [{"role", "parts": [{"text"}]}…],
/// "systemInstruction": {"parts": [{"text"}]}, "generationConfig": {"maxOutputTokens"}}` (the last
/// two only when there is something to say).
pub(crate) fn build_request(
    client: &reqwest::Client,
    settings: &ProviderSettings,
    request: &ChatRequest,
) -> reqwest::RequestBuilder {
    // Gemini takes system prompts apart from the turns, and rejects turns with empty text.
    let (system, turns) = json_body::system_apart(&request.messages);
    let mut body = JsonBody::with_texts(request.messages.iter().map(|message| &message.content));
    body.raw("{\"contents\":[");
    body.turns(
        turns,
        |role| match role {
            Role::Assistant => "{\"role\":\"model\",\"parts\":[{\"text\":",
            _ => "{\"role\":\"user\",\"parts\":[{\"text\":",
        },
        "}]}",
    );
    body.raw("]");
    if !system.is_empty() {
        body.raw(",\"systemInstruction\":{\"parts\":[{\"text\":")
            .string(&system.join("\n\n"))
            .raw("}]}");
    }
    if let Some(max_output_tokens) = request.max_tokens {
        body.raw(",\"generationConfig\":{\"maxOutputTokens\":")
            .number(max_output_tokens)
            .raw("}");
    }
    body.raw("}");
    // The model comes from the client: encoded, it can only ever name a model, not a path.
    let model = request
        .model
        .strip_prefix("models/")
        .unwrap_or(&request.model);
    let url = format!(
        "{}/v1beta/models/{}:streamGenerateContent?alt=sse",
        base(&settings.gemini_base_url),
        encode_segment(model)
    );
    let key = settings.gemini_api_key.as_deref().unwrap_or_default();
    let builder = client.post(url).header("x-goog-api-key", key).header(
        reqwest::header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    json_body::attach(builder, body)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Frame {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<CandidatePart>,
}

#[derive(Deserialize)]
struct CandidatePart {
    #[serde(default)]
    text: Option<String>,
    /// Thinking models' thought summaries are not part of the answer.
    #[serde(default)]
    thought: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: Option<u32>,
    #[serde(default)]
    candidates_token_count: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

/// Decodes the frames of one answer.
#[derive(Default)]
pub(crate) struct Decoder {
    produced_text: bool,
    /// Held back until the connection closes: usage may still follow the finishing frame.
    finish_reason: Option<String>,
    last_usage: Option<TokenUsage>,
}

impl pipeline::Decoder for Decoder {
    const PROVIDER: &'static str = PROVIDER;

    fn on_frame(
        &mut self,
        _event: &str,
        data: &str,
        events: &mut Events,
    ) -> Result<(), ProviderError> {
        if data.trim().is_empty() {
            return Ok(());
        }
        let frame: Frame = serde_json::from_str(data).map_err(|err| {
            pipeline::malformed::<Self>(format!(
                "unreadable frame ({err}): {}",
                error_body::clip(data)
            ))
        })?;
        if let Some(error) = frame.error.filter(|error| !error.is_null()) {
            return Err(ProviderError::Stream {
                provider: PROVIDER,
                code: "upstream_error",
                message: error_body::message_from_value(&error)
                    .unwrap_or_else(|| "the provider reported an error".to_owned()),
            });
        }
        if let Some(reason) = frame
            .prompt_feedback
            .and_then(|feedback| feedback.block_reason)
        {
            return Err(filtered(format!("the prompt was blocked ({reason})")));
        }
        if let Some(candidate) = frame.candidates.into_iter().find(|c| c.index == 0) {
            let parts = candidate.content.map(|content| content.parts);
            for part in parts.into_iter().flatten().filter(|part| !part.thought) {
                if let Some(text) = part.text.filter(|text| !text.is_empty()) {
                    self.produced_text = true;
                    events.push_back(ProviderEvent::Delta(text));
                }
            }
            if let Some(reason) = candidate.finish_reason {
                if BLOCKED.contains(&reason.as_str()) && !self.produced_text {
                    return Err(filtered(format!("the answer was blocked ({reason})")));
                }
                self.finish_reason = Some(reason.to_ascii_lowercase());
            }
        }
        if let Some(usage) = frame.usage_metadata {
            let usage = TokenUsage {
                prompt_tokens: usage.prompt_token_count,
                completion_tokens: usage.candidates_token_count,
            };
            // A running total repeated on every frame: report it only when it changed.
            if self.last_usage != Some(usage) {
                self.last_usage = Some(usage);
                events.push_back(ProviderEvent::Usage(usage));
            }
        }
        Ok(())
    }

    fn on_end(&mut self, events: &mut Events) -> Result<(), ProviderError> {
        match self.finish_reason.take() {
            Some(reason) => {
                events.push_back(ProviderEvent::Finish(reason));
                Ok(())
            }
            None => Err(ProviderError::Stream {
                provider: PROVIDER,
                code: "upstream_closed",
                message: "abrupt close: the stream ended before a finishReason".to_owned(),
            }),
        }
    }

    fn is_done(&self) -> bool {
        false
    }
}

fn filtered(message: String) -> ProviderError {
    ProviderError::Stream {
        provider: PROVIDER,
        code: "content_filtered",
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::pipeline::testing::{
        awkward_with_and_without_system, body_bytes, built, conversation, error_code, every_split,
        settings, text,
    };
    use crate::providers::MessageText;
    use serde::Serialize;
    use serde_json::json;

    fn frame(text: Option<&str>, finish: Option<&str>, output_tokens: Option<u32>) -> String {
        let mut candidate = json!({"index": 0});
        if let Some(text) = text {
            candidate["content"] = json!({"parts": [{"text": text}], "role": "model"});
        }
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
            candidate["safetyRatings"] = json!([
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}
            ]);
        }
        let mut usage = json!({"promptTokenCount": 18, "totalTokenCount": 18});
        if let Some(output) = output_tokens {
            usage["candidatesTokenCount"] = json!(output);
            usage["totalTokenCount"] = json!(18 + output);
        }
        let frame = json!({
            "candidates": [candidate], "usageMetadata": usage,
            "modelVersion": "gemini-2.0-flash", "responseId": "fJrGaOuV",
        });
        format!("data: {frame}\r\n\r\n")
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
            frame(Some("Your name"), None, None),
            frame(Some(" is Zoë 😀"), None, Some(3)),
            frame(Some("."), Some("STOP"), Some(6)),
        ]
        .concat();
        let events: Vec<_> = decode(&recorded)
            .await
            .into_iter()
            .map(|e| e.ok())
            .collect();
        let delta = |text: &str| Some(ProviderEvent::Delta(text.to_owned()));
        let usage = |output| {
            Some(ProviderEvent::Usage(TokenUsage {
                prompt_tokens: Some(18),
                completion_tokens: output,
            }))
        };
        assert_eq!(
            events,
            [
                delta("Your name"),
                usage(None),
                delta(" is Zoë 😀"),
                usage(Some(3)),
                delta("."),
                usage(Some(6)),
                Some(ProviderEvent::Finish("stop".into())),
            ]
        );
    }

    #[tokio::test]
    async fn a_close_before_finish_is_abrupt() {
        let outcome = decode(&frame(Some("Your"), None, None)).await;
        assert_eq!(text(&outcome), "Your");
        assert_eq!(error_code(&outcome), Some("upstream_closed"));
    }

    #[tokio::test]
    async fn an_error_frame_ends_the_stream() {
        let recorded = [
            frame(Some("Your"), None, None),
            "data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n".to_owned(),
        ]
        .concat();
        let outcome = decode(&recorded).await;
        assert_eq!(error_code(&outcome), Some("upstream_error"));
        assert!(format!("{:?}", outcome.last()).contains("overloaded"));
    }

    #[tokio::test]
    async fn a_safety_block_without_text_is_an_error() {
        let outcome = decode(&frame(None, Some("SAFETY"), None)).await;
        assert_eq!(outcome.len(), 1);
        assert_eq!(error_code(&outcome), Some("content_filtered"));

        let blocked_prompt = "data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}\r\n\r\n";
        assert_eq!(
            error_code(&decode(blocked_prompt).await),
            Some("content_filtered")
        );

        // Once text was shown, a late block is just how the answer finished.
        let late = [
            frame(Some("Partial"), None, None),
            frame(None, Some("SAFETY"), None),
        ]
        .concat();
        let outcome = decode(&late).await;
        assert_eq!(text(&outcome), "Partial");
        assert!(matches!(outcome.last(), Some(Ok(ProviderEvent::Finish(r))) if r == "safety"));
    }

    #[test]
    fn builds_the_request() {
        let client = reqwest::Client::new();
        let request = build_request(&client, &settings(), &conversation("gemini-2.5-pro"));
        let (url, headers, body) = built(request);
        assert_eq!(
            url,
            "http://fake.test/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
        assert_eq!(headers["x-goog-api-key"], "gm-key");
        assert!(headers.get("authorization").is_none());
        assert_eq!(
            body,
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "Hi, I'm Zoë"}]},
                    {"role": "model", "parts": [{"text": "Hello Zoë!"}]},
                    {"role": "user", "parts": [{"text": "What's my name?"}]},
                ],
                "systemInstruction": {"parts": [{"text": "You are terse."}]},
            })
        );
    }

    #[test]
    fn the_model_cannot_change_the_path() {
        let client = reqwest::Client::new();
        let request = build_request(&client, &settings(), &conversation("../x?key=1#"));
        let (url, _, _) = built(request);
        assert_eq!(
            url,
            "http://fake.test/v1beta/models/..%2Fx%3Fkey%3D1%23:streamGenerateContent?alt=sse"
        );
    }

    /// The body as `serde_json` wrote it from these structs before it was written by hand.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct RequestBody<'a> {
        contents: Vec<Content<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        system_instruction: Option<SystemInstruction>,
        #[serde(skip_serializing_if = "Option::is_none")]
        generation_config: Option<GenerationConfig>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct GenerationConfig {
        max_output_tokens: u32,
    }

    #[derive(Serialize)]
    struct Content<'a> {
        role: &'static str,
        parts: [Part<'a>; 1],
    }

    #[derive(Serialize)]
    struct Part<'a> {
        text: &'a MessageText,
    }

    #[derive(Serialize)]
    struct SystemInstruction {
        parts: [OwnedPart; 1],
    }

    #[derive(Serialize)]
    struct OwnedPart {
        text: String,
    }

    #[test]
    fn the_body_is_byte_for_byte_what_serde_json_writes() {
        let client = reqwest::Client::new();
        for request in awkward_with_and_without_system("gemini-2.5-pro") {
            let keep = |message: &&crate::providers::ChatMessage, system: bool| {
                (message.role == Role::System) == system && !message.content.trim().is_empty()
            };
            let system: Vec<&str> = request
                .messages
                .iter()
                .filter(|message| keep(message, true))
                .map(|message| message.content.as_str())
                .collect();
            let expected = serde_json::to_vec(&RequestBody {
                contents: request
                    .messages
                    .iter()
                    .filter(|message| keep(message, false))
                    .map(|message| Content {
                        role: if message.role == Role::Assistant {
                            "model"
                        } else {
                            "user"
                        },
                        parts: [Part {
                            text: &message.content,
                        }],
                    })
                    .collect(),
                system_instruction: (!system.is_empty()).then(|| SystemInstruction {
                    parts: [OwnedPart {
                        text: system.join("\n\n"),
                    }],
                }),
                generation_config: request
                    .max_tokens
                    .map(|max_output_tokens| GenerationConfig { max_output_tokens }),
            })
            .unwrap();
            let built = build_request(&client, &settings(), &request);
            assert_eq!(
                String::from_utf8(body_bytes(built)).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }
}
