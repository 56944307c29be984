//! The shared HTTP leg of every remote provider: send with retries, map statuses to
//! [`ProviderError`]s, and hand back the response body as a byte stream guarded by timeouts.
//!
//! Retries happen only before a response is accepted (nothing has reached the user yet), and
//! only where another attempt can help: connect failures, 429 and 5xx. Other 4xx are our fault or
//! the user's and are reported at once, and so is an account out of quota or credit (whatever
//! its status), which no retry can fix. Errors are redacted as they are made, so that the retry
//! log lines carry no credentials either.

use std::{pin::Pin, time::Duration};

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};
use reqwest::{header::RETRY_AFTER, RequestBuilder, Response, StatusCode};
use tokio::time::{sleep, timeout_at, Instant};

use super::{
    connections::{ConnectionPool, Lease},
    error_body::{self, VendorError},
    quota,
    redact::Redactor,
    ProviderError, ProviderSettings,
};
use crate::metrics::Metrics;

/// The response body as the decoders see it; transport failures and timeouts are already
/// [`ProviderError`]s, and an `Err` is the last item.
pub(crate) type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ProviderError>> + Send>>;

/// At most this much of an error body is read: enough for any JSON error, bounded against a
/// misbehaving upstream streaming megabytes of HTML.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// How long reading an error body may take once its headers arrived.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// One provider's view of the settings for a single generation.
pub(crate) struct Upstream<'a> {
    provider: &'static str,
    settings: &'a ProviderSettings,
    redactor: &'a Redactor,
    metrics: Option<&'a Metrics>,
}

/// A failed attempt and whether another one may succeed.
struct Failure {
    error: ProviderError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl<'a> Upstream<'a> {
    pub(crate) fn new(
        provider: &'static str,
        settings: &'a ProviderSettings,
        redactor: &'a Redactor,
        metrics: Option<&'a Metrics>,
    ) -> Self {
        Self {
            provider,
            settings,
            redactor,
            metrics,
        }
    }

    /// Sends the request `build` makes with a client of `connections` (once per attempt) until
    /// the upstream answers 2xx, the error is final or the retries are spent; returns the body
    /// of the accepted response, which holds its place on that client until it is dropped.
    pub(crate) async fn send(
        &self,
        connections: &ConnectionPool,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<ByteStream, ProviderError> {
        let settings = self.settings;
        let total_deadline = Instant::now() + settings.total_timeout;
        let mut attempt: u32 = 0;
        loop {
            let first_byte_deadline =
                (Instant::now() + settings.first_byte_timeout).min(total_deadline);
            let lease = connections
                .lease()
                .map_err(|message| ProviderError::Connect {
                    provider: self.provider,
                    message,
                })?;
            let sent = build(lease.client()).send();
            let failure = match timeout_at(first_byte_deadline, sent).await {
                Err(_elapsed) => return Err(self.timeout(first_byte_deadline, total_deadline)),
                Ok(Ok(response)) if response.status().is_success() => {
                    return Ok(self.body(response, lease, first_byte_deadline, total_deadline));
                }
                Ok(Ok(response)) => self.rejection(response).await,
                Ok(Err(err)) => self.transport_failure(err),
            };
            if !failure.retryable || attempt >= settings.max_retries {
                return Err(failure.error);
            }
            let delay = match failure.retry_after {
                // The upstream asked for a longer pause than we are willing to hold the user for:
                // pass its answer (and its Retry-After) on instead of asking again too early.
                Some(asked) if asked > settings.retry_max_delay => return Err(failure.error),
                Some(asked) => asked,
                None => self.backoff(attempt),
            };
            if Instant::now() + delay >= total_deadline {
                return Err(failure.error);
            }
            attempt += 1;
            if let Some(metrics) = self.metrics {
                metrics.upstream_retry(self.provider);
            }
            tracing::warn!(
                provider = self.provider,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %failure.error,
                "retrying upstream request"
            );
            sleep(delay).await;
        }
    }

    /// Capped exponential backoff with full jitter: uniform in `[0, min(max, base·2^attempt)]`,
    /// so many streams failing together do not retry in lockstep.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.retry_base_delay.as_millis() as u64;
        let max = self.settings.retry_max_delay.as_millis() as u64;
        let cap = base.saturating_mul(1u64 << attempt.min(20)).min(max);
        Duration::from_millis(rand::random_range(0..=cap))
    }

    fn timeout(&self, deadline: Instant, total_deadline: Instant) -> ProviderError {
        let phase = if deadline >= total_deadline {
            "total"
        } else {
            "first byte"
        };
        ProviderError::Timeout {
            provider: self.provider,
            phase,
        }
    }

    /// Maps a failure to get any response. Only connect failures are retried: once the request
    /// may have reached the provider, the provider answers for it.
    fn transport_failure(&self, err: reqwest::Error) -> Failure {
        tracing::debug!(
            provider = self.provider,
            error = %self.redactor.text(&format!("{err:?}")),
            "upstream request failed"
        );
        let retryable = err.is_connect();
        let error = if err.is_timeout() {
            ProviderError::Timeout {
                provider: self.provider,
                phase: "connect",
            }
        } else {
            ProviderError::Connect {
                provider: self.provider,
                // The URL stays in the log: it may name internal hosts the user should not see.
                message: self.redactor.text(&error_chain(&err.without_url())),
            }
        };
        Failure {
            error,
            retryable,
            retry_after: None,
        }
    }

    /// Maps a non-2xx answer, with the provider's own message from its (bounded) error body.
    async fn rejection(&self, response: Response) -> Failure {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_bounded(response).await;
        // Only the vendor's known fields are kept: the rest of an error body may echo our
        // request headers or name internal hosts.
        let vendor = VendorError::from_body(&body).unwrap_or_default();
        let message = vendor
            .summary()
            .map(|message| self.redactor.text(&message))
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("no error message")
                    .to_owned()
            });
        let provider = self.provider;
        let (error, retryable) = match status {
            _ if quota::is_exhausted(provider, status.as_u16(), &vendor) => (
                ProviderError::QuotaExhausted {
                    provider,
                    status: status.as_u16(),
                    message,
                },
                false,
            ),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => (
                ProviderError::Unauthorized {
                    provider,
                    status: status.as_u16(),
                    message,
                },
                false,
            ),
            StatusCode::TOO_MANY_REQUESTS => (
                ProviderError::RateLimited {
                    provider,
                    retry_after,
                    message,
                },
                true,
            ),
            status if status.is_client_error() => (
                ProviderError::Rejected {
                    provider,
                    status: status.as_u16(),
                    message,
                },
                false,
            ),
            // 5xx are worth another try; anything else (a redirect we do not follow, 1xx) is not.
            status => (
                ProviderError::Upstream {
                    provider,
                    status: status.as_u16(),
                    message,
                },
                status.is_server_error(),
            ),
        };
        Failure {
            error,
            retryable,
            retry_after,
        }
    }

    /// The accepted body, with the first-byte deadline on the first chunk, the idle timeout
    /// between chunks and the total deadline over everything.
    fn body(
        &self,
        response: Response,
        lease: Lease,
        first_byte_deadline: Instant,
        total_deadline: Instant,
    ) -> ByteStream {
        struct State {
            chunks: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
            started: bool,
            redactor: Redactor,
            /// The stream's place on its client, given back when the body is dropped.
            _lease: Lease,
        }
        /// Which deadline a wait is under; its error is only made if it passes.
        enum Wait {
            Timeout(&'static str),
            Stall,
        }
        let provider = self.provider;
        let idle = self.settings.idle_timeout;
        let state = State {
            chunks: Box::pin(response.bytes_stream()),
            started: false,
            redactor: self.redactor.clone(),
            _lease: lease,
        };
        Box::pin(stream::unfold(Some(state), move |state| async move {
            let mut state = state?;
            let (deadline, wait) = if !state.started {
                let phase = if first_byte_deadline >= total_deadline {
                    "total"
                } else {
                    "first byte"
                };
                (first_byte_deadline, Wait::Timeout(phase))
            } else if Instant::now() + idle >= total_deadline {
                (total_deadline, Wait::Timeout("total"))
            } else {
                (Instant::now() + idle, Wait::Stall)
            };
            let on_timeout = || match wait {
                Wait::Timeout(phase) => ProviderError::Timeout { provider, phase },
                Wait::Stall => ProviderError::Stream {
                    provider,
                    code: "upstream_stall",
                    message: format!("no data for {} s", idle.as_secs_f32()),
                },
            };
            match timeout_at(deadline, state.chunks.next()).await {
                Err(_elapsed) => Some((Err(on_timeout()), None)),
                Ok(None) => None,
                Ok(Some(Ok(bytes))) => {
                    state.started |= !bytes.is_empty();
                    Some((Ok(bytes), Some(state)))
                }
                Ok(Some(Err(err))) => {
                    let shown = state.redactor.text(&format!("{err:?}"));
                    tracing::debug!(provider, error = %shown, "upstream body failed");
                    let error = ProviderError::Stream {
                        provider,
                        code: "upstream_closed",
                        message: format!(
                            "connection lost mid-stream: {}",
                            error_chain(&err.without_url())
                        ),
                    };
                    Some((Err(error), None))
                }
            }
        }))
    }
}

/// Reads at most [`ERROR_BODY_LIMIT`] bytes of an error body, within [`ERROR_BODY_TIMEOUT`];
/// whatever arrived is enough to explain the error.
async fn read_bounded(mut response: Response) -> Vec<u8> {
    let deadline = Instant::now() + ERROR_BODY_TIMEOUT;
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_LIMIT {
        match timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = ERROR_BODY_LIMIT - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    body
}

/// `err` and its causes in one line: reqwest's own message alone ("error sending request") does
/// not say whether DNS, TCP or TLS failed.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            message.push_str(": ");
            message.push_str(&cause_text);
        }
        source = cause.source();
    }
    error_body::clip(&message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_its_cap() {
        let settings = ProviderSettings {
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_millis(300),
            ..ProviderSettings::default()
        };
        let redactor = Redactor::default();
        let upstream = Upstream::new("test", &settings, &redactor, None);
        for attempt in 0..40 {
            let cap = Duration::from_millis((100u64 << attempt.min(20)).min(300));
            assert!(upstream.backoff(attempt) <= cap);
        }
    }
}
