//! `GET /users/me/usage`: a user's token usage by day, provider and model over a date range.

use chrono::{NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    error::{CoreError, CoreResult},
    store::{Store, UsageRow},
};

/// The range when none is given: the last 30 days, today included.
const DEFAULT_REPORT_DAYS: i64 = 30;

/// A usage report.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    #[schema(format = Date, example = "2026-11-01")]
    pub from: String,
    #[schema(format = Date, example = "2026-11-25")]
    pub to: String,
    /// Oldest day first; days without usage are left out.
    pub days: Vec<UsageRow>,
    pub total: UsageTotal,
}

/// The sums over a report.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct UsageTotal {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub answers: i64,
}

fn date(name: &str, raw: Option<&str>, default: NaiveDate) -> CoreResult<NaiveDate> {
    match raw {
        None => Ok(default),
        Some(raw) => NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
            .map_err(|_| CoreError::Invalid(format!("{name} must be a date written YYYY-MM-DD"))),
    }
}

/// The report of `user_id` from `from` to `to` (inclusive, `YYYY-MM-DD`, UTC days).
pub async fn usage_report(
    store: &Store,
    user_id: Uuid,
    from: Option<&str>,
    to: Option<&str>,
) -> CoreResult<UsageReport> {
    let today = Utc::now().date_naive();
    let to = date("to", to, today)?;
    let from = date(
        "from",
        from,
        to - chrono::Duration::days(DEFAULT_REPORT_DAYS - 1),
    )?;
    // A range with nothing in it (from after to) reports nothing, like a range with no usage.
    // No bound on its length is needed: the answer has a row only per day, provider and model
    // that had answers, so it is as large as the user's own activity, whatever the range.
    if from > to {
        return Ok(UsageReport {
            from: from.format("%Y-%m-%d").to_string(),
            to: to.format("%Y-%m-%d").to_string(),
            days: Vec::new(),
            total: UsageTotal::default(),
        });
    }
    let (from, to) = (
        from.format("%Y-%m-%d").to_string(),
        to.format("%Y-%m-%d").to_string(),
    );
    let days = store.usage_report(user_id, &from, &to).await?;
    let mut total = UsageTotal::default();
    for row in &days {
        total.prompt_tokens += row.prompt_tokens;
        total.completion_tokens += row.completion_tokens;
        total.answers += row.answers;
    }
    total.total_tokens = total.prompt_tokens + total.completion_tokens;
    Ok(UsageReport {
        from,
        to,
        days,
        total,
    })
}
