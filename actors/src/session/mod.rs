//! Sessions: the SessionRegistry, one SessionActor per active user, and what they answer with.

mod actor;
mod generations;
mod registry;
mod views;

pub use actor::{ChatStart, SessionActor, SessionArgs, SessionMsg, StartChat};
pub use registry::{RegistryArgs, RegistryMsg, SessionRegistry};
pub use views::{MessageView, SessionDetail, SessionView, UsageView};
