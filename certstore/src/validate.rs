//! Partner-certificate validation: the S/MIME profile, then RFC 5280 path validation.
//!
//! Checks run in this order and the first failure is the reason reported, so that the
//! reason is the most fundamental one:
//!
//! 1. `Malformed`: the certificate does not parse.
//! 2. `UnsupportedKey` / `WeakKey`: RSA of at least 2048 bits, EC on P-256/P-384/P-521, or
//!    Ed25519 (signatures only: it cannot receive a key); the key-type policy is
//!    `crypto_provider::keys::public_key_alg`.
//! 3. `SelfSigned`: issuer name equals subject name. Checked before trust, so a self-signed
//!    partner certificate is refused even if it is also configured as an anchor.
//! 4. `NotYetValid` / `Expired`: the certificate's own validity window at `now`.
//! 5. `WeakSignatureAlgorithm`: MD2/MD5/unknown algorithms are always refused. SHA-1 is
//!    accepted only on certificates that have not expired; since step 4 already refused
//!    expired ones, an expired SHA-1 certificate is reported as `Expired`.
//! 6. `LeafIsCa`: a CA certificate is not an e-mail certificate.
//! 7. `UsageNotEmailProtection`: extendedKeyUsage must allow e-mail protection, keyUsage the
//!    purpose asked for ([`KeyPurpose`]).
//! 8. `NoEmailAddress` / `AddressMismatch`: only when an address is given.
//! 9. The path ([`crate::path`], RFC 5280 by OpenSSL): `Untrusted`, `BadSignature`,
//!    `IssuerNotCa`, `IssuerNotValid`, `PathLengthExceeded`, `ChainTooLong`,
//!    `NameConstraintViolation`, `PolicyNotAcceptable`, `UnknownCriticalExtension`,
//!    `Revoked`, `RevocationUnknown` (hard-fail), `TooManyCertificates`, `PathInvalid`.
//! 10. `WeakSignatureAlgorithm` on the issuers in the path found (anchors excluded: their
//!     self-signature is not relied on).

use std::time::SystemTime;

use serde::Serialize;

use crypto_provider::{PublicKeyAlg, PublicKeyError};

use crate::certinfo::{
    classify_signature, public_key_alg, rsa_bits, rsa_public_key, KeyProblem, ParsedCert, SigAlg,
};
use crate::codec;
use crate::domains::normalise_address;
use crate::error::ValidationError;
use crate::trust::TrustStore;

/// Longest chain accepted, leaf and anchor included.
pub const MAX_CHAIN: usize = 8;

/// Minimum RSA modulus size for partner certificates.
pub const MIN_RSA_BITS: usize = 2048;

/// A certificate that passed every check.
#[derive(Debug, Clone, Serialize)]
pub struct ValidatedCertificate {
    pub fingerprint_sha256: String,
    pub subject: String,
    pub issuer: String,
    pub serial_hex: String,
    #[serde(with = "codec::rfc3339")]
    pub not_before: SystemTime,
    #[serde(with = "codec::rfc3339")]
    pub not_after: SystemTime,
    pub key_bits: usize,
    pub signature_algorithm: String,
    pub email_addresses: Vec<String>,
    /// The path found: the certificate first, the trust anchor last (DER).
    #[serde(skip)]
    pub chain_der: Vec<Vec<u8>>,
    /// Certificates in the path whose revocation status could not be established
    /// (soft-fail), each with the reason; empty when every status was found.
    pub revocation_unknown: Vec<String>,
}

/// What the certificate is to be used for; keyUsage must allow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPurpose {
    /// Verifying the partner's signatures: digitalSignature or nonRepudiation.
    Sign,
    /// Encrypting to the partner: keyEncipherment or keyAgreement.
    Encrypt,
    /// Either (capture, before the certificate's use is known).
    Any,
}

fn malformed(e: impl std::fmt::Display) -> ValidationError {
    ValidationError::Malformed(e.to_string())
}

/// Signature-algorithm policy for one certificate (see step 5).
fn check_sig_alg(c: &ParsedCert, now: SystemTime) -> Result<SigAlg, ValidationError> {
    let alg = classify_signature(c.signature_algorithm());
    match &alg {
        SigAlg::Refused(name) => Err(ValidationError::WeakSignatureAlgorithm {
            algorithm: name.clone(),
        }),
        a if a.is_sha1() && now > c.not_after() => Err(ValidationError::WeakSignatureAlgorithm {
            algorithm: a.name(),
        }),
        _ => Ok(alg),
    }
}

pub(crate) fn validate(
    trust: &TrustStore,
    cert_der: &[u8],
    intermediates: &[Vec<u8>],
    address: Option<&str>,
    purpose: KeyPurpose,
    now: SystemTime,
) -> Result<ValidatedCertificate, ValidationError> {
    let leaf = ParsedCert::parse(cert_der).map_err(malformed)?;
    let key_alg = public_key_alg(leaf.spki()).map_err(|e| match e {
        PublicKeyError::BadKey(e) => malformed(format!("public key: {e}")),
        _ => ValidationError::UnsupportedKey,
    })?;
    let key_bits = match key_alg {
        PublicKeyAlg::Rsa { .. } => {
            let key = rsa_public_key(leaf.spki()).map_err(|p| match p {
                KeyProblem::NotRsa => ValidationError::UnsupportedKey,
                KeyProblem::Malformed(e) => malformed(format!("public key: {e}")),
            })?;
            let bits = rsa_bits(&key);
            if bits < MIN_RSA_BITS {
                return Err(ValidationError::WeakKey { bits });
            }
            bits
        }
        PublicKeyAlg::Ed25519 if purpose == KeyPurpose::Encrypt => {
            return Err(ValidationError::UnsupportedKey)
        }
        PublicKeyAlg::X25519 if purpose == KeyPurpose::Sign => {
            return Err(ValidationError::UnsupportedKey)
        }
        other => other.bits(),
    };
    if leaf.subject_der == leaf.issuer_der {
        return Err(ValidationError::SelfSigned);
    }
    if now < leaf.not_before() {
        return Err(ValidationError::NotYetValid);
    }
    if now > leaf.not_after() {
        return Err(ValidationError::Expired);
    }
    let alg = check_sig_alg(&leaf, now)?;
    if leaf
        .basic_constraints()
        .map_err(malformed)?
        .is_some_and(|bc| bc.ca)
    {
        return Err(ValidationError::LeafIsCa);
    }
    if !leaf.permits_email_protection(purpose).map_err(malformed)? {
        return Err(ValidationError::UsageNotEmailProtection);
    }
    // An EC or X25519 key receives a content key by agreement (RFC 5753): keyEncipherment
    // alone does not allow that.
    if purpose == KeyPurpose::Encrypt
        && matches!(key_alg, PublicKeyAlg::Ec { .. } | PublicKeyAlg::X25519)
        && leaf
            .key_usage()
            .map_err(malformed)?
            .is_some_and(|ku| !ku.0.contains(x509_cert::ext::pkix::KeyUsages::KeyAgreement))
    {
        return Err(ValidationError::UsageNotEmailProtection);
    }
    let emails = leaf.email_addresses().map_err(malformed)?;
    if let Some(expected) = address {
        let wanted = normalise_address(expected).unwrap_or_else(|_| expected.to_lowercase());
        if emails.is_empty() {
            return Err(ValidationError::NoEmailAddress);
        }
        if !emails.contains(&wanted) {
            return Err(ValidationError::AddressMismatch {
                expected: wanted,
                found: emails.join(", "),
            });
        }
    }

    let path = trust.validate_path(cert_der, intermediates, now)?;
    // The issuers' signature algorithms; the anchor (last) is trusted as configured.
    let issuers = path.chain_der.len().saturating_sub(1);
    for der in path.chain_der.iter().take(issuers).skip(1) {
        let issuer = ParsedCert::parse(der).map_err(malformed)?;
        check_sig_alg(&issuer, now)?;
    }

    Ok(ValidatedCertificate {
        fingerprint_sha256: leaf.fingerprint.clone(),
        subject: leaf.subject(),
        issuer: leaf.issuer(),
        serial_hex: leaf.serial_hex(),
        not_before: leaf.not_before(),
        not_after: leaf.not_after(),
        key_bits,
        signature_algorithm: alg.name(),
        email_addresses: emails,
        chain_der: path.chain_der,
        revocation_unknown: path.revocation_unknown,
    })
}
