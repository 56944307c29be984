//! Generations: the ChatStreamActor and the events it fans out to subscribers.

mod actor;
mod events;
mod persist;
mod replay;

pub use actor::{BeginOutcome, ChatArgs, ChatMsg, ChatStreamActor, TurnAccount};
pub use events::{EarlyFailure, StreamEvent, StreamFailure};
pub use replay::replay;
