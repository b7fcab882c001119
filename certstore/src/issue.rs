//! Building certificates with x509-cert's builder: the proxy CA and proxy certificates.

use std::time::{Duration, SystemTime};

use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{Any, Ia5String, SetOfVec};
use der::{Encode, Tag};
use rand::rngs::OsRng;
use rand::RngCore;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::EncodePrivateKey;
use rsa::RsaPrivateKey;
use sha2::Sha256;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::ext::AsExtension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use zeroize::Zeroizing;

use crate::certinfo::EKU_EMAIL_PROTECTION;
use crate::error::StoreError;

pub(crate) const CA_KEY_BITS: usize = 3072;
pub(crate) const PROXY_KEY_BITS: usize = 2048;
const CA_VALIDITY: Duration = Duration::from_secs(20 * 36525 * 864); // 20 years of 365.25 days
/// Backdating absorbs clock skew between us and partners' mail clients.
const BACKDATE: Duration = Duration::from_secs(3600);
const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Build(e.to_string())
}

/// A single-RDN `CN=<cn>` name, built structurally so commas or `+` in `cn` cannot inject
/// further attributes (as string parsing would).
pub(crate) fn common_name(cn: &str) -> Result<Name, StoreError> {
    if cn.trim().is_empty() || cn.len() > 64 || cn.chars().any(char::is_control) {
        return Err(StoreError::InvalidSubject(cn.to_string()));
    }
    let value = Any::new(Tag::Utf8String, cn.as_bytes()).map_err(build_err)?;
    let atv = AttributeTypeAndValue { oid: OID_CN, value };
    let rdn = RelativeDistinguishedName(SetOfVec::try_from(vec![atv]).map_err(build_err)?);
    Ok(RdnSequence(vec![rdn]))
}

/// A random positive 127-bit serial (top bit clear, next bit set so DER needs no padding).
fn random_serial() -> Result<SerialNumber, StoreError> {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).map_err(build_err)
}

fn validity(duration: Duration) -> Result<Validity, StoreError> {
    let now = SystemTime::now();
    let start = now.checked_sub(BACKDATE).unwrap_or(now);
    let end = now
        .checked_add(duration)
        .ok_or_else(|| StoreError::Time("validity end overflows".into()))?;
    Ok(Validity {
        not_before: Time::try_from(start).map_err(|e| StoreError::Time(e.to_string()))?,
        not_after: Time::try_from(end).map_err(|e| StoreError::Time(e.to_string()))?,
    })
}

pub(crate) fn generate_key(bits: usize) -> Result<RsaPrivateKey, StoreError> {
    RsaPrivateKey::new(&mut OsRng, bits).map_err(|e| StoreError::Crypto(e.to_string()))
}

pub(crate) fn pkcs8_der(key: &RsaPrivateKey) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let doc = key
        .to_pkcs8_der()
        .map_err(|e| StoreError::Crypto(e.to_string()))?;
    Ok(Zeroizing::new(doc.as_bytes().to_vec()))
}

fn spki_of(key: &RsaPrivateKey) -> Result<SubjectPublicKeyInfoOwned, StoreError> {
    let der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| StoreError::Crypto(e.to_string()))?;
    SubjectPublicKeyInfoOwned::try_from(der.as_bytes()).map_err(build_err)
}

/// A self-signed proxy CA: basicConstraints CA (critical), keyUsage keyCertSign + cRLSign,
/// SKI; SHA-256 with RSA; 20 years.
pub(crate) fn build_ca(subject_cn: &str, key: &RsaPrivateKey) -> Result<Vec<u8>, StoreError> {
    let subject = common_name(subject_cn)?;
    let signer = SigningKey::<Sha256>::new(key.clone());
    let builder = CertificateBuilder::new(
        Profile::Root,
        random_serial()?,
        validity(CA_VALIDITY)?,
        subject,
        spki_of(key)?,
        &signer,
    )
    .map_err(build_err)?;
    let cert = builder
        .build::<rsa::pkcs1v15::Signature>()
        .map_err(build_err)?;
    cert.to_der().map_err(build_err)
}

/// extendedKeyUsage emailProtection, marked non-critical as public S/MIME certificates are
/// (the builder's own `ExtendedKeyUsage` comes out critical).
struct EmailProtectionEku(ExtendedKeyUsage);

impl AssociatedOid for EmailProtectionEku {
    const OID: ObjectIdentifier = ExtendedKeyUsage::OID;
}

impl der::Encode for EmailProtectionEku {
    fn encoded_len(&self) -> der::Result<der::Length> {
        self.0.encoded_len()
    }
    fn encode(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        self.0.encode(writer)
    }
}

impl AsExtension for EmailProtectionEku {
    fn critical(&self, _: &Name, _: &[x509_cert::ext::Extension]) -> bool {
        false
    }
}

/// A proxy certificate for `address` (already normalised, ASCII) signed by the proxy CA:
/// CN and SAN rfc822Name = address, keyUsage digitalSignature + nonRepudiation +
/// keyEncipherment, EKU emailProtection, SKI + AKI (from `Profile::Leaf`).
pub(crate) fn build_proxy(
    address: &str,
    key: &RsaPrivateKey,
    ca_subject: &Name,
    ca_key: &RsaPrivateKey,
    validity_days: u32,
) -> Result<Vec<u8>, StoreError> {
    let email =
        Ia5String::new(address).map_err(|_| StoreError::InvalidAddress(address.to_string()))?;
    let signer = SigningKey::<Sha256>::new(ca_key.clone());
    let days = u64::from(validity_days.max(1));
    let mut builder = CertificateBuilder::new(
        Profile::Leaf {
            issuer: ca_subject.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: true,
        },
        random_serial()?,
        validity(Duration::from_secs(days * 86_400))?,
        common_name(address)?,
        spki_of(key)?,
        &signer,
    )
    .map_err(build_err)?;
    builder
        .add_extension(&SubjectAltName(vec![GeneralName::Rfc822Name(email)]))
        .map_err(build_err)?;
    builder
        .add_extension(&EmailProtectionEku(ExtendedKeyUsage(vec![
            EKU_EMAIL_PROTECTION,
        ])))
        .map_err(build_err)?;
    let cert = builder
        .build::<rsa::pkcs1v15::Signature>()
        .map_err(build_err)?;
    cert.to_der().map_err(build_err)
}
