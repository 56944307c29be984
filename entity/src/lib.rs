//! sea-orm entities for OmniChat's tables: `users`, `sessions`, `messages`, `settings`, `nodes`,
//! `login_failures`, `revoked_tokens`.

pub mod login_failures;
pub mod messages;
pub mod nodes;
pub mod revoked_tokens;
pub mod sessions;
pub mod settings;
pub mod users;
