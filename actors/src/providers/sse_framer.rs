//! Server-Sent Events framing, as the HTML standard defines it: lines end in LF, CRLF or CR;
//! `event:` names an event, `data:` lines join with newlines, `:` starts a comment, a blank line
//! dispatches. Our own rather than a crate's: it runs once per upstream token, so it copies each
//! byte once, and it bounds a line's length against an upstream that never ends one.

/// Longest line accepted.
pub(crate) const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// Why a body cannot be read as SSE.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FramingError {
    NotUtf8,
    LineTooLong,
}

impl FramingError {
    pub(crate) fn message(&self) -> String {
        match self {
            FramingError::NotUtf8 => "the stream is not valid UTF-8".into(),
            FramingError::LineTooLong => "a line is longer than 4 MiB".into(),
        }
    }
}

/// Collects bytes and yields complete events: `(event name, data)`.
#[derive(Default)]
pub(crate) struct SseFramer {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already read.
    start: usize,
    event: String,
    data: String,
    /// Whether any `data:` line came since the last dispatch (an empty one counts).
    has_data: bool,
    /// Whether the start of the stream was checked for a byte-order mark.
    bom_checked: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseFramer {
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete event, if the bytes fed so far hold one. `at_end`: no more bytes will
    /// come, so a CR at the very end ends its line (a trailing partial event is dropped, as the
    /// standard says).
    pub(crate) fn next_event(
        &mut self,
        at_end: bool,
    ) -> Option<Result<(String, String), FramingError>> {
        if !self.bom_checked {
            // A byte-order mark at the very start is not part of the stream; its bytes may
            // arrive in more than one chunk.
            let could_be_bom = BOM.starts_with(&self.buffer[self.start..]);
            if could_be_bom && self.buffer.len() < BOM.len() && !at_end {
                return None;
            }
            if self.buffer.starts_with(BOM) {
                self.start = BOM.len();
            }
            self.bom_checked = true;
        }
        loop {
            let rest = &self.buffer[self.start..];
            let Some(pos) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') else {
                if rest.len() > MAX_LINE_BYTES {
                    return Some(Err(FramingError::LineTooLong));
                }
                self.compact();
                return None;
            };
            let consumed = match (rest[pos], rest.get(pos + 1)) {
                (b'\r', Some(b'\n')) => pos + 2,
                // A CR last in the buffer may be the first half of a CRLF still on its way.
                (b'\r', None) if !at_end => {
                    self.compact();
                    return None;
                }
                _ => pos + 1,
            };
            let Ok(line) = std::str::from_utf8(&rest[..pos]) else {
                return Some(Err(FramingError::NotUtf8));
            };
            if line.is_empty() {
                self.start += consumed;
                if let Some(event) = self.dispatch() {
                    return Some(Ok(event));
                }
                continue;
            }
            if !line.starts_with(':') {
                let (field, value) = match line.split_once(':') {
                    Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                    None => (line, ""),
                };
                match field {
                    "event" => value.clone_into(&mut self.event),
                    "data" => {
                        if self.has_data {
                            self.data.push('\n');
                        }
                        self.data.push_str(value);
                        self.has_data = true;
                    }
                    // `id` and `retry` matter to reconnecting browsers, not to us.
                    _ => {}
                }
            }
            self.start += consumed;
        }
    }

    /// A blank line: the event gathered so far, if it had data (else it is dropped).
    fn dispatch(&mut self) -> Option<(String, String)> {
        let event = std::mem::take(&mut self.event);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        let name = if event.is_empty() {
            "message".to_owned()
        } else {
            event
        };
        Some((name, std::mem::take(&mut self.data)))
    }

    /// Drops what has been read, keeping only a partial line.
    fn compact(&mut self) {
        self.buffer.drain(..self.start);
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8], cut: usize) -> Vec<Result<(String, String), FramingError>> {
        let mut framer = SseFramer::default();
        let mut out = Vec::new();
        for (part, at_end) in [
            (&bytes[..cut], false),
            (&bytes[cut..], false),
            (&[][..], true),
        ] {
            framer.feed(part);
            while let Some(event) = framer.next_event(at_end) {
                let failed = event.is_err();
                out.push(event);
                if failed {
                    // A framing error ends the stream (the pipeline reads no further).
                    return out;
                }
            }
        }
        out
    }

    fn ok(name: &str, data: &str) -> Result<(String, String), FramingError> {
        Ok((name.to_owned(), data.to_owned()))
    }

    #[test]
    fn events_come_out_whole_wherever_the_bytes_are_cut() {
        let body =
            "\u{FEFF}: comment\r\nevent: delta\r\ndata: {\"a\":1}\r\n\r\ndata:x\ndata: y\n\n\
                    event: ping\n\nid: 7\rdata: é\r\rretry: 5\ndata: tail-without-blank-line\n";
        for cut in 0..=body.len() {
            assert_eq!(
                all(body.as_bytes(), cut),
                [
                    ok("delta", "{\"a\":1}"),
                    ok("message", "x\ny"),
                    ok("message", "é")
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn invalid_utf8_and_endless_lines_are_errors() {
        assert_eq!(
            all(b"data: ok\n\ndata: \xFF\n\n", 5).last(),
            Some(&Err(FramingError::NotUtf8))
        );
        let mut framer = SseFramer::default();
        framer.feed(&vec![b'a'; MAX_LINE_BYTES + 1]);
        assert_eq!(
            framer.next_event(false),
            Some(Err(FramingError::LineTooLong))
        );
    }
}
