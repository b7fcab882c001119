//! The two AWS-LC calls aws-lc-rs does not offer (see the module docs of the parent). Every
//! pointer is owned by [`Rsa`], freed on drop; lengths are checked before each call.

use std::os::raw::c_int;

use aws_lc_sys as ffi;
use zeroize::Zeroizing;

use crate::{DigestAlg, KeyError, PublicKeyError, RsaSignature};

/// An owned AWS-LC `RSA` object.
struct Rsa(*mut ffi::RSA);

// AWS-LC's RSA objects may be used from several threads at once once created (its blinding
// state is internally locked); nothing here mutates the key itself.
unsafe impl Send for Rsa {}
unsafe impl Sync for Rsa {}

impl Drop for Rsa {
    fn drop(&mut self) {
        // SAFETY: the pointer came from an AWS-LC constructor and is freed once, here.
        unsafe { ffi::RSA_free(self.0) }
    }
}

impl Rsa {
    fn size(&self) -> usize {
        // SAFETY: a valid RSA object.
        unsafe { ffi::RSA_size(self.0) as usize }
    }
}

/// Errors leave entries in AWS-LC's per-thread error queue; drop them so they do not pile up
/// or surface in an unrelated later call.
fn clear_errors() {
    // SAFETY: no arguments, thread-local state only.
    unsafe { ffi::ERR_clear_error() }
}

pub(super) struct RsaKey(Rsa);

impl RsaKey {
    pub(super) fn from_pkcs8(pkcs8_der: &[u8]) -> Result<Self, KeyError> {
        let info = pkcs8::PrivateKeyInfo::try_from(pkcs8_der)
            .map_err(|e| KeyError::Parse(e.to_string()))?;
        let pkcs1 = info.private_key;
        // SAFETY: pointer and length of a live slice; the result is checked for null.
        let rsa = unsafe { ffi::RSA_private_key_from_bytes(pkcs1.as_ptr(), pkcs1.len()) };
        if rsa.is_null() {
            clear_errors();
            return Err(KeyError::Parse("AWS-LC refused the RSA key".into()));
        }
        Ok(Self(Rsa(rsa)))
    }

    /// RSADP, blinded by AWS-LC, no padding check: the caller does it in constant time.
    pub(super) fn decrypt_no_padding(
        &self,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let k = self.0.size();
        if ciphertext.len() != k {
            return Err(KeyError::OperationFailed);
        }
        let mut out = Zeroizing::new(vec![0u8; k]);
        let mut out_len = 0usize;
        // SAFETY: `out` has room for `k` bytes, as `max_out` says; `ciphertext` is live.
        let ok = unsafe {
            ffi::RSA_decrypt(
                self.0 .0,
                &mut out_len,
                out.as_mut_ptr(),
                out.len(),
                ciphertext.as_ptr(),
                ciphertext.len(),
                ffi::RSA_NO_PADDING as c_int,
            )
        };
        // Fails only for a ciphertext not below the modulus: a public property.
        if ok != 1 || out_len != k {
            clear_errors();
            return Err(KeyError::OperationFailed);
        }
        Ok(out)
    }
}

fn nid_and_md(digest: DigestAlg) -> (c_int, *const ffi::EVP_MD) {
    // SAFETY: the EVP_* functions return pointers to static tables.
    unsafe {
        match digest {
            DigestAlg::Sha1 => (ffi::NID_sha1 as c_int, ffi::EVP_sha1()),
            DigestAlg::Sha224 => (ffi::NID_sha224 as c_int, ffi::EVP_sha224()),
            DigestAlg::Sha256 => (ffi::NID_sha256 as c_int, ffi::EVP_sha256()),
            DigestAlg::Sha384 => (ffi::NID_sha384 as c_int, ffi::EVP_sha384()),
            DigestAlg::Sha512 => (ffi::NID_sha512 as c_int, ffi::EVP_sha512()),
        }
    }
}

/// Verify an RSA signature over a precomputed digest; `pkcs1_public` is an `RSAPublicKey` DER
/// already bounded in size by `keys::rsa_public_key`.
pub(super) fn verify(
    pkcs1_public: &[u8],
    scheme: RsaSignature,
    digest: &[u8],
    signature: &[u8],
) -> Result<(), PublicKeyError> {
    if digest.len() != scheme.digest().output_len() {
        return Err(PublicKeyError::BadSignature);
    }
    // SAFETY: pointer and length of a live slice; the result is checked for null.
    let rsa = unsafe { ffi::RSA_public_key_from_bytes(pkcs1_public.as_ptr(), pkcs1_public.len()) };
    if rsa.is_null() {
        clear_errors();
        return Err(PublicKeyError::BadKey(
            "AWS-LC refused the RSA public key".into(),
        ));
    }
    let rsa = Rsa(rsa);
    let k = rsa.size();
    if signature.len() != k {
        return Err(PublicKeyError::BadSignature);
    }
    let (nid, md) = nid_and_md(scheme.digest());
    let ok = match scheme {
        // SAFETY: digest and signature are live slices with their lengths.
        RsaSignature::Pkcs1v15(_) => unsafe {
            ffi::RSA_verify(
                nid,
                digest.as_ptr(),
                digest.len(),
                signature.as_ptr(),
                signature.len(),
                rsa.0,
            ) == 1
        },
        RsaSignature::Pss { salt_len, .. } => {
            let salt_len = c_int::try_from(salt_len).map_err(|_| PublicKeyError::BadSignature)?;
            let mut encoded = vec![0u8; k];
            let mut encoded_len = 0usize;
            // SAFETY: `encoded` has room for `k` bytes; `signature` is live and `k` long.
            let opened = unsafe {
                ffi::RSA_verify_raw(
                    rsa.0,
                    &mut encoded_len,
                    encoded.as_mut_ptr(),
                    encoded.len(),
                    signature.as_ptr(),
                    signature.len(),
                    ffi::RSA_NO_PADDING as c_int,
                ) == 1
            };
            // SAFETY: `digest` has the md's length (checked above), `encoded` is `k` long.
            opened
                && encoded_len == k
                && unsafe {
                    ffi::RSA_verify_PKCS1_PSS_mgf1(
                        rsa.0,
                        digest.as_ptr(),
                        md,
                        md,
                        encoded.as_ptr(),
                        salt_len,
                    ) == 1
                }
        }
    };
    if ok {
        Ok(())
    } else {
        clear_errors();
        Err(PublicKeyError::BadSignature)
    }
}
