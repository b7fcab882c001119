//! The algorithms the engine speaks, mapped to and from their OIDs.

use const_oid::db::{rfc5911, rfc5912};
use const_oid::ObjectIdentifier;

pub use crypto_provider::{DigestAlg, KeyTransport};

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

/// How a signature was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureScheme {
    RsaPkcs1v15,
    RsaPss,
    /// ECDSA (RFC 5753/8551) on P-256, P-384 or P-521.
    Ecdsa,
    /// PureEdDSA with Ed25519 (RFC 8419).
    Ed25519,
}
