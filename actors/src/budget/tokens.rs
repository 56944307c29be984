//! Token counts of message text: exact for the OpenAI families (tiktoken's BPE tables, built
//! once per process), a conservative estimate for every other provider. A message is counted
//! once, when it enters a session's history, never again per turn.

use crate::providers::ProviderKind;

/// What a chat format adds around each message (role markers, separators). OpenAI documents
/// 3 to 4 tokens a message; the larger is used so a fit is never optimistic.
pub const MESSAGE_OVERHEAD_TOKENS: u32 = 4;

/// A conservative token estimate for text no tokenizer counts: a token per 4 ASCII bytes
/// (English averages about 4 characters a token), and a token for every other character (CJK
/// scripts take about one a character; accented Latin less, which errs on the safe side).
pub fn estimate_tokens(text: &str) -> u32 {
    let (mut ascii, mut other) = (0usize, 0usize);
    for c in text.chars() {
        if c.is_ascii() {
            ascii += 1;
        } else {
            other += 1;
        }
    }
    u32::try_from(ascii.div_ceil(4) + other).unwrap_or(u32::MAX)
}

/// The tokens `text` takes for `model` of `provider`.
pub fn count_tokens(provider: ProviderKind, model: &str, text: &str) -> u32 {
    match provider {
        ProviderKind::OpenAi => openai_tokens(model, text),
        _ => estimate_tokens(text),
    }
}

/// Builds the OpenAI BPE tables (each once per process).
pub fn warm_up_tokenizers() {
    let _ = tiktoken_rs::o200k_base_singleton();
    let _ = tiktoken_rs::cl100k_base_singleton();
}

/// Exact counts with the model's own encoding: `o200k_base` for the GPT-4o generation and
/// later, `cl100k_base` for GPT-4 and GPT-3.5. An OpenAI-compatible server's unknown model
/// gets `o200k_base`. The tables are parsed once (tens of milliseconds) and then shared.
fn openai_tokens(model: &str, text: &str) -> u32 {
    use tiktoken_rs::tokenizer::{get_tokenizer, Tokenizer};
    let bpe = match get_tokenizer(model) {
        Some(Tokenizer::Cl100kBase) => tiktoken_rs::cl100k_base_singleton(),
        _ => tiktoken_rs::o200k_base_singleton(),
    };
    u32::try_from(bpe.count_ordinary(text)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_are_conservative() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        // Three CJK characters: three tokens, not the 9 bytes / 4 a byte count would say.
        assert_eq!(estimate_tokens("日本語"), 3);
    }

    #[test]
    fn openai_counts_are_exact() {
        assert_eq!(
            count_tokens(ProviderKind::OpenAi, "gpt-4o", "hello world"),
            2
        );
        assert_eq!(
            count_tokens(ProviderKind::OpenAi, "gpt-4", "hello world"),
            2
        );
        assert_eq!(
            count_tokens(ProviderKind::Gemini, "gemini-pro", "hello world"),
            3
        );
    }

    /// The cost of counting a turn, per 1,000 words of English text. Run with
    /// `cargo test -p omnichat-actors --lib token_counting_cost -- --ignored --nocapture`
    /// (add `--release` for optimised numbers; the default profile is debug).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn token_counting_cost() {
        let words = [
            "the", "context", "window", "of", "a", "model", "is", "measured", "in", "tokens,",
            "and", "every", "turn", "must", "fit", "beside", "its", "answer.",
        ];
        let text: String = (0..1_000)
            .map(|i| words[i % words.len()])
            .collect::<Vec<_>>()
            .join(" ");
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        // The first call builds the tables: measured apart, it is paid once per process.
        let started = std::time::Instant::now();
        count_tokens(ProviderKind::OpenAi, "gpt-4o", "warm up");
        count_tokens(ProviderKind::OpenAi, "gpt-4", "warm up");
        println!(
            "building the BPE tables ({profile}): {:?}",
            started.elapsed()
        );
        for (name, provider, model) in [
            ("tiktoken o200k_base", ProviderKind::OpenAi, "gpt-4o"),
            ("tiktoken cl100k_base", ProviderKind::OpenAi, "gpt-4"),
            ("estimate", ProviderKind::Anthropic, "claude"),
        ] {
            let rounds = 200;
            let started = std::time::Instant::now();
            let mut tokens = 0;
            for _ in 0..rounds {
                tokens = std::hint::black_box(count_tokens(provider, model, &text));
            }
            let micros = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
            println!("{name} ({profile}): {micros:.1} µs per 1,000 words ({tokens} tokens)");
        }
    }
}
