//! The built-in offline provider: streams the last user message back word by word.
//!
//! It needs no key and no network, so a fresh install can chat, and tests and load tests get a
//! deterministic provider with realistic pacing (`echo_delay` between words).

use std::time::Duration;

use futures_util::{stream, StreamExt};

use super::{ChatRequest, ProviderEvent, ProviderStream, Role, TokenUsage};

/// The echo stream for `request`: one delta per word, then usage and `Finish("stop")`.
pub(crate) fn stream(request: &ChatRequest, delay: Duration) -> ProviderStream {
    let prompt = request
        .messages
        .iter()
        .rev()
        .find(|message| message.role == Role::User)
        .map(|message| message.content.as_str())
        .unwrap_or_default();
    let pieces = pieces(prompt);
    let mut events: Vec<ProviderEvent> = Vec::with_capacity(pieces.len() + 2);
    if !pieces.is_empty() {
        let prompt_tokens = request
            .messages
            .iter()
            .map(|message| message.content.split_whitespace().count())
            .sum::<usize>();
        events.extend(pieces.iter().cloned().map(ProviderEvent::Delta));
        events.push(ProviderEvent::Usage(TokenUsage {
            prompt_tokens: Some(saturate(prompt_tokens)),
            completion_tokens: Some(saturate(pieces.len())),
        }));
    }
    events.push(ProviderEvent::Finish("stop".to_owned()));

    // Pause before every word but the first, like a model producing tokens.
    Box::pin(
        stream::iter(events.into_iter().enumerate()).then(move |(index, event)| async move {
            if index > 0 && matches!(event, ProviderEvent::Delta(_)) && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(event)
        }),
    )
}

/// Splits `text` into words that carry the whitespace before them ("Tell me" → "Tell", " me"),
/// so the pieces concatenate back to exactly `text`; trailing whitespace joins the last word.
fn pieces(text: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for ch in text.chars() {
        if ch.is_whitespace() && in_word {
            pieces.push(std::mem::take(&mut current));
            in_word = false;
        }
        in_word |= !ch.is_whitespace();
        current.push(ch);
    }
    if in_word {
        pieces.push(current);
    } else if let Some(last) = pieces.last_mut() {
        last.push_str(&current);
    }
    pieces
}

fn saturate(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ChatMessage;

    fn request(messages: &[(Role, &str)]) -> ChatRequest {
        ChatRequest {
            model: "echo-1".into(),
            messages: messages
                .iter()
                .map(|(role, content)| ChatMessage {
                    role: *role,
                    content: (*content).into(),
                })
                .collect(),
            max_tokens: None,
        }
    }

    #[test]
    fn words_keep_their_leading_whitespace() {
        assert_eq!(pieces("Tell me a joke"), ["Tell", " me", " a", " joke"]);
        assert_eq!(pieces("  two\n lines "), ["  two", "\n lines "]);
        assert!(pieces("   ").is_empty());
    }

    #[tokio::test]
    async fn echoes_the_last_user_message() {
        let request = request(&[
            (Role::System, "be brief"),
            (Role::User, "first question"),
            (Role::Assistant, "first answer"),
            (Role::User, "Tell me a joke"),
        ]);
        let events: Vec<_> = stream(&request, Duration::from_millis(1)).collect().await;
        let events: Vec<_> = events.into_iter().map(|event| event.ok()).collect();
        let delta = |text: &str| Some(ProviderEvent::Delta(text.to_owned()));
        assert_eq!(
            events,
            [
                delta("Tell"),
                delta(" me"),
                delta(" a"),
                delta(" joke"),
                Some(ProviderEvent::Usage(TokenUsage {
                    prompt_tokens: Some(10),
                    completion_tokens: Some(4),
                })),
                Some(ProviderEvent::Finish("stop".into())),
            ]
        );
    }

    #[tokio::test]
    async fn an_empty_prompt_just_finishes() {
        let request = request(&[(Role::User, "  ")]);
        let events: Vec<_> = stream(&request, Duration::ZERO).collect().await;
        assert_eq!(events.len(), 1);
        assert!(matches!(&events[0], Ok(ProviderEvent::Finish(reason)) if reason == "stop"));
    }
}
