//! DATA content: dot-unstuffing, end-of-data detection and the size limit, as a push parser
//! over whatever the socket delivers, so nothing but the (bounded) message is ever buffered.
//!
//! Only `CRLF . CRLF` ends the data. Bare LF is message content, never a line end: treating
//! `LF . CRLF` or `CRLF . LF` as the end is what makes "SMTP smuggling" possible.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    LineStart,
    /// Inside a line.
    Middle,
    /// Inside a line, after a CR.
    Cr,
    /// A line that started with a dot (the dot is not emitted).
    Dot,
    /// A line that is `.` then CR so far.
    DotCr,
}

pub(crate) struct DataReader {
    state: State,
    max: usize,
    size: usize,
    overflow: bool,
}

impl DataReader {
    pub(crate) fn new(max: usize) -> Self {
        DataReader {
            state: State::LineStart,
            max,
            size: 0,
            overflow: false,
        }
    }

    /// Whether the message exceeded the limit (its content has then been dropped).
    pub(crate) fn overflowed(&self) -> bool {
        self.overflow
    }

    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len());
        if self.overflow {
            return;
        }
        if self.size > self.max {
            self.overflow = true;
            // Give the memory back at once: the rest is only scanned for the final dot.
            *out = Vec::new();
            return;
        }
        out.extend_from_slice(bytes);
    }

    /// Consumes `input`, appending unstuffed content to `out`. Returns how many bytes were
    /// consumed and whether the terminating `.` line was seen (bytes after it are left for
    /// the command loop: the client may pipeline the next command).
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        let mut rest = input;
        while let Some((&b, after)) = rest.split_first() {
            match self.state {
                State::Middle => {
                    // Fast path: copy up to the next CR (found with SIMD) in one go.
                    let cr = memchr::memchr(b'\r', rest);
                    match cr.and_then(|p| rest.split_at_checked(p)) {
                        Some((text, [_cr, after_cr @ ..])) => {
                            self.emit(out, text);
                            self.state = State::Cr;
                            rest = after_cr;
                        }
                        _ => {
                            self.emit(out, rest);
                            rest = &[];
                        }
                    }
                }
                State::LineStart => {
                    rest = after;
                    match b {
                        b'.' => self.state = State::Dot,
                        b'\r' => self.state = State::Cr,
                        _ => {
                            self.emit(out, &[b]);
                            self.state = State::Middle;
                        }
                    }
                }
                State::Cr => {
                    rest = after;
                    match b {
                        b'\n' => {
                            self.emit(out, b"\r\n");
                            self.state = State::LineStart;
                        }
                        b'\r' => self.emit(out, b"\r"),
                        _ => {
                            self.emit(out, &[b'\r', b]);
                            self.state = State::Middle;
                        }
                    }
                }
                State::Dot => {
                    rest = after;
                    // The leading dot is dropped (RFC 5321 4.5.2); the rest is ordinary.
                    match b {
                        b'\r' => self.state = State::DotCr,
                        _ => {
                            self.emit(out, &[b]);
                            self.state = State::Middle;
                        }
                    }
                }
                State::DotCr => {
                    rest = after;
                    match b {
                        b'\n' => {
                            self.state = State::LineStart;
                            return (input.len() - rest.len(), true);
                        }
                        b'\r' => {
                            self.emit(out, b"\r");
                            self.state = State::Cr;
                        }
                        _ => {
                            self.emit(out, &[b'\r', b]);
                            self.state = State::Middle;
                        }
                    }
                }
            }
        }
        (input.len() - rest.len(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], max: usize) -> (Vec<u8>, bool, bool, Vec<u8>) {
        let mut r = DataReader::new(max);
        let mut out = Vec::new();
        let mut rest = Vec::new();
        let mut done = false;
        for c in chunks {
            if done {
                rest.extend_from_slice(c);
                continue;
            }
            let (n, d) = r.feed(c, &mut out);
            if d {
                done = true;
                rest.extend_from_slice(&c[n..]);
            } else {
                assert_eq!(n, c.len());
            }
        }
        (out, done, r.overflowed(), rest)
    }

    #[test]
    fn simple_message() {
        let (out, done, over, rest) = run(&[b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n"], 1000);
        assert_eq!(out, b"Subject: x\r\n\r\nbody\r\n");
        assert!(done && !over);
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn empty_message() {
        let (out, done, _, _) = run(&[b".\r\n"], 1000);
        assert!(done);
        assert!(out.is_empty());
    }

    #[test]
    fn dot_unstuffing() {
        let (out, done, _, _) = run(&[b"..leading\r\n...\r\n.x\r\n..\r\n.\r\n"], 1000);
        assert!(done);
        assert_eq!(out, b".leading\r\n..\r\nx\r\n.\r\n");
    }

    #[test]
    fn terminator_split_across_every_boundary() {
        let msg: &[u8] = b"a\r\n.b\r\n\r\n.\r\n";
        for split in 0..=msg.len() {
            let (a, b) = msg.split_at(split);
            let (out, done, _, _) = run(&[a, b], 1000);
            assert!(done, "split at {split}");
            assert_eq!(out, b"a\r\nb\r\n\r\n", "split at {split}");
        }
        // One byte at a time.
        let chunks: Vec<&[u8]> = msg.chunks(1).collect();
        let (out, done, _, _) = run(&chunks, 1000);
        assert!(done);
        assert_eq!(out, b"a\r\nb\r\n\r\n");
    }

    #[test]
    fn bare_lf_never_terminates() {
        // Smuggling attempts: LF.CRLF and CRLF.LF are content, not the end of data.
        let (out, done, _, _) = run(&[b"a\n.\r\nb\r\n.\nc\r\n"], 1000);
        assert!(!done);
        assert_eq!(out, b"a\n.\r\nb\r\n\nc\r\n");
        let (_, done, _, _) = run(&[b"a\n.\r\nb\r\n.\nc\r\n.\r\n"], 1000);
        assert!(done);
    }

    #[test]
    fn bare_cr_is_content() {
        let (out, done, _, _) = run(&[b"a\rb\r\r\n.\r\r\n.\r\n"], 1000);
        assert!(done);
        assert_eq!(out, b"a\rb\r\r\n\r\r\n");
    }

    #[test]
    fn size_limit_drops_content_but_finds_end() {
        let big = vec![b'x'; 5000];
        let (out, done, over, rest) = run(&[&big, b"\r\n", &big, b"\r\n.\r\nNOOP\r\n"], 1000);
        assert!(done && over);
        assert!(out.is_empty());
        assert_eq!(rest, b"NOOP\r\n");
    }

    #[test]
    fn size_limit_is_inclusive() {
        let (out, done, over, _) = run(&[b"12345678\r\n.\r\n"], 10);
        assert!(done && !over);
        assert_eq!(out.len(), 10);
        let (_, done, over, _) = run(&[b"123456789\r\n.\r\n"], 10);
        assert!(done && over);
    }
}
