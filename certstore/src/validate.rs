//! Partner-certificate validation: policy checks, chain building, signatures, revocation.
//!
//! Checks run in this order and the first failure is the reason reported, so that the
//! reason is the most fundamental one:
//!
//! 1. `Malformed`: the certificate does not parse.
//! 2. `UnsupportedKey` / `WeakKey`: RSA only, at least 2048 bits.
//! 3. `SelfSigned`: issuer name equals subject name. Checked before trust, so a self-signed
//!    partner certificate is refused even if it is also configured as an anchor.
//! 4. `NotYetValid` / `Expired`: the certificate's own validity window at `now`.
//! 5. `WeakSignatureAlgorithm`: MD2/MD5/unknown algorithms are always refused. SHA-1 is
//!    accepted only on certificates that have not expired; since step 4 already refused
//!    expired ones, an expired SHA-1 certificate is reported as `Expired`.
//! 6. `UsageNotEmailProtection`: keyUsage/extendedKeyUsage must allow e-mail protection.
//! 7. `NoEmailAddress` / `AddressMismatch`: only when an address is given.
//! 8. Chain: issuers are looked for among trust anchors and the message's certificates, by
//!    subject name; each signature is verified with the issuer's key. `Untrusted` (no path to
//!    an anchor), `BadSignature`, `IssuerNotCa`, `IssuerNotValid` (expired/not yet valid
//!    issuer, anchors included), `WeakSignatureAlgorithm` (in the chain), `PathLengthExceeded`,
//!    `ChainTooLong` (more than [`MAX_CHAIN`] certificates).
//! 9. `Revoked`: configured CRLs (see [`crate::trust`]; distribution points are not fetched).

use std::collections::HashSet;
use std::time::SystemTime;

use serde::Serialize;

use crate::certinfo::{
    classify_signature, rsa_bits, rsa_public_key, verify_signature, KeyProblem, ParsedCert, SigAlg,
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
}

fn malformed(e: impl std::fmt::Display) -> ValidationError {
    ValidationError::Malformed(e.to_string())
}

fn in_window(c: &ParsedCert, now: SystemTime) -> bool {
    c.not_before() <= now && now <= c.not_after()
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
    now: SystemTime,
) -> Result<ValidatedCertificate, ValidationError> {
    let leaf = ParsedCert::parse(cert_der).map_err(malformed)?;
    let key = rsa_public_key(leaf.spki()).map_err(|p| match p {
        KeyProblem::NotRsa => ValidationError::UnsupportedKey,
        KeyProblem::Malformed(e) => malformed(format!("public key: {e}")),
    })?;
    let key_bits = rsa_bits(&key);
    if key_bits < MIN_RSA_BITS {
        return Err(ValidationError::WeakKey { bits: key_bits });
    }
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
    if !leaf.permits_email_protection().map_err(malformed)? {
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

    // Certificates from the message that do not parse are ignored: they may be unrelated.
    let pool: Vec<ParsedCert> = intermediates
        .iter()
        .filter_map(|d| ParsedCert::parse(d).ok())
        .collect();
    let mut visited = HashSet::new();
    visited.insert(leaf.fingerprint.clone());
    let path = find_path(trust, &pool, &leaf, 0, now, &mut visited)?;

    let mut chain: Vec<&ParsedCert> = Vec::with_capacity(path.len() + 1);
    chain.push(&leaf);
    chain.extend(path.iter());
    check_revocation(trust, &chain)?;

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
        chain_der: chain.iter().map(|c| c.der.clone()).collect(),
    })
}

/// Whether `child`'s signature verifies with `issuer`'s key.
fn signed_by(
    trust: &TrustStore,
    child: &ParsedCert,
    issuer: &ParsedCert,
    now: SystemTime,
) -> Result<(), ValidationError> {
    let alg = check_sig_alg(child, now)?;
    if trust.signature_known_good(&child.fingerprint, &issuer.fingerprint) {
        return Ok(());
    }
    let bad = || ValidationError::BadSignature {
        subject: child.subject(),
    };
    let key = rsa_public_key(issuer.spki()).map_err(|_| bad())?;
    let sig = child.signature_bytes().map_err(|_| bad())?;
    verify_signature(&alg, &key, &child.tbs_der, sig).map_err(|_| bad())?;
    trust.remember_good_signature(&child.fingerprint, &issuer.fingerprint);
    Ok(())
}

/// Checks on a certificate acting as issuer at `depth` (0 = issuer of the leaf).
fn check_issuer(
    issuer: &ParsedCert,
    is_anchor: bool,
    depth: usize,
    now: SystemTime,
) -> Result<(), ValidationError> {
    let subject = || issuer.subject();
    if !issuer.is_ca(is_anchor).map_err(malformed)? {
        return Err(ValidationError::IssuerNotCa { subject: subject() });
    }
    if !in_window(issuer, now) {
        return Err(ValidationError::IssuerNotValid { subject: subject() });
    }
    // pathLenConstraint counts the intermediate CAs below this one (the leaf excluded).
    if let Some(max) = issuer.path_len_constraint().map_err(malformed)? {
        if depth > usize::from(max) {
            return Err(ValidationError::PathLengthExceeded { subject: subject() });
        }
    }
    Ok(())
}

/// Depth-first search for a path from `child` up to a trust anchor. Returns the issuers,
/// nearest first, ending with the anchor. On failure returns the most specific reason seen.
fn find_path(
    trust: &TrustStore,
    pool: &[ParsedCert],
    child: &ParsedCert,
    depth: usize,
    now: SystemTime,
    visited: &mut HashSet<String>,
) -> Result<Vec<ParsedCert>, ValidationError> {
    // depth + 2 = certificates in the path once an issuer is added at this level.
    if depth + 2 > MAX_CHAIN {
        return Err(ValidationError::ChainTooLong { max: MAX_CHAIN });
    }
    let mut best = ValidationError::Untrusted;
    let note = |e: ValidationError, best: &mut ValidationError| {
        if *best == ValidationError::Untrusted {
            *best = e;
        }
    };
    for anchor in trust.anchors_for(&child.issuer_der) {
        match signed_by(trust, child, anchor, now)
            .and_then(|()| check_issuer(anchor, true, depth, now))
        {
            Ok(()) => return Ok(vec![anchor.clone()]),
            Err(e) => note(e, &mut best),
        }
    }
    for candidate in pool.iter().filter(|c| c.subject_der == child.issuer_der) {
        if visited.contains(&candidate.fingerprint) {
            continue;
        }
        let step = signed_by(trust, child, candidate, now)
            .and_then(|()| check_issuer(candidate, false, depth, now));
        if let Err(e) = step {
            note(e, &mut best);
            continue;
        }
        // A self-issued certificate from the message is not an anchor: the path ends untrusted.
        if candidate.subject_der == candidate.issuer_der {
            continue;
        }
        visited.insert(candidate.fingerprint.clone());
        match find_path(trust, pool, candidate, depth + 1, now, visited) {
            Ok(mut rest) => {
                rest.insert(0, candidate.clone());
                return Ok(rest);
            }
            Err(e) => note(e, &mut best),
        }
        visited.remove(&candidate.fingerprint);
    }
    Err(best)
}

/// Each non-anchor certificate in the chain is checked against CRLs of its issuer, whose
/// signature must verify with that issuer's key.
fn check_revocation(trust: &TrustStore, chain: &[&ParsedCert]) -> Result<(), ValidationError> {
    for pair in chain.windows(2) {
        let [cert, issuer] = pair else { continue };
        for crl in trust.crls_for(&cert.issuer_der) {
            if !crl.revoked.contains(cert.serial_bytes()) {
                continue;
            }
            let alg = classify_signature(&crl.list.signature_algorithm);
            let verified = rsa_public_key(issuer.spki()).ok().is_some_and(|key| {
                crl.list
                    .signature
                    .as_bytes()
                    .is_some_and(|sig| verify_signature(&alg, &key, &crl.tbs_der, sig).is_ok())
            });
            if verified {
                return Err(ValidationError::Revoked);
            }
            tracing::warn!(issuer = %issuer.subject(), "CRL signature does not verify; ignored");
        }
    }
    Ok(())
}
