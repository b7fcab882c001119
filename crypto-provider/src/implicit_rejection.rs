//! Unwrapping a content-encryption key with deterministic implicit rejection.
//!
//! A gateway decrypts attacker-chosen RSA ciphertext, so whether PKCS#1 v1.5 padding was valid
//! must not show (Bleichenbacher, Marvin). The backend only computes RSADP (the raw private
//! operation); the padding check happens here, in constant time, for both backends. When the
//! padding is bad, or the key has the wrong length, the result is a *synthetic* key derived
//! from the private key and the ciphertext, as RFC 8017bis (draft-kario-rsa-guidance) and
//! OpenSSL 3.2 do: KDK = HMAC-SHA256(SHA-256(d), ciphertext), synthetic key =
//! HMAC-SHA256(KDK, label || length || counter). The same message therefore always meets the
//! same fate, whatever the timing or the RNG, and a forged key fails later, at the content,
//! exactly like a wrong key does.
//!
//! Why not let the library check the padding: AWS-LC's own `RSA_PKCS1_PADDING` check is
//! constant time but returns an error, and its header says that API contract "makes it
//! impossible to completely avoid Bleichenbacher's attack"; it recommends `RSA_NO_PADDING`
//! plus a constant-time check and substitute key, which is what this module is.

use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::{DigestAlg, DigestProvider, KeyTransport, RsaPrivateOps};

const LABEL: &[u8] = b"smime-gateway implicit rejection: content-encryption key";

/// A content-encryption key, genuine or synthetic.
pub struct UnwrappedKey {
    pub key: Zeroizing<Vec<u8>>,
    /// False when the key is the synthetic substitute. The engine uses it only to prefer a
    /// genuine unwrap over a synthetic one of the *same* private key (see `smime::decrypt`);
    /// it must never decide an answer that an outsider sees on its own.
    pub genuine: bool,
}

/// The per-key secret: SHA-256 of the private exponent (big-endian, no leading zeros).
pub fn key_derivation_key(
    digests: &dyn DigestProvider,
    private_exponent: &[u8],
) -> Zeroizing<[u8; 32]> {
    let mut hasher = digests.hasher(DigestAlg::Sha256);
    hasher.update(private_exponent);
    let digest = Zeroizing::new(hasher.finish());
    let mut out = Zeroizing::new([0u8; 32]);
    for (o, d) in out.iter_mut().zip(digest.iter()) {
        *o = *d;
    }
    out
}

/// The substitute key for `ciphertext`: a pure function of the key secret and the ciphertext.
pub fn synthetic_key(
    digests: &dyn DigestProvider,
    secret: &[u8; 32],
    ciphertext: &[u8],
    key_len: usize,
) -> Zeroizing<Vec<u8>> {
    let kdk = Zeroizing::new(digests.hmac_sha256(secret, &[ciphertext]));
    let mut out = Zeroizing::new(Vec::with_capacity(key_len + 32));
    let length = u16::try_from(key_len).unwrap_or(u16::MAX).to_be_bytes();
    let mut counter: u16 = 0;
    while out.len() < key_len {
        let block = Zeroizing::new(
            digests.hmac_sha256(kdk.as_ref(), &[LABEL, &length, &counter.to_be_bytes()]),
        );
        out.extend_from_slice(block.as_ref());
        counter = counter.wrapping_add(1);
    }
    out.truncate(key_len);
    out
}

/// Unwrap a `key_len`-byte key; never fails, see the module docs.
pub fn unwrap(
    ops: &dyn RsaPrivateOps,
    digests: &dyn DigestProvider,
    secret: &[u8; 32],
    transport: KeyTransport,
    ciphertext: &[u8],
    key_len: usize,
) -> UnwrappedKey {
    let synthetic = synthetic_key(digests, secret, ciphertext, key_len);
    match transport {
        KeyTransport::RsaPkcs1v15 => match ops.raw_decrypt(ciphertext) {
            Ok(encoded) => select_pkcs1v15(&encoded, &synthetic),
            // Wrong length or not below the modulus: public properties of the ciphertext.
            Err(_) => UnwrappedKey {
                key: synthetic,
                genuine: false,
            },
        },
        KeyTransport::RsaOaepSha1 | KeyTransport::RsaOaepSha256 => {
            let digest = if transport == KeyTransport::RsaOaepSha1 {
                DigestAlg::Sha1
            } else {
                DigestAlg::Sha256
            };
            // OAEP's own check is the library's (constant time in both); only the final
            // length test and the choice of key are ours.
            match ops.decrypt_oaep(digest, ciphertext) {
                Ok(key) if key.len() == key_len => UnwrappedKey { key, genuine: true },
                _ => UnwrappedKey {
                    key: synthetic,
                    genuine: false,
                },
            }
        }
        // Key agreement is no RSA operation: a message that claims it for an RSA key fails
        // like any other forgery.
        KeyTransport::EcdhX963(_) | KeyTransport::EcdhHkdfSha256 => UnwrappedKey {
            key: synthetic,
            genuine: false,
        },
    }
}

/// EME-PKCS1-v1_5 decoding of `encoded` (the RSADP output, modulus-long) for a message of
/// exactly `synthetic.len()` bytes: 00 02 PS(at least 8 non-zero bytes) 00 M. Every byte is
/// looked at and the result selected without a branch on secret data; because the message
/// length is fixed, M sits at a public offset.
pub fn select_pkcs1v15(encoded: &[u8], synthetic: &[u8]) -> UnwrappedKey {
    let m_len = synthetic.len();
    // 00 02, PS (at least 8 bytes), 00, then M: where it splits depends on public lengths only.
    let Some(([first, second, padding @ .., separator], message)) = encoded
        .len()
        .checked_sub(m_len)
        .and_then(|at| encoded.split_at_checked(at))
        .filter(|(head, _)| head.len() >= 11)
    else {
        return UnwrappedKey {
            key: Zeroizing::new(synthetic.to_vec()),
            genuine: false,
        };
    };
    let mut good = first.ct_eq(&0) & second.ct_eq(&2) & separator.ct_eq(&0);
    for byte in padding {
        good &= !byte.ct_eq(&0);
    }
    let mut key = Zeroizing::new(vec![0u8; m_len]);
    for ((out, s), m) in key.iter_mut().zip(synthetic).zip(message) {
        *out = u8::conditional_select(s, m, good);
    }
    UnwrappedKey {
        key,
        genuine: bool::from(good),
    }
}
