//! ChatStreamActor: one per answer. It calls the provider, fans the answer out to every
//! subscriber, and writes it once when it ends; the SessionActor stops it once it has taken the
//! answer into the session. A client that comes back later gets the stored answer, which is
//! committed before anyone is sent `[DONE]`.
//!
//! The upstream stream is read by a task the actor owns, which messages the actor; so the mailbox
//! stays free for `Subscribe` and `Stop`, and `post_stop` can always abort the upstream request.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures_util::{FutureExt, StreamExt};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tracing::Instrument;
use uuid::Uuid;

use super::{
    events::{EarlyFailure, StreamEvent, StreamFailure},
    replay::replay,
};
use crate::{
    budget::MESSAGE_OVERHEAD_TOKENS,
    config::DisconnectPolicy,
    error::CoreResult,
    metrics::{Alive, GenerationMetrics},
    providers::{
        ChatRequest, ProviderError, ProviderEvent, ProviderKind, Providers, Role, TokenUsage,
    },
    session::{EndedTurn, HistoryMessage, SessionMsg},
    store::{Store, WriteError, Written},
    text::storable,
};

/// The most upstream events one mailbox message carries: a bound on the work of one message, so
/// a `Stop` never waits long behind a burst.
const MAX_EVENTS_PER_MESSAGE: usize = 64;
/// How often the actor looks for subscribers that went away (for the `cancel` policy).
const SUBSCRIBER_CHECK: Duration = Duration::from_millis(250);

/// Where the prompt's write stands when the generation starts.
pub enum BeginOutcome {
    /// Committed already (the SessionActor waited for it).
    Stored,
    /// Queued: the first token waits for it.
    Pending(oneshot::Receiver<Result<Written, WriteError>>),
}

pub enum ChatMsg {
    /// The prompt could not be stored; the reader task has given up the upstream.
    BeginFailed(EarlyFailure),
    /// What the upstream reader task read at once, in order: everything the provider stream had
    /// ready (several tokens arrive in one network read under load), so the mailbox takes one
    /// message per read rather than one per token. An error is always last.
    Upstream(Vec<Result<ProviderEvent, ProviderError>>),
    /// The upstream stream ended without an error.
    UpstreamEnded,
    /// Attach a subscriber that first gets the answer after byte `after`.
    Subscribe {
        after: u64,
        reply: RpcReplyPort<CoreResult<mpsc::Receiver<StreamEvent>>>,
    },
    /// End now, keeping the partial answer as `stopped`; replies with the final status.
    Stop {
        reply: Option<RpcReplyPort<CoreResult<&'static str>>>,
    },
    CheckSubscribers,
}

pub struct ChatArgs {
    pub generation_id: Uuid,
    pub session_id: Uuid,
    pub message_id: Uuid,
    pub provider: ProviderKind,
    pub request: ChatRequest,
    /// The prompt's write: no token is sent to anyone before it is committed.
    pub begin: BeginOutcome,
    pub providers: Providers,
    pub store: Store,
    pub session: ActorRef<SessionMsg>,
    pub first_subscriber: mpsc::Sender<StreamEvent>,
    pub subscriber_buffer: usize,
    pub max_answer_bytes: usize,
    pub on_disconnect: DisconnectPolicy,
    /// The server-wide count of running generations.
    pub live: Arc<AtomicUsize>,
    /// This generation's instruments, their labels resolved.
    pub metrics: GenerationMetrics,
    /// The span of the request that started it: the generation's log lines carry its request id.
    pub parent_span: tracing::Span,
    pub account: TurnAccount,
}

/// Who pays for an answer and what went upstream for it: its usage record and estimates.
#[derive(Clone, Debug)]
pub struct TurnAccount {
    pub user_id: Uuid,
    pub model: String,
    /// The tokens sent upstream as counted here: the estimate of the prompt's usage when the
    /// provider reports none.
    pub sent_tokens: u32,
    /// Earlier messages of the session left out of what went upstream.
    pub context_omitted: u32,
}

/// Counts a generation as running from start until it ends. A guard, so that even a panic,
/// which drops the actor's state without `post_stop`, counts it out.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(live: Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::AcqRel);
        Running(live)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct ChatState {
    pub(super) generation_id: Uuid,
    pub(super) session_id: Uuid,
    pub(super) message_id: Uuid,
    pub(super) provider: ProviderKind,
    pub(super) store: Store,
    pub(super) session: ActorRef<SessionMsg>,
    pub(super) subscriber_buffer: usize,
    pub(super) max_answer_bytes: usize,
    pub(super) on_disconnect: DisconnectPolicy,
    /// The answer so far: also the replay buffer for late or returning subscribers.
    pub(super) text: String,
    pub(super) usage: TokenUsage,
    pub(super) finish_reason: Option<String>,
    pub(super) subscribers: Vec<mpsc::Sender<StreamEvent>>,
    pub(super) reader: JoinHandle<()>,
    pub(super) ticker: Option<JoinHandle<()>>,
    /// Set once the generation has ended: its final status and failure, if any.
    pub(super) ended: Option<(&'static str, Option<StreamFailure>)>,
    /// The prompt was never stored, so there is no answer row to write.
    pub(super) begin_failed: bool,
    /// Held while running; dropped when the answer ends (before the actor stops).
    running: Option<Running>,
    pub(super) metrics: GenerationMetrics,
    started: Instant,
    /// Every log line of the generation is made inside it (see `handle`).
    pub(super) span: tracing::Span,
    pub(super) account: TurnAccount,
    /// The finished answer's tokens as counted here, once (its final write, its history entry
    /// and the user's quota all read it).
    pub(super) answer_tokens: std::sync::OnceLock<u32>,
    /// Counted in the `generation_actors` gauge while this state exists.
    _alive: Alive,
}

pub struct ChatStreamActor;

impl Actor for ChatStreamActor {
    type Msg = ChatMsg;
    type State = ChatState;
    type Arguments = ChatArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ChatMsg>,
        args: ChatArgs,
    ) -> Result<ChatState, ActorProcessingErr> {
        let span = tracing::info_span!(
            parent: &args.parent_span,
            "generation",
            generation_id = %args.generation_id,
            provider = args.provider.name(),
        );
        let reader = read_upstream(
            myself.clone(),
            args.providers.clone(),
            args.provider,
            args.request,
            args.begin,
        );
        let reader = tokio::spawn(reader.instrument(span.clone()));
        let ticker = (args.on_disconnect == DisconnectPolicy::Cancel)
            .then(|| myself.send_interval(SUBSCRIBER_CHECK, || ChatMsg::CheckSubscribers));
        let alive = Alive::new(args.metrics.shared().generation_actor_gauge());
        Ok(ChatState {
            generation_id: args.generation_id,
            session_id: args.session_id,
            message_id: args.message_id,
            provider: args.provider,
            store: args.store,
            session: args.session,
            subscriber_buffer: args.subscriber_buffer,
            max_answer_bytes: args.max_answer_bytes,
            on_disconnect: args.on_disconnect,
            text: String::new(),
            usage: TokenUsage::default(),
            finish_reason: None,
            subscribers: vec![args.first_subscriber],
            reader,
            ticker,
            ended: None,
            begin_failed: false,
            running: Some(Running::start(args.live)),
            metrics: args.metrics,
            started: Instant::now(),
            span,
            account: args.account,
            answer_tokens: std::sync::OnceLock::new(),
            _alive: alive,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<ChatMsg>,
        msg: ChatMsg,
        state: &mut ChatState,
    ) -> Result<(), ActorProcessingErr> {
        // Messages from the reader task come in the generation's span already; the others (a
        // stop, a subscriber, a timer) are handled in it too, under whatever span sent them.
        let span = state.span.clone();
        // Boxed: ractor keeps the loop that awaits this future for the actor's whole life, at
        // the size of its largest state; unboxed, that is ~3 KiB more on every live answer.
        Box::pin(Self::dispatch(msg, state)).instrument(span).await;
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<ChatMsg>,
        state: &mut ChatState,
    ) -> Result<(), ActorProcessingErr> {
        state.reader.abort();
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        Ok(())
    }
}

impl ChatStreamActor {
    async fn dispatch(msg: ChatMsg, state: &mut ChatState) {
        match msg {
            ChatMsg::Subscribe { after, reply } => {
                let _ = reply.send(state.subscribe(after));
            }
            ChatMsg::Stop { reply } => {
                if state.ended.is_none() {
                    state.finish("stopped", None).await;
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(state.ended.as_ref().map_or("stopped", |(s, _)| *s)));
                }
            }
            // Everything below is about a running generation; once ended it is moot.
            _ if state.ended.is_some() => {}
            ChatMsg::BeginFailed(failure) => state.on_begin_failed(failure).await,
            ChatMsg::Upstream(items) => {
                if state.subscribers_short_of_room(items.len()) {
                    // Let the subscribers' connections drain their buffers before a burst (a
                    // fast provider's whole answer may be ready at once): a reader that is only
                    // waiting its turn on this thread is not one that fell behind.
                    tokio::task::yield_now().await;
                }
                for item in items {
                    // An event may end the generation (an answer too long): the rest is moot.
                    if state.ended.is_some() {
                        break;
                    }
                    match item {
                        Ok(event) => state.on_upstream_event(event).await,
                        Err(error) => state.on_upstream_error(error).await,
                    }
                }
            }
            ChatMsg::UpstreamEnded => state.finish("complete", None).await,
            ChatMsg::CheckSubscribers => state.on_check_subscribers().await,
        }
    }
}

/// Opens the upstream stream while the prompt's write commits, then forwards every item to the
/// actor, stopping at the first error. Nothing is read from upstream before the write is known
/// to be committed, so no client ever sees a token of a prompt that is not stored.
async fn read_upstream(
    myself: ActorRef<ChatMsg>,
    providers: Providers,
    provider: ProviderKind,
    request: ChatRequest,
    begin: BeginOutcome,
) {
    let open = providers.open(provider, request);
    let stored = begin_stored(begin);
    tokio::pin!(open, stored);
    let mut opened = None;
    let stored = tokio::select! {
        stored = &mut stored => stored,
        result = &mut open => {
            opened = Some(result);
            (&mut stored).await
        }
    };
    if let Err(failure) = stored {
        let _ = myself.cast(ChatMsg::BeginFailed(failure));
        return;
    }
    let opened = match opened {
        Some(result) => result,
        None => open.await,
    };
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(error) => {
            let _ = myself.cast(ChatMsg::Upstream(vec![Err(error)]));
            return;
        }
    };
    // The first event goes on alone, at once: it is the one a client is waiting for.
    let mut gather = false;
    while let Some(first) = stream.next().await {
        let mut failed = first.is_err();
        let mut ended = false;
        let mut items = vec![first];
        // After it, whatever else is ready goes in the same message, so a burst of tokens is
        // one actor message and one write to the client, not one each. hyper hands a body over
        // a chunk at a time (its connection task decodes the next only once this one is taken),
        // so one yield lets it catch up; a stream with nothing more to give is not waited for.
        let mut yielded = false;
        while gather && !failed && items.len() < MAX_EVENTS_PER_MESSAGE {
            match stream.next().now_or_never() {
                Some(Some(item)) => {
                    failed = item.is_err();
                    items.push(item);
                    yielded = false;
                }
                Some(None) => {
                    ended = true;
                    break;
                }
                None if !yielded => {
                    tokio::task::yield_now().await;
                    yielded = true;
                }
                None => break,
            }
        }
        gather = true;
        if myself.cast(ChatMsg::Upstream(items)).is_err() || failed {
            return;
        }
        if ended {
            break;
        }
    }
    let _ = myself.cast(ChatMsg::UpstreamEnded);
}

/// Waits for the prompt's write; why it failed, as the client will be told.
async fn begin_stored(begin: BeginOutcome) -> Result<(), EarlyFailure> {
    let BeginOutcome::Pending(written) = begin else {
        return Ok(());
    };
    match written.await {
        Ok(Ok(Written::Done)) => Ok(()),
        Ok(Ok(Written::Missing | Written::Stale | Written::Limited | Written::TooManyAnswers)) => {
            Err(EarlyFailure::SessionChanged)
        }
        Ok(Err(err)) => {
            tracing::error!(%err, "could not store a prompt");
            Err(EarlyFailure::NotStored)
        }
        Err(_) => Err(EarlyFailure::NotStored),
    }
}

impl ChatState {
    async fn on_upstream_event(&mut self, event: ProviderEvent) {
        match event {
            ProviderEvent::Delta(text) if text.is_empty() => {}
            ProviderEvent::Delta(text) => {
                // What the client is streamed is exactly what will be stored.
                let text = storable(text);
                #[cfg(feature = "fault-injection")]
                crate::faults::maybe_panic_generation(&text);
                if self.text.len() + text.len() > self.max_answer_bytes {
                    let failure = StreamFailure {
                        code: "answer_too_long".into(),
                        message: format!(
                            "The answer exceeded {} bytes and was cut off",
                            self.max_answer_bytes
                        ),
                        before_output: None,
                    };
                    self.finish("error", Some(failure)).await;
                    return;
                }
                if self.text.is_empty() {
                    self.metrics.first_token(self.started.elapsed());
                }
                self.text.push_str(&text);
                let event = StreamEvent::Delta {
                    id: self.text.len() as u64,
                    text,
                };
                self.publish(event);
            }
            ProviderEvent::Usage(usage) => self.usage = usage,
            ProviderEvent::Finish(reason) => self.finish_reason = Some(reason),
        }
    }

    async fn on_upstream_error(&mut self, error: ProviderError) {
        self.metrics.upstream_error(&error);
        let failure = StreamFailure {
            code: error.code().to_owned(),
            message: error.to_string(),
            before_output: self
                .text
                .is_empty()
                .then(|| EarlyFailure::Provider(error.clone())),
        };
        self.finish("error", Some(failure)).await;
    }

    async fn on_begin_failed(&mut self, failure: EarlyFailure) {
        self.begin_failed = true;
        let (code, message) = match &failure {
            EarlyFailure::SessionChanged => (
                "session_changed",
                "The session was changed by another server; nothing was stored",
            ),
            _ => {
                // The prompt's write ran without a transaction of its own and was given up at
                // the time bound: its rows may still land. Whatever lands is closed as an error,
                // never left `streaming` (a write that finds no row changes nothing).
                self.store_later(std::sync::Arc::new(self.outcome(
                    String::new(),
                    "error",
                    Some("not_stored".into()),
                )));
                (
                    "not_stored",
                    "The prompt could not be stored in time; send it again",
                )
            }
        };
        let failure = StreamFailure {
            code: code.into(),
            message: message.into(),
            before_output: Some(failure),
        };
        self.finish("error", Some(failure)).await;
    }

    async fn on_check_subscribers(&mut self) {
        self.subscribers.retain(|s| !s.is_closed());
        if self.subscribers.is_empty() && self.on_disconnect == DisconnectPolicy::Cancel {
            tracing::info!(generation_id = %self.generation_id, "last subscriber left; cancelling");
            self.finish("stopped", None).await;
        }
    }

    /// Sends `event` to every subscriber. A subscriber whose buffer is full is dropped rather
    /// than waited for: a slow reader never slows the generation, and it can resume.
    fn publish(&mut self, event: StreamEvent) {
        // The usual case, one subscriber, takes the event itself rather than a copy.
        if let [only] = self.subscribers.as_slice() {
            if !self.offer(only, event) {
                self.subscribers.clear();
            }
            return;
        }
        let subscribers = std::mem::take(&mut self.subscribers);
        self.subscribers = subscribers
            .into_iter()
            .filter(|s| self.offer(s, event.clone()))
            .collect();
    }

    /// Whether some subscriber has room for fewer than twice `burst` more events.
    fn subscribers_short_of_room(&self, burst: usize) -> bool {
        self.subscribers
            .iter()
            .any(|subscriber| subscriber.capacity() < burst.saturating_mul(2))
    }

    /// Hands `event` to one subscriber; false when it is gone or fell behind.
    fn offer(&self, subscriber: &mpsc::Sender<StreamEvent>, event: StreamEvent) -> bool {
        match subscriber.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(generation_id = %self.generation_id, "dropping a subscriber that fell behind");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn subscribe(&mut self, after: u64) -> CoreResult<mpsc::Receiver<StreamEvent>> {
        let ended = self.ended.as_ref().map(|(_, failure)| failure.as_ref());
        let backlog = replay(&self.text, after, ended)?;
        let (tx, rx) = mpsc::channel(backlog.len() + self.subscriber_buffer);
        for event in backlog {
            let _ = tx.try_send(event);
        }
        if self.ended.is_none() {
            self.subscribers.push(tx);
        }
        Ok(rx)
    }

    /// Ends the generation: writes the answer, tells the SessionActor, then closes every stream.
    /// The write's result decides the ending: `[DONE]` alone only once the answer is stored; if
    /// it cannot be stored, an `answer_not_stored` error comes first.
    async fn finish(&mut self, status: &'static str, mut failure: Option<StreamFailure>) {
        if self.ended.is_some() {
            return;
        }
        // Marked at once: a Stop arriving during the write below must not end it twice.
        self.ended = Some((status, failure.clone()));
        self.reader.abort();
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
        let stored = !self.begin_failed && self.store_answer(status).await;
        if !stored && !self.begin_failed {
            failure = Some(StreamFailure {
                code: "answer_not_stored".into(),
                message: "The answer could not be stored yet (the database is unavailable); it \
                          is stored once the database is back"
                    .into(),
                before_output: None,
            });
            self.ended = Some(("error", failure.clone()));
        }
        // Debug, not info: a line per answer is what a busy server can least afford to write.
        tracing::debug!(
            generation_id = %self.generation_id,
            provider = self.provider.name(),
            status,
            stored,
            bytes = self.text.len(),
            "generation ended"
        );
        let answer = stored.then(|| HistoryMessage {
            role: Role::Assistant,
            content: self.text.clone().into(),
            // Counted once, here: the turns after this one read it from the history.
            tokens: self
                .usage
                .completion_tokens
                .unwrap_or_else(|| self.counted_answer())
                .saturating_add(MESSAGE_OVERHEAD_TOKENS),
        });
        let spent = self
            .outcome(String::new(), status, None)
            .charge
            .map_or(0, |c| {
                u64::from(c.prompt_tokens) + u64::from(c.completion_tokens)
            });
        // Tell the SessionActor before the subscribers: a client that reacts to the end at once
        // must find the session free for its next prompt.
        let _ = self.session.cast(SessionMsg::GenerationEnded {
            generation_id: self.generation_id,
            ended: EndedTurn {
                stored,
                answer,
                spent,
            },
        });
        if let Some(failure) = failure {
            self.publish(StreamEvent::Error {
                failure: Box::new(failure),
            });
        }
        self.publish(StreamEvent::Done);
        self.subscribers.clear();
        self.metrics.ended(
            self.ended.as_ref().map_or(status, |(status, _)| *status),
            self.usage,
            self.started.elapsed(),
        );
        self.running = None;
    }
}
