//! Typed errors: one variant per reason a request is refused.

use serde::{Deserialize, Serialize};

/// Errors from the store as a whole.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the certificate store database could not be used: {0}")]
    Database(String),
    #[error("the store was written by a newer version (schema {found}); this build understands schema {supported} at most")]
    UnsupportedSchemaVersion { found: u32, supported: u32 },
    #[error("a stored record is damaged or unreadable: {0}")]
    CorruptRecord(String),
    #[error("the store has no proxy CA yet; initialise or import one first")]
    NotInitialised,
    #[error("the store already has a proxy CA; refusing to replace it")]
    AlreadyInitialised,
    #[error("could not read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("the PEM or DER input could not be parsed: {0}")]
    BadEncoding(String),
    #[error("unsupported key type: {0}")]
    UnsupportedKey(String),
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error("the imported CA certificate is not usable as a CA: {0}")]
    NotACa(String),
    #[error("the proxy CA key is too weak: {bits} bits (at least {min} required)")]
    WeakKey { bits: usize, min: usize },
    #[error("invalid e-mail address {0:?}")]
    InvalidAddress(String),
    #[error("invalid subject name {0:?}")]
    InvalidSubject(String),
    #[error("no certificate with fingerprint {0}")]
    UnknownCertificate(String),
    #[error("certificate {0} was refused at validation and cannot be pinned")]
    CannotPinRefused(String),
    #[error("invalid fingerprint {0:?}: expected 64 hexadecimal digits")]
    InvalidFingerprint(String),
    #[error("key generation or signing failed: {0}")]
    Crypto(String),
    #[error("certificate building failed: {0}")]
    Build(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("the store is in use by another process (a running gateway): {0}")]
    Locked(String),
    #[error("the certificate cannot be used as a proxy certificate: {0}")]
    UnusableCertificate(String),
    #[error("the proxy identity with certificate {0} is already in the store")]
    IdentityExists(String),
    #[error("the time could not be represented: {0}")]
    Time(String),
}

impl StoreError {
    /// Input (PEM, DER, a certificate's extensions) that could not be read.
    pub(crate) fn bad_encoding(e: impl std::fmt::Display) -> Self {
        StoreError::BadEncoding(e.to_string())
    }

    /// A record this store wrote that no longer reads back.
    pub(crate) fn corrupt_record(e: impl std::fmt::Display) -> Self {
        StoreError::CorruptRecord(e.to_string())
    }

    pub(crate) fn build(e: impl std::fmt::Display) -> Self {
        StoreError::Build(e.to_string())
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => e.into(),
        }
    }
}

/// Why a partner certificate is refused. `Display` is a sentence for a person.
///
/// Serialised adjacently tagged (`{"reason": "...", "detail": ...}`) because it is stored
/// in history records and shown by the admin API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum ValidationError {
    #[error("the certificate could not be parsed: {0}")]
    Malformed(String),
    #[error("the certificate's key type is not supported (RSA of 2048 bits or more, EC P-256/P-384/P-521 and Ed25519 are accepted; Ed25519 keys only for signatures)")]
    UnsupportedKey,
    #[error("the certificate's RSA key has {bits} bits; at least 2048 are required")]
    WeakKey { bits: usize },
    #[error("the certificate is self-signed; partner certificates must be issued by a trusted CA")]
    SelfSigned,
    #[error("the certificate is not valid yet")]
    NotYetValid,
    #[error("the certificate has expired")]
    Expired,
    #[error("the certificate is signed with a weak or unsupported algorithm ({algorithm})")]
    WeakSignatureAlgorithm { algorithm: String },
    #[error("the certificate does not permit e-mail protection (keyUsage/extendedKeyUsage)")]
    UsageNotEmailProtection,
    #[error("the certificate names no e-mail address")]
    NoEmailAddress,
    #[error("the certificate is for {found}, not for the sender {expected}")]
    AddressMismatch { expected: String, found: String },
    #[error("the certificate does not chain to a trusted CA")]
    Untrusted,
    #[error("a signature in the certificate chain does not verify ({subject})")]
    BadSignature { subject: String },
    #[error("issuer {subject} in the chain is not a CA")]
    IssuerNotCa { subject: String },
    #[error("issuer {subject} in the chain is expired or not yet valid")]
    IssuerNotValid { subject: String },
    #[error(
        "issuer {subject} in the chain may not issue certificates this deep (pathLenConstraint)"
    )]
    PathLengthExceeded { subject: String },
    #[error("the certificate chain is longer than {max} certificates")]
    ChainTooLong { max: usize },
    #[error("the certificate has been revoked by its issuer")]
    Revoked,
    #[error("the certificate is a CA certificate, not an e-mail certificate")]
    LeafIsCa,
    #[error("the message offers more than {max} certificates for the path")]
    TooManyCertificates { max: usize },
    #[error(
        "issuer {subject} in the chain is not allowed to vouch for this name (name constraints)"
    )]
    NameConstraintViolation { subject: String },
    #[error("the certificate was not issued under an acceptable certificate policy")]
    PolicyNotAcceptable,
    #[error("{subject} in the chain has a critical extension that is not understood")]
    UnknownCriticalExtension { subject: String },
    #[error("the revocation status could not be established ({reason})")]
    RevocationUnknown { reason: String },
    #[error("the certificate chain is invalid: {reason}")]
    PathInvalid { reason: String },
}

/// Why a domain cannot be approved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Not a domain name by the shared rules ([`smime_pki::name`]).
    #[error(transparent)]
    Name(#[from] smime_pki::DomainError),
    #[error("{0} is a free-mail or ISP domain: addresses there are not under a partner's control, so it cannot be approved")]
    Freemail(String),
}
