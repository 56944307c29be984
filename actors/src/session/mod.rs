//! Sessions: the SessionRegistry, one SessionActor per active user, and what they answer with.

mod actor;
mod cache;
mod generations;
mod registry;
mod views;

pub use actor::{ChatStart, EndedTurn, SessionActor, SessionArgs, SessionMsg, StartChat};
pub use cache::HistoryMessage;
pub(crate) use generations::stored_replay;
pub use registry::{RegistryArgs, RegistryMsg, SessionRegistry};
pub use views::{MessageView, SessionDetail, SessionUsage, SessionView, UsageView};
