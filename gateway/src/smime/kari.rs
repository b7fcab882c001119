//! Key-agreement recipients (RFC 5652 §6.2.2): ECDH ephemeral-static on the NIST curves with
//! the X9.63 KDF and AES key wrap (RFC 5753, profiled by RFC 8551), and on X25519 with
//! HKDF-SHA256 (RFC 8418). The sender makes a fresh key pair per message and recipient; the
//! recipient derives the same key-encryption key from its static key and the sender's
//! ephemeral public key.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    KeyAgreeRecipientIdentifier, KeyAgreeRecipientInfo, OriginatorIdentifierOrKey,
    OriginatorPublicKey, RecipientEncryptedKey,
};
use der::asn1::{BitString, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::crypto::{CryptoProvider, PrivateKeyOps, PublicKeyAlg};
use super::error::{Result, SmimeError};
use crypto_provider::{kdf, DigestAlg, EcCurve, KeyTransport};

const OID_STD_DH_SHA1KDF: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.133.16.840.63.0.2");
const OID_STD_DH_SHA224KDF: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.1.11.0");
const OID_STD_DH_SHA256KDF: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.1.11.1");
const OID_STD_DH_SHA384KDF: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.1.11.2");
const OID_STD_DH_SHA512KDF: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.1.11.3");
// The cofactor variants: every NIST prime curve has cofactor 1, so they compute the same.
const OID_COFACTOR_DH_SHA1KDF: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.133.16.840.63.0.3");
const OID_COFACTOR_DH_SHA224KDF: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.1.14.0");
const OID_COFACTOR_DH_SHA256KDF: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.1.14.1");
const OID_COFACTOR_DH_SHA384KDF: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.1.14.2");
const OID_COFACTOR_DH_SHA512KDF: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.1.14.3");
// RFC 8418 §2.2. Its HKDF-SHA-384/512 siblings (…3.20, …3.21) are not read: the providers'
// HMAC is SHA-256 only, and X448, which RFC 8418 pairs with SHA-512, is not supported.
const OID_STD_DH_HKDF_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.3.19");

const OID_AES128_WRAP: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.5");
const OID_AES192_WRAP: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.25");
const OID_AES256_WRAP: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.45");

/// The scheme a `keyEncryptionAlgorithm` OID names (RFC 5753 §7.1.4, RFC 8418 §2).
pub fn kdf_from_oid(oid: &ObjectIdentifier) -> Option<KeyTransport> {
    if *oid == OID_STD_DH_HKDF_SHA256 {
        return Some(KeyTransport::EcdhHkdfSha256);
    }
    Some(KeyTransport::EcdhX963(match *oid {
        OID_STD_DH_SHA1KDF | OID_COFACTOR_DH_SHA1KDF => DigestAlg::Sha1,
        OID_STD_DH_SHA224KDF | OID_COFACTOR_DH_SHA224KDF => DigestAlg::Sha224,
        OID_STD_DH_SHA256KDF | OID_COFACTOR_DH_SHA256KDF => DigestAlg::Sha256,
        OID_STD_DH_SHA384KDF | OID_COFACTOR_DH_SHA384KDF => DigestAlg::Sha384,
        OID_STD_DH_SHA512KDF | OID_COFACTOR_DH_SHA512KDF => DigestAlg::Sha512,
        _ => return None,
    }))
}

fn x963_oid(digest: DigestAlg) -> ObjectIdentifier {
    match digest {
        DigestAlg::Sha1 => OID_STD_DH_SHA1KDF,
        DigestAlg::Sha224 => OID_STD_DH_SHA224KDF,
        DigestAlg::Sha256 => OID_STD_DH_SHA256KDF,
        DigestAlg::Sha384 => OID_STD_DH_SHA384KDF,
        DigestAlg::Sha512 => OID_STD_DH_SHA512KDF,
    }
}

/// The key-encryption key's length for a key-wrap OID.
fn wrap_key_len(oid: &ObjectIdentifier) -> Option<usize> {
    match *oid {
        OID_AES128_WRAP => Some(16),
        OID_AES192_WRAP => Some(24),
        OID_AES256_WRAP => Some(32),
        _ => None,
    }
}

/// RFC 5753 §7.2: ECC-CMS-SharedInfo, the KDF's SharedInfo.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EccCmsSharedInfo {
    key_info: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    entity_u_info: Option<OctetString>,
    /// The key-encryption key's length in bits, 32-bit big-endian.
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT")]
    supp_pub_info: OctetString,
}

/// The key-encryption key: the scheme's KDF over Z with the SharedInfo that names the wrap
/// algorithm. `None` for a scheme that is no key agreement.
fn derive_kek(
    crypto: &CryptoProvider,
    scheme: KeyTransport,
    shared_secret: &[u8],
    wrap: &AlgorithmIdentifierOwned,
    ukm: Option<&OctetString>,
    kek_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let bits = u32::try_from(kek_len * 8).map_err(|_| SmimeError::DecryptionFailed)?;
    let shared_info = EccCmsSharedInfo {
        key_info: AlgorithmIdentifierOwned {
            oid: wrap.oid,
            parameters: None,
        },
        entity_u_info: ukm.cloned(),
        supp_pub_info: OctetString::new(bits.to_be_bytes().to_vec())?,
    }
    .to_der()?;
    match scheme {
        KeyTransport::EcdhX963(digest) => {
            kdf::x963(crypto.digests, digest, shared_secret, &shared_info, kek_len)
        }
        // RFC 8418 §2.2: the ukm, when present, is also the salt; without one HKDF uses its
        // zero salt. The SharedInfo is the info.
        KeyTransport::EcdhHkdfSha256 => kdf::hkdf_sha256(
            crypto.digests,
            ukm.map_or(&[][..], |u| u.as_bytes()),
            shared_secret,
            &shared_info,
            kek_len,
        ),
        KeyTransport::RsaPkcs1v15 | KeyTransport::RsaOaepSha1 | KeyTransport::RsaOaepSha256 => None,
    }
    .ok_or(SmimeError::DecryptionFailed)
}

/// How we agree a key with one kind of recipient key: the scheme (KDF), its OID, and the
/// algorithm that names the ephemeral key.
struct Agreement {
    /// The certificate's key type this agreement is for.
    key: PublicKeyAlg,
    scheme: KeyTransport,
    scheme_oid: ObjectIdentifier,
    originator_alg: ObjectIdentifier,
}

/// A KeyAgreeRecipientInfo for an EC certificate: a fresh ephemeral key on its curve, the
/// X9.63 KDF with the curve's digest (SHA-256 for P-256, SHA-384 for P-384, SHA-512 for
/// P-521) and AES-256 key wrap of the content-encryption key.
pub fn recipient(
    crypto: &CryptoProvider,
    cert: &Certificate,
    curve: EcCurve,
    cek: &[u8],
) -> Result<KeyAgreeRecipientInfo> {
    let digest = curve.digest();
    agreement_recipient(
        crypto,
        cert,
        &Agreement {
            key: PublicKeyAlg::Ec { curve },
            scheme: KeyTransport::EcdhX963(digest),
            scheme_oid: x963_oid(digest),
            // RFC 5753 §3.1.1: id-ecPublicKey, parameters absent (the curve is the
            // recipient's).
            originator_alg: PublicKeyAlg::EC_PUBLIC_KEY_OID,
        },
        cek,
    )
}

/// A KeyAgreeRecipientInfo for an X25519 certificate (RFC 8418): a fresh ephemeral X25519
/// key, `dhSinglePass-stdDH-hkdf-sha256-scheme` (no ukm, so HKDF's zero salt) and AES-256
/// key wrap of the content-encryption key, as for EC recipients.
pub fn recipient_x25519(
    crypto: &CryptoProvider,
    cert: &Certificate,
    cek: &[u8],
) -> Result<KeyAgreeRecipientInfo> {
    agreement_recipient(
        crypto,
        cert,
        &Agreement {
            key: PublicKeyAlg::X25519,
            scheme: KeyTransport::EcdhHkdfSha256,
            scheme_oid: OID_STD_DH_HKDF_SHA256,
            // RFC 8418 §3: id-X25519, parameters absent, the 32 key bytes.
            originator_alg: PublicKeyAlg::X25519_OID,
        },
        cek,
    )
}

fn agreement_recipient(
    crypto: &CryptoProvider,
    cert: &Certificate,
    agreement: &Agreement,
    cek: &[u8],
) -> Result<KeyAgreeRecipientInfo> {
    let spki = cert.tbs_certificate.subject_public_key_info.to_der()?;
    // The ephemeral key is made for the certificate's key type: it must be the one the
    // scheme and the originator's algorithm name.
    let key = crypto_provider::keys::public_key_alg(&spki)
        .map_err(|e| SmimeError::Certificate(e.to_string()))?;
    if key != agreement.key {
        return Err(SmimeError::Certificate(format!(
            "key agreement for an {} key with an {} certificate",
            agreement.key.name(),
            key.name()
        )));
    }
    let agreed = crypto
        .public_keys
        .agree_ephemeral(&spki)
        .map_err(|e| SmimeError::Certificate(format!("key agreement: {e}")))?;
    let wrap = AlgorithmIdentifierOwned {
        oid: OID_AES256_WRAP,
        parameters: None,
    };
    let kek = derive_kek(
        crypto,
        agreement.scheme,
        &agreed.shared_secret,
        &wrap,
        None,
        32,
    )?;
    let wrapped = crypto
        .ciphers
        .aes_key_wrap(&kek, cek)
        .map_err(|e| SmimeError::Encoding(format!("AES key wrap: {e}")))?;
    Ok(KeyAgreeRecipientInfo {
        version: CmsVersion::V3,
        originator: OriginatorIdentifierOrKey::OriginatorKey(OriginatorPublicKey {
            algorithm: AlgorithmIdentifierOwned {
                oid: agreement.originator_alg,
                parameters: None,
            },
            public_key: BitString::from_bytes(&agreed.public_key)?,
        }),
        ukm: None,
        key_enc_alg: AlgorithmIdentifierOwned {
            oid: agreement.scheme_oid,
            parameters: Some(Any::encode_from(&wrap)?),
        },
        recipient_enc_keys: vec![RecipientEncryptedKey {
            rid: KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: cert.tbs_certificate.issuer.clone(),
                serial_number: cert.tbs_certificate.serial_number.clone(),
            }),
            enc_key: OctetString::new(wrapped)?,
        }],
    })
}

/// What a KeyAgreeRecipientInfo says about its algorithms: the KDF and the wrap.
pub fn algorithms(
    kari: &KeyAgreeRecipientInfo,
) -> Result<(KeyTransport, AlgorithmIdentifierOwned)> {
    let kdf = kdf_from_oid(&kari.key_enc_alg.oid).ok_or_else(|| {
        SmimeError::UnsupportedKeyTransport(format!("key agreement {}", kari.key_enc_alg.oid))
    })?;
    let wrap = kari
        .key_enc_alg
        .parameters
        .as_ref()
        .map(|p| p.to_der())
        .transpose()?
        .map(|der| AlgorithmIdentifierOwned::from_der(&der))
        .transpose()?
        .filter(|w| wrap_key_len(&w.oid).is_some())
        .ok_or_else(|| {
            SmimeError::UnsupportedKeyTransport("key agreement without an AES key wrap".into())
        })?;
    Ok((kdf, wrap))
}

/// The content-encryption key of `encrypted_key` (one RecipientEncryptedKey of `kari`) for our
/// EC or X25519 key: ECDH with the originator's ephemeral key, the KDF, AES key unwrap. `None`
/// for every failure — an originator that is no key of our type or no point on our curve, a
/// small-order X25519 key, a wrong KDF or wrap, an unwrap whose integrity check fails, a key of
/// the wrong length — so they all end in the caller's one decryption error. AES key wrap
/// authenticates: a `Some` is the sender's key.
pub fn unwrap(
    crypto: &CryptoProvider,
    kari: &KeyAgreeRecipientInfo,
    encrypted_key: &[u8],
    key: &dyn PrivateKeyOps,
    key_len: usize,
) -> Option<Zeroizing<Vec<u8>>> {
    let (scheme, wrap) = algorithms(kari).ok()?;
    let OriginatorIdentifierOrKey::OriginatorKey(originator) = &kari.originator else {
        return None;
    };
    // The ephemeral key is of our key's type: an EC key, its curve ours (RFC 5753 §3.1.1), or
    // an X25519 key with parameters absent (RFC 8418 §3). Either KDF may go with either
    // (RFC 8418 §2 allows the X9.63 schemes with X25519 too). The type is read from the
    // public key, which every `PrivateKeyOps` (a wrapper, an HSM) states.
    let spki = key.public_key_spki_der().ok()?;
    let ours = match crypto_provider::keys::public_key_alg(&spki).ok()? {
        PublicKeyAlg::Ec { .. } => PublicKeyAlg::EC_PUBLIC_KEY_OID,
        PublicKeyAlg::X25519 if originator.algorithm.parameters.is_none() => {
            PublicKeyAlg::X25519_OID
        }
        _ => return None,
    };
    if originator.algorithm.oid != ours {
        return None;
    }
    let point = originator.public_key.as_bytes()?;
    let shared_secret = key.agree(point).ok()?;
    let kek_len = wrap_key_len(&wrap.oid)?;
    let ukm = kari.ukm.as_ref();
    let kek = derive_kek(crypto, scheme, &shared_secret, &wrap, ukm, kek_len).ok()?;
    let cek = crypto.ciphers.aes_key_unwrap(&kek, encrypted_key).ok()?;
    (cek.len() == key_len).then_some(cek)
}
