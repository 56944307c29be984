//! What each mock wire format sends: routes, streamed frames and error bodies, shaped like the
//! provider's own.

use serde_json::{json, Value};

use super::Wire;

/// How the body ends after its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Tail {
    /// Finish reason, usage and the format's terminator.
    Finish,
    /// The format's in-stream error.
    Error,
    /// Nothing more.
    Nothing,
    /// Gemini's safety block.
    Safety,
}

/// The model the request is for, when method and path are the provider's (`body_model`: the
/// body's top-level `model`, for the formats that name it there).
pub(super) fn route(
    wire: Wire,
    method: &str,
    path: &str,
    body_model: Option<String>,
) -> Option<String> {
    if method != "POST" {
        return None;
    }
    match wire {
        Wire::OpenAi if path == "/v1/chat/completions" => body_model,
        Wire::Anthropic if path == "/v1/messages" => body_model,
        Wire::Ollama if path == "/api/chat" => body_model,
        Wire::Gemini => path
            .strip_prefix("/v1beta/models/")?
            .strip_suffix(":streamGenerateContent?alt=sse")
            .map(str::to_owned),
        _ => None,
    }
}

/// The frames of a response: a head sent at once, then one frame per delta (paced by the token
/// delay) followed by the tail's frames.
pub(super) fn wire_frames(
    wire: Wire,
    model: &str,
    words: &[String],
    prompt_tokens: usize,
    tail: Tail,
) -> (Vec<String>, Vec<String>) {
    let output = words.len();
    let sse = |data: Value| format!("data: {data}\n\n");
    let named = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    match wire {
        Wire::OpenAi => {
            let chunk = |delta: Value, finish: Value| {
                sse(json!({
                    "id": "chatcmpl-fake", "object": "chat.completion.chunk",
                    "created": 1_730_000_000, "model": model, "system_fingerprint": "fp_fake",
                    "choices": [{"index": 0, "delta": delta, "logprobs": null,
                                 "finish_reason": finish}],
                    "usage": null,
                }))
            };
            let head = vec![chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )];
            let mut frames: Vec<String> = words
                .iter()
                .map(|word| chunk(json!({"content": word}), Value::Null))
                .collect();
            match tail {
                Tail::Finish | Tail::Safety => {
                    frames.push(chunk(json!({}), json!("stop")));
                    frames.push(openai_usage(model, prompt_tokens, output));
                    frames.push("data: [DONE]\n\n".to_owned());
                }
                Tail::Error => frames.push(sse(json!({"error": {
                    "message": "The server had an error while processing your request.",
                    "type": "server_error", "param": null, "code": null}}))),
                Tail::Nothing => {}
            }
            (head, frames)
        }
        Wire::Gemini => {
            // Gemini ends its frames with CRLF pairs and closes the connection when done.
            let frame = |candidate: Value, done: usize| {
                let data = json!({
                    "candidates": [candidate],
                    "usageMetadata": {"promptTokenCount": prompt_tokens,
                                      "candidatesTokenCount": done,
                                      "totalTokenCount": prompt_tokens + done},
                    "modelVersion": model, "responseId": "fake-response",
                });
                format!("data: {data}\r\n\r\n")
            };
            let text = |word: &str| json!({"parts": [{"text": word}], "role": "model"});
            let mut frames: Vec<String> = Vec::new();
            for (index, word) in words.iter().enumerate() {
                let mut candidate = json!({"content": text(word), "index": 0});
                if index + 1 == output && matches!(tail, Tail::Finish) {
                    candidate["finishReason"] = json!("STOP");
                }
                frames.push(frame(candidate, index + 1));
            }
            match tail {
                Tail::Finish if output == 0 => frames.push(frame(
                    json!({"content": text(""), "finishReason": "STOP", "index": 0}),
                    0,
                )),
                Tail::Safety => frames.push(frame(
                    json!({"finishReason": "SAFETY", "index": 0, "safetyRatings": [
                        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                         "probability": "HIGH", "blocked": true}]}),
                    0,
                )),
                Tail::Error => frames.push(format!(
                    "data: {}\r\n\r\n",
                    json!({"error": {"code": 500, "message": "An internal error has occurred.",
                                     "status": "INTERNAL"}})
                )),
                Tail::Finish | Tail::Nothing => {}
            }
            (Vec::new(), frames)
        }
        Wire::Anthropic => {
            let head = vec![
                anthropic_message_start(model, prompt_tokens),
                named(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
                ),
                named("ping", json!({"type": "ping"})),
            ];
            let mut frames: Vec<String> = words
                .iter()
                .map(|word| {
                    named(
                        "content_block_delta",
                        json!({"type": "content_block_delta",
                        "index": 0, "delta": {"type": "text_delta", "text": word}}),
                    )
                })
                .collect();
            match tail {
                Tail::Finish | Tail::Safety => {
                    frames.push(named(
                        "content_block_stop",
                        json!({"type": "content_block_stop", "index": 0}),
                    ));
                    frames.push(named(
                        "message_delta",
                        json!({"type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                        "usage": {"output_tokens": output}}),
                    ));
                    frames.push(named("message_stop", json!({"type": "message_stop"})));
                }
                Tail::Error => frames.push(named(
                    "error",
                    json!({"type": "error",
                    "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                )),
                Tail::Nothing => {}
            }
            (head, frames)
        }
        Wire::Ollama => {
            let line = |value: Value| format!("{value}\n");
            let mut frames: Vec<String> = words
                .iter()
                .map(|word| {
                    line(
                        json!({"model": model, "created_at": "2025-01-10T11:03:18.123456Z",
                        "message": {"role": "assistant", "content": word}, "done": false}),
                    )
                })
                .collect();
            match tail {
                Tail::Finish | Tail::Safety => {
                    frames.push(ollama_done(model, prompt_tokens, output));
                }
                Tail::Error => frames.push(line(json!({
                    "error": "an error was encountered while running the model"}))),
                Tail::Nothing => {}
            }
            (Vec::new(), frames)
        }
    }
}

/// The one frame of a response that names the prompt's token count, for the formats that have
/// exactly one (all but Gemini, whose every frame carries its running usage): the rest of the
/// response is then the same for every prompt and is encoded once.
#[derive(Debug)]
pub(super) enum PromptFrame {
    /// This frame of the head.
    Head(usize, String),
    /// This frame of the paced ones.
    Paced(usize, String),
}

/// Whether every frame of `wire`'s responses names the prompt's token count.
pub(super) fn prompt_in_every_frame(wire: Wire) -> bool {
    wire == Wire::Gemini
}

/// The frame of [`wire_frames`]' response that names `prompt_tokens`, if it has one (and where).
pub(super) fn prompt_frame(
    wire: Wire,
    model: &str,
    output: usize,
    prompt_tokens: usize,
    tail: Tail,
) -> Option<PromptFrame> {
    let finished = matches!(tail, Tail::Finish | Tail::Safety);
    match wire {
        // After the deltas and the finishing chunk.
        Wire::OpenAi if finished => Some(PromptFrame::Paced(
            output + 1,
            openai_usage(model, prompt_tokens, output),
        )),
        Wire::Anthropic => Some(PromptFrame::Head(
            0,
            anthropic_message_start(model, prompt_tokens),
        )),
        // After the deltas.
        Wire::Ollama if finished => Some(PromptFrame::Paced(
            output,
            ollama_done(model, prompt_tokens, output),
        )),
        _ => None,
    }
}

fn openai_usage(model: &str, prompt_tokens: usize, output: usize) -> String {
    let usage = json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk",
        "created": 1_730_000_000, "model": model, "choices": [],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": output,
                  "total_tokens": prompt_tokens + output},
    });
    format!("data: {usage}\n\n")
}

fn anthropic_message_start(model: &str, prompt_tokens: usize) -> String {
    let start = json!({"type": "message_start", "message": {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": prompt_tokens, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 1}}});
    format!("event: message_start\ndata: {start}\n\n")
}

fn ollama_done(model: &str, prompt_tokens: usize, output: usize) -> String {
    let done = json!({
        "model": model, "created_at": "2025-01-10T11:03:19.123456Z",
        "message": {"role": "assistant", "content": ""},
        "done_reason": "stop", "done": true, "total_duration": 4_883_583_458u64,
        "load_duration": 1_334_875, "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": 342_546_000, "eval_count": output,
        "eval_duration": 4_535_599_000u64});
    format!("{done}\n")
}

/// The provider's own JSON error body for `status`.
pub(super) fn error_body(wire: Wire, status: u16) -> Value {
    let message = format!("fake upstream error {status}");
    match wire {
        Wire::OpenAi => json!({"error": {"message": message, "type": "fake_error",
                                         "param": null, "code": status.to_string()}}),
        Wire::Gemini => json!({"error": {"code": status, "message": message,
                                         "status": "FAKE_STATUS"}}),
        Wire::Anthropic => json!({"type": "error",
                                  "error": {"type": "fake_error", "message": message}}),
        Wire::Ollama => json!({"error": message}),
    }
}

/// The internal host name a leaky error body names (outside the vendor's known fields).
pub const INTERNAL_HOST: &str = "gpu-node-7.inference.corp.internal";

/// An error body shaped like the provider's, as a careless proxy in front of it might send:
/// the message echoes the credential header (and the bare key), extra fields name an internal
/// host and repeat the header.
pub(super) fn leaky_error_body(wire: Wire, status: u16, header: &str, value: &str) -> Value {
    let bare = value.strip_prefix("Bearer ").unwrap_or(value);
    let message =
        format!("upstream failed while handling a request with {header}: {value} (key {bare})");
    let debug = json!({"upstream_host": INTERNAL_HOST, "request_headers": format!("{header}: {value}"),
                       "trace": format!("at {INTERNAL_HOST}:8443/v1/infer")});
    match wire {
        Wire::OpenAi => json!({"error": {"message": message, "type": "server_error",
                                         "param": null, "code": null}, "debug": debug}),
        Wire::Gemini => json!({"error": {"code": status, "message": message,
                                         "status": "INTERNAL"}, "debug": debug}),
        Wire::Anthropic => json!({"type": "error", "error": {"type": "api_error",
                                  "message": message}, "debug": debug}),
        Wire::Ollama => json!({"error": message, "debug": debug}),
    }
}

/// The provider's own "out of quota / credit" error: status and body.
pub(super) fn quota_error(wire: Wire) -> (u16, Value) {
    match wire {
        Wire::OpenAi => (
            429,
            json!({"error": {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
        ),
        Wire::Anthropic => (
            400,
            json!({"type": "error", "error": {
            "type": "invalid_request_error",
            "message": "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}),
        ),
        Wire::Gemini => (
            429,
            json!({"error": {"code": 429,
            "message": "Your prepayment credits are depleted. Please go to AI Studio at https://ai.studio/projects to manage your project and billing.",
            "status": "RESOURCE_EXHAUSTED"}}),
        ),
        // Ollama runs locally and has no quota: the nearest thing is a plain 429.
        Wire::Ollama => (429, json!({"error": "too many requests"})),
    }
}

/// The provider's own plain rate-limit error (a 429 worth retrying).
pub(super) fn rate_limit_error(wire: Wire) -> Value {
    match wire {
        Wire::OpenAi => json!({"error": {
            "message": "Rate limit reached for gpt-4o-mini in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1.",
            "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
        Wire::Anthropic => json!({"type": "error", "error": {"type": "rate_limit_error",
            "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
        // Google words per-minute limits like billing trouble; it must still be retried.
        Wire::Gemini => json!({"error": {"code": 429,
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "status": "RESOURCE_EXHAUSTED"}}),
        Wire::Ollama => json!({"error": "too many requests"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_encoded_for_another_prompt_differs_only_in_its_prompt_frame() {
        let words: Vec<String> = ["The", " quick", " fox"].map(str::to_owned).into();
        for wire in [Wire::OpenAi, Wire::Gemini, Wire::Anthropic, Wire::Ollama] {
            for tail in [Tail::Finish, Tail::Error, Tail::Nothing, Tail::Safety] {
                for sent in [0, words.len()] {
                    let words = &words[..sent];
                    let expected = wire_frames(wire, "m", words, 42, tail);
                    let other = if prompt_in_every_frame(wire) { 42 } else { 7 };
                    let (mut head, mut frames) = wire_frames(wire, "m", words, other, tail);
                    match prompt_frame(wire, "m", sent, 42, tail) {
                        Some(PromptFrame::Head(index, frame)) => head[index] = frame,
                        Some(PromptFrame::Paced(index, frame)) => frames[index] = frame,
                        None => {}
                    }
                    assert_eq!((head, frames), expected, "{wire:?} {tail:?} {sent}");
                }
            }
        }
    }
}
