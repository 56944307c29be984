//! Replaying an answer to a subscriber that already has its first `after` bytes.

use super::events::{StreamEvent, StreamFailure};
use crate::error::{CoreError, CoreResult};

/// The events that bring a subscriber holding `after` bytes of `text` up to date: the rest of
/// the text as one delta, then, if the answer has ended (`ended` is `Some`, with its failure if
/// it failed), the error and `Done`.
pub fn replay(
    text: &str,
    after: u64,
    ended: Option<Option<&StreamFailure>>,
) -> CoreResult<Vec<StreamEvent>> {
    let after = usize::try_from(after).unwrap_or(usize::MAX);
    // A well-formed id that is no position in this answer (past its end, inside a character)
    // clashes with the answer as it is: 409, where a malformed one is 400.
    let rest = text.get(after..).ok_or_else(|| {
        CoreError::Conflict("Last-Event-ID does not match a position in this answer".into())
    })?;
    let mut events = Vec::with_capacity(3);
    if !rest.is_empty() {
        events.push(StreamEvent::Delta {
            id: text.len() as u64,
            text: rest.to_owned(),
        });
    }
    if let Some(failure) = ended {
        if let Some(failure) = failure {
            events.push(StreamEvent::Error {
                failure: Box::new(failure.clone()),
            });
        }
        events.push(StreamEvent::Done);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(events: &[StreamEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                StreamEvent::Delta { id, text } => format!("{id}:{text}"),
                StreamEvent::Error { failure } => format!("error:{}", failure.code),
                StreamEvent::Done => "done".into(),
            })
            .collect()
    }

    #[test]
    fn serves_the_rest_exactly_once() {
        assert_eq!(texts(&replay("héllo", 0, None).unwrap()), ["6:héllo"]);
        assert_eq!(texts(&replay("héllo", 3, None).unwrap()), ["6:llo"]);
        assert!(replay("héllo", 6, None).unwrap().is_empty());
        assert_eq!(texts(&replay("héllo", 6, Some(None)).unwrap()), ["done"]);
    }

    #[test]
    fn a_position_inside_a_character_or_past_the_end_is_refused() {
        assert!(replay("héllo", 2, None).is_err());
        assert!(replay("héllo", 7, None).is_err());
    }

    #[test]
    fn an_ended_failure_is_replayed() {
        let failure = StreamFailure {
            code: "upstream_closed".into(),
            message: "closed".into(),
            before_output: None,
        };
        assert_eq!(
            texts(&replay("ab", 1, Some(Some(&failure))).unwrap()),
            ["2:b", "error:upstream_closed", "done"]
        );
    }
}
