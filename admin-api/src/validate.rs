//! Input validation for path and query values. The patterns here are also the ones in the
//! OpenAPI document (see the `*_PATTERN` constants), so schema and server agree.

use smime_pki::name::{is_plain_local_part, MAX_ADDRESS_OCTETS, MAX_DOMAIN_OCTETS};
use smime_pki::{Domain, DomainKind};

use crate::problem::Problem;

/// SHA-256 fingerprint: 64 hex digits (either case).
pub const FINGERPRINT_PATTERN: &str = "^[0-9A-Fa-f]{64}$";

/// Domain name: ASCII letters, digits and hyphens in dot-separated labels of 1 to 63
/// characters, the last one starting with a letter (so not an IP address). Internationalised
/// names are given in their ASCII (`xn--`) form. At most [`MAX_DOMAIN_CHARS`] characters.
pub const DOMAIN_PATTERN: &str = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$";
pub const MAX_DOMAIN_CHARS: usize = MAX_DOMAIN_OCTETS;

/// E-mail address: a local part of 1 to 64 RFC 5322 atext characters and dots (not first or
/// last), `@`, and a domain as in [`DOMAIN_PATTERN`]. At most [`MAX_ADDRESS_CHARS`].
pub const ADDRESS_PATTERN: &str = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-](?:[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{0,62}[A-Za-z0-9!#$%&'*+/=?^_`{|}~-])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$";
/// RFC 5321 limits a forward path to 256 octets including the angle brackets.
pub const MAX_ADDRESS_CHARS: usize = MAX_ADDRESS_OCTETS;

/// Largest page the list routes return.
pub const MAX_LIMIT: u32 = 500;
/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest offset accepted (a bound, so a request cannot ask for a scan of everything).
pub const MAX_OFFSET: u32 = 1_000_000;
/// Longest operator note on a domain approval, in characters.
pub const MAX_NOTE_CHARS: usize = 1024;

/// A domain name: the shared rules for a partner's domain ([`DomainKind::Registered`]), given
/// in the form [`DOMAIN_PATTERN`] describes. The API is stricter than the store (ASCII only,
/// no trailing dot or surrounding space) so that what the OpenAPI document calls valid is
/// exactly what the server accepts.
pub fn domain(raw: &str) -> Result<String, Problem> {
    let parsed = Domain::parse(raw, DomainKind::Registered);
    let in_api_form = raw.is_ascii() && raw.trim() == raw && !raw.ends_with('.');
    match parsed {
        Ok(domain) if in_api_form => Ok(domain.into_string()),
        Ok(ascii) => Err(Problem::bad_request(
            "invalid_domain",
            format!(
                "{raw:?} is not in the form this API takes: use {:?} (lower-case ASCII, IDNA form, no trailing dot)",
                ascii.as_str()
            ),
        )),
        Err(_) => Err(Problem::bad_request(
            "invalid_domain",
            format!(
                "{raw:?} is not a valid domain name: expected dot-separated labels of ASCII letters, digits and hyphens (e.g. partner.example)"
            ),
        )),
    }
}

/// An e-mail address, checked against [`ADDRESS_PATTERN`], as `local@domain` lower-cased
/// like the store does.
pub fn address(raw: &str) -> Result<String, Problem> {
    let bad = |why: &str| {
        Problem::bad_request(
            "invalid_address",
            format!("{raw:?} is not a valid e-mail address: {why}"),
        )
    };
    if raw.len() > MAX_ADDRESS_CHARS {
        return Err(bad("longer than 254 characters"));
    }
    let (local, domain_part) = raw.rsplit_once('@').ok_or_else(|| bad("no @"))?;
    if !is_plain_local_part(local) {
        return Err(bad(
            "the local part must be 1 to 64 of the characters A-Z a-z 0-9 !#$%&'*+/=?^_`{|}~- and dots (not first or last)",
        ));
    }
    let domain = domain(domain_part).map_err(|p| bad(&p.detail))?;
    Ok(format!("{}@{}", local.to_ascii_lowercase(), domain))
}

/// A SHA-256 fingerprint as 64 lower-case hex digits.
pub fn fingerprint(raw: &str) -> Result<String, Problem> {
    if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(Problem::bad_request(
            "invalid_fingerprint",
            format!(
                "{raw:?} is not a SHA-256 fingerprint: expected 64 hexadecimal digits without separators"
            ),
        ))
    }
}

/// Page bounds, checked.
pub fn page(offset: Option<u32>, limit: Option<u32>) -> Result<(usize, usize), Problem> {
    let offset = offset.unwrap_or(0);
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if offset > MAX_OFFSET {
        return Err(Problem::bad_request(
            "invalid_offset",
            format!("offset {offset} is out of range: at most {MAX_OFFSET}"),
        ));
    }
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Problem::bad_request(
            "invalid_limit",
            format!("limit {limit} is out of range: 1 to {MAX_LIMIT}"),
        ));
    }
    Ok((offset as usize, limit as usize))
}

/// An operator note: bounded, and free of control characters (it ends up in the audit
/// journal and on terminals).
pub fn note(raw: &str) -> Result<String, Problem> {
    if raw.chars().count() > MAX_NOTE_CHARS {
        return Err(Problem::bad_request(
            "invalid_note",
            format!("the note is longer than {MAX_NOTE_CHARS} characters"),
        ));
    }
    if raw.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Problem::bad_request(
            "invalid_note",
            "the note contains control characters (line breaks included)",
        ));
    }
    Ok(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            address("Alice@Partner.Example").unwrap(),
            "alice@partner.example"
        );
        assert_eq!(
            address("a.b+tag@xn--bcher-kva.example").unwrap(),
            "a.b+tag@xn--bcher-kva.example"
        );
        assert!(address(&format!("{}@partner.example", "a".repeat(65))).is_err());
        for bad in [
            "alice",
            "@partner.example",
            "a b@partner.example",
            "a@bücher.example",
            "a@partner.example.",
            ".a@partner.example",
            "a@localhost",
            "a@partner.example extra",
            "a<b>@partner.example",
        ] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn domains() {
        assert_eq!(domain("Partner.Example").unwrap(), "partner.example");
        assert_eq!(domain("0.a").unwrap(), "0.a");
        for bad in [
            "",
            "partner",
            "partner.example.",
            " partner.example",
            "10.0.0.1",
            "a..b",
            "-a.example",
            "a.-b",
            "bücher.example",
            "a_b.example",
        ] {
            assert!(domain(bad).is_err(), "{bad}");
        }
        let idn = domain("bücher.example").unwrap_err();
        assert!(
            idn.detail.contains("xn--bcher-kva.example"),
            "{}",
            idn.detail
        );
        let long = format!("{}.example", ["a".repeat(63).as_str(); 4].join("."));
        assert!(domain(&long).is_err());
    }

    #[test]
    fn fingerprints_and_pages() {
        let fp = "AB".repeat(32);
        assert_eq!(fingerprint(&fp).unwrap(), "ab".repeat(32));
        assert!(fingerprint("ab").is_err());
        assert!(fingerprint(&"zz".repeat(32)).is_err());
        assert_eq!(page(None, None).unwrap(), (0, 50));
        assert!(page(None, Some(0)).is_err());
        assert!(page(None, Some(MAX_LIMIT + 1)).is_err());
        assert!(page(Some(MAX_OFFSET + 1), None).is_err());
    }

    #[test]
    fn notes() {
        assert!(note("partner since 2025\tok").is_ok());
        assert!(note("line\nbreak").is_err());
        assert!(note(&"x".repeat(MAX_NOTE_CHARS + 1)).is_err());
    }
}
