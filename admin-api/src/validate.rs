//! Input validation for path and query values. The patterns here are also the ones in the
//! OpenAPI document (see the `*_PATTERN` constants), so schema and server agree.

use certstore::normalise_domain;

use crate::problem::Problem;

/// SHA-256 fingerprint: 64 hex digits (either case).
pub const FINGERPRINT_PATTERN: &str = "^[0-9A-Fa-f]{64}$";

/// E-mail address: a dot-atom local part (RFC 5322 atext) and a domain name.
pub const ADDRESS_PATTERN: &str =
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[^@\s]+$";

/// Largest page the list routes return.
pub const MAX_LIMIT: u32 = 500;
/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest offset accepted (a bound, so a request cannot ask for a scan of everything).
pub const MAX_OFFSET: u32 = 1_000_000;
/// Longest operator note on a domain approval, in characters.
pub const MAX_NOTE_CHARS: usize = 1024;

/// A domain name, normalised by the store's rules (lower case, IDNA, no trailing dot).
pub fn domain(raw: &str) -> Result<String, Problem> {
    Ok(normalise_domain(raw)?)
}

/// An e-mail address as `local@domain`, local part lower-cased like the store does.
pub fn address(raw: &str) -> Result<String, Problem> {
    let bad = |why: &str| {
        Problem::bad_request(
            "invalid_address",
            format!("{raw:?} is not a valid e-mail address: {why}"),
        )
    };
    let (local, domain_part) = raw.rsplit_once('@').ok_or_else(|| bad("no @"))?;
    if local.is_empty() || local.len() > 64 {
        return Err(bad("the local part must be 1 to 64 characters"));
    }
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b);
    let dot_atom_ok = local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(atext));
    if !dot_atom_ok {
        return Err(bad(
            "the local part may hold letters, digits, !#$%&'*+/=?^_`{|}~- and single dots between them",
        ));
    }
    if domain_part.chars().any(char::is_whitespace) {
        return Err(bad("the domain contains white space"));
    }
    let domain = normalise_domain(domain_part).map_err(|e| bad(&e.to_string()))?;
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
            address("a.b+tag@bücher.example").unwrap(),
            "a.b+tag@xn--bcher-kva.example"
        );
        for bad in [
            "alice",
            "@partner.example",
            "a b@partner.example",
            "a..b@partner.example",
            ".a@partner.example",
            "a@localhost",
            "a@partner.example extra",
            "a<b>@partner.example",
        ] {
            assert!(address(bad).is_err(), "{bad}");
        }
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
