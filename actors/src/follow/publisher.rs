//! The owning node's side of a remote follow: subscribes to its own generation like a local
//! client and relays what it gets as `NOTIFY`s to the follower's channel until the answer ends.

use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::mpsc;

use super::wire::{encode_control, encode_delta, Notice};
use super::FollowRequest;
use crate::{
    ask::ask,
    chat::{ChatMsg, StreamEvent},
    error::CoreError,
    store::Store,
};

/// How often a silent generation sends its followers a sign of life.
pub(crate) const TICK_EVERY: Duration = Duration::from_secs(1);
/// Events sent as one batch at most (consecutive deltas among them merge).
const BATCH: usize = 256;

/// Publishes `actor`'s generation to the follower of `request`. Ends when the answer has ended
/// (the follower got `Done`), or when the database refuses a notice (the follower hears nothing,
/// and asks again or reads the stored answer).
pub(crate) async fn publish(store: Store, actor: ActorRef<ChatMsg>, request: FollowRequest) {
    let id = request.request;
    let channel = request.reply_to.as_str();
    let subscribe = |after| ask(&actor, move |reply| ChatMsg::Subscribe { after, reply });
    let mut events = match subscribe(request.after).await {
        Ok(events) => events,
        Err(CoreError::Conflict(message)) => {
            let _ = store
                .notify(channel, &encode_control(id, &Notice::Refused(message)))
                .await;
            return;
        }
        // Gone meanwhile: the follower reads the stored answer.
        Err(_) => return,
    };
    if store
        .notify(channel, &encode_control(id, &Notice::Ack))
        .await
        .is_err()
    {
        return;
    }
    let mut sent = request.after;
    loop {
        let first = match tokio::time::timeout(TICK_EVERY, events.recv()).await {
            Ok(Some(event)) => event,
            // Dropped as too slow (or the actor is gone): take up again from what was sent.
            Ok(None) => match subscribe(sent).await {
                Ok(again) => {
                    events = again;
                    continue;
                }
                Err(_) => return,
            },
            Err(_silent) => {
                if store
                    .notify(channel, &encode_control(id, &Notice::Tick))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        let batch = gather(first, &mut events);
        let mut payloads = Vec::new();
        let mut done = false;
        for event in batch {
            match event {
                StreamEvent::Delta { id: end, text } => {
                    payloads.extend(encode_delta(id, end, &text));
                    sent = end;
                }
                StreamEvent::Error { failure } => payloads.push(encode_control(
                    id,
                    &Notice::Error {
                        code: failure.code,
                        message: failure.message,
                    },
                )),
                StreamEvent::Done => {
                    payloads.push(encode_control(id, &Notice::Done));
                    done = true;
                }
            }
        }
        // One after the other: notices from one sender arrive in the order they committed.
        for payload in payloads {
            if store.notify(channel, &payload).await.is_err() {
                return;
            }
        }
        if done {
            return;
        }
    }
}

/// `first` and whatever else is already waiting, consecutive deltas merged into one: under
/// load a follower costs a `NOTIFY` per batch, not per token.
fn gather(first: StreamEvent, events: &mut mpsc::Receiver<StreamEvent>) -> Vec<StreamEvent> {
    let mut batch: Vec<StreamEvent> = vec![first];
    for _ in 1..BATCH {
        let Ok(event) = events.try_recv() else { break };
        match (batch.last_mut(), event) {
            (
                Some(StreamEvent::Delta { id, text }),
                StreamEvent::Delta {
                    id: next,
                    text: more,
                },
            ) => {
                text.push_str(&more);
                *id = next;
            }
            (_, event) => batch.push(event),
        }
    }
    batch
}
