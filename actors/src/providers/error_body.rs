//! Turning a provider's error payload (an HTTP error body or an in-stream error event) into one
//! short human sentence, from the vendor's known JSON fields only.
//!
//! OpenAI and Anthropic send `{"error": {"type", "message"}}` (OpenAI adds `code`), Gemini
//! `{"error": {"status", "message"}}` (sometimes inside an array), Ollama `{"error": "…"}`.
//! Nothing else of a body is ever shown: error bodies from proxies and load balancers echo
//! request headers and name internal hosts. Messages are clipped and redacted, since they end up
//! in logs, in the database and in front of users.

use serde_json::Value;

use super::redact::redact;

/// Longest message kept from a provider, in characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// The known fields of a vendor's error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct VendorError {
    /// OpenAI/Anthropic `type`, Gemini `status` (`RESOURCE_EXHAUSTED`, …).
    pub(crate) kind: Option<String>,
    /// OpenAI's `code` (`insufficient_quota`, `rate_limit_exceeded`, …).
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
}

impl VendorError {
    /// The error object itself (what sits under `"error"`): a string (Ollama) or an object.
    pub(crate) fn from_error(error: &Value) -> Option<Self> {
        let field = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_owned);
        let parsed = match error {
            Value::String(message) => VendorError {
                message: Some(message.clone()),
                ..VendorError::default()
            },
            Value::Object(_) => VendorError {
                kind: field("type").or_else(|| field("status")),
                code: field("code"),
                message: field("message"),
            },
            _ => return None,
        };
        (parsed.kind.is_some() || parsed.message.is_some()).then_some(parsed)
    }

    /// A whole error body: JSON with an `"error"`, possibly as the first item of an array.
    pub(crate) fn from_body(body: &[u8]) -> Option<Self> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let value = match &value {
            Value::Array(items) => items.first()?,
            other => other,
        };
        Self::from_error(value.get("error")?)
    }

    /// `type: message` (either alone when the other is missing), clipped and redacted.
    pub(crate) fn summary(&self) -> Option<String> {
        let text = match (self.kind.as_deref(), self.message.as_deref()) {
            (Some(kind), Some(message)) if !message.contains(kind) => {
                format!("{kind}: {message}")
            }
            (_, Some(message)) => message.to_owned(),
            (Some(kind), None) => kind.to_owned(),
            (None, None) => return None,
        };
        let text = text.trim();
        (!text.is_empty()).then(|| clip(&redact(text)))
    }
}

/// The provider's sentence from an in-stream error object.
pub(crate) fn message_from_value(error: &Value) -> Option<String> {
    VendorError::from_error(error)?.summary()
}

/// The provider's sentence from an error body; `None` when the body has no known fields.
pub(crate) fn message_from_body(body: &[u8]) -> Option<String> {
    VendorError::from_body(body)?.summary()
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
        let openai = json!({"error": {"message": "Incorrect API key", "type": "invalid_request_error",
                                      "code": "invalid_api_key"}});
        assert_eq!(
            message_from_body(openai.to_string().as_bytes()).as_deref(),
            Some("invalid_request_error: Incorrect API key")
        );
        let gemini =
            json!([{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}]);
        assert_eq!(
            message_from_body(gemini.to_string().as_bytes()).as_deref(),
            Some("INVALID_ARGUMENT: bad")
        );
        let ollama = json!({"error": "model \"x\" not found"});
        assert_eq!(
            message_from_body(ollama.to_string().as_bytes()).as_deref(),
            Some("model \"x\" not found")
        );
        let in_stream = json!({"type": "overloaded_error", "message": "Overloaded"});
        assert_eq!(
            message_from_value(&in_stream).as_deref(),
            Some("overloaded_error: Overloaded")
        );
    }

    #[test]
    fn never_shows_a_raw_body_or_unknown_fields() {
        assert_eq!(
            message_from_body(b"<html>Bad Gateway at lb-7.internal</html>"),
            None
        );
        assert_eq!(message_from_body(b"  "), None);
        let proxy = json!({"message": "upstream lb-7.internal refused", "detail": "x"});
        assert_eq!(message_from_body(proxy.to_string().as_bytes()), None);
        let extra = json!({"error": {"type": "server_error", "message": "oops"},
                           "debug": {"host": "gpu-3.internal", "headers": "x-api-key: k"}});
        assert_eq!(
            message_from_body(extra.to_string().as_bytes()).as_deref(),
            Some("server_error: oops")
        );
    }

    #[test]
    fn redacts_credentials_in_the_message() {
        let leaky = json!({"error": {"type": "server_error",
            "message": "request with authorization: Bearer sk-secret-42 failed"}});
        let message = message_from_body(leaky.to_string().as_bytes()).unwrap_or_default();
        assert!(!message.contains("sk-secret-42"), "{message}");
        assert!(
            message.starts_with("server_error: request with authorization:"),
            "{message}"
        );
    }

    #[test]
    fn clips_on_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(clipped.ends_with('…'));
    }
}
