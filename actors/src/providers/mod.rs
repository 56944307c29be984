//! Provider adapters: one module per upstream wire format behind one small interface.
//!
//! The ChatStreamActor only sees [`Providers::open`], which returns a stream of normalised
//! [`ProviderEvent`]s. Everything specific to a vendor (URL, auth header, request shape, event
//! parsing, usage fields) lives in that vendor's module.

use std::{pin::Pin, time::Duration};

use futures_util::Stream;
use serde::Serialize;

/// The providers OmniChat can talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Echo,
    #[serde(rename = "openai")]
    OpenAi,
    Gemini,
    Anthropic,
    Ollama,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 5] = [
        ProviderKind::Echo,
        ProviderKind::OpenAi,
        ProviderKind::Gemini,
        ProviderKind::Anthropic,
        ProviderKind::Ollama,
    ];

    /// Parses the name a client sends (`"openai"`, `"gemini"`, …).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The name used on the wire and in the database.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Echo => "echo",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Ollama => "ollama",
        }
    }
}

/// Who said a message in the conversation sent upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One turn of the conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

/// What goes upstream: the whole history, the new prompt last.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
}

/// Token counts as the provider reported them (never summed across cumulative reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TokenUsage {
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
}

/// A normalised upstream event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderEvent {
    /// A piece of answer text.
    Delta(String),
    /// The latest usage report; a later one replaces an earlier one.
    Usage(TokenUsage),
    /// The provider's finish reason (`stop`, `length`, `end_turn`, …).
    Finish(String),
}

/// Everything that can go wrong talking to a provider.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("provider {provider} is not configured: set {setting}")]
    NotConfigured {
        provider: &'static str,
        setting: &'static str,
    },
    #[error("{provider} rejected OmniChat's credentials: {message}")]
    Unauthorized {
        provider: &'static str,
        message: String,
    },
    #[error("{provider} is rate limiting requests: {message}")]
    RateLimited {
        provider: &'static str,
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("{provider} refused the request ({status}): {message}")]
    Rejected {
        provider: &'static str,
        status: u16,
        message: String,
    },
    #[error("{provider} failed ({status}): {message}")]
    Upstream {
        provider: &'static str,
        status: u16,
        message: String,
    },
    #[error("{provider} timed out ({phase})")]
    Timeout {
        provider: &'static str,
        phase: &'static str,
    },
    #[error("could not reach {provider}: {message}")]
    Connect {
        provider: &'static str,
        message: String,
    },
    #[error("{provider} stream failed: {message}")]
    Stream {
        provider: &'static str,
        code: &'static str,
        message: String,
    },
}

/// The normalised upstream stream. It ends after the last event; an `Err` item is final.
pub type ProviderStream = Pin<Box<dyn Stream<Item = Result<ProviderEvent, ProviderError>> + Send>>;

// ---- TEMPORARY stand-in until the adapters land (replaced wholesale) ----
#[derive(Clone, Debug, Default)]
pub struct ProviderSettings {
    pub openai_api_key: Option<String>,
    pub openai_base_url: String,
    pub gemini_api_key: Option<String>,
    pub gemini_base_url: String,
    pub anthropic_api_key: Option<String>,
    pub anthropic_base_url: String,
    pub ollama_host: String,
    pub echo_delay: Duration,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
    pub total_timeout: Duration,
    pub max_retries: u32,
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
    pub anthropic_max_tokens: u32,
}
#[derive(Clone)]
pub struct Providers {
    settings: std::sync::Arc<ProviderSettings>,
}
#[derive(Clone, Debug, Serialize)]
pub struct ProviderInfo {
    pub name: &'static str,
    pub default_model: &'static str,
}
impl Providers {
    pub fn new(settings: ProviderSettings) -> Result<Self, ProviderError> {
        Ok(Providers {
            settings: std::sync::Arc::new(settings),
        })
    }
    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }
    pub fn default_model(_kind: ProviderKind) -> &'static str {
        "echo-1"
    }
    pub fn check_configured(&self, kind: ProviderKind) -> Result<(), ProviderError> {
        match kind {
            ProviderKind::Echo => Ok(()),
            _ => Err(ProviderError::NotConfigured {
                provider: kind.name(),
                setting: "KEY",
            }),
        }
    }
    pub fn available(&self) -> Vec<ProviderInfo> {
        vec![ProviderInfo {
            name: "echo",
            default_model: "echo-1",
        }]
    }
    pub async fn open(
        &self,
        _kind: ProviderKind,
        request: ChatRequest,
    ) -> Result<ProviderStream, ProviderError> {
        let prompt = request
            .messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let delay = self.settings.echo_delay;
        let words: Vec<String> = prompt.split_inclusive(' ').map(str::to_owned).collect();
        let stream = futures_util::stream::iter(words).then(move |w| async move {
            tokio::time::sleep(delay).await;
            Ok(ProviderEvent::Delta(w))
        });
        Ok(Box::pin(stream.chain(futures_util::stream::iter([Ok(
            ProviderEvent::Finish("stop".into()),
        )]))))
    }
}
use futures_util::StreamExt;
