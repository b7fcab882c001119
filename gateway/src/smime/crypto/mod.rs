//! Private-key operations, behind one small trait.
//!
//! Why a trait: the `rsa` crate, our first backend, carries RUSTSEC-2023-0071 (the "Marvin"
//! timing side channel in its private-key operation). A gateway decrypts attacker-chosen
//! ciphertext, so the backend must be replaceable — by another library (aws-lc, ring once it
//! decrypts) or by an HSM — without touching the CMS code. The engine therefore never holds an
//! `rsa::RsaPrivateKey` itself: it calls [`PrivateKeyOps`] and nothing else. Public-key
//! operations (verify, encrypt) have no such concern and use `rsa` directly.

mod rsa_crate;

pub use rsa_crate::RsaCrateKey;

use zeroize::Zeroizing;

use super::algorithms::{DigestAlg, KeyTransport};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the private key: {0}")]
    Parse(String),
    #[error("unsupported key type (only RSA keys are supported)")]
    UnsupportedKeyType,
    /// Deliberately without detail: callers must not learn why an unwrap failed.
    #[error("private-key operation failed")]
    OperationFailed,
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
}

/// The private-key operations S/MIME needs: unwrap a content-encryption key, sign a digest.
pub trait PrivateKeyOps: Send + Sync {
    /// Size of the key, in bits.
    fn key_bits(&self) -> usize;

    /// DER of the public key (SubjectPublicKeyInfo), to match the key to its certificate.
    fn public_key_spki_der(&self) -> Result<Vec<u8>, KeyError>;

    /// Decrypt an RSA-transported content-encryption key. Implementations return
    /// [`KeyError::OperationFailed`] for every failure; the caller applies implicit rejection.
    fn decrypt_key(
        &self,
        transport: KeyTransport,
        encrypted_key: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError>;

    /// Sign a precomputed digest with RSA PKCS#1 v1.5 (DigestInfo for `digest_alg`).
    fn sign_digest(&self, digest_alg: DigestAlg, digest: &[u8]) -> Result<Vec<u8>, KeyError>;
}

/// Load a private key from PEM (PKCS#8 or PKCS#1) or DER (PKCS#8) into the default backend.
pub fn load_private_key(bytes: &[u8]) -> Result<Box<dyn PrivateKeyOps>, KeyError> {
    Ok(Box::new(RsaCrateKey::from_bytes(bytes)?))
}
