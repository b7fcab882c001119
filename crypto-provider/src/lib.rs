//! Every cryptographic primitive the gateway and its store use, as one [`CryptoProvider`] value,
//! in the manner of rustls's `CryptoProvider`: the value is built once (by the binary, a test or
//! a benchmark) and passed to whoever needs it; nothing chooses a backend behind the caller's
//! back.
//!
//! Backends sit side by side and are cargo features:
//! - [`aws_lc_rs`] (feature `aws-lc-rs`, the default): AWS-LC, constant-time RSA, AES-NI/SHA-NI.
//! - [`rust_crypto`] (feature `rust-crypto`): the pure-Rust RustCrypto crates (`rsa`, `aes`,
//!   `sha2`...), so a build without a C toolchain stays possible. `rsa` carries
//!   RUSTSEC-2023-0071 (Marvin); every private operation there is blinded.
//!
//! What is shared by both lives here, once: key parsing ([`keys`]), the PKCS#1 v1.5 unwrap with
//! deterministic implicit rejection ([`implicit_rejection`]), and the algorithm names.

use std::fmt;

use zeroize::Zeroizing;

mod algorithms;
pub mod implicit_rejection;
pub mod kdf;
pub mod keys;
pub mod x25519;

#[cfg(feature = "aws-lc-rs")]
pub mod aws_lc_rs;
#[cfg(feature = "rust-crypto")]
pub mod rust_crypto;

pub use algorithms::{DigestAlg, EcCurve, KeyTransport, PublicKeyAlg, RsaSignature, SignatureAlg};
pub use implicit_rejection::UnwrappedKey;

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!("crypto-provider needs a backend: enable feature `aws-lc-rs` or `rust-crypto`");

/// Largest RSA modulus accepted, public or private: an attacker-supplied key costs bounded work.
pub const MAX_RSA_BITS: usize = 8192;

/// Errors of key loading, generation and private-key operations.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the private key: {0}")]
    Parse(String),
    #[error("unsupported key type (RSA, EC P-256/P-384/P-521 and X25519 keys are supported)")]
    UnsupportedKeyType,
    #[error("unsupported RSA key size {0} bits")]
    UnsupportedKeySize(usize),
    #[error("{0} is not supported by the {1} backend")]
    Unsupported(String, &'static str),
    /// Deliberately without detail: callers must not learn why an operation failed.
    #[error("private-key operation failed")]
    OperationFailed,
    #[error("the random number generator failed")]
    Random,
}

/// Errors of public-key operations.
#[derive(Debug, thiserror::Error)]
pub enum PublicKeyError {
    #[error("bad RSA public key: {0}")]
    BadKey(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("RSA encryption failed")]
    EncryptionFailed,
    #[error("key agreement failed")]
    AgreementFailed,
}

/// Errors of the symmetric ciphers. Decryption failures carry no detail on purpose.
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("invalid key or IV/nonce length")]
    BadParameters,
    #[error("decryption failed")]
    DecryptionFailed,
    #[error("encryption failed")]
    EncryptionFailed,
}

#[derive(Debug, thiserror::Error)]
#[error("the random number generator failed")]
pub struct RandomError;

/// Asking an RSA operation for key agreement.
fn not_rsa_transport() -> PublicKeyError {
    PublicKeyError::Unsupported("key agreement is not RSA key transport".into())
}

/// An incremental hash, so large content is hashed in pieces without a second copy.
pub trait Hasher: Send {
    fn update(&mut self, data: &[u8]);
    fn finish(self: Box<Self>) -> Vec<u8>;
}

/// Digests and the HMAC that implicit rejection needs.
pub trait DigestProvider: Send + Sync {
    fn hasher(&self, alg: DigestAlg) -> Box<dyn Hasher>;
    fn hmac_sha256(&self, key: &[u8], parts: &[&[u8]]) -> [u8; 32];
}

/// AES-CBC (PKCS#7 padding) and AES-GCM (16-byte tag); the key length picks AES-128/192/256.
pub trait CipherProvider: Send + Sync {
    fn cbc_encrypt(&self, key: &[u8], iv: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CipherError>;
    /// Decrypts in place; returns the plaintext length.
    fn cbc_decrypt(&self, key: &[u8], iv: &[u8], buffer: &mut [u8]) -> Result<usize, CipherError>;
    /// Encrypts in place; returns the tag.
    fn gcm_seal(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; 16], CipherError>;
    /// Decrypts in place and checks the tag; on failure the buffer's contents are unspecified
    /// (a caller that may retry with another key keeps a copy).
    fn gcm_open(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        buffer: &mut [u8],
        tag: &[u8],
    ) -> Result<(), CipherError>;
    /// AES key wrap (RFC 3394, the default IV); the KEK length picks AES-128/192/256.
    fn aes_key_wrap(&self, kek: &[u8], key: &[u8]) -> Result<Vec<u8>, CipherError>;
    /// The inverse of [`Self::aes_key_wrap`]; a wrong KEK or altered input fails its integrity
    /// check ([`CipherError::DecryptionFailed`]).
    fn aes_key_unwrap(&self, kek: &[u8], wrapped: &[u8])
        -> Result<Zeroizing<Vec<u8>>, CipherError>;
}

/// The sender's half of an ephemeral-static key agreement.
pub struct EphemeralAgreement {
    /// The ephemeral public key as it travels: an uncompressed EC point, or 32 X25519 bytes.
    pub public_key: Vec<u8>,
    pub shared_secret: Zeroizing<Vec<u8>>,
}

/// RSA public-key operations on a SubjectPublicKeyInfo (DER).
pub trait PublicKeyProvider: Send + Sync {
    /// Verify `signature` over a precomputed `digest`.
    fn verify(
        &self,
        spki_der: &[u8],
        scheme: RsaSignature,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<(), PublicKeyError>;
    fn encrypt(
        &self,
        spki_der: &[u8],
        transport: KeyTransport,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, PublicKeyError>;
    /// ECDSA over a precomputed `digest`; `signature` is a DER `Ecdsa-Sig-Value`. The curve
    /// is the key's (see [`keys::public_key_alg`]).
    fn verify_ecdsa(
        &self,
        spki_der: &[u8],
        digest_alg: DigestAlg,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<(), PublicKeyError>;
    /// Ed25519 (PureEdDSA) over the whole `message`.
    fn verify_ed25519(
        &self,
        spki_der: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), PublicKeyError>;
    /// A fresh ephemeral key pair on the recipient's curve (EC or X25519) and the shared
    /// secret with the recipient's public key.
    fn agree_ephemeral(&self, spki_der: &[u8]) -> Result<EphemeralAgreement, PublicKeyError>;
}

pub trait SecureRandom: Send + Sync {
    fn fill(&self, out: &mut [u8]) -> Result<(), RandomError>;
}

/// A backend's RSA private key. Only the backends implement it; callers hold a [`PrivateKey`],
/// which adds implicit rejection on top of the raw operation.
pub trait RsaPrivateOps: Send + Sync {
    /// RSADP without any padding check: the ciphertext raised to the private exponent,
    /// left-padded to the modulus length (blinded where the library needs it). Err only for
    /// a ciphertext of the wrong length or not below the modulus (public facts).
    fn raw_decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError>;
    fn decrypt_oaep(
        &self,
        digest: DigestAlg,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError>;
    fn sign_digest(&self, scheme: RsaSignature, digest: &[u8]) -> Result<Vec<u8>, KeyError>;
}

/// A backend's EC private key: ECDSA signing and ECDH.
pub trait EcPrivateOps: Send + Sync {
    /// The public key, an uncompressed point.
    fn public_point(&self) -> Vec<u8>;
    /// ECDSA with the curve's digest ([`EcCurve::digest`]) over `message`: a DER
    /// `Ecdsa-Sig-Value`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// ECDH with a peer's public point (from outside): the shared secret. An invalid point
    /// (not on the curve, wrong length) is [`KeyError::OperationFailed`].
    fn agree(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError>;
}

/// A backend's X25519 private key (RFC 7748): key agreement only.
pub trait X25519PrivateOps: Send + Sync {
    /// The public key, 32 bytes.
    fn public_key(&self) -> Vec<u8>;
    /// X25519 with a peer's public key (from outside): the shared secret. A key of the wrong
    /// length, or one of small order (an all-zero shared secret, RFC 7748 §6.1), is
    /// [`KeyError::OperationFailed`].
    fn agree(&self, peer_public_key: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError>;
}

/// Loading and generating private keys.
pub trait KeyProvider: Send + Sync {
    /// A key from its PKCS#8 DER (already checked to be RSA by [`keys::parse`]).
    fn load_pkcs8(&self, pkcs8_der: &[u8]) -> Result<Box<dyn RsaPrivateOps>, KeyError>;
    /// A new RSA key (2048, 3072 or 4096 bits) as PKCS#8 DER.
    fn generate_rsa(&self, bits: usize) -> Result<Zeroizing<Vec<u8>>, KeyError>;
    /// An EC key from its PKCS#8 DER (curve checked by [`keys::parse_ec`]).
    fn load_ec_pkcs8(
        &self,
        curve: EcCurve,
        pkcs8_der: &[u8],
    ) -> Result<Box<dyn EcPrivateOps>, KeyError>;
    /// A new EC key as PKCS#8 DER.
    fn generate_ec(&self, curve: EcCurve) -> Result<Zeroizing<Vec<u8>>, KeyError>;
    /// An X25519 key from its raw 32 bytes (already taken out of PKCS#8 by [`x25519::parse`]).
    fn load_x25519(&self, private_key: &[u8]) -> Result<Box<dyn X25519PrivateOps>, KeyError>;
}

/// Every primitive, from one backend.
#[derive(Clone, Copy)]
pub struct CryptoProvider {
    /// Shown in logs and by the benchmarks.
    pub name: &'static str,
    pub keys: &'static dyn KeyProvider,
    pub public_keys: &'static dyn PublicKeyProvider,
    pub ciphers: &'static dyn CipherProvider,
    pub digests: &'static dyn DigestProvider,
    pub random: &'static dyn SecureRandom,
}

impl fmt::Debug for CryptoProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoProvider")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The provider of the build's default backend: aws-lc-rs when its feature is on, else
/// RustCrypto. Called where the program starts; the value is then passed down.
pub fn default_provider() -> &'static CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    {
        &aws_lc_rs::PROVIDER
    }
    #[cfg(all(not(feature = "aws-lc-rs"), feature = "rust-crypto"))]
    {
        &rust_crypto::PROVIDER
    }
}

/// Every backend compiled into this build (for tests and benchmarks that compare them).
pub fn all_providers() -> Vec<&'static CryptoProvider> {
    vec![
        #[cfg(feature = "aws-lc-rs")]
        &aws_lc_rs::PROVIDER,
        #[cfg(feature = "rust-crypto")]
        &rust_crypto::PROVIDER,
    ]
}

impl CryptoProvider {
    /// A private key from PEM (`PRIVATE KEY` or `RSA PRIVATE KEY`) or DER (PKCS#8 or PKCS#1).
    /// EC keys (P-256/P-384/P-521) and X25519 keys come as PKCS#8 (`PRIVATE KEY`).
    pub fn load_private_key(&'static self, bytes: &[u8]) -> Result<PrivateKey, KeyError> {
        let parsed = match keys::parse(bytes) {
            Err(KeyError::UnsupportedKeyType) => return self.load_ec_private_key(bytes),
            other => other?,
        };
        let ops = self.keys.load_pkcs8(&parsed.pkcs8_der)?;
        Ok(PrivateKey {
            inner: KeyInner::Rsa {
                ops,
                rejection_key: implicit_rejection::key_derivation_key(
                    self.digests,
                    &parsed.private_exponent,
                ),
            },
            spki_der: parsed.spki_der,
            bits: parsed.bits,
            provider: self,
        })
    }

    fn load_ec_private_key(&'static self, bytes: &[u8]) -> Result<PrivateKey, KeyError> {
        let (curve, pkcs8) = match keys::parse_ec(bytes) {
            Err(KeyError::UnsupportedKeyType) => return self.load_x25519_private_key(bytes),
            other => other?,
        };
        let ops = self.keys.load_ec_pkcs8(curve, &pkcs8)?;
        Ok(PrivateKey {
            spki_der: keys::ec_spki_der(curve, &ops.public_point())?,
            inner: KeyInner::Ec { curve, ops },
            bits: curve.bits(),
            provider: self,
        })
    }

    /// An X25519 key (RFC 8410 PKCS#8): it only agrees keys, so it decrypts mail sent to it
    /// by key agreement (RFC 8418) and signs nothing.
    fn load_x25519_private_key(&'static self, bytes: &[u8]) -> Result<PrivateKey, KeyError> {
        let raw = x25519::parse(bytes)?;
        let ops = self.keys.load_x25519(raw.as_slice())?;
        Ok(PrivateKey {
            spki_der: x25519::spki_der(&ops.public_key())?,
            inner: KeyInner::X25519 { ops },
            bits: PublicKeyAlg::X25519.bits(),
            provider: self,
        })
    }

    /// A new EC key as PKCS#8 DER (what the store keeps).
    pub fn generate_ec_pkcs8(&self, curve: EcCurve) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.keys.generate_ec(curve)
    }

    /// A new RSA key as PKCS#8 DER (what the store keeps).
    pub fn generate_rsa_pkcs8(&self, bits: usize) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.keys.generate_rsa(bits)
    }

    pub fn digest(&self, alg: DigestAlg, data: &[u8]) -> Vec<u8> {
        let mut hasher = self.digests.hasher(alg);
        hasher.update(data);
        hasher.finish()
    }

    pub fn fill_random(&self, out: &mut [u8]) -> Result<(), RandomError> {
        self.random.fill(out)
    }
}

/// What the engine and the store hold for a private key: the backend's operations plus the
/// secret that makes implicit rejection deterministic. A trait so tests can wrap a key (to
/// count operations, say) without a backend of their own.
pub trait PrivateKeyOps: Send + Sync {
    fn bits(&self) -> usize;
    fn public_key_spki_der(&self) -> Result<Vec<u8>, KeyError>;
    /// Unwrap a content-encryption key of `key_len` bytes. Never fails for a bad ciphertext:
    /// see [`implicit_rejection`].
    fn unwrap_key(
        &self,
        transport: KeyTransport,
        encrypted_key: &[u8],
        key_len: usize,
    ) -> UnwrappedKey;
    /// Sign a message with RSA: hash it with the scheme's digest, then sign the digest.
    fn sign(&self, scheme: RsaSignature, message: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// The key's type; RSA unless the key says otherwise.
    fn algorithm(&self) -> PublicKeyAlg {
        PublicKeyAlg::Rsa { bits: self.bits() }
    }
    /// Sign a message with any scheme the key supports ([`Self::sign`] for RSA).
    fn sign_with(&self, alg: SignatureAlg, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match alg {
            SignatureAlg::Rsa(scheme) => self.sign(scheme, message),
            _ => Err(KeyError::UnsupportedKeyType),
        }
    }
    /// Key agreement (EC and X25519 keys): the shared secret with a sender's ephemeral public
    /// key from outside (an uncompressed point, or 32 X25519 bytes). Fails for an invalid key
    /// and for RSA keys.
    fn agree(&self, _peer_public_key: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        Err(KeyError::UnsupportedKeyType)
    }
}

pub struct PrivateKey {
    inner: KeyInner,
    spki_der: Vec<u8>,
    bits: usize,
    provider: &'static CryptoProvider,
}

enum KeyInner {
    Rsa {
        ops: Box<dyn RsaPrivateOps>,
        rejection_key: Zeroizing<[u8; 32]>,
    },
    Ec {
        curve: EcCurve,
        ops: Box<dyn EcPrivateOps>,
    },
    X25519 {
        ops: Box<dyn X25519PrivateOps>,
    },
}

impl PrivateKey {
    /// Sign a precomputed digest with RSA (CMS signs the digest of its signed attributes).
    pub fn sign_digest(&self, scheme: RsaSignature, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        if digest.len() != scheme.digest().output_len() {
            return Err(KeyError::OperationFailed);
        }
        match &self.inner {
            KeyInner::Rsa { ops, .. } => ops.sign_digest(scheme, digest),
            KeyInner::Ec { .. } | KeyInner::X25519 { .. } => Err(KeyError::UnsupportedKeyType),
        }
    }

    pub fn provider(&self) -> &'static CryptoProvider {
        self.provider
    }
}

impl PrivateKeyOps for PrivateKey {
    fn bits(&self) -> usize {
        self.bits
    }

    fn public_key_spki_der(&self) -> Result<Vec<u8>, KeyError> {
        Ok(self.spki_der.clone())
    }

    fn unwrap_key(
        &self,
        transport: KeyTransport,
        encrypted_key: &[u8],
        key_len: usize,
    ) -> UnwrappedKey {
        match &self.inner {
            KeyInner::Rsa { ops, rejection_key } => implicit_rejection::unwrap(
                ops.as_ref(),
                self.provider.digests,
                rejection_key,
                transport,
                encrypted_key,
                key_len,
            ),
            // No RSA transport to an EC or X25519 key: the message is forged or misaddressed,
            // and fails at its content like a wrong key (the key is no secret: none was sent).
            KeyInner::Ec { .. } | KeyInner::X25519 { .. } => UnwrappedKey {
                key: Zeroizing::new(vec![0u8; key_len]),
                genuine: false,
            },
        }
    }

    fn sign(&self, scheme: RsaSignature, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let digest = self.provider.digest(scheme.digest(), message);
        self.sign_digest(scheme, &digest)
    }

    fn algorithm(&self) -> PublicKeyAlg {
        match &self.inner {
            KeyInner::Rsa { .. } => PublicKeyAlg::Rsa { bits: self.bits },
            KeyInner::Ec { curve, .. } => PublicKeyAlg::Ec { curve: *curve },
            KeyInner::X25519 { .. } => PublicKeyAlg::X25519,
        }
    }

    fn sign_with(&self, alg: SignatureAlg, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match (&self.inner, alg) {
            (KeyInner::Rsa { .. }, SignatureAlg::Rsa(scheme)) => self.sign(scheme, message),
            (KeyInner::Ec { curve, ops }, SignatureAlg::Ecdsa(digest))
                if digest == curve.digest() =>
            {
                ops.sign(message)
            }
            _ => Err(KeyError::UnsupportedKeyType),
        }
    }

    fn agree(&self, peer_public_key: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        match &self.inner {
            KeyInner::Ec { ops, .. } => ops.agree(peer_public_key),
            KeyInner::X25519 { ops } => ops.agree(peer_public_key),
            KeyInner::Rsa { .. } => Err(KeyError::UnsupportedKeyType),
        }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("bits", &self.bits)
            .field("provider", &self.provider.name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
