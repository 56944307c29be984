//! Request ids: the client's `X-Request-Id` when it is a sane one, else a new UUID v7; sent back
//! on every response and recorded on the request's tracing span, so every log line of the
//! request (and of the answer it starts) carries it.

use hyper::{header::HeaderValue, HeaderMap};
use uuid::Uuid;

/// The header, as proxies and log pipelines spell it.
pub const HEADER: &str = "x-request-id";
/// The longest id taken from a client; a longer one is replaced, never cut.
pub const MAX_LEN: usize = 128;

/// The request's id: the client's if it is 1 to [`MAX_LEN`] visible ASCII characters (no spaces,
/// no control characters, so it cannot forge a log line), else a fresh UUID v7.
pub fn of(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(HEADER)
        .filter(|value| acceptable(value.as_bytes()))
        .cloned()
        .unwrap_or_else(fresh)
}

fn acceptable(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.iter().all(|b| b.is_ascii_graphic())
}

fn fresh() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = Uuid::now_v7().hyphenated().encode_lower(&mut buf);
    // A hyphenated UUID is always a valid header value; the fallback is never taken.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The id as text for the span (it is visible ASCII by construction).
pub fn as_str(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or("invalid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_bytes(value).unwrap());
        headers
    }

    #[test]
    fn a_sane_client_id_is_kept() {
        assert_eq!(of(&with(b"abc-123_X.y:z")), "abc-123_X.y:z");
        assert_eq!(of(&with(&[b'a'; MAX_LEN])).len(), MAX_LEN);
    }

    #[test]
    fn anything_else_gets_a_fresh_uuid() {
        for bad in [
            &b""[..],
            b"has space",
            b"tab\there",
            &[b'a'; MAX_LEN + 1],
            "é".as_bytes(),
        ] {
            let id = of(&with(bad));
            assert!(Uuid::parse_str(as_str(&id)).is_ok(), "{bad:?} -> {id:?}");
        }
        assert!(Uuid::parse_str(as_str(&of(&HeaderMap::new()))).is_ok());
    }
}
