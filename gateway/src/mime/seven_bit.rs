//! Convert an entity to 7-bit transfer encodings before signing (RFC 8551 §3.1.2), so that a
//! relay that downgrades 8-bit mail cannot alter the signed bytes.

use std::borrow::Cow;

use mail_parser::{MessageParser, MimeHeaders};

use super::build::base64_lines;
use super::headers::{self, HeaderField};
use crate::smime::error::{Result, SmimeError};

/// Deepest multipart nesting we rewrite; deeper structures are refused.
const MAX_DEPTH: usize = 16;

/// Whether bytes may travel as they are over a 7-bit channel: ASCII without NUL or bare CR,
/// lines of at most 998 characters.
pub fn is_seven_bit_safe(bytes: &[u8]) -> bool {
    let mut line = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' => line = 0,
            b'\r' if bytes.get(i + 1) != Some(&b'\n') => return false,
            b'\r' => {}
            0 | 0x80..=0xff => return false,
            _ => {
                line += 1;
                if line > 998 {
                    return false;
                }
            }
        }
    }
    true
}

/// The entity with every 8-bit or binary leaf re-encoded: text as quoted-printable, everything
/// else as base64. Borrowed when nothing needs changing.
pub fn to_seven_bit(entity: &[u8]) -> Result<Cow<'_, [u8]>> {
    convert(entity, 0)
}

fn convert(entity: &[u8], depth: usize) -> Result<Cow<'_, [u8]>> {
    if is_seven_bit_safe(entity) {
        return Ok(Cow::Borrowed(entity));
    }
    if depth > MAX_DEPTH {
        return Err(SmimeError::NestingTooDeep(MAX_DEPTH));
    }
    let parsed = MessageParser::default()
        .parse(entity)
        .ok_or_else(|| SmimeError::Mime("cannot parse the entity to convert it to 7 bit".into()))?;
    let root = parsed.root_part();
    let split = headers::split(entity);
    let ct = root.content_type();
    let is_multipart = ct.is_some_and(|c| c.ctype().eq_ignore_ascii_case("multipart"));
    let boundary = ct.and_then(|c| c.attribute("boundary")).map(str::to_string);

    let mut out = Vec::with_capacity(entity.len() * 4 / 3 + 256);
    if let (true, Some(boundary), Some(ids)) = (is_multipart, boundary, root.sub_parts()) {
        headers::write_fields(&split.headers, &mut out);
        out.extend_from_slice(b"\r\n");
        for id in ids {
            let part = parsed
                .part(*id)
                .ok_or_else(|| SmimeError::Mime("multipart part missing".into()))?;
            let raw = entity
                .get(part.raw_header_offset() as usize..part.raw_end_offset() as usize)
                .ok_or_else(|| SmimeError::Mime("multipart part offsets out of range".into()))?;
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            out.extend_from_slice(&convert(raw, depth + 1)?);
            if !out.ends_with(b"\r\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        return Ok(Cow::Owned(out));
    }

    // A leaf: decode whatever transfer encoding it has, then re-encode for 7 bit.
    let is_text = ct.is_none_or(|c| c.ctype().eq_ignore_ascii_case("text"));
    let decoded: Cow<'_, [u8]> = match root.content_transfer_encoding() {
        Some(cte)
            if cte.eq_ignore_ascii_case("base64")
                || cte.eq_ignore_ascii_case("quoted-printable") =>
        {
            Cow::Owned(root.contents().to_vec())
        }
        _ => Cow::Borrowed(split.body),
    };
    let kept: Vec<&HeaderField<'_>> = split
        .headers
        .iter()
        .filter(|h| !h.is("Content-Transfer-Encoding"))
        .collect();
    headers::write_fields(kept, &mut out);
    if is_text {
        out.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable\r\n\r\n");
        out.extend_from_slice(&quoted_printable(&decoded));
    } else {
        out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
        out.extend_from_slice(&base64_lines(&decoded));
    }
    Ok(Cow::Owned(out))
}

/// RFC 2045 §6.7 quoted-printable; line breaks (LF or CRLF) stay hard CRLF line breaks.
pub fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 8);
    let mut lines = data.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut column = 0;
        for (i, &b) in line.iter().enumerate() {
            let at_end = i + 1 == line.len();
            let literal = (b == b' ' || b == b'\t') && !at_end
                || (33..=126).contains(&b) && b != b'=' && !(column == 0 && b == b'.');
            let width = if literal { 1 } else { 3 };
            if column + width > 75 {
                out.extend_from_slice(b"=\r\n");
                column = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'=', hex_digit(b >> 4), hex_digit(b)]);
            }
            column += width;
        }
        if !last {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// The uppercase hex digit of the low four bits of `n`.
fn hex_digit(n: u8) -> u8 {
    match n & 15 {
        d @ 0..=9 => b'0' + d,
        d => b'A' - 10 + d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bit_text_becomes_quoted_printable() {
        let entity = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n";
        let out = to_seven_bit(entity.as_bytes()).unwrap();
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.contains("Content-Transfer-Encoding: quoted-printable"));
        assert!(text.contains("Gr=C3=BC=C3=9Fe"));
        assert!(is_seven_bit_safe(text.as_bytes()));
        let parsed = MessageParser::default().parse(text.as_bytes()).unwrap();
        assert_eq!(parsed.body_text(0).unwrap(), "Grüße\r\n");
    }

    #[test]
    fn seven_bit_input_is_untouched() {
        let entity = b"Content-Type: text/plain\r\n\r\nhello\r\n";
        assert!(matches!(to_seven_bit(entity).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn binary_attachment_in_multipart_becomes_base64() {
        let mut entity = b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
        entity.extend_from_slice(&[0, 1, 2, 0xff, 0xfe]);
        entity.extend_from_slice(b"\r\n--b--\r\n");
        let out = to_seven_bit(&entity).unwrap();
        assert!(is_seven_bit_safe(&out));
        let parsed = MessageParser::default().parse(&out[..]).unwrap();
        assert_eq!(
            parsed.attachment(0).unwrap().contents(),
            &[0, 1, 2, 0xff, 0xfe]
        );
    }

    #[test]
    fn quoted_printable_soft_breaks_long_lines() {
        let long = vec![b'a'; 200];
        let qp = quoted_printable(&long);
        assert!(qp.split(|b| *b == b'\n').all(|l| l.len() <= 77));
    }
}
