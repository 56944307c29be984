//! Budgets a turn must fit: the model's context window (token counts, window sizes, what is
//! left out) and the user's own quotas (tokens a day, prompts a minute).

mod quota;
mod report;
mod tokens;
mod windows;

pub use quota::{utc_day, utc_minute, QuotaCheck, QuotaRefusal, QuotaSettings, UserQuota};
pub use report::{usage_report, UsageReport, UsageTotal};
pub use tokens::{count_tokens, estimate_tokens, warm_up_tokenizers, MESSAGE_OVERHEAD_TOKENS};
pub use windows::{ContextSettings, ContextWindows};
