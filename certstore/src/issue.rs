//! Building certificates with x509-cert's builder: the proxy CA and proxy certificates.

use std::time::{Duration, SystemTime};

use const_oid::{AssociatedOid, ObjectIdentifier};
use crypto_provider::{
    CryptoProvider, DigestAlg, EcCurve, PrivateKey, PrivateKeyOps, PublicKeyAlg, RsaSignature,
};

use crate::store::ProxyKeyType;
use der::asn1::BitString;
use der::asn1::{Any, Ia5String, OctetString, SetOfVec};
use der::{Encode, Tag};
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, SignatureBitStringEncoding};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::constraints::name::GeneralSubtree;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, NameConstraints, SubjectAltName};
use x509_cert::ext::AsExtension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use zeroize::Zeroizing;

use crate::certinfo::EKU_EMAIL_PROTECTION;
use crate::error::StoreError;

pub(crate) const CA_KEY_BITS: usize = 3072;
/// Five years (of 365.25 days): long enough that partners, who install the CA by hand, are not
/// asked to do it often; short enough that a CA key is retired within a normal key-management
/// cycle (`proxy-ca rotate` before then). Proxy certificates never outlive their CA.
pub(crate) const CA_VALIDITY: Duration = Duration::from_secs(5 * 36525 * 864);
/// Most internal domains a proxy CA's name constraints list (the extension must stay small).
pub(crate) const MAX_CA_DOMAINS: usize = 100;
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
fn random_serial(crypto: &CryptoProvider) -> Result<SerialNumber, StoreError> {
    let mut bytes = [0u8; 16];
    crypto
        .fill_random(&mut bytes)
        .map_err(|e| StoreError::Crypto(e.to_string()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).map_err(build_err)
}

/// From an hour ago for `duration`, but never past `not_after_limit` (the issuer's own end).
fn validity(
    duration: Duration,
    not_after_limit: Option<SystemTime>,
) -> Result<Validity, StoreError> {
    let now = SystemTime::now();
    let start = now.checked_sub(BACKDATE).unwrap_or(now);
    let end = now
        .checked_add(duration)
        .ok_or_else(|| StoreError::Time("validity end overflows".into()))?;
    let end = match not_after_limit {
        Some(limit) if limit < end => limit,
        _ => end,
    };
    if end <= now {
        return Err(StoreError::Time(
            "the proxy CA has expired; rotate it (smime-gateway proxy-ca rotate)".into(),
        ));
    }
    Ok(Validity {
        not_before: Time::try_from(start).map_err(|e| StoreError::Time(e.to_string()))?,
        not_after: Time::try_from(end).map_err(|e| StoreError::Time(e.to_string()))?,
    })
}

/// A private key as the store keeps it (PKCS#8 DER) and loaded into the crypto provider.
pub(crate) struct KeyPair {
    pub pkcs8: Zeroizing<Vec<u8>>,
    pub key: PrivateKey,
}

pub(crate) fn generate_key(
    crypto: &'static CryptoProvider,
    bits: usize,
) -> Result<KeyPair, StoreError> {
    let pkcs8 = crypto
        .generate_rsa_pkcs8(bits)
        .map_err(|e| StoreError::Crypto(e.to_string()))?;
    load_key(crypto, pkcs8)
}

/// A new proxy identity key of the configured type.
pub(crate) fn generate_proxy_key(
    crypto: &'static CryptoProvider,
    key_type: ProxyKeyType,
) -> Result<KeyPair, StoreError> {
    let pkcs8 = match key_type {
        ProxyKeyType::Rsa2048 => crypto.generate_rsa_pkcs8(2048),
        ProxyKeyType::Rsa3072 => crypto.generate_rsa_pkcs8(3072),
        ProxyKeyType::P256 => crypto.generate_ec_pkcs8(EcCurve::P256),
    }
    .map_err(|e| StoreError::Crypto(e.to_string()))?;
    load_key(crypto, pkcs8)
}

pub(crate) fn load_key(
    crypto: &'static CryptoProvider,
    pkcs8: Zeroizing<Vec<u8>>,
) -> Result<KeyPair, StoreError> {
    let key = crypto
        .load_private_key(&pkcs8)
        .map_err(|e| StoreError::Crypto(e.to_string()))?;
    Ok(KeyPair { pkcs8, key })
}

fn spki_of(key: &PrivateKey) -> Result<SubjectPublicKeyInfoOwned, StoreError> {
    let der = key
        .public_key_spki_der()
        .map_err(|e| StoreError::Crypto(e.to_string()))?;
    SubjectPublicKeyInfoOwned::try_from(der.as_slice()).map_err(build_err)
}

/// sha256WithRSAEncryption through the crypto provider, in the shape x509-cert's builder
/// wants (a `Keypair` that is a `Signer`), so certificates are signed where every other
/// private-key operation runs.
struct CertSigner<'a> {
    key: &'a PrivateKey,
    spki: SubjectPublicKeyInfoOwned,
}

#[derive(Clone)]
struct CertSignerPublicKey(SubjectPublicKeyInfoOwned);

impl EncodePublicKey for CertSignerPublicKey {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        Ok(der::Document::try_from(self.0.to_der()?)?)
    }
}

impl<'a> CertSigner<'a> {
    fn new(key: &'a PrivateKey) -> Result<Self, StoreError> {
        Ok(Self {
            key,
            spki: spki_of(key)?,
        })
    }
}

impl signature::Keypair for CertSigner<'_> {
    type VerifyingKey = CertSignerPublicKey;
    fn verifying_key(&self) -> CertSignerPublicKey {
        CertSignerPublicKey(self.spki.clone())
    }
}

impl DynSignatureAlgorithmIdentifier for CertSigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(AlgorithmIdentifierOwned {
            oid: DigestAlg::Sha256.rsa_signature_oid(),
            parameters: Some(Any::null()),
        })
    }
}

struct CertSignature(Vec<u8>);

impl SignatureBitStringEncoding for CertSignature {
    fn to_bitstring(&self) -> der::Result<BitString> {
        BitString::new(0, self.0.clone())
    }
}

impl signature::Signer<CertSignature> for CertSigner<'_> {
    fn try_sign(&self, tbs: &[u8]) -> Result<CertSignature, signature::Error> {
        self.key
            .sign(RsaSignature::Pkcs1v15(DigestAlg::Sha256), tbs)
            .map(CertSignature)
            .map_err(|_| signature::Error::new())
    }
}

/// Name constraints that let the proxy CA vouch only for mail addresses in `domains` (each
/// domain and its subdomains, RFC 5280 §4.2.1.10 rfc822Name forms "d" and ".d") and for no
/// host name or IP address at all (an empty dNSName and the all-zero IPv4/IPv6 ranges match
/// every name). Partners install this CA as a trust anchor, so this is what keeps it from
/// being usable for anyone else's mail or for a web server.
fn proxy_name_constraints(domains: &[String]) -> Result<NameConstraints, StoreError> {
    let subtree = |base: GeneralName| GeneralSubtree {
        base,
        minimum: 0,
        maximum: None,
    };
    let ia5 = |s: &str| Ia5String::new(s).map_err(build_err);
    let mut permitted = Vec::with_capacity(domains.len() * 2);
    for domain in domains {
        permitted.push(subtree(GeneralName::Rfc822Name(ia5(domain)?)));
        permitted.push(subtree(GeneralName::Rfc822Name(ia5(&format!(
            ".{domain}"
        ))?)));
    }
    let all_ipv4 = OctetString::new(vec![0u8; 8]).map_err(build_err)?;
    let all_ipv6 = OctetString::new(vec![0u8; 32]).map_err(build_err)?;
    Ok(NameConstraints {
        permitted_subtrees: Some(permitted),
        excluded_subtrees: Some(vec![
            subtree(GeneralName::DnsName(ia5("")?)),
            subtree(GeneralName::IpAddress(all_ipv4)),
            subtree(GeneralName::IpAddress(all_ipv6)),
        ]),
    })
}

/// A self-signed proxy CA for the mail of `domains` (already normalised, ASCII):
/// basicConstraints CA with pathLen 0 and keyUsage keyCertSign + cRLSign (both critical), SKI/AKI,
/// critical nameConstraints (see [`proxy_name_constraints`]), extendedKeyUsage emailProtection
/// (non-critical; clients that chain EKUs, such as Windows and OpenSSL, then refuse it for TLS);
/// SHA-256 with RSA; [`CA_VALIDITY`].
pub(crate) fn build_ca(
    subject_cn: &str,
    domains: &[String],
    key: &PrivateKey,
) -> Result<Vec<u8>, StoreError> {
    if domains.is_empty() || domains.len() > MAX_CA_DOMAINS {
        return Err(StoreError::Build(format!(
            "a proxy CA needs between 1 and {MAX_CA_DOMAINS} internal domains, got {}",
            domains.len()
        )));
    }
    let subject = common_name(subject_cn)?;
    let signer = CertSigner::new(key)?;
    // The "SubCA" profile signed by its own key is a root with pathLen 0 (the builder's
    // "Root" profile cannot set a path length); the AKI it adds equals the SKI.
    let mut builder = CertificateBuilder::new(
        Profile::SubCA {
            issuer: subject.clone(),
            path_len_constraint: Some(0),
        },
        random_serial(key.provider())?,
        validity(CA_VALIDITY, None)?,
        subject,
        signer.spki.clone(),
        &signer,
    )
    .map_err(build_err)?;
    builder
        .add_extension(&proxy_name_constraints(domains)?)
        .map_err(build_err)?;
    builder
        .add_extension(&EmailProtectionEku(ExtendedKeyUsage(vec![
            EKU_EMAIL_PROTECTION,
        ])))
        .map_err(build_err)?;
    let cert = builder.build::<CertSignature>().map_err(build_err)?;
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
/// keyEncipherment (RSA) or keyAgreement (EC), EKU emailProtection only, SKI + AKI (from
/// `Profile::Leaf`); it ends no later than the CA (`ca_not_after`).
pub(crate) fn build_proxy(
    address: &str,
    key: &PrivateKey,
    ca_subject: &Name,
    ca_key: &PrivateKey,
    ca_not_after: SystemTime,
    validity_days: u32,
) -> Result<Vec<u8>, StoreError> {
    let email =
        Ia5String::new(address).map_err(|_| StoreError::InvalidAddress(address.to_string()))?;
    let signer = CertSigner::new(ca_key)?;
    let days = u64::from(validity_days.max(1));
    let is_ec = matches!(key.algorithm(), PublicKeyAlg::Ec { .. });
    let mut builder = CertificateBuilder::new(
        // RSA receives content keys by transport, EC by agreement (RFC 5753).
        Profile::Leaf {
            issuer: ca_subject.clone(),
            enable_key_agreement: is_ec,
            enable_key_encipherment: !is_ec,
        },
        random_serial(ca_key.provider())?,
        validity(Duration::from_secs(days * 86_400), Some(ca_not_after))?,
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
    let cert = builder.build::<CertSignature>().map_err(build_err)?;
    cert.to_der().map_err(build_err)
}
