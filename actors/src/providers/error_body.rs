//! Turning a provider's error payload (an HTTP error body or an in-stream error event) into one
//! short human sentence.
//!
//! Every vendor nests it differently: OpenAI and Anthropic `{"error": {"message", "type"}}`,
//! Gemini `{"error": {"message", "status"}}` (sometimes inside an array), Ollama `{"error": "…"}`,
//! proxies `{"message"}` or `{"detail"}`. Messages are clipped: they end up in logs, in the
//! database and in front of users.

use serde_json::Value;

/// Longest message kept from a provider, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// The provider's message from a JSON payload, with its error type when it gave one.
pub(crate) fn message_from_value(value: &Value) -> Option<String> {
    let value = match value {
        Value::Array(items) => items.first()?,
        other => other,
    };
    let error = value.get("error").unwrap_or(value);
    if let Value::String(message) = error {
        return Some(clip(message));
    }
    let message = ["message", "detail", "error_description"]
        .iter()
        .find_map(|key| error.get(*key).and_then(Value::as_str))?;
    let kind = ["type", "status", "code"]
        .iter()
        .find_map(|key| error.get(*key).and_then(Value::as_str));
    Some(match kind {
        Some(kind) if !message.contains(kind) => clip(&format!("{message} ({kind})")),
        _ => clip(message),
    })
}

/// The provider's message from an error body; the clipped text itself when it is not JSON.
pub(crate) fn message_from_body(body: &[u8]) -> Option<String> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(message) = message_from_value(&value) {
            return Some(message);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    (!text.is_empty()).then(|| clip(text))
}

/// Cuts `text` to [`MAX_MESSAGE_CHARS`] characters (never inside a UTF-8 character).
pub(crate) fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_each_vendors_message() {
        let openai =
            json!({"error": {"message": "Incorrect API key", "type": "invalid_request_error"}});
        assert_eq!(
            message_from_value(&openai).as_deref(),
            Some("Incorrect API key (invalid_request_error)")
        );
        let gemini =
            json!([{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}]);
        assert_eq!(
            message_from_value(&gemini).as_deref(),
            Some("bad (INVALID_ARGUMENT)")
        );
        let ollama = json!({"error": "model \"x\" not found"});
        assert_eq!(
            message_from_value(&ollama).as_deref(),
            Some("model \"x\" not found")
        );
        assert_eq!(
            message_from_body(b"<html>Bad Gateway</html>").as_deref(),
            Some("<html>Bad Gateway</html>")
        );
        assert_eq!(message_from_body(b"  "), None);
    }

    #[test]
    fn clips_on_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(clipped.ends_with('…'));
    }
}
