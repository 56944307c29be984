//! omnichat-actors: OmniChat's actor tree, provider adapters and store. It knows nothing of HTTP;
//! the front end talks to it only through the [`Core`] handle.

mod ask;
pub mod auth;
pub mod budget;
pub mod chat;
mod cluster;
pub mod config;
mod core;
pub mod error;
#[cfg(feature = "fault-injection")]
pub mod faults;
mod follow;
pub mod metrics;
pub mod providers;
mod root;
pub mod session;
pub mod store;
pub mod text;

pub use crate::core::{Core, StartError};
pub use config::{CoreConfig, DisconnectPolicy, Limits};
pub use error::{CoreError, CoreResult};
