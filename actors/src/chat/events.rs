//! What a generation sends its subscribers: text deltas, then an optional error, then done.

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

/// One event of a generation's stream.
///
/// A delta's id is the answer's length in bytes once the delta is appended. So ids only grow,
/// and `Last-Event-ID: n` means "I have the first n bytes": the rest can be served exactly once
/// from a live generation or from the stored answer alike.
#[derive(Clone, Debug)]
pub enum StreamEvent {
    Delta { id: u64, text: String },
    Error { failure: StreamFailure },
    Done,
}
