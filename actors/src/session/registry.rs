//! SessionRegistry: finds or spawns the SessionActor of a user, and forgets it when it stops.
//!
//! A SessionActor that fails is simply forgotten and respawned on the user's next request, up to
//! a restart budget per user per minute; past the budget the user is told to retry later.

use std::{
    collections::HashMap,
    sync::{atomic::AtomicUsize, Arc},
    time::{Duration, Instant},
};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use uuid::Uuid;

use super::actor::{SessionActor, SessionArgs, SessionMsg};
use crate::{
    config::Limits,
    error::{CoreError, CoreResult},
    follow::FollowRequest,
    metrics::Metrics,
    providers::Providers,
    store::Store,
};

/// Restarts allowed per user within [`RESTART_WINDOW`].
const RESTART_BUDGET: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

pub enum RegistryMsg {
    /// The user's SessionActor, spawned if it is not running.
    Get {
        user_id: Uuid,
        reply: RpcReplyPort<CoreResult<ActorRef<SessionMsg>>>,
    },
    /// A stop signal from another node: stop the generation if one of ours runs it.
    StopIfLocal { user_id: Uuid, generation_id: Uuid },
    /// A follower on another node asks for a generation's events: publish them if one of ours
    /// runs it.
    PublishIfLocal { request: FollowRequest },
    /// Stops the live generations of one user and then their SessionActor (account deletion).
    StopUser {
        user_id: Uuid,
        reply: RpcReplyPort<CoreResult<()>>,
    },
    /// Stops every live generation of every user (server shutdown).
    StopAllGenerations { reply: RpcReplyPort<CoreResult<()>> },
}

pub struct RegistryArgs {
    pub store: Store,
    pub providers: Providers,
    pub limits: Arc<Limits>,
    pub live: Arc<AtomicUsize>,
    pub metrics: Arc<Metrics>,
}

pub struct RegistryState {
    store: Store,
    providers: Providers,
    limits: Arc<Limits>,
    live: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    by_user: HashMap<Uuid, ActorRef<SessionMsg>>,
    by_actor: HashMap<ActorId, Uuid>,
    failures: HashMap<Uuid, Vec<Instant>>,
}

pub struct SessionRegistry;

impl Actor for SessionRegistry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(
        &self,
        _: ActorRef<RegistryMsg>,
        args: RegistryArgs,
    ) -> Result<RegistryState, ActorProcessingErr> {
        Ok(RegistryState {
            store: args.store,
            providers: args.providers,
            limits: args.limits,
            live: args.live,
            metrics: args.metrics,
            by_user: HashMap::new(),
            by_actor: HashMap::new(),
            failures: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RegistryMsg>,
        msg: RegistryMsg,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RegistryMsg::Get { user_id, reply } => {
                let _ = reply.send(state.on_get(&myself, user_id).await);
            }
            RegistryMsg::StopIfLocal {
                user_id,
                generation_id,
            } => {
                if let Some(session) = state.by_user.get(&user_id) {
                    let _ = session.cast(SessionMsg::StopIfLocal { generation_id });
                }
            }
            RegistryMsg::PublishIfLocal { request } => {
                if let Some(session) = state.by_user.get(&request.user_id) {
                    let _ = session.cast(SessionMsg::PublishIfLocal { request });
                }
            }
            RegistryMsg::StopUser { user_id, reply } => {
                let Some(session) = state.by_user.get(&user_id).cloned() else {
                    let _ = reply.send(Ok(()));
                    return Ok(());
                };
                // Waited for in a task: the registry keeps serving while the answers are stored.
                tokio::spawn(async move {
                    let stopped =
                        crate::ask::ask(&session, |reply| SessionMsg::StopAll { reply }).await;
                    // Its cached sessions are about to be deleted; nothing should serve them.
                    session.stop(Some("account deleted".into()));
                    let _ = reply.send(match stopped {
                        Err(CoreError::ActorGone) => Ok(()),
                        other => other,
                    });
                });
            }
            RegistryMsg::StopAllGenerations { reply } => {
                let sessions: Vec<ActorRef<SessionMsg>> = state.by_user.values().cloned().collect();
                tokio::spawn(async move {
                    let stops = sessions.iter().map(|session| {
                        crate::ask::ask(session, |reply| SessionMsg::StopAll { reply })
                    });
                    futures_util::future::join_all(stops).await;
                    let _ = reply.send(Ok(()));
                });
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<RegistryMsg>,
        event: SupervisionEvent,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        // Never stop the registry because one user's actor ended (ractor's default would).
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.forget(cell.get_id());
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                // ractor has killed its generations with it; each stores its partial answer as it
                // drops (see ChatState's Drop), so the fresh actor starts clean.
                if let Some(user_id) = state.forget(cell.get_id()) {
                    tracing::error!(%user_id, %err, "session actor failed; it restarts on the next request");
                    state
                        .failures
                        .entry(user_id)
                        .or_default()
                        .push(Instant::now());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl RegistryState {
    fn forget(&mut self, actor: ActorId) -> Option<Uuid> {
        let user_id = self.by_actor.remove(&actor)?;
        if self
            .by_user
            .get(&user_id)
            .is_some_and(|a| a.get_id() == actor)
        {
            self.by_user.remove(&user_id);
        }
        Some(user_id)
    }

    async fn on_get(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        user_id: Uuid,
    ) -> CoreResult<ActorRef<SessionMsg>> {
        if let Some(actor) = self.by_user.get(&user_id) {
            return Ok(actor.clone());
        }
        if let Some(failures) = self.failures.get_mut(&user_id) {
            failures.retain(|at| at.elapsed() < RESTART_WINDOW);
            if failures.len() >= RESTART_BUDGET {
                return Err(CoreError::Overloaded {
                    message:
                        "Your sessions are recovering from repeated failures; try again shortly"
                            .into(),
                    retry_after: RESTART_WINDOW,
                });
            }
            if failures.is_empty() {
                self.failures.remove(&user_id);
            }
        }
        let args = SessionArgs {
            user_id,
            store: self.store.clone(),
            providers: self.providers.clone(),
            limits: self.limits.clone(),
            live: self.live.clone(),
            metrics: self.metrics.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, SessionActor, args, myself.get_cell())
            .await
            .map_err(|err| {
                CoreError::Internal(format!("could not start a session actor: {err}"))
            })?;
        self.by_actor.insert(actor.get_id(), user_id);
        self.by_user.insert(user_id, actor.clone());
        Ok(actor)
    }
}
