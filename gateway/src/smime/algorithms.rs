//! The algorithms the engine speaks, mapped to and from their OIDs.

use const_oid::db::{rfc5911, rfc5912};
use const_oid::ObjectIdentifier;
use sha2::Digest;

use super::error::SmimeError;

pub const OID_DATA: ObjectIdentifier = rfc5911::ID_DATA;
pub const OID_SIGNED_DATA: ObjectIdentifier = rfc5911::ID_SIGNED_DATA;
pub const OID_ENVELOPED_DATA: ObjectIdentifier = rfc5911::ID_ENVELOPED_DATA;
pub const OID_AUTH_ENVELOPED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.23");

pub const OID_RSA_ENCRYPTION: ObjectIdentifier = rfc5912::RSA_ENCRYPTION;
pub const OID_RSAES_OAEP: ObjectIdentifier = rfc5912::ID_RSAES_OAEP;
pub const OID_RSASSA_PSS: ObjectIdentifier = rfc5912::ID_RSASSA_PSS;
pub const OID_MGF1: ObjectIdentifier = rfc5912::ID_MGF_1;

pub const OID_ATTR_CONTENT_TYPE: ObjectIdentifier = rfc5911::ID_CONTENT_TYPE;
pub const OID_ATTR_MESSAGE_DIGEST: ObjectIdentifier = rfc5911::ID_MESSAGE_DIGEST;
pub const OID_ATTR_SIGNING_TIME: ObjectIdentifier = rfc5911::ID_SIGNING_TIME;
pub const OID_ATTR_SMIME_CAPABILITIES: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.15");

const OID_AES128_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.2");
const OID_AES192_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.22");
const OID_AES256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");
const OID_AES128_GCM: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.6");
const OID_AES192_GCM: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.26");
const OID_AES256_GCM: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.46");
const OID_DES_EDE3_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.3.7");
const OID_RC2_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.3.2");
const OID_DES_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.7");

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

/// Content-encryption algorithms we read and write. Legacy ciphers have no variant: they are
/// refused on input ([`ContentCipher::from_oid`]) and can never be produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContentCipher {
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
    Aes128Gcm,
    Aes192Gcm,
    Aes256Gcm,
}

impl ContentCipher {
    pub fn from_oid(oid: &ObjectIdentifier) -> Result<Self, SmimeError> {
        Ok(match *oid {
            OID_AES128_CBC => Self::Aes128Cbc,
            OID_AES192_CBC => Self::Aes192Cbc,
            OID_AES256_CBC => Self::Aes256Cbc,
            OID_AES128_GCM => Self::Aes128Gcm,
            OID_AES192_GCM => Self::Aes192Gcm,
            OID_AES256_GCM => Self::Aes256Gcm,
            OID_DES_EDE3_CBC => return Err(SmimeError::LegacyCipher("3DES (des-ede3-cbc)")),
            OID_RC2_CBC => return Err(SmimeError::LegacyCipher("RC2")),
            OID_DES_CBC => return Err(SmimeError::LegacyCipher("DES")),
            other => return Err(SmimeError::UnsupportedCipher(other.to_string())),
        })
    }

    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Aes128Cbc => OID_AES128_CBC,
            Self::Aes192Cbc => OID_AES192_CBC,
            Self::Aes256Cbc => OID_AES256_CBC,
            Self::Aes128Gcm => OID_AES128_GCM,
            Self::Aes192Gcm => OID_AES192_GCM,
            Self::Aes256Gcm => OID_AES256_GCM,
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Cbc | Self::Aes128Gcm => 16,
            Self::Aes192Cbc | Self::Aes192Gcm => 24,
            Self::Aes256Cbc | Self::Aes256Gcm => 32,
        }
    }

    pub fn is_aead(self) -> bool {
        matches!(self, Self::Aes128Gcm | Self::Aes192Gcm | Self::Aes256Gcm)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Aes128Cbc => "aes128-cbc",
            Self::Aes192Cbc => "aes192-cbc",
            Self::Aes256Cbc => "aes256-cbc",
            Self::Aes128Gcm => "aes128-gcm",
            Self::Aes192Gcm => "aes192-gcm",
            Self::Aes256Gcm => "aes256-gcm",
        }
    }
}

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

    pub fn hasher(self) -> Hasher {
        match self {
            Self::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Self::Sha224 => Hasher::Sha224(sha2::Sha224::new()),
            Self::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Self::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Self::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }
}

/// An incremental hash over one of [`DigestAlg`], so content can be hashed piece by piece
/// (CRLF canonicalisation feeds it line by line without a second copy of the message).
pub enum Hasher {
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(data),
            Self::Sha224(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha224(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha384(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
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

/// How a signature was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureScheme {
    RsaPkcs1v15,
    RsaPss,
}
