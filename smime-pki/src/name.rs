//! E-mail addresses and domain names: one set of rules for the whole gateway.
//!
//! The rules, decided once:
//! - A domain is compared and stored in its ASCII form: U-labels become A-labels (IDNA,
//!   UTS #46), everything is lower-cased, one trailing dot is dropped.
//! - Lengths as RFC 5321 §4.5.3.1 and RFC 1035 §2.3.4 have them: a label 1 to 63 octets, a
//!   domain at most 253 octets in text form, a local part 1 to 64 octets, a whole address at
//!   most 254 (a path is 256 octets with its angle brackets).
//! - Labels are letters, digits and hyphens, not starting or ending with a hyphen (RFC 1123
//!   §2.1), and the last label starts with a letter, so a dotted IP address is never a domain.
//!   `_` is allowed only in the domain of an address as received ([`DomainKind::Received`]):
//!   DNS allows any octet (RFC 2181 §11) and the upstream MTA has already accepted the mail, so
//!   refusing it here would only turn it into a bounce. Hostnames and the domains we configure
//!   or approve never have one.
//! - A local part may be UTF-8 (RFC 6531, SMTPUTF8); whether a transaction allows that is the
//!   SMTP session's decision. It never holds whitespace, control characters, `<`, `>` or `@`.
//!   Local parts are compared lower-cased (the certificate store keys them that way).

use std::fmt;

/// Longest domain name in text form (RFC 1035 §2.3.4: 255 octets on the wire).
pub const MAX_DOMAIN_OCTETS: usize = 253;
/// Longest label of a domain name.
pub const MAX_LABEL_OCTETS: usize = 63;
/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART_OCTETS: usize = 64;
/// Longest address: a path is at most 256 octets with its angle brackets (RFC 5321 §4.5.3.1.3).
pub const MAX_ADDRESS_OCTETS: usize = 254;

/// Where a domain name comes from, which decides the few rules that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainKind {
    /// A host name or a domain of ours from the configuration: one label is enough
    /// (`localhost`).
    Host,
    /// The domain of an address as received in an envelope or a header: like [`Self::Host`],
    /// with `_` allowed in labels; in an address, an address literal (`[192.0.2.1]`) too.
    Received,
    /// A partner's domain, as approved and stored: at least two labels (never a top-level or
    /// intranet name).
    Registered,
}

/// Why a domain name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the domain name is empty")]
    Empty,
    #[error("{0:?} is not a valid domain name")]
    Invalid(String),
    #[error("{0:?} is not a valid internationalised domain name")]
    Idna(String),
}

/// A domain name in its ASCII form: lower-case A-labels, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Domain(String);

impl Domain {
    /// `raw` (U-labels or A-labels, any case, surrounding space and one trailing dot ignored)
    /// checked by the rules of `kind`.
    pub fn parse(raw: &str, kind: DomainKind) -> Result<Domain, DomainError> {
        let trimmed = raw.trim();
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(DomainError::Empty);
        }
        let invalid = || DomainError::Invalid(raw.to_string());
        if trimmed
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '@' | '/' | ':'))
        {
            return Err(invalid());
        }
        let ascii =
            idna::domain_to_ascii(trimmed).map_err(|_| DomainError::Idna(raw.to_string()))?;
        if ascii.is_empty() || ascii.len() > MAX_DOMAIN_OCTETS {
            return Err(invalid());
        }
        let underscore_allowed = kind == DomainKind::Received;
        let label_ok = |label: &str| {
            (1..=MAX_LABEL_OCTETS).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'-'
                        || (underscore_allowed && b == b'_')
                })
        };
        let labels: Vec<&str> = ascii.split('.').collect();
        if !labels.iter().all(|l| label_ok(l)) {
            return Err(invalid());
        }
        if kind == DomainKind::Registered && labels.len() < 2 {
            return Err(invalid());
        }
        let last_starts_with_letter = labels
            .last()
            .and_then(|l| l.bytes().next())
            .is_some_and(|b| b.is_ascii_alphabetic());
        if !last_starts_with_letter {
            return Err(invalid());
        }
        Ok(Domain(ascii))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Domain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("{0:?} has no @")]
    NoAt(String),
    #[error("{0:?} is longer than {MAX_ADDRESS_OCTETS} octets")]
    TooLong(String),
    #[error("{0:?} has an empty or invalid local part (1 to {MAX_LOCAL_PART_OCTETS} octets, no spaces, control characters, <, > or @)")]
    LocalPart(String),
    #[error("{address:?} has an invalid domain: {source}")]
    Domain {
        address: String,
        source: DomainError,
    },
}

/// An address `local@domain` in its compared form: the local part lower-cased, the domain in
/// ASCII ([`Domain`]) or an address literal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    text: String,
    at: usize,
}

impl Address {
    /// `raw` (surrounding space ignored, no angle brackets) checked by the rules above; the
    /// domain by the rules of `kind`. Address literals only for [`DomainKind::Received`].
    pub fn parse(raw: &str, kind: DomainKind) -> Result<Address, AddressError> {
        let trimmed = raw.trim();
        let (local, domain) = trimmed
            .rsplit_once('@')
            .ok_or_else(|| AddressError::NoAt(raw.to_string()))?;
        if trimmed.len() > MAX_ADDRESS_OCTETS {
            return Err(AddressError::TooLong(raw.to_string()));
        }
        if !valid_local_part(local) {
            return Err(AddressError::LocalPart(raw.to_string()));
        }
        let domain_error = |source| AddressError::Domain {
            address: raw.to_string(),
            source,
        };
        let domain = if kind == DomainKind::Received && is_address_literal(domain) {
            domain.to_ascii_lowercase()
        } else {
            Domain::parse(domain, kind)
                .map_err(domain_error)?
                .into_string()
        };
        let local = local.to_lowercase();
        Ok(Address {
            at: local.len(),
            text: format!("{local}@{domain}"),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn local_part(&self) -> &str {
        self.text.get(..self.at).unwrap_or_default()
    }

    pub fn domain(&self) -> &str {
        self.text.get(self.at + 1..).unwrap_or_default()
    }

    /// Whether the address is written into a header or an envelope as it is: ASCII, and a
    /// local part as [`is_plain_local_part`] has it.
    pub fn is_plain_ascii(&self) -> bool {
        self.text.is_ascii() && is_plain_local_part(self.local_part())
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for Address {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

/// A local part of RFC 5322 `atext` characters and dots, not first or last: it needs no
/// quoting (consecutive dots are allowed, as the obsolete syntax and many systems have them).
pub fn is_plain_local_part(local: &str) -> bool {
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b);
    (1..=MAX_LOCAL_PART_OCTETS).contains(&local.len())
        && local.bytes().all(|b| atext(b) || b == b'.')
        && !local.starts_with('.')
        && !local.ends_with('.')
}

fn valid_local_part(local: &str) -> bool {
    (1..=MAX_LOCAL_PART_OCTETS).contains(&local.len())
        && !local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '@'))
}

/// `[192.0.2.1]`, `[IPv6:2001:db8::1]`: printable ASCII between brackets (RFC 5321 §4.1.3).
fn is_address_literal(domain: &str) -> bool {
    domain.len() > 2
        && domain.starts_with('[')
        && domain.ends_with(']')
        && domain.bytes().all(|b| b.is_ascii_graphic())
}

/// The form an address is compared in, for input that may not be a valid address at all
/// (a certificate's SAN, a header): surrounding space and angle brackets dropped, the local
/// part lower-cased, the domain in ASCII when it is a domain at all, else lower-cased.
pub fn normalise(address: &str) -> String {
    let bare = address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    match bare.rsplit_once('@') {
        Some((local, domain)) => {
            let domain = Domain::parse(domain, DomainKind::Received)
                .map(Domain::into_string)
                .unwrap_or_else(|_| domain.to_lowercase());
            format!("{}@{}", local.to_lowercase(), domain)
        }
        None => bare.to_lowercase(),
    }
}

/// The domain part (after the last `@`) in its compared form, `None` without one.
pub fn domain_of(address: &str) -> Option<String> {
    let compared = normalise(address);
    let (_, domain) = compared.rsplit_once('@')?;
    let domain = domain.trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(d: &str) -> Result<String, DomainError> {
        Domain::parse(d, DomainKind::Host).map(Domain::into_string)
    }

    #[test]
    fn domains_become_lower_case_a_labels() {
        assert_eq!(host("Partner.Example.").unwrap(), "partner.example");
        assert_eq!(host(" bücher.example ").unwrap(), "xn--bcher-kva.example");
        assert_eq!(
            host("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(host("例子.测试").unwrap(), "xn--fsqu00a.xn--0zwm56d");
        assert_eq!(host("localhost").unwrap(), "localhost");
    }

    #[test]
    fn refused_domains() {
        assert_eq!(host(""), Err(DomainError::Empty));
        assert_eq!(host(" . "), Err(DomainError::Empty));
        for bad in [
            "a..b",
            "-a.example",
            "a-.example",
            "a b.example",
            "user@x.example",
            "http://x.example",
            "10.0.0.1",
            "a.0example",
            "[127.0.0.1]",
            "a\r\nb.example",
        ] {
            assert!(host(bad).is_err(), "{bad}");
        }
        assert!(host("bü..cher").is_err());
    }

    #[test]
    fn length_limits_per_rfc_1035() {
        let label63 = "a".repeat(63);
        assert!(host(&format!("{label63}.example")).is_ok());
        assert!(host(&format!("{}.example", "a".repeat(64))).is_err());
        // 253 octets is the longest name; 254 is refused.
        let longest = format!("{}.{}.{}.{}", label63, label63, label63, "a".repeat(61));
        assert_eq!(longest.len(), 253);
        assert!(host(&longest).is_ok());
        assert!(host(&format!("a{longest}")).is_err());
    }

    #[test]
    fn underscore_only_in_received_domains() {
        assert!(host("a_b.example").is_err());
        assert!(Domain::parse("a_b.example", DomainKind::Registered).is_err());
        assert_eq!(
            Domain::parse("A_b.Example", DomainKind::Received)
                .unwrap()
                .as_str(),
            "a_b.example"
        );
    }

    #[test]
    fn registered_domains_have_two_labels() {
        assert!(Domain::parse("localhost", DomainKind::Registered).is_err());
        assert!(Domain::parse("partner.example", DomainKind::Registered).is_ok());
        assert!(Domain::parse("localhost", DomainKind::Received).is_ok());
    }

    #[test]
    fn addresses_in_compared_form() {
        let a = Address::parse(" Alice@Partner.Example ", DomainKind::Registered).unwrap();
        assert_eq!(a.as_str(), "alice@partner.example");
        assert_eq!((a.local_part(), a.domain()), ("alice", "partner.example"));
        let utf8 = Address::parse("José@Bücher.Example", DomainKind::Received).unwrap();
        assert_eq!(utf8.as_str(), "josé@xn--bcher-kva.example");
        assert!(Address::parse("用户@例子.测试", DomainKind::Received).is_ok());
    }

    #[test]
    fn address_literals_only_as_received() {
        let literal = Address::parse("a.b+c@[127.0.0.1]", DomainKind::Received).unwrap();
        assert_eq!(literal.domain(), "[127.0.0.1]");
        assert!(Address::parse("a@[127.0.0.1]", DomainKind::Host).is_err());
        assert!(Address::parse("a@[]", DomainKind::Received).is_err());
    }

    #[test]
    fn refused_addresses() {
        for bad in [
            "alice",
            "a@",
            "@b.test",
            "a@b..test",
            "a@-b.test",
            "a b@partner.example",
            "jo sé@bücher.example",
            "a<b>@partner.example",
            "\"a@b\"@partner.example",
            "a\0@partner.example",
        ] {
            assert!(Address::parse(bad, DomainKind::Received).is_err(), "{bad}");
        }
    }

    #[test]
    fn address_length_limits_per_rfc_5321() {
        let local64 = "a".repeat(64);
        assert!(Address::parse(&format!("{local64}@b.test"), DomainKind::Host).is_ok());
        assert!(matches!(
            Address::parse(&format!("a{local64}@b.test"), DomainKind::Host),
            Err(AddressError::LocalPart(_))
        ));
        // Octets, not characters: 33 two-octet characters are 66 octets.
        assert!(
            Address::parse(&format!("{}@b.test", "é".repeat(33)), DomainKind::Received).is_err()
        );
        let domain = format!(
            "{}.{}.{}.{}.example",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(63),
            "e".repeat(50)
        );
        let address = format!("{local64}@{domain}");
        assert!(address.len() > MAX_ADDRESS_OCTETS && domain.len() <= MAX_DOMAIN_OCTETS);
        assert!(matches!(
            Address::parse(&address, DomainKind::Host),
            Err(AddressError::TooLong(_))
        ));
    }

    #[test]
    fn plain_ascii_addresses() {
        let parse = |a| Address::parse(a, DomainKind::Received).unwrap();
        assert!(parse("a.b+tag@x.example").is_plain_ascii());
        assert!(parse("a..b@x.example").is_plain_ascii());
        assert!(!parse("\"a\"@x.example").is_plain_ascii());
        assert!(!parse(".a@x.example").is_plain_ascii());
        assert!(!parse("a.@x.example").is_plain_ascii());
        assert!(!parse("a(b)@x.example").is_plain_ascii());
        assert!(!parse("josé@x.example").is_plain_ascii());
    }

    #[test]
    fn normalised_forms() {
        assert_eq!(normalise(" <Bob@Partner.Example> "), "bob@partner.example");
        assert_eq!(
            normalise("José@Bücher.Example"),
            "josé@xn--bcher-kva.example"
        );
        assert_eq!(normalise("Postmaster"), "postmaster");
        assert_eq!(normalise("A B@Not A Domain"), "a b@not a domain");
        assert_eq!(
            domain_of("bob@Partner.Example.").as_deref(),
            Some("partner.example")
        );
        assert_eq!(
            domain_of("josé@bücher.example.").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(domain_of("postmaster"), None);
        assert_eq!(domain_of("a@"), None);
    }
}
