//! sea-orm entities for OmniChat's tables: `users`, `sessions`, `messages`, `settings`, `nodes`.

pub mod messages;
pub mod nodes;
pub mod sessions;
pub mod settings;
pub mod users;
