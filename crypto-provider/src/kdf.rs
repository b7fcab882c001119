//! The key-derivation functions of key agreement, built once on the backends' digests and
//! HMAC: ANSI X9.63 (RFC 5753) and HKDF-SHA256 (RFC 5869, used by RFC 8418).

use zeroize::Zeroizing;

use crate::{DigestAlg, DigestProvider};

/// Longest output either KDF is asked for: a key-encryption key (AES-256 is 32 bytes).
pub const MAX_OUTPUT: usize = 64;

/// X9.63: `Hash(Z || counter || SharedInfo)` for counter = 1, 2, ... until `len` bytes.
/// `None` for a length above [`MAX_OUTPUT`].
pub fn x963(
    digests: &dyn DigestProvider,
    digest: DigestAlg,
    shared_secret: &[u8],
    shared_info: &[u8],
    len: usize,
) -> Option<Zeroizing<Vec<u8>>> {
    if len > MAX_OUTPUT {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(len + digest.output_len()));
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut hasher = digests.hasher(digest);
        hasher.update(shared_secret);
        hasher.update(&counter.to_be_bytes());
        hasher.update(shared_info);
        out.extend_from_slice(&Zeroizing::new(hasher.finish()));
        counter += 1;
    }
    out.truncate(len);
    Some(out)
}

/// HKDF-SHA256 extract-then-expand; an empty `salt` means the RFC 5869 default (zeros).
/// `None` for a length above [`MAX_OUTPUT`].
pub fn hkdf_sha256(
    digests: &dyn DigestProvider,
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    len: usize,
) -> Option<Zeroizing<Vec<u8>>> {
    if len > MAX_OUTPUT {
        return None;
    }
    let zero_salt = [0u8; 32];
    let salt = if salt.is_empty() {
        &zero_salt[..]
    } else {
        salt
    };
    let prk = Zeroizing::new(digests.hmac_sha256(salt, &[ikm]));
    let mut out = Zeroizing::new(Vec::with_capacity(len + 32));
    let mut previous = Zeroizing::new(Vec::new());
    let mut counter: u8 = 1;
    while out.len() < len {
        let block = Zeroizing::new(digests.hmac_sha256(&*prk, &[&previous, info, &[counter]]));
        out.extend_from_slice(&*block);
        *previous = block.to_vec();
        counter += 1;
    }
    out.truncate(len);
    Some(out)
}
