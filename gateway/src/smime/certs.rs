//! What the engine needs to know about certificates: identity matching and e-mail addresses.

use const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER;
use const_oid::db::rfc5912::ID_CE_SUBJECT_ALT_NAME;
use der::{Decode, Encode};
use sha1::Digest;
use x509_cert::ext::pkix::{SubjectAltName, SubjectKeyIdentifier};
use x509_cert::Certificate;

use super::error::{Result, SmimeError};

/// Parse a certificate from PEM (first block) or DER.
pub fn parse_certificate(bytes: &[u8]) -> Result<Certificate> {
    if bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| SmimeError::Certificate("PEM is not valid text".into()))?;
        let start = text
            .find("-----BEGIN CERTIFICATE-----")
            .ok_or_else(|| SmimeError::Certificate("no CERTIFICATE PEM block".into()))?;
        let (_, der) = der::pem::decode_vec(&text.as_bytes()[start..])
            .map_err(|e| SmimeError::Certificate(e.to_string()))?;
        return parse_der_certificate(&der);
    }
    parse_der_certificate(bytes)
}

/// Through the BER walker first: it bounds the SETs that `der` would sort (names, attributes).
fn parse_der_certificate(bytes: &[u8]) -> Result<Certificate> {
    let der = super::ber::normalise(bytes)?;
    Certificate::from_der(&der).map_err(|e| SmimeError::Certificate(e.to_string()))
}

/// Every certificate in a PEM bundle (or a single DER certificate).
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Certificate>> {
    if !bytes
        .windows(27)
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Ok(vec![parse_certificate(bytes)?]);
    }
    Certificate::load_pem_chain(bytes).map_err(|e| SmimeError::Certificate(e.to_string()))
}

/// The subjectKeyIdentifier extension, or the RFC 5280 method-1 value (SHA-1 of the public key)
/// that OpenSSL uses when the extension is absent.
pub fn subject_key_identifier(cert: &Certificate) -> Vec<u8> {
    if let Some(exts) = &cert.tbs_certificate.extensions {
        for ext in exts {
            if ext.extn_id == ID_CE_SUBJECT_KEY_IDENTIFIER {
                if let Ok(ski) = SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes()) {
                    return ski.0.as_bytes().to_vec();
                }
            }
        }
    }
    let key = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    sha1::Sha1::digest(key).to_vec()
}

/// The subjectAltName addresses (rfc822Name, SmtpUTF8Mailbox), then any emailAddress in the
/// subject, normalised as the mail flow compares them.
pub fn email_addresses(cert: &Certificate) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(exts) = &cert.tbs_certificate.extensions {
        for ext in exts {
            if ext.extn_id == ID_CE_SUBJECT_ALT_NAME {
                if let Ok(san) = SubjectAltName::from_der(ext.extn_value.as_bytes()) {
                    out.extend(
                        certstore::san_email_addresses(&san)
                            .iter()
                            .map(|a| crate::address::normalise(a)),
                    );
                }
            }
        }
    }
    let email_oid = const_oid::db::rfc3280::EMAIL_ADDRESS;
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == email_oid {
                let value = der::asn1::Ia5StringRef::try_from(&atv.value)
                    .map(|s| s.as_str().to_string())
                    .or_else(|_| {
                        der::asn1::Utf8StringRef::try_from(&atv.value).map(|s| s.to_string())
                    });
                if let Ok(v) = value {
                    let v = crate::address::normalise(&v);
                    if !out.contains(&v) {
                        out.push(v);
                    }
                }
            }
        }
    }
    out
}

/// DER of a certificate (re-encoded; `x509-cert` round-trips DER exactly).
pub fn to_der(cert: &Certificate) -> Result<Vec<u8>> {
    cert.to_der().map_err(SmimeError::from)
}

/// The SHA-256 fingerprint as lower-case hex.
pub fn fingerprint_sha256(cert_der: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(cert_der))
}

/// Human-readable subject (RFC 4514 string).
pub fn subject_string(cert: &Certificate) -> String {
    cert.tbs_certificate.subject.to_string()
}

/// Distinguished names compared by RFC 5280 §7.1 rules (RFC 4518 string preparation,
/// simplified): the same RDNs with the same attribute types, string values equal after case
/// folding and whitespace collapsing whatever their string type (PrintableString, UTF8String,
/// IA5String, TeletexString, BMPString); other values byte for byte.
pub fn names_match(a: &x509_cert::name::Name, b: &x509_cert::name::Name) -> bool {
    if a == b {
        return true;
    }
    a.0.len() == b.0.len()
        && a.0.iter().zip(b.0.iter()).all(|(ra, rb)| {
            ra.0.len() == rb.0.len()
                && ra.0.iter().all(|x| {
                    rb.0.iter()
                        .any(|y| x.oid == y.oid && attribute_values_match(&x.value, &y.value))
                })
        })
}

fn attribute_values_match(a: &der::Any, b: &der::Any) -> bool {
    match (prepared_string(a), prepared_string(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The RFC 4518 comparison form of a directory string: case folded, inner whitespace runs
/// collapsed to one space, leading and trailing whitespace removed.
fn prepared_string(value: &der::Any) -> Option<String> {
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
