//! Automatic session titles: after the first answer of a session whose title is still the
//! default, a short title is asked of the same provider (or the configured title provider), in
//! a task of its own, so the answer that triggered it is never held up. The offline `echo`
//! provider makes a deterministic one from the prompt's first words.

use std::time::Duration;

use futures_util::StreamExt;

use crate::providers::{ChatMessage, ChatRequest, ProviderEvent, ProviderKind, Providers, Role};

/// The longest automatic title, in characters.
pub const AUTO_TITLE_MAX_CHARS: usize = 60;
/// Words in an echo title.
const ECHO_TITLE_WORDS: usize = 6;
/// How much of the prompt and the answer the title request quotes, in characters.
const QUOTED_CHARS: usize = 2_000;
/// A title arrives within this or not at all.
const TITLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Tokens a title may take upstream.
const TITLE_MAX_TOKENS: u32 = 32;
/// Bytes of a provider's reply read at most: a title is a line, not an essay.
const MAX_REPLY_BYTES: usize = 1_000;

const INSTRUCTION: &str = "You name conversations. Reply with a title of at most six words \
for the conversation below: no quotes, no final punctuation, nothing else.";

/// A title for a conversation that began with `prompt` and `answer`, written by `provider`;
/// `None` when the provider failed or said nothing usable.
pub async fn make_title(
    providers: &Providers,
    provider: ProviderKind,
    model: String,
    prompt: &str,
    answer: &str,
) -> Option<String> {
    if provider == ProviderKind::Echo {
        return clean(&first_words(prompt, ECHO_TITLE_WORDS));
    }
    let request = ChatRequest {
        model,
        // A title is a few words: a small cap bounds what a misbehaving model can cost.
        max_tokens: Some(TITLE_MAX_TOKENS),
        messages: vec![
            ChatMessage {
                role: Role::System,
                content: INSTRUCTION.into(),
            },
            ChatMessage {
                role: Role::User,
                content: format!("User: {}\n\nAssistant: {}", quoted(prompt), quoted(answer))
                    .into(),
            },
        ],
    };
    let reply = tokio::time::timeout(TITLE_TIMEOUT, async {
        let mut stream = providers.open(provider, request).await.ok()?;
        let mut reply = String::new();
        while let Some(event) = stream.next().await {
            match event.ok()? {
                ProviderEvent::Delta(text) => reply.push_str(&text),
                ProviderEvent::Usage(_) | ProviderEvent::Finish(_) => {}
            }
            if reply.len() > MAX_REPLY_BYTES {
                break;
            }
        }
        Some(reply)
    })
    .await
    .ok()??;
    clean(&reply)
}

fn quoted(text: &str) -> String {
    text.chars().take(QUOTED_CHARS).collect()
}

fn first_words(text: &str, n: usize) -> String {
    text.split_whitespace()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A provider's reply as a title: its first non-empty line, without surrounding quotes,
/// markdown or final punctuation, control characters and runs of whitespace, capitalised, at
/// most [`AUTO_TITLE_MAX_CHARS`]; `None` when nothing is left.
fn clean(reply: &str) -> Option<String> {
    let line = reply.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line: String = line
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let decoration = |c: char| {
        c.is_whitespace() || matches!(c, '"' | '\'' | '*' | '#' | '`' | '“' | '”' | '«' | '»')
    };
    let mut title = line.trim_matches(decoration);
    // `get`, not indexing: byte 6 may fall inside a character.
    if title
        .get(..6)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("title:"))
    {
        title = title.get(6..).unwrap_or_default().trim_matches(decoration);
    }
    let title: String = title
        .trim_end_matches(['.', '!', '?', ':', ';', ','])
        .chars()
        .take(AUTO_TITLE_MAX_CHARS)
        .collect();
    let title = title.trim();
    let mut chars = title.chars();
    let first = chars.next()?;
    Some(first.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_cleaned_into_titles() {
        assert_eq!(
            clean("\"Lisbon weekend plan.\"\n").as_deref(),
            Some("Lisbon weekend plan")
        );
        assert_eq!(
            clean("\n\n**title: trip ideas**").as_deref(),
            Some("Trip ideas")
        );
        assert_eq!(
            clean("Title: rust lifetimes").as_deref(),
            Some("Rust lifetimes")
        );
        assert_eq!(clean("  \n \"\" "), None);
        assert_eq!(clean("ééé: déjà vu").as_deref(), Some("Ééé: déjà vu"));
        assert!(clean(&"word ".repeat(40)).unwrap().chars().count() <= AUTO_TITLE_MAX_CHARS);
    }

    #[test]
    fn echo_titles_are_the_prompts_first_words() {
        let words = first_words("plan a weekend trip to lisbon with kids, please", 6);
        assert_eq!(
            clean(&words).as_deref(),
            Some("Plan a weekend trip to lisbon")
        );
    }
}
