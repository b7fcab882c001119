//! Where the header block of a message (or an HTTP response) ends.

/// The first empty line of a header block: the fields are `bytes[..fields]`, the body starts
/// at `bytes[body..]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderEnd {
    /// Length of the field lines, the line end of the last field included.
    pub fields: usize,
    /// Where the body starts, after the empty line.
    pub body: usize,
}

/// The first empty line, CRLF or bare LF (mail stored by OpenSSL and others has bare LF;
/// RFC 9112 §2.2 lets an HTTP recipient accept it too). `None` when there is none.
pub fn header_end(bytes: &[u8]) -> Option<HeaderEnd> {
    let mut line_start = 0;
    while line_start < bytes.len() {
        let rest = bytes.get(line_start..).unwrap_or_default();
        if rest.starts_with(b"\r\n") {
            return Some(HeaderEnd {
                fields: line_start,
                body: line_start + 2,
            });
        }
        if rest.starts_with(b"\n") {
            return Some(HeaderEnd {
                fields: line_start,
                body: line_start + 1,
            });
        }
        line_start += rest.iter().position(|b| *b == b'\n')? + 1;
    }
    None
}

/// The header block without the body: up to and including the empty line, or all of
/// `message` when it has no body.
pub fn header_block(message: &[u8]) -> &[u8] {
    let end = header_end(message).map_or(message.len(), |end| end.body);
    message.get(..end).unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_and_bare_lf() {
        let crlf = b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore";
        assert_eq!(
            header_end(crlf),
            Some(HeaderEnd {
                fields: 12,
                body: 14
            })
        );
        assert_eq!(header_block(crlf), b"A: 1\r\nB: 2\r\n\r\n");
        let lf = b"A: 1\nB: 2\n\nbody";
        assert_eq!(
            header_end(lf),
            Some(HeaderEnd {
                fields: 10,
                body: 11
            })
        );
        assert_eq!(header_block(lf), b"A: 1\nB: 2\n\n");
    }

    #[test]
    fn empty_header_block_and_no_body() {
        assert_eq!(
            header_end(b"\r\nbody"),
            Some(HeaderEnd { fields: 0, body: 2 })
        );
        assert_eq!(header_end(b"A: 1\r\nB: 2\r\n"), None);
        assert_eq!(header_end(b"A: 1"), None);
        assert_eq!(header_end(b""), None);
        assert_eq!(header_block(b"A: 1\r\n"), b"A: 1\r\n");
    }

    #[test]
    fn a_cr_inside_a_line_is_not_an_empty_line() {
        // "\r\r\n" ends a line with a stray CR in it; the next line is the empty one.
        assert_eq!(
            header_end(b"A: 1\r\r\n\r\nbody"),
            Some(HeaderEnd { fields: 7, body: 9 })
        );
    }
}
