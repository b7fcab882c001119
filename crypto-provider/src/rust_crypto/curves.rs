//! Elliptic-curve and Edwards-curve operations of the RustCrypto backend: ECDSA and ECDH on
//! the NIST curves (`p256`, `p384`, `p521`), Ed25519 verification (`ed25519-dalek`) and X25519
//! key agreement (`x25519-dalek`). Public points are taken uncompressed only, as AWS-LC takes
//! them, so both backends accept the same keys.

use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::{
    EcCurve, EcPrivateOps, EphemeralAgreement, KeyError, PublicKeyError, X25519PrivateOps,
};

/// One NIST curve's operations; the three crates share their shapes.
macro_rules! nist_curve {
    ($module:ident, $krate:ident) => {
        pub(super) mod $module {
            use $krate::ecdsa::signature::hazmat::PrehashVerifier;
            use $krate::ecdsa::signature::RandomizedSigner;
            use $krate::ecdsa::{Signature, SigningKey, VerifyingKey};
            use $krate::elliptic_curve::sec1::ToEncodedPoint;
            use $krate::pkcs8::{DecodePrivateKey, EncodePrivateKey};
            use $krate::{PublicKey, SecretKey};

            use super::*;

            fn peer(point: &[u8]) -> Option<PublicKey> {
                if point.first() != Some(&0x04) {
                    return None;
                }
                PublicKey::from_sec1_bytes(point).ok()
            }

            pub fn verify(
                point: &[u8],
                digest: &[u8],
                signature: &[u8],
            ) -> Result<(), PublicKeyError> {
                if point.first() != Some(&0x04) {
                    return Err(PublicKeyError::BadSignature);
                }
                let key = VerifyingKey::from_sec1_bytes(point)
                    .map_err(|_| PublicKeyError::BadSignature)?;
                let signature =
                    Signature::from_der(signature).map_err(|_| PublicKeyError::BadSignature)?;
                key.verify_prehash(digest, &signature)
                    .map_err(|_| PublicKeyError::BadSignature)
            }

            pub fn agree_ephemeral(point: &[u8]) -> Result<EphemeralAgreement, PublicKeyError> {
                let peer = peer(point).ok_or(PublicKeyError::AgreementFailed)?;
                let ephemeral = $krate::ecdh::EphemeralSecret::random(&mut OsRng);
                let public_key = ephemeral
                    .public_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec();
                let shared = ephemeral.diffie_hellman(&peer);
                Ok(EphemeralAgreement {
                    public_key,
                    shared_secret: Zeroizing::new(shared.raw_secret_bytes().to_vec()),
                })
            }

            pub fn load(pkcs8_der: &[u8]) -> Result<Box<dyn EcPrivateOps>, KeyError> {
                let key = SecretKey::from_pkcs8_der(pkcs8_der)
                    .map_err(|e| KeyError::Parse(e.to_string()))?;
                Ok(Box::new(Key(key)))
            }

            pub fn generate() -> Result<Zeroizing<Vec<u8>>, KeyError> {
                let der = SecretKey::random(&mut OsRng)
                    .to_pkcs8_der()
                    .map_err(|_| KeyError::OperationFailed)?;
                Ok(Zeroizing::new(der.as_bytes().to_vec()))
            }

            struct Key(SecretKey);

            impl EcPrivateOps for Key {
                fn public_point(&self) -> Vec<u8> {
                    self.0
                        .public_key()
                        .to_encoded_point(false)
                        .as_bytes()
                        .to_vec()
                }

                /// ECDSA with the curve's own digest, randomised (as AWS-LC signs).
                fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
                    let signing = SigningKey::from_bytes(&self.0.to_bytes())
                        .map_err(|_| KeyError::OperationFailed)?;
                    let signature: Signature = signing
                        .try_sign_with_rng(&mut OsRng, message)
                        .map_err(|_| KeyError::OperationFailed)?;
                    Ok(signature.to_der().as_bytes().to_vec())
                }

                fn agree(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
                    let peer = peer(peer_point).ok_or(KeyError::OperationFailed)?;
                    let shared =
                        $krate::ecdh::diffie_hellman(self.0.to_nonzero_scalar(), peer.as_affine());
                    Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
                }
            }
        }
    };
}

nist_curve!(nist_p256, p256);
nist_curve!(nist_p384, p384);
nist_curve!(nist_p521, p521);

pub fn verify_ecdsa(
    curve: EcCurve,
    point: &[u8],
    digest: &[u8],
    signature: &[u8],
) -> Result<(), PublicKeyError> {
    match curve {
        EcCurve::P256 => nist_p256::verify(point, digest, signature),
        EcCurve::P384 => nist_p384::verify(point, digest, signature),
        EcCurve::P521 => nist_p521::verify(point, digest, signature),
    }
}

pub fn agree_ephemeral(curve: EcCurve, point: &[u8]) -> Result<EphemeralAgreement, PublicKeyError> {
    match curve {
        EcCurve::P256 => nist_p256::agree_ephemeral(point),
        EcCurve::P384 => nist_p384::agree_ephemeral(point),
        EcCurve::P521 => nist_p521::agree_ephemeral(point),
    }
}

pub fn load(curve: EcCurve, pkcs8_der: &[u8]) -> Result<Box<dyn EcPrivateOps>, KeyError> {
    match curve {
        EcCurve::P256 => nist_p256::load(pkcs8_der),
        EcCurve::P384 => nist_p384::load(pkcs8_der),
        EcCurve::P521 => nist_p521::load(pkcs8_der),
    }
}

pub fn generate(curve: EcCurve) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    match curve {
        EcCurve::P256 => nist_p256::generate(),
        EcCurve::P384 => nist_p384::generate(),
        EcCurve::P521 => nist_p521::generate(),
    }
}

/// PureEdDSA (RFC 8032) over `message`; a non-canonical signature is refused.
pub fn verify_ed25519(key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), PublicKeyError> {
    use ed25519_dalek::Verifier;
    let key: [u8; 32] = key.try_into().map_err(|_| PublicKeyError::BadSignature)?;
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| PublicKeyError::BadSignature)?;
    let signature = ed25519_dalek::Signature::from_slice(signature)
        .map_err(|_| PublicKeyError::BadSignature)?;
    key.verify(message, &signature)
        .map_err(|_| PublicKeyError::BadSignature)
}

/// X25519 (RFC 7748) with a fresh ephemeral key; an all-zero shared secret (a small-order
/// peer key) is refused, as AWS-LC refuses it.
pub fn agree_x25519(peer: &[u8]) -> Result<EphemeralAgreement, PublicKeyError> {
    let peer: [u8; 32] = peer
        .try_into()
        .map_err(|_| PublicKeyError::AgreementFailed)?;
    let peer = x25519_dalek::PublicKey::from(peer);
    let ephemeral = x25519_dalek::EphemeralSecret::random_from_rng(OsRng);
    let public_key = x25519_dalek::PublicKey::from(&ephemeral)
        .as_bytes()
        .to_vec();
    let shared = ephemeral.diffie_hellman(&peer);
    if !shared.was_contributory() {
        return Err(PublicKeyError::AgreementFailed);
    }
    Ok(EphemeralAgreement {
        public_key,
        shared_secret: Zeroizing::new(shared.as_bytes().to_vec()),
    })
}

/// An X25519 private key from its raw 32 bytes (RFC 7748).
pub fn load_x25519(private_key: &[u8]) -> Result<Box<dyn X25519PrivateOps>, KeyError> {
    let raw: Zeroizing<[u8; 32]> = Zeroizing::new(
        private_key
            .try_into()
            .map_err(|_| KeyError::Parse("X25519 private key is not 32 bytes".into()))?,
    );
    Ok(Box::new(X25519Key(x25519_dalek::StaticSecret::from(*raw))))
}

/// Zeroised on drop by `x25519-dalek`.
struct X25519Key(x25519_dalek::StaticSecret);

impl X25519PrivateOps for X25519Key {
    fn public_key(&self) -> Vec<u8> {
        x25519_dalek::PublicKey::from(&self.0).as_bytes().to_vec()
    }

    /// A small-order peer key (all-zero shared secret) is refused, as AWS-LC refuses it.
    fn agree(&self, peer_public_key: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let peer: [u8; 32] = peer_public_key
            .try_into()
            .map_err(|_| KeyError::OperationFailed)?;
        let shared = self.0.diffie_hellman(&x25519_dalek::PublicKey::from(peer));
        if !shared.was_contributory() {
            return Err(KeyError::OperationFailed);
        }
        Ok(Zeroizing::new(shared.as_bytes().to_vec()))
    }
}
