//! Key parsing shared by every backend: PEM or DER, PKCS#8 or PKCS#1 for RSA, PKCS#8 for EC. Parsing needs
//! no private-key arithmetic, so it is done once here with the `pkcs1`/`pkcs8` encoders; the
//! backends receive normalised PKCS#8 DER.

use der::asn1::AnyRef;
use der::{Decode, Encode};
use pkcs8::{AlgorithmIdentifierRef, PrivateKeyInfo};
use zeroize::Zeroizing;

use crate::{EcCurve, KeyError, PublicKeyAlg, PublicKeyError, MAX_RSA_BITS};

const OID_RSA_ENCRYPTION: const_oid::ObjectIdentifier = const_oid::db::rfc5912::RSA_ENCRYPTION;

/// An RSA private key, checked and normalised.
pub struct ParsedKey {
    pub pkcs8_der: Zeroizing<Vec<u8>>,
    /// Big-endian, without leading zeros: seeds the implicit-rejection secret.
    pub private_exponent: Zeroizing<Vec<u8>>,
    pub spki_der: Vec<u8>,
    pub bits: usize,
}

/// PEM (`PRIVATE KEY` or `RSA PRIVATE KEY`) or DER (PKCS#8, else PKCS#1).
pub fn parse(bytes: &[u8]) -> Result<ParsedKey, KeyError> {
    let (label, der) = match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN") => {
            let pem = text
                .find("-----BEGIN")
                .and_then(|start| text.get(start..))
                .unwrap_or(text);
            let (label, der) =
                der::pem::decode_vec(pem.as_bytes()).map_err(|e| KeyError::Parse(e.to_string()))?;
            (Some(label.to_string()), Zeroizing::new(der))
        }
        _ => (None, Zeroizing::new(bytes.to_vec())),
    };
    match label.as_deref() {
        Some("PRIVATE KEY") => from_pkcs8(&der),
        Some("RSA PRIVATE KEY") => from_pkcs1(&der),
        Some("ENCRYPTED PRIVATE KEY") => Err(KeyError::Parse(
            "encrypted private keys are not supported; decrypt it first".into(),
        )),
        Some(other) => Err(KeyError::Parse(format!(
            "expected an unencrypted PRIVATE KEY or RSA PRIVATE KEY PEM block, got {other}"
        ))),
        None => from_pkcs8(&der).or_else(|pkcs8_error| match pkcs8_error {
            KeyError::UnsupportedKeyType => Err(pkcs8_error),
            _ => from_pkcs1(&der).map_err(|_| pkcs8_error),
        }),
    }
}

fn from_pkcs8(der: &[u8]) -> Result<ParsedKey, KeyError> {
    let info = PrivateKeyInfo::try_from(der).map_err(|e| KeyError::Parse(e.to_string()))?;
    if info.algorithm.oid != OID_RSA_ENCRYPTION {
        return Err(KeyError::UnsupportedKeyType);
    }
    from_pkcs1(info.private_key)
}

fn from_pkcs1(der: &[u8]) -> Result<ParsedKey, KeyError> {
    let key = pkcs1::RsaPrivateKey::from_der(der).map_err(|e| KeyError::Parse(e.to_string()))?;
    if key.other_prime_infos.is_some() {
        return Err(KeyError::Parse(
            "multi-prime RSA keys are not supported".into(),
        ));
    }
    let bits = uint_bits(key.modulus.as_bytes());
    if !(1024..=MAX_RSA_BITS).contains(&bits) {
        return Err(KeyError::UnsupportedKeySize(bits));
    }
    let public = pkcs1::RsaPublicKey {
        modulus: key.modulus,
        public_exponent: key.public_exponent,
    };
    let spki_der = spki_der(
        &public
            .to_der()
            .map_err(|e| KeyError::Parse(e.to_string()))?,
    )
    .map_err(|e| KeyError::Parse(e.to_string()))?;
    let pkcs8 = PrivateKeyInfo {
        algorithm: rsa_algorithm(),
        private_key: der,
        public_key: None,
    };
    Ok(ParsedKey {
        pkcs8_der: Zeroizing::new(pkcs8.to_der().map_err(|e| KeyError::Parse(e.to_string()))?),
        private_exponent: Zeroizing::new(key.private_exponent.as_bytes().to_vec()),
        spki_der,
        bits,
    })
}

fn rsa_algorithm() -> AlgorithmIdentifierRef<'static> {
    AlgorithmIdentifierRef {
        oid: OID_RSA_ENCRYPTION,
        parameters: Some(AnyRef::NULL),
    }
}

fn spki_der(pkcs1_public: &[u8]) -> der::Result<Vec<u8>> {
    spki::SubjectPublicKeyInfoRef {
        algorithm: rsa_algorithm(),
        subject_public_key: der::asn1::BitStringRef::from_bytes(pkcs1_public)?,
    }
    .to_der()
}

fn uint_bits(big_endian: &[u8]) -> usize {
    let mut trimmed = big_endian;
    while let [0, rest @ ..] = trimmed {
        trimmed = rest;
    }
    match trimmed.first() {
        Some(top) => trimmed.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

/// An RSA public key from a SubjectPublicKeyInfo: the PKCS#1 `RSAPublicKey` DER inside it and
/// the modulus size, refused above [`MAX_RSA_BITS`] (it comes from outside).
pub struct PublicRsa {
    pub pkcs1_der: Vec<u8>,
    pub bits: usize,
}

pub fn rsa_public_key(spki_der: &[u8]) -> Result<PublicRsa, PublicKeyError> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| PublicKeyError::BadKey(e.to_string()))?;
    if info.algorithm.oid != OID_RSA_ENCRYPTION {
        return Err(PublicKeyError::Unsupported(format!(
            "unsupported public key algorithm {} (only RSA is supported)",
            info.algorithm.oid
        )));
    }
    // A key is a whole number of bytes: OpenSSL and NSS refuse a BIT STRING with unused bits,
    // so reading its bytes anyway would verify signatures the reader's client calls invalid.
    let pkcs1_der = info
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| PublicKeyError::BadKey("public key BIT STRING with unused bits".into()))?;
    let key = pkcs1::RsaPublicKey::from_der(pkcs1_der)
        .map_err(|e| PublicKeyError::BadKey(e.to_string()))?;
    let bits = uint_bits(key.modulus.as_bytes());
    if !(512..=MAX_RSA_BITS).contains(&bits) {
        return Err(PublicKeyError::Unsupported(format!(
            "RSA key of {bits} bits"
        )));
    }
    Ok(PublicRsa {
        pkcs1_der: pkcs1_der.to_vec(),
        bits,
    })
}

/// SubjectPublicKeyInfo DER of a PKCS#8 RSA key (for issuing its certificate).
pub fn spki_of_pkcs8(pkcs8_der: &[u8]) -> Result<Vec<u8>, KeyError> {
    Ok(from_pkcs8(pkcs8_der)?.spki_der)
}

/// What a SubjectPublicKeyInfo (DER, from outside) holds, with the key-size policy applied:
/// RSA up to [`MAX_RSA_BITS`], the NIST curves P-256/P-384/P-521 by name (explicit curve
/// parameters and smaller curves refused), Ed25519 and X25519. The point itself is checked by
/// the backend that uses it.
pub fn public_key_alg(spki_der: &[u8]) -> Result<PublicKeyAlg, PublicKeyError> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| PublicKeyError::BadKey(e.to_string()))?;
    let oid = info.algorithm.oid;
    if oid == OID_RSA_ENCRYPTION {
        return rsa_public_key(spki_der).map(|k| PublicKeyAlg::Rsa { bits: k.bits });
    }
    let key = info.subject_public_key.raw_bytes();
    if oid == PublicKeyAlg::EC_PUBLIC_KEY_OID {
        let curve = info
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
            .and_then(|c| EcCurve::from_oid(&c))
            .ok_or_else(|| {
                PublicKeyError::Unsupported(
                    "EC key on a curve other than P-256, P-384 or P-521 (by name)".into(),
                )
            })?;
        // An uncompressed point: 0x04, then two coordinates.
        let coordinate = curve.bits().div_ceil(8);
        if key.len() != 1 + 2 * coordinate || key.first() != Some(&4) {
            return Err(PublicKeyError::BadKey(format!(
                "{} public key is not an uncompressed point",
                curve.name()
            )));
        }
        return Ok(PublicKeyAlg::Ec { curve });
    }
    let raw_25519 = |alg| {
        if key.len() == 32 && info.algorithm.parameters.is_none() {
            Ok(alg)
        } else {
            Err(PublicKeyError::BadKey("malformed 25519 public key".into()))
        }
    };
    match oid {
        PublicKeyAlg::ED25519_OID => raw_25519(PublicKeyAlg::Ed25519),
        PublicKeyAlg::X25519_OID => raw_25519(PublicKeyAlg::X25519),
        other => Err(PublicKeyError::Unsupported(format!(
            "unsupported public key algorithm {other}"
        ))),
    }
}

/// The raw public key bits of a SubjectPublicKeyInfo (an EC point, a 25519 key).
pub fn public_key_bits(spki_der: &[u8]) -> Result<Vec<u8>, PublicKeyError> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| PublicKeyError::BadKey(e.to_string()))?;
    Ok(info.subject_public_key.raw_bytes().to_vec())
}

/// The PKCS#8 DER of a PEM `PRIVATE KEY` block, or `bytes` as they are (DER).
pub(crate) fn pkcs8_der(bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN PRIVATE KEY-----") => {
            let pem = text
                .find("-----BEGIN")
                .and_then(|start| text.get(start..))
                .unwrap_or(text);
            let (_, der) =
                der::pem::decode_vec(pem.as_bytes()).map_err(|e| KeyError::Parse(e.to_string()))?;
            Ok(Zeroizing::new(der))
        }
        _ => Ok(Zeroizing::new(bytes.to_vec())),
    }
}

/// An EC private key: PEM `PRIVATE KEY` or DER, PKCS#8 with a named curve (P-256/384/521).
/// Returns the curve and the PKCS#8 DER.
pub fn parse_ec(bytes: &[u8]) -> Result<(EcCurve, Zeroizing<Vec<u8>>), KeyError> {
    let der = pkcs8_der(bytes)?;
    let info =
        PrivateKeyInfo::try_from(der.as_slice()).map_err(|e| KeyError::Parse(e.to_string()))?;
    if info.algorithm.oid != PublicKeyAlg::EC_PUBLIC_KEY_OID {
        return Err(KeyError::UnsupportedKeyType);
    }
    let curve = info
        .algorithm
        .parameters
        .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
        .and_then(|oid| EcCurve::from_oid(&oid))
        .ok_or(KeyError::UnsupportedKeyType)?;
    Ok((curve, der))
}

/// The SubjectPublicKeyInfo DER of an EC public key (an uncompressed point).
pub fn ec_spki_der(curve: EcCurve, point: &[u8]) -> Result<Vec<u8>, KeyError> {
    let curve_oid = curve.oid();
    let params = AnyRef::from(&curve_oid);
    spki::SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: PublicKeyAlg::EC_PUBLIC_KEY_OID,
            parameters: Some(params),
        },
        subject_public_key: der::asn1::BitStringRef::from_bytes(point)
            .map_err(|e| KeyError::Parse(e.to_string()))?,
    }
    .to_der()
    .map_err(|e| KeyError::Parse(e.to_string()))
}
