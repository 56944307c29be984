//! Budgets a turn must fit: the model's context window (token counts, window sizes, what is
//! left out) and the user's own quotas (tokens a day, prompts a minute).

mod quota;
mod report;
mod tokens;
mod windows;

pub use quota::{QuotaRefusal, QuotaSettings, UserQuota, QuotaCheck, utc_day, utc_minute};
pub use tokens::{count_tokens, estimate_tokens, MESSAGE_OVERHEAD_TOKENS};
pub use report::{usage_report, UsageReport, UsageTotal, MAX_REPORT_DAYS};
pub use windows::{ContextSettings, ContextWindows};
