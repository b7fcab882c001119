//! Reading certificates: PEM blocks, fingerprints, names, keys, extensions, signature checks.

use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;

use smime_pki::cert::{fingerprint_sha256, ExtensionError};
use smime_pki::pem::PemError;

pub(crate) const RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const RSASSA_PSS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const MD2_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.2");
const MD5_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.4");
const SHA1_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const SHA224_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.14");
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
pub(crate) const EKU_EMAIL_PROTECTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.4");
const EKU_ANY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");
const OID_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const OID_EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");

/// Largest RSA modulus accepted: the provider's, so a stored certificate is one the engine
/// can use (bigger keys only cost CPU, a denial-of-service lever).
pub(crate) use crypto_provider::MAX_RSA_BITS;

/// Why a certificate (or the PEM text around it) could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CertError {
    #[error("not a DER certificate: {0}")]
    Der(#[from] der::Error),
    #[error(transparent)]
    Extension(#[from] ExtensionError),
    #[error(transparent)]
    Pem(#[from] PemError),
}

/// The store's PEM reader is the one every crate uses.
pub(crate) fn pem_blocks(text: &str) -> Result<Vec<smime_pki::pem::PemBlock>, PemError> {
    smime_pki::pem::blocks(text)
}

/// A parsed certificate with the pieces validation needs kept at hand.
#[derive(Clone)]
pub(crate) struct ParsedCert {
    pub der: Vec<u8>,
    pub cert: Certificate,
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
    pub fingerprint: String,
}

impl ParsedCert {
    pub fn parse(der: &[u8]) -> Result<ParsedCert, CertError> {
        let cert = Certificate::from_der(der)?;
        let subject_der = cert.tbs_certificate.subject.to_der()?;
        let issuer_der = cert.tbs_certificate.issuer.to_der()?;
        Ok(ParsedCert {
            der: der.to_vec(),
            fingerprint: fingerprint_sha256(der),
            cert,
            subject_der,
            issuer_der,
        })
    }

    pub fn subject(&self) -> String {
        smime_pki::cert::distinguished_name(&self.cert.tbs_certificate.subject)
    }

    pub fn issuer(&self) -> String {
        smime_pki::cert::distinguished_name(&self.cert.tbs_certificate.issuer)
    }

    pub fn serial_bytes(&self) -> &[u8] {
        self.cert.tbs_certificate.serial_number.as_bytes()
    }

    pub fn serial_hex(&self) -> String {
        hex::encode(self.serial_bytes())
    }

    pub fn not_before(&self) -> SystemTime {
        self.cert
            .tbs_certificate
            .validity
            .not_before
            .to_system_time()
    }

    pub fn not_after(&self) -> SystemTime {
        self.cert
            .tbs_certificate
            .validity
            .not_after
            .to_system_time()
    }

    pub fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        &self.cert.tbs_certificate.subject_public_key_info
    }

    /// The decoded extension with `oid`, if present. A present but undecodable extension is
    /// an error: it must not be silently treated as absent.
    pub fn extension<'a, T: Decode<'a>>(
        &'a self,
        oid: ObjectIdentifier,
    ) -> Result<Option<T>, ExtensionError> {
        smime_pki::cert::extension(&self.cert, oid)
    }

    pub fn basic_constraints(&self) -> Result<Option<BasicConstraints>, ExtensionError> {
        self.extension(OID_BASIC_CONSTRAINTS)
    }

    pub fn key_usage(&self) -> Result<Option<KeyUsage>, ExtensionError> {
        self.extension(OID_KEY_USAGE)
    }

    pub fn extended_key_usage(&self) -> Result<Option<ExtendedKeyUsage>, ExtensionError> {
        self.extension(OID_EKU)
    }

    pub fn subject_key_identifier(&self) -> Result<Option<Vec<u8>>, ExtensionError> {
        smime_pki::cert::subject_key_identifier(&self.cert)
    }

    /// Whether keyUsage/extendedKeyUsage allow S/MIME for `purpose`. Absent extensions mean
    /// "any use".
    pub fn permits_email_protection(
        &self,
        purpose: crate::validate::KeyPurpose,
    ) -> Result<bool, ExtensionError> {
        use crate::validate::KeyPurpose;
        if let Some(ku) = self.key_usage()? {
            let signing = KeyUsages::DigitalSignature | KeyUsages::NonRepudiation;
            let encryption = KeyUsages::KeyEncipherment | KeyUsages::KeyAgreement;
            let allowed = match purpose {
                KeyPurpose::Sign => signing,
                KeyPurpose::Encrypt => encryption,
                KeyPurpose::Any => signing | encryption,
            };
            if (ku.0 & allowed).is_empty() {
                return Ok(false);
            }
        }
        if let Some(eku) = self.extended_key_usage()? {
            if !eku
                .0
                .iter()
                .any(|o| *o == EKU_EMAIL_PROTECTION || *o == EKU_ANY)
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the certificate may issue certificates. Version 1 certificates have no
    /// extensions at all; they are accepted only where `allow_v1` (legacy trust anchors).
    pub fn is_ca(&self, allow_v1: bool) -> Result<bool, ExtensionError> {
        if self.cert.tbs_certificate.extensions.is_none() {
            return Ok(allow_v1);
        }
        if !self.basic_constraints()?.is_some_and(|bc| bc.ca) {
            return Ok(false);
        }
        if let Some(ku) = self.key_usage()? {
            if !ku.0.contains(KeyUsages::KeyCertSign) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// E-mail addresses named by the certificate, by the one rule of
    /// [`smime_pki::cert::email_addresses`].
    pub fn email_addresses(&self) -> Result<Vec<String>, ExtensionError> {
        smime_pki::cert::email_addresses(&self.cert)
    }

    pub fn signature_algorithm(&self) -> &AlgorithmIdentifierOwned {
        &self.cert.signature_algorithm
    }
}

/// Why a public key cannot be used.
#[derive(Debug)]
pub(crate) enum KeyProblem {
    NotRsa,
    Malformed(String),
}

/// The RSA public key of a SubjectPublicKeyInfo (rsaEncryption or RSASSA-PSS keys).
pub(crate) fn rsa_public_key(spki: &SubjectPublicKeyInfoOwned) -> Result<RsaPublicKey, KeyProblem> {
    let oid = spki.algorithm.oid;
    if oid != RSA_ENCRYPTION && oid != RSASSA_PSS {
        return Err(KeyProblem::NotRsa);
    }
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| KeyProblem::Malformed("key has unused bits".into()))?;
    let key =
        pkcs1::RsaPublicKey::from_der(bits).map_err(|e| KeyProblem::Malformed(e.to_string()))?;
    let n = BigUint::from_bytes_be(key.modulus.as_bytes());
    let e = BigUint::from_bytes_be(key.public_exponent.as_bytes());
    RsaPublicKey::new_with_max_size(n, e, MAX_RSA_BITS)
        .map_err(|e| KeyProblem::Malformed(e.to_string()))
}

pub(crate) fn rsa_bits(key: &RsaPublicKey) -> usize {
    key.n().bits()
}

/// The key type and size of a SubjectPublicKeyInfo under the one key policy
/// (`crypto_provider::keys::public_key_alg`).
pub(crate) fn public_key_alg(
    spki: &SubjectPublicKeyInfoOwned,
) -> Result<crypto_provider::PublicKeyAlg, crypto_provider::PublicKeyError> {
    let der = spki
        .to_der()
        .map_err(|e| crypto_provider::PublicKeyError::BadKey(e.to_string()))?;
    crypto_provider::keys::public_key_alg(&der)
}

/// Digest families a signature can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

/// What a signature algorithm is, as far as policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SigAlg {
    Pkcs1(HashAlg),
    Ecdsa(HashAlg),
    Ed25519,
    Pss {
        hash: HashAlg,
        salt_len: usize,
    },
    /// Broken (MD2/MD5) or unknown/unsupported: never accepted.
    Refused(String),
}

impl SigAlg {
    pub fn name(&self) -> String {
        match self {
            SigAlg::Pkcs1(HashAlg::Sha1) => "sha1WithRSAEncryption".into(),
            SigAlg::Pkcs1(HashAlg::Sha256) => "sha256WithRSAEncryption".into(),
            SigAlg::Pkcs1(HashAlg::Sha384) => "sha384WithRSAEncryption".into(),
            SigAlg::Pkcs1(HashAlg::Sha512) => "sha512WithRSAEncryption".into(),
            SigAlg::Pss { hash, .. } => format!("RSASSA-PSS with {hash:?}").to_uppercase(),
            SigAlg::Ecdsa(hash) => format!("ecdsa-with-{hash:?}").replace("Sha", "SHA"),
            SigAlg::Ed25519 => "Ed25519".into(),
            SigAlg::Refused(name) => name.clone(),
        }
    }

    pub fn is_sha1(&self) -> bool {
        matches!(
            self,
            SigAlg::Pkcs1(HashAlg::Sha1)
                | SigAlg::Ecdsa(HashAlg::Sha1)
                | SigAlg::Pss {
                    hash: HashAlg::Sha1,
                    ..
                }
        )
    }
}

fn hash_from_oid(oid: ObjectIdentifier) -> Option<HashAlg> {
    match oid {
        o if o == ID_SHA1 => Some(HashAlg::Sha1),
        o if o == ID_SHA256 => Some(HashAlg::Sha256),
        o if o == ID_SHA384 => Some(HashAlg::Sha384),
        o if o == ID_SHA512 => Some(HashAlg::Sha512),
        _ => None,
    }
}

pub(crate) fn classify_signature(alg: &AlgorithmIdentifierOwned) -> SigAlg {
    match alg.oid {
        o if o == SHA1_RSA => SigAlg::Pkcs1(HashAlg::Sha1),
        o if o == SHA256_RSA => SigAlg::Pkcs1(HashAlg::Sha256),
        o if o == SHA384_RSA => SigAlg::Pkcs1(HashAlg::Sha384),
        o if o == SHA512_RSA => SigAlg::Pkcs1(HashAlg::Sha512),
        o if o == MD5_RSA => SigAlg::Refused("md5WithRSAEncryption".into()),
        o if o == MD2_RSA => SigAlg::Refused("md2WithRSAEncryption".into()),
        o if o == SHA224_RSA => SigAlg::Refused("sha224WithRSAEncryption (unsupported)".into()),
        o if o == RSASSA_PSS => classify_pss(alg),
        o if o == crypto_provider::PublicKeyAlg::ED25519_OID => SigAlg::Ed25519,
        o => match crypto_provider::SignatureAlg::ecdsa_digest_from_oid(&o) {
            Some(crypto_provider::DigestAlg::Sha1) => SigAlg::Ecdsa(HashAlg::Sha1),
            Some(crypto_provider::DigestAlg::Sha256) => SigAlg::Ecdsa(HashAlg::Sha256),
            Some(crypto_provider::DigestAlg::Sha384) => SigAlg::Ecdsa(HashAlg::Sha384),
            Some(crypto_provider::DigestAlg::Sha512) => SigAlg::Ecdsa(HashAlg::Sha512),
            _ => SigAlg::Refused(format!("unsupported algorithm {o}")),
        },
    }
}

fn classify_pss(alg: &AlgorithmIdentifierOwned) -> SigAlg {
    let refused = |why: &str| SigAlg::Refused(format!("RSASSA-PSS ({why})"));
    let Some(params) = &alg.parameters else {
        return refused("missing parameters");
    };
    let Ok(bytes) = params.to_der() else {
        return refused("bad parameters");
    };
    let Ok(p) = pkcs1::RsaPssParams::from_der(&bytes) else {
        return refused("bad parameters");
    };
    let Some(hash) = hash_from_oid(p.hash.oid) else {
        return refused("unsupported hash");
    };
    // rsa's Pss uses one digest for the message and MGF1: refuse anything else.
    let mgf_hash = p
        .mask_gen
        .parameters
        .as_ref()
        .map(|h| h.oid)
        .and_then(hash_from_oid);
    if p.mask_gen.oid != ID_MGF1 || mgf_hash != Some(hash) {
        return refused("unsupported mask generation");
    }
    SigAlg::Pss {
        hash,
        salt_len: usize::from(p.salt_len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate whose SAN holds an SmtpUTF8Mailbox, made by OpenSSL (`None` without it).
    /// The value goes through a config file: on the command line OpenSSL reads it as Latin-1.
    fn openssl_cert_with_utf8_mailbox() -> Option<Vec<u8>> {
        let dir = tempfile::tempdir().ok()?;
        std::fs::write(
            dir.path().join("san.cnf"),
            "[req]\ndistinguished_name = dn\n[dn]\n[ext]\nsubjectAltName = @alt\n[alt]\n\
             otherName.1 = 1.3.6.1.5.5.7.8.9;FORMAT:UTF8,UTF8:José@Bücher.example\n\
             otherName.2 = 1.2.3.4;UTF8:not-mail\nemail.1 = other@example.com\n",
        )
        .ok()?;
        let ok = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args([
                "req",
                "-x509",
                "-config",
                "san.cnf",
                "-extensions",
                "ext",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=Jose",
                "-keyout",
                "k.pem",
                "-outform",
                "DER",
                "-out",
                "c.der",
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?
            .success();
        ok.then(|| std::fs::read(dir.path().join("c.der")).ok())?
    }

    #[test]
    fn smtp_utf8_mailbox_is_an_email_address() {
        let Some(der) = openssl_cert_with_utf8_mailbox() else {
            eprintln!("openssl not available; skipped");
            return;
        };
        let cert = ParsedCert::parse(&der).unwrap();
        assert_eq!(
            cert.email_addresses().unwrap(),
            ["josé@xn--bcher-kva.example", "other@example.com"]
        );
    }
}
