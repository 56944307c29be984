//! Provider adapters: one module per upstream wire format behind one small interface.
//!
//! The ChatStreamActor only sees [`Providers::open`], which returns a stream of normalised
//! [`ProviderEvent`]s. Everything specific to a vendor (URL, auth header, request shape, event
//! parsing, usage fields) lives in that vendor's module.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures_util::{Stream, StreamExt};
use serde::Serialize;

use crate::metrics::Metrics;

mod anthropic;
mod connections;
mod echo;
mod endpoints;
mod error_body;
mod gemini;
mod http;
mod json_body;
mod message_text;
mod models;
mod ndjson_framer;
mod ollama;
mod openai;
mod pipeline;
mod quota;
mod reachability;
mod redact;
mod settings;
mod sse_framer;

pub use message_text::MessageText;
pub use models::ProviderInfo;
pub use reachability::{PROBE_TIMEOUT, PROBE_TTL};
pub use settings::ProviderSettings;

/// The providers OmniChat can talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
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

impl Role {
    /// The role's name as OpenAI-style APIs (OpenAI, Ollama) and our database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of the conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: MessageText,
}

/// What goes upstream: the whole history, the new prompt last.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    /// The longest answer asked for, passed to each provider in its own form.
    pub max_tokens: Option<u32>,
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
    #[error("{provider} does not offer model '{model}' here; use one of: {allowed}")]
    ModelNotAllowed {
        provider: &'static str,
        model: String,
        allowed: String,
    },
    #[error("{provider} rejected OmniChat's credentials ({status}): {message}")]
    Unauthorized {
        provider: &'static str,
        status: u16,
        message: String,
    },
    /// The provider's own rate limit, not the user's quota (that is `CoreError::QuotaExceeded`).
    #[error("The provider is rate limiting: {provider} answered 429 (this is not your own quota; try again shortly): {message}")]
    RateLimited {
        provider: &'static str,
        retry_after: Option<Duration>,
        message: String,
    },
    /// The account's quota, credit or spend limit is used up: retrying cannot help, and only
    /// the operator can fix it.
    #[error("{provider} quota exhausted: the provider account is out of quota or credit ({status}): {message}")]
    QuotaExhausted {
        provider: &'static str,
        status: u16,
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

impl ProviderError {
    /// The provider this error is about.
    pub fn provider(&self) -> &'static str {
        match self {
            ProviderError::NotConfigured { provider, .. }
            | ProviderError::ModelNotAllowed { provider, .. }
            | ProviderError::Unauthorized { provider, .. }
            | ProviderError::RateLimited { provider, .. }
            | ProviderError::QuotaExhausted { provider, .. }
            | ProviderError::Rejected { provider, .. }
            | ProviderError::Upstream { provider, .. }
            | ProviderError::Timeout { provider, .. }
            | ProviderError::Connect { provider, .. }
            | ProviderError::Stream { provider, .. } => provider,
        }
    }

    /// A stable machine-readable code for the `{"error": {"code": …}}` event of a failed stream.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::NotConfigured { .. } => "provider_not_configured",
            ProviderError::ModelNotAllowed { .. } => "model_not_allowed",
            ProviderError::Unauthorized { .. } => "upstream_unauthorized",
            ProviderError::RateLimited { .. } => "provider_rate_limited",
            ProviderError::QuotaExhausted { .. } => "provider_quota_exhausted",
            ProviderError::Rejected { .. } => "upstream_rejected",
            ProviderError::Upstream { .. } => "upstream_error",
            ProviderError::Timeout { .. } => "upstream_timeout",
            ProviderError::Connect { .. } => "upstream_unreachable",
            ProviderError::Stream { code, .. } => code,
        }
    }
}

/// Why [`Providers::new`] refused the settings (a start-up error, never a request error).
#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    #[error("{setting} is not a usable http(s) URL: {value:?}")]
    InvalidUrl {
        setting: &'static str,
        value: String,
    },
    #[error("could not build the HTTP client: {0}")]
    Client(String),
    #[error(
        "OMNICHAT_UPSTREAM_H2C names {provider}, whose base URL {value:?} is not plaintext \
         http:// (TLS connections negotiate HTTP/2 by themselves)"
    )]
    H2cOverTls {
        provider: &'static str,
        value: String,
    },
}

/// The provider adapters behind one cheap-to-clone handle: the settings and the upstream
/// clients, each provider's streams spread over them (see [`connections`]).
#[derive(Clone, Debug)]
pub struct Providers {
    settings: Arc<ProviderSettings>,
    /// The fixed upstream URLs, parsed once.
    endpoints: Arc<endpoints::Endpoints>,
    connections: Arc<connections::Connections>,
    redactor: redact::Redactor,
    /// The last reachability probe of each provider, shared by every clone.
    reachability: Arc<reachability::Reachability>,
    /// Where upstream retries are counted, once the core has set it.
    metrics: Option<Arc<Metrics>>,
}

impl Providers {
    /// Checks the base URLs and builds the shared HTTP client.
    pub fn new(settings: ProviderSettings) -> Result<Self, ProviderSetupError> {
        for (setting, value) in [
            ("OPENAI_BASE_URL", &settings.openai_base_url),
            ("GEMINI_BASE_URL", &settings.gemini_base_url),
            ("ANTHROPIC_BASE_URL", &settings.anthropic_base_url),
            ("OLLAMA_HOST", &settings.ollama_host),
        ] {
            let usable = reqwest::Url::parse(value)
                .map(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
                .unwrap_or(false);
            if !usable {
                return Err(ProviderSetupError::InvalidUrl {
                    setting,
                    value: value.clone(),
                });
            }
        }
        for &kind in &settings.h2c_providers {
            if let Some(url) = settings
                .base_url(kind)
                .filter(|url| !url.starts_with("http://"))
            {
                return Err(ProviderSetupError::H2cOverTls {
                    provider: kind.name(),
                    value: url.to_owned(),
                });
            }
        }
        let connections =
            connections::Connections::new(&settings).map_err(ProviderSetupError::Client)?;
        Ok(Self {
            redactor: redact::Redactor::new(&settings),
            endpoints: Arc::new(endpoints::Endpoints::new(&settings)),
            settings: Arc::new(settings),
            connections: Arc::new(connections),
            reachability: Arc::default(),
            metrics: None,
        })
    }

    /// Counts upstream retries in `metrics`.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }

    /// The model used when a request names none.
    pub fn default_model(kind: ProviderKind) -> &'static str {
        match kind {
            ProviderKind::Echo => "echo-1",
            ProviderKind::OpenAi => "gpt-4o-mini",
            ProviderKind::Gemini => "gemini-2.0-flash",
            ProviderKind::Anthropic => "claude-3-5-haiku-latest",
            ProviderKind::Ollama => "llama3.2",
        }
    }

    /// Who writes the title of a session whose answer came from `kind` and `model`: the
    /// configured title provider and model where set, else the answer's own.
    pub fn title_writer(&self, kind: ProviderKind, model: &str) -> (ProviderKind, String) {
        let provider = self.settings.title_provider.unwrap_or(kind);
        let model = match &self.settings.title_model {
            Some(model) => model.clone(),
            None if provider == kind => model.to_owned(),
            None => Self::default_model(provider).to_owned(),
        };
        (provider, model)
    }

    /// `Err(NotConfigured)` naming the setting to set when the provider has no key.
    pub fn check_configured(&self, kind: ProviderKind) -> Result<(), ProviderError> {
        let (key, setting) = match kind {
            // Echo is offline and Ollama is keyless: a local daemon is assumed at its host.
            ProviderKind::Echo | ProviderKind::Ollama => return Ok(()),
            ProviderKind::OpenAi => (&self.settings.openai_api_key, "OPENAI_API_KEY"),
            ProviderKind::Gemini => (&self.settings.gemini_api_key, "GEMINI_API_KEY"),
            ProviderKind::Anthropic => (&self.settings.anthropic_api_key, "ANTHROPIC_API_KEY"),
        };
        match key {
            Some(key) if !key.trim().is_empty() => Ok(()),
            _ => Err(ProviderError::NotConfigured {
                provider: kind.name(),
                setting,
            }),
        }
    }

    /// Opens the upstream stream. Resolves once the upstream answered 2xx (retrying connect
    /// errors, 429 and 5xx before that), or with the error. An empty `model` takes the
    /// provider's default.
    ///
    /// The stream ends after the last event when the answer is complete (a `Finish`, when the
    /// provider reported a reason, is then the last event); an `Err` item is final.
    /// Dropping the stream closes the upstream connection.
    ///
    /// Every error, before the stream and in it, comes with credentials redacted (the
    /// configured keys included): its message is shown to users, stored and logged.
    pub async fn open(
        &self,
        kind: ProviderKind,
        request: ChatRequest,
    ) -> Result<ProviderStream, ProviderError> {
        match self.open_unredacted(kind, request).await {
            Ok(stream) => {
                let redactor = self.redactor.clone();
                Ok(Box::pin(stream.map(move |item| {
                    item.map_err(|error| redactor.error(error))
                })))
            }
            Err(error) => Err(self.redactor.error(error)),
        }
    }

    async fn open_unredacted(
        &self,
        kind: ProviderKind,
        mut request: ChatRequest,
    ) -> Result<ProviderStream, ProviderError> {
        self.check_configured(kind)?;
        if request.model.trim().is_empty() {
            request.model = Self::default_model(kind).to_owned();
        }
        let settings = &*self.settings;
        let endpoints = &*self.endpoints;
        let connections = &*self.connections;
        let provider = kind.name();
        let upstream =
            http::Upstream::new(provider, settings, &self.redactor, self.metrics.as_deref());
        let stream = match kind {
            ProviderKind::Echo => echo::stream(&request, settings.echo_delay),
            ProviderKind::OpenAi => {
                let body = upstream
                    .send(&connections.openai, |client| {
                        openai::build_request(client, &endpoints.openai, settings, &request)
                    })
                    .await?;
                pipeline::sse(body, openai::Decoder::default())
            }
            ProviderKind::Gemini => {
                let body = upstream
                    .send(&connections.gemini, |client| {
                        gemini::build_request(client, settings, &request)
                    })
                    .await?;
                pipeline::sse(body, gemini::Decoder::default())
            }
            ProviderKind::Anthropic => {
                let body = upstream
                    .send(&connections.anthropic, |client| {
                        anthropic::build_request(client, &endpoints.anthropic, settings, &request)
                    })
                    .await?;
                pipeline::sse(body, anthropic::Decoder::default())
            }
            ProviderKind::Ollama => {
                let body = upstream
                    .send(&connections.ollama, |client| {
                        ollama::build_request(client, &endpoints.ollama, &request)
                    })
                    .await?;
                pipeline::ndjson(body, ollama::Decoder::default())
            }
        };
        Ok(stream)
    }
}
