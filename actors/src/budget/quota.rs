//! A user's own quotas: tokens a day and prompts a minute, checked before any upstream call.
//!
//! The SessionActor keeps the user's counters in memory ([`UserQuota`]): loaded from the
//! database once, counted as turns start and end, so the check costs no database round trip.
//! The database holds the same counters (`usage_daily`, `prompt_rate`) for restarts; on a
//! PostgreSQL shared by several nodes the begin write also checks them there ([`QuotaCheck`]),
//! so one budget holds across every node.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The operator's limits; `None` switches one off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaSettings {
    pub tokens_per_day: Option<u64>,
    pub prompts_per_minute: Option<u64>,
}

impl Default for QuotaSettings {
    /// Generous: a person chatting never meets them; a runaway script does.
    fn default() -> Self {
        QuotaSettings {
            tokens_per_day: Some(100_000_000),
            prompts_per_minute: Some(10_000),
        }
    }
}

/// The UTC day of `at` as stored in `usage_daily.day`.
pub fn utc_day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// Unix time of `at` in whole minutes, as stored in `prompt_rate.minute`.
pub fn utc_minute(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

/// Why a prompt was refused, with what the `RateLimit-*` headers report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaRefusal {
    pub message: String,
    pub limit: u64,
    pub remaining: u64,
    /// Until the counter starts afresh.
    pub reset: Duration,
}

/// The limits as the begin write checks them in the database (off is `i64::MAX`).
#[derive(Clone, Debug)]
pub struct QuotaCheck {
    pub day: String,
    pub minute: i64,
    pub tokens_per_day: i64,
    pub prompts_per_minute: i64,
}

/// One user's counters as this node knows them.
#[derive(Clone, Debug, Default)]
pub struct UserQuota {
    day: String,
    day_tokens: u64,
    minute: i64,
    minute_prompts: u64,
}

impl UserQuota {
    /// Counters as loaded from the database.
    pub fn loaded(day: String, day_tokens: u64, minute: i64, minute_prompts: u64) -> Self {
        UserQuota {
            day,
            day_tokens,
            minute,
            minute_prompts,
        }
    }

    /// Ok when a prompt may go upstream at `now`.
    pub fn check(&self, settings: &QuotaSettings, now: DateTime<Utc>) -> Result<(), QuotaRefusal> {
        if let Some(limit) = settings.tokens_per_day {
            let used = if self.day == utc_day(now) {
                self.day_tokens
            } else {
                0
            };
            if used >= limit {
                return Err(QuotaRefusal {
                    message: format!(
                        "Your daily token quota ({limit} tokens) is used up; it renews at midnight UTC"
                    ),
                    limit,
                    remaining: 0,
                    reset: until_midnight(now),
                });
            }
        }
        if let Some(limit) = settings.prompts_per_minute {
            let sent = if self.minute == utc_minute(now) {
                self.minute_prompts
            } else {
                0
            };
            if sent >= limit {
                return Err(self.minute_refusal(limit, now));
            }
        }
        Ok(())
    }

    /// The refusal of a prompt past the per-minute limit.
    pub fn minute_refusal(&self, limit: u64, now: DateTime<Utc>) -> QuotaRefusal {
        QuotaRefusal {
            message: format!("At most {limit} prompts a minute; wait for the next minute"),
            limit,
            remaining: 0,
            reset: Duration::from_secs(60 - now.timestamp().rem_euclid(60).unsigned_abs()),
        }
    }

    /// A prompt went upstream at `now`.
    pub fn count_prompt(&mut self, now: DateTime<Utc>) {
        let minute = utc_minute(now);
        if self.minute != minute {
            self.minute = minute;
            self.minute_prompts = 0;
        }
        self.minute_prompts += 1;
    }

    /// An answer spent `tokens` (prompt and completion) on `day`.
    pub fn add_tokens(&mut self, day: &str, tokens: u64) {
        if self.day != day {
            self.day = day.to_owned();
            self.day_tokens = 0;
        }
        self.day_tokens = self.day_tokens.saturating_add(tokens);
    }

    /// The database's view of the same counters, once another node may have moved them on.
    pub fn refusal_from_database(
        settings: &QuotaSettings,
        day_tokens: u64,
        now: DateTime<Utc>,
    ) -> QuotaRefusal {
        let quota = UserQuota::loaded(utc_day(now), day_tokens, utc_minute(now), u64::MAX);
        match quota.check(settings, now) {
            Err(refusal) => refusal,
            // Not the day: the minute (its count is not re-read; the limit is what matters).
            Ok(()) => quota.minute_refusal(settings.prompts_per_minute.unwrap_or(0), now),
        }
    }
}

fn until_midnight(now: DateTime<Utc>) -> Duration {
    Duration::from_secs(86_400 - now.timestamp().rem_euclid(86_400).unsigned_abs())
}

impl QuotaSettings {
    /// The limits for the database check at `now`.
    pub fn database_check(&self, now: DateTime<Utc>) -> QuotaCheck {
        let limit = |l: Option<u64>| l.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        QuotaCheck {
            day: utc_day(now),
            minute: utc_minute(now),
            tokens_per_day: limit(self.tokens_per_day),
            prompts_per_minute: limit(self.prompts_per_minute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_either_limit_and_renews() {
        let settings = QuotaSettings {
            tokens_per_day: Some(100),
            prompts_per_minute: Some(2),
        };
        let now = DateTime::parse_from_rfc3339("2026-11-25T23:59:30Z")
            .unwrap()
            .to_utc();
        let mut quota = UserQuota::default();
        quota.count_prompt(now);
        quota.count_prompt(now);
        let refused = quota.check(&settings, now).unwrap_err();
        assert_eq!((refused.limit, refused.reset), (2, Duration::from_secs(30)));
        let next_minute = now + chrono::Duration::seconds(40);
        assert!(quota.check(&settings, next_minute).is_ok());
        quota.add_tokens(&utc_day(now), 100);
        let refused = quota
            .check(&settings, now + chrono::Duration::seconds(20))
            .unwrap_err();
        assert_eq!(
            (refused.limit, refused.reset),
            (100, Duration::from_secs(10))
        );
        // A new day starts afresh.
        assert!(quota.check(&settings, next_minute).is_ok());
        let off = QuotaSettings {
            tokens_per_day: None,
            prompts_per_minute: None,
        };
        assert!(quota.check(&off, now).is_ok());
    }
}
