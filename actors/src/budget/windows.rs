//! Context window sizes per model family: defaults for the well-known families, overridable in
//! configuration. A model takes the size of the longest family prefix its name starts with.

use std::fmt;

/// The families OmniChat knows, by model-name prefix, with their context sizes in tokens
/// (from the vendors' model pages). Unknown models get [`UNKNOWN_MODEL_WINDOW`].
const DEFAULT_WINDOWS: &[(&str, u32)] = &[
    ("gpt-3.5-turbo", 16_385),
    ("gpt-4", 8_192),
    ("gpt-4-32k", 32_768),
    ("gpt-4-turbo", 128_000),
    ("gpt-4o", 128_000),
    ("gpt-4.1", 1_047_576),
    ("gpt-5", 400_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("claude", 200_000),
    ("gemini-pro", 32_760),
    ("gemini-1.5", 1_048_576),
    ("gemini-1.5-pro", 2_097_152),
    ("gemini-2", 1_048_576),
    ("llama2", 4_096),
    ("llama3", 8_192),
    ("llama3.1", 131_072),
    ("llama3.2", 131_072),
    ("llama3.3", 131_072),
    ("mistral", 32_768),
    ("qwen2", 32_768),
    ("echo", 131_072),
];

/// A model nobody configured: small enough that any current model takes it.
pub const UNKNOWN_MODEL_WINDOW: u32 = 8_192;

/// The longest override list accepted, and the smallest window (a prompt needs some room).
const MAX_OVERRIDES: usize = 200;
const MIN_WINDOW: u32 = 16;

/// Context sizes by model-name prefix: the defaults, then the configured overrides.
#[derive(Clone, PartialEq, Eq)]
pub struct ContextWindows {
    /// Longest prefix first, so the first match is the most specific.
    families: Vec<(String, u32)>,
}

impl fmt::Debug for ContextWindows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContextWindows({} families)", self.families.len())
    }
}

impl Default for ContextWindows {
    fn default() -> Self {
        ContextWindows::with_overrides("").unwrap_or_else(|_| ContextWindows {
            families: Vec::new(),
        })
    }
}

impl ContextWindows {
    /// The defaults with `overrides` applied: `family=tokens` pairs separated by commas, e.g.
    /// `gpt-4o=64000,my-local-model=4096`. A family given twice takes the last size.
    pub fn with_overrides(overrides: &str) -> Result<Self, String> {
        let mut families: Vec<(String, u32)> = DEFAULT_WINDOWS
            .iter()
            .map(|(family, size)| ((*family).to_owned(), *size))
            .collect();
        let pairs: Vec<&str> = overrides
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if pairs.len() > MAX_OVERRIDES {
            return Err(format!(
                "at most {MAX_OVERRIDES} context windows may be set"
            ));
        }
        for pair in pairs {
            let (family, size) = pair
                .split_once('=')
                .ok_or_else(|| format!("'{pair}' is not family=tokens"))?;
            let family = family.trim();
            let size: u32 = size
                .trim()
                .parse()
                .map_err(|_| format!("'{pair}': the size must be a whole number of tokens"))?;
            if family.is_empty() || size < MIN_WINDOW {
                return Err(format!(
                    "'{pair}': a family name and at least {MIN_WINDOW} tokens are needed"
                ));
            }
            families.retain(|(f, _)| f != family);
            families.push((family.to_owned(), size));
        }
        families.sort_by_key(|(family, _)| std::cmp::Reverse(family.len()));
        Ok(ContextWindows { families })
    }

    /// The context size of `model`, in tokens.
    pub fn window(&self, model: &str) -> u32 {
        self.families
            .iter()
            .find(|(family, _)| model.starts_with(family.as_str()))
            .map_or(UNKNOWN_MODEL_WINDOW, |(_, size)| *size)
    }
}

/// How a turn is fitted into its model's window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextSettings {
    pub windows: ContextWindows,
    /// Tokens kept free for the answer when the request names no `max_tokens`.
    pub answer_reserve: u32,
    /// The largest `max_tokens` a request may ask for.
    pub max_tokens_cap: u32,
}

impl Default for ContextSettings {
    fn default() -> Self {
        ContextSettings {
            windows: ContextWindows::default(),
            answer_reserve: 1_024,
            max_tokens_cap: 32_768,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_family_wins_and_overrides_replace_defaults() {
        let windows = ContextWindows::default();
        assert_eq!(windows.window("gpt-4o-mini"), 128_000);
        assert_eq!(windows.window("gpt-4-0613"), 8_192);
        assert_eq!(windows.window("gemini-1.5-pro-002"), 2_097_152);
        assert_eq!(windows.window("something-new"), UNKNOWN_MODEL_WINDOW);
        let tuned = ContextWindows::with_overrides(" gpt-4o=64000 , local=512").unwrap();
        assert_eq!(tuned.window("gpt-4o-mini"), 64_000);
        assert_eq!(tuned.window("local-7b"), 512);
        for bad in ["gpt-4o", "gpt-4o=many", "=100", "x=3"] {
            assert!(ContextWindows::with_overrides(bad).is_err(), "{bad}");
        }
    }
}
