//! E-mail addresses as the mail flow compares them.

use mail_parser::MessageParser;
use smime_pki::header::header_block;
pub use smime_pki::name::{domain_of, normalise};

/// The first address of a header (From, Sender, Reply-To...) of `message`.
pub fn header_address(message: &[u8], header: &str) -> Option<String> {
    // Parse only the header block: the body may be megabytes.
    let parsed = MessageParser::default().parse_headers(header_block(message))?;
    let value = parsed.header(header)?.as_address()?;
    value.first()?.address().map(normalise)
}

/// Why a header does not name exactly one address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoleAddressError {
    #[error("it has no {0}: header")]
    Missing(String),
    #[error("it has {count} {name}: headers")]
    Repeated { name: String, count: usize },
    #[error("its {name}: header names {count} addresses")]
    Several { name: String, count: usize },
    #[error("its {0}: header holds no readable address")]
    Unreadable(String),
}

/// The address of `header` when the message has exactly one such field naming exactly one
/// address (the signing identity must be unambiguous: two `From:` fields or a list are not).
pub fn sole_address(message: &[u8], header: &str) -> Result<String, SoleAddressError> {
    let split = crate::mime::headers::split(message);
    let mut fields = split.headers.iter().filter(|f| f.is(header));
    let field = fields
        .next()
        .ok_or_else(|| SoleAddressError::Missing(header.to_string()))?;
    let more = fields.count();
    if more > 0 {
        return Err(SoleAddressError::Repeated {
            name: header.to_string(),
            count: more + 1,
        });
    }
    let mut block = field.raw.to_vec();
    if !block.ends_with(b"\n") {
        block.extend_from_slice(b"\r\n");
    }
    block.extend_from_slice(b"\r\n");
    let unreadable = || SoleAddressError::Unreadable(header.to_string());
    let parsed = MessageParser::default()
        .parse_headers(&block[..])
        .ok_or_else(unreadable)?;
    let value = parsed
        .header(header)
        .and_then(|v| v.as_address())
        .ok_or_else(unreadable)?;
    let addresses: Vec<_> = value.iter().collect();
    match addresses.as_slice() {
        [one] => one
            .address()
            .map(normalise)
            .filter(|a| a.contains('@'))
            .ok_or_else(unreadable),
        _ => Err(SoleAddressError::Several {
            name: header.to_string(),
            count: addresses.len(),
        }),
    }
}

/// The Message-ID of `message`, without angle brackets.
pub fn message_id(message: &[u8]) -> Option<String> {
    let parsed = MessageParser::default().parse_headers(header_block(message))?;
    parsed.message_id().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_domains() {
        assert_eq!(normalise(" <Bob@Partner.Example> "), "bob@partner.example");
        assert_eq!(
            domain_of("bob@Partner.Example.").as_deref(),
            Some("partner.example")
        );
        assert_eq!(domain_of("postmaster"), None);
        assert_eq!(
            normalise("José@Bücher.Example"),
            "josé@xn--bcher-kva.example"
        );
        assert_eq!(
            domain_of("josé@bücher.example.").as_deref(),
            Some("xn--bcher-kva.example")
        );
        let msg = b"From: \"Alice\" <Alice@Partner.Example>\r\nMessage-ID: <x@y>\r\n\r\nbody";
        assert_eq!(
            header_address(msg, "From").as_deref(),
            Some("alice@partner.example")
        );
        assert_eq!(message_id(msg).as_deref(), Some("x@y"));
    }

    #[test]
    fn sole_address_refuses_ambiguity() {
        let one = b"Subject: s\r\nFrom: \"Boss\" <Boss@Agency.Example>\r\n\r\nFrom: body@x\r\n";
        assert_eq!(
            sole_address(one, "From").as_deref(),
            Ok("boss@agency.example")
        );
        let folded = b"From:\r\n  boss@agency.example\r\n\r\nbody";
        assert_eq!(
            sole_address(folded, "from").as_deref(),
            Ok("boss@agency.example")
        );
        let two = b"From: a@agency.example\r\nfrom: b@agency.example\r\n\r\n";
        assert!(matches!(
            sole_address(two, "From"),
            Err(SoleAddressError::Repeated { count: 2, .. })
        ));
        let list = b"From: a@agency.example, b@agency.example\r\n\r\n";
        assert!(matches!(
            sole_address(list, "From"),
            Err(SoleAddressError::Several { count: 2, .. })
        ));
        let group = b"From: team: a@agency.example, b@agency.example;\r\n\r\n";
        assert!(sole_address(group, "From").is_err());
        assert!(matches!(
            sole_address(b"Subject: x\r\n\r\n", "From"),
            Err(SoleAddressError::Missing(_))
        ));
        assert!(sole_address(b"From: nobody\r\n\r\n", "From").is_err());
    }
}
