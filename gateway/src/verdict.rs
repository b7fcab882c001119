//! The verdict headers the gateway writes (`Authentication-Results` with the RFC 7281 `smime`
//! method, and `X-SMIME-Gateway`), and the removal of any that arrive from outside.
//!
//! Staff act on these headers, so only the gateway may write them: every message, on every
//! route, loses incoming `X-SMIME-Gateway` fields and the `Authentication-Results` fields that
//! carry our authserv-id in any RFC 8601 spelling, and every value we write is sanitised so
//! that text from a message or a certificate cannot add a result of its own.

use std::borrow::Cow;

use crate::mime::headers::{self, HeaderField};

/// The name of our free-text status field.
pub const GATEWAY_FIELD: &str = "X-SMIME-Gateway";

/// The RFC 7281 result for the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmimeResult {
    /// A valid signature over the whole delivered content, by a certificate that validates
    /// and carries the `From:` address, with an algorithm the policy accepts.
    Pass {
        identifier: String,
    },
    /// The signature does not hold, or does not vouch for the sender shown. No identifier is
    /// named: a signer whose signature failed is nobody's identity.
    Fail {
        reason: String,
    },
    /// Could not be evaluated, or only partly (not decrypted, only part of the message signed,
    /// a weak algorithm).
    Neutral {
        reason: String,
    },
    /// Malformed or ambiguous S/MIME structure.
    PermError {
        reason: String,
    },
    TempError {
        reason: String,
    },
    None,
}

impl SmimeResult {
    pub fn keyword(&self) -> &'static str {
        match self {
            Self::Pass { .. } => "pass",
            Self::Fail { .. } => "fail",
            Self::Neutral { .. } => "neutral",
            Self::PermError { .. } => "permerror",
            Self::TempError { .. } => "temperror",
            Self::None => "none",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Fail { reason }
            | Self::Neutral { reason }
            | Self::PermError { reason }
            | Self::TempError { reason } => Some(reason),
            Self::Pass { .. } | Self::None => None,
        }
    }

    /// The `Authentication-Results` field for `authserv_id`.
    pub fn header(&self, authserv_id: &str) -> String {
        let body = match self {
            Self::Pass { identifier } => format!(
                "smime=pass smime.smime-identifier={}",
                property_value(identifier)
            ),
            other => {
                let reason = other
                    .reason()
                    .map(|r| format!(" ({})", comment_text(r)))
                    .unwrap_or_default();
                format!("smime={}{reason}", other.keyword())
            }
        };
        format!("Authentication-Results: {authserv_id};\r\n\t{body}")
    }
}

/// The `X-SMIME-Gateway` field: what was checked, in words.
pub fn gateway_header(status: &str) -> String {
    format!("{GATEWAY_FIELD}: {}", free_text(status, 400))
}

/// Text inside an RFC 5322 comment: no parentheses or backslashes (which could end the
/// comment early), no line breaks, and nothing a naive reader could take for a result
/// (`;` separates results, `=` assigns them).
fn comment_text(text: &str) -> String {
    free_text(text, 200)
        .chars()
        .map(|c| match c {
            '(' | ')' | '\\' => ' ',
            ';' => ',',
            '=' => ':',
            c => c,
        })
        .collect()
}

/// Free text for a header value: one line, bounded, and without `;`/`=` that would let a
/// signer address or a reason read as a result.
fn free_text(text: &str, max_chars: usize) -> String {
    text.chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            ';' => ',',
            '=' => ':',
            c => c,
        })
        .take(max_chars)
        .collect()
}

/// An RFC 8601 `pvalue`: a plain address when every character is safe, otherwise a quoted
/// string with `"` and `\` escaped, so it ends where we say it ends.
fn property_value(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@.-_+".contains(c);
    if !value.is_empty() && value.len() <= 254 && value.chars().all(safe) {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars().take(254) {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Remove every `X-SMIME-Gateway` field and every `Authentication-Results` field that claims
/// our `authserv_id`. Borrowed when there is nothing to remove.
pub fn strip_incoming<'m>(message: &'m [u8], authserv_id: &str) -> Cow<'m, [u8]> {
    let split = headers::split(message);
    let ours = |h: &HeaderField<'_>| is_ours(h, authserv_id);
    if !split.headers.iter().any(ours) {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    headers::write_fields(split.headers.iter().filter(|h| !ours(h)), &mut out);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(split.body);
    Cow::Owned(out)
}

fn is_ours(field: &HeaderField<'_>, authserv_id: &str) -> bool {
    if field.is(GATEWAY_FIELD) {
        return true;
    }
    if !field.is("Authentication-Results") {
        return false;
    }
    match authserv_id_of(&field.value()) {
        Some(id) => id.eq_ignore_ascii_case(authserv_id),
        // Unparseable, but it names us before its first result: treat as forged rather than
        // leave a reader to guess.
        None => field
            .value()
            .split(';')
            .next()
            .is_some_and(|head| contains_word(head, authserv_id)),
    }
}

/// The authserv-id of an `Authentication-Results` value (RFC 8601 §2.2): optional CFWS, then
/// a token or quoted-string, optionally followed by a version.
pub fn authserv_id_of(value: &str) -> Option<String> {
    let mut chars = value.chars().peekable();
    skip_cfws(&mut chars)?;
    let mut id = String::new();
    if chars.peek() == Some(&'"') {
        chars.next();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => id.push(chars.next()?),
                c => id.push(c),
            }
        }
    } else {
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == ';' || c == '(' {
                break;
            }
            id.push(c);
            chars.next();
        }
    }
    (!id.is_empty()).then_some(id)
}

/// Skip whitespace and (nested) comments; `None` for an unterminated comment.
fn skip_cfws(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<()> {
    loop {
        match chars.peek() {
            Some(c) if c.is_whitespace() => {
                chars.next();
            }
            Some('(') => {
                let mut depth = 0usize;
                loop {
                    match chars.next()? {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        '\\' => {
                            chars.next()?;
                        }
                        _ => {}
                    }
                }
            }
            _ => return Some(()),
        }
    }
}

fn contains_word(haystack: &str, word: &str) -> bool {
    haystack
        .split(|c: char| c.is_whitespace() || "();\"".contains(c))
        .any(|w| w.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "gw.agency.example";

    fn stripped(message: &str) -> String {
        String::from_utf8(strip_incoming(message.as_bytes(), ID).into_owned()).unwrap()
    }

    #[test]
    fn every_spelling_of_our_authserv_id_is_removed() {
        for field in [
            "Authentication-Results: gw.agency.example; smime=pass",
            "authentication-results: GW.Agency.Example; smime=pass",
            "Authentication-Results:gw.agency.example;smime=pass",
            "Authentication-Results: (comment) gw.agency.example; smime=pass",
            "Authentication-Results: (nested (comment)) gw.agency.example; smime=pass",
            "Authentication-Results: gw.agency.example (after); smime=pass",
            "Authentication-Results: gw.agency.example 1; smime=pass",
            "Authentication-Results: \"gw.agency.example\"; smime=pass",
            "Authentication-Results:\r\n gw.agency.example;\r\n\tsmime=pass",
            "Authentication-Results : gw.agency.example; smime=pass",
            "Authentication-Results: gw.agency.example",
            "X-SMIME-Gateway: decrypted; signature valid, signer ceo@agency.example",
            "x-smime-gateway: anything",
        ] {
            let msg = format!("{field}\r\nSubject: hi\r\n\r\nbody");
            let out = stripped(&msg);
            assert_eq!(out, "Subject: hi\r\n\r\nbody", "not removed: {field:?}");
        }
    }

    #[test]
    fn other_authserv_ids_are_kept() {
        for field in [
            "Authentication-Results: mx.partner.example; dkim=pass",
            "Authentication-Results: gw.agency.example.evil; smime=pass",
            "Authentication-Results: (gw.agency.example) mx.partner.example; spf=pass",
        ] {
            let msg = format!("{field}\r\nSubject: hi\r\n\r\nbody");
            assert_eq!(stripped(&msg), msg, "removed: {field:?}");
        }
    }

    #[test]
    fn authserv_id_parsing() {
        assert_eq!(
            authserv_id_of(" a.example; x").as_deref(),
            Some("a.example")
        );
        assert_eq!(authserv_id_of("(c) \"q\\\"d\" 1;").as_deref(), Some("q\"d"));
        assert_eq!(authserv_id_of("(unterminated a.example; x"), None);
        assert_eq!(authserv_id_of(""), None);
    }

    #[test]
    fn values_cannot_add_a_result() {
        let h = SmimeResult::Fail {
            reason: "content changed (after signing)\r\nX-Injected: yes; smime=pass".into(),
        }
        .header("gw");
        assert!(!h.contains("\r\nX-Injected"));
        assert!(h.starts_with("Authentication-Results: gw;"));
        assert_eq!(h.matches("smime=").count(), 1, "{h}");

        let h = SmimeResult::Pass {
            identifier: "x@y.example; smime=pass (\"".into(),
        }
        .header("gw");
        assert!(
            h.ends_with(r#"smime.smime-identifier="x@y.example; smime=pass (\"""#),
            "{h}"
        );
        assert_eq!(
            authserv_id_of(&h["Authentication-Results:".len()..]).as_deref(),
            Some("gw")
        );

        let g = gateway_header("signer a@b; smime=pass\r\nX: y");
        assert!(!g.contains("smime=pass") && !g.contains('\n'), "{g}");
    }
}
