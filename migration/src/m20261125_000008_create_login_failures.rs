//! Creates `login_failures`: counters of failed logins per account and address, per address and
//! per account, kept in the database so every node sharing it throttles alike.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginFailures::Table)
                    .if_not_exists()
                    .col(string_len(LoginFailures::Id, 160).primary_key())
                    .col(big_integer(LoginFailures::Failures).default(0))
                    .col(big_integer(LoginFailures::LastFailureAt).default(0))
                    .col(big_integer(LoginFailures::BlockedUntil).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginFailures::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum LoginFailures {
    Table,
    Id,
    Failures,
    LastFailureAt,
    BlockedUntil,
}
