//! Usage and quotas: per answer, whether its token counts are estimates and how many earlier
//! messages were left out of its context; per user and day, the tokens spent by provider and
//! model (`usage_daily`, also what the daily quota is checked against); per user, the prompts
//! of the current minute (`prompt_rate`). Counters live in the database so they survive a
//! restart and are shared by every node on one PostgreSQL.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one added column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(boolean_null(Messages::UsageEstimated))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(integer_null(Messages::ContextOmitted))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UsageDaily::Table)
                    .if_not_exists()
                    .col(uuid(UsageDaily::UserId))
                    // `YYYY-MM-DD` (UTC): sorts and compares the same on both databases.
                    .col(string_len(UsageDaily::Day, 10))
                    .col(string(UsageDaily::Provider))
                    .col(string(UsageDaily::Model))
                    .col(big_integer(UsageDaily::PromptTokens).default(0))
                    .col(big_integer(UsageDaily::CompletionTokens).default(0))
                    .col(big_integer(UsageDaily::Answers).default(0))
                    .primary_key(
                        Index::create()
                            .col(UsageDaily::UserId)
                            .col(UsageDaily::Day)
                            .col(UsageDaily::Provider)
                            .col(UsageDaily::Model),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(UsageDaily::Table, UsageDaily::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PromptRate::Table)
                    .if_not_exists()
                    .col(uuid(PromptRate::UserId).primary_key())
                    // Unix time in whole minutes.
                    .col(big_integer(PromptRate::Minute))
                    .col(big_integer(PromptRate::Prompts))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PromptRate::Table, PromptRate::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PromptRate::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(UsageDaily::Table).to_owned())
            .await?;
        for column in [Messages::ContextOmitted, Messages::UsageEstimated] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Messages::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    UsageEstimated,
    ContextOmitted,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum UsageDaily {
    Table,
    UserId,
    Day,
    Provider,
    Model,
    PromptTokens,
    CompletionTokens,
    Answers,
}

#[derive(DeriveIden)]
enum PromptRate {
    Table,
    UserId,
    Minute,
    Prompts,
}
