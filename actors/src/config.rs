//! The core's configuration: database, secrets, hashing cost, providers and per-user limits.

use std::time::Duration;

use crate::{
    auth::{ScryptSettings, ThrottleSettings},
    budget::{ContextSettings, QuotaSettings},
    providers::ProviderSettings,
};

/// What happens to a generation when its last SSE connection goes away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DisconnectPolicy {
    /// Run to the end and store the whole answer (a closed tab loses nothing).
    #[default]
    Continue,
    /// Close the upstream request and store the partial answer as `stopped`.
    Cancel,
}

/// Bounds on everything a client can make large or many.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Concurrent generations per user; past it, 429.
    pub max_generations_per_user: usize,
    /// Sessions a user may keep.
    pub max_sessions_per_user: u64,
    /// Messages a session may hold.
    pub max_messages_per_session: u64,
    /// The most recent messages sent upstream as context.
    pub history_messages: u64,
    /// An answer longer than this is cut off and ends with an error.
    pub max_answer_bytes: usize,
    /// Events buffered per subscriber before a slow one is dropped (it can resume).
    pub subscriber_buffer: usize,
    /// A SessionActor with no requests and no generations for this long stops; a session held
    /// in memory and unused this long leaves it.
    pub session_idle: Duration,
    /// Sessions a SessionActor holds in memory at most (the least recently used leave first).
    pub cached_sessions_per_user: usize,
    pub on_disconnect: DisconnectPolicy,
    /// How a turn is fitted into its model's context window.
    pub context: ContextSettings,
    /// Each user's tokens a day and prompts a minute.
    pub quota: QuotaSettings,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_generations_per_user: 4,
            max_sessions_per_user: 10_000,
            max_messages_per_session: 2_000,
            history_messages: 200,
            max_answer_bytes: 1 << 20,
            subscriber_buffer: 1_024,
            session_idle: Duration::from_secs(300),
            cached_sessions_per_user: 64,
            on_disconnect: DisconnectPolicy::Continue,
            context: ContextSettings::default(),
            quota: QuotaSettings::default(),
        }
    }
}

/// Everything [`crate::Core::start`] needs.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// This server's identity among the nodes sharing a database: stable across its restarts.
    pub node_id: String,
    pub database_url: String,
    /// How often this node heartbeats in `nodes` and marks the answers of dead peers (silent
    /// for three heartbeats) interrupted.
    pub heartbeat_every: Duration,
    pub database_max_connections: u32,
    /// The longest any request waits on the database before it is told to retry (503).
    pub database_timeout: Duration,
    /// `None`: generate one and keep it in the database.
    pub jwt_secret: Option<String>,
    pub token_ttl: Duration,
    pub scrypt: ScryptSettings,
    /// Hashes allowed to run at once (one per core by default).
    pub hash_parallelism: usize,
    /// Hashes allowed to wait per running one; past that, sign-ups and logins get 503.
    pub hash_queue_per_slot: usize,
    /// How failed logins are slowed down and blocked.
    pub login_throttle: ThrottleSettings,
    pub providers: ProviderSettings,
    pub limits: Limits,
}
