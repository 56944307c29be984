//! The one rule for text a database cannot hold: PostgreSQL refuses U+0000 in `text` columns,
//! SQLite stores it. Every text that may be stored (prompts, titles, usernames, provider output)
//! passes through [`storable`] where it enters the core, so both databases store the same thing,
//! nothing is refused for it, and what a client was streamed is byte for byte what is stored.

/// What stands in for U+0000: the Unicode replacement character.
pub const NUL_REPLACEMENT: &str = "\u{FFFD}";

/// `text` with every U+0000 replaced by U+FFFD; no copy when there is none (the usual case).
pub fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', NUL_REPLACEMENT)
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_becomes_the_replacement_character_and_nothing_else_changes() {
        assert_eq!(storable("a\0b\0".into()), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(storable("plain ünïcode".into()), "plain ünïcode");
    }
}
