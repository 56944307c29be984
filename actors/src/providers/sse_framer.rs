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
    pub(crate) fn message(&self) -> &'static str {
        match self {
            FramingError::NotUtf8 => "the stream is not valid UTF-8",
            FramingError::LineTooLong => "a line is longer than 4 MiB",
        }
    }
}

/// Collects bytes and yields complete events: `(event name, data)`, borrowed from the framer
/// until the next call.
#[derive(Default)]
pub(crate) struct SseFramer {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already read.
    start: usize,
    /// Bytes after `start` known to hold no line end (not searched again when more arrive).
    searched: usize,
    event: String,
    data: String,
    /// Whether any `data:` line came since the last dispatch (an empty one counts).
    has_data: bool,
    /// The last call handed out `event` and `data`: they are cleared on the next one.
    dispatched: bool,
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
    ) -> Option<Result<(&str, &str), FramingError>> {
        if std::mem::take(&mut self.dispatched) {
            self.event.clear();
            self.data.clear();
        }
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
            let Some(pos) = memchr::memchr2(b'\n', b'\r', &rest[self.searched..])
                .map(|pos| pos + self.searched)
            else {
                if rest.len() > MAX_LINE_BYTES {
                    return Some(Err(FramingError::LineTooLong));
                }
                self.searched = rest.len();
                self.compact();
                return None;
            };
            let consumed = match (rest[pos], rest.get(pos + 1)) {
                (b'\r', Some(b'\n')) => pos + 2,
                // A CR last in the buffer may be the first half of a CRLF still on its way.
                (b'\r', None) if !at_end => {
                    self.searched = pos;
                    self.compact();
                    return None;
                }
                _ => pos + 1,
            };
            let Ok(line) = std::str::from_utf8(&rest[..pos]) else {
                return Some(Err(FramingError::NotUtf8));
            };
            self.searched = 0;
            if line.is_empty() {
                self.start += consumed;
                // A blank line dispatches the event gathered so far, if it had data (else it is
                // dropped).
                if std::mem::take(&mut self.has_data) {
                    self.dispatched = true;
                    let name = if self.event.is_empty() {
                        "message"
                    } else {
                        self.event.as_str()
                    };
                    return Some(Ok((name, self.data.as_str())));
                }
                self.event.clear();
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

    /// Drops what has been read, keeping only a partial line.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
    }
}

impl super::pipeline::Framer for SseFramer {
    fn feed(&mut self, chunk: &[u8]) {
        SseFramer::feed(self, chunk);
    }

    fn next_frame(&mut self, at_end: bool) -> Option<Result<(&str, &str), &'static str>> {
        Some(self.next_event(at_end)?.map_err(|err| err.message()))
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
                let event = event.map(|(name, data)| (name.to_owned(), data.to_owned()));
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
        // Fed in small chunks, a long line is still caught (and not searched again and again).
        let mut framer = SseFramer::default();
        for _ in 0..MAX_LINE_BYTES / 4096 {
            framer.feed(&[b'a'; 4096]);
            assert_eq!(framer.next_event(false), None);
        }
        framer.feed(b"a");
        assert_eq!(
            framer.next_event(false),
            Some(Err(FramingError::LineTooLong))
        );
    }
}
