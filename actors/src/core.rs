//! The Core handle: starts the store and the actor tree, and is the one door the front end uses.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use ractor::{Actor, ActorRef};
use rand::RngCore;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::{
    ask::ask,
    auth::{
        AuthMsg, Generations, IssuedToken, JwtKeys, LoginClient, LoginThrottle, PasswordHasher,
        RevokedTokens, TokenSubject, UserProfile, TOKEN_SECRET_MIN_BYTES,
    },
    config::CoreConfig,
    error::{CoreError, CoreResult},
    metrics::Metrics,
    providers::Providers,
    root::{Children, ChildrenSlot, Root, RootArgs},
    session::{
        ChatStart, ListSessions, MessagePageRequest, NewSession, RegistryMsg, SessionChange,
        SessionDetail, SessionMsg, SessionPage, SessionView, StartChat,
    },
    store::Store,
};

/// Why the core could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("configuration: {0}")]
    Config(String),
    #[error("actor system: {0}")]
    Actors(String),
}

/// A running OmniChat core. Cheap to share behind an `Arc`.
pub struct Core {
    keys: Arc<JwtKeys>,
    /// Each user's current token generation, as far as this node knows (see `auth::revocation`).
    generations: Generations,
    /// Single tokens logged out before they expire (see `auth::revoked`).
    revoked: RevokedTokens,
    providers: Providers,
    store: Store,
    children: ChildrenSlot,
    live: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    root: ActorRef<()>,
    root_task: std::sync::Mutex<Option<JoinHandle<()>>>,
    heartbeat: JoinHandle<()>,
    /// PostgreSQL only: stop signals from other nodes.
    stop_listener: Option<JoinHandle<()>>,
}

impl Core {
    /// Connects to the database, applies migrations, settles the JWT secret and starts the actors.
    pub async fn start(config: CoreConfig) -> Result<Core, StartError> {
        if config.providers.openai_api_key.is_some() {
            // Parsing the BPE tables takes long (over a second in a debug build): done now, on
            // the blocking pool, the first OpenAI prompt does not wait for it.
            tokio::task::spawn_blocking(crate::budget::warm_up_tokenizers);
        }
        let store = Store::connect(
            &config.database_url,
            config.database_max_connections,
            config.database_timeout,
        )
        .await?;
        store.migrate().await?;
        let store = store.for_node(&config.node_id, config.heartbeat_every);
        store.heartbeat().await?;
        let interrupted = store.mark_interrupted_generations(true).await?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "marked answers left streaming by a previous run as interrupted"
            );
        }
        let secret = match &config.jwt_secret {
            Some(secret) if secret.len() < TOKEN_SECRET_MIN_BYTES => {
                return Err(StartError::Config(format!(
                    "OMNICHAT_JWT_SECRET must be at least {TOKEN_SECRET_MIN_BYTES} bytes"
                )));
            }
            Some(secret) => secret.clone(),
            None => {
                store
                    .setting_or_insert("jwt_secret", generate_secret)
                    .await?
            }
        };
        let keys = Arc::new(JwtKeys::new(secret.as_bytes(), config.token_ttl));
        let throttle = LoginThrottle::new(config.login_throttle.clone(), secret.as_bytes());
        // Tokens logged out before this start are refused from the first request on.
        let revoked = RevokedTokens::default();
        revoked.extend(
            store
                .live_revoked_tokens(chrono::Utc::now().timestamp())
                .await?,
        );
        let metrics = Arc::new(Metrics::new(store.writes().metrics()));
        let hasher = Arc::new(
            PasswordHasher::new(
                config.scrypt,
                config.hash_parallelism,
                config.hash_queue_per_slot,
            )
            .map_err(StartError::Config)?
            .count_refusals_in(metrics.hash_refused()),
        );
        let providers = Providers::new(config.providers.clone())
            .map_err(|err| StartError::Config(err.to_string()))?
            .with_metrics(metrics.clone());
        let children: ChildrenSlot = Arc::new(RwLock::new(None));
        let live = Arc::new(AtomicUsize::new(0));
        metrics.sample_from(live.clone(), hasher.clone());
        let generations = Generations::default();
        let args = RootArgs {
            store: store.clone(),
            hasher,
            keys: keys.clone(),
            generations: generations.clone(),
            revoked: revoked.clone(),
            throttle: throttle.clone(),
            providers: providers.clone(),
            limits: Arc::new(config.limits.clone()),
            live: live.clone(),
            metrics: metrics.clone(),
            slot: children.clone(),
        };
        let (root, root_task) = Actor::spawn(None, Root, args)
            .await
            .map_err(|err| StartError::Actors(err.to_string()))?;
        let heartbeat = tokio::spawn(heartbeat_loop(store.clone(), revoked.clone(), throttle));
        let stop_listener = crate::cluster::spawn_stop_listener(
            store.clone(),
            children.clone(),
            generations.clone(),
            revoked.clone(),
            config.database_timeout.max(Duration::from_secs(5)),
        )
        .await;
        Ok(Core {
            metrics,
            heartbeat,
            stop_listener,
            keys,
            generations,
            revoked,
            providers,
            store,
            children,
            live,
            root,
            root_task: std::sync::Mutex::new(Some(root_task)),
        })
    }

    /// This server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// True when the database answers a trivial query within `timeout`.
    pub async fn database_answers(&self, timeout: Duration) -> bool {
        self.store.ping(timeout).await
    }

    /// Generations running right now, across all users.
    pub fn live_generations(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Stops every running generation, storing each partial answer as `stopped`.
    pub async fn stop_all_generations(&self) -> CoreResult<()> {
        let registry = self.children()?.registry;
        ask(&registry, |reply| RegistryMsg::StopAllGenerations { reply }).await
    }

    /// Subscribes to a generation of `user_id` from byte `after` of its answer: live if it is
    /// still running, else the stored answer.
    pub async fn attach(
        &self,
        user_id: Uuid,
        generation_id: Uuid,
        after: u64,
    ) -> CoreResult<tokio::sync::mpsc::Receiver<crate::chat::StreamEvent>> {
        self.ask_session(user_id, |reply| SessionMsg::Attach {
            generation_id,
            after,
            reply,
        })
        .await
    }

    /// Stops a generation of `user_id`; answers its final status.
    pub async fn stop_generation(
        &self,
        user_id: Uuid,
        generation_id: Uuid,
    ) -> CoreResult<&'static str> {
        self.ask_session(user_id, |reply| SessionMsg::StopGeneration {
            generation_id,
            reply,
        })
        .await
    }

    /// Stops the actor tree and closes the database pool.
    pub async fn shutdown(&self) {
        self.root.stop(Some("shutdown".into()));
        let task = self.root_task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
        self.heartbeat.abort();
        if let Some(listener) = &self.stop_listener {
            listener.abort();
        }
        if let Err(err) = self.store.leave().await {
            tracing::warn!(%err, "removing this node's heartbeat");
        }
        if let Err(err) = self.store.clone().close().await {
            tracing::warn!(%err, "closing the database pool");
        }
    }

    fn children(&self) -> CoreResult<Children> {
        self.children
            .read()
            .ok()
            .and_then(|c| c.clone())
            .ok_or(CoreError::ActorGone)
    }

    /// The providers this server can talk to.
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// The user a bearer token speaks for. The signature and claims, then the token generation
    /// and the denylist of logged-out tokens against memory: no actor, and no database except
    /// the first time this node sees a user.
    pub async fn verify_token(&self, token: &str) -> CoreResult<Uuid> {
        Ok(self.token_subject(token).await?.user_id)
    }

    /// Like [`Core::verify_token`], with everything the token says of itself.
    pub async fn token_subject(&self, token: &str) -> CoreResult<TokenSubject> {
        let subject = self.keys.verify(token)?;
        self.generations.check(subject, &self.store).await?;
        if subject
            .token_id
            .is_some_and(|token_id| self.revoked.contains(token_id))
        {
            return Err(CoreError::Unauthenticated("Token has been revoked"));
        }
        Ok(subject)
    }

    /// Refuses this one token until it expires, on every node (`POST /logout`).
    pub async fn revoke_token(&self, subject: TokenSubject) -> CoreResult<()> {
        let auth = self.children()?.auth;
        ask(&auth, |reply| AuthMsg::RevokeToken { subject, reply }).await
    }

    /// Refuses every token of the user issued so far, on every node.
    pub async fn revoke_tokens(&self, user_id: Uuid) -> CoreResult<()> {
        let auth = self.children()?.auth;
        ask(&auth, |reply| AuthMsg::RevokeTokens { user_id, reply }).await
    }

    /// Replaces the password once the current one checks; every token is refused afterwards.
    pub async fn change_password(
        &self,
        user_id: Uuid,
        current_password: String,
        new_password: String,
    ) -> CoreResult<()> {
        let auth = self.children()?.auth;
        ask(&auth, |reply| AuthMsg::ChangePassword {
            user_id,
            current_password,
            new_password,
            reply,
        })
        .await
    }

    /// Deletes the account once the password checks. Its tokens are revoked first, so no new
    /// request starts anything; then its live generations are stopped (their partial answers
    /// stored; on other nodes asked, not awaited), and then the row goes, taking sessions and
    /// messages with it.
    pub async fn delete_account(&self, user_id: Uuid, password: String) -> CoreResult<()> {
        let Children { auth, registry } = self.children()?;
        ask(&auth, |reply| AuthMsg::CheckPassword {
            user_id,
            password,
            reply,
        })
        .await?;
        ask(&auth, |reply| AuthMsg::RevokeTokens { user_id, reply }).await?;
        if self.store.is_shared() {
            // Answers of this user on other nodes are stopped there, not waited for here.
            if let Err(err) = self.store.signal_stop_user(user_id).await {
                tracing::warn!(%user_id, %err, "asking other nodes to stop a deleted user's answers");
            }
        }
        ask(&registry, |reply| RegistryMsg::StopUser { user_id, reply }).await?;
        ask(&auth, |reply| AuthMsg::DeleteAccount { user_id, reply }).await
    }

    pub async fn sign_up(
        &self,
        username: String,
        email: String,
        password: String,
    ) -> CoreResult<UserProfile> {
        let auth = self.children()?.auth;
        ask(&auth, |reply| AuthMsg::SignUp {
            username,
            email,
            password,
            reply,
        })
        .await
    }

    /// Checks the credentials for a token; `client` (the caller's address) is what failed
    /// logins are throttled by, and goes to the log line every attempt leaves.
    pub async fn login(
        &self,
        email: String,
        password: String,
        client: LoginClient,
    ) -> CoreResult<IssuedToken> {
        let auth = self.children()?.auth;
        ask(&auth, |reply| AuthMsg::Login {
            email,
            password,
            client,
            reply,
        })
        .await
    }

    /// The user's token usage by day, provider and model (`YYYY-MM-DD` bounds, inclusive).
    pub async fn usage(
        &self,
        user_id: Uuid,
        from: Option<&str>,
        to: Option<&str>,
    ) -> CoreResult<crate::budget::UsageReport> {
        crate::budget::usage_report(&self.store, user_id, from, to).await
    }

    pub async fn profile(&self, user_id: Uuid) -> CoreResult<UserProfile> {
        let auth = self.children()?.auth;
        ask(&auth, |reply| AuthMsg::Profile { user_id, reply }).await
    }

    pub async fn rename_user(&self, user_id: Uuid, username: String) -> CoreResult<UserProfile> {
        let auth = self.children()?.auth;
        ask(&auth, |reply| AuthMsg::Rename {
            user_id,
            username,
            reply,
        })
        .await
    }

    /// Sends a request to the user's SessionActor. If that actor stopped between being found
    /// and being asked (it went idle, or crashed), a fresh one is found and asked once more.
    async fn ask_session<T: Send + 'static>(
        &self,
        user_id: Uuid,
        mut build: impl FnMut(ractor::RpcReplyPort<CoreResult<T>>) -> SessionMsg,
    ) -> CoreResult<T> {
        for _ in 0..2 {
            let registry = self.children()?.registry;
            let session = ask(&registry, |reply| RegistryMsg::Get { user_id, reply }).await?;
            match ask(&session, &mut build).await {
                Err(CoreError::ActorGone) => tokio::time::sleep(Duration::from_millis(5)).await,
                other => return other,
            }
        }
        Err(CoreError::ActorGone)
    }

    /// A page of the user's sessions, or of those a search finds (see `session::pages`).
    pub async fn list_sessions(
        &self,
        user_id: Uuid,
        request: ListSessions,
    ) -> CoreResult<SessionPage> {
        self.ask_session(user_id, |reply| SessionMsg::List {
            request: request.clone(),
            reply,
        })
        .await
    }

    pub async fn create_session(&self, user_id: Uuid, new: NewSession) -> CoreResult<SessionView> {
        self.ask_session(user_id, |reply| SessionMsg::Create {
            new: new.clone(),
            reply,
        })
        .await
    }

    /// A session with its messages, or a page of them.
    pub async fn get_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        page: MessagePageRequest,
    ) -> CoreResult<SessionDetail> {
        self.ask_session(user_id, |reply| SessionMsg::Get {
            session_id,
            page,
            reply,
        })
        .await
    }

    /// Changes a session's title and/or system prompt.
    pub async fn update_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        change: SessionChange,
    ) -> CoreResult<SessionView> {
        self.ask_session(user_id, |reply| SessionMsg::Update {
            session_id,
            change: change.clone(),
            reply,
        })
        .await
    }

    pub async fn delete_session(&self, user_id: Uuid, session_id: Uuid) -> CoreResult<()> {
        self.ask_session(user_id, |reply| SessionMsg::Delete { session_id, reply })
            .await
    }

    /// Starts a generation; the answer's events arrive on the returned subscription.
    pub async fn start_chat(&self, user_id: Uuid, request: StartChat) -> CoreResult<ChatStart> {
        let registry = self.children()?.registry;
        let session = ask(&registry, |reply| RegistryMsg::Get { user_id, reply }).await?;
        // Not retried: the request is moved into the message, and a retry could store the prompt twice.
        ask(&session, |reply| SessionMsg::StartChat { request, reply }).await
    }
}

/// Heartbeats between two prunings of expired logouts and forgotten login failures (a minute).
const PRUNE_EVERY_TICKS: u64 = 6;

/// Drops logged-out tokens that have expired (from memory and the database) and login-failure
/// counters that no longer slow anyone down. Failures are logged: the next round tries again.
async fn prune_expired(store: &Store, revoked: &RevokedTokens, throttle: &LoginThrottle) {
    let now = chrono::Utc::now().timestamp();
    revoked.prune(now);
    if let Err(err) = store.prune_revoked_tokens(now).await {
        tracing::warn!(%err, "pruning expired token logouts failed");
    }
    if let Err(err) = throttle.prune(store).await {
        tracing::warn!(%err, "pruning old login failures failed");
    }
}

/// 32 random bytes, hex encoded: the HS256 secret of a server configured without one.
fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Keeps this node's heartbeat fresh and cleans up after peers that died; now and then also
/// drops expired logouts and forgotten login failures.
async fn heartbeat_loop(store: Store, revoked: RevokedTokens, throttle: LoginThrottle) {
    let mut tick = tokio::time::interval(store.heartbeat_every());
    tick.tick().await;
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        ticks += 1;
        if ticks.is_multiple_of(PRUNE_EVERY_TICKS) {
            prune_expired(&store, &revoked, &throttle).await;
        }
        if let Err(err) = store.heartbeat().await {
            tracing::warn!(%err, "node heartbeat failed");
            continue;
        }
        match store.mark_interrupted_generations(false).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(n, "marked answers of a dead node as interrupted"),
            Err(err) => tracing::warn!(%err, "sweeping a dead node's answers failed"),
        }
    }
}
