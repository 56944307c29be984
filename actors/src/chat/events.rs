//! What a generation sends its subscribers: numbered deltas, then an optional error, then done.

use crate::providers::ProviderError;

/// Why a generation ended badly.
#[derive(Clone, Debug)]
pub struct StreamFailure {
    /// Machine-readable: `upstream_error`, `upstream_closed`, `answer_too_long`, …
    pub code: String,
    pub message: String,
    /// Set when the provider failed before any text: the front end can still answer with a
    /// plain JSON error and the right status instead of a stream.
    pub before_output: Option<ProviderError>,
}

/// One event of a generation's stream. Ids count from 1 and never repeat, so a client that
/// reconnects with `Last-Event-ID: n` gets exactly the events after `n`.
#[derive(Clone, Debug)]
pub enum StreamEvent {
    Delta { id: u64, text: String },
    Error { id: u64, failure: StreamFailure },
    Done,
}

impl StreamEvent {
    /// The event id, for those that carry one.
    pub fn id(&self) -> Option<u64> {
        match self {
            StreamEvent::Delta { id, .. } | StreamEvent::Error { id, .. } => Some(*id),
            StreamEvent::Done => None,
        }
    }
}
