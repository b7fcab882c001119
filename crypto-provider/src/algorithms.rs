//! The algorithm names the engine, the store and the backends share.

use const_oid::db::rfc5912;
use const_oid::ObjectIdentifier;

const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.4");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

const OID_SHA1_WITH_RSA: ObjectIdentifier = rfc5912::SHA_1_WITH_RSA_ENCRYPTION;
const OID_SHA224_WITH_RSA: ObjectIdentifier = rfc5912::SHA_224_WITH_RSA_ENCRYPTION;
const OID_SHA256_WITH_RSA: ObjectIdentifier = rfc5912::SHA_256_WITH_RSA_ENCRYPTION;
const OID_SHA384_WITH_RSA: ObjectIdentifier = rfc5912::SHA_384_WITH_RSA_ENCRYPTION;
const OID_SHA512_WITH_RSA: ObjectIdentifier = rfc5912::SHA_512_WITH_RSA_ENCRYPTION;

/// Message digests. SHA-1 is still read (and reported as weak) but never produced; SHA-224 is
/// read because other implementations verify it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DigestAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlg {
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Some(match *oid {
            OID_SHA1 => Self::Sha1,
            OID_SHA224 => Self::Sha224,
            OID_SHA256 => Self::Sha256,
            OID_SHA384 => Self::Sha384,
            OID_SHA512 => Self::Sha512,
            _ => return None,
        })
    }

    /// The digest named by a combined signature OID such as sha256WithRSAEncryption.
    pub fn from_rsa_signature_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Some(match *oid {
            OID_SHA1_WITH_RSA => Self::Sha1,
            OID_SHA224_WITH_RSA => Self::Sha224,
            OID_SHA256_WITH_RSA => Self::Sha256,
            OID_SHA384_WITH_RSA => Self::Sha384,
            OID_SHA512_WITH_RSA => Self::Sha512,
            _ => return None,
        })
    }

    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => OID_SHA1,
            Self::Sha224 => OID_SHA224,
            Self::Sha256 => OID_SHA256,
            Self::Sha384 => OID_SHA384,
            Self::Sha512 => OID_SHA512,
        }
    }

    pub fn rsa_signature_oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => OID_SHA1_WITH_RSA,
            Self::Sha224 => OID_SHA224_WITH_RSA,
            Self::Sha256 => OID_SHA256_WITH_RSA,
            Self::Sha384 => OID_SHA384_WITH_RSA,
            Self::Sha512 => OID_SHA512_WITH_RSA,
        }
    }

    pub fn is_weak(self) -> bool {
        self == Self::Sha1
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha224 => "sha224",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha224 => 28,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

/// How the content-encryption key travels to a recipient: RSA key transport, or key
/// agreement for EC and X25519 keys. Serialised as its [`KeyTransport::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTransport {
    /// RSA PKCS#1 v1.5: what Outlook expects, our default.
    RsaPkcs1v15,
    /// RSAES-OAEP with SHA-1 (the OID's defaults).
    RsaOaepSha1,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256.
    RsaOaepSha256,
    /// ECDH ephemeral-static with the ANSI X9.63 KDF over this digest and AES key wrap
    /// (RFC 5753 `dhSinglePass-stdDH-sha*kdf-scheme`): key agreement, for EC recipients
    /// (and X25519 ones, RFC 8418 §2.1).
    EcdhX963(DigestAlg),
    /// ECDH ephemeral-static with HKDF-SHA256 and AES key wrap (RFC 8418
    /// `dhSinglePass-stdDH-hkdf-sha256-scheme`): key agreement, for X25519 recipients.
    EcdhHkdfSha256,
}

impl serde::Serialize for KeyTransport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl KeyTransport {
    pub fn name(self) -> &'static str {
        match self {
            Self::RsaPkcs1v15 => "rsa-pkcs1v15",
            Self::RsaOaepSha1 => "rsa-oaep-sha1",
            Self::RsaOaepSha256 => "rsa-oaep-sha256",
            Self::EcdhX963(DigestAlg::Sha1) => "ecdh-x963-sha1",
            Self::EcdhX963(DigestAlg::Sha224) => "ecdh-x963-sha224",
            Self::EcdhX963(DigestAlg::Sha256) => "ecdh-x963-sha256",
            Self::EcdhX963(DigestAlg::Sha384) => "ecdh-x963-sha384",
            Self::EcdhX963(DigestAlg::Sha512) => "ecdh-x963-sha512",
            Self::EcdhHkdfSha256 => "ecdh-hkdf-sha256",
        }
    }
}

/// An RSA signature scheme with its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsaSignature {
    Pkcs1v15(DigestAlg),
    /// RSASSA-PSS with MGF1 over the same digest. Signing uses a salt as long as the digest.
    Pss {
        digest: DigestAlg,
        salt_len: usize,
    },
}

impl RsaSignature {
    pub fn digest(self) -> DigestAlg {
        match self {
            Self::Pkcs1v15(d) | Self::Pss { digest: d, .. } => d,
        }
    }
}

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

const OID_ECDSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");
const OID_ECDSA_SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.1");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");

/// The NIST curves of RFC 5753/8551, P-256 and up (smaller curves are refused everywhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EcCurve {
    P256,
    P384,
    P521,
}

impl EcCurve {
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Some(match *oid {
            OID_P256 => Self::P256,
            OID_P384 => Self::P384,
            OID_P521 => Self::P521,
            _ => return None,
        })
    }

    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::P256 => OID_P256,
            Self::P384 => OID_P384,
            Self::P521 => OID_P521,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    pub fn bits(self) -> usize {
        match self {
            Self::P256 => 256,
            Self::P384 => 384,
            Self::P521 => 521,
        }
    }

    /// The digest matched to the curve's strength (RFC 5753 §8): ECDSA signing and the X9.63
    /// KDF of key agreement use it.
    pub fn digest(self) -> DigestAlg {
        match self {
            Self::P256 => DigestAlg::Sha256,
            Self::P384 => DigestAlg::Sha384,
            Self::P521 => DigestAlg::Sha512,
        }
    }
}

/// What a SubjectPublicKeyInfo holds, as far as the gateway cares (see `keys::public_key_alg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum PublicKeyAlg {
    Rsa { bits: usize },
    Ec { curve: EcCurve },
    Ed25519,
    X25519,
}

impl PublicKeyAlg {
    /// The OID of id-ecPublicKey, the algorithm of every NIST-curve key.
    pub const EC_PUBLIC_KEY_OID: ObjectIdentifier = OID_EC_PUBLIC_KEY;
    pub const ED25519_OID: ObjectIdentifier = OID_ED25519;
    pub const X25519_OID: ObjectIdentifier = OID_X25519;

    /// The key size as certificate reports show it (RSA modulus, curve order).
    pub fn bits(self) -> usize {
        match self {
            Self::Rsa { bits } => bits,
            Self::Ec { curve } => curve.bits(),
            Self::Ed25519 | Self::X25519 => 256,
        }
    }

    /// Whether the key can sign (RSA, ECDSA, Ed25519) — X25519 only agrees keys.
    pub fn can_sign(self) -> bool {
        !matches!(self, Self::X25519)
    }

    /// Whether a content-encryption key can be sent to it (RSA transport, ECDH agreement).
    pub fn can_receive_keys(self) -> bool {
        !matches!(self, Self::Ed25519)
    }

    pub fn name(self) -> String {
        match self {
            Self::Rsa { bits } => format!("RSA-{bits}"),
            Self::Ec { curve } => format!("EC {}", curve.name()),
            Self::Ed25519 => "Ed25519".into(),
            Self::X25519 => "X25519".into(),
        }
    }
}

/// A signature algorithm with its parameters, for any key type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureAlg {
    Rsa(RsaSignature),
    /// ECDSA over the digest, the signature a DER `Ecdsa-Sig-Value`.
    Ecdsa(DigestAlg),
    /// PureEdDSA (RFC 8032) over the message itself.
    Ed25519,
}

impl SignatureAlg {
    /// The digest named by an `ecdsa-with-SHA*` signature OID.
    pub fn ecdsa_digest_from_oid(oid: &ObjectIdentifier) -> Option<DigestAlg> {
        Some(match *oid {
            OID_ECDSA_SHA1 => DigestAlg::Sha1,
            OID_ECDSA_SHA224 => DigestAlg::Sha224,
            OID_ECDSA_SHA256 => DigestAlg::Sha256,
            OID_ECDSA_SHA384 => DigestAlg::Sha384,
            OID_ECDSA_SHA512 => DigestAlg::Sha512,
            _ => return None,
        })
    }

    pub fn ecdsa_oid(digest: DigestAlg) -> ObjectIdentifier {
        match digest {
            DigestAlg::Sha1 => OID_ECDSA_SHA1,
            DigestAlg::Sha224 => OID_ECDSA_SHA224,
            DigestAlg::Sha256 => OID_ECDSA_SHA256,
            DigestAlg::Sha384 => OID_ECDSA_SHA384,
            DigestAlg::Sha512 => OID_ECDSA_SHA512,
        }
    }
}
