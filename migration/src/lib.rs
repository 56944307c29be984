//! Schema migrations for OmniChat, written once for SQLite and PostgreSQL alike.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_users;
mod m20261124_000002_create_sessions;
mod m20261124_000003_create_messages;
mod m20261124_000004_create_settings;
mod m20261124_000005_create_nodes;
mod m20261125_000006_add_session_version;
mod m20261125_000007_add_token_generation;
mod m20261125_000008_create_login_failures;
mod m20261125_000009_create_revoked_tokens;
mod m20261125_000010_add_usage_and_quotas;
mod m20261125_000011_add_node_alive_until;
mod m20261125_000012_create_search_index;
mod m20261125_000013_add_session_prompt_and_title_state;
mod m20261125_000014_add_message_superseded_at;
mod m20261126_000015_defer_message_indexing;
mod m20261126_000016_index_only_streaming_answers;

/// Every migration, oldest first.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_users::Migration),
            Box::new(m20261124_000002_create_sessions::Migration),
            Box::new(m20261124_000003_create_messages::Migration),
            Box::new(m20261124_000004_create_settings::Migration),
            Box::new(m20261124_000005_create_nodes::Migration),
            Box::new(m20261125_000006_add_session_version::Migration),
            Box::new(m20261125_000007_add_token_generation::Migration),
            Box::new(m20261125_000008_create_login_failures::Migration),
            Box::new(m20261125_000009_create_revoked_tokens::Migration),
            Box::new(m20261125_000010_add_usage_and_quotas::Migration),
            Box::new(m20261125_000011_add_node_alive_until::Migration),
            Box::new(m20261125_000012_create_search_index::Migration),
            Box::new(m20261125_000013_add_session_prompt_and_title_state::Migration),
            Box::new(m20261125_000014_add_message_superseded_at::Migration),
            Box::new(m20261126_000015_defer_message_indexing::Migration),
            Box::new(m20261126_000016_index_only_streaming_answers::Migration),
        ]
    }
}
