//! The certificate a signer wants to receive encrypted mail with: the SMIMEEncryptionKeyPreference
//! signed attribute (RFC 8551 §2.5.3) and Microsoft's older equivalent. A partner whose signing
//! key cannot encrypt (Ed25519, an ECDSA-only certificate, separate signing and encryption
//! certificates) names its encryption certificate this way and carries it in the message.
//!
//! Only the message's own certificates are searched: the named certificate is never fetched.

use cms::cert::IssuerAndSerialNumber;
use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Any, Decode, Encode, Tag, TagNumber};
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

use super::certs;

/// `id-aa-encrypKeyPref` (RFC 8551 §2.5.3).
pub const OID_ATTR_ENCRYPTION_KEY_PREFERENCE: ObjectIdentifier =
    const_oid::db::rfc5911::ID_AA_ENCRYP_KEY_PREF;
/// Microsoft's `szOID_MICROSOFT_Encryption_Key_Preference`: an IssuerAndSerialNumber. Outlook
/// writes it next to the RFC attribute; older clients write only this one.
pub const OID_ATTR_MS_ENCRYPTION_KEY_PREFERENCE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.16.4");

/// What a signature's encryption-key preference named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPreference {
    /// The named certificate, found among the message's certificates (DER).
    Named {
        certificate: Vec<u8>,
        identifier: String,
    },
    /// The message does not carry the named certificate.
    NotInMessage { identifier: String },
    /// The attribute's value could not be read.
    Unreadable(String),
}

/// How the attribute names a certificate.
enum Identifier {
    IssuerAndSerial(IssuerAndSerialNumber),
    KeyId(Vec<u8>),
}

impl Identifier {
    fn matches(&self, cert: &Certificate) -> bool {
        match self {
            Identifier::IssuerAndSerial(ias) => {
                ias.serial_number == cert.tbs_certificate.serial_number
                    && certs::names_match(&ias.issuer, &cert.tbs_certificate.issuer)
            }
            Identifier::KeyId(id) => certs::subject_key_identifier(cert) == *id,
        }
    }

    fn describe(&self) -> String {
        match self {
            Identifier::IssuerAndSerial(ias) => format!(
                "issuer {}, serial {}",
                ias.issuer,
                hex::encode(ias.serial_number.as_bytes())
            ),
            Identifier::KeyId(id) => format!("key identifier {}", hex::encode(id)),
        }
    }
}

/// Whether `oid` is one of the two encryption-key preference attributes.
pub fn is_preference_attribute(oid: &ObjectIdentifier) -> bool {
    *oid == OID_ATTR_ENCRYPTION_KEY_PREFERENCE || *oid == OID_ATTR_MS_ENCRYPTION_KEY_PREFERENCE
}

/// The certificate `attr` (one of the two preference attributes) names, looked up in
/// `certificates` (the message's own).
pub fn named_certificate(attr: &Attribute, certificates: &[Certificate]) -> KeyPreference {
    let mut values = attr.values.iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return KeyPreference::Unreadable("the attribute must have exactly one value".into());
    };
    let identifier = if attr.oid == OID_ATTR_MS_ENCRYPTION_KEY_PREFERENCE {
        value
            .decode_as::<IssuerAndSerialNumber>()
            .map(Identifier::IssuerAndSerial)
            .map_err(|source| IdentifierError::Der {
                part: "issuerAndSerialNumber",
                source,
            })
    } else {
        rfc8551_identifier(value)
    };
    let identifier = match identifier {
        Ok(i) => i,
        Err(e) => return KeyPreference::Unreadable(e.to_string()),
    };
    match certificates.iter().find(|c| identifier.matches(c)) {
        Some(cert) => match cert.to_der() {
            Ok(certificate) => KeyPreference::Named {
                certificate,
                identifier: identifier.describe(),
            },
            Err(e) => KeyPreference::Unreadable(e.to_string()),
        },
        None => KeyPreference::NotInMessage {
            identifier: identifier.describe(),
        },
    }
}

/// Why the attribute's value names no certificate.
#[derive(Debug, thiserror::Error)]
enum IdentifierError {
    #[error("{part}: {source}")]
    Der {
        part: &'static str,
        source: der::Error,
    },
    #[error("unknown choice {0}")]
    UnknownChoice(Tag),
}

/// `SMIMEEncryptionKeyPreference ::= CHOICE { issuerAndSerialNumber [0], receipentKeyId [1],
/// subjectAltKeyIdentifier [2] }`, IMPLICIT (the RFC's module). A [0] holding a whole
/// IssuerAndSerialNumber SEQUENCE (EXPLICIT, as some clients write it) is read too.
fn rfc8551_identifier(value: &Any) -> Result<Identifier, IdentifierError> {
    let context = |number: u8, constructed: bool| Tag::ContextSpecific {
        constructed,
        number: TagNumber::new(number),
    };
    let unreadable = |part: &'static str| move |source| IdentifierError::Der { part, source };
    let tag = der::Tagged::tag(value);
    if tag == context(0, true) {
        let implicit = Any::new(Tag::Sequence, value.value())
            .and_then(|sequence| sequence.decode_as::<IssuerAndSerialNumber>());
        return implicit
            .or_else(|_| IssuerAndSerialNumber::from_der(value.value()))
            .map(Identifier::IssuerAndSerial)
            .map_err(unreadable("issuerAndSerialNumber"));
    }
    if tag == context(1, true) {
        // RecipientKeyIdentifier: the subject key identifier first; date and other are
        // not needed to find a certificate.
        let ski = der::SliceReader::new(value.value())
            .and_then(|mut reader| OctetString::decode(&mut reader))
            .map_err(unreadable("receipentKeyId"))?;
        return Ok(Identifier::KeyId(ski.into_bytes()));
    }
    if tag == context(2, false) {
        return Ok(Identifier::KeyId(value.value().to_vec()));
    }
    Err(IdentifierError::UnknownChoice(tag))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use der::asn1::SetOfVec;

    const CERT: &str = include_str!("../../../fixtures/partner/alice.pem");
    const OTHER: &str = include_str!("../../../fixtures/partner/bob.pem");

    fn cert(pem: &str) -> Certificate {
        certs::parse_certificate(pem.as_bytes()).unwrap()
    }

    fn attr(oid: ObjectIdentifier, value: Any) -> Attribute {
        Attribute {
            oid,
            values: SetOfVec::try_from(vec![value]).unwrap(),
        }
    }

    fn ias(c: &Certificate) -> IssuerAndSerialNumber {
        IssuerAndSerialNumber {
            issuer: c.tbs_certificate.issuer.clone(),
            serial_number: c.tbs_certificate.serial_number.clone(),
        }
    }

    fn found(p: KeyPreference) -> Vec<u8> {
        match p {
            KeyPreference::Named { certificate, .. } => certificate,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_choice_and_the_microsoft_attribute_find_the_certificate() {
        let (alice, bob) = (cert(CERT), cert(OTHER));
        let certs = [bob.clone(), alice.clone()];
        let ias_der = ias(&alice).to_der().unwrap();
        // [0] IMPLICIT: the SEQUENCE's content under the context tag.
        let implicit = Any::new(
            Tag::ContextSpecific {
                constructed: true,
                number: TagNumber::N0,
            },
            Any::from_der(&ias_der).unwrap().value(),
        )
        .unwrap();
        // [0] EXPLICIT: the whole SEQUENCE inside.
        let explicit = Any::new(
            Tag::ContextSpecific {
                constructed: true,
                number: TagNumber::N0,
            },
            ias_der.clone(),
        )
        .unwrap();
        let ski = certs::subject_key_identifier(&alice);
        let rkey_id = Any::new(
            Tag::ContextSpecific {
                constructed: true,
                number: TagNumber::N1,
            },
            OctetString::new(ski.clone()).unwrap().to_der().unwrap(),
        )
        .unwrap();
        let alt_key_id = Any::new(
            Tag::ContextSpecific {
                constructed: false,
                number: TagNumber::N2,
            },
            ski,
        )
        .unwrap();
        let wanted = alice.to_der().unwrap();
        for value in [implicit, explicit, rkey_id, alt_key_id] {
            let a = attr(OID_ATTR_ENCRYPTION_KEY_PREFERENCE, value);
            assert_eq!(found(named_certificate(&a, &certs)), wanted);
        }
        let ms = attr(
            OID_ATTR_MS_ENCRYPTION_KEY_PREFERENCE,
            Any::from_der(&ias_der).unwrap(),
        );
        assert_eq!(found(named_certificate(&ms, &certs)), wanted);
    }

    #[test]
    fn an_absent_certificate_and_garbage_are_reported() {
        let (alice, bob) = (cert(CERT), cert(OTHER));
        let ms = attr(
            OID_ATTR_MS_ENCRYPTION_KEY_PREFERENCE,
            Any::encode_from(&ias(&alice)).unwrap(),
        );
        assert!(matches!(
            named_certificate(&ms, &[bob]),
            KeyPreference::NotInMessage { .. }
        ));
        let garbage = attr(
            OID_ATTR_ENCRYPTION_KEY_PREFERENCE,
            Any::new(Tag::Integer, vec![1]).unwrap(),
        );
        assert!(matches!(
            named_certificate(&garbage, &[alice]),
            KeyPreference::Unreadable(_)
        ));
    }
}
