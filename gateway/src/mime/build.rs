//! Writing S/MIME MIME structures.
//!
//! These wrappers are assembled by hand rather than with `mail-builder`: the bytes of a signed
//! part must reach the recipient exactly as they were hashed, and a general-purpose builder is
//! free to re-encode or re-fold them. New messages (DSNs, cert-query replies) use `mail-builder`.

use base64::Engine;
use rand::RngCore;

use super::headers::{self, HeaderField};

/// Base64 with CRLF after every 76 characters (RFC 2045 §6.8).
pub fn base64_lines(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    append_base64_lines(data, &mut out);
    out
}

/// [`base64_lines`] written straight into `out` (no intermediate string of the whole body).
pub fn append_base64_lines(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(base64_lines_len(data.len()));
    let mut lines = Base64Lines::new(out);
    lines.write(data);
    lines.finish();
}

/// 57 input bytes are exactly one 76-character line.
const BASE64_LINE_INPUT: usize = 57;

/// The length of [`base64_lines`] of `n` bytes.
pub fn base64_lines_len(n: usize) -> usize {
    n.div_ceil(BASE64_LINE_INPUT) * 78
}

/// [`base64_lines`] of data that arrives in pieces (so the whole input never has to exist
/// at once): whole lines are written as soon as they are complete. Call
/// [`Base64Lines::finish`] for the last, shorter line.
pub struct Base64Lines<'a> {
    out: &'a mut Vec<u8>,
    pending: [u8; BASE64_LINE_INPUT],
    pending_len: usize,
}

impl<'a> Base64Lines<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Base64Lines {
            out,
            pending: [0; BASE64_LINE_INPUT],
            pending_len: 0,
        }
    }

    pub fn write(&mut self, mut data: &[u8]) {
        if self.pending_len > 0 {
            // Top up the pending line from the front of `data` (zip stops at the line's end
            // before taking a byte it has no room for).
            let mut bytes = data.iter();
            let free = self.pending.iter_mut().skip(self.pending_len);
            for (slot, &b) in free.zip(&mut bytes) {
                *slot = b;
                self.pending_len += 1;
            }
            data = bytes.as_slice();
            if self.pending_len < BASE64_LINE_INPUT {
                return;
            }
            let line = self.pending;
            self.line(&line);
            self.pending_len = 0;
        }
        let mut lines = data.chunks_exact(BASE64_LINE_INPUT);
        for line in &mut lines {
            self.line(line);
        }
        // Shorter than a line: it fits.
        let rest = lines.remainder();
        for (slot, &b) in self.pending.iter_mut().zip(rest) {
            *slot = b;
        }
        self.pending_len = rest.len();
    }

    pub fn finish(mut self) {
        let pending = self.pending;
        if let Some(line @ [_, ..]) = pending.get(..self.pending_len) {
            self.line(line);
        }
    }

    fn line(&mut self, chunk: &[u8]) {
        let engine = &base64::engine::general_purpose::STANDARD;
        let start = self.out.len();
        self.out.resize(start + 76, 0);
        let written = self
            .out
            .get_mut(start..)
            .and_then(|line| engine.encode_slice(chunk, line).ok())
            .unwrap_or(0);
        self.out.truncate(start + written);
        self.out.extend_from_slice(b"\r\n");
    }
}

/// A fresh MIME boundary that cannot occur in base64 or quoted-printable text.
pub fn boundary() -> String {
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("----=_smime_{}", hex::encode(bytes))
}

/// An `application/pkcs7-mime` entity (headers and base64 body).
pub fn pkcs7_mime(smime_type: &str, der: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(der.len() * 4 / 3 + 400);
    pkcs7_mime_header(smime_type, &mut out);
    append_base64_lines(der, &mut out);
    out
}

/// The header fields of [`pkcs7_mime`] and the empty line; the base64 body follows.
pub fn pkcs7_mime_header(smime_type: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(
        format!(
            "Content-Type: application/pkcs7-mime; smime-type={smime_type};\r\n\tname=\"smime.p7m\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n"
        )
        .as_bytes(),
    );
}

/// A `multipart/signed` entity: the signed entity byte-exact, then the detached signature.
pub fn multipart_signed(signed_entity: &[u8], signature_der: &[u8], micalg: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(multipart_signed_len(signed_entity, signature_der));
    write_multipart_signed(signed_entity, signature_der, micalg, &mut out);
    out
}

/// About the length of [`multipart_signed`] (for reserving the output once).
pub fn multipart_signed_len(signed_entity: &[u8], signature_der: &[u8]) -> usize {
    signed_entity.len() + base64_lines_len(signature_der.len()) + 600
}

/// [`multipart_signed`], appended to `out`.
pub fn write_multipart_signed(
    signed_entity: &[u8],
    signature_der: &[u8],
    micalg: &str,
    out: &mut Vec<u8>,
) {
    let boundary = boundary();
    out.extend_from_slice(
        format!(
            "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n\
             \tmicalg={micalg}; boundary=\"{boundary}\"\r\n\r\n\
             This is an S/MIME signed message\r\n\r\n--{boundary}\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(signed_entity);
    // The CRLF before a delimiter belongs to the delimiter, not to the signed part.
    out.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\n\
             Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n"
        )
        .as_bytes(),
    );
    append_base64_lines(signature_der, out);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
}

/// A whole message: the outer (non-content) header fields, `MIME-Version`, then `entity`
/// (which brings its own Content-* fields).
pub fn assemble(outer: &[HeaderField<'_>], extra: &[String], entity: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entity.len() + 2048);
    assemble_head(outer, extra, &mut out);
    out.extend_from_slice(entity);
    out
}

/// [`assemble`] up to the entity, which the caller appends to `out` (written in place
/// rather than built apart and copied).
pub fn assemble_head(outer: &[HeaderField<'_>], extra: &[String], out: &mut Vec<u8>) {
    headers::write_fields(
        outer
            .iter()
            .filter(|h| !h.is_content() && !h.is("MIME-Version")),
        out,
    );
    for line in extra {
        headers::write_raw_line(line.as_bytes(), out);
    }
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
}

/// The content part of a message as a MIME entity: its Content-* fields and body. A message
/// without Content-Type gets the RFC 2045 default made explicit.
pub fn content_entity(message: &[u8]) -> Vec<u8> {
    let (fields, body) = content_entity_parts(message);
    [fields.as_slice(), &body[..]].concat()
}

/// [`content_entity`] as its two parts: the Content-* fields with the empty line, and the
/// body in canonical form (borrowed from `message` when it already is).
pub fn content_entity_parts(message: &[u8]) -> (Vec<u8>, std::borrow::Cow<'_, [u8]>) {
    let split = headers::split(message);
    let mut out = Vec::new();
    let content: Vec<&HeaderField<'_>> = split.headers.iter().filter(|h| h.is_content()).collect();
    if !content.iter().any(|h| h.is("Content-Type")) {
        let charset = if split.body.is_ascii() {
            "us-ascii"
        } else {
            "utf-8"
        };
        out.extend_from_slice(
            format!("Content-Type: text/plain; charset={charset}\r\n").as_bytes(),
        );
    }
    headers::write_fields(content, &mut out);
    out.extend_from_slice(b"\r\n");
    (out, crate::smime::canonical::to_crlf(split.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_lines_in_pieces_equal_base64_lines_of_the_whole() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 256) as u8).collect();
        let whole = base64_lines(&data);
        assert!(whole.len() <= base64_lines_len(data.len()));
        for cuts in [&[1usize, 2, 3][..], &[56, 57, 58], &[0, 500, 999], &[114]] {
            let mut out = Vec::new();
            let mut lines = Base64Lines::new(&mut out);
            let mut start = 0;
            for &cut in cuts.iter().chain([data.len()].iter()) {
                lines.write(&data[start..cut]);
                start = cut;
            }
            lines.finish();
            assert_eq!(out, whole, "cut at {cuts:?}");
        }
    }

    #[test]
    fn base64_lines_are_76_characters() {
        let out = base64_lines(&[7u8; 200]);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert!(lines[..lines.len() - 1].iter().all(|l| l.len() == 76));
    }

    #[test]
    fn content_entity_moves_content_headers_and_defaults_type() {
        let e = content_entity(b"From: a\r\nSubject: s\r\n\r\nhi\n");
        assert_eq!(
            e,
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\nhi\r\n"
        );
    }
}
