//! Cross-node signals over PostgreSQL `LISTEN/NOTIFY`: a stop asked on one node
//! reaches the node that runs the generation, and a token revocation reaches every node's
//! memory of token generations, a single token's logout every node's denylist; a resume asked on
//! one node gets the events of an answer another runs (see `follow`). On SQLite there is one
//! node and nothing to do.

use std::time::Duration;

use sea_orm::{sqlx::postgres::PgListener, ConnectionTrait, DbBackend, DbErr, Statement};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::{
    auth::{Generations, RevokedTokens},
    follow::{self, FollowRequest},
    root::ChildrenSlot,
    session::RegistryMsg,
    store::Store,
};

/// The channel stop requests travel on; the payload is `<user id>:<generation id>`.
const STOP_CHANNEL: &str = "omnichat_stop";
/// The channel token revocations travel on; the payload is `<user id>:<new token generation>`.
const TOKEN_CHANNEL: &str = "omnichat_token_generation";
/// The channel single-token logouts travel on; the payload is `<token id>:<expiry, Unix secs>`.
const TOKEN_REVOKED_CHANNEL: &str = "omnichat_token_revoked";
/// The channel account deletions stop a user's answers on; the payload is `<user id>`.
const USER_STOP_CHANNEL: &str = "omnichat_stop_user";

impl Store {
    /// True when other nodes may share this database (and can be signalled).
    pub fn is_shared(&self) -> bool {
        self.conn().get_database_backend() == DbBackend::Postgres
    }

    /// Asks every node to stop `generation_id` of `user_id` if it runs it.
    pub async fn signal_stop(&self, user_id: Uuid, generation_id: Uuid) -> Result<(), DbErr> {
        self.writer()
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [
                    STOP_CHANNEL.into(),
                    format!("{user_id}:{generation_id}").into(),
                ],
            ))
            .await
            .map(|_| ())
    }

    /// Asks every node to stop all the live generations of `user_id` (account deletion).
    pub async fn signal_stop_user(&self, user_id: Uuid) -> Result<(), DbErr> {
        self.writer()
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [USER_STOP_CHANNEL.into(), user_id.to_string().into()],
            ))
            .await
            .map(|_| ())
    }

    /// Tells every node that token `token_id` is refused until `expires_at`.
    pub async fn signal_token_revoked(&self, token_id: Uuid, expires_at: i64) -> Result<(), DbErr> {
        self.writer()
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [
                    TOKEN_REVOKED_CHANNEL.into(),
                    format!("{token_id}:{expires_at}").into(),
                ],
            ))
            .await
            .map(|_| ())
    }

    /// Asks every node to publish a generation's events to a follower (the one running it does).
    pub(crate) async fn signal_follow(&self, request: &FollowRequest) -> Result<(), DbErr> {
        self.notify(follow::REQUEST_CHANNEL, &request.encode())
            .await
    }

    /// Sends `payload` on `channel` (a follower's notices).
    pub(crate) async fn notify(&self, channel: &str, payload: &str) -> Result<(), DbErr> {
        self.writer()
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [channel.into(), payload.into()],
            ))
            .await
            .map(|_| ())
    }

    /// Tells every node that `user_id`'s token generation is now `generation`.
    pub async fn signal_generation(&self, user_id: Uuid, generation: i64) -> Result<(), DbErr> {
        self.writer()
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [
                    TOKEN_CHANNEL.into(),
                    format!("{user_id}:{generation}").into(),
                ],
            ))
            .await
            .map(|_| ())
    }
}

/// Listens for stop signals and hands each to the local SessionRegistry, which acts only on
/// generations this node runs, for token revocations, which raise `generations`, and for single
/// token logouts, which go on `revoked`. `None` on SQLite.
///
/// Returns once the listener is listening (or after `ready_within`, with a warning): a node
/// that served requests before it listened would miss what other nodes signal meanwhile (a
/// logout, a stop, a follow request) with nothing to tell it so.
pub(crate) async fn spawn_stop_listener(
    store: Store,
    children: ChildrenSlot,
    generations: Generations,
    revoked: RevokedTokens,
    ready_within: Duration,
) -> Option<JoinHandle<()>> {
    if !store.is_shared() {
        return None;
    }
    let (listening, mut ready) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            if let Err(err) = listen(&store, &children, &generations, &revoked, &listening).await {
                tracing::warn!(%err, "stop-signal listener failed; reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    if tokio::time::timeout(ready_within, ready.wait_for(|listening| *listening))
        .await
        .is_err()
    {
        tracing::warn!(
            ?ready_within,
            "not yet listening for other nodes' signals; serving anyway and retrying"
        );
    }
    Some(task)
}

async fn listen(
    store: &Store,
    children: &ChildrenSlot,
    generations: &Generations,
    revoked: &RevokedTokens,
    listening: &tokio::sync::watch::Sender<bool>,
) -> Result<(), sea_orm::sqlx::Error> {
    let mut listener =
        PgListener::connect_with(store.conn().get_postgres_connection_pool()).await?;
    listener
        .listen_all([
            STOP_CHANNEL,
            TOKEN_CHANNEL,
            USER_STOP_CHANNEL,
            TOKEN_REVOKED_CHANNEL,
            follow::REQUEST_CHANNEL,
            store.follows().channel(),
        ])
        .await?;
    // Revocations sent while no listener was connected were missed: from now on each is
    // heard, and what came before is read from the database (generations on each user's next
    // request, single logouts all at once here).
    generations.forget_all();
    let now = chrono::Utc::now().timestamp();
    match store.live_revoked_tokens(now).await {
        Ok(entries) => revoked.extend(entries),
        Err(err) => {
            // Without the list this node could accept a logged-out token: listen again.
            return Err(sea_orm::sqlx::Error::Protocol(format!(
                "reloading revoked tokens: {err}"
            )));
        }
    }
    listening.send_replace(true);
    loop {
        let notification = listener.recv().await?;
        if notification.channel() == store.follows().channel() {
            store.follows().dispatch(notification.payload());
            continue;
        }
        if notification.channel() == TOKEN_REVOKED_CHANNEL {
            match parse_generation(notification.payload()) {
                Some((token_id, expires_at)) => revoked.insert(token_id, expires_at),
                None => tracing::warn!(
                    payload = notification.payload(),
                    "ignoring a malformed token logout"
                ),
            }
            continue;
        }
        if notification.channel() == TOKEN_CHANNEL {
            match parse_generation(notification.payload()) {
                Some((user_id, generation)) => generations.raise(user_id, generation),
                None => tracing::warn!(
                    payload = notification.payload(),
                    "ignoring a malformed token revocation"
                ),
            }
            continue;
        }
        let registry = children
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.registry.clone()));
        if notification.channel() == follow::REQUEST_CHANNEL {
            if let Some(request) = follow::decode_leave(notification.payload()) {
                store.follows().stop_publishing(request);
                continue;
            }
            match (FollowRequest::decode(notification.payload()), registry) {
                (Some(request), Some(registry)) => {
                    let _ = registry.cast(RegistryMsg::PublishIfLocal { request });
                }
                (Some(_), None) => {}
                (None, _) => tracing::warn!(
                    payload = notification.payload(),
                    "ignoring a malformed follow request"
                ),
            }
            continue;
        }
        if notification.channel() == USER_STOP_CHANNEL {
            match (Uuid::parse_str(notification.payload()), registry) {
                (Ok(user_id), Some(registry)) => {
                    // Nobody waits for the answer: the deleting node goes on at once.
                    let (reply, _) = ractor::concurrency::oneshot();
                    let _ = registry.cast(RegistryMsg::StopUser {
                        user_id,
                        reply: reply.into(),
                    });
                }
                (Ok(_), None) => {}
                (Err(_), _) => tracing::warn!(
                    payload = notification.payload(),
                    "ignoring a malformed user stop signal"
                ),
            }
            continue;
        }
        let Some((user_id, generation_id)) = parse(notification.payload()) else {
            tracing::warn!(
                payload = notification.payload(),
                "ignoring a malformed stop signal"
            );
            continue;
        };
        if let Some(registry) = registry {
            let _ = registry.cast(RegistryMsg::StopIfLocal {
                user_id,
                generation_id,
            });
        }
    }
}

fn parse(payload: &str) -> Option<(Uuid, Uuid)> {
    let (user, generation) = payload.split_once(':')?;
    Some((
        Uuid::parse_str(user).ok()?,
        Uuid::parse_str(generation).ok()?,
    ))
}

/// `<uuid>:<integer>`: a user and a generation, or a token and its expiry.
fn parse_generation(payload: &str) -> Option<(Uuid, i64)> {
    let (user, generation) = payload.split_once(':')?;
    Some((Uuid::parse_str(user).ok()?, generation.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn payloads_parse_or_are_refused() {
        let (u, g) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert_eq!(super::parse(&format!("{u}:{g}")), Some((u, g)));
        assert_eq!(super::parse("nonsense"), None);
        assert_eq!(super::parse(&format!("{u}:x")), None);
        assert_eq!(super::parse_generation(&format!("{u}:7")), Some((u, 7)));
        assert_eq!(super::parse_generation(&format!("{u}:{g}")), None);
    }
}
