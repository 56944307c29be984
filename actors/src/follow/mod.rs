//! Following a live answer that runs on another node (PostgreSQL only): the follower asks every
//! node, by `NOTIFY omnichat_follow`, to publish one generation's events from a byte position to
//! the follower process's own channel; the node that runs it subscribes like a local client and
//! relays the events as `NOTIFY`s, each under PostgreSQL's 8,000-byte payload limit. An answer
//! nobody follows from another node sends nothing.
//!
//! This module holds the wire format and the per-process table of waiting followers; the two
//! sides are in `follower` and `publisher`.

mod follower;
mod publisher;
mod wire;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use ractor::ActorRef;
use rand::RngCore;
use tokio::{sync::mpsc, task::AbortHandle};

use crate::{chat::ChatMsg, store::Store};

pub(crate) use follower::follow;
use publisher::publish;
pub use wire::FollowRequest;
pub(crate) use wire::{decode_leave, Notice};

/// The channel follow requests travel on (see [`FollowRequest`] for the payload).
pub(crate) const REQUEST_CHANNEL: &str = "omnichat_follow";

/// Notices a follower may have waiting before further ones are dropped (it then asks again).
const NOTICE_BUFFER: usize = 1_024;

/// This process's followers of remote answers, by request id, and the channel their notices
/// arrive on. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Follows {
    channel: Arc<str>,
    waiting: Arc<Mutex<HashMap<u64, mpsc::Sender<Notice>>>>,
    /// What this node publishes to followers elsewhere, by request id, so a follower that
    /// leaves early can end it.
    publishing: Arc<Mutex<HashMap<u64, AbortHandle>>>,
}

impl Default for Follows {
    fn default() -> Self {
        // Per process, not per node id: a node restarted under the same id must not get the
        // notices meant for its previous run.
        let mut bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut bytes);
        let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Follows {
            channel: Arc::from(format!("omnichat_follow_{key}")),
            waiting: Arc::default(),
            publishing: Arc::default(),
        }
    }
}

impl Follows {
    /// The channel this process's followers get their notices on.
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// Registers a follower: notices tagged `request` go to the returned receiver until the
    /// registration is dropped.
    fn register(&self) -> (Registration, mpsc::Receiver<Notice>) {
        let (tx, rx) = mpsc::channel(NOTICE_BUFFER);
        let mut request = rand::rng().next_u64();
        if let Ok(mut waiting) = self.waiting.lock() {
            while waiting.contains_key(&request) {
                request = rand::rng().next_u64();
            }
            waiting.insert(request, tx);
        }
        let registration = Registration {
            follows: self.clone(),
            request,
        };
        (registration, rx)
    }

    /// Hands a notice that arrived on this process's channel to its follower. A follower that
    /// is gone, or whose buffer is full, misses it: it notices the gap and asks again.
    pub(crate) fn dispatch(&self, payload: &str) {
        let Some((request, notice)) = wire::decode(payload) else {
            tracing::warn!(payload, "ignoring a malformed follow notice");
            return;
        };
        let sender = self
            .waiting
            .lock()
            .ok()
            .and_then(|w| w.get(&request).cloned());
        if let Some(sender) = sender {
            let _ = sender.try_send(notice);
        }
    }

    /// Publishes `actor`'s generation to the follower of `request` until the answer ends or
    /// the follower leaves.
    pub(crate) fn start_publishing(
        &self,
        store: Store,
        actor: ActorRef<ChatMsg>,
        request: FollowRequest,
    ) {
        let id = request.request;
        let follows = self.clone();
        let task = tokio::spawn(async move {
            publish(store, actor, request).await;
            if let Ok(mut publishing) = follows.publishing.lock() {
                publishing.remove(&id);
            }
        });
        if let Ok(mut publishing) = self.publishing.lock() {
            if !task.is_finished() {
                publishing.insert(id, task.abort_handle());
            }
        }
    }

    /// A follower left (its client went away): stop publishing to it, if this node does.
    pub(crate) fn stop_publishing(&self, request: u64) {
        let task = self
            .publishing
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&request));
        if let Some(task) = task {
            task.abort();
        }
    }

    /// Followers waiting right now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or(0)
    }
}

/// A follower's place in [`Follows`]; dropping it stops the notices.
struct Registration {
    follows: Follows,
    request: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.follows.waiting.lock() {
            waiting.remove(&self.request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notices_reach_their_follower_until_it_leaves() {
        let follows = Follows::default();
        let (registration, mut rx) = follows.register();
        let payload = wire::encode_control(registration.request, &Notice::Tick);
        follows.dispatch(&payload);
        assert!(matches!(rx.recv().await, Some(Notice::Tick)));
        follows.dispatch(&wire::encode_control(
            registration.request + 1,
            &Notice::Tick,
        ));
        assert!(rx.try_recv().is_err());
        drop(registration);
        assert_eq!(follows.len(), 0);
    }
}
