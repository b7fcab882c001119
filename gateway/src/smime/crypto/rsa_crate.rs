//! The `rsa` crate backend (see the module docs of `crypto` for why it sits behind a trait).

use pkcs1::DecodeRsaPrivateKey;
use pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::{Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPrivateKey};
use zeroize::Zeroizing;

use super::{KeyError, PrivateKeyOps};
use crate::smime::algorithms::{DigestAlg, KeyTransport};

pub struct RsaCrateKey {
    key: RsaPrivateKey,
}

impl RsaCrateKey {
    pub fn new(key: RsaPrivateKey) -> Self {
        Self { key }
    }

    /// PEM (`PRIVATE KEY` or `RSA PRIVATE KEY`) or PKCS#8 DER.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let key = match std::str::from_utf8(bytes) {
            Ok(text) if text.contains("-----BEGIN RSA PRIVATE KEY-----") => {
                RsaPrivateKey::from_pkcs1_pem(text).map_err(|e| KeyError::Parse(e.to_string()))?
            }
            Ok(text) if text.contains("-----BEGIN PRIVATE KEY-----") => {
                RsaPrivateKey::from_pkcs8_pem(text).map_err(pkcs8_error)?
            }
            Ok(text) if text.contains("-----BEGIN") => {
                return Err(KeyError::Parse(
                    "expected an unencrypted PRIVATE KEY or RSA PRIVATE KEY PEM block".into(),
                ))
            }
            _ => RsaPrivateKey::from_pkcs8_der(bytes).map_err(pkcs8_error)?,
        };
        Ok(Self { key })
    }
}

fn pkcs8_error(e: pkcs8::Error) -> KeyError {
    match e {
        pkcs8::Error::KeyMalformed | pkcs8::Error::PublicKey(_) => KeyError::Parse(format!("{e}")),
        pkcs8::Error::Asn1(_) => KeyError::Parse(format!("{e}")),
        _ => KeyError::UnsupportedKeyType,
    }
}

impl PrivateKeyOps for RsaCrateKey {
    fn key_bits(&self) -> usize {
        rsa::traits::PublicKeyParts::size(&self.key) * 8
    }

    fn public_key_spki_der(&self) -> Result<Vec<u8>, KeyError> {
        self.key
            .to_public_key()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|e| KeyError::Parse(e.to_string()))
    }

    fn decrypt_key(
        &self,
        transport: KeyTransport,
        encrypted_key: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let result = match transport {
            KeyTransport::RsaPkcs1v15 => self.key.decrypt(Pkcs1v15Encrypt, encrypted_key),
            KeyTransport::RsaOaepSha1 => self.key.decrypt(Oaep::new::<sha1::Sha1>(), encrypted_key),
            KeyTransport::RsaOaepSha256 => {
                self.key.decrypt(Oaep::new::<sha2::Sha256>(), encrypted_key)
            }
        };
        result
            .map(Zeroizing::new)
            .map_err(|_| KeyError::OperationFailed)
    }

    fn sign_digest(&self, digest_alg: DigestAlg, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        let scheme = match digest_alg {
            DigestAlg::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
            DigestAlg::Sha224 => Pkcs1v15Sign::new::<sha2::Sha224>(),
            DigestAlg::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
            DigestAlg::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
            DigestAlg::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
        };
        self.key
            .sign(scheme, digest)
            .map_err(|_| KeyError::OperationFailed)
    }
}
