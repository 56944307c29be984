//! HttpError and the single place where domain errors become HTTP statuses.

use std::time::Duration;

use hyper::{header, Response, StatusCode};
use omnichat_actors::{providers::ProviderError, CoreError};

use super::{body::Body, response::json_with_status};

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, as a sentence for people.
    #[schema(example = "Session not found")]
    pub detail: String,
}

/// An error answer: a status, a `{"detail": …}` sentence, and the headers the status calls for.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub detail: String,
    pub retry_after: Option<Duration>,
    /// The methods the path takes, for a 405's `Allow`.
    pub allow: Option<String>,
    /// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds) of a user's quota.
    pub rate_limit: Option<(u64, u64, u64)>,
}

impl HttpError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        HttpError {
            status,
            detail: detail.into(),
            retry_after: None,
            allow: None,
            rate_limit: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn method_not_allowed(allow: impl Into<String>) -> Self {
        HttpError {
            allow: Some(allow.into()),
            ..Self::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        }
    }

    fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after.max(Duration::from_secs(1)));
        self
    }

    /// The response a client sees.
    pub fn into_response(self) -> Response<Body> {
        let mut response = json_with_status(
            self.status,
            &ErrorBody {
                detail: self.detail,
            },
        );
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(after) = self.retry_after {
            headers.insert(header::RETRY_AFTER, after.as_secs().into());
        }
        if let Some((limit, remaining, reset)) = self.rate_limit {
            headers.insert("ratelimit-limit", limit.into());
            headers.insert("ratelimit-remaining", remaining.into());
            headers.insert("ratelimit-reset", reset.into());
        }
        if let Some(value) = self
            .allow
            .and_then(|allow| header::HeaderValue::from_str(&allow).ok())
        {
            headers.insert(header::ALLOW, value);
        }
        response
    }
}

impl From<CoreError> for HttpError {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::BadRequest(detail) => Self::bad_request(detail),
            CoreError::Invalid(detail) => Self::unprocessable(detail),
            CoreError::BadCredentials => Self::unauthorized("Incorrect username or password"),
            CoreError::WrongPassword => Self::new(StatusCode::FORBIDDEN, err.to_string()),
            CoreError::Unauthenticated(detail) => Self::unauthorized(detail),
            CoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            CoreError::Conflict(detail) => Self::new(StatusCode::CONFLICT, detail),
            CoreError::Limited {
                message,
                retry_after,
            } => Self::new(StatusCode::TOO_MANY_REQUESTS, message).with_retry_after(retry_after),
            CoreError::QuotaExceeded(refusal) => {
                let reset = refusal.reset.as_secs().max(1);
                HttpError {
                    rate_limit: Some((refusal.limit, refusal.remaining, reset)),
                    ..Self::new(StatusCode::TOO_MANY_REQUESTS, refusal.message)
                }
                .with_retry_after(refusal.reset)
            }
            CoreError::Overloaded {
                message,
                retry_after,
            } => Self::new(StatusCode::SERVICE_UNAVAILABLE, message).with_retry_after(retry_after),
            CoreError::Provider(err) => err.into(),
            CoreError::ActorGone => Self::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
                .with_retry_after(Duration::from_secs(1)),
            CoreError::Database(_) => {
                tracing::error!(error = %err, "database error");
                if err.is_database_busy() {
                    Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The database is busy; try again",
                    )
                    .with_retry_after(Duration::from_secs(1))
                } else {
                    Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
                }
            }
            CoreError::Internal(message) => {
                tracing::error!(%message, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            }
        }
    }
}

impl From<ProviderError> for HttpError {
    fn from(err: ProviderError) -> Self {
        let detail = err.to_string();
        match err {
            ProviderError::NotConfigured { .. } | ProviderError::ModelNotAllowed { .. } => {
                Self::unprocessable(detail)
            }
            // 402, not 429: waiting does not help, so clients must not treat it as a rate limit.
            ProviderError::QuotaExhausted { .. } => Self::new(StatusCode::PAYMENT_REQUIRED, detail),
            ProviderError::RateLimited { retry_after, .. } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, detail)
                    .with_retry_after(retry_after.unwrap_or(Duration::from_secs(5)))
            }
            ProviderError::Timeout { .. } => Self::new(StatusCode::GATEWAY_TIMEOUT, detail),
            ProviderError::Unauthorized { .. }
            | ProviderError::Rejected { .. }
            | ProviderError::Upstream { .. }
            | ProviderError::Connect { .. }
            | ProviderError::Stream { .. } => Self::new(StatusCode::BAD_GATEWAY, detail),
        }
    }
}
