//! SessionActor: one per active user. It owns that user's sessions (CRUD and ownership, and the
//! ones in use held in memory with their history), the per-user limits, and the user's live
//! generations, which it supervises.

use std::{
    collections::HashMap,
    sync::{atomic::AtomicUsize, Arc},
    time::{Duration, Instant},
};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::{sync::mpsc, task::JoinHandle};
use uuid::Uuid;

use super::{
    cache::{HistoryMessage, SessionCache},
    views::{MessageView, SessionDetail, SessionUsage, SessionView},
};
use crate::{
    ask::ask,
    budget::{utc_day, UserQuota},
    chat::{ChatMsg, StreamEvent},
    config::Limits,
    error::{CoreError, CoreResult},
    metrics::{Alive, Metrics},
    providers::{ProviderKind, Providers},
    store::Store,
    text::storable,
};

pub const TITLE_MAX_CHARS: usize = 200;

/// A request to answer `prompt` in a session.
pub struct StartChat {
    pub session_id: Uuid,
    pub prompt: String,
    pub provider: ProviderKind,
    pub model: Option<String>,
    /// The longest answer asked for (capped by configuration).
    pub max_tokens: Option<u32>,
}

/// A started generation: its id and the first subscription to its events.
pub struct ChatStart {
    pub generation_id: Uuid,
    pub events: mpsc::Receiver<StreamEvent>,
    /// Earlier messages of the session left out of what went upstream.
    pub context_omitted: u32,
}

pub enum SessionMsg {
    List {
        reply: RpcReplyPort<CoreResult<Vec<SessionView>>>,
    },
    Create {
        title: String,
        reply: RpcReplyPort<CoreResult<SessionView>>,
    },
    Get {
        session_id: Uuid,
        reply: RpcReplyPort<CoreResult<SessionDetail>>,
    },
    Rename {
        session_id: Uuid,
        title: String,
        reply: RpcReplyPort<CoreResult<SessionView>>,
    },
    Delete {
        session_id: Uuid,
        reply: RpcReplyPort<CoreResult<()>>,
    },
    StartChat {
        request: StartChat,
        reply: RpcReplyPort<CoreResult<ChatStart>>,
    },
    /// Subscribe to a generation of this user, from byte `after` of its answer.
    Attach {
        generation_id: Uuid,
        after: u64,
        reply: RpcReplyPort<CoreResult<mpsc::Receiver<StreamEvent>>>,
    },
    /// Stop a generation of this user; replies with its final status.
    StopGeneration {
        generation_id: Uuid,
        reply: RpcReplyPort<CoreResult<&'static str>>,
    },
    /// Stop a generation if this node runs it (a signal from another node); never replies.
    StopIfLocal {
        generation_id: Uuid,
    },
    /// Publish a generation's events to a follower on another node if this node runs it.
    PublishIfLocal {
        request: crate::follow::FollowRequest,
    },
    /// Stop every live generation (server shutdown); replies once all are stored.
    StopAll {
        reply: RpcReplyPort<CoreResult<()>>,
    },
    /// Sent by a ChatStreamActor just before it closes its subscribers' streams.
    GenerationEnded {
        generation_id: Uuid,
        ended: EndedTurn,
    },
    IdleCheck,
}

/// How a turn ended, as far as the session's history is concerned.
#[derive(Debug)]
pub struct EndedTurn {
    /// The final write committed: the stored session moved on by one version.
    pub stored: bool,
    /// The answer as history for the next turn (`None` when nothing was stored).
    pub answer: Option<HistoryMessage>,
    /// The tokens the turn cost (prompt and answer), for the user's daily quota.
    pub spent: u64,
}

pub struct SessionArgs {
    pub user_id: Uuid,
    pub store: Store,
    pub providers: Providers,
    pub limits: Arc<Limits>,
    /// Live generations across the whole server, for shutdown to wait on.
    pub live: Arc<AtomicUsize>,
    pub metrics: Arc<Metrics>,
}

/// A live generation of this user.
pub(super) struct Generation {
    pub(super) session_id: Uuid,
    pub(super) actor: ActorRef<ChatMsg>,
}

pub struct SessionState {
    pub(super) user_id: Uuid,
    pub(super) store: Store,
    pub(super) providers: Providers,
    pub(super) limits: Arc<Limits>,
    pub(super) live: Arc<AtomicUsize>,
    pub(super) metrics: Arc<Metrics>,
    /// Counted in the `session_actors` gauge while this state exists.
    _alive: Alive,
    /// Running generations.
    pub(super) generations: HashMap<Uuid, Generation>,
    /// Ended generations still in memory for late subscribers.
    pub(super) lingering: HashMap<Uuid, ActorRef<ChatMsg>>,
    /// The sessions in use, with their history.
    pub(super) cache: SessionCache,
    /// The user's quota counters, loaded on the first turn.
    pub(super) quota: Option<UserQuota>,
    last_active: Instant,
    idle_timer: JoinHandle<()>,
}

pub struct SessionActor;

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        let check_every = (args.limits.session_idle / 2).max(Duration::from_millis(50));
        let idle_timer = myself.send_interval(check_every, || SessionMsg::IdleCheck);
        let cache = SessionCache::new(
            usize::try_from(args.limits.history_messages).unwrap_or(usize::MAX),
            args.limits.cached_sessions_per_user,
            args.limits.session_idle,
        );
        Ok(SessionState {
            user_id: args.user_id,
            store: args.store,
            providers: args.providers,
            limits: args.limits,
            live: args.live,
            _alive: Alive::new(args.metrics.session_actor_gauge()),
            metrics: args.metrics,
            generations: HashMap::new(),
            lingering: HashMap::new(),
            cache,
            quota: None,
            last_active: Instant::now(),
            idle_timer,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        msg: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        if !matches!(
            msg,
            SessionMsg::IdleCheck | SessionMsg::GenerationEnded { .. }
        ) {
            state.last_active = Instant::now();
        }
        match msg {
            SessionMsg::List { reply } => state.on_list(reply),
            SessionMsg::Create { title, reply } => {
                let _ = reply.send(state.on_create(title).await);
            }
            SessionMsg::Get { session_id, reply } => state.on_get(session_id, reply),
            SessionMsg::Rename {
                session_id,
                title,
                reply,
            } => {
                let _ = reply.send(state.on_rename(session_id, title).await);
            }
            SessionMsg::Delete { session_id, reply } => {
                let _ = reply.send(state.on_delete(session_id).await);
            }
            SessionMsg::StartChat { request, reply } => {
                let _ = reply.send(state.on_start_chat(&myself, request).await);
            }
            SessionMsg::Attach {
                generation_id,
                after,
                reply,
            } => state.on_attach(generation_id, after, reply),
            SessionMsg::StopGeneration {
                generation_id,
                reply,
            } => state.on_stop_generation(generation_id, reply),
            SessionMsg::StopAll { reply } => state.on_stop_all(reply),
            SessionMsg::StopIfLocal { generation_id } => {
                if let Some(generation) = state.generations.get(&generation_id) {
                    let _ = generation.actor.cast(ChatMsg::Stop { reply: None });
                }
            }
            SessionMsg::PublishIfLocal { request } => {
                if let Some(actor) = state.generation_actor(request.generation_id) {
                    let store = state.store.clone();
                    store
                        .follows()
                        .start_publishing(store.clone(), actor, request);
                }
            }
            SessionMsg::GenerationEnded {
                generation_id,
                ended,
            } => state.on_generation_ended(generation_id, ended),
            SessionMsg::IdleCheck => state.on_idle_check(&myself),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<SessionMsg>,
        event: SupervisionEvent,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        // A generation ending, even by panic, must never take this user's other state down.
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                state
                    .lingering
                    .retain(|_, actor| actor.get_id() != cell.get_id());
                if let Some(generation_id) = state.generation_of(&cell) {
                    tracing::error!(%generation_id, %err, "generation crashed");
                    // Its state's Drop stores the partial answer as interrupted, in a write this
                    // actor does not see: what it holds of the session is no longer the truth.
                    if let Some(generation) = state.end_generation(generation_id) {
                        state.cache.forget(generation.session_id);
                    }
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state
                    .lingering
                    .retain(|_, actor| actor.get_id() != cell.get_id());
                if let Some(generation_id) = state.generation_of(&cell) {
                    state.end_generation(generation_id);
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<SessionMsg>,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        state.idle_timer.abort();
        Ok(())
    }
}

/// Trims a title and checks it: at most 200 characters as sent (so the limit is the `maxLength`
/// the API document states), not all white space, no control characters.
fn valid_title(raw: String) -> CoreResult<String> {
    let raw = storable(raw);
    let title = raw.trim();
    if title.is_empty()
        || raw.chars().count() > TITLE_MAX_CHARS
        || raw.chars().any(char::is_control)
    {
        return Err(CoreError::Invalid(format!(
            "title must be 1 to {TITLE_MAX_CHARS} characters without control characters"
        )));
    }
    Ok(title.to_owned())
}

impl SessionState {
    /// Reads run in their own task: they need no ordering beyond what the store gives, and a
    /// user with many tabs open should not queue them behind each other.
    fn on_list(&self, reply: RpcReplyPort<CoreResult<Vec<SessionView>>>) {
        let (store, user_id, limit) = (
            self.store.clone(),
            self.user_id,
            self.limits.max_sessions_per_user,
        );
        tokio::spawn(async move {
            let result = store.list_sessions(user_id, limit).await;
            let _ = reply.send(
                result
                    .map(|rows| rows.into_iter().map(SessionView::from).collect())
                    .map_err(Into::into),
            );
        });
    }

    fn on_get(&self, session_id: Uuid, reply: RpcReplyPort<CoreResult<SessionDetail>>) {
        let (store, user_id, limit) = (
            self.store.clone(),
            self.user_id,
            self.limits.max_messages_per_session,
        );
        tokio::spawn(async move {
            let result = async {
                let session = store
                    .owned_session(user_id, session_id)
                    .await?
                    .ok_or(CoreError::NotFound("Session"))?;
                let messages: Vec<MessageView> = store
                    .list_messages(session_id, limit)
                    .await?
                    .into_iter()
                    .map(MessageView::from)
                    .collect();
                Ok(SessionDetail {
                    session: session.into(),
                    usage: SessionUsage::of(&messages),
                    messages,
                })
            }
            .await;
            let _ = reply.send(result);
        });
    }

    async fn on_create(&mut self, title: String) -> CoreResult<SessionView> {
        let title = valid_title(title)?;
        if self.store.count_sessions(self.user_id).await? >= self.limits.max_sessions_per_user {
            return Err(CoreError::Conflict(format!(
                "Session limit reached ({}); delete a session first",
                self.limits.max_sessions_per_user
            )));
        }
        let session = self.store.insert_session(self.user_id, &title).await?;
        // A new session has nothing to load: its first prompt needs no read at all.
        self.cache.insert_created(&session);
        Ok(session.into())
    }

    async fn on_rename(&mut self, session_id: Uuid, title: String) -> CoreResult<SessionView> {
        let title = valid_title(title)?;
        if !self
            .store
            .rename_session(self.user_id, session_id, &title)
            .await?
        {
            self.cache.forget(session_id);
            return Err(CoreError::NotFound("Session"));
        }
        if let Some(held) = self.cache.get_mut(session_id) {
            held.version += 1;
            held.title.clone_from(&title);
        }
        self.store
            .owned_session(self.user_id, session_id)
            .await?
            .map(SessionView::from)
            .ok_or(CoreError::NotFound("Session"))
    }

    async fn on_delete(&mut self, session_id: Uuid) -> CoreResult<()> {
        self.cache.forget(session_id);
        // No ownership read first: only this user's generations are stopped below, and the
        // delete itself is scoped by owner, so another user's session is a 404 all the same.
        // Stop the session's generations and wait until each has written its answer: a final
        // write racing the cascade delete would deadlock on PostgreSQL (it locks the message,
        // then the session; the delete locks them the other way round).
        let live: Vec<Uuid> = self
            .generations
            .iter()
            .filter(|(_, g)| g.session_id == session_id)
            .map(|(id, _)| *id)
            .collect();
        for generation_id in live {
            if let Some(generation) = self.end_generation(generation_id) {
                let stopped = ask(&generation.actor, |reply| ChatMsg::Stop {
                    reply: Some(reply),
                })
                .await;
                if let Err(err) = stopped {
                    tracing::warn!(%generation_id, %err, "stopping a generation of a deleted session");
                }
            }
        }
        if self.store.delete_session(self.user_id, session_id).await? {
            Ok(())
        } else {
            Err(CoreError::NotFound("Session"))
        }
    }

    /// A turn ended: the session is free again, and its history gains the answer.
    fn on_generation_ended(&mut self, generation_id: Uuid, ended: EndedTurn) {
        let Some(generation) = self.end_generation(generation_id) else {
            return;
        };
        self.lingering.insert(generation_id, generation.actor);
        if let Some(quota) = self.quota.as_mut() {
            quota.add_tokens(&utc_day(chrono::Utc::now()), ended.spent);
        }
        match self.cache.get_mut(generation.session_id) {
            Some(held) if ended.stored => {
                held.version += 1;
                if let Some(answer) = ended.answer {
                    held.push(answer);
                }
            }
            // Whether the database holds the answer is unknown: read it afresh next time.
            _ => self.cache.forget(generation.session_id),
        }
    }

    fn on_idle_check(&mut self, myself: &ActorRef<SessionMsg>) {
        let generations = &self.generations;
        self.cache
            .evict_idle(|id| generations.values().any(|g| g.session_id == id));
        if self.generations.is_empty() && self.last_active.elapsed() >= self.limits.session_idle {
            tracing::debug!(user_id = %self.user_id, "session actor idle; stopping");
            myself.stop(Some("idle".into()));
        }
    }
}
