//! sea-orm entities for OmniChat's tables: `users`, `sessions`, `messages`, `settings`.

pub mod messages;
pub mod sessions;
pub mod settings;
pub mod users;
