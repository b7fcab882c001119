//! What the engine needs to know about certificates: identity matching and e-mail addresses.

use der::asn1::AnyRef;
use der::{Decode, Encode};
use sha1::Digest;
use x509_cert::Certificate;

use super::asn1::{AttributeTypeAndValueRef, Elements};
use super::error::{Result, SmimeError};

/// Parse a certificate from PEM (the first CERTIFICATE block) or DER.
pub fn parse_certificate(bytes: &[u8]) -> Result<Certificate> {
    if smime_pki::pem::is_pem(bytes) {
        let block = certificate_blocks(bytes)?
            .into_iter()
            .next()
            .ok_or_else(|| SmimeError::Certificate("no CERTIFICATE PEM block".into()))?;
        return parse_der_certificate(&block);
    }
    parse_der_certificate(bytes)
}

/// The DER of every CERTIFICATE block of PEM text.
fn certificate_blocks(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| SmimeError::Certificate("PEM is not valid text".into()))?;
    Ok(smime_pki::pem::blocks(text)
        .map_err(|e| SmimeError::Certificate(e.to_string()))?
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der)
        .collect())
}

/// Through the BER walker first: it bounds the SETs that `der` would sort (names, attributes).
fn parse_der_certificate(bytes: &[u8]) -> Result<Certificate> {
    let der = super::ber::normalise(bytes)?;
    Certificate::from_der(&der).map_err(|e| SmimeError::Certificate(e.to_string()))
}

/// Every certificate in a PEM bundle (or a single DER certificate).
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Certificate>> {
    if !smime_pki::pem::is_pem(bytes) {
        return Ok(vec![parse_der_certificate(bytes)?]);
    }
    let blocks = certificate_blocks(bytes)?;
    if blocks.is_empty() {
        return Err(SmimeError::Certificate("no CERTIFICATE PEM block".into()));
    }
    blocks
        .iter()
        .map(|der| parse_der_certificate(der))
        .collect()
}

/// The subjectKeyIdentifier extension, or the RFC 5280 method-1 value (SHA-1 of the public key)
/// that OpenSSL uses when the extension is absent (or undecodable).
pub fn subject_key_identifier(cert: &Certificate) -> Vec<u8> {
    if let Ok(Some(ski)) = smime_pki::cert::subject_key_identifier(cert) {
        return ski;
    }
    let key = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    sha1::Sha1::digest(key).to_vec()
}

/// The certificate's e-mail addresses by the one rule of [`smime_pki::cert::email_addresses`]
/// (the subjectAltName's; the subject's emailAddress only without a SAN); none when the SAN
/// does not decode.
pub fn email_addresses(cert: &Certificate) -> Vec<String> {
    smime_pki::cert::email_addresses(cert).unwrap_or_default()
}

/// DER of a certificate (re-encoded; `x509-cert` round-trips DER exactly).
pub fn to_der(cert: &Certificate) -> Result<Vec<u8>> {
    cert.to_der().map_err(SmimeError::from)
}

pub use smime_pki::cert::fingerprint_sha256;

/// Human-readable subject (RFC 4514 string).
pub fn subject_string(cert: &Certificate) -> String {
    smime_pki::cert::distinguished_name(&cert.tbs_certificate.subject)
}

/// Distinguished names compared by RFC 5280 §7.1 rules (RFC 4518 string preparation,
/// simplified): the same RDNs with the same attribute types, string values equal after case
/// folding and whitespace collapsing whatever their string type (PrintableString, UTF8String,
/// IA5String, TeletexString, BMPString); other values byte for byte. One rule: this is
/// [`encoded_name_matches`] on `a`'s encoding.
pub fn names_match(a: &x509_cert::name::Name, b: &x509_cert::name::Name) -> bool {
    a == b
        || a.to_der().is_ok_and(|der| {
            AnyRef::from_der(&der).is_ok_and(|name| encoded_name_matches(name.value(), b))
        })
}

/// [`names_match`] for a name as received — the content octets of a Name that
/// [`super::asn1::validate_name`] accepted — against one of ours, read in place.
pub fn encoded_name_matches(theirs: &[u8], ours: &x509_cert::name::Name) -> bool {
    let Ok(mut rdns) = Elements::of(theirs) else {
        return false;
    };
    ours.0
        .iter()
        .all(|our_rdn| matches!(rdns.next(), Some(Ok(rdn)) if rdn_matches(rdn, our_rdn)))
        && rdns.next().is_none()
}

/// Whether their RDN (a SET as received) holds as many attributes as ours, each matching
/// one of ours.
fn rdn_matches(theirs: AnyRef<'_>, ours: &x509_cert::name::RelativeDistinguishedName) -> bool {
    let Ok(attributes) = Elements::of(theirs.value()) else {
        return false;
    };
    let mut count = 0;
    for attribute in attributes {
        let Ok(x) = attribute.and_then(|a| a.decode_as::<AttributeTypeAndValueRef<'_>>()) else {
            return false;
        };
        count += 1;
        if !ours
            .0
            .iter()
            .any(|y| x.oid == y.oid && attribute_values_match(x.value, (&y.value).into()))
        {
            return false;
        }
    }
    count == ours.0.len()
}

fn attribute_values_match(a: AnyRef<'_>, b: AnyRef<'_>) -> bool {
    if let (Some(x), Some(y)) = (ascii_string(a), ascii_string(b)) {
        return ascii_prepared_eq(x, y);
    }
    match (prepared_string(a), prepared_string(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The value of a directory string that is all ASCII (as nearly every name in real
/// certificates is): compared without allocating, since a message can name a thousand issuers.
fn ascii_string(value: AnyRef<'_>) -> Option<&[u8]> {
    use der::{Tag, Tagged};
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString
            if value.value().is_ascii() =>
        {
            Some(value.value())
        }
        _ => None,
    }
}

/// [`prepared_string`] equality for ASCII text: the same words (split at Unicode white space,
/// which in ASCII is TAB to CR and SPACE), compared without regard to case.
fn ascii_prepared_eq(a: &[u8], b: &[u8]) -> bool {
    fn words(text: &[u8]) -> impl Iterator<Item = &[u8]> {
        text.split(|c| matches!(c, b'\t'..=b'\r' | b' '))
            .filter(|word| !word.is_empty())
    }
    let (mut x, mut y) = (words(a), words(b));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) if p.eq_ignore_ascii_case(q) => {}
            _ => return false,
        }
    }
}

/// The RFC 4518 comparison form of a directory string: case folded, inner whitespace runs
/// collapsed to one space, leading and trailing whitespace removed.
fn prepared_string(value: AnyRef<'_>) -> Option<String> {
    use der::{Tag, Tagged};
    let text = match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
            std::str::from_utf8(value.value()).ok()?.to_string()
        }
        Tag::BmpString => {
            let units: Vec<u16> = value
                .value()
                .chunks(2)
                .map(|c| u16::from_be_bytes([*c.first().unwrap_or(&0), *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16(&units).ok()?
        }
        _ => return None,
    };
    Some(
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf8(text: &str) -> der::Any {
        der::Any::new(der::Tag::Utf8String, text.as_bytes()).unwrap()
    }

    /// The allocation-free comparison gives the same answer as comparing prepared strings,
    /// for every ASCII control, space and case combination tried.
    #[test]
    fn ascii_comparison_agrees_with_string_preparation() {
        let alphabet = [
            b'a', b'A', b'b', b' ', b'\t', b'\n', 0x0b, 0x0c, b'\r', 0x1c, 0x1f, 0x00, b'z',
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut samples: Vec<String> = ["Agency CA", " agency  ca ", "AGENCY\tCA", "", "   "]
            .into_iter()
            .map(String::from)
            .collect();
        for _ in 0..400 {
            let len = (next() % 7) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            samples.push(String::from_utf8(text).unwrap());
        }
        for a in &samples {
            for b in &samples {
                let (x, y) = (utf8(a), utf8(b));
                let expected = prepared_string((&x).into()) == prepared_string((&y).into());
                assert_eq!(
                    attribute_values_match((&x).into(), (&y).into()),
                    expected,
                    "{a:?} {b:?}"
                );
            }
        }
    }

    /// A name as received is accepted in place exactly when `x509-cert` decodes it, and
    /// matched in place exactly as the decoded name is: every single-bit flip and every
    /// truncation of names with several RDNs, multi-valued RDNs and each string type.
    #[test]
    fn names_read_in_place_as_x509_cert_reads_them() {
        use std::str::FromStr;
        use x509_cert::name::Name;
        let ours = Name::from_str("CN=Agency Proxy CA,O=Agency,C=DE").unwrap();
        let mut names: Vec<Vec<u8>> = [
            "CN=Agency Proxy CA,O=Agency,C=DE",
            "CN=agency  proxy ca,O=AGENCY,C=de",
            "CN=Agency Proxy CA+OU=Unit,O=Agency,C=DE",
            "CN=Other,O=Agency,C=DE",
            "O=Agency,C=DE",
        ]
        .iter()
        .map(|n| Name::from_str(n).unwrap().to_der().unwrap())
        .collect();
        // The same name with a PrintableString and a BMPString value, and an RDN whose SET
        // holds one attribute twice (which `der` refuses).
        let printable = ours.to_der().unwrap();
        let mut retagged = printable.clone();
        if let Some(p) = retagged.iter().position(|b| *b == 0x0c) {
            retagged[p] = 0x13;
        }
        names.push(retagged);
        let bmp = [
            0x30, 0x0f, 0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x03, 0x1e, 0x04, 0x00,
            0x41, 0x00, 0x42,
        ];
        names.push(bmp.to_vec());
        let atv = [0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x01, 0x41];
        let mut duplicate = vec![0x30, 0x16, 0x31, 0x14];
        duplicate.extend_from_slice(&atv);
        duplicate.extend_from_slice(&atv);
        names.push(duplicate);

        let mut variants = Vec::new();
        for name in &names {
            variants.push(name.clone());
            for bit in 0..name.len() * 8 {
                let mut flipped = name.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                variants.push(flipped);
            }
            for len in 0..name.len() {
                variants.push(name[..len].to_vec());
            }
        }
        // The structure-walking comparison `names_match` was before it used the encoded one:
        // an independent reading of the same rule.
        fn reference(a: &Name, b: &Name) -> bool {
            a == b
                || a.0.len() == b.0.len()
                    && a.0.iter().zip(b.0.iter()).all(|(ra, rb)| {
                        ra.0.len() == rb.0.len()
                            && ra.0.iter().all(|x| {
                                rb.0.iter().any(|y| {
                                    x.oid == y.oid
                                        && attribute_values_match(
                                            (&x.value).into(),
                                            (&y.value).into(),
                                        )
                                })
                            })
                    })
        }
        let (mut accepted, mut matched) = (0, 0);
        for der in &variants {
            let Ok(any) = AnyRef::from_der(der) else {
                continue;
            };
            let decoded = any.decode_as::<Name>();
            let in_place = super::super::asn1::validate_name(any);
            assert_eq!(in_place.is_ok(), decoded.is_ok(), "{}", hex::encode(der));
            if let Ok(decoded) = decoded {
                accepted += 1;
                let expected = reference(&decoded, &ours);
                assert_eq!(
                    encoded_name_matches(any.value(), &ours),
                    expected,
                    "{}",
                    hex::encode(der)
                );
                assert_eq!(names_match(&decoded, &ours), expected);
                matched += usize::from(expected);
            }
        }
        // The comparison saw both answers on names both readers accept.
        assert!(accepted > 100 && matched > 2, "{accepted} {matched}");
    }
}
