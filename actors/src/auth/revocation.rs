//! Token generations in memory: the one state `verify_token` consults besides the signature.
//!
//! Every token carries the generation its user had when it was issued; a token older than the
//! user's current generation is refused. The map is filled at login and on a token's first use
//! (one database read per user per node), raised by bumps on this node and, on PostgreSQL, by
//! the bump notices of other nodes (`cluster.rs`). Values only ever rise, so a late read of the
//! database can never lower what a bump already set.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use uuid::Uuid;

use super::TokenSubject;
use crate::{
    error::{CoreError, CoreResult},
    store::Store,
};

/// The generation of a deleted account: above any token's, so all of them are refused.
pub const DELETED: i64 = i64::MAX;

/// Shared by the AuthActor (which bumps) and the Core handle (which checks each request).
#[derive(Clone, Default)]
pub struct Generations {
    by_user: Arc<RwLock<HashMap<Uuid, i64>>>,
}

impl Generations {
    /// The generation known for `user_id`, if any.
    pub fn get(&self, user_id: Uuid) -> Option<i64> {
        self.by_user
            .read()
            .ok()
            .and_then(|map| map.get(&user_id).copied())
    }

    /// Records `generation` for `user_id` unless a higher one is known already.
    pub fn raise(&self, user_id: Uuid, generation: i64) {
        if let Ok(mut map) = self.by_user.write() {
            let known = map.entry(user_id).or_insert(generation);
            *known = (*known).max(generation);
        }
    }

    /// Refuses a token issued below its user's current generation. A user this node has not
    /// seen yet is read from the database once (a missing user reads as deleted).
    pub async fn check(&self, subject: TokenSubject, store: &Store) -> CoreResult<()> {
        let user_id = subject.user_id;
        let current = match self.get(user_id) {
            Some(current) => current,
            None => {
                let stored = store.token_generation(user_id).await?.unwrap_or(DELETED);
                self.raise(user_id, stored);
                // Read again: a revocation heard while the database answered may stand higher.
                self.get(user_id).unwrap_or(stored)
            }
        };
        if subject.generation < current {
            return Err(CoreError::Unauthenticated("Token has been revoked"));
        }
        Ok(())
    }

    /// Forgets everything, so each user's next request reads the database again: after the
    /// bump notices may have been missed (a lost PostgreSQL listener connection).
    pub fn forget_all(&self) {
        if let Ok(mut map) = self.by_user.write() {
            map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_only_rise() {
        let generations = Generations::default();
        let user = Uuid::now_v7();
        assert_eq!(generations.get(user), None);
        generations.raise(user, 2);
        generations.raise(user, 1);
        assert_eq!(generations.get(user), Some(2));
        generations.raise(user, DELETED);
        assert_eq!(generations.get(user), Some(DELETED));
        generations.forget_all();
        assert_eq!(generations.get(user), None);
    }
}
