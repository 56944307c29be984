//! The text of follow requests and notices, kept under PostgreSQL's `NOTIFY` payload limit
//! (shorter than 8,000 bytes): a long delta becomes several, each with its own event id.

use uuid::Uuid;

/// The longest payload sent; PostgreSQL refuses 8,000 bytes and more.
pub(super) const MAX_PAYLOAD: usize = 7_900;

/// What a publishing node tells one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The node runs the generation and publishes from the asked position on.
    Ack,
    /// The asked position is not one of the answer's (a bad `Last-Event-ID`).
    Refused(String),
    /// Nothing new for a while, but the publisher is alive.
    Tick,
    /// The answer's bytes up to `id` (the text ends there).
    Delta {
        id: u64,
        text: String,
    },
    Error {
        code: String,
        message: String,
    },
    Done,
}

/// A follower's request: publish `generation_id` of `user_id` from byte `after` to channel
/// `reply_to`, each notice tagged with `request`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowRequest {
    pub user_id: Uuid,
    pub generation_id: Uuid,
    pub after: u64,
    pub request: u64,
    pub reply_to: String,
}

/// On the request channel, that the follower of `request` has left: `-<request>`.
pub(crate) fn encode_leave(request: u64) -> String {
    format!("-{request:x}")
}

/// The request id of a leave message, `None` if `payload` is not one.
pub(crate) fn decode_leave(payload: &str) -> Option<u64> {
    u64::from_str_radix(payload.strip_prefix('-')?, 16).ok()
}

impl FollowRequest {
    pub(crate) fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{:x}:{}",
            self.user_id, self.generation_id, self.after, self.request, self.reply_to
        )
    }

    pub(crate) fn decode(payload: &str) -> Option<FollowRequest> {
        let mut parts = payload.splitn(5, ':');
        let user_id = Uuid::parse_str(parts.next()?).ok()?;
        let generation_id = Uuid::parse_str(parts.next()?).ok()?;
        let after = parts.next()?.parse().ok()?;
        let request = u64::from_str_radix(parts.next()?, 16).ok()?;
        let reply_to = parts.next()?;
        // Only a follow channel: a request must not make a node notify anything else.
        if !reply_to.starts_with("omnichat_follow_")
            || reply_to.len() > 63
            || !reply_to
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return None;
        }
        Some(FollowRequest {
            user_id,
            generation_id,
            after,
            request,
            reply_to: reply_to.to_owned(),
        })
    }
}

/// A notice other than a delta, as one payload (a long message is cut to fit).
pub(super) fn encode_control(request: u64, notice: &Notice) -> String {
    let mut payload = match notice {
        Notice::Ack => format!("{request:x} a"),
        Notice::Tick => format!("{request:x} t"),
        Notice::Done => format!("{request:x} z"),
        Notice::Refused(message) => format!("{request:x} r {message}"),
        Notice::Error { code, message } => format!("{request:x} e {code} {message}"),
        Notice::Delta { id, text } => format!("{request:x} d {id} {text}"),
    };
    truncate(&mut payload, MAX_PAYLOAD);
    payload
}

/// A delta of the answer ending at byte `id`, as payloads in order, each under the limit and
/// cut at character boundaries; each carries the position its own text ends at.
pub(super) fn encode_delta(request: u64, id: u64, text: &str) -> Vec<String> {
    let start = id.saturating_sub(text.len() as u64);
    let mut payloads = Vec::with_capacity(text.len() / MAX_PAYLOAD + 1);
    let mut rest = text;
    let mut position = start;
    while !rest.is_empty() {
        // The header's length bounds the room for text: the id is at most 20 digits.
        let room = MAX_PAYLOAD - format!("{request:x} d 00000000000000000000 ").len();
        let mut cut = rest.len().min(room);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (chunk, tail) = rest.split_at(cut);
        position += chunk.len() as u64;
        payloads.push(format!("{request:x} d {position} {chunk}"));
        rest = tail;
    }
    payloads
}

/// Reads a notice; `None` for anything malformed.
pub(super) fn decode(payload: &str) -> Option<(u64, Notice)> {
    let (request, rest) = payload.split_once(' ')?;
    let request = u64::from_str_radix(request, 16).ok()?;
    let (kind, body) = rest.split_once(' ').unwrap_or((rest, ""));
    let notice = match kind {
        "a" => Notice::Ack,
        "t" => Notice::Tick,
        "z" => Notice::Done,
        "r" => Notice::Refused(body.to_owned()),
        "e" => {
            let (code, message) = body.split_once(' ').unwrap_or((body, ""));
            Notice::Error {
                code: code.to_owned(),
                message: message.to_owned(),
            }
        }
        "d" => {
            let (id, text) = body.split_once(' ')?;
            Notice::Delta {
                id: id.parse().ok()?,
                text: text.to_owned(),
            }
        }
        _ => return None,
    };
    Some((request, notice))
}

fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_delta_is_split_under_the_limit_with_growing_ids() {
        let text = "é".repeat(10_000) + "end";
        let payloads = encode_delta(7, 100 + text.len() as u64, &text);
        assert!(payloads.len() >= 3);
        let mut joined = String::new();
        let mut last = 100;
        for payload in &payloads {
            assert!(payload.len() <= MAX_PAYLOAD);
            let Some((7, Notice::Delta { id, text })) = decode(payload) else {
                panic!("not a delta: {payload}");
            };
            assert_eq!(id, last + text.len() as u64);
            last = id;
            joined.push_str(&text);
        }
        assert_eq!(joined, text);
        assert_eq!(last, 100 + text.len() as u64);
    }

    #[test]
    fn controls_and_requests_round_trip_and_bad_ones_are_refused() {
        for notice in [
            Notice::Ack,
            Notice::Tick,
            Notice::Done,
            Notice::Refused("bad id".into()),
            Notice::Error {
                code: "upstream_error".into(),
                message: "it broke down".into(),
            },
        ] {
            assert_eq!(decode(&encode_control(42, &notice)), Some((42, notice)));
        }
        assert_eq!(decode("zz q"), None);
        let request = FollowRequest {
            user_id: Uuid::new_v4(),
            generation_id: Uuid::new_v4(),
            after: 12,
            request: 0xabc,
            reply_to: "omnichat_follow_00ff".into(),
        };
        assert_eq!(
            FollowRequest::decode(&request.encode()),
            Some(request.clone())
        );
        let elsewhere = FollowRequest {
            reply_to: "omnichat_stop".into(),
            ..request
        };
        assert_eq!(FollowRequest::decode(&elsewhere.encode()), None);
        assert_eq!(decode_leave(&encode_leave(0xabc)), Some(0xabc));
        assert_eq!(decode_leave(&request.encode()), None);
    }
}
