//! Facts read from a certificate that the store and the engine both use, with one rule each:
//! its e-mail addresses, its subject key identifier extension, its fingerprint, the text of
//! its names.

use const_oid::db::rfc3280::EMAIL_ADDRESS;
use const_oid::db::rfc5280::{ID_CE_SUBJECT_ALT_NAME, ID_CE_SUBJECT_KEY_IDENTIFIER};
use const_oid::ObjectIdentifier;
use der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
use der::{Decode, Encode, Tag, Tagged};
use sha2::{Digest, Sha256};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{SubjectAltName, SubjectKeyIdentifier};
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::name::normalise;

/// `id-on-SmtpUTF8Mailbox` (RFC 8398): an internationalised address in a SAN otherName (not
/// in `const_oid`'s database).
pub const ID_ON_SMTP_UTF8_MAILBOX: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.8.9");

/// A distinguished name as RFC 4514 text, exactly as `x509-cert` displays it (last RDN
/// first, `CN=…,O=…`), but with attribute names from a table made once. `x509-cert` scans
/// `const_oid`'s whole database for every attribute it prints, so a name of many small
/// attributes, which any sender can put in a message, cost far more than its size.
pub fn distinguished_name(name: &Name) -> String {
    let mut out = String::new();
    for (i, rdn) in name.0.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.0.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            write_attribute(atv, &mut out);
        }
    }
    out
}

/// The shortest database name (upper-cased) of the attribute types a name may hold: the X.520
/// arc (`2.5.4.*`), e-mail address, domain component and user id. Other types print as
/// dotted OIDs.
fn attribute_names() -> &'static [(ObjectIdentifier, String)] {
    static NAMES: std::sync::OnceLock<Vec<(ObjectIdentifier, String)>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let x520 =
            (0..=100u32).filter_map(|arc| ObjectIdentifier::new(&format!("2.5.4.{arc}")).ok());
        let others = [
            EMAIL_ADDRESS,
            ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.25"),
            ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.1"),
        ];
        x520.chain(others)
            .filter_map(|oid| {
                let shortest = const_oid::db::DB.find_names_for_oid(oid).fold(
                    None::<&str>,
                    |best, name| match best {
                        Some(b) if b.len() <= name.len() => Some(b),
                        _ => Some(name),
                    },
                )?;
                Some((oid, shortest.to_ascii_uppercase()))
            })
            .collect()
    })
}

fn write_attribute(atv: &AttributeTypeAndValue, out: &mut String) {
    use std::fmt::Write;
    let value = match atv.value.tag() {
        Tag::PrintableString => PrintableStringRef::try_from(&atv.value)
            .ok()
            .map(|s| s.as_str()),
        Tag::Utf8String => Utf8StringRef::try_from(&atv.value).ok().map(|s| s.as_str()),
        Tag::Ia5String => Ia5StringRef::try_from(&atv.value).ok().map(|s| s.as_str()),
        Tag::TeletexString => TeletexStringRef::try_from(&atv.value)
            .ok()
            .map(|s| s.as_str()),
        _ => None,
    };
    let key = attribute_names()
        .iter()
        .find(|(oid, _)| *oid == atv.oid)
        .map(|(_, name)| name.as_str());
    match (key, value) {
        (Some(key), Some(value)) => {
            out.push_str(key);
            out.push('=');
            // RFC 4514 §2.4 escaping, as x509-cert does it.
            let mut chars = value.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                match c {
                    '#' if i == 0 => out.push_str("\\#"),
                    ' ' if i == 0 || chars.peek().is_none() => out.push_str("\\ "),
                    '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                        out.push('\\');
                        out.push(c);
                    }
                    '\x00'..='\x1f' | '\x7f' => {
                        let _ = write!(out, "\\{:02x}", c as u8);
                    }
                    _ => out.push(c),
                }
            }
        }
        _ => {
            let _ = write!(out, "{}=#", atv.oid);
            for b in atv.value.to_der().unwrap_or_default() {
                let _ = write!(out, "{b:02x}");
            }
        }
    }
}

/// A present extension that does not decode: never to be read as absent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("extension {oid}: {reason}")]
pub struct ExtensionError {
    pub oid: ObjectIdentifier,
    pub reason: String,
}

/// The decoded extension with `oid`, if the certificate has it.
pub fn extension<'a, T: Decode<'a>>(
    cert: &'a Certificate,
    oid: ObjectIdentifier,
) -> Result<Option<T>, ExtensionError> {
    let Some(extensions) = &cert.tbs_certificate.extensions else {
        return Ok(None);
    };
    match extensions.iter().find(|e| e.extn_id == oid) {
        Some(e) => T::from_der(e.extn_value.as_bytes())
            .map(Some)
            .map_err(|err| ExtensionError {
                oid,
                reason: err.to_string(),
            }),
        None => Ok(None),
    }
}

/// The e-mail addresses in a subjectAltName, as written: rfc822Names and SmtpUTF8Mailbox
/// otherNames (RFC 8398), in order. Other names and undecodable values are skipped.
pub fn san_email_addresses(san: &SubjectAltName) -> Vec<String> {
    san.0
        .iter()
        .filter_map(|name| match name {
            GeneralName::Rfc822Name(s) => Some(s.as_str().to_string()),
            GeneralName::OtherName(other) if other.type_id == ID_ON_SMTP_UTF8_MAILBOX => other
                .value
                .decode_as::<der::asn1::Utf8StringRef<'_>>()
                .ok()
                .map(|s| s.as_str().to_string()),
            _ => None,
        })
        .collect()
}

/// The e-mail addresses a certificate names, in their compared form ([`normalise`]): those of
/// the subjectAltName; only without any there, the subject's emailAddress attributes (legacy:
/// RFC 5280 §4.2.1.6 puts addresses in the SAN, and an emailAddress beside a SAN is not what
/// the certificate was issued for).
pub fn email_addresses(cert: &Certificate) -> Result<Vec<String>, ExtensionError> {
    let mut found = extension::<SubjectAltName>(cert, ID_CE_SUBJECT_ALT_NAME)?
        .map(|san| san_email_addresses(&san))
        .unwrap_or_default();
    if found.is_empty() {
        for rdn in cert.tbs_certificate.subject.0.iter() {
            for atv in rdn.0.iter().filter(|atv| atv.oid == EMAIL_ADDRESS) {
                let value = der::asn1::Ia5StringRef::try_from(&atv.value)
                    .map(|s| s.as_str().to_string())
                    .or_else(|_| {
                        der::asn1::Utf8StringRef::try_from(&atv.value).map(|s| s.to_string())
                    });
                if let Ok(value) = value {
                    found.push(value);
                }
            }
        }
    }
    let mut addresses: Vec<String> = Vec::with_capacity(found.len());
    for address in found.iter().map(|a| normalise(a)) {
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    Ok(addresses)
}

/// The subjectKeyIdentifier extension's value, if the certificate has one.
pub fn subject_key_identifier(cert: &Certificate) -> Result<Option<Vec<u8>>, ExtensionError> {
    Ok(
        extension::<SubjectKeyIdentifier>(cert, ID_CE_SUBJECT_KEY_IDENTIFIER)?
            .map(|ski| ski.0.as_bytes().to_vec()),
    )
}

/// The one fingerprint format: SHA-256 of the DER, lower-case hex without separators.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use der::DecodePem;

    use super::*;

    #[test]
    fn distinguished_names_read_as_x509_cert_writes_them() {
        use std::str::FromStr;
        let names = [
            "CN=Alice Example,O=Partner Corp,C=DE",
            "CN=\\#hash\\, comma\\+plus,OU=a+OU=b,DC=example,DC=org",
            "UID=jdoe,SERIALNUMBER=1234,L=Berlin,ST=Berlin,STREET=Main St 1",
            "CN=\\ spaced \\ ,O=x",
            "2.5.4.3=#0c03616263,O=hex value",
        ];
        for text in names {
            let name = Name::from_str(text).expect(text);
            assert_eq!(distinguished_name(&name), name.to_string(), "{text}");
        }
        let with_email = openssl_certificate("/emailAddress=a@b.example/CN=A/O=B", &[]);
        let subject = &with_email.tbs_certificate.subject;
        assert_eq!(distinguished_name(subject), subject.to_string());
        // A type outside the table is written as its OID, with the value in hex.
        let unknown = Name::from_str("1.3.6.1.4.1.99999.1=#0c0178").unwrap();
        assert_eq!(distinguished_name(&unknown), "1.3.6.1.4.1.99999.1=#0c0178");
    }

    /// A self-signed certificate made by openssl with `extensions` (`-addext` values).
    fn openssl_certificate(subject: &str, extensions: &[&str]) -> Certificate {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
        let mut cmd = Command::new("openssl");
        cmd.args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", subject, "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert);
        for ext in extensions {
            cmd.args(["-addext", ext]);
        }
        assert!(cmd.output().unwrap().status.success());
        Certificate::from_pem(std::fs::read(&cert).unwrap()).unwrap()
    }

    fn openssl_field(pem: &Path, args: &[&str]) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-in"])
            .arg(pem)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_san_decides_the_subject_email_only_without_one() {
        let both = openssl_certificate(
            "/CN=Alice/emailAddress=someone-else@partner.example",
            &["subjectAltName=email:Alice@Partner.Example,email:a2@partner.example"],
        );
        assert_eq!(
            email_addresses(&both).unwrap(),
            ["alice@partner.example", "a2@partner.example"]
        );
        let legacy = openssl_certificate("/CN=Bob/emailAddress=Bob@Partner.Example", &[]);
        assert_eq!(email_addresses(&legacy).unwrap(), ["bob@partner.example"]);
        let none = openssl_certificate("/CN=server.partner.example", &[]);
        assert!(email_addresses(&none).unwrap().is_empty());
        let idn = openssl_certificate("/CN=J", &["subjectAltName=email:j@xn--bcher-kva.example"]);
        assert_eq!(email_addresses(&idn).unwrap(), ["j@xn--bcher-kva.example"]);
    }

    #[test]
    fn fingerprint_and_key_identifier_as_openssl_has_them() {
        let pem = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/partner/alice.pem");
        let cert = Certificate::from_pem(std::fs::read(&pem).unwrap()).unwrap();
        let der = der::Encode::to_der(&cert).unwrap();
        let openssl = openssl_field(&pem, &["-fingerprint", "-sha256"]);
        let expected = openssl
            .trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase();
        assert_eq!(fingerprint_sha256(&der), expected);
        let ski = openssl_field(&pem, &["-ext", "subjectKeyIdentifier"]);
        let expected = ski
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .replace(':', "")
            .to_lowercase();
        assert_eq!(
            hex::encode(subject_key_identifier(&cert).unwrap().unwrap()),
            expected
        );
        let without = openssl_certificate("/CN=x", &["subjectKeyIdentifier=none"]);
        assert_eq!(subject_key_identifier(&without).unwrap(), None);
    }
}
