//! SessionActor: one per active user. It owns that user's sessions (CRUD and ownership, and the
//! ones in use held in memory with their history), the per-user limits, and the user's live
//! generations, which it supervises.

use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::AtomicUsize, Arc},
    time::{Duration, Instant},
};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::{sync::mpsc, task::JoinHandle};
use uuid::Uuid;

use super::{
    cache::{HistoryMessage, SessionCache},
    pages::{self, ListSessions, MessagePageRequest, SessionPage},
    titles::make_title,
    views::{SessionDetail, SessionUsage, SessionView},
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
/// The longest system prompt, in characters: it goes upstream with every turn.
pub const SYSTEM_PROMPT_MAX_CHARS: usize = 16_000;
/// The title of a session created without one, until an automatic title replaces it.
pub const DEFAULT_TITLE: &str = "New Chat";

/// A new session: both fields optional.
#[derive(Clone, Debug, Default)]
pub struct NewSession {
    /// `None`: the default title, which an automatic title replaces after the first answer.
    pub title: Option<String>,
    pub system_prompt: Option<String>,
}

/// A change to a session: `None` leaves a field as it is; `system_prompt: Some(None)` removes
/// the system prompt.
#[derive(Clone, Debug, Default)]
pub struct SessionChange {
    pub title: Option<String>,
    pub system_prompt: Option<Option<String>>,
}

/// A request to answer `prompt` in a session.
pub struct StartChat {
    pub session_id: Uuid,
    pub prompt: String,
    pub provider: ProviderKind,
    pub model: Option<String>,
    /// The longest answer asked for (capped by configuration).
    pub max_tokens: Option<u32>,
    /// `None` for a new prompt; else what of the session's last turn this one replaces.
    pub replace: Option<Replace>,
}

/// What a turn replaces of the session's last turn: those messages stay as earlier versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replace {
    /// The last prompt answered again (its answer replaced). `prompt` is unused; when the client
    /// sent one (`Some`), it must be that prompt's text.
    Regenerate { sent_prompt: Option<String> },
    /// The last prompt, this message, replaced by `prompt` (its answer too) and answered.
    Edit { message_id: Uuid },
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
        request: ListSessions,
        reply: RpcReplyPort<CoreResult<SessionPage>>,
    },
    Create {
        new: NewSession,
        reply: RpcReplyPort<CoreResult<SessionView>>,
    },
    Get {
        session_id: Uuid,
        page: MessagePageRequest,
        reply: RpcReplyPort<CoreResult<SessionDetail>>,
    },
    Update {
        session_id: Uuid,
        change: SessionChange,
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
    /// An automatic title was made (or not, `None`) for a session.
    TitleMade {
        session_id: Uuid,
        title: Option<String>,
    },
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
    /// Who answers: an automatic title is asked of the same provider and model by default.
    pub(super) provider: ProviderKind,
    pub(super) model: String,
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
    /// The sessions in use, with their history.
    pub(super) cache: SessionCache,
    /// Sessions whose automatic title is being made.
    titling: HashSet<Uuid>,
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
            cache,
            titling: HashSet::new(),
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
            SessionMsg::List { request, reply } => state.on_list(request, reply),
            SessionMsg::Create { new, reply } => {
                let _ = reply.send(state.on_create(new).await);
            }
            SessionMsg::Get {
                session_id,
                page,
                reply,
            } => state.on_get(session_id, page, reply),
            SessionMsg::Update {
                session_id,
                change,
                reply,
            } => {
                let _ = reply.send(state.on_update(session_id, change).await);
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
            } => state.on_generation_ended(&myself, generation_id, ended),
            SessionMsg::IdleCheck => state.on_idle_check(&myself),
            SessionMsg::TitleMade { session_id, title } => {
                state.on_title_made(session_id, title).await;
            }
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

/// A system prompt as stored: trimmed, bounded; empty means none.
fn valid_system_prompt(raw: String) -> CoreResult<Option<String>> {
    let raw = storable(raw);
    let prompt = raw.trim();
    if prompt.chars().count() > SYSTEM_PROMPT_MAX_CHARS {
        return Err(CoreError::Invalid(format!(
            "system_prompt must be at most {SYSTEM_PROMPT_MAX_CHARS} characters"
        )));
    }
    Ok((!prompt.is_empty()).then(|| prompt.to_owned()))
}

impl SessionState {
    /// Reads run in their own task: they need no ordering beyond what the store gives, and a
    /// user with many tabs open should not queue them behind each other.
    fn on_list(&self, request: ListSessions, reply: RpcReplyPort<CoreResult<SessionPage>>) {
        let (store, user_id, cap) = (
            self.store.clone(),
            self.user_id,
            self.limits.max_sessions_per_user,
        );
        tokio::spawn(async move {
            let _ = reply.send(pages::list_sessions(&store, user_id, request, cap).await);
        });
    }

    fn on_get(
        &self,
        session_id: Uuid,
        page: MessagePageRequest,
        reply: RpcReplyPort<CoreResult<SessionDetail>>,
    ) {
        let (store, user_id, cap) = (
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
                let paged = page.limit.is_some() || page.before.is_some();
                let page = pages::message_page(&store, session_id, page, cap).await?;
                // A page's usage is still the whole session's.
                let usage = if paged {
                    store.session_token_totals(session_id).await?
                } else {
                    SessionUsage::of(&page.messages)
                };
                Ok(SessionDetail {
                    session: session.into(),
                    usage,
                    messages: page.messages,
                    older: page.older,
                })
            }
            .await;
            let _ = reply.send(result);
        });
    }

    async fn on_create(&mut self, new: NewSession) -> CoreResult<SessionView> {
        let title_is_default = new.title.is_none();
        let title = valid_title(new.title.unwrap_or_else(|| DEFAULT_TITLE.to_owned()))?;
        let system_prompt = new
            .system_prompt
            .map(valid_system_prompt)
            .transpose()?
            .flatten();
        if self.store.count_sessions(self.user_id).await? >= self.limits.max_sessions_per_user {
            return Err(CoreError::Conflict(format!(
                "Session limit reached ({}); delete a session first",
                self.limits.max_sessions_per_user
            )));
        }
        let session = self
            .store
            .insert_session(self.user_id, &title, title_is_default, system_prompt)
            .await?;
        // A new session has nothing to load: its first prompt needs no read at all.
        self.cache.insert_created(&session);
        Ok(session.into())
    }

    /// A client's change goes through the writer like a turn, bumping the version, so other
    /// nodes holding the session reload it (and its system prompt) before their next turn.
    async fn on_update(
        &mut self,
        session_id: Uuid,
        change: SessionChange,
    ) -> CoreResult<SessionView> {
        let title = change.title.map(valid_title).transpose()?;
        let system_prompt = match change.system_prompt {
            None => None,
            Some(None) => Some(None),
            Some(Some(raw)) => Some(valid_system_prompt(raw)?),
        };
        // Nothing to change (`{}`, or only nulls for what has no null meaning) changes nothing:
        // the session is answered as it is, like a PUT of what is there already.
        if title.is_some() || system_prompt.is_some() {
            self.write_update(session_id, title, system_prompt).await?;
        }
        self.store
            .owned_session(self.user_id, session_id)
            .await?
            .map(SessionView::from)
            .ok_or(CoreError::NotFound("Session"))
    }

    /// Writes a client's change and keeps the cached session in step.
    async fn write_update(
        &mut self,
        session_id: Uuid,
        title: Option<String>,
        system_prompt: Option<Option<String>>,
    ) -> CoreResult<()> {
        if !self
            .store
            .update_session(
                self.user_id,
                session_id,
                title.clone(),
                system_prompt.clone(),
            )
            .await?
        {
            self.cache.forget(session_id);
            return Err(CoreError::NotFound("Session"));
        }
        if let Some(held) = self.cache.get_mut(session_id) {
            held.version += 1;
            if let Some(title) = title {
                held.title = title;
                held.title_is_default = false;
            }
            if let Some(prompt) = system_prompt {
                held.system_prompt = prompt.map(Into::into);
            }
        }
        Ok(())
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
                // Its end finds it no longer among the running (taken off above), so it is
                // stopped here rather than where every other answer is (`on_generation_ended`).
                generation.actor.stop(None);
            }
        }
        if self.store.delete_session(self.user_id, session_id).await? {
            Ok(())
        } else {
            Err(CoreError::NotFound("Session"))
        }
    }

    /// A turn ended: the session is free again, and its history gains the answer.
    fn on_generation_ended(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        generation_id: Uuid,
        ended: EndedTurn,
    ) {
        let Some(generation) = self.end_generation(generation_id) else {
            return;
        };
        let session_id = generation.session_id;
        // Stopped here, not by itself: its end must reach this actor as this message, which
        // takes the answer into the session, and not first as a supervision event (those are
        // handled ahead of messages). Nothing keeps it in memory after: a client that comes
        // back gets the stored answer, committed before `[DONE]`. (Kept for a few seconds, the
        // ended answers of a busy server were most of its memory: 12,000 of them at 2,400
        // turns/s.)
        generation.actor.stop(None);
        if let Some(quota) = self.quota.as_mut() {
            quota.add_tokens(&utc_day(chrono::Utc::now()), ended.spent);
        }
        match self.cache.get_mut(session_id) {
            Some(held) if ended.stored => {
                held.version += 1;
                let answered = ended.answer.is_some();
                if let Some(answer) = ended.answer {
                    held.push(answer);
                }
                let exchange = held
                    .last_exchange()
                    .map(|(prompt, answer)| (prompt.to_string(), answer.to_string()));
                if let Some((prompt, answer)) =
                    exchange.filter(|_| answered && held.title_is_default)
                {
                    if self.titling.insert(session_id) {
                        let (provider, model) = self
                            .providers
                            .title_writer(generation.provider, &generation.model);
                        let (providers, myself) = (self.providers.clone(), myself.clone());
                        // Its own task: the answer's stream ends without waiting for it.
                        tokio::spawn(async move {
                            let title =
                                make_title(&providers, provider, model, &prompt, &answer).await;
                            let _ = myself.cast(SessionMsg::TitleMade { session_id, title });
                        });
                    }
                }
            }
            // Whether the database holds the answer is unknown: read it afresh next time.
            _ => self.cache.forget(session_id),
        }
    }

    /// Stores an automatic title unless a client named the session meanwhile (the write checks
    /// the stored flag, so a rename on another node wins too). Through the writer like a
    /// rename: the version moves, and other nodes reload the session.
    async fn on_title_made(&mut self, session_id: Uuid, title: Option<String>) {
        self.titling.remove(&session_id);
        let Some(title) = title else {
            // The next answer tries again.
            return;
        };
        let written = self
            .store
            .auto_title_session(self.user_id, session_id, title.clone())
            .await;
        match (written, self.cache.get_mut(session_id)) {
            (Ok(true), Some(held)) => {
                held.version += 1;
                held.title = title;
                held.title_is_default = false;
            }
            (Ok(true), None) => {}
            // Named by a client, or gone: what is held is no longer the truth either way.
            (Ok(false), _) => self.cache.forget(session_id),
            (Err(err), _) => {
                tracing::warn!(%session_id, %err, "storing an automatic title");
                // Whether it landed is unknown.
                self.cache.forget(session_id);
            }
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
