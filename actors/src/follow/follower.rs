//! The following node's side: asks for a generation that runs elsewhere, then turns the notices
//! into the stream's events, each byte exactly once and in order (ids are byte positions, so a
//! repeated or overlapping notice is cut to what is new, and a gap means asking again from
//! there). If the publisher falls silent it reads the stored answer: ended, it serves the rest
//! from there; still `streaming` past a bound (its node died and nobody has marked it yet), the
//! stream ends with an error.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use uuid::Uuid;

use super::{publisher::TICK_EVERY, FollowRequest, Notice, Registration};
use crate::{
    chat::{StreamEvent, StreamFailure},
    error::{CoreError, CoreResult},
    session::stored_replay,
    store::Store,
};

/// How long a follower waits for the node running the generation to answer its request.
const ACK_WAIT: Duration = Duration::from_secs(2);

/// Subscribes to a generation of `user_id` that another node runs, from byte `after`. `None`
/// when no node answered (the generation ended meanwhile, or its node is gone): the caller reads
/// the stored answer.
pub(crate) async fn follow(
    store: &Store,
    user_id: Uuid,
    generation_id: Uuid,
    after: u64,
    buffer: usize,
) -> CoreResult<Option<mpsc::Receiver<StreamEvent>>> {
    let (registration, mut notices) = store.follows().register();
    let request = FollowRequest {
        user_id,
        generation_id,
        after,
        request: registration.request,
        reply_to: store.follows().channel().to_owned(),
    };
    store.signal_follow(&request).await?;
    let answered = tokio::time::timeout(ACK_WAIT, async {
        while let Some(notice) = notices.recv().await {
            match notice {
                Notice::Ack => return Ok(true),
                Notice::Refused(message) => return Err(CoreError::Conflict(message)),
                _ => {}
            }
        }
        Ok(false)
    })
    .await;
    match answered {
        Ok(Ok(true)) => {}
        Ok(Err(refused)) => return Err(refused),
        Ok(Ok(false)) | Err(_) => return Ok(None),
    }
    let (tx, rx) = mpsc::channel(buffer.max(1));
    let relay = Relay {
        store: store.clone(),
        request,
        have: after,
        errored: false,
        done: false,
        tx,
        _registration: registration,
    };
    tokio::spawn(relay.run(notices));
    Ok(Some(rx))
}

struct Relay {
    store: Store,
    request: FollowRequest,
    /// The answer's bytes the client has (the position to go on from).
    have: u64,
    /// An error event was sent already (a repeated one is not sent twice).
    errored: bool,
    /// The publisher sent `Done`: it has stopped by itself.
    done: bool,
    tx: mpsc::Sender<StreamEvent>,
    _registration: Registration,
}

/// Why the relay stops.
struct Over;

impl Relay {
    async fn run(mut self, notices: mpsc::Receiver<Notice>) {
        self.relay(notices).await;
        if !self.done {
            // The client left, or the answer was read from the store: the publisher, if any,
            // need not go on.
            let leave = super::wire::encode_leave(self.request.request);
            let _ = self.store.notify(super::REQUEST_CHANNEL, &leave).await;
        }
    }

    async fn relay(&mut self, mut notices: mpsc::Receiver<Notice>) {
        // Three ticks missed: the publisher is gone, or its notices are.
        let silence = TICK_EVERY * 3;
        // By then the node that ran it has been marked dead and the answer interrupted.
        let give_up = self.store.stale_after() * 2 + silence;
        let mut heard = Instant::now();
        loop {
            match tokio::time::timeout(silence, notices.recv()).await {
                Ok(Some(notice)) => {
                    heard = Instant::now();
                    if self.apply(notice).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(_silent) => {
                    if self.settle_from_store().await.is_err() {
                        return;
                    }
                    if heard.elapsed() > give_up {
                        let _ = self
                            .fail(
                                "node_lost",
                                "The server running this answer stopped answering",
                            )
                            .await;
                        return;
                    }
                    self.ask_again().await;
                }
            }
        }
    }

    async fn apply(&mut self, notice: Notice) -> Result<(), Over> {
        match notice {
            Notice::Ack | Notice::Tick => Ok(()),
            Notice::Delta { id, text } => {
                let start = id.saturating_sub(text.len() as u64);
                if id <= self.have {
                    return Ok(());
                }
                let fresh = usize::try_from(self.have.saturating_sub(start))
                    .ok()
                    .filter(|_| start <= self.have)
                    .and_then(|skip| text.get(skip..));
                let Some(fresh) = fresh else {
                    // A notice was missed: take up again from what the client has.
                    self.ask_again().await;
                    return Ok(());
                };
                self.send(StreamEvent::Delta {
                    id,
                    text: fresh.to_owned(),
                })
                .await?;
                self.have = id;
                Ok(())
            }
            Notice::Error { code, message } => {
                if self.errored {
                    return Ok(());
                }
                self.errored = true;
                self.send(StreamEvent::Error {
                    failure: Box::new(StreamFailure {
                        code,
                        message,
                        before_output: None,
                    }),
                })
                .await
            }
            Notice::Done => {
                self.done = true;
                let _ = self.send(StreamEvent::Done).await;
                Err(Over)
            }
            Notice::Refused(message) => self.fail("resume_refused", &message).await,
        }
    }

    /// Ends the stream from the stored answer if it is no longer `streaming`.
    async fn settle_from_store(&mut self) -> Result<(), Over> {
        let stored = self
            .store
            .owned_generation(self.request.user_id, self.request.generation_id)
            .await;
        match stored {
            Ok(Some(message)) if message.status.as_deref() != Some("streaming") => {
                match stored_replay(&message, self.have) {
                    Ok(events) => {
                        for event in events {
                            if matches!(event, StreamEvent::Error { .. }) && self.errored {
                                continue;
                            }
                            self.send(event).await?;
                        }
                        Err(Over)
                    }
                    // The client has more than was stored: its node died with text unsaved.
                    Err(_) => {
                        self.fail("interrupted", "The server running this answer stopped")
                            .await
                    }
                }
            }
            Ok(None) => self.fail("not_found", "The answer is gone").await,
            // Still running, or the database is briefly away: keep waiting.
            _ => Ok(()),
        }
    }

    async fn ask_again(&mut self) {
        self.request.after = self.have;
        if let Err(err) = self.store.signal_follow(&self.request).await {
            tracing::warn!(%err, generation_id = %self.request.generation_id, "asking again for a followed answer");
        }
    }

    async fn fail(&mut self, code: &str, message: &str) -> Result<(), Over> {
        if !self.errored {
            self.errored = true;
            let failure = StreamFailure {
                code: code.into(),
                message: message.into(),
                before_output: None,
            };
            self.send(StreamEvent::Error {
                failure: Box::new(failure),
            })
            .await?;
        }
        let _ = self.send(StreamEvent::Done).await;
        Err(Over)
    }

    /// Sends to the client; `Over` once it has gone.
    async fn send(&self, event: StreamEvent) -> Result<(), Over> {
        self.tx.send(event).await.map_err(|_| Over)
    }
}
