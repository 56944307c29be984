//! Cross-node signals over PostgreSQL `LISTEN/NOTIFY` (DESIGN §6): a stop asked on one node
//! reaches the node that runs the generation. On SQLite there is one node and nothing to do.

use std::time::Duration;

use sea_orm::{sqlx::postgres::PgListener, ConnectionTrait, DbBackend, DbErr, Statement};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::{root::ChildrenSlot, session::RegistryMsg, store::Store};

/// The channel stop requests travel on; the payload is `<user id>:<generation id>`.
const STOP_CHANNEL: &str = "omnichat_stop";

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
}

/// Listens for stop signals and hands each to the local SessionRegistry, which acts only on
/// generations this node runs. `None` on SQLite.
pub(crate) fn spawn_stop_listener(store: Store, children: ChildrenSlot) -> Option<JoinHandle<()>> {
    if !store.is_shared() {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            if let Err(err) = listen(&store, &children).await {
                tracing::warn!(%err, "stop-signal listener failed; reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }))
}

async fn listen(store: &Store, children: &ChildrenSlot) -> Result<(), sea_orm::sqlx::Error> {
    let mut listener =
        PgListener::connect_with(store.conn().get_postgres_connection_pool()).await?;
    listener.listen(STOP_CHANNEL).await?;
    loop {
        let notification = listener.recv().await?;
        let Some((user_id, generation_id)) = parse(notification.payload()) else {
            tracing::warn!(
                payload = notification.payload(),
                "ignoring a malformed stop signal"
            );
            continue;
        };
        let registry = children
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.registry.clone()));
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

#[cfg(test)]
mod tests {
    #[test]
    fn payloads_parse_or_are_refused() {
        let (u, g) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert_eq!(super::parse(&format!("{u}:{g}")), Some((u, g)));
        assert_eq!(super::parse("nonsense"), None);
        assert_eq!(super::parse(&format!("{u}:x")), None);
    }
}
