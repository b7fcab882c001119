//! E-mail addresses as the mail flow compares them.

use mail_parser::MessageParser;

/// Lower-cased address without angle brackets or surrounding space.
pub fn normalise(address: &str) -> String {
    address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_ascii_lowercase()
}

/// The domain part (after the last `@`), lower-cased, without a trailing dot.
pub fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('>').trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// The first address of a header (From, Sender, Reply-To...) of `message`.
pub fn header_address(message: &[u8], header: &str) -> Option<String> {
    let header_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(message.len());
    // Parse only the header block: the body may be megabytes.
    let parsed = MessageParser::default().parse_headers(&message[..header_end])?;
    let value = parsed.header(header)?.as_address()?;
    value.first()?.address().map(normalise)
}

/// The Message-ID of `message`, without angle brackets.
pub fn message_id(message: &[u8]) -> Option<String> {
    let header_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(message.len());
    let parsed = MessageParser::default().parse_headers(&message[..header_end])?;
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
        let msg = b"From: \"Alice\" <Alice@Partner.Example>\r\nMessage-ID: <x@y>\r\n\r\nbody";
        assert_eq!(
            header_address(msg, "From").as_deref(),
            Some("alice@partner.example")
        );
        assert_eq!(message_id(msg).as_deref(), Some("x@y"));
    }
}
