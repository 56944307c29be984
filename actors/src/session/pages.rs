//! Pages of sessions (plain, or found by full-text search) and of one session's messages: what
//! a client may ask for, its caps, and the opaque cursor that carries a page's position.
//!
//! A plain listing pages by key, `(updated_at, id)` of the last session shown, so sessions
//! created meanwhile (they sort first) never shift a later page. Search results page by offset
//! into the ranking, and their cursor is bound to the query it came from.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::views::{MessageView, SessionView};
use crate::{
    error::{CoreError, CoreResult},
    store::Store,
};

/// The largest page a client may ask for.
pub const MAX_PAGE: u64 = 100;
/// A search's page size when the client names none.
pub const DEFAULT_SEARCH_PAGE: u64 = 20;
/// A plain listing's page size when the client gives a cursor but no limit.
pub const DEFAULT_PAGE: u64 = 50;
/// The longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Words a search query may hold.
pub const MAX_QUERY_TERMS: usize = 16;

/// `GET /sessions` with its optional parameters.
#[derive(Clone, Debug, Default)]
pub struct ListSessions {
    pub limit: Option<u64>,
    pub cursor: Option<String>,
    pub q: Option<String>,
}

/// One listed session; `snippet` only on search results.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ListedSession {
    #[serde(flatten)]
    pub session: SessionView,
    /// Search results only: up to 200 characters of the best match (or the title).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

/// A page of sessions and the cursor of the next one, if more exist.
#[derive(Clone, Debug)]
pub struct SessionPage {
    pub sessions: Vec<ListedSession>,
    pub next: Option<String>,
}

/// `GET /sessions/{id}` with a page of its messages.
#[derive(Clone, Copy, Debug, Default)]
pub struct MessagePageRequest {
    pub limit: Option<u64>,
    /// Messages older than this one; `None`: the newest.
    pub before: Option<Uuid>,
}

/// A page of messages, oldest first, and the id to ask `before` for the older page.
#[derive(Clone, Debug)]
pub struct MessagePage {
    pub messages: Vec<MessageView>,
    pub older: Option<Uuid>,
}

/// Where a page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cursor {
    /// After the session with this `(updated_at, id)` in a plain listing.
    After(DateTime<Utc>, Uuid),
    /// At this offset into the results of the query with this hash.
    Offset { offset: u64, query: u64 },
}

const AFTER: u8 = 1;
const OFFSET: u8 = 2;

impl Cursor {
    /// Hex of a tag byte and the fields: opaque to clients, safe in a URL.
    fn encode(self) -> String {
        let mut bytes = Vec::with_capacity(25);
        match self {
            Cursor::After(at, id) => {
                bytes.push(AFTER);
                // Nanoseconds: SQLite keeps them, and a truncated key would skip sessions.
                let nanos = at.timestamp_nanos_opt().unwrap_or(i64::MAX);
                bytes.extend_from_slice(&nanos.to_be_bytes());
                bytes.extend_from_slice(id.as_bytes());
            }
            Cursor::Offset { offset, query } => {
                bytes.push(OFFSET);
                bytes.extend_from_slice(&offset.to_be_bytes());
                bytes.extend_from_slice(&query.to_be_bytes());
            }
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn decode(text: &str) -> Option<Cursor> {
        if !text.len().is_multiple_of(2) || text.len() > 64 || !text.is_ascii() {
            return None;
        }
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
            .collect::<Option<_>>()?;
        let word = |at: usize| -> Option<[u8; 8]> { bytes.get(at..at + 8)?.try_into().ok() };
        match (bytes.first()?, bytes.len()) {
            (&AFTER, 25) => {
                let nanos = i64::from_be_bytes(word(1)?);
                let id = Uuid::from_slice(bytes.get(9..25)?).ok()?;
                Some(Cursor::After(DateTime::from_timestamp_nanos(nanos), id))
            }
            (&OFFSET, 17) => Some(Cursor::Offset {
                offset: u64::from_be_bytes(word(1)?),
                query: u64::from_be_bytes(word(9)?),
            }),
            _ => None,
        }
    }
}

fn bad_cursor() -> CoreError {
    CoreError::Invalid("cursor is not one this server gave out for this listing".into())
}

fn checked_limit(limit: Option<u64>, default: u64) -> CoreResult<u64> {
    match limit {
        None => Ok(default),
        Some(n @ 1..=MAX_PAGE) => Ok(n),
        Some(_) => Err(CoreError::Invalid(format!("limit must be 1 to {MAX_PAGE}"))),
    }
}

/// The words of a search query, lowercased: letters and digits, everything else separates.
fn search_terms(q: &str) -> CoreResult<Vec<String>> {
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(CoreError::Invalid(format!(
            "q must be at most {MAX_QUERY_CHARS} characters"
        )));
    }
    let terms: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect();
    // The first words are searched for, as search boxes do; a query with no word at all (only
    // punctuation) matches nothing.
    Ok(terms.into_iter().take(MAX_QUERY_TERMS).collect())
}

/// FNV-1a: the same on every node and every build, unlike std's hasher.
fn query_hash(terms: &[String]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in terms.join(" ").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Answers `GET /sessions`: every session (at most `cap`, the per-user limit) without
/// parameters, else a page of them or of search results.
pub async fn list_sessions(
    store: &Store,
    user_id: Uuid,
    request: ListSessions,
    cap: u64,
) -> CoreResult<SessionPage> {
    // An empty cursor (`?cursor=`) is no cursor: the first page.
    let cursor = match request.cursor.as_deref().filter(|text| !text.is_empty()) {
        Some(text) => Some(Cursor::decode(text).ok_or_else(bad_cursor)?),
        None => None,
    };
    if let Some(q) = request.q.as_deref() {
        let terms = search_terms(q)?;
        let limit = checked_limit(request.limit, DEFAULT_SEARCH_PAGE)?;
        if terms.is_empty() {
            return Ok(SessionPage {
                sessions: Vec::new(),
                next: None,
            });
        }
        let query = query_hash(&terms);
        let offset = match cursor {
            None => 0,
            Some(Cursor::Offset { offset, query: q }) if q == query => offset,
            Some(_) => return Err(bad_cursor()),
        };
        // One more than the page tells whether another page exists.
        let mut hits = store
            .search_sessions(user_id, &terms, limit + 1, offset)
            .await?;
        let more = hits.len() as u64 > limit;
        hits.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = more.then(|| {
            Cursor::Offset {
                offset: offset + limit,
                query,
            }
            .encode()
        });
        let sessions = hits
            .into_iter()
            .map(|hit| ListedSession {
                session: hit.session.into(),
                snippet: Some(hit.snippet),
            })
            .collect();
        return Ok(SessionPage { sessions, next });
    }
    let after = match cursor {
        None => None,
        Some(Cursor::After(at, id)) => Some((at, id)),
        Some(Cursor::Offset { .. }) => return Err(bad_cursor()),
    };
    let limit = if request.limit.is_none() && after.is_none() {
        // No parameters: the spec's whole list, bounded by the per-user cap on sessions.
        cap
    } else {
        checked_limit(request.limit, DEFAULT_PAGE)?
    };
    let mut rows = store.session_page(user_id, after, limit + 1).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = match rows.last() {
        Some(last) if more => Some(Cursor::After(last.updated_at, last.id).encode()),
        _ => None,
    };
    Ok(SessionPage {
        sessions: rows
            .into_iter()
            .map(|row| ListedSession {
                session: row.into(),
                snippet: None,
            })
            .collect(),
        next,
    })
}

/// A page of a session's messages (the session's ownership already checked): without a limit,
/// all of them up to `cap`.
pub async fn message_page(
    store: &Store,
    session_id: Uuid,
    request: MessagePageRequest,
    cap: u64,
) -> CoreResult<MessagePage> {
    let limit = match (request.limit, request.before) {
        (None, None) => cap,
        (limit, _) => checked_limit(limit, DEFAULT_PAGE)?,
    };
    let mut rows = store
        .message_page(session_id, request.before, limit + 1)
        .await?
        .ok_or_else(|| CoreError::Invalid("before is no message of this session".into()))?;
    // Oldest first: one extra at the front means older messages exist.
    let more = rows.len() as u64 > limit;
    if more {
        rows.remove(0);
    }
    let older = if more {
        rows.first().map(|m| m.id)
    } else {
        None
    };
    Ok(MessagePage {
        messages: rows.into_iter().map(MessageView::from).collect(),
        older,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let after = Cursor::After(Utc::now(), Uuid::now_v7());
        assert_eq!(Cursor::decode(&after.encode()), Some(after));
        let offset = Cursor::Offset {
            offset: 40,
            query: 7,
        };
        assert_eq!(Cursor::decode(&offset.encode()), Some(offset));
        for bad in [
            "",
            "zz",
            "01",
            "0",
            "é",
            &"0".repeat(200),
            "03000000000000000000000000000000000",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn search_terms_are_words_and_bounded() {
        assert_eq!(
            search_terms("Zephyr-wind, OR \"x\"*").unwrap(),
            ["zephyr", "wind", "or", "x"]
        );
        assert!(search_terms(" -*- ").unwrap().is_empty());
        assert!(search_terms(&"a".repeat(201)).is_err());
        assert_eq!(search_terms(&"a ".repeat(17)).unwrap().len(), 16);
    }
}
