//! Newline-delimited JSON framing: one frame per line, blank lines skipped, a CR before the LF
//! dropped, a last line without its newline still counted. Lines are cut on raw bytes (`\n`
//! never occurs inside a UTF-8 sequence, so a character split across chunks is whole again by
//! the time its line is checked), and a line's length is bounded like an SSE line's.

use super::{pipeline::Framer, sse_framer::MAX_LINE_BYTES};

/// Collects bytes and yields complete lines, borrowed from the framer until the next call.
#[derive(Default)]
pub(crate) struct NdjsonFramer {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already read.
    start: usize,
    /// Bytes after `start` known to hold no newline.
    searched: usize,
}

impl Framer for NdjsonFramer {
    fn feed(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// A line as `("", line)`.
    fn next_frame(&mut self, at_end: bool) -> Option<Result<(&str, &str), &'static str>> {
        let line = loop {
            let rest = &self.buffer[self.start..];
            let (line, consumed) = match memchr::memchr(b'\n', &rest[self.searched..]) {
                Some(pos) => {
                    let pos = pos + self.searched;
                    (self.start..self.start + pos, pos + 1)
                }
                None if at_end && !rest.is_empty() => (self.start..self.buffer.len(), rest.len()),
                None => {
                    if rest.len() > MAX_LINE_BYTES {
                        return Some(Err("a line is longer than 4 MiB"));
                    }
                    self.searched = rest.len();
                    if self.start > 0 {
                        self.buffer.drain(..self.start);
                        self.start = 0;
                    }
                    return None;
                }
            };
            self.start += consumed;
            self.searched = 0;
            let raw = &self.buffer[line.clone()];
            if !raw.iter().all(u8::is_ascii_whitespace) {
                break line;
            }
        };
        let raw = &self.buffer[line];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        Some(match std::str::from_utf8(raw) {
            Ok(line) => Ok(("", line)),
            Err(_) => Err("a line is not valid UTF-8"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_out_whole_wherever_the_bytes_are_cut() {
        let body = "{\"a\":1}\r\n\n  \n{\"b\":\"é\"}\n{\"c\":3}";
        for cut in 0..=body.len() {
            let mut framer = NdjsonFramer::default();
            let mut lines = Vec::new();
            for (part, at_end) in [
                (&body.as_bytes()[..cut], false),
                (&body.as_bytes()[cut..], false),
                (&[][..], true),
            ] {
                framer.feed(part);
                while let Some(line) = framer.next_frame(at_end) {
                    lines.push(line.map(|(_, line)| line.to_owned()));
                }
            }
            let expected =
                ["{\"a\":1}", "{\"b\":\"é\"}", "{\"c\":3}"].map(|line| Ok(line.to_owned()));
            assert_eq!(lines, expected, "cut at {cut}");
        }
    }

    #[test]
    fn invalid_utf8_and_endless_lines_are_errors() {
        let mut framer = NdjsonFramer::default();
        framer.feed(b"{}\n\xFF\n");
        assert_eq!(framer.next_frame(false), Some(Ok(("", "{}"))));
        assert_eq!(
            framer.next_frame(false),
            Some(Err("a line is not valid UTF-8"))
        );
        let mut framer = NdjsonFramer::default();
        framer.feed(&vec![b'a'; MAX_LINE_BYTES + 1]);
        assert_eq!(
            framer.next_frame(false),
            Some(Err("a line is longer than 4 MiB"))
        );
    }
}
