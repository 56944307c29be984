//! The SessionActor's generation work: starting answers, attaching subscribers, stopping
//! them (here or, over PostgreSQL, on another node), and replaying stored answers.

use std::time::Duration;

use chrono::Utc;
use omnichat_entity::messages;
use ractor::{Actor, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    actor::{ChatStart, Generation, Replace, SessionMsg, SessionState, StartChat},
    cache::{CachedSession, Fitted, HistoryMessage},
};
use crate::{
    ask::ask,
    budget::{count_tokens, UserQuota, MESSAGE_OVERHEAD_TOKENS},
    chat::{
        replay, BeginOutcome, ChatArgs, ChatMsg, ChatStreamActor, EarlyFailure, StreamEvent,
        StreamFailure, TurnAccount,
    },
    error::{CoreError, CoreResult},
    providers::{ChatRequest, MessageText, Providers, Role},
    store::{BeginAnswer, LiveLimit, NewAssistantMessage, Store, Write, WriteError, Written},
    text::storable,
};

/// A prompt on its way into a session.
struct Turn<'a> {
    prompt_id: Uuid,
    prompt: &'a MessageText,
    prompt_tokens: u32,
    /// The tokens the history and the prompt may take.
    room: u32,
    /// A regenerate or an edit: what it replaces.
    replacing: Option<&'a Replacing>,
}

/// A regenerate or an edit, checked against the session's stored last turn.
struct Replacing {
    /// Regenerate: the stored prompt answered again (no new user row). Edit: `None`.
    stored_prompt: Option<(Uuid, String)>,
    /// The messages that become earlier versions: the last answer, and for an edit its prompt.
    supersede: Vec<Uuid>,
}

impl SessionState {
    /// Starts a turn: every check against what this actor holds in memory, the prompt's write
    /// queued (not awaited, on a single node), the generation spawned at once. The generation
    /// holds its first token back until the prompt is stored.
    pub(super) async fn on_start_chat(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        request: StartChat,
    ) -> CoreResult<ChatStart> {
        #[cfg(feature = "fault-injection")]
        crate::faults::maybe_panic_session(&request.prompt);
        self.providers.check_configured(request.provider)?;
        self.check_room_for_an_answer(request.session_id)?;
        let replacing = match &request.replace {
            Some(replace) => Some(self.replacing(request.session_id, replace).await?),
            None => None,
        };
        let (stored_prompt_id, prompt) =
            match replacing.as_ref().and_then(|r| r.stored_prompt.clone()) {
                Some((id, text)) => (Some(id), MessageText::from(text)),
                None => (None, MessageText::from(storable(request.prompt))),
            };
        let model = request
            .model
            .unwrap_or_else(|| Providers::default_model(request.provider).to_owned());
        // Counted once: the history keeps the count for every later turn.
        let prompt_tokens =
            count_tokens(request.provider, &model, &prompt).saturating_add(MESSAGE_OVERHEAD_TOKENS);
        let (room, max_tokens) = self.context_room(&model, request.max_tokens, prompt_tokens)?;
        self.check_quota().await?;
        // v7 ids are monotonic: the prompt's, made first, sorts before its answer's.
        let prompt_id = stored_prompt_id.unwrap_or_else(Uuid::now_v7);
        let answer = NewAssistantMessage {
            id: Uuid::now_v7(),
            session_id: request.session_id,
            provider: request.provider.name().to_owned(),
            model: model.clone(),
            generation_id: Uuid::now_v7(),
        };
        let turn = Turn {
            prompt_id,
            prompt: &prompt,
            prompt_tokens,
            room,
            replacing: replacing.as_ref(),
        };
        let (fitted, begin) = self.begin_turn(turn, answer.clone()).await?;

        let (tx, rx) = mpsc::channel(self.limits.subscriber_buffer);
        let generation_id = answer.generation_id;
        let args = ChatArgs {
            generation_id,
            session_id: answer.session_id,
            message_id: answer.id,
            provider: request.provider,
            request: ChatRequest {
                model: model.clone(),
                messages: fitted.messages,
                max_tokens,
            },
            begin,
            providers: self.providers.clone(),
            store: self.store.clone(),
            session: myself.clone(),
            first_subscriber: tx,
            subscriber_buffer: self.limits.subscriber_buffer,
            max_answer_bytes: self.limits.max_answer_bytes,
            on_disconnect: self.limits.on_disconnect,
            live: self.live.clone(),
            metrics: self.metrics.generation(request.provider, &model),
            // The request that started the turn (carried here with its message): the
            // generation's log lines name it.
            parent_span: tracing::Span::current(),
            account: TurnAccount {
                user_id: self.user_id,
                model: model.clone(),
                sent_tokens: fitted.tokens,
                context_omitted: fitted.omitted,
            },
        };
        let (actor, _) = Actor::spawn_linked(None, ChatStreamActor, args, myself.get_cell())
            .await
            .map_err(|err| CoreError::Internal(format!("could not start the generation: {err}")))?;
        self.generations.insert(
            generation_id,
            Generation {
                session_id: answer.session_id,
                actor,
                provider: request.provider,
                model,
            },
        );
        Ok(ChatStart {
            generation_id,
            events: rx,
            context_omitted: fitted.omitted,
        })
    }

    /// The tokens the history and the prompt may take for `model`, and the `max_tokens` that
    /// goes upstream. An asked `max_tokens` is capped by configuration and by what the window
    /// leaves beside the prompt (an answer asked longer than fits gets what fits); without one
    /// the server's answer reserve is kept free. A prompt that cannot fit even alone is refused
    /// here, before anything is stored or sent.
    fn context_room(
        &self,
        model: &str,
        max_tokens: Option<u32>,
        prompt_tokens: u32,
    ) -> CoreResult<(u32, Option<u32>)> {
        let context = &self.limits.context;
        if max_tokens == Some(0) {
            return Err(CoreError::Invalid("max_tokens must be at least 1".into()));
        }
        let window = context.windows.window(model);
        let asked = max_tokens.map(|asked| {
            asked
                .min(context.max_tokens_cap)
                .min(window.saturating_sub(prompt_tokens))
        });
        let reserve = asked.unwrap_or(context.answer_reserve);
        let room = window.saturating_sub(reserve);
        if reserve == 0 || prompt_tokens > room {
            return Err(CoreError::Invalid(format!(
                "The prompt is about {prompt_tokens} tokens; {model} takes {window} tokens with \
                 {} kept for the answer, so a prompt may be at most {} tokens",
                reserve.max(1),
                window.saturating_sub(reserve.max(1))
            )));
        }
        Ok((room, asked))
    }

    /// The user's own quotas, checked in memory (loaded from the database on the first turn of
    /// this actor's life, then counted here).
    async fn check_quota(&mut self) -> CoreResult<()> {
        let now = Utc::now();
        let quota = match self.quota.take() {
            Some(quota) => quota,
            None => self.store.load_quota(self.user_id, now).await?,
        };
        let checked = quota.check(&self.limits.quota, now);
        self.quota = Some(quota);
        checked.map_err(CoreError::QuotaExceeded)
    }

    /// A prompt went upstream (the begin write counted it in the database too).
    fn count_prompt(&mut self, at: chrono::DateTime<Utc>) {
        if let Some(quota) = self.quota.as_mut() {
            quota.count_prompt(at);
        }
    }

    /// The refusal of a prompt the database's counters refused (another node spent the budget).
    async fn refused_by_database(&mut self) -> CoreError {
        let now = Utc::now();
        match self.store.load_quota(self.user_id, now).await {
            Ok(stored) => {
                let refusal = match stored.check(&self.limits.quota, now) {
                    Err(refusal) => refusal,
                    Ok(()) => {
                        let tokens = self
                            .store
                            .tokens_today(self.user_id, now)
                            .await
                            .unwrap_or(0);
                        UserQuota::refusal_from_database(&self.limits.quota, tokens, now)
                    }
                };
                self.quota = Some(stored);
                CoreError::QuotaExceeded(refusal)
            }
            Err(err) => err.into(),
        }
    }

    /// The per-user checks that need nothing but memory.
    fn check_room_for_an_answer(&self, session_id: Uuid) -> CoreResult<()> {
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
            return Err(too_many_answers(self.limits.max_generations_per_user));
        }
        Ok(())
    }

    /// The session as held (loaded from the database on first use); 404 when it is not this
    /// user's.
    async fn held_session(&mut self, session_id: Uuid) -> CoreResult<&mut CachedSession> {
        if self.cache.get_mut(session_id).is_none() {
            let loaded = self
                .store
                .load_session(self.user_id, session_id, self.limits.history_messages)
                .await?
                .ok_or(CoreError::NotFound("Session"))?;
            self.cache.insert_loaded(loaded);
        }
        self.cache
            .get_mut(session_id)
            .ok_or(CoreError::NotFound("Session"))
    }

    /// Queues the prompt's write and takes the turn into the held session; returns what goes
    /// upstream and the write's outcome to wait on.
    ///
    /// On a database other nodes share, the write is awaited before any upstream call: if another
    /// node changed the session, this one reloads it and tries once more, so no provider is ever
    /// called (and paid) with a stale history. Alone on its database, nothing can change a
    /// session behind this actor's back, and the write overlaps the upstream call.
    async fn begin_turn(
        &mut self,
        turn: Turn<'_>,
        answer: NewAssistantMessage,
    ) -> CoreResult<(Fitted, BeginOutcome)> {
        let Turn {
            prompt_id,
            prompt,
            prompt_tokens,
            room,
            replacing,
        } = turn;
        let session_id = answer.session_id;
        let shared = self.store.is_shared();
        let most = self.limits.max_generations_per_user;
        for _ in 0..2 {
            let (user_id, node, limit) = (
                self.user_id,
                self.store.node().to_owned(),
                self.limits.max_messages_per_session,
            );
            let at = Utc::now();
            let quota = self.limits.quota.database_check(at);
            let held = self.held_session(session_id).await?;
            // A regenerate writes only the answer; earlier versions count against the limit too.
            let new_rows = if replacing.is_some_and(|r| r.stored_prompt.is_some()) {
                1
            } else {
                2
            };
            if held.message_count + new_rows > limit {
                return Err(CoreError::Conflict(
                    "This session is full; start a new one".into(),
                ));
            }
            if let Some(replacing) = replacing {
                // The replaced turn leaves the history before the fit: only the current line
                // goes upstream. (The window holds up to two messages fewer until the session is
                // next loaded; what that leaves out is counted in `context_omitted` as usual.)
                held.drop_last_exchange();
                held.superseded_count += replacing.supersede.len() as u64;
            }
            let begin = BeginAnswer {
                user_id,
                expected_version: held.version,
                prompt_id,
                prompt: prompt.to_string(),
                answer: answer.clone(),
                node,
                at,
                quota,
                // Other nodes run this user's answers too: the limit is counted in the database.
                live_limit: shared.then_some(LiveLimit { most, now: at }),
                supersede: replacing.map(|r| r.supersede.clone()).unwrap_or_default(),
                new_prompt: new_rows == 2,
            };
            let fitted = held.fit_upstream(prompt, prompt_tokens, room);
            let written = self
                .store
                .writes()
                .submit(session_id, Write::BeginAnswer(Box::new(begin)));
            // A replacing turn is awaited on every database: it is no hot path, and the history
            // held was changed for it, so a write that failed must not leave it held.
            let outcome = if shared || replacing.is_some() {
                let result = written.await.unwrap_or(Err(WriteError::Closed));
                if replacing.is_some() && !matches!(result, Ok(Written::Done)) {
                    self.cache.forget(session_id);
                }
                match result? {
                    Written::Done => BeginOutcome::Stored,
                    Written::TooManyAnswers => return Err(too_many_answers(most)),
                    // The replaced messages were chosen at the version held: another change
                    // means choosing again, which is the client's to ask.
                    Written::Missing | Written::Stale if replacing.is_some() => break,
                    Written::Missing | Written::Stale => {
                        self.cache.forget(session_id);
                        continue;
                    }
                    Written::Limited => return Err(self.refused_by_database().await),
                }
            } else {
                BeginOutcome::Pending(written)
            };
            self.count_prompt(at);
            // Re-borrowed: the await above may not hold the first borrow.
            if let Some(held) = self.cache.get_mut(session_id) {
                held.version += 1;
                held.message_count += new_rows;
                held.push(HistoryMessage {
                    role: Role::User,
                    content: prompt.clone(),
                    tokens: prompt_tokens,
                });
            }
            return Ok((fitted, outcome));
        }
        Err(EarlyFailure::SessionChanged.into())
    }

    /// Checks a regenerate or an edit against the session's stored last turn, read afresh (the
    /// session is reloaded too, so the begin expects the version these messages were read at).
    async fn replacing(&mut self, session_id: Uuid, replace: &Replace) -> CoreResult<Replacing> {
        self.cache.forget(session_id);
        // 404 when the session is not this user's.
        self.held_session(session_id).await?;
        let field = match replace {
            Replace::Regenerate { .. } => "regenerate",
            Replace::Edit { .. } => "edit_message_id",
        };
        let mut newest = self
            .store
            .list_messages(session_id, 2)
            .await?
            .into_iter()
            .rev();
        let (answer, prompt) = match (newest.next(), newest.next()) {
            (Some(answer), Some(prompt)) if answer.role == "assistant" && prompt.role == "user" => {
                (answer, prompt)
            }
            _ => {
                // The request is well formed; the session is not in a state it applies to.
                return Err(CoreError::Conflict(format!(
                    "{field}: the session has no answered prompt to replace"
                )));
            }
        };
        if answer.status.as_deref() == Some("streaming") {
            return Err(CoreError::Conflict(
                "An answer is still streaming in this session; stop it or wait for it to finish"
                    .into(),
            ));
        }
        match replace {
            Replace::Regenerate { sent_prompt } => {
                if let Some(sent) = sent_prompt {
                    if storable(sent.clone()) != prompt.content {
                        return Err(CoreError::Conflict(
                            "With regenerate, prompt must be left out or be the session's last \
                             prompt; to change the prompt, send edit_message_id"
                                .into(),
                        ));
                    }
                }
                Ok(Replacing {
                    stored_prompt: Some((prompt.id, prompt.content)),
                    supersede: vec![answer.id],
                })
            }
            Replace::Edit { message_id } => {
                if *message_id != prompt.id {
                    return Err(CoreError::Conflict(
                        "edit_message_id must be the id of the session's last prompt".into(),
                    ));
                }
                Ok(Replacing {
                    stored_prompt: None,
                    supersede: vec![prompt.id, answer.id],
                })
            }
        }
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

    /// The actor of a running generation of this user.
    pub(super) fn generation_actor(&self, generation_id: Uuid) -> Option<ActorRef<ChatMsg>> {
        self.generations
            .get(&generation_id)
            .map(|g| g.actor.clone())
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
        let buffer = self.limits.subscriber_buffer;
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
            let attached = attach_elsewhere(&store, user_id, generation_id, after, buffer).await;
            let _ = reply.send(attached);
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

/// 429: the user has `most` answers streaming already (on this node or, over PostgreSQL, any).
fn too_many_answers(most: usize) -> CoreError {
    CoreError::Limited {
        message: format!("At most {most} answers may stream at once per user"),
        retry_after: Duration::from_secs(1),
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

/// Attaches to a generation this node does not hold: the stored answer if it has ended, else
/// (over PostgreSQL) the live answer followed from the node that runs it.
async fn attach_elsewhere(
    store: &Store,
    user_id: Uuid,
    generation_id: Uuid,
    after: u64,
    buffer: usize,
) -> CoreResult<mpsc::Receiver<StreamEvent>> {
    let find = || async {
        store
            .owned_generation(user_id, generation_id)
            .await?
            .ok_or(CoreError::NotFound("Generation"))
    };
    let mut message = find().await?;
    if message.status.as_deref() == Some("streaming") && store.is_shared() {
        if let Some(events) =
            crate::follow::follow(store, user_id, generation_id, after, buffer).await?
        {
            return Ok(events);
        }
        // Nobody runs it: it ended meanwhile, or its node is gone (503 until it is marked).
        message = find().await?;
    }
    let events = stored_replay(&message, after)?;
    let (tx, rx) = mpsc::channel(events.len().max(1));
    for event in events {
        let _ = tx.try_send(event);
    }
    Ok(rx)
}

/// A stored answer's events from byte `after`: the rest of the text, its error if it failed,
/// then `Done`; 503 while it is still `streaming` (on another node).
pub(crate) fn stored_replay(message: &messages::Model, after: u64) -> CoreResult<Vec<StreamEvent>> {
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
    replay(&message.content, after, Some(failure.as_ref()))
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
