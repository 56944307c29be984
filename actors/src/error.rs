//! The domain errors every actor replies with; the front end maps each to an HTTP status in one place.

use std::time::Duration;

use crate::providers::ProviderError;

/// A failure a caller can be told about. `Internal` and `Database` are the only ones that are
/// the server's fault; everything else describes what the client asked for.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The request itself is malformed (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// A field failed validation (HTTP 422).
    #[error("{0}")]
    Invalid(String),
    /// Wrong email or password, indistinguishable on purpose (HTTP 401).
    #[error("Incorrect username or password")]
    BadCredentials,
    /// The token is fine but the password given to confirm an account change is not (HTTP 403).
    #[error("Current password is incorrect")]
    WrongPassword,
    /// A missing, malformed, expired or forged token (HTTP 401).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Missing, or owned by someone else: the two are indistinguishable on purpose (HTTP 404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request clashes with current state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// A per-user limit was hit (HTTP 429 with `Retry-After`).
    #[error("{message}")]
    Limited {
        message: String,
        retry_after: Duration,
    },
    /// The user's own quota (tokens a day, prompts a minute) refused a prompt (HTTP 429 with
    /// `Retry-After` and the `RateLimit-*` headers).
    #[error("{}", .0.message)]
    QuotaExceeded(crate::budget::QuotaRefusal),
    /// The server is at capacity (HTTP 503 with `Retry-After`).
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after: Duration,
    },
    /// A provider failed before the answer started (status depends on the variant).
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("internal error: {0}")]
    Internal(String),
    /// The actor addressed had stopped; a fresh one may serve a retry (HTTP 503).
    #[error("the service is restarting; try again")]
    ActorGone,
}

impl CoreError {
    /// True for a database error that means "unavailable right now" (busy, gone, locked or too
    /// slow), not "broken": the client is told to retry, not that the server failed.
    pub fn is_database_busy(&self) -> bool {
        let CoreError::Database(err) = self else {
            return false;
        };
        match err {
            sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_) => true,
            sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
            | sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => sqlx_unavailable(e),
            _ => false,
        }
    }
}

/// A driver error that says the database could not be reached or did not answer in time:
/// an I/O error, a closed or exhausted pool, or PostgreSQL cancelling a statement or lock wait
/// at the configured bound (SQLSTATE 57014, 55P03), or SQLite's busy/locked.
fn sqlx_unavailable(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_) | Error::PoolTimedOut | Error::PoolClosed | Error::WorkerCrashed => true,
        Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("57014" | "55P03" | "57P01" | "5" | "6")
        ),
        _ => false,
    }
}

impl From<crate::store::WriteError> for CoreError {
    fn from(err: crate::store::WriteError) -> Self {
        use crate::store::WriteError;
        match err {
            WriteError::Database(err) => CoreError::Database(err),
            WriteError::TimedOut(_) | WriteError::Overloaded | WriteError::Closed => {
                CoreError::Overloaded {
                    message: format!("The database is unavailable ({err}); try again shortly"),
                    retry_after: Duration::from_secs(1),
                }
            }
        }
    }
}

pub type CoreResult<T> = Result<T, CoreError>;
