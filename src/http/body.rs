//! The one response body type: either a whole buffer or a stream of SSE frames.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};

/// Every response carries this body.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A body holding `bytes` in full.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// An empty body (204, HEAD-like answers).
pub fn empty() -> Body {
    full(Bytes::new())
}
