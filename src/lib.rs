//! OmniChat's HTTP front end: configuration, the accept loop, routing, request parsing, responses
//! and SSE bodies. It holds no business state; everything goes to the actor core. Beside it, the
//! load-testing tools: a mock upstream provider and a load generator.

pub mod app;
pub mod config;
pub mod handlers;
pub mod http;
pub mod loadtest;
pub mod mock_upstream;
pub mod openapi;
pub mod router;
pub mod server;

pub use server::{start, RunningServer, ServeError};
