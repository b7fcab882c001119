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
    let engine = &base64::engine::general_purpose::STANDARD;
    out.reserve(data.len().div_ceil(57) * 78);
    // 57 input bytes are exactly one 76-character line.
    for chunk in data.chunks(57) {
        let start = out.len();
        out.resize(start + 76, 0);
        let written = engine.encode_slice(chunk, &mut out[start..]).unwrap_or(0);
        out.truncate(start + written);
        out.extend_from_slice(b"\r\n");
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
    out.extend_from_slice(
        format!(
            "Content-Type: application/pkcs7-mime; smime-type={smime_type};\r\n\tname=\"smime.p7m\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n"
        )
        .as_bytes(),
    );
    append_base64_lines(der, &mut out);
    out
}

/// A `multipart/signed` entity: the signed entity byte-exact, then the detached signature.
pub fn multipart_signed(signed_entity: &[u8], signature_der: &[u8], micalg: &str) -> Vec<u8> {
    let boundary = boundary();
    let mut out = Vec::with_capacity(signed_entity.len() + signature_der.len() * 4 / 3 + 600);
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
    append_base64_lines(signature_der, &mut out);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// A whole message: the outer (non-content) header fields, `MIME-Version`, then `entity`
/// (which brings its own Content-* fields).
pub fn assemble(outer: &[HeaderField<'_>], extra: &[String], entity: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entity.len() + 2048);
    headers::write_fields(
        outer
            .iter()
            .filter(|h| !h.is_content() && !h.is("MIME-Version")),
        &mut out,
    );
    for line in extra {
        headers::write_raw_line(line.as_bytes(), &mut out);
    }
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    out.extend_from_slice(entity);
    out
}

/// The content part of a message as a MIME entity: its Content-* fields and body. A message
/// without Content-Type gets the RFC 2045 default made explicit.
pub fn content_entity(message: &[u8]) -> Vec<u8> {
    let split = headers::split(message);
    let mut out = Vec::with_capacity(message.len());
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
    out.extend_from_slice(&crate::smime::canonical::to_crlf(split.body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
