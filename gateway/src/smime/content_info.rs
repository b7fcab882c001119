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

/// The content type of a BER or DER ContentInfo, read from its first bytes only (no
/// normalisation of a possibly large body just to learn what it is).
pub fn peek_content_type(input: &[u8]) -> Result<ObjectIdentifier> {
    let malformed = || super::error::SmimeError::Ber(ber::BerError::Truncated(0));
    // SEQUENCE, any length form.
    if input.first() != Some(&0x30) {
        return Err(super::error::SmimeError::Mime(
            "not a CMS ContentInfo".into(),
        ));
    }
    let len_byte = *input.get(1).ok_or_else(malformed)?;
    let oid_at = match len_byte {
        0x80 => 2,
        l if l < 0x80 => 2,
        l => 2 + (l & 0x7f) as usize,
    };
    if input.get(oid_at) != Some(&0x06) {
        return Err(super::error::SmimeError::Mime(
            "not a CMS ContentInfo".into(),
        ));
    }
    let oid_len = *input.get(oid_at + 1).ok_or_else(malformed)? as usize;
    let oid_bytes = input
        .get(oid_at..oid_at + 2 + oid_len)
        .ok_or_else(malformed)?;
    Ok(ObjectIdentifier::from_der(oid_bytes)?)
}

/// DER of ContentInfo { content_type, [0] EXPLICIT content }, encoding `content` once, straight
/// into the output (no intermediate `Any` copy of a large EnvelopedData).
pub fn encode<T: der::Encode>(content_type: ObjectIdentifier, content: &T) -> Result<Vec<u8>> {
    use der::Encode;
    let inner_len = usize::try_from(content.encoded_len()?)?;
    let oid_len = usize::try_from(content_type.encoded_len()?)?;
    let explicit_len = inner_len;
    let explicit_total = 1 + ber::length_of_length(explicit_len) + explicit_len;
    let seq_len = oid_len + explicit_total;
    let mut out = Vec::with_capacity(1 + ber::length_of_length(seq_len) + seq_len);
    out.push(0x30);
    ber::write_length(seq_len, &mut out);
    content_type.encode_to_vec(&mut out)?;
    out.push(0xa0);
    ber::write_length(explicit_len, &mut out);
    content.encode_to_vec(&mut out)?;
    Ok(out)
}
