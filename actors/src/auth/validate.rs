//! Field rules for accounts: what a username, an email and a password may be.

use std::{collections::HashSet, sync::LazyLock};

use crate::error::{CoreError, CoreResult};

/// Common passwords from breaches (see the file's header for its source and licence), lowercase.
static BREACHED: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("breached.txt")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

pub const USERNAME_MAX_CHARS: usize = 64;
pub const EMAIL_MAX_BYTES: usize = 320;
pub const PASSWORD_MIN_BYTES: usize = 8;
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// 1–64 characters after trimming, no control characters.
pub fn username(raw: &str) -> CoreResult<String> {
    // U+0000 follows the one rule for text a database cannot hold; other controls are refused.
    let raw = crate::text::storable(raw.to_owned());
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > USERNAME_MAX_CHARS {
        return Err(CoreError::Invalid(format!(
            "username must be 1 to {USERNAME_MAX_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(CoreError::Invalid(
            "username must not contain control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// A plausible address (`local@domain.tld`), compared case-insensitively.
pub fn email(raw: &str) -> CoreResult<String> {
    let email = raw.trim().to_lowercase();
    let invalid = || CoreError::Invalid("email must be a valid email address".into());
    if email.len() > EMAIL_MAX_BYTES || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let domain_ok = domain.contains('.')
        && !domain.contains('@')
        && domain.split('.').all(|label| !label.is_empty());
    if local.is_empty() || !domain_ok {
        return Err(invalid());
    }
    Ok(email)
}

/// 8–1024 bytes: long enough to matter, short enough that hashing it is bounded.
pub fn password(raw: &str) -> CoreResult<()> {
    if raw.len() < PASSWORD_MIN_BYTES || raw.len() > PASSWORD_MAX_BYTES {
        return Err(CoreError::Invalid(format!(
            "password must be {PASSWORD_MIN_BYTES} to {PASSWORD_MAX_BYTES} bytes"
        )));
    }
    Ok(())
}

/// A new account's password: the length rule, and not one attackers try first, which is one
/// from a breach list or the account's own email or username (all compared case-insensitively).
pub fn new_password(raw: &str, username: &str, email: &str) -> CoreResult<()> {
    password(raw)?;
    let lower = raw.to_lowercase();
    if BREACHED.contains(lower.as_str()) {
        return Err(CoreError::Invalid(
            "password is too common: it appears in lists of breached passwords".into(),
        ));
    }
    if lower == email.to_lowercase() || lower == username.to_lowercase() {
        return Err(CoreError::Invalid(
            "password must not be the same as the email or the username".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a@b@c.com",
            "ann@example..com",
        ] {
            assert!(email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn usernames_and_passwords() {
        assert!(username("").is_err());
        assert_eq!(username("a\0b").unwrap(), "a\u{FFFD}b");
        assert!(username("a\u{7}b").is_err());
        assert!(username(&"x".repeat(65)).is_err());
        assert_eq!(username(&"é".repeat(64)).unwrap().chars().count(), 64);
        assert!(password("short").is_err());
        assert!(password(&"x".repeat(1025)).is_err());
        assert!(password("longenough").is_ok());
    }

    #[test]
    fn common_or_personal_passwords_are_refused() {
        for common in ["password", "12345678", "PassWord1", "iloveyou"] {
            let err = new_password(common, "ann", "ann@example.com").unwrap_err();
            assert!(err.to_string().contains("common"), "{common}: {err}");
        }
        let err = new_password("Ann@Example.com", "ann", "ann@example.com").unwrap_err();
        assert!(err.to_string().contains("email"), "{err}");
        let err = new_password("AnnTheGreat", "annthegreat", "ann@example.com").unwrap_err();
        assert!(err.to_string().contains("username"), "{err}");
        assert!(new_password("correct horse battery", "ann", "ann@example.com").is_ok());
        assert!(new_password("short", "ann", "ann@example.com").is_err());
    }
}
