//! Command line and environment: every setting has a flag and an environment variable (the flag
//! wins), named as the ecosystem names them.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::http::{client_ip::TrustedProxies, cors::CorsPolicy};
use omnichat_actors::{
    auth::{ScryptSettings, ThrottleSettings},
    budget::{ContextSettings, ContextWindows, QuotaSettings},
    providers::{ProviderKind, ProviderSettings},
    CoreConfig, DisconnectPolicy, Limits,
};

#[derive(Debug, Parser)]
#[command(
    name = "omnichat",
    version,
    about = "Multi-provider LLM chat backend",
    args_override_self = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings for `serve`, which is also what runs with no subcommand.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(ServeArgs),
    /// Run a fake LLM provider (all four wire formats) for load tests.
    MockUpstream(crate::mock_upstream::cli::MockUpstreamArgs),
    /// Load-test a running OmniChat (or an upstream directly) with streamed chat turns.
    Loadtest(crate::loadtest::LoadtestArgs),
    /// Print the API's OpenAPI 3.1 document (the one `GET /openapi.json` serves).
    Openapi(OpenapiArgs),
}

#[derive(Debug, Clone, Args)]
pub struct OpenapiArgs {
    /// Write the document to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<std::path::PathBuf>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, with the fields of the request's span (`request_id`, …).
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OnDisconnect {
    Continue,
    Cancel,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// This node's identity among servers sharing one database (default: host name and address).
    #[arg(long, env = "OMNICHAT_NODE_ID")]
    pub node_id: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "OMNICHAT_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: SocketAddr,
    /// Serve `GET /metrics` only on this address (not on the public one). Unset: on the public
    /// address.
    #[arg(long, env = "OMNICHAT_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Log line format.
    #[arg(long, env = "OMNICHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// sqlite://… or postgres://…
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://omnichat.db?mode=rwc"
    )]
    pub database_url: String,
    /// Database connections at most (reads; SQLite writes go through one more of their own).
    #[arg(long, env = "OMNICHAT_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// The longest a request waits on the database (a connection, a lock, a statement) before it
    /// gets 503 with Retry-After.
    #[arg(long, env = "OMNICHAT_DB_TIMEOUT_MS", default_value_t = 3_000)]
    pub db_timeout_ms: u64,
    /// HS256 secret, at least 32 bytes. Unset: one is generated and kept in the database.
    #[arg(long, env = "OMNICHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Lifetime of an access token, in seconds.
    #[arg(long, env = "OMNICHAT_TOKEN_TTL_SECS", default_value_t = 86_400)]
    pub token_ttl_secs: u64,
    /// scrypt cost (log2 N). 17 is OWASP's recommendation; lower it only for tests.
    #[arg(long, env = "OMNICHAT_SCRYPT_LOG_N", default_value_t = 17)]
    pub scrypt_log_n: u8,
    /// Password hashes run at once (default: one per core).
    #[arg(long, env = "OMNICHAT_HASH_PARALLELISM")]
    pub hash_parallelism: Option<usize>,
    /// Hashes allowed to wait per running one before logins get 503 with Retry-After.
    #[arg(long, env = "OMNICHAT_HASH_QUEUE", default_value_t = 32)]
    pub hash_queue: usize,
    /// Proxies (comma-separated IPs or CIDRs) whose `X-Forwarded-For` names the client; empty:
    /// none, the TCP peer is the client.
    #[arg(long, env = "OMNICHAT_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<TrustedProxies>,
    /// Failed logins of an account from one address (or of the account from anywhere) before
    /// each further attempt is slowed.
    #[arg(long, env = "OMNICHAT_LOGIN_SLOW_AFTER", default_value_t = 5)]
    pub login_slow_after: u32,
    /// Failed logins of an account from one address before that pair is blocked (429).
    #[arg(long, env = "OMNICHAT_LOGIN_BLOCK_AFTER", default_value_t = 10)]
    pub login_block_after: u32,
    /// Failed logins from one address, over all accounts, before it is slowed.
    #[arg(long, env = "OMNICHAT_LOGIN_ADDRESS_SLOW_AFTER", default_value_t = 20)]
    pub login_address_slow_after: u32,
    /// Failed logins from one address, over all accounts, before it is blocked (429).
    #[arg(long, env = "OMNICHAT_LOGIN_ADDRESS_BLOCK_AFTER", default_value_t = 50)]
    pub login_address_block_after: u32,
    /// The longest a login is slowed, in milliseconds: all an attacker can cost the owner.
    #[arg(long, env = "OMNICHAT_LOGIN_MAX_DELAY_MS", default_value_t = 2_000)]
    pub login_max_delay_ms: u64,
    /// The first block, in seconds; each further failure doubles it.
    #[arg(long, env = "OMNICHAT_LOGIN_BLOCK_SECS", default_value_t = 60)]
    pub login_block_secs: u64,
    /// The longest block, in seconds.
    #[arg(long, env = "OMNICHAT_LOGIN_MAX_BLOCK_SECS", default_value_t = 900)]
    pub login_max_block_secs: u64,
    /// Failed logins are forgotten this many seconds after the latest one.
    #[arg(long, env = "OMNICHAT_LOGIN_FORGET_SECS", default_value_t = 3_600)]
    pub login_forget_secs: u64,

    /// OpenAI (or OpenAI-compatible server) API key; unset: the provider is not offered.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    /// Base URL of the OpenAI-compatible API (up to and including `/v1`).
    #[arg(
        long,
        env = "OPENAI_BASE_URL",
        default_value = "https://api.openai.com/v1"
    )]
    pub openai_base_url: String,
    /// Gemini API key; unset: the provider is not offered.
    #[arg(long, env = "GEMINI_API_KEY", hide_env_values = true)]
    pub gemini_api_key: Option<String>,
    /// Base URL of the Gemini API.
    #[arg(
        long,
        env = "GEMINI_BASE_URL",
        default_value = "https://generativelanguage.googleapis.com"
    )]
    pub gemini_base_url: String,
    /// Anthropic API key; unset: the provider is not offered.
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    pub anthropic_api_key: Option<String>,
    /// Base URL of the Anthropic API.
    #[arg(
        long,
        env = "ANTHROPIC_BASE_URL",
        default_value = "https://api.anthropic.com"
    )]
    pub anthropic_base_url: String,
    /// The Ollama daemon (keyless).
    #[arg(long, env = "OLLAMA_HOST", default_value = "http://127.0.0.1:11434")]
    pub ollama_host: String,
    /// Models clients may ask OpenAI for (comma-separated); empty: any.
    #[arg(long, env = "OMNICHAT_OPENAI_MODELS")]
    pub openai_models: Option<String>,
    /// Models clients may ask Gemini for (comma-separated); empty: any.
    #[arg(long, env = "OMNICHAT_GEMINI_MODELS")]
    pub gemini_models: Option<String>,
    /// Models clients may ask Anthropic for (comma-separated); empty: any.
    #[arg(long, env = "OMNICHAT_ANTHROPIC_MODELS")]
    pub anthropic_models: Option<String>,
    /// Models clients may ask Ollama for (comma-separated); empty: any.
    #[arg(long, env = "OMNICHAT_OLLAMA_MODELS")]
    pub ollama_models: Option<String>,
    /// Pause between the words of the offline `echo` provider, in milliseconds.
    #[arg(long, env = "OMNICHAT_ECHO_DELAY_MS", default_value_t = 20)]
    pub echo_delay_ms: u64,
    /// Provider that writes automatic session titles (`echo`, `openai`, `gemini`, `anthropic`,
    /// `ollama`); unset: the provider of the session's first answer.
    #[arg(long, env = "OMNICHAT_TITLE_PROVIDER", value_parser = provider_kind)]
    pub title_provider: Option<ProviderKind>,
    /// Model for automatic titles; unset: the first answer's model (or the title provider's
    /// default).
    #[arg(long, env = "OMNICHAT_TITLE_MODEL")]
    pub title_model: Option<String>,
    /// Seconds to open a connection to a provider.
    #[arg(
        long,
        env = "OMNICHAT_UPSTREAM_CONNECT_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub upstream_connect_timeout_secs: u64,
    /// Seconds a provider may take to start answering.
    #[arg(
        long,
        env = "OMNICHAT_UPSTREAM_FIRST_BYTE_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub upstream_first_byte_timeout_secs: u64,
    /// Seconds of silence in a provider's stream before it is given up.
    #[arg(
        long,
        env = "OMNICHAT_UPSTREAM_IDLE_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub upstream_idle_timeout_secs: u64,
    /// Seconds one answer may take in all.
    #[arg(
        long,
        env = "OMNICHAT_UPSTREAM_TOTAL_TIMEOUT_SECS",
        default_value_t = 600
    )]
    pub upstream_total_timeout_secs: u64,
    /// Retries of a provider request before its first token (connect errors, 429, 5xx; never
    /// an exhausted quota).
    #[arg(long, env = "OMNICHAT_UPSTREAM_MAX_RETRIES", default_value_t = 2)]
    pub upstream_max_retries: u32,
    /// Base of the capped exponential backoff between retries, in milliseconds.
    #[arg(
        long,
        env = "OMNICHAT_UPSTREAM_RETRY_BASE_DELAY_MS",
        default_value_t = 250
    )]
    pub upstream_retry_base_delay_ms: u64,
    /// Open streams one upstream client carries before the next stream goes out on another
    /// connection; keep it at or below the provider's HTTP/2 stream limit.
    #[arg(
        long,
        env = "OMNICHAT_UPSTREAM_STREAMS_PER_CONNECTION",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub upstream_streams_per_connection: u32,
    /// Providers (comma-separated) whose plaintext `http://` base URL speaks HTTP/2 without
    /// TLS (h2c), so that their streams share connections; TLS providers negotiate HTTP/2
    /// themselves.
    #[arg(
        long,
        env = "OMNICHAT_UPSTREAM_H2C",
        value_delimiter = ',',
        value_parser = remote_provider_kind
    )]
    pub upstream_h2c: Vec<ProviderKind>,

    /// Concurrent generations per user.
    #[arg(long, env = "OMNICHAT_MAX_GENERATIONS_PER_USER", default_value_t = 4)]
    pub max_generations_per_user: usize,
    /// Sessions a user may keep; past it, creating one is 409. `GET /sessions` without
    /// parameters returns them all, so this also bounds that answer.
    #[arg(long, env = "OMNICHAT_MAX_SESSIONS_PER_USER", default_value_t = 10_000)]
    pub max_sessions_per_user: u64,
    /// Messages a session may hold; past it, a new prompt is 409.
    #[arg(
        long,
        env = "OMNICHAT_MAX_MESSAGES_PER_SESSION",
        default_value_t = 2_000
    )]
    pub max_messages_per_session: u64,
    /// Longest answer kept, in bytes; a longer one is cut off with an error.
    #[arg(long, env = "OMNICHAT_MAX_ANSWER_BYTES", default_value_t = 1 << 20)]
    pub max_answer_bytes: usize,
    /// Context sizes per model-name prefix over the built-in table, e.g. `gpt-4o=64000,local=4096`.
    #[arg(long, env = "OMNICHAT_CONTEXT_WINDOWS", value_parser = ContextWindows::with_overrides)]
    pub context_windows: Option<ContextWindows>,
    /// Tokens of a model's window kept for the answer when a prompt asks for no `max_tokens`.
    #[arg(long, env = "OMNICHAT_ANSWER_RESERVE_TOKENS", default_value_t = 1_024)]
    pub answer_reserve_tokens: u32,
    /// The largest `max_tokens` sent upstream: a prompt asking more gets this.
    #[arg(long, env = "OMNICHAT_MAX_TOKENS_CAP", default_value_t = 32_768)]
    pub max_tokens_cap: u32,
    /// Tokens (prompt and answer) each user may spend a UTC day; 0 switches the quota off.
    #[arg(long, env = "OMNICHAT_TOKENS_PER_DAY", default_value_t = 100_000_000)]
    pub tokens_per_day: u64,
    /// Prompts each user may send a minute; 0 switches the limit off.
    #[arg(long, env = "OMNICHAT_PROMPTS_PER_MINUTE", default_value_t = 10_000)]
    pub prompts_per_minute: u64,
    /// What a generation does when its last client disconnects.
    #[arg(long, env = "OMNICHAT_ON_DISCONNECT", value_enum, default_value_t = OnDisconnect::Continue)]
    pub on_disconnect: OnDisconnect,
    /// Milliseconds between this node's heartbeats; a node silent for three is presumed dead and
    /// its live answers are marked interrupted by the others.
    #[arg(long, env = "OMNICHAT_HEARTBEAT_MS", default_value_t = 10_000)]
    pub heartbeat_ms: u64,
    /// Seconds running generations get to finish on SIGTERM.
    #[arg(long, env = "OMNICHAT_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Seconds of silence after which an SSE stream gets a `: keep-alive` comment.
    #[arg(long, env = "OMNICHAT_SSE_KEEP_ALIVE_SECS", default_value_t = 15)]
    pub sse_keep_alive_secs: u64,
    /// How long a new answer's response waits for its first event (so that an early failure
    /// is a JSON error with its status) before the SSE headers go out, in milliseconds.
    #[arg(long, env = "OMNICHAT_FIRST_EVENT_WAIT_MS", default_value_t = 3_000)]
    pub first_event_wait_ms: u64,
    /// Origins (comma-separated, or `*`) whose web pages may call the API; empty: none.
    #[arg(long, env = "OMNICHAT_CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "OMNICHAT_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Open connections at most; further ones wait to be accepted.
    #[arg(long, env = "OMNICHAT_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
}

impl ServeArgs {
    /// The front end's own settings.
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            addr: self.addr,
            metrics_addr: self.metrics_addr,
            db_timeout: Duration::from_millis(self.db_timeout_ms.max(1)),
            cors: CorsPolicy::parse(self.cors_origins.as_deref().unwrap_or_default()),
            max_body_bytes: self.max_body_bytes,
            header_read_timeout: Duration::from_secs(10),
            keep_alive_every: Duration::from_secs(self.sse_keep_alive_secs.max(1)),
            first_event_wait: Duration::from_millis(self.first_event_wait_ms),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            max_connections: self.max_connections.max(1),
            trusted_proxies: self.trusted_proxies.clone().unwrap_or_default(),
        }
    }

    fn login_throttle(&self) -> ThrottleSettings {
        let block = Duration::from_secs(self.login_block_secs.max(1));
        ThrottleSettings {
            slow_after: self.login_slow_after,
            block_after: self.login_block_after.max(1),
            address_slow_after: self.login_address_slow_after,
            address_block_after: self.login_address_block_after.max(1),
            max_delay: Duration::from_millis(self.login_max_delay_ms),
            block,
            max_block: Duration::from_secs(self.login_max_block_secs).max(block),
            forget_after: Duration::from_secs(self.login_forget_secs.max(1)),
        }
    }

    /// The actor core's settings; `bound` is the address actually listened on.
    pub fn core_config(&self, bound: SocketAddr) -> CoreConfig {
        let providers = ProviderSettings {
            openai_api_key: self.openai_api_key.clone().filter(|k| !k.is_empty()),
            openai_base_url: self.openai_base_url.clone(),
            gemini_api_key: self.gemini_api_key.clone().filter(|k| !k.is_empty()),
            gemini_base_url: self.gemini_base_url.clone(),
            anthropic_api_key: self.anthropic_api_key.clone().filter(|k| !k.is_empty()),
            anthropic_base_url: self.anthropic_base_url.clone(),
            ollama_host: self.ollama_host.clone(),
            echo_delay: Duration::from_millis(self.echo_delay_ms),
            title_provider: self.title_provider,
            title_model: self.title_model.clone().filter(|m| !m.trim().is_empty()),
            connect_timeout: Duration::from_secs(self.upstream_connect_timeout_secs),
            first_byte_timeout: Duration::from_secs(self.upstream_first_byte_timeout_secs),
            idle_timeout: Duration::from_secs(self.upstream_idle_timeout_secs),
            total_timeout: Duration::from_secs(self.upstream_total_timeout_secs),
            max_retries: self.upstream_max_retries,
            retry_base_delay: Duration::from_millis(self.upstream_retry_base_delay_ms),
            streams_per_connection: self.upstream_streams_per_connection as usize,
            h2c_providers: self.upstream_h2c.clone(),
            openai_models: model_list(&self.openai_models),
            gemini_models: model_list(&self.gemini_models),
            anthropic_models: model_list(&self.anthropic_models),
            ollama_models: model_list(&self.ollama_models),
            ..ProviderSettings::default()
        };
        let limits = Limits {
            max_generations_per_user: self.max_generations_per_user.max(1),
            max_answer_bytes: self.max_answer_bytes.max(1),
            max_messages_per_session: self.max_messages_per_session.max(2),
            max_sessions_per_user: self.max_sessions_per_user.max(1),
            on_disconnect: match self.on_disconnect {
                OnDisconnect::Continue => DisconnectPolicy::Continue,
                OnDisconnect::Cancel => DisconnectPolicy::Cancel,
            },
            context: ContextSettings {
                windows: self.context_windows.clone().unwrap_or_default(),
                answer_reserve: self.answer_reserve_tokens,
                max_tokens_cap: self.max_tokens_cap.max(1),
            },
            quota: QuotaSettings {
                tokens_per_day: (self.tokens_per_day > 0).then_some(self.tokens_per_day),
                prompts_per_minute: (self.prompts_per_minute > 0)
                    .then_some(self.prompts_per_minute),
            },
            ..Limits::default()
        };
        CoreConfig {
            node_id: self
                .node_id
                .clone()
                .unwrap_or_else(|| default_node_id(bound)),
            database_url: self.database_url.clone(),
            heartbeat_every: Duration::from_millis(self.heartbeat_ms.max(100)),
            database_max_connections: self.db_max_connections.max(1),
            database_timeout: Duration::from_millis(self.db_timeout_ms.max(1)),
            jwt_secret: self.jwt_secret.clone(),
            token_ttl: Duration::from_secs(self.token_ttl_secs.max(1)),
            scrypt: ScryptSettings {
                log_n: self.scrypt_log_n,
                ..ScryptSettings::default()
            },
            hash_parallelism: self.hash_parallelism.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            }),
            hash_queue_per_slot: self.hash_queue,
            login_throttle: self.login_throttle(),
            providers,
            limits,
        }
    }
}

/// What the HTTP front end itself needs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// Where `/metrics` is served instead of `addr`, if set.
    pub metrics_addr: Option<SocketAddr>,
    /// The bound on database waits (the readiness check stays within it).
    pub db_timeout: Duration,
    pub cors: CorsPolicy,
    pub max_body_bytes: usize,
    pub header_read_timeout: Duration,
    pub keep_alive_every: Duration,
    pub first_event_wait: Duration,
    pub shutdown_grace: Duration,
    pub max_connections: usize,
    /// Proxies whose `X-Forwarded-For` names the client of a login.
    pub trusted_proxies: TrustedProxies,
}

/// A comma-separated list of model names, blanks dropped.
fn model_list(raw: &Option<String>) -> Vec<String> {
    raw.as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|model| !model.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Host name and listen address: unique among live nodes, and the same after a restart, so a
/// restarted node recognises the answers its previous run left unfinished.
fn default_node_id(bound: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{bound}")
}

/// A provider reached over the network: every provider but the offline `echo`.
fn remote_provider_kind(name: &str) -> Result<ProviderKind, String> {
    match provider_kind(name.trim())? {
        ProviderKind::Echo => Err("echo is offline and has no connections".to_owned()),
        kind => Ok(kind),
    }
}

/// A provider's name as a setting's value.
fn provider_kind(name: &str) -> Result<ProviderKind, String> {
    ProviderKind::parse(name).ok_or_else(|| {
        let names: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.name()).collect();
        format!("not a provider; one of {}", names.join(", "))
    })
}
