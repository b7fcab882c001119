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

/// How the content-encryption key travels to a recipient (RSA key transport).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyTransport {
    /// RSA PKCS#1 v1.5: what Outlook expects, our default.
    RsaPkcs1v15,
    /// RSAES-OAEP with SHA-1 (the OID's defaults).
    RsaOaepSha1,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256.
    RsaOaepSha256,
}

impl KeyTransport {
    pub fn name(self) -> &'static str {
        match self {
            Self::RsaPkcs1v15 => "rsa-pkcs1v15",
            Self::RsaOaepSha1 => "rsa-oaep-sha1",
            Self::RsaOaepSha256 => "rsa-oaep-sha256",
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
