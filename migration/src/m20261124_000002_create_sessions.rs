//! Creates `sessions`: a user's chat sessions, removed with their user.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(pk_uuid(Sessions::Id))
                    .col(uuid(Sessions::UserId))
                    .col(string_len(Sessions::Title, 200))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_user")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Lists are "newest activity first" per user: this index serves them without a sort.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_sessions_user_updated")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .col(Sessions::UpdatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub(crate) enum Sessions {
    Table,
    Id,
    UserId,
    Title,
    CreatedAt,
    UpdatedAt,
}
