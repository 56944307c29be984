//! Telling "out of quota or credit" apart from "slow down": the first cannot be helped by
//! retrying (only the operator can top the account up), the second usually can.
//!
//! Each vendor says it differently, so the test is by meaning, per vendor, and conservative:
//! anything not clearly about billing stays a plain rate limit and is retried as before.

use super::error_body::VendorError;

/// Anthropic messages that mean the credit or spend limit is used up.
const ANTHROPIC_BILLING_PHRASES: [&str; 5] = [
    "credit balance",
    "spend limit",
    "spending limit",
    "api usage limits",
    "purchase credits",
];

/// Gemini `RESOURCE_EXHAUSTED` messages that are about billing. Google also says "You exceeded
/// your current quota, please check your plan and billing details" for per-minute limits, so
/// "quota" or a bare "billing details" is not enough.
const GEMINI_BILLING_PHRASES: [&str; 5] = [
    "credits are depleted",
    "prepayment",
    "billing account",
    "billing is disabled",
    "spending cap",
];

/// Whether `error`, answered with `status` by `provider`, says the account is out of quota.
pub(crate) fn is_exhausted(provider: &str, status: u16, error: &VendorError) -> bool {
    let kind = error.kind.as_deref().unwrap_or_default();
    let code = error.code.as_deref().unwrap_or_default();
    let message = error.message.as_deref().unwrap_or_default().to_lowercase();
    let says = |phrases: &[&str]| phrases.iter().any(|phrase| message.contains(phrase));
    match provider {
        "openai" => status == 429 && (code == "insufficient_quota" || kind == "insufficient_quota"),
        "anthropic" => {
            kind == "billing_error"
                || (kind != "rate_limit_error" && says(&ANTHROPIC_BILLING_PHRASES))
        }
        "gemini" => kind == "RESOURCE_EXHAUSTED" && says(&GEMINI_BILLING_PHRASES),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(body: serde_json::Value) -> VendorError {
        VendorError::from_body(body.to_string().as_bytes()).unwrap_or_default()
    }

    #[test]
    fn openai_insufficient_quota_is_exhausted_but_a_rate_limit_is_not() {
        let quota = parsed(
            json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
        );
        assert!(is_exhausted("openai", 429, &quota));
        let rate = parsed(
            json!({"error": {"message": "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3.",
            "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
        );
        assert!(!is_exhausted("openai", 429, &rate));
    }

    #[test]
    fn anthropic_billing_is_exhausted_but_a_rate_limit_is_not() {
        let billing = parsed(json!({"type": "error", "error": {"type": "billing_error",
            "message": "Billing issue"}}));
        assert!(is_exhausted("anthropic", 402, &billing));
        let credit = parsed(
            json!({"type": "error", "error": {"type": "invalid_request_error",
            "message": "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}),
        );
        assert!(is_exhausted("anthropic", 400, &credit));
        let rate = parsed(
            json!({"type": "error", "error": {"type": "rate_limit_error",
            "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
        );
        assert!(!is_exhausted("anthropic", 429, &rate));
    }

    #[test]
    fn gemini_needs_a_billing_message() {
        let depleted = parsed(
            json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "Your prepayment credits are depleted. Please go to AI Studio to manage your project and billing."}}),
        );
        assert!(is_exhausted("gemini", 429, &depleted));
        let per_minute = parsed(
            json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "You exceeded your current quota, please check your plan and billing details."}}),
        );
        assert!(!is_exhausted("gemini", 429, &per_minute));
        let generic = parsed(
            json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "Resource has been exhausted (e.g. check quota)."}}),
        );
        assert!(!is_exhausted("gemini", 429, &generic));
    }
}
