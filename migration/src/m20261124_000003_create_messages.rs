//! Creates `messages`: the turns of a session, removed with their session.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000002_create_sessions::Sessions;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .if_not_exists()
                    .col(pk_uuid(Messages::Id))
                    .col(uuid(Messages::SessionId))
                    .col(string_len(Messages::Role, 16))
                    .col(text(Messages::Content))
                    // Assistant messages only: where their generation stands and what it cost.
                    .col(string_len_null(Messages::Status, 16))
                    .col(string_len_null(Messages::Provider, 32))
                    .col(string_len_null(Messages::Model, 200))
                    .col(uuid_null(Messages::GenerationId))
                    .col(string_len_null(Messages::FinishReason, 64))
                    .col(integer_null(Messages::PromptTokens))
                    .col(integer_null(Messages::CompletionTokens))
                    .col(timestamp_with_time_zone(Messages::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_messages_session")
                            .from(Messages::Table, Messages::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_messages_session_created")
                    .table(Messages::Table)
                    .col(Messages::SessionId)
                    .col(Messages::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // Start-up looks for answers a crash left `streaming`; keep that a cheap lookup.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_messages_status")
                    .table(Messages::Table)
                    .col(Messages::Status)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Messages::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    SessionId,
    Role,
    Content,
    Status,
    Provider,
    Model,
    GenerationId,
    FinishReason,
    PromptTokens,
    CompletionTokens,
    CreatedAt,
}
