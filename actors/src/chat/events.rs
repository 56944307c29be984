//! What a generation sends its subscribers: text deltas, then an optional error, then done.

use std::time::Duration;

use crate::{error::CoreError, providers::ProviderError};

/// Why a generation ended badly.
#[derive(Clone, Debug)]
pub struct StreamFailure {
    /// Machine-readable: `upstream_error`, `upstream_closed`, `answer_too_long`, …
    pub code: String,
    pub message: String,
    /// Set when the generation failed before any text: the front end can still answer with a
    /// plain JSON error and the right status instead of a stream.
    pub before_output: Option<EarlyFailure>,
}

/// A failure before the first token, which the front end answers as a plain JSON error.
#[derive(Clone, Debug)]
pub enum EarlyFailure {
    /// The provider failed before any text.
    Provider(ProviderError),
    /// The prompt could not be stored (the database is unavailable); nothing was kept.
    NotStored,
    /// The session changed on another server node (or was deleted there) between this node's
    /// last look and the prompt's write; nothing was kept, and a retry sees the change.
    SessionChanged,
}

impl From<EarlyFailure> for CoreError {
    fn from(failure: EarlyFailure) -> Self {
        match failure {
            EarlyFailure::Provider(error) => CoreError::Provider(error),
            EarlyFailure::NotStored => CoreError::Overloaded {
                message:
                    "The database is unavailable; the prompt was not stored. Try again shortly"
                        .into(),
                retry_after: Duration::from_secs(1),
            },
            EarlyFailure::SessionChanged => CoreError::Conflict(
                "This session was changed by another server; send the prompt again".into(),
            ),
        }
    }
}

/// One event of a generation's stream.
///
/// A delta's id is the answer's length in bytes once the delta is appended. So ids only grow,
/// and `Last-Event-ID: n` means "I have the first n bytes": the rest can be served exactly once
/// from a live generation or from the stored answer alike.
#[derive(Clone, Debug)]
pub enum StreamEvent {
    Delta {
        id: u64,
        text: String,
    },
    /// Boxed: an error comes once per stream, a delta once per token, and every slot of a
    /// subscriber's channel is as large as the largest event.
    Error {
        failure: Box<StreamFailure>,
    },
    Done,
}
