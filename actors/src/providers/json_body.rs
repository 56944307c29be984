//! Request bodies written straight into bytes. The history is sent again with every turn and its
//! texts are already JSON-escaped ([`MessageText`]), so writing each message is a few copies
//! rather than a serializer's walk over maps and keys. The output is exactly what `serde_json`
//! makes of the same fields in the same order (compact, no spaces).

use super::{ChatMessage, ChatRequest, MessageText, Role};

/// A body being written.
pub(crate) struct JsonBody {
    bytes: Vec<u8>,
}

impl JsonBody {
    /// An empty body with room for `texts` and about as much again for their framing.
    pub(crate) fn with_texts<'a>(texts: impl Iterator<Item = &'a MessageText>) -> Self {
        let capacity = texts.map(|text| text.json_len() + 48).sum::<usize>() + 256;
        JsonBody {
            bytes: Vec::with_capacity(capacity),
        }
    }

    /// Raw JSON punctuation or keys, written as they are.
    pub(crate) fn raw(&mut self, json: &str) -> &mut Self {
        self.bytes.extend_from_slice(json.as_bytes());
        self
    }

    /// A string, escaped as `serde_json` escapes it.
    pub(crate) fn string(&mut self, text: &str) -> &mut Self {
        // Writing into a Vec cannot fail, and a `&str` always serializes.
        let _ = serde_json::to_writer(&mut self.bytes, text);
        self
    }

    /// A message text, from its escaped form.
    pub(crate) fn text(&mut self, text: &MessageText) -> &mut Self {
        text.write_json(&mut self.bytes);
        self
    }

    pub(crate) fn number(&mut self, number: u32) -> &mut Self {
        let _ = serde_json::to_writer(&mut self.bytes, &number);
        self
    }

    /// `turns`, comma-separated, each written as `open` for its role, its text, then `close`.
    pub(crate) fn turns<'a>(
        &mut self,
        turns: impl Iterator<Item = &'a ChatMessage>,
        open: impl Fn(Role) -> &'static str,
        close: &str,
    ) -> &mut Self {
        for (n, message) in turns.enumerate() {
            if n > 0 {
                self.raw(",");
            }
            self.raw(open(message.role))
                .text(&message.content)
                .raw(close);
        }
        self
    }

    /// `{"model":…,"messages":[…` with every message as `{"role":…,"content":…}`, the form the
    /// OpenAI and Ollama formats share; the caller closes the array and adds its own fields.
    pub(crate) fn model_and_messages(&mut self, request: &ChatRequest) -> &mut Self {
        self.raw("{\"model\":")
            .string(&request.model)
            .raw(",\"messages\":[")
            .turns(
                request.messages.iter(),
                |role| match role {
                    Role::System => "{\"role\":\"system\",\"content\":",
                    Role::User => "{\"role\":\"user\",\"content\":",
                    Role::Assistant => "{\"role\":\"assistant\",\"content\":",
                },
                "}",
            )
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// For the wire formats that take system prompts apart from the turns and refuse empty text
/// (Anthropic, Gemini; an earlier answer that failed before its first token is stored empty):
/// the system prompts that say something, and the turns that do.
pub(crate) fn system_apart(
    messages: &[ChatMessage],
) -> (Vec<&str>, impl Iterator<Item = &ChatMessage>) {
    let says_something = |message: &&ChatMessage| !message.content.trim().is_empty();
    let system = messages
        .iter()
        .filter(|message| message.role == Role::System)
        .filter(says_something)
        .map(|message| message.content.as_str())
        .collect();
    let turns = messages
        .iter()
        .filter(|message| message.role != Role::System)
        .filter(says_something);
    (system, turns)
}

/// Sets `body` as a JSON request body, as `RequestBuilder::json` would: `Content-Type` last.
pub(crate) fn attach(builder: reqwest::RequestBuilder, body: JsonBody) -> reqwest::RequestBuilder {
    builder
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.into_bytes())
}
