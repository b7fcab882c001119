//! The pure-Rust backend: the RustCrypto crates. `rsa` 0.9 carries RUSTSEC-2023-0071 (Marvin,
//! a timing side channel in its big-integer arithmetic); every private operation here passes
//! an RNG so it is at least blinded, and the PKCS#1 v1.5 check is the shared constant-time one
//! (`crate::implicit_rejection`). Prefer the aws-lc-rs backend where a C toolchain exists.

use aes::cipher::consts::U16;
use aes::cipher::{
    block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, BlockSizeUser, KeyIvInit,
};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::KeyInit;
use hmac::Mac;
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rand::rngs::OsRng;
use rand::RngCore;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use sha2::Digest;
use zeroize::Zeroizing;

use crate::{
    CipherError, CipherProvider, CryptoProvider, DigestAlg, DigestProvider, EcCurve, EcPrivateOps,
    EphemeralAgreement, Hasher, KeyError, KeyProvider, KeyTransport, PublicKeyAlg, PublicKeyError,
    PublicKeyProvider, RandomError, RsaPrivateOps, RsaSignature, SecureRandom, X25519PrivateOps,
    MAX_RSA_BITS,
};

mod curves;

const NAME: &str = "rust-crypto";

pub static PROVIDER: CryptoProvider = CryptoProvider {
    name: NAME,
    keys: &Keys,
    public_keys: &PublicKeys,
    ciphers: &Ciphers,
    digests: &Digests,
    random: &Random,
};

struct Keys;

struct RustKey(RsaPrivateKey);

impl KeyProvider for Keys {
    fn load_pkcs8(&self, pkcs8_der: &[u8]) -> Result<Box<dyn RsaPrivateOps>, KeyError> {
        let key =
            RsaPrivateKey::from_pkcs8_der(pkcs8_der).map_err(|e| KeyError::Parse(e.to_string()))?;
        Ok(Box::new(RustKey(key)))
    }

    fn generate_rsa(&self, bits: usize) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        if !matches!(bits, 2048 | 3072 | 4096) {
            return Err(KeyError::UnsupportedKeySize(bits));
        }
        let key = RsaPrivateKey::new(&mut OsRng, bits).map_err(|_| KeyError::OperationFailed)?;
        let der = key.to_pkcs8_der().map_err(|_| KeyError::OperationFailed)?;
        Ok(Zeroizing::new(der.as_bytes().to_vec()))
    }

    fn load_ec_pkcs8(
        &self,
        curve: EcCurve,
        pkcs8_der: &[u8],
    ) -> Result<Box<dyn EcPrivateOps>, KeyError> {
        curves::load(curve, pkcs8_der)
    }

    fn generate_ec(&self, curve: EcCurve) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        curves::generate(curve)
    }

    fn load_x25519(&self, private_key: &[u8]) -> Result<Box<dyn X25519PrivateOps>, KeyError> {
        curves::load_x25519(private_key)
    }
}

fn pkcs1v15_sign(digest: DigestAlg) -> Pkcs1v15Sign {
    match digest {
        DigestAlg::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
        DigestAlg::Sha224 => Pkcs1v15Sign::new::<sha2::Sha224>(),
        DigestAlg::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
        DigestAlg::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
        DigestAlg::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
    }
}

fn pss(digest: DigestAlg, salt_len: usize) -> Pss {
    match digest {
        DigestAlg::Sha1 => Pss::new_with_salt::<sha1::Sha1>(salt_len),
        DigestAlg::Sha224 => Pss::new_with_salt::<sha2::Sha224>(salt_len),
        DigestAlg::Sha256 => Pss::new_with_salt::<sha2::Sha256>(salt_len),
        DigestAlg::Sha384 => Pss::new_with_salt::<sha2::Sha384>(salt_len),
        DigestAlg::Sha512 => Pss::new_with_salt::<sha2::Sha512>(salt_len),
    }
}

impl RsaPrivateOps for RustKey {
    fn raw_decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let k = self.0.size();
        if ciphertext.len() != k {
            return Err(KeyError::OperationFailed);
        }
        let c = BigUint::from_bytes_be(ciphertext);
        // Blinded (the RNG), and checked by re-encryption against fault attacks.
        let m = Zeroizing::new(
            rsa::hazmat::rsa_decrypt_and_check(&self.0, Some(&mut OsRng), &c)
                .map_err(|_| KeyError::OperationFailed)?,
        );
        let bytes = Zeroizing::new(m.to_bytes_be());
        let mut out = Zeroizing::new(vec![0u8; k]);
        let start = k
            .checked_sub(bytes.len())
            .ok_or(KeyError::OperationFailed)?;
        out.get_mut(start..)
            .ok_or(KeyError::OperationFailed)?
            .copy_from_slice(&bytes);
        Ok(out)
    }

    fn decrypt_oaep(
        &self,
        digest: DigestAlg,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let padding = match digest {
            DigestAlg::Sha1 => Oaep::new::<sha1::Sha1>(),
            DigestAlg::Sha256 => Oaep::new::<sha2::Sha256>(),
            other => {
                return Err(KeyError::Unsupported(
                    format!("OAEP with {}", other.name()),
                    NAME,
                ))
            }
        };
        self.0
            .decrypt_blinded(&mut OsRng, padding, ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| KeyError::OperationFailed)
    }

    fn sign_digest(&self, scheme: RsaSignature, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        let signed = match scheme {
            RsaSignature::Pkcs1v15(d) => self.0.sign_with_rng(&mut OsRng, pkcs1v15_sign(d), digest),
            RsaSignature::Pss { digest: d, .. } => {
                self.0
                    .sign_with_rng(&mut OsRng, pss(d, d.output_len()), digest)
            }
        };
        signed.map_err(|_| KeyError::OperationFailed)
    }
}

struct PublicKeys;

fn public_key(spki_der: &[u8]) -> Result<RsaPublicKey, PublicKeyError> {
    let key = crate::keys::rsa_public_key(spki_der)?;
    let parsed = RsaPublicKey::from_pkcs1_der(&key.pkcs1_der)
        .map_err(|e| PublicKeyError::BadKey(e.to_string()))?;
    RsaPublicKey::new_with_max_size(parsed.n().clone(), parsed.e().clone(), MAX_RSA_BITS)
        .map_err(|e| PublicKeyError::BadKey(e.to_string()))
}

impl PublicKeyProvider for PublicKeys {
    fn verify(
        &self,
        spki_der: &[u8],
        scheme: RsaSignature,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<(), PublicKeyError> {
        let key = public_key(spki_der)?;
        let verified = match scheme {
            RsaSignature::Pkcs1v15(d) => key.verify(pkcs1v15_sign(d), digest, signature),
            RsaSignature::Pss {
                digest: d,
                salt_len,
            } => key.verify(pss(d, salt_len), digest, signature),
        };
        verified.map_err(|_| PublicKeyError::BadSignature)
    }

    fn encrypt(
        &self,
        spki_der: &[u8],
        transport: KeyTransport,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, PublicKeyError> {
        let key = public_key(spki_der)?;
        let encrypted = match transport {
            KeyTransport::RsaPkcs1v15 => key.encrypt(&mut OsRng, Pkcs1v15Encrypt, plaintext),
            KeyTransport::RsaOaepSha1 => {
                key.encrypt(&mut OsRng, Oaep::new::<sha1::Sha1>(), plaintext)
            }
            KeyTransport::RsaOaepSha256 => {
                key.encrypt(&mut OsRng, Oaep::new::<sha2::Sha256>(), plaintext)
            }
            KeyTransport::EcdhX963(_) | KeyTransport::EcdhHkdfSha256 => {
                return Err(crate::not_rsa_transport())
            }
        };
        encrypted.map_err(|_| PublicKeyError::EncryptionFailed)
    }

    fn verify_ecdsa(
        &self,
        spki_der: &[u8],
        _digest_alg: DigestAlg,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<(), PublicKeyError> {
        let PublicKeyAlg::Ec { curve } = crate::keys::public_key_alg(spki_der)? else {
            return Err(PublicKeyError::Unsupported("ECDSA needs an EC key".into()));
        };
        curves::verify_ecdsa(
            curve,
            &crate::keys::public_key_bits(spki_der)?,
            digest,
            signature,
        )
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
        curves::verify_ed25519(&crate::keys::public_key_bits(spki_der)?, message, signature)
    }

    fn agree_ephemeral(&self, spki_der: &[u8]) -> Result<EphemeralAgreement, PublicKeyError> {
        let peer = crate::keys::public_key_bits(spki_der)?;
        match crate::keys::public_key_alg(spki_der)? {
            PublicKeyAlg::Ec { curve } => curves::agree_ephemeral(curve, &peer),
            PublicKeyAlg::X25519 => curves::agree_x25519(&peer),
            other => Err(PublicKeyError::Unsupported(format!(
                "key agreement with an {} key",
                other.name()
            ))),
        }
    }
}

/// RFC 3394 §2.2.1 with the default IV.
const KEY_WRAP_IV: [u8; 8] = [0xA6; 8];

/// AES key wrap (RFC 3394 §2.2.1), one AES block per step; `Aes` fixes the KEK size.
fn key_wrap<Aes: aes::cipher::BlockEncrypt + KeyInit + BlockSizeUser<BlockSize = U16>>(
    kek: &[u8],
    key: &[u8],
) -> Result<Vec<u8>, CipherError> {
    if key.len() < 16 || !key.len().is_multiple_of(8) {
        return Err(CipherError::BadParameters);
    }
    let cipher = Aes::new_from_slice(kek).map_err(|_| CipherError::BadParameters)?;
    let n = key.len() / 8;
    let mut a = KEY_WRAP_IV;
    let mut r = Zeroizing::new(key.to_vec());
    let mut block = aes::Block::default();
    for j in 0..6u64 {
        for (i, chunk) in r.chunks_exact_mut(8).enumerate() {
            {
                let (high, low) = block.split_at_mut(8);
                high.copy_from_slice(&a);
                low.copy_from_slice(chunk);
            }
            cipher.encrypt_block(&mut block);
            let t = (n as u64) * j + i as u64 + 1;
            let (high, low) = block.split_at(8);
            for (x, (b, tb)) in a.iter_mut().zip(high.iter().zip(t.to_be_bytes())) {
                *x = b ^ tb;
            }
            chunk.copy_from_slice(low);
        }
    }
    let mut out = a.to_vec();
    out.extend_from_slice(&r);
    Ok(out)
}

/// RFC 3394 §2.2.2, the integrity check compared in constant time.
fn key_unwrap<Aes: aes::cipher::BlockDecrypt + KeyInit + BlockSizeUser<BlockSize = U16>>(
    kek: &[u8],
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CipherError> {
    if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
        return Err(CipherError::DecryptionFailed);
    }
    let cipher = Aes::new_from_slice(kek).map_err(|_| CipherError::BadParameters)?;
    let n = wrapped.len() / 8 - 1;
    let Some((&(mut a), rest)) = wrapped.split_first_chunk::<8>() else {
        return Err(CipherError::DecryptionFailed);
    };
    let mut r = Zeroizing::new(rest.to_vec());
    let mut block = aes::Block::default();
    for j in (0..6u64).rev() {
        for (i, chunk) in r.chunks_exact_mut(8).enumerate().rev() {
            let t = (n as u64) * j + i as u64 + 1;
            {
                let (high, low) = block.split_at_mut(8);
                for (b, (x, tb)) in high.iter_mut().zip(a.iter().zip(t.to_be_bytes())) {
                    *b = x ^ tb;
                }
                low.copy_from_slice(chunk);
            }
            cipher.decrypt_block(&mut block);
            let (high, low) = block.split_at(8);
            a.copy_from_slice(high);
            chunk.copy_from_slice(low);
        }
    }
    zeroize::Zeroize::zeroize(block.as_mut_slice());
    if bool::from(subtle::ConstantTimeEq::ct_eq(&a[..], &KEY_WRAP_IV[..])) {
        Ok(r)
    } else {
        Err(CipherError::DecryptionFailed)
    }
}

struct Ciphers;

macro_rules! by_key_len {
    ($key:expr, $aes:ident => $body:expr) => {
        match $key.len() {
            16 => {
                type $aes = aes::Aes128;
                $body
            }
            24 => {
                type $aes = aes::Aes192;
                $body
            }
            32 => {
                type $aes = aes::Aes256;
                $body
            }
            _ => Err(CipherError::BadParameters),
        }
    };
}

impl CipherProvider for Ciphers {
    fn cbc_encrypt(&self, key: &[u8], iv: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CipherError> {
        by_key_len!(key, Aes => cbc::Encryptor::<Aes>::new_from_slices(key, iv)
            .map_err(|_| CipherError::BadParameters)
            .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plaintext)))
    }

    fn cbc_decrypt(&self, key: &[u8], iv: &[u8], buffer: &mut [u8]) -> Result<usize, CipherError> {
        by_key_len!(key, Aes => cbc::Decryptor::<Aes>::new_from_slices(key, iv)
            .map_err(|_| CipherError::BadParameters)?
            .decrypt_padded_mut::<Pkcs7>(buffer)
            .map(|plain| plain.len())
            .map_err(|_| CipherError::DecryptionFailed))
    }

    fn gcm_seal(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; 16], CipherError> {
        if nonce.len() != 12 {
            return Err(CipherError::BadParameters);
        }
        let nonce = aes_gcm::Nonce::from_slice(nonce);
        by_key_len!(key, Aes => aes_gcm::AesGcm::<Aes, aes_gcm::aead::consts::U12>::new_from_slice(key)
            .map_err(|_| CipherError::BadParameters)?
            .encrypt_in_place_detached(nonce, aad, buffer)
            .map(|tag| tag.into())
            .map_err(|_| CipherError::EncryptionFailed))
    }

    fn gcm_open(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        buffer: &mut [u8],
        tag: &[u8],
    ) -> Result<(), CipherError> {
        if nonce.len() != 12 || tag.len() != 16 {
            return Err(CipherError::BadParameters);
        }
        let nonce = aes_gcm::Nonce::from_slice(nonce);
        let tag = aes_gcm::Tag::from_slice(tag);
        by_key_len!(key, Aes => aes_gcm::AesGcm::<Aes, aes_gcm::aead::consts::U12>::new_from_slice(key)
            .map_err(|_| CipherError::BadParameters)?
            .decrypt_in_place_detached(nonce, aad, buffer, tag)
            .map_err(|_| CipherError::DecryptionFailed))
    }

    fn aes_key_wrap(&self, kek: &[u8], key: &[u8]) -> Result<Vec<u8>, CipherError> {
        by_key_len!(kek, Aes => key_wrap::<Aes>(kek, key))
    }

    fn aes_key_unwrap(
        &self,
        kek: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CipherError> {
        by_key_len!(kek, Aes => key_unwrap::<Aes>(kek, wrapped))
    }
}

struct Digests;

enum RustHasher {
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher for RustHasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(data),
            Self::Sha224(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    fn finish(self: Box<Self>) -> Vec<u8> {
        match *self {
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha224(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha384(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

impl DigestProvider for Digests {
    fn hasher(&self, alg: DigestAlg) -> Box<dyn Hasher> {
        Box::new(match alg {
            DigestAlg::Sha1 => RustHasher::Sha1(sha1::Sha1::new()),
            DigestAlg::Sha224 => RustHasher::Sha224(sha2::Sha224::new()),
            DigestAlg::Sha256 => RustHasher::Sha256(sha2::Sha256::new()),
            DigestAlg::Sha384 => RustHasher::Sha384(sha2::Sha384::new()),
            DigestAlg::Sha512 => RustHasher::Sha512(sha2::Sha512::new()),
        })
    }

    fn hmac_sha256(&self, key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        // HMAC accepts keys of any length; the error arm cannot happen.
        let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key) else {
            return [0u8; 32];
        };
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

struct Random;

impl SecureRandom for Random {
    fn fill(&self, out: &mut [u8]) -> Result<(), RandomError> {
        OsRng.try_fill_bytes(out).map_err(|_| RandomError)
    }
}
