//! scrypt password hashing on the blocking pool, behind an admission limit.
//!
//! One hash at OWASP strength (ln=17, r=8, p=1) takes ~128 MiB and a core for a few hundred
//! milliseconds, so at most one hash runs per core and a bounded queue waits behind them. When
//! the queue is full the caller gets `Overloaded` (503 + `Retry-After`) at once instead of piling
//! up work and memory.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use prometheus_client::metrics::counter::Counter;
use rand::RngCore;
use scrypt::{
    password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString},
    Params, Scrypt,
};
use tokio::sync::Semaphore;

use crate::error::{CoreError, CoreResult};

/// scrypt cost parameters. The default is OWASP's recommendation; lower only for tests.
#[derive(Clone, Copy, Debug)]
pub struct ScryptSettings {
    pub log_n: u8,
    pub r: u32,
    pub p: u32,
}

impl Default for ScryptSettings {
    fn default() -> Self {
        ScryptSettings {
            log_n: 17,
            r: 8,
            p: 1,
        }
    }
}

/// Hashes and verifies passwords without stalling the async workers.
pub struct PasswordHasher {
    params: Params,
    parallelism: usize,
    running: Arc<Semaphore>,
    admitted: Arc<AtomicUsize>,
    max_admitted: usize,
    /// Counts the callers turned away with `Overloaded` (a metric).
    refusals: Counter,
    /// Verified against when the email is unknown, so both cases cost the same time.
    dummy_hash: String,
}

/// Releases an admission slot when the hash finishes or its caller goes away.
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHasher {
    /// `parallelism` hashes run at once; up to `queue_per_slot` more wait per running one.
    pub fn new(
        settings: ScryptSettings,
        parallelism: usize,
        queue_per_slot: usize,
    ) -> Result<Self, String> {
        let params = Params::new(
            settings.log_n,
            settings.r,
            settings.p,
            Params::RECOMMENDED_LEN,
        )
        .map_err(|err| format!("invalid scrypt parameters: {err}"))?;
        let parallelism = parallelism.max(1);
        let mut random = [0u8; 24];
        rand::rng().fill_bytes(&mut random);
        let dummy_hash = hash_blocking(&params, &random)?;
        Ok(PasswordHasher {
            params,
            parallelism,
            refusals: Counter::default(),
            running: Arc::new(Semaphore::new(parallelism)),
            admitted: Arc::new(AtomicUsize::new(0)),
            max_admitted: parallelism * (1 + queue_per_slot),
            dummy_hash,
        })
    }

    fn admit(&self) -> CoreResult<Admission> {
        let before = self.admitted.fetch_add(1, Ordering::AcqRel);
        let admission = Admission(self.admitted.clone());
        if before >= self.max_admitted {
            self.refusals.inc();
            return Err(CoreError::Overloaded {
                message: "Too many logins and sign-ups in progress; try again shortly".into(),
                retry_after: Duration::from_secs(1),
            });
        }
        Ok(admission)
    }

    /// Counts refusals into `counter` from now on.
    pub(crate) fn count_refusals_in(mut self, counter: Counter) -> Self {
        self.refusals = counter;
        self
    }

    /// Hashes running now.
    pub(crate) fn running(&self) -> usize {
        self.parallelism
            .saturating_sub(self.running.available_permits())
    }

    /// Hashes running or waiting for a slot (refused callers are counted out at once).
    pub(crate) fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// Runs `work` on the blocking pool once a hashing slot is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> CoreResult<T> {
        let _admission = self.admit()?;
        let _permit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CoreError::Internal("password hasher closed".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|err| CoreError::Internal(format!("password hashing failed: {err}")))
    }

    /// A PHC string (`$scrypt$ln=17,r=8,p=1$…`) for `password`.
    pub async fn hash(&self, password: String) -> CoreResult<String> {
        let params = self.params;
        self.run(move || hash_blocking(&params, password.as_bytes()))
            .await?
            .map_err(CoreError::Internal)
    }

    /// True when `stored` was made with a lower cost (ln, r or p) than the current parameters,
    /// so the next successful login should replace it. An unreadable hash is not upgraded here:
    /// it cannot verify, so no login reaches this.
    pub fn is_weaker(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let Ok(old) = Params::try_from(&parsed) else {
            return false;
        };
        old.log_n() < self.params.log_n() || old.r() < self.params.r() || old.p() < self.params.p()
    }

    /// True when `password` matches `stored`. With no stored hash (unknown user) it verifies
    /// against the dummy hash and answers false, taking the same time as a real check.
    pub async fn verify(&self, password: String, stored: Option<String>) -> CoreResult<bool> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let matched = self
            .run(move || match PasswordHash::new(&hash) {
                Ok(parsed) => Scrypt.verify_password(password.as_bytes(), &parsed).is_ok(),
                Err(_) => false,
            })
            .await?;
        Ok(known && matched)
    }
}

fn hash_blocking(params: &Params, password: &[u8]) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|err| format!("salt: {err}"))?;
    Scrypt
        .hash_password_customized(password, None, None, *params, &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| format!("scrypt: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> ScryptSettings {
        ScryptSettings {
            log_n: 4,
            r: 8,
            p: 1,
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_carry_their_parameters() {
        let hasher = PasswordHasher::new(fast(), 2, 4).unwrap();
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$scrypt$ln=4,r=8,p=1$"), "{hash}");
        assert!(hasher
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!hasher
            .verify("wrong horse".into(), Some(hash))
            .await
            .unwrap());
        assert!(!hasher.verify("correct horse".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn only_a_weaker_hash_is_upgraded() {
        let weak = PasswordHasher::new(fast(), 1, 4).unwrap();
        let strong = PasswordHasher::new(ScryptSettings { log_n: 5, ..fast() }, 1, 4).unwrap();
        let weak_hash = weak.hash("correct horse".into()).await.unwrap();
        let strong_hash = strong.hash("correct horse".into()).await.unwrap();
        assert!(strong.is_weaker(&weak_hash));
        assert!(!strong.is_weaker(&strong_hash));
        assert!(!weak.is_weaker(&strong_hash), "never downgraded");
        assert!(!strong.is_weaker("not a hash"));
    }

    #[test]
    fn default_is_owasp_strength() {
        let s = ScryptSettings::default();
        assert_eq!((s.log_n, s.r, s.p), (17, 8, 1));
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_not_piled_up() {
        let hasher = PasswordHasher::new(fast(), 1, 0).unwrap();
        let first = hasher.admit().unwrap();
        assert!(matches!(hasher.admit(), Err(CoreError::Overloaded { .. })));
        drop(first);
        assert!(hasher.admit().is_ok());
    }
}
