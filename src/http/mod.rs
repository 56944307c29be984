//! HTTP plumbing shared by every handler: bodies, errors, request parsing, responses, SSE.

pub mod body;
pub mod client_ip;
pub mod cors;
pub mod error;
pub mod request;
pub mod request_id;
pub mod response;
pub mod sse;
