//! What the mock reads from a request body: the model and the "prompt tokens" (whitespace-
//! separated words in the texts), walked straight off the bytes. No tree of the body is built
//! (that costs more than everything else the mock does for a turn with a long history); the
//! body is still checked to be JSON exactly as `serde_json::Value` would check it (numbers are
//! parsed, not skipped), and a body that is not JSON reads as no model and no words.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The fields of a request body the mock answers by.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct RequestSummary {
    /// The top-level `model`, when it is a string.
    pub(super) model: Option<String>,
    /// Words in every string, except under the keys `model`, `role` and `stream`.
    pub(super) prompt_tokens: usize,
}

impl RequestSummary {
    pub(super) fn read(body: &[u8]) -> RequestSummary {
        let mut summary = RequestSummary::default();
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let walked = Walk {
            counting: true,
            top: true,
            summary: &mut summary,
        }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
        match walked {
            Ok(()) => summary,
            Err(_) => RequestSummary::default(),
        }
    }
}

/// One value of the body.
struct Walk<'s> {
    /// Whether its words count.
    counting: bool,
    /// Whether it is the body itself (whose `model` is the model).
    top: bool,
    summary: &'s mut RequestSummary,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, text: &str) -> Result<(), E> {
        if self.counting {
            self.summary.prompt_tokens += text.split_whitespace().count();
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Walk {
                counting: self.counting,
                top: false,
                summary: &mut *self.summary,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if self.top && key == Key::Model {
                // Like a JSON object, a repeated key means its last value.
                self.summary.model = map.next_value_seed(ModelSeed)?;
                continue;
            }
            map.next_value_seed(Walk {
                counting: self.counting && key == Key::Other,
                top: false,
                summary: &mut *self.summary,
            })?;
        }
        Ok(())
    }
}

/// A key, as far as counting cares.
#[derive(PartialEq, Eq)]
enum Key {
    Model,
    /// `role` or `stream`: not prompt text either.
    NotText,
    Other,
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "model" => Key::Model,
            "role" | "stream" => Key::NotText,
            _ => Key::Other,
        })
    }
}

/// The top-level `model`: its text when it is a string (any other value is still checked).
struct ModelSeed;

impl<'de> DeserializeSeed<'de> for ModelSeed {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ModelSeed {
    type Value = Option<String>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_str<E>(self, model: &str) -> Result<Self::Value, E> {
        Ok(Some(model.to_owned()))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let mut ignored = RequestSummary::default();
        Walk {
            counting: false,
            top: false,
            summary: &mut ignored,
        }
        .visit_seq(seq)?;
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let mut ignored = RequestSummary::default();
        Walk {
            counting: false,
            top: false,
            summary: &mut ignored,
        }
        .visit_map(map)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// What the mock read from a body when it built a `Value` of it first.
    fn from_value(body: &[u8]) -> RequestSummary {
        fn count_words(value: &Value) -> usize {
            match value {
                Value::String(text) => text.split_whitespace().count(),
                Value::Array(items) => items.iter().map(count_words).sum(),
                Value::Object(map) => map
                    .iter()
                    .filter(|(key, _)| !matches!(key.as_str(), "model" | "role" | "stream"))
                    .map(|(_, value)| count_words(value))
                    .sum(),
                _ => 0,
            }
        }
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        RequestSummary {
            model: value
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_owned),
            prompt_tokens: count_words(&value),
        }
    }

    #[test]
    fn reads_what_a_value_of_the_body_says() {
        let bodies: [&[u8]; 14] = [
            br#"{"model":"gpt-4o","messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"Hi,  I'm\nZo\u00eb"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":5}"#,
            br#"{"contents":[{"role":"user","parts":[{"text":"one two"}]}],"systemInstruction":{"parts":[{"text":"three"}]},"generationConfig":{"maxOutputTokens":7}}"#,
            br#"{"model":{"name":"a b"},"x":[1,-2,3.5e3,null,true,"c d"]}"#,
            br#"{"model":7,"role":"a b","stream":"c","inner":{"model":"x y","text":"z"}}"#,
            br#""just a string of words""#,
            br#"["a b", {"c":"d e"}]"#,
            br#"{"model":"m","n":1e400}"#,
            br#"{"model":"m","text":"a"} trailing"#,
            br#"{"model":"m","text":"\ud800"}"#,
            b"{\"model\":\"m\",\"text\":\"\xff\"}",
            br#"{"model":"m","#,
            b"",
            b"   ",
            br#"{"model":"first","model":"last"}"#,
        ];
        for body in bodies {
            assert_eq!(
                RequestSummary::read(body),
                from_value(body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            RequestSummary::read(deep.as_bytes()),
            from_value(deep.as_bytes())
        );
    }
}
