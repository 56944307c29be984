//! Creates `revoked_tokens`: the ids (`jti`) of single tokens logged out before their expiry, so
//! every node, and a restarted one, refuses them until they expire.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RevokedTokens::Table)
                    .if_not_exists()
                    .col(uuid(RevokedTokens::Id).primary_key())
                    .col(uuid(RevokedTokens::UserId))
                    .col(big_integer(RevokedTokens::ExpiresAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RevokedTokens::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RevokedTokens {
    Table,
    Id,
    UserId,
    ExpiresAt,
}
