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
/// Passwords are measured in characters (Unicode code points), as NIST SP 800-63B counts them
/// and as the OpenAPI document's `minLength`/`maxLength` do; 1024 of them are at most 4 KiB to
/// hash.
pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 1024;

/// At most 64 characters as sent, not all white space, no control characters; stored trimmed.
/// (The limit counts the name as sent, so that it is the `maxLength` the API document states.)
pub fn username(raw: &str) -> CoreResult<String> {
    // U+0000 follows the one rule for text a database cannot hold; other controls are refused.
    let raw = crate::text::storable(raw.to_owned());
    let name = raw.trim();
    if name.is_empty() || raw.chars().count() > USERNAME_MAX_CHARS {
        return Err(CoreError::Invalid(format!(
            "username must be 1 to {USERNAME_MAX_CHARS} characters"
        )));
    }
    if raw.chars().any(char::is_control) {
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

/// 8–1024 characters: long enough to matter, short enough that hashing it is bounded.
pub fn password(raw: &str) -> CoreResult<()> {
    if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&raw.chars().count()) {
        return Err(CoreError::Invalid(format!(
            "password must be {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"
        )));
    }
    Ok(())
}

/// Whether a password offered to log in (or to confirm a change) is too long to be worth
/// hashing: no valid password is.
pub fn too_long_to_check(password: &str) -> bool {
    password.len() > 4 * PASSWORD_MAX_CHARS || password.chars().count() > PASSWORD_MAX_CHARS
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
        // The limit counts the name as sent, white space around it included.
        assert!(username(&format!(" {}", "x".repeat(64))).is_err());
        assert!(username("   ").is_err());
        assert!(username("\tann").is_err());
        assert_eq!(username(&"é".repeat(64)).unwrap().chars().count(), 64);
        assert!(password("short").is_err());
        assert!(password(&"x".repeat(1025)).is_err());
        assert!(password("longenough").is_ok());
        // Characters, not bytes: four two-byte characters are too short, 1024 of them are fine.
        assert!(password("éééé").is_err());
        assert!(password(&"é".repeat(1024)).is_ok());
        assert!(password(&"é".repeat(1025)).is_err());
        assert!(too_long_to_check(&"x".repeat(1025)));
        assert!(!too_long_to_check(&"é".repeat(1024)));
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
