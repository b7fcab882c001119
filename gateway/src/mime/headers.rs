//! Header fields read byte-exact, so outer headers survive wrapping and unwrapping unchanged.

/// One header field with its folded continuation lines and line end, exactly as it stood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderField<'a> {
    pub name: &'a str,
    pub raw: &'a [u8],
}

impl HeaderField<'_> {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// Content-* fields describe the body and move with it into a signed/encrypted entity.
    pub fn is_content(&self) -> bool {
        self.name.len() > 8
            && self
                .name
                .get(..8)
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case("content-"))
    }

    /// The unfolded value, trimmed.
    pub fn value(&self) -> String {
        let raw = String::from_utf8_lossy(self.raw);
        let value = raw.split_once(':').map(|(_, v)| v).unwrap_or("");
        value
            .replace("\r\n", "")
            .replace('\n', "")
            .trim()
            .to_string()
    }
}

/// A message or entity split into header fields and body.
pub struct Split<'a> {
    pub headers: Vec<HeaderField<'a>>,
    pub body: &'a [u8],
}

impl<'a> Split<'a> {
    pub fn get(&self, name: &str) -> Option<&HeaderField<'a>> {
        self.headers.iter().find(|h| h.is(name))
    }

    /// How many fields are called `name`.
    pub fn count(&self, name: &str) -> usize {
        self.headers.iter().filter(|h| h.is(name)).count()
    }
}

/// Split at the first empty line. An entity whose first line is not a field has no header
/// block; a malformed line after a field is skipped (kept as a nameless field), so malformed
/// input is never lost and the fields after it are still read.
pub fn split(message: &[u8]) -> Split<'_> {
    let mut headers: Vec<HeaderField<'_>> = Vec::new();
    let valid_name =
        |name: &&[u8]| !name.is_empty() && name.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    let mut rest = message;
    loop {
        let (line, after) = split_line(rest);
        if line.is_empty() {
            return Split {
                headers,
                body: rest,
            };
        }
        if line == b"\r\n" || line == b"\n" {
            return Split {
                headers,
                body: after,
            };
        }
        match field_name(line).filter(valid_name) {
            Some(name) => {
                // A field takes its folded continuation lines with it.
                let (raw, after) = split_field(rest);
                if let Ok(name) = std::str::from_utf8(name) {
                    headers.push(HeaderField {
                        name: name.trim_end(),
                        raw,
                    });
                }
                rest = after;
                continue;
            }
            // A stray line among fields is skipped, as OpenSSL and NSS do: it must not end
            // the header block and hide the fields after it. It is kept, nameless, so the
            // message is passed on unchanged.
            None if !headers.is_empty() => headers.push(HeaderField {
                name: "",
                raw: line,
            }),
            // A stray line before the first field, when fields follow before the blank
            // line (OpenSSL reads on there too).
            None if fields_follow(after) => headers.push(HeaderField {
                name: "",
                raw: line,
            }),
            // No field at all: the entity has no header block.
            None => {
                return Split {
                    headers,
                    body: rest,
                }
            }
        }
        rest = after;
    }
}

/// The first line of `rest` (its `\n` included) and what follows it; all of `rest` when it
/// has no line end.
fn split_line(rest: &[u8]) -> (&[u8], &[u8]) {
    split_after(rest, rest.iter().position(|b| *b == b'\n'))
}

/// The field that starts `rest`, with its folded lines (those starting with SP or HT), and
/// what follows it.
fn split_field(rest: &[u8]) -> (&[u8], &[u8]) {
    let end = rest
        .windows(2)
        .position(|w| matches!(w, [b'\n', next] if *next != b' ' && *next != b'\t'));
    split_after(rest, end)
}

/// `rest` split just after `end`, or all of `rest` when there is no such index.
fn split_after(rest: &[u8], end: Option<usize>) -> (&[u8], &[u8]) {
    end.and_then(|i| rest.split_at_checked(i + 1))
        .unwrap_or((rest, &[]))
}

/// What stands before the first `:` of `line`, if it has one.
fn field_name(line: &[u8]) -> Option<&[u8]> {
    line.iter()
        .position(|b| *b == b':')
        .and_then(|colon| line.get(..colon))
}

/// Whether a well-formed field line comes before the first empty line of `rest`.
fn fields_follow(rest: &[u8]) -> bool {
    rest.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
        .any(|l| {
            !l.starts_with(b" ")
                && !l.starts_with(b"\t")
                && field_name(l).is_some_and(|name| {
                    !name.is_empty() && name.iter().all(|b| b.is_ascii_graphic())
                })
        })
}

/// Write fields, making sure each ends with CRLF.
pub fn write_fields<'a>(fields: impl IntoIterator<Item = &'a HeaderField<'a>>, out: &mut Vec<u8>) {
    for f in fields {
        write_raw_line(f.raw, out);
    }
}

/// Append a raw header field, normalising its line ends to CRLF.
pub fn write_raw_line(raw: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&crate::smime::canonical::to_crlf(raw));
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_folded_headers_and_body() {
        let msg = b"From: a@b\r\nSubject: one\r\n two\r\nContent-Type: text/plain\r\n\r\nbody\r\n";
        let s = split(msg);
        assert_eq!(s.headers.len(), 3);
        assert_eq!(s.get("subject").unwrap().value(), "one two");
        assert!(s.headers[2].is_content());
        assert_eq!(s.body, b"body\r\n");
    }

    #[test]
    fn garbage_line_among_fields_is_skipped_without_loss() {
        // OpenSSL and NSS read on past a stray line: so do we, and the fields after it count.
        let s = split(b"From: a\r\nnot a header\r\nContent-Type: multipart/signed\r\n\r\nbody");
        assert_eq!(s.headers.len(), 3);
        assert_eq!(s.headers[1].name, "");
        assert_eq!(s.headers[1].raw, b"not a header\r\n");
        assert!(s.get("content-type").is_some());
        assert_eq!(s.body, b"body");
        let mut out = Vec::new();
        write_fields(&s.headers, &mut out);
        assert_eq!(
            out,
            b"From: a\r\nnot a header\r\nContent-Type: multipart/signed\r\n"
        );
        // No field at all: no header block, everything is body.
        let s = split(b"not a header\r\nmore\r\n");
        assert!(s.headers.is_empty());
        assert_eq!(s.body, b"not a header\r\nmore\r\n");
        let s = split(b"");
        assert!(s.headers.is_empty() && s.body.is_empty());
    }
}
