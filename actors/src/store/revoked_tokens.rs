//! Queries on `revoked_tokens`: single tokens logged out before they expire.

use omnichat_entity::revoked_tokens::{self, Column, Entity};
use sea_orm::{sea_query::OnConflict, ColumnTrait, DbErr, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::Store;

impl Store {
    /// Records that token `token_id` of `user_id` is refused until it expires at `expires_at`
    /// (Unix seconds). Recording it twice is fine.
    pub async fn insert_revoked_token(
        &self,
        token_id: Uuid,
        user_id: Uuid,
        expires_at: i64,
    ) -> Result<(), DbErr> {
        let row = revoked_tokens::ActiveModel {
            id: Set(token_id),
            user_id: Set(user_id),
            expires_at: Set(expires_at),
        };
        Entity::insert(row)
            .on_conflict(OnConflict::column(Column::Id).do_nothing().to_owned())
            .exec_without_returning(self.writer())
            .await
            .map(|_| ())
    }

    /// Every revoked token that has not expired at `now` (Unix seconds), with its expiry.
    pub async fn live_revoked_tokens(&self, now: i64) -> Result<Vec<(Uuid, i64)>, DbErr> {
        let rows = Entity::find()
            .filter(Column::ExpiresAt.gte(now))
            .all(self.conn())
            .await?;
        Ok(rows.into_iter().map(|r| (r.id, r.expires_at)).collect())
    }

    /// Deletes the rows of tokens that have expired by `now`: no check needs them any more.
    pub async fn prune_revoked_tokens(&self, now: i64) -> Result<u64, DbErr> {
        Entity::delete_many()
            .filter(Column::ExpiresAt.lt(now))
            .exec(self.writer())
            .await
            .map(|done| done.rows_affected)
    }
}
