//! Postfix `XFORWARD` (www.postfix.org/XFORWARD_README.html): the upstream MTA tells us who
//! the original client was, so decisions can be logged against the person who submitted.
//! Accepted from trusted clients only, outside a mail transaction.

use super::Reply;

/// Attributes we advertise and record.
pub(crate) const ADVERTISED: &str = "XFORWARD NAME ADDR PROTO HELO LOGIN";

/// Longest attribute value kept (host names are at most 255 octets; logins are shorter).
const MAX_VALUE: usize = 255;

/// What the upstream MTA told us about the original client; all `None` without XFORWARD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// The original client's host name.
    pub name: Option<String>,
    /// The original client's IP address.
    pub addr: Option<String>,
    /// `SMTP` or `ESMTP`.
    pub proto: Option<String>,
    /// The name the original client gave in HELO/EHLO.
    pub helo: Option<String>,
    /// The SASL login the original client authenticated with.
    pub login: Option<String>,
}

/// The arguments of an `XFORWARD` command line, or `None` when the line is another command
/// (smtp-proto does not know XFORWARD, so it is recognised before parsing).
pub(crate) fn arguments(line: &[u8]) -> Option<&[u8]> {
    const VERB: &[u8] = b"XFORWARD";
    let (head, rest) = line.split_at_checked(VERB.len())?;
    if !head.eq_ignore_ascii_case(VERB) {
        return None;
    }
    match rest.first() {
        Some(b' ' | b'\t' | b'\r' | b'\n') | None => Some(rest),
        Some(_) => None,
    }
}

/// Applies `attr=value` pairs to `forwarded`; on error nothing is changed.
pub(crate) fn apply(args: &[u8], forwarded: &mut Forwarded) -> Result<(), Reply> {
    let syntax = || Reply::new(501, "5.5.4", "Syntax: XFORWARD attribute=value...");
    let text = std::str::from_utf8(args).map_err(|_| syntax())?;
    let mut updated = forwarded.clone();
    let mut any = false;
    for pair in text.split_ascii_whitespace() {
        let (name, value) = pair.split_once('=').ok_or_else(syntax)?;
        let mut value = decode(value).ok_or_else(syntax)?;
        let name = name.to_ascii_uppercase();
        if name == "ADDR" {
            // Postfix writes IPv6 client addresses as `IPV6:2001:db8::1`.
            value = value.map(|v| match v.split_at_checked(5) {
                Some((p, addr)) if p.eq_ignore_ascii_case("IPV6:") => addr.to_string(),
                _ => v,
            });
        }
        let slot = match name.as_str() {
            "NAME" => &mut updated.name,
            "ADDR" => &mut updated.addr,
            "PROTO" => &mut updated.proto,
            "HELO" => &mut updated.helo,
            "LOGIN" => &mut updated.login,
            _ => {
                return Err(Reply::new(
                    501,
                    "5.5.4",
                    format!(
                        "Bad XFORWARD attribute name: {}",
                        name.chars().take(32).collect::<String>()
                    ),
                ))
            }
        };
        *slot = value;
        any = true;
    }
    if !any {
        return Err(syntax());
    }
    *forwarded = updated;
    Ok(())
}

/// xtext-decoded value; `[UNAVAILABLE]` and `[TEMPUNAVAIL]` mean unknown (`Some(None)`).
/// Control characters are replaced so a value cannot forge a log line.
fn decode(value: &str) -> Option<Option<String>> {
    if value.eq_ignore_ascii_case("[UNAVAILABLE]") || value.eq_ignore_ascii_case("[TEMPUNAVAIL]") {
        return Some(None);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&b, after)) = rest.split_first() {
        if b == b'+' {
            let (hex, after) = after.split_first_chunk::<2>()?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            rest = after;
        } else {
            out.push(b);
            rest = after;
        }
    }
    if out.len() > MAX_VALUE {
        return None;
    }
    let text: String = String::from_utf8_lossy(&out)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    Some((!text.is_empty()).then_some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_command_only() {
        assert_eq!(
            arguments(b"XFORWARD ADDR=1.2.3.4\r\n"),
            Some(&b" ADDR=1.2.3.4\r\n"[..])
        );
        assert_eq!(arguments(b"xforward name=x\r\n"), Some(&b" name=x\r\n"[..]));
        assert_eq!(arguments(b"XFORWARDX\r\n"), None);
        assert_eq!(arguments(b"MAIL FROM:<a@b>\r\n"), None);
        assert_eq!(arguments(b"XFOR"), None);
    }

    #[test]
    fn records_decoded_attributes() {
        let mut f = Forwarded::default();
        apply(
            b" NAME=client.example ADDR=IPV6:2001:db8::1 PROTO=ESMTP\r\n",
            &mut f,
        )
        .unwrap();
        apply(b" HELO=[UNAVAILABLE] LOGIN=alice+40agency\r\n", &mut f).unwrap();
        assert_eq!(f.name.as_deref(), Some("client.example"));
        assert_eq!(f.addr.as_deref(), Some("2001:db8::1"));
        assert_eq!(f.proto.as_deref(), Some("ESMTP"));
        assert_eq!(f.helo, None);
        assert_eq!(f.login.as_deref(), Some("alice@agency"));
        // A control character cannot start a new log line.
        apply(b" LOGIN=eve+0Aforged\r\n", &mut f).unwrap();
        assert_eq!(f.login.as_deref(), Some("eve?forged"));
    }

    #[test]
    fn bad_input_changes_nothing() {
        let mut f = Forwarded::default();
        apply(b" LOGIN=alice\r\n", &mut f).unwrap();
        let before = f.clone();
        for bad in [
            &b"\r\n"[..],
            b" LOGIN\r\n",
            b" PORT=25\r\n",
            b" LOGIN=bob ADDR=+zz\r\n",
            b" LOGIN=+4\r\n",
        ] {
            let reply = apply(bad, &mut f).unwrap_err();
            assert_eq!(reply.code, 501, "{bad:?}");
            assert_eq!(f, before, "{bad:?}");
        }
        let long = format!(" NAME={}\r\n", "a".repeat(300));
        assert!(apply(long.as_bytes(), &mut f).is_err());
    }
}
