//! X25519 private keys (RFC 8410): PKCS#8 with id-X25519, parameters absent, the private key
//! a 32-byte `CurvePrivateKey` OCTET STRING. Parsed here once; the backends receive the raw
//! 32 bytes, as both AWS-LC and `x25519-dalek` take them.

use der::asn1::OctetStringRef;
use der::{Decode, Encode};
use pkcs8::{AlgorithmIdentifierRef, PrivateKeyInfo};
use zeroize::Zeroizing;

use crate::{KeyError, PublicKeyAlg};

/// Length of an X25519 private key, public key and shared secret (RFC 7748).
pub const KEY_LEN: usize = 32;

/// An X25519 private key from PEM `PRIVATE KEY` or PKCS#8 DER: the raw 32 bytes.
/// [`KeyError::UnsupportedKeyType`] when the PKCS#8 holds another algorithm.
pub fn parse(bytes: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let der = crate::keys::pkcs8_der(bytes)?;
    let info =
        PrivateKeyInfo::try_from(der.as_slice()).map_err(|e| KeyError::Parse(e.to_string()))?;
    if info.algorithm.oid != PublicKeyAlg::X25519_OID {
        return Err(KeyError::UnsupportedKeyType);
    }
    // RFC 8410 §3: the parameters MUST be absent.
    if info.algorithm.parameters.is_some() {
        return Err(KeyError::Parse(
            "X25519 key with algorithm parameters".into(),
        ));
    }
    let inner =
        OctetStringRef::from_der(info.private_key).map_err(|e| KeyError::Parse(e.to_string()))?;
    let raw: [u8; KEY_LEN] = inner
        .as_bytes()
        .try_into()
        .map_err(|_| KeyError::Parse("X25519 private key is not 32 bytes".into()))?;
    Ok(Zeroizing::new(raw))
}

/// The SubjectPublicKeyInfo DER of an X25519 public key (RFC 8410 §4).
pub fn spki_der(public_key: &[u8]) -> Result<Vec<u8>, KeyError> {
    spki::SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: PublicKeyAlg::X25519_OID,
            parameters: None,
        },
        subject_public_key: der::asn1::BitStringRef::from_bytes(public_key)
            .map_err(|e| KeyError::Parse(e.to_string()))?,
    }
    .to_der()
    .map_err(|e| KeyError::Parse(e.to_string()))
}
