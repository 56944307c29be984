//! Login throttling: failed logins counted per account and address, per address and per
//! account, in the database every node shares, and judged before any password is hashed.
//!
//! - An account at one address and an address on its own (however many accounts it tries) are
//!   slowed after a few failures (a delay that doubles per failure, capped) and then blocked:
//!   429 with `Retry-After`, for a time that doubles per further failure, capped. A blocked
//!   attempt costs no hash, and the right password is refused like any other while it lasts.
//! - An account across all addresses (a guess spread over many) is only ever slowed, never
//!   blocked, and by at most `max_delay`: someone else's failures cannot lock the owner out,
//!   who gets in from another address after that bounded delay.
//! - The account part of a key is a keyed digest of the email as typed, known account or not,
//!   so unknown emails are throttled exactly like known ones and the table holds no email.
//!
//! A success clears the counter of that account at that address; the others run out after
//! `forget_after` without failures.

use std::{net::IpAddr, time::Duration};

use hmac::{Hmac, Mac};
use omnichat_entity::login_failures;
use sha2::Sha256;

use crate::{error::CoreResult, store::Store};

/// The first delay once slowing starts; it doubles with each further failure.
const FIRST_DELAY: Duration = Duration::from_millis(250);

/// How hard failed logins are throttled.
#[derive(Clone, Debug)]
pub struct ThrottleSettings {
    /// Failures of an account at one address, or of the account anywhere, before each attempt waits.
    pub slow_after: u32,
    /// Failures of an account at one address before it is blocked (429).
    pub block_after: u32,
    /// Failures from one address, over all accounts, before each attempt from it waits.
    pub address_slow_after: u32,
    /// Failures from one address, over all accounts, before it is blocked (429).
    pub address_block_after: u32,
    /// The longest any attempt is slowed: what the owner pays at most for others' failures.
    pub max_delay: Duration,
    /// The first block; each further failure doubles it.
    pub block: Duration,
    /// The longest block.
    pub max_block: Duration,
    /// Failures are forgotten this long after the latest one.
    pub forget_after: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            slow_after: 5,
            block_after: 10,
            address_slow_after: 20,
            address_block_after: 50,
            max_delay: Duration::from_secs(2),
            block: Duration::from_secs(60),
            max_block: Duration::from_secs(900),
            forget_after: Duration::from_secs(3600),
        }
    }
}

/// The three counters one attempt is judged by and counted under.
#[derive(Clone, Debug)]
pub struct AttemptKeys {
    /// This account at this address (`None` when the address is unknown).
    pair: Option<String>,
    /// This address, whatever the account.
    address: Option<String>,
    /// This account, whatever the address.
    account: String,
}

impl AttemptKeys {
    /// The key attempts take turns under on one node: this account at this address.
    pub fn turn_key(&self) -> &str {
        self.pair.as_deref().unwrap_or(&self.account)
    }

    fn all(&self) -> Vec<String> {
        [
            self.pair.clone(),
            self.address.clone(),
            Some(self.account.clone()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// What the throttle decided before a login may check its password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead after waiting this long (zero when nothing failed lately).
    After(Duration),
    /// Refused for this long (429 + `Retry-After`).
    Blocked(Duration),
}

/// Judges and counts login attempts; cheap to clone.
#[derive(Clone)]
pub struct LoginThrottle {
    settings: ThrottleSettings,
    /// The key of the account digests: derived from the token secret, so every node sharing the
    /// database computes the same digests and nobody without the secret can reverse them.
    digest_key: Vec<u8>,
}

impl LoginThrottle {
    pub fn new(settings: ThrottleSettings, secret: &[u8]) -> Self {
        let mut mac = digest(b"omnichat login throttle");
        mac.update(secret);
        LoginThrottle {
            settings,
            digest_key: mac.finalize().into_bytes().to_vec(),
        }
    }

    pub fn settings(&self) -> &ThrottleSettings {
        &self.settings
    }

    /// The keys of an attempt at `email` (as typed) from `ip`.
    pub fn keys(&self, email: &str, ip: Option<IpAddr>) -> AttemptKeys {
        let mut mac = digest(&self.digest_key);
        // The same normalisation the account lookup uses, so `Ann@x.org ` counts as `ann@x.org`.
        mac.update(email.trim().to_lowercase().as_bytes());
        let account: String = mac.finalize().into_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        AttemptKeys {
            pair: ip.map(|ip| format!("p:{account}:{ip}")),
            address: ip.map(|ip| format!("a:{ip}")),
            account: format!("u:{account}"),
        }
    }

    /// Whether an attempt may go on, and after how long. One database read.
    pub async fn admit(&self, store: &Store, keys: &AttemptKeys) -> CoreResult<Admission> {
        let rows = store.login_failures(&keys.all()).await?;
        Ok(self.judge(keys, &rows, now_ms()))
    }

    fn judge(&self, keys: &AttemptKeys, rows: &[login_failures::Model], now: i64) -> Admission {
        let forget_before = now - millis(self.settings.forget_after);
        let mut blocked = 0_i64;
        let mut delay = Duration::ZERO;
        for row in rows {
            let (slow_after, blocks) = if Some(&row.id) == keys.pair.as_ref() {
                (self.settings.slow_after, true)
            } else if Some(&row.id) == keys.address.as_ref() {
                (self.settings.address_slow_after, true)
            } else {
                (self.settings.slow_after, false)
            };
            if blocks && row.blocked_until > now {
                blocked = blocked.max(row.blocked_until - now);
            }
            if row.last_failure_at >= forget_before {
                delay = delay.max(self.delay(row.failures, slow_after));
            }
        }
        if blocked > 0 {
            // Rounded up, so a client that waits `Retry-After` finds the block over.
            let secs = (blocked as u64).div_ceil(1000);
            return Admission::Blocked(Duration::from_secs(secs.max(1)));
        }
        Admission::After(delay)
    }

    /// The wait before an attempt under a key with `failures` lately.
    fn delay(&self, failures: i64, slow_after: u32) -> Duration {
        let past = failures - i64::from(slow_after);
        if past < 0 {
            return Duration::ZERO;
        }
        doubled(FIRST_DELAY, past).min(self.settings.max_delay)
    }

    /// How long a key with `failures` is blocked for, if at all.
    fn block_for(&self, failures: i64, block_after: u32) -> Option<Duration> {
        let past = failures - i64::from(block_after);
        (past >= 0).then(|| doubled(self.settings.block, past).min(self.settings.max_block))
    }

    /// Counts a failed attempt under its keys and blocks the account-at-address and address
    /// keys that have now failed too often.
    pub async fn record_failure(&self, store: &Store, keys: &AttemptKeys) -> CoreResult<()> {
        let now = now_ms();
        let forget_before = now - millis(self.settings.forget_after);
        let rows = store
            .count_login_failure(&keys.all(), now, forget_before)
            .await?;
        for row in rows {
            let block_after = if Some(&row.id) == keys.pair.as_ref() {
                self.settings.block_after
            } else if Some(&row.id) == keys.address.as_ref() {
                self.settings.address_block_after
            } else {
                continue;
            };
            if let Some(block) = self.block_for(row.failures, block_after) {
                store
                    .block_login(&row.id, now.saturating_add(millis(block)))
                    .await?;
            }
        }
        Ok(())
    }

    /// Forgets the failures of this account at this address after a successful login. A
    /// failure to forget is logged, not failed: the user is in, and the count runs out.
    pub async fn record_success(&self, store: &Store, keys: &AttemptKeys) {
        if let Some(pair) = &keys.pair {
            if let Err(err) = store.clear_login_failures(pair).await {
                tracing::warn!(%err, "clearing the failed-login count after a login");
            }
        }
    }

    /// Deletes counters that no longer slow anyone down.
    pub async fn prune(&self, store: &Store) -> CoreResult<u64> {
        let now = now_ms();
        let forget_before = now - millis(self.settings.forget_after);
        Ok(store.prune_login_failures(now, forget_before).await?)
    }
}

/// `base` doubled `times` times, without overflow (the callers cap it anyway).
fn doubled(base: Duration, times: i64) -> Duration {
    let factor = 1_u32 << times.clamp(0, 20);
    base.saturating_mul(factor)
}

fn digest(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(ThrottleSettings::default(), b"secret")
    }

    fn row(id: &str, failures: i64, last: i64, blocked_until: i64) -> login_failures::Model {
        login_failures::Model {
            id: id.to_owned(),
            failures,
            last_failure_at: last,
            blocked_until,
        }
    }

    #[test]
    fn keys_ignore_case_and_hide_the_email() {
        let t = throttle();
        let ip = "203.0.113.9".parse().ok();
        let a = t.keys(" Ann@Example.com", ip);
        let b = t.keys("ann@example.com", ip);
        assert_eq!(a.all(), b.all());
        assert!(a.all().iter().all(|k| !k.contains("ann")));
        assert_eq!(a.address.as_deref(), Some("a:203.0.113.9"));
        let other = LoginThrottle::new(ThrottleSettings::default(), b"other secret");
        assert_ne!(other.keys("ann@example.com", ip).account, b.account);
    }

    #[test]
    fn delays_grow_then_cap_and_blocks_double_then_cap() {
        let t = throttle();
        assert_eq!(t.delay(4, 5), Duration::ZERO);
        assert_eq!(t.delay(5, 5), Duration::from_millis(250));
        assert_eq!(t.delay(7, 5), Duration::from_secs(1));
        assert_eq!(t.delay(500, 5), Duration::from_secs(2));
        assert_eq!(t.block_for(9, 10), None);
        assert_eq!(t.block_for(10, 10), Some(Duration::from_secs(60)));
        assert_eq!(t.block_for(11, 10), Some(Duration::from_secs(120)));
        assert_eq!(t.block_for(1_000, 10), Some(Duration::from_secs(900)));
    }

    #[test]
    fn the_account_key_slows_but_never_blocks() {
        let t = throttle();
        let keys = t.keys("ann@example.com", "203.0.113.9".parse().ok());
        let now = 10_000_000;
        // A block recorded on the account key (it never is) would still not block.
        let rows = [row(&keys.account, 1_000, now, now + 60_000)];
        assert_eq!(
            t.judge(&keys, &rows, now),
            Admission::After(t.settings.max_delay)
        );
        let rows = [row(keys.pair.as_deref().unwrap(), 10, now, now + 1_500)];
        assert_eq!(
            t.judge(&keys, &rows, now),
            Admission::Blocked(Duration::from_secs(2))
        );
        // Failures older than `forget_after` no longer slow anyone down.
        let old = now - 3_600_001;
        let rows = [row(keys.address.as_deref().unwrap(), 40, old, 0)];
        assert_eq!(t.judge(&keys, &rows, now), Admission::After(Duration::ZERO));
    }
}
