//! Credential redaction for everything a provider error carries: what reaches clients, the
//! database and the logs.
//!
//! Upstream error bodies and transport errors are not ours: a proxy may echo the request headers,
//! a misconfigured server may print its own keys. So every message taken from outside passes
//! through [`redact`] (the shapes credentials usually have), and [`Redactor`] also removes the
//! provider keys this server was configured with, wherever they appear.

use std::{fmt, sync::Arc, sync::LazyLock};

use regex::Regex;

use super::{ProviderError, ProviderSettings};

/// What replaces a credential.
pub(crate) const REDACTED: &str = "[redacted]";

/// Credential shapes, each keeping its label so the reader still sees what was there:
/// `Bearer …` tokens, header lines (`authorization: …`, `x-api-key: …`,
/// `x-goog-api-key: …`), query or form parameters (`key=…`, `api_key=…`, `access_token=…`) and
/// OpenAI-style `sk-…` keys.
static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (
            r#"(?i)\b((?:x-goog-api-key|x-api-key|api-key|authorization|proxy-authorization)["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token)\s+)?[^\s"',;&}\[\]]+"#,
            "${1}[redacted]",
        ),
        (
            r#"(?i)\b(bearer\s+)[^\s"',;&}\[\]]+"#,
            "${1}[redacted]",
        ),
        (
            r#"(?i)\b((?:api[_-]?key|key|access[_-]?token|token|secret|password)=)[^\s"'&,;}\[\]]+"#,
            "${1}[redacted]",
        ),
        (r"\bsk-[A-Za-z0-9_\-]{3,}", "[redacted]"),
    ]
    .into_iter()
    .filter_map(|(pattern, replacement)| Some((Regex::new(pattern).ok()?, replacement)))
    .collect()
});

/// `text` with everything shaped like a credential replaced by `[redacted]`.
pub(crate) fn redact(text: &str) -> String {
    let mut text = text.to_owned();
    for (pattern, replacement) in PATTERNS.iter() {
        if pattern.is_match(&text) {
            text = pattern.replace_all(&text, *replacement).into_owned();
        }
    }
    text
}

/// Redacts the credential shapes and the configured provider keys. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// The configured keys, longest first so that a key containing another goes whole.
    keys: Arc<[String]>,
}

/// Says how many keys it knows, never which.
impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Keys shorter than this are not searched for: they would redact ordinary words.
const MIN_KEY_CHARS: usize = 6;

impl Redactor {
    pub(crate) fn new(settings: &ProviderSettings) -> Self {
        let mut keys: Vec<String> = [
            &settings.openai_api_key,
            &settings.gemini_api_key,
            &settings.anthropic_api_key,
        ]
        .into_iter()
        .flatten()
        .map(|key| key.trim().to_owned())
        .filter(|key| key.chars().count() >= MIN_KEY_CHARS)
        .collect();
        keys.sort_by_key(|key| std::cmp::Reverse(key.len()));
        Self { keys: keys.into() }
    }

    /// `text` without credentials.
    pub(crate) fn text(&self, text: &str) -> String {
        // The shapes first, so `authorization: Bearer <key>` reads `authorization: [redacted]`;
        // then the keys, which are not always shaped like a credential.
        let mut text = redact(text);
        for key in self.keys.iter() {
            if text.contains(key.as_str()) {
                text = text.replace(key.as_str(), REDACTED);
            }
        }
        text
    }

    /// `error` with every message it carries redacted.
    pub(crate) fn error(&self, error: ProviderError) -> ProviderError {
        match error {
            ProviderError::Unauthorized {
                provider,
                status,
                message,
            } => ProviderError::Unauthorized {
                provider,
                status,
                message: self.text(&message),
            },
            ProviderError::RateLimited {
                provider,
                retry_after,
                message,
            } => ProviderError::RateLimited {
                provider,
                retry_after,
                message: self.text(&message),
            },
            ProviderError::QuotaExhausted {
                provider,
                status,
                message,
            } => ProviderError::QuotaExhausted {
                provider,
                status,
                message: self.text(&message),
            },
            ProviderError::Rejected {
                provider,
                status,
                message,
            } => ProviderError::Rejected {
                provider,
                status,
                message: self.text(&message),
            },
            ProviderError::Upstream {
                provider,
                status,
                message,
            } => ProviderError::Upstream {
                provider,
                status,
                message: self.text(&message),
            },
            ProviderError::Connect { provider, message } => ProviderError::Connect {
                provider,
                message: self.text(&message),
            },
            ProviderError::Stream {
                provider,
                code,
                message,
            } => ProviderError::Stream {
                provider,
                code,
                message: self.text(&message),
            },
            other @ (ProviderError::NotConfigured { .. }
            | ProviderError::ModelNotAllowed { .. }
            | ProviderError::Timeout { .. }) => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_every_credential_shape() {
        for (leaky, secret) in [
            ("authorization: Bearer sk-secret-123", "sk-secret-123"),
            ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
            ("sent x-api-key: ant-key-999 upstream", "ant-key-999"),
            (r#"{"x-goog-api-key":"AIzaSyABC"}"#, "AIzaSyABC"),
            ("GET /v1/models?key=AIzaSyXYZ&alt=sse", "AIzaSyXYZ"),
            ("api_key=abc123def was rejected", "abc123def"),
            ("your key sk-proj-abcdef is invalid", "sk-proj-abcdef"),
            ("token bearer eyJhbGciOi.x.y", "eyJhbGciOi.x.y"),
            ("proxy said: Bearer abc.def", "abc.def"),
        ] {
            let clean = redact(leaky);
            assert!(!clean.contains(secret), "{leaky} -> {clean}");
            assert!(clean.contains(REDACTED), "{leaky} -> {clean}");
        }
    }

    #[test]
    fn redacting_twice_changes_nothing_more() {
        for leaky in [
            "authorization: Bearer sk-secret-123",
            "x-api-key: k-1234567 and key=abc&x=1",
        ] {
            let once = redact(leaky);
            assert_eq!(redact(&once), once);
            assert!(!once.contains("]]"), "{once}");
        }
        assert_eq!(
            redact("authorization: Bearer sk-secret-123"),
            "authorization: [redacted]"
        );
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        for text in [
            "Rate limit reached for gpt-4o-mini in organization org-1 on requests per min",
            "The model `gpt-5` does not exist or you do not have access to it.",
            "a risk-free answer about monkey=banana",
            "basic tier: no streaming on this plan",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn removes_the_configured_keys_whatever_their_shape() {
        let settings = ProviderSettings {
            gemini_api_key: Some("gm-plain-looking-key".into()),
            anthropic_api_key: Some("abc".into()),
            ..ProviderSettings::default()
        };
        let redactor = Redactor::new(&settings);
        let clean = redactor.text("upstream saw gm-plain-looking-key in the request; abc");
        assert_eq!(clean, "upstream saw [redacted] in the request; abc");
    }
}
