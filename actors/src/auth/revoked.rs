//! Single tokens logged out before they expire (`POST /logout`), in memory: the denylist
//! `verify_token` consults beside the token generations, so the check stays off the database.
//!
//! The database (`revoked_tokens`) is the record: a node fills the list from it at start and
//! again whenever its PostgreSQL listener reconnects (notices may have been missed), and hears
//! each new logout of another node by `NOTIFY omnichat_token_revoked` (`cluster.rs`). An entry
//! lives until the token's own expiry, after which the token is refused anyway.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use uuid::Uuid;

/// Shared by the AuthActor (which adds), the listener (which adds what other nodes add) and the
/// Core handle (which checks each request).
#[derive(Clone, Default)]
pub struct RevokedTokens {
    /// Token id (`jti`) to its expiry, Unix seconds.
    by_id: Arc<RwLock<HashMap<Uuid, i64>>>,
}

impl RevokedTokens {
    /// True when token `token_id` has been logged out.
    pub fn contains(&self, token_id: Uuid) -> bool {
        self.by_id
            .read()
            .map(|map| map.contains_key(&token_id))
            .unwrap_or(false)
    }

    /// Refuses token `token_id` until `expires_at`.
    pub fn insert(&self, token_id: Uuid, expires_at: i64) {
        if let Ok(mut map) = self.by_id.write() {
            map.insert(token_id, expires_at);
        }
    }

    /// Adds every entry of `entries` (read from the database); nothing is removed, as what
    /// is known already stays true until it expires.
    pub fn extend(&self, entries: impl IntoIterator<Item = (Uuid, i64)>) {
        if let Ok(mut map) = self.by_id.write() {
            map.extend(entries);
        }
    }

    /// Drops the entries of tokens expired by `now` (Unix seconds).
    pub fn prune(&self, now: i64) {
        if let Ok(mut map) = self.by_id.write() {
            map.retain(|_, expires_at| *expires_at >= now);
        }
    }

    /// How many tokens are held.
    pub fn len(&self) -> usize {
        self.by_id.read().map(|map| map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_refused_until_its_expiry_is_pruned() {
        let revoked = RevokedTokens::default();
        let (early, late) = (Uuid::new_v4(), Uuid::new_v4());
        revoked.insert(early, 100);
        revoked.extend([(late, 200)]);
        assert!(revoked.contains(early) && revoked.contains(late));
        assert!(!revoked.contains(Uuid::new_v4()));
        revoked.prune(150);
        assert!(!revoked.contains(early));
        assert!(revoked.contains(late));
        assert_eq!(revoked.len(), 1);
    }
}
