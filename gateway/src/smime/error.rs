//! The engine's error type: one variant per thing an operator needs to tell apart.

use super::ber::BerError;

/// Why an S/MIME operation could not be carried out.
///
/// Verification *outcomes* (bad signature, content changed, ...) are not errors: they are
/// reported in [`super::verify::SignatureOutcome`]. Errors are for input we cannot process at all.
#[derive(Debug, thiserror::Error)]
pub enum SmimeError {
    #[error("malformed BER/DER: {0}")]
    Ber(#[from] BerError),
    #[error("malformed CMS structure: {0}")]
    Asn1(#[from] der::Error),
    #[error("malformed MIME: {0}")]
    Mime(String),
    #[error("the message is not S/MIME (content type {0})")]
    NotSmime(String),
    #[error("unsupported CMS content type {0}")]
    UnsupportedContentType(String),
    #[error("legacy cipher {0} refused: it is too weak; ask the sender to use AES")]
    LegacyCipher(&'static str),
    #[error("unsupported content-encryption algorithm {0}")]
    UnsupportedCipher(String),
    #[error("unsupported key-transport algorithm {0}")]
    UnsupportedKeyTransport(String),
    #[error(
        "unsupported recipient type (only RSA key transport and EC/X25519 key agreement are supported)"
    )]
    UnsupportedRecipientType,
    #[error("none of the message's recipients is a key we hold")]
    NoMatchingRecipient,
    /// One error for every decryption failure (wrong key, bad padding, corrupt ciphertext, bad
    /// authentication tag), so that nothing observable depends on *why* it failed.
    #[error("decryption failed (wrong key or corrupt message)")]
    DecryptionFailed,
    #[error("the signed message carries no signature")]
    NoSignerInfo,
    #[error("detached signature without the signed content")]
    MissingContent,
    #[error("S/MIME nesting deeper than {0} layers refused")]
    NestingTooDeep(usize),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("key: {0}")]
    Key(#[from] super::crypto::KeyError),
    #[error("no recipients given")]
    NoRecipients,
    #[error("internal encoding error: {0}")]
    Encoding(String),
}

pub type Result<T, E = SmimeError> = std::result::Result<T, E>;
