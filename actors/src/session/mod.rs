//! Sessions: the SessionRegistry, one SessionActor per active user, and what they answer with.

mod actor;
mod cache;
mod generations;
mod pages;
mod registry;
mod titles;
mod views;

pub use actor::{
    ChatStart, EndedTurn, NewSession, Replace, SessionActor, SessionArgs, SessionChange,
    SessionMsg, StartChat, DEFAULT_TITLE, SYSTEM_PROMPT_MAX_CHARS,
};
pub use cache::HistoryMessage;
pub(crate) use generations::stored_replay;
pub use pages::{
    ListSessions, ListedSession, MessagePageRequest, SessionPage, MAX_PAGE, MAX_QUERY_CHARS,
};
pub use registry::{RegistryArgs, RegistryMsg, SessionRegistry};
pub use views::{MessageView, SessionDetail, SessionUsage, SessionView, UsageView};
