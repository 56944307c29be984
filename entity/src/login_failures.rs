//! A counter of failed logins for one throttling key (an account and an address, an address, or
//! an account), shared by every node on the database.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_failures")]
pub struct Model {
    /// `p:<account digest>:<ip>`, `a:<ip>` or `u:<account digest>`: the account part is a keyed
    /// digest of the email as typed, never the email itself (people type passwords there).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Failures since the count last started from zero.
    pub failures: i64,
    /// Unix milliseconds of the latest failure; a count this old is forgotten.
    pub last_failure_at: i64,
    /// Unix milliseconds until which logins under this key are refused (429); 0 when never.
    pub blocked_until: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
