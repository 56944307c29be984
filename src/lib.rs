//! OmniChat's HTTP front end: configuration, the accept loop, routing, request parsing, responses
//! and SSE bodies. It holds no business state; everything goes to the actor core.

pub mod app;
pub mod config;
pub mod handlers;
pub mod http;
pub mod router;
pub mod server;

pub use server::{start, RunningServer, ServeError};
