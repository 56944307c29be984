//! The SessionActor's generation work: starting answers, attaching subscribers, stopping
//! them (here or, over PostgreSQL, on another node), and replaying stored answers.

use std::time::Duration;

use omnichat_entity::messages;
use ractor::{Actor, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::actor::{ChatStart, Generation, SessionMsg, SessionState, StartChat};
use crate::{
    ask::ask,
    chat::{replay, ChatArgs, ChatMsg, ChatStreamActor, StreamEvent, StreamFailure},
    error::{CoreError, CoreResult},
    providers::{ChatMessage, ChatRequest, Providers, Role},
    store::{NewAssistantMessage, Store},
};

impl SessionState {
    pub(super) async fn on_start_chat(
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

    pub(super) fn generation_of(&self, cell: &ractor::ActorCell) -> Option<Uuid> {
        self.generations
            .iter()
            .find(|(_, g)| g.actor.get_id() == cell.get_id())
            .map(|(id, _)| *id)
    }

    /// Forgets a running generation.
    pub(super) fn end_generation(&mut self, generation_id: Uuid) -> Option<Generation> {
        self.generations.remove(&generation_id)
    }

    /// The actor of a generation of this user still in memory, running or lingering.
    pub(super) fn generation_actor(&self, generation_id: Uuid) -> Option<ActorRef<ChatMsg>> {
        self.generations
            .get(&generation_id)
            .map(|g| g.actor.clone())
            .or_else(|| self.lingering.get(&generation_id).cloned())
    }

    /// Subscribes from memory when the generation is still here, else replays the stored answer.
    /// Runs in a task: the ChatStreamActor may be busy writing its answer.
    pub(super) fn on_attach(
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

    pub(super) fn on_stop_generation(
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

    pub(super) fn on_stop_all(&self, reply: RpcReplyPort<CoreResult<()>>) {
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
