//! The outer CMS ContentInfo, read without copying its (possibly large) content.

use std::borrow::Cow;

use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, Sequence};

use super::ber;
use super::error::Result;

/// ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }, borrowed.
#[derive(Sequence)]
pub struct ContentInfoRef<'a> {
    pub content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub content: AnyRef<'a>,
}

/// Normalise inbound BER to DER (borrowed when it already is DER).
pub fn to_der(input: &[u8]) -> Result<Cow<'_, [u8]>> {
    Ok(ber::normalise(input)?)
}

/// Decode the outer ContentInfo of DER bytes.
pub fn decode(der: &[u8]) -> Result<ContentInfoRef<'_>> {
    Ok(ContentInfoRef::from_der(der)?)
}
