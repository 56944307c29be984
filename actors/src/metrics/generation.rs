//! What one generation records (its label sets resolved when it starts, so nothing on the token
//! path takes a lock or allocates), and the guard that counts an actor alive.

use std::{
    sync::{
        atomic::{AtomicI64, AtomicU64},
        Arc,
    },
    time::Duration,
};

use prometheus_client::metrics::{counter::Counter, gauge::Gauge, histogram::Histogram};

use super::{EndLabels, ErrorLabels, Metrics};
use crate::providers::{ProviderError, TokenUsage};

/// One generation's instruments, resolved when it starts.
pub struct GenerationMetrics {
    pub(super) provider: &'static str,
    pub(super) tokens_in: Counter<u64, AtomicU64>,
    pub(super) tokens_out: Counter<u64, AtomicU64>,
    pub(super) ttft: Histogram,
    pub(super) duration: Histogram,
    pub(super) metrics: Arc<Metrics>,
}

impl GenerationMetrics {
    /// The server's metrics, for what a generation records outside its own label sets.
    pub(crate) fn shared(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The first text of the answer, `elapsed` after it started.
    pub(crate) fn first_token(&self, elapsed: Duration) {
        self.ttft.observe(elapsed.as_secs_f64());
    }

    /// The provider failed (before or after the first token).
    pub(crate) fn upstream_error(&self, error: &ProviderError) {
        self.metrics
            .upstream_errors
            .get_or_create(&ErrorLabels {
                provider: self.provider,
                kind: error.code(),
            })
            .inc();
    }

    /// The answer ended with `status` after `elapsed`, with the provider's last usage report.
    pub(crate) fn ended(&self, status: &'static str, usage: TokenUsage, elapsed: Duration) {
        self.metrics
            .generations
            .get_or_create(&EndLabels {
                provider: self.provider,
                status,
            })
            .inc();
        self.tokens_in
            .inc_by(u64::from(usage.prompt_tokens.unwrap_or(0)));
        self.tokens_out
            .inc_by(u64::from(usage.completion_tokens.unwrap_or(0)));
        self.duration.observe(elapsed.as_secs_f64());
    }
}

/// Counts an actor alive from its start until its state is dropped (a panic included).
pub(crate) struct Alive(Gauge<i64, AtomicI64>);

impl Alive {
    pub(crate) fn new(gauge: Gauge<i64, AtomicI64>) -> Self {
        gauge.inc();
        Alive(gauge)
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.dec();
    }
}
