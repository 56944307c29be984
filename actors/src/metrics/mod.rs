//! The server's Prometheus metrics: one registry per [`Core`](crate::Core), shared through it,
//! recorded by the front end (requests) and by the actors (generations, upstream calls, the
//! password hasher, the write queue), rendered in the Prometheus text format for `GET /metrics`.
//!
//! Recording stays off locks on the token path: a generation resolves its label sets once when it
//! starts ([`GenerationMetrics`]) and then only touches atomic counters and, once per generation,
//! a histogram. Every label value comes from a closed set (route templates, provider names, error
//! kinds, statuses) except the model, which a client may name: at most [`MAX_MODEL_LABELS`]
//! distinct models are labelled per server, the rest count as `other`.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicI64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use prometheus_client::{
    encoding::{prometheus_text, EncodeLabelSet},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

mod generation;

pub(crate) use generation::Alive;
pub use generation::GenerationMetrics;

use crate::{auth::PasswordHasher, providers::ProviderKind};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Distinct model names labelled on the token counters; past it a model counts as `other`, so a
/// client naming random models cannot grow the series without bound.
pub const MAX_MODEL_LABELS: usize = 64;
/// Model names longer than this are labelled `other` too.
const MAX_MODEL_LABEL_CHARS: usize = 100;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    provider: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    provider: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: &'static str,
    model: Arc<str>,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    write: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request and answer times: 5 ms to ~80 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Database commits: 0.5 ms to ~8 s.
fn commit_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The write queue's own instruments, made by the writer before the registry exists and
/// registered with it when the core starts.
#[derive(Clone, Debug)]
pub struct WriterMetrics {
    pub commit_seconds: Histogram,
    pub batch_size: Histogram,
}

impl Default for WriterMetrics {
    fn default() -> Self {
        WriterMetrics {
            commit_seconds: commit_histogram(),
            // 1 to 256 writes (the writer's largest batch).
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
        }
    }
}

/// Values the registry reads from elsewhere at each scrape (they are kept as plain atomics by
/// their owners, who need them for more than metrics).
struct Sampled {
    live_generations: Arc<AtomicUsize>,
    hasher: Arc<PasswordHasher>,
}

/// Every instrument of one server.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<RouteLabels>,
    live_generations: Gauge,
    generations: Family<EndLabels, Counter>,
    ttft_seconds: HistogramFamily<ProviderLabels>,
    answer_seconds: HistogramFamily<ProviderLabels>,
    upstream_errors: Family<ErrorLabels, Counter>,
    upstream_retries: Family<ProviderLabels, Counter>,
    store_retries: Family<WriteLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    hash_queue: Gauge,
    hash_running: Gauge,
    hash_refusals: Counter,
    session_actors: Gauge<i64, AtomicI64>,
    generation_actors: Gauge<i64, AtomicI64>,
    models: Mutex<HashSet<Arc<str>>>,
    sampled: Mutex<Option<Sampled>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A registry with every OmniChat metric; `writer` is the write queue's.
    pub fn new(writer: &WriterMetrics) -> Metrics {
        let mut registry = Registry::with_prefix("omnichat");
        let metrics = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            live_generations: Gauge::default(),
            generations: Family::default(),
            ttft_seconds: Family::new_with_constructor(latency_histogram),
            answer_seconds: Family::new_with_constructor(latency_histogram),
            upstream_errors: Family::default(),
            upstream_retries: Family::default(),
            store_retries: Family::default(),
            tokens: Family::default(),
            hash_queue: Gauge::default(),
            hash_running: Gauge::default(),
            hash_refusals: Counter::default(),
            session_actors: Gauge::default(),
            generation_actors: Gauge::default(),
            models: Mutex::new(HashSet::new()),
            sampled: Mutex::new(None),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response head (for a stream: to the SSE headers)",
            metrics.request_seconds.clone(),
        );
        registry.register(
            "generations_live",
            "Answers streaming right now",
            metrics.live_generations.clone(),
        );
        registry.register(
            "generations",
            "Answers ended, by provider and final status",
            metrics.generations.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Time from an answer's start to its first text, by provider",
            metrics.ttft_seconds.clone(),
        );
        registry.register(
            "answer_duration_seconds",
            "Time from an answer's start to its end, by provider",
            metrics.answer_seconds.clone(),
        );
        registry.register(
            "upstream_errors",
            "Provider failures, by provider and kind (the stream error code)",
            metrics.upstream_errors.clone(),
        );
        registry.register(
            "upstream_retries",
            "Upstream requests sent again after a connect error, 429 or 5xx, by provider",
            metrics.upstream_retries.clone(),
        );
        registry.register(
            "store_retries",
            "Database writes tried again: an answer's final write, and its background tries",
            metrics.store_retries.clone(),
        );
        registry.register(
            "tokens",
            "Tokens as the provider reported them (direction in: prompt, out: answer), by provider and model",
            metrics.tokens.clone(),
        );
        registry.register(
            "password_hash_queue_depth",
            "Password hashes admitted and waiting for a hashing slot",
            metrics.hash_queue.clone(),
        );
        registry.register(
            "password_hashes_running",
            "Password hashes running now",
            metrics.hash_running.clone(),
        );
        registry.register(
            "password_hash_refusals",
            "Logins, sign-ups and password changes refused with 503 because the hash queue was full",
            metrics.hash_refusals.clone(),
        );
        registry.register(
            "session_actors",
            "SessionActors alive (one per active user)",
            metrics.session_actors.clone(),
        );
        registry.register(
            "generation_actors",
            "ChatStreamActors alive: one per running answer, released as the answer ends",
            metrics.generation_actors.clone(),
        );
        registry.register(
            "db_batch_commit_seconds",
            "Time the group-commit writer took to commit one batch",
            writer.commit_seconds.clone(),
        );
        registry.register(
            "db_batch_size",
            "Writes committed together in one batch",
            writer.batch_size.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Names what is read at each scrape: the live generation count and the password hasher.
    pub(crate) fn sample_from(
        &self,
        live_generations: Arc<AtomicUsize>,
        hasher: Arc<PasswordHasher>,
    ) {
        if let Ok(mut sampled) = self.sampled.lock() {
            *sampled = Some(Sampled {
                live_generations,
                hasher,
            });
        }
    }

    /// The registry in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        if let Ok(sampled) = self.sampled.lock() {
            if let Some(sampled) = sampled.as_ref() {
                let running = sampled.hasher.running();
                let admitted = sampled.hasher.admitted();
                self.live_generations.set(gauge_value(
                    sampled.live_generations.load(Ordering::Acquire),
                ));
                self.hash_running.set(gauge_value(running));
                self.hash_queue
                    .set(gauge_value(admitted.saturating_sub(running)));
            }
        }
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// One answered HTTP request. `route` is the route template, never the raw path.
    pub fn record_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels { method, route })
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn upstream_retry(&self, provider: &'static str) {
        self.upstream_retries
            .get_or_create(&ProviderLabels { provider })
            .inc();
    }

    /// `write`: `final_answer` or `deferred_answer`.
    pub(crate) fn store_retry(&self, write: &'static str) {
        self.store_retries
            .get_or_create(&WriteLabels { write })
            .inc();
    }

    pub(crate) fn hash_refused(&self) -> Counter {
        self.hash_refusals.clone()
    }

    pub(crate) fn session_actor_gauge(&self) -> Gauge<i64, AtomicI64> {
        self.session_actors.clone()
    }

    pub(crate) fn generation_actor_gauge(&self) -> Gauge<i64, AtomicI64> {
        self.generation_actors.clone()
    }

    /// The instruments of one generation, label sets resolved now so that recording later
    /// takes no lock and allocates nothing.
    pub(crate) fn generation(
        self: &Arc<Self>,
        provider: ProviderKind,
        model: &str,
    ) -> GenerationMetrics {
        let provider = provider.name();
        let model = self.model_label(model);
        let tokens = |direction| {
            self.tokens.get_or_create_owned(&TokenLabels {
                provider,
                model: model.clone(),
                direction,
            })
        };
        GenerationMetrics {
            provider,
            tokens_in: tokens("in"),
            tokens_out: tokens("out"),
            ttft: self
                .ttft_seconds
                .get_or_create_owned(&ProviderLabels { provider }),
            duration: self
                .answer_seconds
                .get_or_create_owned(&ProviderLabels { provider }),
            metrics: self.clone(),
        }
    }

    /// The model as a label: itself while fewer than [`MAX_MODEL_LABELS`] models have been seen,
    /// else `other`.
    fn model_label(&self, model: &str) -> Arc<str> {
        let Ok(mut models) = self.models.lock() else {
            return Arc::from("other");
        };
        if let Some(known) = models.get(model) {
            return known.clone();
        }
        if models.len() >= MAX_MODEL_LABELS || model.chars().count() > MAX_MODEL_LABEL_CHARS {
            return Arc::from("other");
        }
        let label: Arc<str> = Arc::from(model);
        models.insert(label.clone());
        label
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::TokenUsage;

    #[test]
    fn renders_every_family_in_the_text_format() {
        let metrics = Arc::new(Metrics::new(&WriterMetrics::default()));
        metrics.record_request("POST", "/chat/stream", 200, Duration::from_millis(3));
        let generation = metrics.generation(ProviderKind::Echo, "echo-1");
        generation.first_token(Duration::from_millis(10));
        generation.ended(
            "complete",
            TokenUsage {
                prompt_tokens: Some(3),
                completion_tokens: Some(5),
            },
            Duration::from_millis(20),
        );
        let text = metrics.render();
        assert!(text.contains(
            "omnichat_http_requests_total{method=\"POST\",route=\"/chat/stream\",status=\"200\"} 1"
        ));
        assert!(text.contains(
            "omnichat_tokens_total{provider=\"echo\",model=\"echo-1\",direction=\"out\"} 5"
        ));
        assert!(text.contains("omnichat_time_to_first_token_seconds_count{provider=\"echo\"} 1"));
        assert!(text.contains("# TYPE omnichat_db_batch_commit_seconds histogram"));
    }

    #[test]
    fn model_labels_are_bounded() {
        let metrics = Metrics::new(&WriterMetrics::default());
        for i in 0..MAX_MODEL_LABELS {
            assert_eq!(&*metrics.model_label(&format!("m{i}")), format!("m{i}"));
        }
        assert_eq!(&*metrics.model_label("one-too-many"), "other");
        assert_eq!(
            &*metrics.model_label("m0"),
            "m0",
            "a known model keeps its label"
        );
        assert_eq!(&*metrics.model_label(&"x".repeat(200)), "other");
    }
}
