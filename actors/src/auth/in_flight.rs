//! One login at a time per account and address on this node, so a burst of parallel guesses
//! cannot all read the failure count before any of them adds to it: each waits for the one
//! before it, then is judged by the count that one left. Only the guesser's own attempts wait;
//! the owner at another address has another key.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

/// The keys with a login in progress, each with the lock its next attempts queue on.
#[derive(Clone, Default)]
pub struct InFlight {
    keys: Arc<Mutex<HashMap<String, Arc<TurnLock<()>>>>>,
}

/// The right to go ahead under one key; the next attempt goes when this is dropped.
pub struct Turn {
    guard: Option<OwnedMutexGuard<()>>,
    key: String,
    keys: Arc<Mutex<HashMap<String, Arc<TurnLock<()>>>>>,
}

impl InFlight {
    /// Waits until no other login under `key` is in progress here.
    pub async fn turn(&self, key: &str) -> Turn {
        let lock = match self.keys.lock() {
            Ok(mut keys) => keys.entry(key.to_owned()).or_default().clone(),
            // A poisoned map (a panic elsewhere) must not stop logins: go unqueued.
            Err(_) => Arc::new(TurnLock::new(())),
        };
        Turn {
            guard: Some(lock.lock_owned().await),
            key: key.to_owned(),
            keys: self.keys.clone(),
        }
    }

    /// True when no login is in progress or waiting under any key.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.keys
            .lock()
            .map(|keys| keys.is_empty())
            .unwrap_or(false)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.guard.take();
        if let Ok(mut keys) = self.keys.lock() {
            // Only the map holds the lock now: nobody waits, so the entry goes.
            if keys
                .get(&self.key)
                .is_some_and(|lock| Arc::strong_count(lock) == 1)
            {
                keys.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn attempts_under_one_key_take_turns_and_leave_nothing_behind() {
        let in_flight = InFlight::default();
        let first = in_flight.turn("p:a").await;
        let other = in_flight.turn("p:b").await;
        let waiting = tokio::spawn({
            let in_flight = in_flight.clone();
            async move {
                let _turn = in_flight.turn("p:a").await;
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "the second attempt waits for the first"
        );
        drop(first);
        waiting.await.unwrap();
        drop(other);
        assert!(in_flight.is_empty());
    }
}
