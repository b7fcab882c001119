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

/// What the `From:` field of a message says about its author: the only shape a signature can
/// vouch for is exactly one field holding exactly one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromField {
    One(String),
    Missing,
    /// More than one `From:` field: readers disagree on which one they show.
    Repeated,
    /// One field naming several addresses (or a group).
    Several,
    /// A field from which no address can be read.
    Unreadable,
}

impl FromField {
    /// Why this `From:` cannot be matched to a signer, in words; `None` for [`FromField::One`].
    pub fn problem(&self) -> Option<&'static str> {
        match self {
            Self::One(_) => None,
            Self::Missing => Some("the message has no From field"),
            Self::Repeated => Some("the message has more than one From field"),
            Self::Several => Some("the From field names more than one address"),
            Self::Unreadable => Some("the From field holds no readable address"),
        }
    }
}

/// Read the `From:` field(s) of `message` with the same header reader the MIME layer uses.
pub fn from_field(message: &[u8]) -> FromField {
    let split = crate::mime::headers::split(message);
    let mut fields = split.headers.iter().filter(|h| h.is("From"));
    let Some(field) = fields.next() else {
        return FromField::Missing;
    };
    if fields.next().is_some() {
        return FromField::Repeated;
    }
    let Some(parsed) = MessageParser::default().parse_headers(field.raw) else {
        return FromField::Unreadable;
    };
    let Some(value) = parsed.header("From").and_then(|v| v.as_address()) else {
        return FromField::Unreadable;
    };
    let mut addresses = value.iter();
    match (addresses.next().and_then(|a| a.address()), addresses.next()) {
        (Some(a), None) if value.as_group().is_none() => FromField::One(normalise(a)),
        (Some(_), Some(_)) => FromField::Several,
        (Some(_), None) => FromField::Several,
        (None, _) => FromField::Unreadable,
    }
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

    #[test]
    fn from_field_shapes() {
        let one = from_field(b"From: \"A\" <A@P.Example>\r\n\r\nx");
        assert_eq!(one, FromField::One("a@p.example".into()));
        assert_eq!(from_field(b"Subject: x\r\n\r\nx"), FromField::Missing);
        assert_eq!(
            from_field(b"From: a@p.example\r\nfrom: b@q.example\r\n\r\nx"),
            FromField::Repeated
        );
        assert_eq!(
            from_field(b"From: a@p.example, b@q.example\r\n\r\nx"),
            FromField::Several
        );
        assert_eq!(
            from_field(b"From: team: a@p.example;\r\n\r\nx"),
            FromField::Several
        );
        assert_eq!(from_field(b"From: nobody\r\n\r\nx"), FromField::Unreadable);
    }
}
