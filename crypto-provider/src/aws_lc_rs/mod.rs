//! The AWS-LC backend (the default): constant-time RSA, AES-NI/SHA-NI.
//!
//! Mostly the safe aws-lc-rs API. Two things go to AWS-LC directly through `aws-lc-sys` (the
//! library aws-lc-rs itself links, see [`raw`]): RSADP without padding, so that the PKCS#1 v1.5
//! check and implicit rejection are ours (`crate::implicit_rejection`), and signature
//! verification, because aws-lc-rs has no constant for SHA-224 or for a PSS salt length other
//! than the digest's, both of which partners' signatures use.

mod raw;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey,
};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::key_wrap::{self, AesKek, KeyWrap};
use aws_lc_rs::rand::SecureRandom as _;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, Pkcs1PublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{self, RsaKeyPair};
use aws_lc_rs::{agreement, digest, hmac};
use zeroize::Zeroizing;

use crate::{
    CipherError, CipherProvider, CryptoProvider, DigestAlg, DigestProvider, EcCurve, EcPrivateOps,
    EphemeralAgreement, Hasher, KeyError, KeyProvider, KeyTransport, PublicKeyAlg, PublicKeyError,
    PublicKeyProvider, RandomError, RsaPrivateOps, RsaSignature, SecureRandom, X25519PrivateOps,
};

const NAME: &str = "aws-lc-rs";

pub static PROVIDER: CryptoProvider = CryptoProvider {
    name: NAME,
    keys: &Keys,
    public_keys: &PublicKeys,
    ciphers: &Ciphers,
    digests: &Digests,
    random: &Random,
};

struct Keys;

struct AwsKey {
    signing: RsaKeyPair,
    oaep: OaepPrivateDecryptingKey,
    raw: raw::RsaKey,
}

impl KeyProvider for Keys {
    fn load_pkcs8(&self, pkcs8_der: &[u8]) -> Result<Box<dyn RsaPrivateOps>, KeyError> {
        let rejected = |e: aws_lc_rs::error::KeyRejected| KeyError::Parse(e.to_string());
        let signing = RsaKeyPair::from_pkcs8(pkcs8_der).map_err(rejected)?;
        let decrypting = PrivateDecryptingKey::from_pkcs8(pkcs8_der).map_err(rejected)?;
        let oaep =
            OaepPrivateDecryptingKey::new(decrypting).map_err(|_| KeyError::OperationFailed)?;
        let raw = raw::RsaKey::from_pkcs8(pkcs8_der)?;
        Ok(Box::new(AwsKey { signing, oaep, raw }))
    }

    fn generate_rsa(&self, bits: usize) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            other => return Err(KeyError::UnsupportedKeySize(other)),
        };
        let key = RsaKeyPair::generate(size).map_err(|_| KeyError::OperationFailed)?;
        let der = key.as_der().map_err(|_| KeyError::OperationFailed)?;
        Ok(Zeroizing::new(der.as_ref().to_vec()))
    }

    fn load_ec_pkcs8(
        &self,
        curve: EcCurve,
        pkcs8_der: &[u8],
    ) -> Result<Box<dyn EcPrivateOps>, KeyError> {
        let rejected = |e: aws_lc_rs::error::KeyRejected| KeyError::Parse(e.to_string());
        let signing = signature::EcdsaKeyPair::from_pkcs8(ecdsa_signing(curve), pkcs8_der)
            .map_err(rejected)?;
        let agreeing =
            agreement::PrivateKey::from_private_key_der(agreement_algorithm(curve), pkcs8_der)
                .map_err(rejected)?;
        Ok(Box::new(AwsEcKey {
            curve,
            signing,
            agreeing,
        }))
    }

    fn generate_ec(&self, curve: EcCurve) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let key = signature::EcdsaKeyPair::generate(ecdsa_signing(curve))
            .map_err(|_| KeyError::OperationFailed)?;
        let der = key.to_pkcs8v1().map_err(|_| KeyError::OperationFailed)?;
        Ok(Zeroizing::new(der.as_ref().to_vec()))
    }

    fn load_x25519(&self, private_key: &[u8]) -> Result<Box<dyn X25519PrivateOps>, KeyError> {
        let key = agreement::PrivateKey::from_private_key(&agreement::X25519, private_key)
            .map_err(|e| KeyError::Parse(e.to_string()))?;
        let public_key = key
            .compute_public_key()
            .map_err(|_| KeyError::OperationFailed)?
            .as_ref()
            .to_vec();
        Ok(Box::new(AwsX25519Key { key, public_key }))
    }
}

struct AwsX25519Key {
    key: agreement::PrivateKey,
    public_key: Vec<u8>,
}

impl X25519PrivateOps for AwsX25519Key {
    fn public_key(&self) -> Vec<u8> {
        self.public_key.clone()
    }

    fn agree(&self, peer_public_key: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        // AWS-LC refuses a small-order peer key (an all-zero shared secret) itself.
        if peer_public_key.len() != crate::x25519::KEY_LEN {
            return Err(KeyError::OperationFailed);
        }
        agreement::agree(
            &self.key,
            agreement::UnparsedPublicKey::new(&agreement::X25519, peer_public_key),
            KeyError::OperationFailed,
            |z| Ok(Zeroizing::new(z.to_vec())),
        )
    }
}

fn ecdsa_signing(curve: EcCurve) -> &'static signature::EcdsaSigningAlgorithm {
    match curve {
        EcCurve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        EcCurve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        EcCurve::P521 => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
    }
}

struct AwsEcKey {
    curve: EcCurve,
    signing: signature::EcdsaKeyPair,
    agreeing: agreement::PrivateKey,
}

impl EcPrivateOps for AwsEcKey {
    fn public_point(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair as _;
        self.signing.public_key().as_ref().to_vec()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let signature = self
            .signing
            .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
            .map_err(|_| KeyError::OperationFailed)?;
        Ok(signature.as_ref().to_vec())
    }

    fn agree(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        // Only an uncompressed point of this curve; aws-lc checks that it lies on the curve.
        if peer_point.len() != 1 + 2 * self.curve.bits().div_ceil(8) {
            return Err(KeyError::OperationFailed);
        }
        agreement::agree(
            &self.agreeing,
            agreement::UnparsedPublicKey::new(agreement_algorithm(self.curve), peer_point),
            KeyError::OperationFailed,
            |z| Ok(Zeroizing::new(z.to_vec())),
        )
    }
}

impl RsaPrivateOps for AwsKey {
    fn raw_decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.raw.decrypt_no_padding(ciphertext)
    }

    fn decrypt_oaep(
        &self,
        digest: DigestAlg,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let algorithm = match digest {
            DigestAlg::Sha1 => &OAEP_SHA1_MGF1SHA1,
            DigestAlg::Sha256 => &OAEP_SHA256_MGF1SHA256,
            other => {
                return Err(KeyError::Unsupported(
                    format!("OAEP with {}", other.name()),
                    NAME,
                ))
            }
        };
        let mut out = Zeroizing::new(vec![0u8; self.oaep.min_output_size()]);
        let len = self
            .oaep
            .decrypt(algorithm, ciphertext, &mut out, None)
            .map_err(|_| KeyError::OperationFailed)?
            .len();
        out.truncate(len);
        Ok(out)
    }

    fn sign_digest(&self, scheme: RsaSignature, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (encoding, algorithm): (&'static dyn signature::RsaEncoding, _) = match scheme {
            RsaSignature::Pkcs1v15(DigestAlg::Sha256) => {
                (&signature::RSA_PKCS1_SHA256, &digest::SHA256)
            }
            RsaSignature::Pkcs1v15(DigestAlg::Sha384) => {
                (&signature::RSA_PKCS1_SHA384, &digest::SHA384)
            }
            RsaSignature::Pkcs1v15(DigestAlg::Sha512) => {
                (&signature::RSA_PKCS1_SHA512, &digest::SHA512)
            }
            RsaSignature::Pss {
                digest: DigestAlg::Sha256,
                ..
            } => (&signature::RSA_PSS_SHA256, &digest::SHA256),
            RsaSignature::Pss {
                digest: DigestAlg::Sha384,
                ..
            } => (&signature::RSA_PSS_SHA384, &digest::SHA384),
            RsaSignature::Pss {
                digest: DigestAlg::Sha512,
                ..
            } => (&signature::RSA_PSS_SHA512, &digest::SHA512),
            other => {
                return Err(KeyError::Unsupported(
                    format!("signing with {} ", other.digest().name()),
                    NAME,
                ))
            }
        };
        let digest = digest::Digest::import_less_safe(digest, algorithm)
            .map_err(|_| KeyError::OperationFailed)?;
        let mut signature = vec![0u8; self.signing.public_modulus_len()];
        self.signing
            .sign_digest(encoding, &digest, &mut signature)
            .map_err(|_| KeyError::OperationFailed)?;
        Ok(signature)
    }
}

struct PublicKeys;

impl PublicKeyProvider for PublicKeys {
    fn verify(
        &self,
        spki_der: &[u8],
        scheme: RsaSignature,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<(), PublicKeyError> {
        let key = crate::keys::rsa_public_key(spki_der)?;
        raw::verify(&key.pkcs1_der, scheme, digest, signature)
    }

    fn encrypt(
        &self,
        spki_der: &[u8],
        transport: KeyTransport,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, PublicKeyError> {
        crate::keys::rsa_public_key(spki_der)?;
        let key = PublicEncryptingKey::from_der(spki_der)
            .map_err(|e| PublicKeyError::BadKey(e.to_string()))?;
        let failed = |_| PublicKeyError::EncryptionFailed;
        let mut out = vec![0u8; key.key_size_bytes()];
        let len = match transport {
            KeyTransport::RsaPkcs1v15 => Pkcs1PublicEncryptingKey::new(key)
                .map_err(failed)?
                .encrypt(plaintext, &mut out)
                .map_err(failed)?
                .len(),
            KeyTransport::EcdhX963(_) | KeyTransport::EcdhHkdfSha256 => {
                return Err(crate::not_rsa_transport())
            }
            KeyTransport::RsaOaepSha1 | KeyTransport::RsaOaepSha256 => {
                let algorithm = if transport == KeyTransport::RsaOaepSha1 {
                    &OAEP_SHA1_MGF1SHA1
                } else {
                    &OAEP_SHA256_MGF1SHA256
                };
                OaepPublicEncryptingKey::new(key)
                    .map_err(failed)?
                    .encrypt(algorithm, plaintext, &mut out, None)
                    .map_err(failed)?
                    .len()
            }
        };
        out.truncate(len);
        Ok(out)
    }

    fn verify_ecdsa(
        &self,
        spki_der: &[u8],
        digest_alg: DigestAlg,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<(), PublicKeyError> {
        let PublicKeyAlg::Ec { curve } = crate::keys::public_key_alg(spki_der)? else {
            return Err(PublicKeyError::Unsupported("ECDSA needs an EC key".into()));
        };
        let unsupported = || {
            PublicKeyError::Unsupported(format!(
                "ECDSA on {} with {}",
                curve.name(),
                digest_alg.name()
            ))
        };
        let algorithm: &'static signature::EcdsaVerificationAlgorithm = match (curve, digest_alg) {
            (EcCurve::P256, DigestAlg::Sha1) => &signature::ECDSA_P256_SHA1_ASN1,
            (EcCurve::P256, DigestAlg::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
            (EcCurve::P256, DigestAlg::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
            (EcCurve::P256, DigestAlg::Sha512) => &signature::ECDSA_P256_SHA512_ASN1,
            (EcCurve::P384, DigestAlg::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
            (EcCurve::P384, DigestAlg::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
            (EcCurve::P384, DigestAlg::Sha512) => &signature::ECDSA_P384_SHA512_ASN1,
            (EcCurve::P521, DigestAlg::Sha1) => &signature::ECDSA_P521_SHA1_ASN1,
            (EcCurve::P521, DigestAlg::Sha224) => &signature::ECDSA_P521_SHA224_ASN1,
            (EcCurve::P521, DigestAlg::Sha256) => &signature::ECDSA_P521_SHA256_ASN1,
            (EcCurve::P521, DigestAlg::Sha384) => &signature::ECDSA_P521_SHA384_ASN1,
            (EcCurve::P521, DigestAlg::Sha512) => &signature::ECDSA_P521_SHA512_ASN1,
            _ => return Err(unsupported()),
        };
        let digest = digest::Digest::import_less_safe(digest, aws_digest(digest_alg))
            .map_err(|_| PublicKeyError::BadSignature)?;
        signature::UnparsedPublicKey::new(algorithm, spki_der)
            .verify_digest(&digest, signature)
            .map_err(|_| PublicKeyError::BadSignature)
    }

    fn verify_ed25519(
        &self,
        spki_der: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), PublicKeyError> {
        if crate::keys::public_key_alg(spki_der)? != PublicKeyAlg::Ed25519 {
            return Err(PublicKeyError::Unsupported(
                "Ed25519 needs an Ed25519 key".into(),
            ));
        }
        signature::UnparsedPublicKey::new(&signature::ED25519, spki_der)
            .verify(message, signature)
            .map_err(|_| PublicKeyError::BadSignature)
    }

    fn agree_ephemeral(&self, spki_der: &[u8]) -> Result<EphemeralAgreement, PublicKeyError> {
        let algorithm = match crate::keys::public_key_alg(spki_der)? {
            PublicKeyAlg::Ec { curve } => agreement_algorithm(curve),
            PublicKeyAlg::X25519 => &agreement::X25519,
            other => {
                return Err(PublicKeyError::Unsupported(format!(
                    "key agreement with an {} key",
                    other.name()
                )))
            }
        };
        let peer = crate::keys::public_key_bits(spki_der)?;
        let failed = |_| PublicKeyError::AgreementFailed;
        let ephemeral = agreement::PrivateKey::generate(algorithm).map_err(failed)?;
        let public_key = ephemeral
            .compute_public_key()
            .map_err(failed)?
            .as_ref()
            .to_vec();
        let shared_secret = agreement::agree(
            &ephemeral,
            agreement::UnparsedPublicKey::new(algorithm, &peer),
            PublicKeyError::AgreementFailed,
            |z| Ok(Zeroizing::new(z.to_vec())),
        )?;
        Ok(EphemeralAgreement {
            public_key,
            shared_secret,
        })
    }
}

fn agreement_algorithm(curve: EcCurve) -> &'static agreement::Algorithm {
    match curve {
        EcCurve::P256 => &agreement::ECDH_P256,
        EcCurve::P384 => &agreement::ECDH_P384,
        EcCurve::P521 => &agreement::ECDH_P521,
    }
}

fn aws_digest(alg: DigestAlg) -> &'static digest::Algorithm {
    match alg {
        DigestAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        DigestAlg::Sha224 => &digest::SHA224,
        DigestAlg::Sha256 => &digest::SHA256,
        DigestAlg::Sha384 => &digest::SHA384,
        DigestAlg::Sha512 => &digest::SHA512,
    }
}

fn kek(key: &[u8]) -> Result<AesKek, CipherError> {
    let cipher = match key.len() {
        16 => &key_wrap::AES_128,
        32 => &key_wrap::AES_256,
        _ => return Err(CipherError::BadParameters),
    };
    AesKek::new(cipher, key).map_err(|_| CipherError::BadParameters)
}

struct Ciphers;

fn cbc_algorithm(key: &[u8]) -> Result<&'static aws_lc_rs::cipher::Algorithm, CipherError> {
    match key.len() {
        16 => Ok(&aws_lc_rs::cipher::AES_128),
        24 => Ok(&aws_lc_rs::cipher::AES_192),
        32 => Ok(&aws_lc_rs::cipher::AES_256),
        _ => Err(CipherError::BadParameters),
    }
}

fn gcm_key(key: &[u8]) -> Result<LessSafeKey, CipherError> {
    let algorithm = match key.len() {
        16 => &aead::AES_128_GCM,
        24 => &aead::AES_192_GCM,
        32 => &aead::AES_256_GCM,
        _ => return Err(CipherError::BadParameters),
    };
    UnboundKey::new(algorithm, key)
        .map(LessSafeKey::new)
        .map_err(|_| CipherError::BadParameters)
}

fn iv128(iv: &[u8]) -> Result<FixedLength<16>, CipherError> {
    <[u8; 16]>::try_from(iv)
        .map(FixedLength::from)
        .map_err(|_| CipherError::BadParameters)
}

impl CipherProvider for Ciphers {
    fn cbc_encrypt(&self, key: &[u8], iv: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CipherError> {
        let key = UnboundCipherKey::new(cbc_algorithm(key)?, key)
            .map_err(|_| CipherError::BadParameters)?;
        let key =
            PaddedBlockEncryptingKey::cbc_pkcs7(key).map_err(|_| CipherError::BadParameters)?;
        let mut buffer = Vec::with_capacity(plaintext.len() + 16);
        buffer.extend_from_slice(plaintext);
        key.less_safe_encrypt(&mut buffer, EncryptionContext::Iv128(iv128(iv)?))
            .map_err(|_| CipherError::EncryptionFailed)?;
        Ok(buffer)
    }

    fn cbc_decrypt(&self, key: &[u8], iv: &[u8], buffer: &mut [u8]) -> Result<usize, CipherError> {
        let key = UnboundCipherKey::new(cbc_algorithm(key)?, key)
            .map_err(|_| CipherError::BadParameters)?;
        let key =
            PaddedBlockDecryptingKey::cbc_pkcs7(key).map_err(|_| CipherError::BadParameters)?;
        key.decrypt(buffer, DecryptionContext::Iv128(iv128(iv)?))
            .map(|plain| plain.len())
            .map_err(|_| CipherError::DecryptionFailed)
    }

    fn gcm_seal(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; 16], CipherError> {
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| CipherError::BadParameters)?;
        let tag = gcm_key(key)?
            .seal_in_place_separate_tag(nonce, Aad::from(aad), buffer)
            .map_err(|_| CipherError::EncryptionFailed)?;
        <[u8; 16]>::try_from(tag.as_ref()).map_err(|_| CipherError::EncryptionFailed)
    }

    fn gcm_open(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        buffer: &mut [u8],
        tag: &[u8],
    ) -> Result<(), CipherError> {
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| CipherError::BadParameters)?;
        gcm_key(key)?
            .open_in_place_separate_tag(nonce, Aad::from(aad), tag, buffer)
            .map(|_| ())
            .map_err(|_| CipherError::DecryptionFailed)
    }

    fn aes_key_wrap(&self, kek_bytes: &[u8], key: &[u8]) -> Result<Vec<u8>, CipherError> {
        let mut out = vec![0u8; key.len() + 8];
        let len = kek(kek_bytes)?
            .wrap(key, &mut out)
            .map_err(|_| CipherError::EncryptionFailed)?
            .len();
        out.truncate(len);
        Ok(out)
    }

    fn aes_key_unwrap(
        &self,
        kek_bytes: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CipherError> {
        let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
        let len = kek(kek_bytes)?
            .unwrap(wrapped, &mut out)
            .map_err(|_| CipherError::DecryptionFailed)?
            .len();
        out.truncate(len);
        Ok(out)
    }
}

struct Digests;

struct AwsHasher(digest::Context);

impl Hasher for AwsHasher {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.finish().as_ref().to_vec()
    }
}

impl DigestProvider for Digests {
    fn hasher(&self, alg: DigestAlg) -> Box<dyn Hasher> {
        Box::new(AwsHasher(digest::Context::new(aws_digest(alg))))
    }

    fn hmac_sha256(&self, key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        let mut context = hmac::Context::with_key(&key);
        for part in parts {
            context.update(part);
        }
        let mut out = [0u8; 32];
        for (o, t) in out.iter_mut().zip(context.sign().as_ref()) {
            *o = *t;
        }
        out
    }
}

struct Random;

impl SecureRandom for Random {
    fn fill(&self, out: &mut [u8]) -> Result<(), RandomError> {
        aws_lc_rs::rand::SystemRandom::new()
            .fill(out)
            .map_err(|_| RandomError)
    }
}
