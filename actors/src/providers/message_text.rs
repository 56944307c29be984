//! Message text as it goes upstream: the text and its JSON string form, escaped once. A
//! conversation's history is sent again with every turn, so escaping each message once, not once
//! per turn, keeps the turns of a long session as cheap as those of a short one.

use std::{fmt, ops::Deref, sync::Arc};

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// Immutable text with its JSON string literal; cheap to clone.
#[derive(Clone)]
pub struct MessageText {
    text: Arc<str>,
    /// `text` as a JSON string, quotes included (always present for real text; `None` only if
    /// serde_json ever refused a string, in which case it is escaped as it is written).
    json: Option<Arc<RawValue>>,
}

impl MessageText {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Appends the text as a JSON string literal (quotes included).
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        match &self.json {
            Some(json) => out.extend_from_slice(json.get().as_bytes()),
            // Writing into a Vec cannot fail, and a `&str` always serializes.
            None => {
                let _ = serde_json::to_writer(out, &*self.text);
            }
        }
    }

    /// The length of the JSON string literal, about (exact once escaped).
    pub(crate) fn json_len(&self) -> usize {
        self.json
            .as_ref()
            .map_or(self.text.len() + 2, |json| json.get().len())
    }
}

impl From<String> for MessageText {
    fn from(text: String) -> Self {
        let json = serde_json::to_string(&text)
            .ok()
            .and_then(|literal| RawValue::from_string(literal).ok())
            .map(Arc::from);
        MessageText {
            text: Arc::from(text),
            json,
        }
    }
}

impl From<&str> for MessageText {
    fn from(text: &str) -> Self {
        MessageText::from(text.to_owned())
    }
}

impl Deref for MessageText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl PartialEq for MessageText {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for MessageText {}

impl fmt::Debug for MessageText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl Serialize for MessageText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.json {
            Some(json) => json.serialize(serializer),
            None => serializer.serialize_str(&self.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_serializes_exactly_as_the_string_would() {
        for text in [
            "",
            "plain",
            "quote \" backslash \\ newline \n tab \t ctrl \u{1} é 😀",
        ] {
            let message = MessageText::from(text);
            assert_eq!(
                serde_json::to_string(&serde_json::json!({ "content": message.as_str() })).unwrap(),
                serde_json::to_string(&serde_json::json!({ "content": text })).unwrap()
            );
            #[derive(Serialize)]
            struct Body<'a> {
                content: &'a MessageText,
            }
            assert_eq!(
                serde_json::to_string(&Body { content: &message }).unwrap(),
                serde_json::to_string(&serde_json::json!({ "content": text })).unwrap()
            );
        }
    }
}
