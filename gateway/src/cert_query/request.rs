//! Reading a request: whether it may be answered at all, and what it asks for.

use smime_pki::{Address, DomainKind};

use crate::mime::headers;

/// Why `message` must not get an automatic reply (RFC 3834 §2), if it must not.
pub(super) fn auto_generated(message: &[u8]) -> Option<String> {
    let split = headers::split(message);
    for field in &split.headers {
        let value = field.value();
        let token = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if field.is("Auto-Submitted") && token != "no" {
            return Some(format!("Auto-Submitted: {token}: never auto-replied"));
        }
        if field.is("Precedence") && matches!(token.as_str(), "bulk" | "junk" | "list") {
            return Some(format!("Precedence: {token}: never auto-replied"));
        }
    }
    None
}

/// Mail system senders that never get auto-replies (RFC 3834 §2).
pub(super) fn is_daemon(address: &str) -> bool {
    let local = address.rsplit_once('@').map(|(l, _)| l).unwrap_or(address);
    local.eq_ignore_ascii_case("mailer-daemon")
}

/// An address we are willing to write into a header or an envelope: a partner's address
/// (two labels at least) that needs no quoting and no SMTPUTF8.
pub(super) fn plain_address(a: &str) -> bool {
    a.is_ascii() && Address::parse(a, DomainKind::Registered).is_ok_and(|a| a.is_plain_ascii())
}

pub(super) fn plain_message_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

/// The request's Subject, RFC 2047 decoded.
pub(super) fn subject(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::default()
        .parse_headers(smime_pki::header::header_block(message))?;
    parsed.subject().map(str::to_string)
}

/// The one address in a Subject: bare, in angle brackets or after `mailto:`, any case, with
/// reply/forward prefixes ignored. `None` when there is none or more than one.
pub(super) fn address_in_subject(subject: &str) -> Option<String> {
    let mut s = subject.trim();
    // "Re: ", "Fwd: ", "AW: "... possibly repeated.
    loop {
        let lower = s.to_ascii_lowercase();
        let Some(prefix) = ["re:", "fwd:", "fw:", "aw:", "wg:", "tr:", "sv:"]
            .iter()
            .find(|p| lower.starts_with(**p))
        else {
            break;
        };
        s = s[prefix.len()..].trim_start();
    }
    let inner = match (s.find('<'), s.rfind('>')) {
        (Some(open), Some(close)) if open < close => &s[open + 1..close],
        _ => s,
    };
    let mut candidates = inner
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|t| t.contains('@'))
        .map(|t| {
            let t = t.trim_matches(|c: char| "\"'()[].<>".contains(c));
            let t = t
                .get(..7)
                .filter(|p| p.eq_ignore_ascii_case("mailto:"))
                .map_or(t, |_| &t[7..]);
            t.to_ascii_lowercase()
        });
    let first = candidates.next()?;
    if candidates.next().is_some() || !plain_address(&first) {
        return None;
    }
    Some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_forms() {
        for (subject, want) in [
            ("user@agency.example", Some("user@agency.example")),
            ("  <User@Agency.Example>  ", Some("user@agency.example")),
            (
                "Re: RE: Fwd: user@agency.example",
                Some("user@agency.example"),
            ),
            (
                "Certificate for <user@agency.example>",
                Some("user@agency.example"),
            ),
            ("mailto:USER@agency.example", Some("user@agency.example")),
            ("\"user@agency.example\"", Some("user@agency.example")),
            ("please: user@agency.example.", Some("user@agency.example")),
            ("a@agency.example b@agency.example", None),
            ("certificate please", None),
            ("", None),
            ("<>", None),
            ("us er@agency.example another@agency.example", None),
            ("user@", None),
        ] {
            assert_eq!(address_in_subject(subject).as_deref(), want, "{subject:?}");
        }
    }

    #[test]
    fn address_and_id_checks() {
        assert!(plain_address("alice@partner.example"));
        assert!(!plain_address("alice@partner"));
        assert!(!plain_address("a\r\nBcc: x@y.example"));
        assert!(!plain_address("\"a b\"@partner.example"));
        assert!(plain_message_id("x.1@partner.example"));
        assert!(!plain_message_id("x y@z"));
        assert!(!plain_message_id(""));
    }
}
