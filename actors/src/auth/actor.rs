//! AuthActor: sign-up, login and profile. It owns the password hasher and the signing keys.
//!
//! Each request runs in a task of its own, so a login waiting for an scrypt slot (or slowed by
//! the throttle) never holds up a profile read behind it; the hasher's admission limit is what
//! bounds the work.

use std::{net::IpAddr, sync::Arc};

use omnichat_entity::users;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tracing::Instrument;
use uuid::Uuid;

use super::{
    in_flight::InFlight,
    throttle::{Admission, LoginThrottle},
    validate, Generations, JwtKeys, PasswordHasher, RevokedTokens, TokenSubject,
};
use crate::{
    error::{CoreError, CoreResult},
    store::Store,
};

/// What the API shows of a user.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct UserProfile {
    pub id: Uuid,
    #[schema(example = "testuser")]
    pub username: String,
    /// Lowercased as it was stored.
    #[schema(example = "test@example.com")]
    pub email: String,
}

impl From<users::Model> for UserProfile {
    fn from(user: users::Model) -> Self {
        UserProfile {
            id: user.id,
            username: user.username,
            email: user.email,
        }
    }
}

/// Where a login comes from: the address it is throttled by and the text its log line shows.
#[derive(Clone, Debug, Default)]
pub struct LoginClient {
    /// The client's address (the TCP peer, or what a trusted proxy says); `None` if unknown.
    pub ip: Option<IpAddr>,
    /// How the log line names the client, e.g. `203.0.113.7 via 127.0.0.1:50412`.
    pub shown: String,
}

/// A freshly signed access token.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    /// A JWT (HS256) to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `bearer`.
    #[schema(value_type = String, pattern = "^bearer$", example = "bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires (RFC 6749 §5.1).
    pub expires_in: u64,
}

pub enum AuthMsg {
    SignUp {
        username: String,
        email: String,
        password: String,
        reply: RpcReplyPort<CoreResult<UserProfile>>,
    },
    Login {
        email: String,
        password: String,
        /// The client, for throttling and for the log line every attempt leaves.
        client: LoginClient,
        reply: RpcReplyPort<CoreResult<IssuedToken>>,
    },
    Profile {
        user_id: Uuid,
        reply: RpcReplyPort<CoreResult<UserProfile>>,
    },
    Rename {
        user_id: Uuid,
        username: String,
        reply: RpcReplyPort<CoreResult<UserProfile>>,
    },
    /// Refuses this one token until it expires (`POST /logout`).
    RevokeToken {
        subject: TokenSubject,
        reply: RpcReplyPort<CoreResult<()>>,
    },
    /// Refuses every token of the user issued so far (bumps the token generation).
    RevokeTokens {
        user_id: Uuid,
        reply: RpcReplyPort<CoreResult<()>>,
    },
    /// Sets a new password after checking the current one; revokes every token.
    ChangePassword {
        user_id: Uuid,
        current_password: String,
        new_password: String,
        reply: RpcReplyPort<CoreResult<()>>,
    },
    /// Checks the user's password (before an account deletion).
    CheckPassword {
        user_id: Uuid,
        password: String,
        reply: RpcReplyPort<CoreResult<()>>,
    },
    /// Deletes the account, its sessions and messages; revokes every token.
    DeleteAccount {
        user_id: Uuid,
        reply: RpcReplyPort<CoreResult<()>>,
    },
}

pub struct AuthArgs {
    pub store: Store,
    pub hasher: Arc<PasswordHasher>,
    pub keys: Arc<JwtKeys>,
    pub generations: Generations,
    pub revoked: RevokedTokens,
    pub throttle: LoginThrottle,
}

/// Everything a request needs, shared with the task that serves it.
#[derive(Clone)]
pub struct AuthState {
    pub(super) store: Store,
    pub(super) hasher: Arc<PasswordHasher>,
    pub(super) keys: Arc<JwtKeys>,
    pub(super) generations: Generations,
    pub(super) revoked: RevokedTokens,
    pub(super) throttle: LoginThrottle,
    /// Logins in progress per account and address, which take turns.
    pub(super) in_flight: InFlight,
}

pub struct AuthActor;

impl Actor for AuthActor {
    type Msg = AuthMsg;
    type State = AuthState;
    type Arguments = AuthArgs;

    async fn pre_start(
        &self,
        _: ActorRef<AuthMsg>,
        args: AuthArgs,
    ) -> Result<AuthState, ActorProcessingErr> {
        Ok(AuthState {
            store: args.store,
            hasher: args.hasher,
            keys: args.keys,
            generations: args.generations,
            revoked: args.revoked,
            throttle: args.throttle,
            in_flight: InFlight::default(),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<AuthMsg>,
        msg: AuthMsg,
        state: &mut AuthState,
    ) -> Result<(), ActorProcessingErr> {
        let state = state.clone();
        match msg {
            AuthMsg::SignUp {
                username,
                email,
                password,
                reply,
            } => {
                spawn_in_span(async move {
                    let _ = reply.send(state.on_sign_up(username, email, password).await);
                });
            }
            AuthMsg::Login {
                email,
                password,
                client,
                reply,
            } => {
                spawn_in_span(async move {
                    let _ = reply.send(state.on_login(email, password, client).await);
                });
            }
            AuthMsg::Profile { user_id, reply } => {
                spawn_in_span(async move {
                    let _ = reply.send(state.on_profile(user_id).await);
                });
            }
            AuthMsg::Rename {
                user_id,
                username,
                reply,
            } => {
                spawn_in_span(async move {
                    let _ = reply.send(state.on_rename(user_id, username).await);
                });
            }
            AuthMsg::RevokeToken { subject, reply } => {
                tokio::spawn(async move {
                    let _ = reply.send(state.revoke_token(subject).await);
                });
            }
            AuthMsg::RevokeTokens { user_id, reply } => {
                spawn_in_span(async move {
                    let _ = reply.send(state.revoke_tokens(user_id).await);
                });
            }
            AuthMsg::ChangePassword {
                user_id,
                current_password,
                new_password,
                reply,
            } => {
                spawn_in_span(async move {
                    let result = state
                        .on_change_password(user_id, current_password, new_password)
                        .await;
                    let _ = reply.send(result);
                });
            }
            AuthMsg::CheckPassword {
                user_id,
                password,
                reply,
            } => {
                spawn_in_span(async move {
                    let result = state.check_password(user_id, password).await.map(|_| ());
                    let _ = reply.send(result);
                });
            }
            AuthMsg::DeleteAccount { user_id, reply } => {
                spawn_in_span(async move {
                    let _ = reply.send(state.on_delete_account(user_id).await);
                });
            }
        }
        Ok(())
    }
}

/// Runs a request's work off the actor's mailbox, in the span its message came with (the
/// request's, so its log lines carry the request id).
fn spawn_in_span(work: impl std::future::Future<Output = ()> + Send + 'static) {
    tokio::spawn(work.in_current_span());
}

impl AuthState {
    async fn on_sign_up(
        &self,
        username: String,
        email: String,
        password: String,
    ) -> CoreResult<UserProfile> {
        let username = validate::username(&username)?;
        let email = validate::email(&email)?;
        validate::new_password(&password, &username, &email)?;
        let hash = self.hasher.hash(password).await?;
        let user = self.store.insert_user(&username, &email, hash).await?;
        tracing::info!(user_id = %user.id, "user signed up");
        Ok(user.into())
    }

    /// Throttles, checks the credentials and logs the attempt (INFO): the account's email when
    /// one matched, the outcome and the client address. Never the password, and never what was
    /// typed as an email when no account has it (people type passwords into that field too).
    async fn on_login(
        &self,
        email: String,
        password: String,
        client: LoginClient,
    ) -> CoreResult<IssuedToken> {
        let keys = self.throttle.keys(&email, client.ip);
        let client = client.shown;
        // Held until the failure is counted, so the next guess is judged with it.
        let _turn = self.in_flight.turn(keys.turn_key()).await;
        let delay = match self.throttle.admit(&self.store, &keys).await {
            Ok(Admission::After(delay)) => delay,
            Ok(Admission::Blocked(retry_after)) => {
                // Refused before the account is even looked up: no hash, no read, no oracle.
                tracing::info!(
                    account = "not checked",
                    %client,
                    outcome = "throttled",
                    retry_after_secs = retry_after.as_secs(),
                    "login"
                );
                return Err(CoreError::Limited {
                    message: "Too many failed logins; try again later".into(),
                    retry_after,
                });
            }
            Err(err) => {
                tracing::info!(
                    account = "not checked",
                    %client,
                    outcome = "failed",
                    %err,
                    "login"
                );
                return Err(err);
            }
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut account = None;
        let mut result = self.check_login(&email, password, &mut account).await;
        match &result {
            Ok(_) => self.throttle.record_success(&self.store, &keys).await,
            Err(CoreError::BadCredentials) => {
                // A failure that cannot be counted is not answered as a plain miss: the next
                // guess would come in uncounted.
                if let Err(err) = self.throttle.record_failure(&self.store, &keys).await {
                    result = Err(err);
                }
            }
            Err(_) => {}
        }
        let known = account.is_some();
        let account = account.as_deref().unwrap_or("unknown");
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(_) => tracing::info!(account, %client, outcome = "success", delay_ms, "login"),
            Err(CoreError::BadCredentials) if known => {
                tracing::info!(account, %client, outcome = "wrong password", delay_ms, "login")
            }
            Err(CoreError::BadCredentials) => {
                tracing::info!(account, %client, outcome = "unknown account", delay_ms, "login")
            }
            Err(err) => {
                tracing::info!(account, %client, outcome = "failed", delay_ms, %err, "login")
            }
        }
        result
    }

    /// The login itself; `account` is set to the email of the account the attempt is for.
    async fn check_login(
        &self,
        email: &str,
        password: String,
        account: &mut Option<String>,
    ) -> CoreResult<IssuedToken> {
        // An email that cannot exist still costs one hash, like any unknown email.
        let user = match validate::email(email) {
            Ok(email) => self.store.user_by_email(&email).await?,
            Err(_) => None,
        };
        *account = user.as_ref().map(|u| u.email.clone());
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        if validate::too_long_to_check(&password) {
            return Err(CoreError::BadCredentials);
        }
        let valid = self.hasher.verify(password.clone(), stored).await?;
        match user {
            Some(user) if valid => {
                self.upgrade_hash(&user, password).await;
                // What login read is the freshest this node knows: later checks need no read.
                self.generations.raise(user.id, user.token_generation);
                Ok(IssuedToken {
                    access_token: self.keys.issue(user.id, user.token_generation)?,
                    token_type: "bearer",
                    expires_in: self.keys.ttl().as_secs(),
                })
            }
            _ => Err(CoreError::BadCredentials),
        }
    }

    /// Rehashes a password whose stored hash is weaker than the current scrypt parameters, now
    /// that the plain password is at hand (the only moment it is). A failure costs the user
    /// nothing: the old hash still works and the next login tries again.
    async fn upgrade_hash(&self, user: &users::Model, password: String) {
        if !self.hasher.is_weaker(&user.password_hash) {
            return;
        }
        let stored = match self.hasher.hash(password).await {
            Ok(hash) => self.store.set_password_hash(user.id, hash).await,
            Err(err) => Err(err),
        };
        match stored {
            Ok(()) => {
                tracing::info!(user_id = %user.id, "password rehashed with current parameters")
            }
            Err(err) => tracing::warn!(user_id = %user.id, %err, "password rehash failed"),
        }
    }

    async fn on_profile(&self, user_id: Uuid) -> CoreResult<UserProfile> {
        self.store
            .user_by_id(user_id)
            .await?
            .map(UserProfile::from)
            .ok_or(CoreError::Unauthenticated("User no longer exists"))
    }

    async fn on_rename(&self, user_id: Uuid, username: String) -> CoreResult<UserProfile> {
        let username = validate::username(&username)?;
        match self.store.rename_user(user_id, &username).await {
            Err(CoreError::NotFound(_)) => Err(CoreError::Unauthenticated("User no longer exists")),
            other => other.map(UserProfile::from),
        }
    }
}
