//! SessionActor: one per active user. It owns that user's sessions (CRUD and ownership), the
//! per-user limits, and the user's live generations, which it supervises.

use std::{
    collections::HashMap,
    sync::{atomic::AtomicUsize, Arc},
    time::{Duration, Instant},
};

use omnichat_entity::messages;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::{sync::mpsc, task::JoinHandle};
use uuid::Uuid;

use super::views::{MessageView, SessionDetail, SessionView};
use crate::{
    ask::ask,
    chat::{replay, ChatArgs, ChatMsg, ChatStreamActor, StreamEvent, StreamFailure},
    config::Limits,
    error::{CoreError, CoreResult},
    providers::{ChatMessage, ChatRequest, ProviderKind, Providers, Role},
    store::{NewAssistantMessage, Store},
};

pub const TITLE_MAX_CHARS: usize = 200;

/// A request to answer `prompt` in a session.
pub struct StartChat {
    pub session_id: Uuid,
    pub prompt: String,
    pub provider: ProviderKind,
    pub model: Option<String>,
}

/// A started generation: its id and the first subscription to its events.
pub struct ChatStart {
    pub generation_id: Uuid,
    pub events: mpsc::Receiver<StreamEvent>,
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
    /// Stop every live generation (server shutdown); replies once all are stored.
    StopAll {
        reply: RpcReplyPort<CoreResult<()>>,
    },
    /// Sent by a ChatStreamActor just before it closes its subscribers' streams.
    GenerationEnded {
        generation_id: Uuid,
    },
    IdleCheck,
}

pub struct SessionArgs {
    pub user_id: Uuid,
    pub store: Store,
    pub providers: Providers,
    pub limits: Arc<Limits>,
    /// Live generations across the whole server, for shutdown to wait on.
    pub live: Arc<AtomicUsize>,
}

/// A live generation of this user.
struct Generation {
    session_id: Uuid,
    actor: ActorRef<ChatMsg>,
}

pub struct SessionState {
    user_id: Uuid,
    store: Store,
    providers: Providers,
    limits: Arc<Limits>,
    live: Arc<AtomicUsize>,
    /// Running generations.
    generations: HashMap<Uuid, Generation>,
    /// Ended generations still in memory for late subscribers.
    lingering: HashMap<Uuid, ActorRef<ChatMsg>>,
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
        Ok(SessionState {
            user_id: args.user_id,
            store: args.store,
            providers: args.providers,
            limits: args.limits,
            live: args.live,
            generations: HashMap::new(),
            lingering: HashMap::new(),
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
            SessionMsg::GenerationEnded { generation_id } => {
                if let Some(generation) = state.end_generation(generation_id) {
                    state.lingering.insert(generation_id, generation.actor);
                }
            }
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
                    // Its state's Drop stores the partial answer as interrupted.
                    state.end_generation(generation_id);
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

/// Trims a title and checks its length.
fn valid_title(raw: &str) -> CoreResult<String> {
    let title = raw.trim();
    let chars = title.chars().count();
    if chars == 0 || chars > TITLE_MAX_CHARS || title.chars().any(char::is_control) {
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
                let messages = store.list_messages(session_id, limit).await?;
                Ok(SessionDetail {
                    session: session.into(),
                    messages: messages.into_iter().map(MessageView::from).collect(),
                })
            }
            .await;
            let _ = reply.send(result);
        });
    }

    async fn on_create(&self, title: String) -> CoreResult<SessionView> {
        let title = valid_title(&title)?;
        if self.store.count_sessions(self.user_id).await? >= self.limits.max_sessions_per_user {
            return Err(CoreError::Conflict(format!(
                "Session limit reached ({}); delete a session first",
                self.limits.max_sessions_per_user
            )));
        }
        Ok(self
            .store
            .insert_session(self.user_id, &title)
            .await?
            .into())
    }

    async fn on_rename(&self, session_id: Uuid, title: String) -> CoreResult<SessionView> {
        let title = valid_title(&title)?;
        self.store
            .rename_session(self.user_id, session_id, &title)
            .await?
            .map(SessionView::from)
            .ok_or(CoreError::NotFound("Session"))
    }

    async fn on_delete(&mut self, session_id: Uuid) -> CoreResult<()> {
        if self
            .store
            .owned_session(self.user_id, session_id)
            .await?
            .is_none()
        {
            return Err(CoreError::NotFound("Session"));
        }
        // Stop the session's generations first, so none writes into a deleted session.
        let live: Vec<Uuid> = self
            .generations
            .iter()
            .filter(|(_, g)| g.session_id == session_id)
            .map(|(id, _)| *id)
            .collect();
        for generation_id in live {
            if let Some(generation) = self.end_generation(generation_id) {
                let _ = generation.actor.cast(ChatMsg::Stop { reply: None });
            }
        }
        if self.store.delete_session(self.user_id, session_id).await? {
            Ok(())
        } else {
            Err(CoreError::NotFound("Session"))
        }
    }

    async fn on_start_chat(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        request: StartChat,
    ) -> CoreResult<ChatStart> {
        let StartChat {
            session_id,
            prompt,
            provider,
            model,
        } = request;
        #[cfg(feature = "fault-injection")]
        crate::faults::maybe_panic_session(&prompt);
        self.providers.check_configured(provider)?;
        // The checks that need no database come first.
        if self
            .generations
            .values()
            .any(|g| g.session_id == session_id)
        {
            return Err(CoreError::Conflict(
                "An answer is still streaming in this session; stop it or wait for it to finish"
                    .into(),
            ));
        }
        if self.generations.len() >= self.limits.max_generations_per_user {
            return Err(CoreError::Limited {
                message: format!(
                    "At most {} answers may stream at once per user",
                    self.limits.max_generations_per_user
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        // The three reads are independent: run them side by side, one round trip of latency.
        let (session, history, stored) = tokio::join!(
            self.store.owned_session(self.user_id, session_id),
            self.store
                .list_messages(session_id, self.limits.history_messages),
            self.store.count_messages(session_id),
        );
        if session?.is_none() {
            return Err(CoreError::NotFound("Session"));
        }
        let history = history?;
        if stored? + 2 > self.limits.max_messages_per_session {
            return Err(CoreError::Conflict(
                "This session is full; start a new one".into(),
            ));
        }

        let model = model.unwrap_or_else(|| Providers::default_model(provider).to_owned());
        // v7 ids are monotonic: the prompt sorts before its answer.
        let prompt_id = Uuid::now_v7();
        let message_id = Uuid::now_v7();
        let generation_id = Uuid::now_v7();
        let answer = NewAssistantMessage {
            id: message_id,
            session_id,
            provider: provider.name().to_owned(),
            model: model.clone(),
            generation_id,
        };
        self.store.begin_answer(prompt_id, &prompt, answer).await?;
        // The prompt is activity, but marking it need not delay the first token.
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(err) = store.touch_session(session_id).await {
                tracing::warn!(%err, "marking session activity");
            }
        });

        let mut messages = upstream_history(history);
        messages.push(ChatMessage {
            role: Role::User,
            content: prompt,
        });
        let (tx, rx) = mpsc::channel(self.limits.subscriber_buffer);
        let args = ChatArgs {
            generation_id,
            session_id,
            message_id,
            provider,
            request: ChatRequest { model, messages },
            providers: self.providers.clone(),
            store: self.store.clone(),
            session: myself.clone(),
            first_subscriber: tx,
            subscriber_buffer: self.limits.subscriber_buffer,
            max_answer_bytes: self.limits.max_answer_bytes,
            on_disconnect: self.limits.on_disconnect,
            live: self.live.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, ChatStreamActor, args, myself.get_cell())
            .await
            .map_err(|err| CoreError::Internal(format!("could not start the generation: {err}")))?;
        self.generations
            .insert(generation_id, Generation { session_id, actor });
        Ok(ChatStart {
            generation_id,
            events: rx,
        })
    }

    fn generation_of(&self, cell: &ractor::ActorCell) -> Option<Uuid> {
        self.generations
            .iter()
            .find(|(_, g)| g.actor.get_id() == cell.get_id())
            .map(|(id, _)| *id)
    }

    /// Forgets a running generation.
    fn end_generation(&mut self, generation_id: Uuid) -> Option<Generation> {
        self.generations.remove(&generation_id)
    }

    /// The actor of a generation of this user still in memory, running or lingering.
    fn generation_actor(&self, generation_id: Uuid) -> Option<ActorRef<ChatMsg>> {
        self.generations
            .get(&generation_id)
            .map(|g| g.actor.clone())
            .or_else(|| self.lingering.get(&generation_id).cloned())
    }

    /// Subscribes from memory when the generation is still here, else replays the stored answer.
    /// Runs in a task: the ChatStreamActor may be busy writing its answer.
    fn on_attach(
        &self,
        generation_id: Uuid,
        after: u64,
        reply: RpcReplyPort<CoreResult<mpsc::Receiver<StreamEvent>>>,
    ) {
        let actor = self.generation_actor(generation_id);
        let (store, user_id) = (self.store.clone(), self.user_id);
        tokio::spawn(async move {
            if let Some(actor) = actor {
                match ask(&actor, |reply| ChatMsg::Subscribe { after, reply }).await {
                    // It expired between the lookup and the call: fall through to the store.
                    Err(CoreError::ActorGone) => {}
                    other => {
                        let _ = reply.send(other);
                        return;
                    }
                }
            }
            let _ = reply.send(replay_stored(&store, user_id, generation_id, after).await);
        });
    }

    fn on_stop_generation(
        &self,
        generation_id: Uuid,
        reply: RpcReplyPort<CoreResult<&'static str>>,
    ) {
        let actor = self.generation_actor(generation_id);
        let (store, user_id) = (self.store.clone(), self.user_id);
        tokio::spawn(async move {
            if let Some(actor) = actor {
                match ask(&actor, |reply| ChatMsg::Stop { reply: Some(reply) }).await {
                    Err(CoreError::ActorGone) => {}
                    other => {
                        let _ = reply.send(other);
                        return;
                    }
                }
            }
            let _ = reply.send(stop_elsewhere(&store, user_id, generation_id).await);
        });
    }

    fn on_stop_all(&self, reply: RpcReplyPort<CoreResult<()>>) {
        let actors: Vec<ActorRef<ChatMsg>> =
            self.generations.values().map(|g| g.actor.clone()).collect();
        tokio::spawn(async move {
            let stops = actors
                .iter()
                .map(|actor| ask(actor, |reply| ChatMsg::Stop { reply: Some(reply) }));
            futures_util::future::join_all(stops).await;
            let _ = reply.send(Ok(()));
        });
    }

    fn on_idle_check(&self, myself: &ActorRef<SessionMsg>) {
        if self.generations.is_empty() && self.last_active.elapsed() >= self.limits.session_idle {
            tracing::debug!(user_id = %self.user_id, "session actor idle; stopping");
            myself.stop(Some("idle".into()));
        }
    }
}

/// The stored status as one of the final statuses (a `streaming` row with no actor is lost).
fn final_status(status: Option<&str>) -> &'static str {
    match status {
        Some("complete") => "complete",
        Some("stopped") => "stopped",
        _ => "error",
    }
}

/// Replays a stored answer: the text after `after`, its error if it failed, then `Done`.
async fn replay_stored(
    store: &Store,
    user_id: Uuid,
    generation_id: Uuid,
    after: u64,
) -> CoreResult<mpsc::Receiver<StreamEvent>> {
    let message = store
        .owned_generation(user_id, generation_id)
        .await?
        .ok_or(CoreError::NotFound("Generation"))?;
    if message.status.as_deref() == Some("streaming") {
        return Err(streaming_elsewhere());
    }
    let failure = (final_status(message.status.as_deref()) == "error").then(|| StreamFailure {
        code: message
            .finish_reason
            .clone()
            .unwrap_or_else(|| "error".into()),
        message: "The answer ended with an error".into(),
        before_output: None,
    });
    let events = replay(&message.content, after, Some(failure.as_ref()))?;
    let (tx, rx) = mpsc::channel(events.len().max(1));
    for event in events {
        let _ = tx.try_send(event);
    }
    Ok(rx)
}

/// The stored turns worth sending upstream: finished, non-empty user and assistant messages.
fn upstream_history(history: Vec<messages::Model>) -> Vec<ChatMessage> {
    history
        .into_iter()
        .filter(|m| !m.content.is_empty() && m.status.as_deref() != Some("streaming"))
        .filter_map(|m| {
            let role = match m.role.as_str() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "system" => Role::System,
                _ => return None,
            };
            Some(ChatMessage {
                role,
                content: m.content,
            })
        })
        .collect()
}

/// A generation still `streaming` that this node does not hold runs on another node.
fn streaming_elsewhere() -> CoreError {
    CoreError::Overloaded {
        message: "This answer is being written by another server node; try again shortly".into(),
        retry_after: Duration::from_secs(1),
    }
}

/// How long a stop asked here waits for the node running the generation to store it.
const REMOTE_STOP_WAIT: Duration = Duration::from_secs(3);

/// Stops a generation this node does not hold: already over, it reports how it ended; still
/// streaming on another node, it signals that node and waits for the answer to be stored.
async fn stop_elsewhere(
    store: &Store,
    user_id: Uuid,
    generation_id: Uuid,
) -> CoreResult<&'static str> {
    let owned = |m: Option<messages::Model>| m.ok_or(CoreError::NotFound("Generation"));
    let message = owned(store.owned_generation(user_id, generation_id).await?)?;
    if message.status.as_deref() != Some("streaming") {
        return Ok(final_status(message.status.as_deref()));
    }
    if !store.is_shared() {
        return Err(streaming_elsewhere());
    }
    store.signal_stop(user_id, generation_id).await?;
    let deadline = tokio::time::Instant::now() + REMOTE_STOP_WAIT;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let message = owned(store.owned_generation(user_id, generation_id).await?)?;
        if message.status.as_deref() != Some("streaming") {
            return Ok(final_status(message.status.as_deref()));
        }
    }
    Err(streaming_elsewhere())
}
