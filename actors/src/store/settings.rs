//! Server-wide settings in the `settings` table, starting with the generated JWT secret.

use omnichat_entity::settings;
use sea_orm::{DbErr, EntityTrait, Set};

use super::Store;

impl Store {
    /// Returns the value stored under `key`, storing `make()` first if there is none. When two
    /// nodes race, both end up with the value that reached the database first.
    pub async fn setting_or_insert(
        &self,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, DbErr> {
        if let Some(found) = settings::Entity::find_by_id(key.to_owned())
            .one(self.conn())
            .await?
        {
            return Ok(found.value);
        }
        let row = settings::ActiveModel {
            key: Set(key.to_owned()),
            value: Set(make()),
        };
        settings::Entity::insert(row)
            .on_conflict_do_nothing_on([settings::Column::Key])
            .exec(self.writer())
            .await?;
        settings::Entity::find_by_id(key.to_owned())
            .one(self.conn())
            .await?
            .map(|row| row.value)
            .ok_or_else(|| DbErr::RecordNotFound(format!("setting {key}")))
    }
}
