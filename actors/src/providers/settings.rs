//! Provider configuration: keys, base URLs, allowed models, timeouts and the retry policy.
//!
//! Filled from flags and the environment by the front end; this crate only consumes it. Keys are
//! secrets, so the `Debug` impl says whether a key is set and never prints it.

use std::{fmt, time::Duration};

/// Everything the provider adapters need to know about the outside world.
#[derive(Clone)]
pub struct ProviderSettings {
    /// `OPENAI_API_KEY`.
    pub openai_api_key: Option<String>,
    /// `OPENAI_BASE_URL`, including the `/v1` path of OpenAI-compatible servers.
    pub openai_base_url: String,
    /// `GEMINI_API_KEY`.
    pub gemini_api_key: Option<String>,
    /// `GEMINI_BASE_URL`, without a path.
    pub gemini_base_url: String,
    /// `ANTHROPIC_API_KEY`.
    pub anthropic_api_key: Option<String>,
    /// `ANTHROPIC_BASE_URL`, without a path.
    pub anthropic_base_url: String,
    /// `OLLAMA_HOST`.
    pub ollama_host: String,
    /// Pause between the words the offline echo provider streams.
    pub echo_delay: Duration,
    /// Limit on establishing a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Limit on getting the response headers and the first body bytes, per attempt.
    pub first_byte_timeout: Duration,
    /// Longest gap between body chunks once the body started.
    pub idle_timeout: Duration,
    /// Limit on the whole generation, retries included.
    pub total_timeout: Duration,
    /// Retries on connect errors, 429 and 5xx before the response is accepted.
    pub max_retries: u32,
    /// Base of the exponential backoff.
    pub retry_base_delay: Duration,
    /// Cap of one backoff pause; a `Retry-After` longer than this is not waited for.
    pub retry_max_delay: Duration,
    /// Anthropic requires `max_tokens` on every request.
    pub anthropic_max_tokens: u32,
    /// The models clients may ask each provider for (`OMNICHAT_*_MODELS`); empty: any.
    pub openai_models: Vec<String>,
    pub gemini_models: Vec<String>,
    pub anthropic_models: Vec<String>,
    pub ollama_models: Vec<String>,
    /// `OMNICHAT_TITLE_PROVIDER`: who writes automatic session titles; `None`: the provider
    /// of the answer that ended.
    pub title_provider: Option<super::ProviderKind>,
    /// `OMNICHAT_TITLE_MODEL`: the model for titles; `None`: the answer's model, or the title
    /// provider's default when that differs from the answer's.
    pub title_model: Option<String>,
    /// `OMNICHAT_UPSTREAM_STREAMS_PER_CONNECTION`: open streams one upstream client carries
    /// before the next goes out on another connection (below a provider's HTTP/2
    /// `MAX_CONCURRENT_STREAMS`, which is 100 or more at the large providers).
    pub streams_per_connection: usize,
    /// `OMNICHAT_UPSTREAM_H2C`: providers whose plaintext `http://` base URL speaks HTTP/2
    /// without TLS (a local gateway), so that their streams share connections.
    pub h2c_providers: Vec<super::ProviderKind>,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self {
            openai_api_key: None,
            openai_base_url: "https://api.openai.com/v1".to_owned(),
            gemini_api_key: None,
            gemini_base_url: "https://generativelanguage.googleapis.com".to_owned(),
            anthropic_api_key: None,
            anthropic_base_url: "https://api.anthropic.com".to_owned(),
            ollama_host: "http://127.0.0.1:11434".to_owned(),
            echo_delay: Duration::from_millis(20),
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(600),
            max_retries: 2,
            retry_base_delay: Duration::from_millis(250),
            retry_max_delay: Duration::from_secs(8),
            anthropic_max_tokens: 4096,
            openai_models: Vec::new(),
            gemini_models: Vec::new(),
            anthropic_models: Vec::new(),
            ollama_models: Vec::new(),
            title_provider: None,
            title_model: None,
            streams_per_connection: 100,
            h2c_providers: Vec::new(),
        }
    }
}

/// Shows whether a key is set, never the key itself.
fn redacted(key: &Option<String>) -> &'static str {
    match key {
        Some(_) => "<set>",
        None => "<unset>",
    }
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("openai_api_key", &redacted(&self.openai_api_key))
            .field("openai_base_url", &self.openai_base_url)
            .field("gemini_api_key", &redacted(&self.gemini_api_key))
            .field("gemini_base_url", &self.gemini_base_url)
            .field("anthropic_api_key", &redacted(&self.anthropic_api_key))
            .field("anthropic_base_url", &self.anthropic_base_url)
            .field("ollama_host", &self.ollama_host)
            .field("echo_delay", &self.echo_delay)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field("anthropic_max_tokens", &self.anthropic_max_tokens)
            .field("openai_models", &self.openai_models)
            .field("gemini_models", &self.gemini_models)
            .field("anthropic_models", &self.anthropic_models)
            .field("ollama_models", &self.ollama_models)
            .field("title_provider", &self.title_provider)
            .field("title_model", &self.title_model)
            .field("streams_per_connection", &self.streams_per_connection)
            .field("h2c_providers", &self.h2c_providers)
            .finish()
    }
}

impl ProviderSettings {
    /// The base URL a provider's requests go to; `None` for the offline echo.
    pub(crate) fn base_url(&self, kind: super::ProviderKind) -> Option<&str> {
        use super::ProviderKind;
        match kind {
            ProviderKind::Echo => None,
            ProviderKind::OpenAi => Some(&self.openai_base_url),
            ProviderKind::Gemini => Some(&self.gemini_base_url),
            ProviderKind::Anthropic => Some(&self.anthropic_base_url),
            ProviderKind::Ollama => Some(&self.ollama_host),
        }
    }
}

/// Trims the trailing slash people often put on base URLs, so `{base}/path` has exactly one.
pub(crate) fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_keys() {
        let settings = ProviderSettings {
            openai_api_key: Some("sk-very-secret".into()),
            anthropic_api_key: Some("sk-ant-secret".into()),
            ..ProviderSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("openai_api_key: \"<set>\""), "{shown}");
        assert!(shown.contains("gemini_api_key: \"<unset>\""), "{shown}");
    }
}
