//! Recognise S/MIME entities and take out their CMS bytes.
//!
//! Header fields are parsed with `mail-parser`; bodies are not handed to it, because it would
//! decode every part of a (possibly 50 MB) message when all we need is the raw bytes of the
//! signed part and one base64 body. The multipart/signed boundary scan and the base64 decoding
//! are done here, on the raw bytes, without intermediate copies.

use base64::Engine;
use mail_parser::{MessageParser, MimeHeaders};

use super::headers;
use crate::smime::algorithms::{OID_AUTH_ENVELOPED_DATA, OID_ENVELOPED_DATA, OID_SIGNED_DATA};
use crate::smime::content_info;
use crate::smime::error::{Result, SmimeError};

/// What an entity is, as far as S/MIME goes.
pub enum Classified<'a> {
    /// EnvelopedData or AuthEnvelopedData: the CMS bytes (BER or DER).
    Encrypted(Vec<u8>),
    /// Opaque signed-data: the CMS bytes.
    SignedOpaque(Vec<u8>),
    /// multipart/signed: the first part exactly as transmitted, and the signature's CMS bytes.
    SignedDetached {
        signed: &'a [u8],
        signature: Vec<u8>,
    },
    /// Not S/MIME (plain content).
    Plain,
}

/// The parsed Content-Type of an entity: type, subtype, and the parameters we use.
struct ContentType {
    ctype: String,
    subtype: String,
    boundary: Option<String>,
    name: Option<String>,
}

/// The fields that decide how an entity is read. Two of any of them and readers disagree
/// (one takes the first, another the last): such an entity is not verified at all.
const SINGLE_FIELDS: [&str; 3] = ["Content-Type", "Content-Transfer-Encoding", "MIME-Version"];

/// Refuse an entity with a repeated [`SINGLE_FIELDS`] field.
fn unambiguous(split: &headers::Split<'_>) -> Result<()> {
    for name in SINGLE_FIELDS {
        if split.count(name) > 1 {
            return Err(SmimeError::Mime(format!(
                "ambiguous MIME headers: more than one {name} field"
            )));
        }
    }
    Ok(())
}

/// The Content-Type of an entity, read from its one Content-Type field (found by the same
/// header reader as every other field), parsed by mail-parser.
fn content_type(split: &headers::Split<'_>) -> Option<ContentType> {
    let field = split.get("Content-Type")?;
    let parsed = MessageParser::default().parse_headers(field.raw)?;
    let root = parsed.root_part();
    let ct = root.content_type()?;
    // The file name may sit in Content-Disposition: read that field the same way.
    let name = ct.attribute("name").map(str::to_string).or_else(|| {
        let disposition = split.get("Content-Disposition")?;
        let parsed = MessageParser::default().parse_headers(disposition.raw)?;
        parsed.root_part().attachment_name().map(str::to_string)
    });
    Some(ContentType {
        ctype: ct.ctype().to_ascii_lowercase(),
        subtype: ct.subtype().unwrap_or("").to_ascii_lowercase(),
        boundary: ct.attribute("boundary").map(str::to_string),
        name,
    })
}

fn is_pkcs7_mime(ct: &ContentType) -> bool {
    let pkcs7 =
        ct.ctype == "application" && (ct.subtype == "pkcs7-mime" || ct.subtype == "x-pkcs7-mime");
    // Legacy: an application/octet-stream body named *.p7m.
    let p7m_file = ct.ctype == "application"
        && ct.subtype == "octet-stream"
        && ct
            .name
            .as_deref()
            .is_some_and(|n| n.to_ascii_lowercase().ends_with(".p7m"));
    pkcs7 || p7m_file
}

/// Classify a message or MIME entity.
pub fn classify(entity: &[u8]) -> Result<Classified<'_>> {
    let split = headers::split(entity);
    unambiguous(&split)?;
    let Some(ct) = content_type(&split) else {
        return Ok(Classified::Plain);
    };
    if is_pkcs7_mime(&ct) {
        let der = decode_body(&split)?;
        if der.is_empty() {
            return Err(SmimeError::Mime("empty application/pkcs7-mime body".into()));
        }
        // The CMS content type, not the smime-type parameter, decides: clients get it wrong.
        return match content_info::peek_content_type(&der)? {
            OID_ENVELOPED_DATA | OID_AUTH_ENVELOPED_DATA => Ok(Classified::Encrypted(der)),
            OID_SIGNED_DATA => Ok(Classified::SignedOpaque(der)),
            other => Err(SmimeError::UnsupportedContentType(other.to_string())),
        };
    }
    if ct.ctype == "multipart" && ct.subtype == "signed" {
        let boundary = ct
            .boundary
            .ok_or_else(|| SmimeError::Mime("multipart/signed without a boundary".into()))?;
        let parts = multipart_parts(split.body, &boundary);
        // RFC 1847: exactly the content and the signature. A third part would be shown to
        // the reader without being covered by the signature.
        let [signed, signature_part] = parts.as_slice() else {
            return Err(SmimeError::Mime(format!(
                "multipart/signed must have exactly two parts (content and signature), not {}",
                parts.len()
            )));
        };
        unambiguous(&headers::split(signed))?;
        let signature_split = headers::split(signature_part);
        unambiguous(&signature_split)?;
        let is_signature = content_type(&signature_split).is_some_and(|ct| {
            ct.ctype == "application"
                && (ct.subtype == "pkcs7-signature" || ct.subtype == "x-pkcs7-signature")
        });
        if !is_signature {
            return Err(SmimeError::Mime(
                "the second part of multipart/signed is not an application/pkcs7-signature".into(),
            ));
        }
        let signature = decode_body(&signature_split)?;
        if signature.is_empty() {
            return Err(SmimeError::Mime("empty signature part".into()));
        }
        return Ok(Classified::SignedDetached { signed, signature });
    }
    Ok(Classified::Plain)
}

/// Entities deeper than this are not searched for signed parts.
const MAX_SEARCH_DEPTH: usize = 8;
/// Parts looked at in one search, whatever the nesting: bounded work for any input.
const MAX_SEARCH_PARTS: usize = 1000;

/// Whether `entity` is, or somewhere inside its multipart / `message/rfc822` structure holds,
/// an S/MIME signed entity. Bounded in depth and in the number of parts examined; a search
/// cut short by those bounds answers `true`, so an unexamined part can never be counted as
/// unsigned.
pub fn contains_signed_part(entity: &[u8]) -> bool {
    let mut budget = MAX_SEARCH_PARTS;
    search_signed(entity, 0, &mut budget)
}

fn search_signed(entity: &[u8], depth: usize, budget: &mut usize) -> bool {
    if *budget == 0 || depth > MAX_SEARCH_DEPTH {
        return true;
    }
    *budget -= 1;
    let split = headers::split(entity);
    let Some(ct) = content_type(&split) else {
        return false;
    };
    if ct.ctype == "multipart" && ct.subtype == "signed" {
        return true;
    }
    if is_pkcs7_mime(&ct) {
        // Only signed-data counts; an encrypted attachment is not a signature claim.
        return decode_body(&split)
            .ok()
            .and_then(|der| content_info::peek_content_type(&der).ok())
            .is_some_and(|oid| oid == OID_SIGNED_DATA);
    }
    if ct.ctype == "message" && ct.subtype == "rfc822" {
        return search_signed(split.body, depth + 1, budget);
    }
    if ct.ctype == "multipart" {
        let Some(boundary) = ct.boundary else {
            return false;
        };
        return multipart_parts(split.body, &boundary)
            .into_iter()
            .any(|part| search_signed(part, depth + 1, budget));
    }
    false
}

/// The message inside a `message/rfc822` entity (RFC 8551 §3.1 header protection), when
/// its body is not transfer-encoded (RFC 2046 allows only 7bit, 8bit and binary there).
pub fn wrapped_message(entity: &[u8]) -> Option<&[u8]> {
    let split = headers::split(entity);
    let ct = content_type(&split)?;
    if ct.ctype != "message" || ct.subtype != "rfc822" {
        return None;
    }
    let cte = split
        .get("Content-Transfer-Encoding")
        .map(|h| h.value().to_ascii_lowercase())
        .unwrap_or_default();
    matches!(cte.as_str(), "" | "7bit" | "8bit" | "binary").then_some(split.body)
}

/// The body of an entity, with its transfer encoding undone (base64 or none).
fn decode_body(split: &headers::Split<'_>) -> Result<Vec<u8>> {
    let cte = split
        .get("Content-Transfer-Encoding")
        .map(|h| h.value().to_ascii_lowercase())
        .unwrap_or_default();
    match cte.as_str() {
        "base64" => decode_base64(split.body),
        // OpenSSL base64-decodes every S/MIME body whatever its label, and some writers omit
        // or mislabel it: base64 text (a CMS object's always starts with "M") is read as
        // such, so a missing label cannot make the two readings differ.
        "" | "binary" | "7bit" | "8bit" if looks_like_base64(split.body) => {
            decode_base64(split.body)
        }
        "" | "binary" | "7bit" | "8bit" => Ok(split.body.to_vec()),
        other => Err(SmimeError::Mime(format!(
            "unexpected transfer encoding {other} for a CMS body"
        ))),
    }
}

fn looks_like_base64(body: &[u8]) -> bool {
    let text = body.trim_ascii_start();
    text.first() == Some(&b'M')
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=\r\n \t".contains(b))
}

/// Base64 as mail readers decode it: the unused low bits of the last character need not be
/// zero. OpenSSL and mail clients ignore them; refusing them made one bit flip turn a signature
/// OpenSSL accepts into "malformed" here (found by `DIFF_EXHAUSTIVE=detached`). The bytes
/// decoded are the same either way.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);
const BASE64_NO_PAD: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// Base64 spread over lines (RFC 2045). Fast path: when every line's length is a multiple of
/// four (every common writer) and only the last line may end in padding, lines are joined into
/// chunks of up to [`BASE64_CHUNK`] characters and each chunk is decoded in one call: every
/// 4-character group is then the same as line by line, and one call costs far less than one
/// per 76-character line. Anything else falls back to collecting the characters first.
/// Invalid characters are an error.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>> {
    let invalid = |_| SmimeError::Mime("invalid base64 body".into());
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    let mut chunk = Vec::with_capacity(text.len().min(BASE64_CHUNK));
    let mut finished = false;
    for line in text.split(|b| *b == b'\n').map(<[u8]>::trim_ascii) {
        if line.is_empty() {
            continue;
        }
        if finished || line.len() % 4 != 0 {
            // The lines before this one decoded (or failed) first, as line by line.
            BASE64.decode_vec(&chunk, &mut out).map_err(invalid)?;
            return decode_base64_slow(text);
        }
        if chunk.len() + line.len() > BASE64_CHUNK {
            BASE64.decode_vec(&chunk, &mut out).map_err(invalid)?;
            chunk.clear();
        }
        chunk.extend_from_slice(line);
        finished = line.ends_with(b"=");
    }
    BASE64.decode_vec(&chunk, &mut out).map_err(invalid)?;
    Ok(out)
}

/// Characters decoded per call by [`decode_base64`] (a multiple of four).
const BASE64_CHUNK: usize = 64 * 1024;

fn decode_base64_slow(text: &[u8]) -> Result<Vec<u8>> {
    let mut compact = Vec::with_capacity(text.len());
    for &b in text {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => compact.push(b),
            b'=' => break,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => return Err(SmimeError::Mime("invalid character in base64 body".into())),
        }
    }
    // An incomplete last group of one character carries no byte: drop it rather than fail.
    if compact.len() % 4 == 1 {
        compact.pop();
    }
    BASE64_NO_PAD
        .decode(&compact)
        .map_err(|e| SmimeError::Mime(format!("invalid base64 body: {e}")))
}

/// The parts of a multipart body, each exactly as transmitted: from the line after a delimiter
/// to just before the line break that precedes the next delimiter (RFC 2046 §5.1.1).
pub fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut parts = Vec::new();
    let mut part_start: Option<usize> = None;
    let mut line_start = 0;
    for line in body.split_inclusive(|b| *b == b'\n') {
        let line_end = line_start + line.len();
        // A delimiter line is the delimiter, optionally "--", then only transport padding
        // (RFC 2046 §5.1.1): a line that merely starts with it is content.
        let delimiter_rest = line
            .strip_prefix(delimiter)
            .map(|rest| {
                rest.strip_prefix(b"--")
                    .map_or((rest, false), |r| (r, true))
            })
            .filter(|(padding, _)| padding.iter().all(|b| b" \t\r\n".contains(b)));
        if let Some((_, closing)) = delimiter_rest {
            if let Some(part) = part_start.and_then(|start| body.get(start..line_start)) {
                // The CRLF (or LF) before the delimiter belongs to the delimiter.
                let part = match part.strip_suffix(b"\n") {
                    Some(part) => part.strip_suffix(b"\r").unwrap_or(part),
                    None => part,
                };
                parts.push(part);
            }
            if closing {
                return parts;
            }
            part_start = Some(line_end);
        }
        line_start = line_end;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line-by-line decoder `decode_base64` replaced, as the reference it must agree with.
    fn decode_base64_by_line(text: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut finished = false;
        for line in text.split(|b| *b == b'\n').map(<[u8]>::trim_ascii) {
            if line.is_empty() {
                continue;
            }
            if finished || line.len() % 4 != 0 {
                return decode_base64_slow(text);
            }
            BASE64
                .decode_vec(line, &mut out)
                .map_err(|_| SmimeError::Mime("invalid base64 body".into()))?;
            finished = line.ends_with(b"=");
        }
        Ok(out)
    }

    #[test]
    fn chunked_base64_decoding_agrees_with_line_by_line() {
        use base64::Engine as _;
        // A fixed xorshift: reproducible inputs without a dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        let mut cases = 0;
        for round in 0..3000 {
            let len = if round % 100 == 0 { 200_000 } else { next(400) };
            let data: Vec<u8> = (0..len).map(|_| next(256) as u8).collect();
            let encoded = BASE64.encode(&data);
            let line_len = [4, 64, 76, 77, 1000][next(5)];
            let mut text: Vec<u8> = encoded
                .as_bytes()
                .chunks(line_len)
                .flat_map(|l| l.iter().copied().chain(*b"\r\n"))
                .collect();
            // Damage some: a flipped character, padding inside, a space, a short line.
            for _ in 0..next(3) {
                if let Some(at) = (!text.is_empty()).then(|| next(text.len())) {
                    text[at] = *b"A=\n !*/+\r".get(next(9)).unwrap();
                }
            }
            let expected = decode_base64_by_line(&text).map_err(|e| e.to_string());
            let got = decode_base64(&text).map_err(|e| e.to_string());
            assert_eq!(got, expected, "round {round}");
            if expected.as_deref() == Ok(&data[..]) {
                cases += 1;
            }
        }
        // Most cases are undamaged and decode to their data.
        assert!(cases > 1000, "{cases}");
    }

    #[test]
    fn parts_are_exact_and_exclude_the_line_break_before_delimiters() {
        let body = b"preamble\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n\r\n--b\r\nsig\r\n--b--\r\nepilogue";
        let parts = multipart_parts(body, "b");
        assert_eq!(
            parts,
            vec![
                &b"Content-Type: text/plain\r\n\r\nhello\r\n"[..],
                &b"sig"[..]
            ]
        );
        let lf = b"--b\nA\n--b\nB\n--b--\n";
        assert_eq!(multipart_parts(lf, "b"), vec![&b"A"[..], &b"B"[..]]);
        assert!(multipart_parts(b"no delimiters", "b").is_empty());
    }

    #[test]
    fn base64_over_lines() {
        assert_eq!(decode_base64(b"aGVs\r\nbG8=\r\n").unwrap(), b"hello");
        assert_eq!(decode_base64(b"aGVsbG8").unwrap(), b"hello");
        assert!(decode_base64(b"aGV*").is_err());
        // OpenSSL takes "-" for the end of the data and decodes "aGVs"; we refuse the body
        // (found by flipping a CR into "-" in an encrypted message's last line).
        assert!(decode_base64(b"aGVs\r\nbG8-\n\r\n").is_err());
        assert!(decode_base64(b"aGVs-\r\nbG8=\r\n").is_err());
        // Odd line widths take the slow path.
        assert_eq!(decode_base64(b"aGVsb\r\nG8=\r\n").unwrap(), b"hello");
    }

    /// Unused low bits in the last character are ignored, as OpenSSL and mail readers do:
    /// "bG9=" and "bG8=" are both "lo" (found by flipping bits in a signature's last line).
    #[test]
    fn base64_ignores_the_unused_bits_of_the_last_character() {
        assert_eq!(decode_base64(b"aGVs\r\nbG9=\r\n").unwrap(), b"hello");
        assert_eq!(decode_base64(b"aGVsb\r\nG9=\r\n").unwrap(), b"hello");
        assert_eq!(decode_base64(b"aGVsbG9").unwrap(), b"hello");
        assert_eq!(decode_base64(b"aB==").unwrap(), b"h");
    }
}
