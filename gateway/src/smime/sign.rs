//! Create CMS SignedData: SHA-256 with RSA or ECDSA with an EC key, the whole chain included,
//! S/MIME signed attributes.

use std::time::SystemTime;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::CmsVersion;
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::{Attribute, Attributes};
use x509_cert::time::Time;
use x509_cert::Certificate;

use super::algorithms::{
    ContentCipher, DigestAlg, OID_ATTR_CONTENT_TYPE, OID_ATTR_MESSAGE_DIGEST,
    OID_ATTR_SIGNING_TIME, OID_ATTR_SMIME_CAPABILITIES, OID_DATA, OID_RSA_ENCRYPTION,
    OID_SIGNED_DATA,
};
use super::asn1::SmimeCapability;
use super::crypto::{CryptoProvider, PrivateKeyOps, PublicKeyAlg, RsaSignature, SignatureAlg};
use super::error::{Result, SmimeError};

/// Who signs: the certificate, the chain up to (and including) the root, and the key.
pub struct Signer<'a> {
    pub certificate: &'a Certificate,
    /// Intermediates and root: included because Outlook does not fetch intermediates.
    pub chain: &'a [Certificate],
    pub key: &'a dyn PrivateKeyOps,
}

/// What we advertise we can read, most preferred first (RFC 8551 §2.5.2).
pub const ADVERTISED_CIPHERS: [ContentCipher; 3] = [
    ContentCipher::Aes256Gcm,
    ContentCipher::Aes256Cbc,
    ContentCipher::Aes128Cbc,
];

/// Sign `content` (a canonical MIME entity). `detached` leaves the content out of the CMS
/// object (for `multipart/signed`). Returns the DER ContentInfo.
pub fn sign(
    crypto: &CryptoProvider,
    content: &[u8],
    signer: &Signer<'_>,
    detached: bool,
    now: SystemTime,
) -> Result<Vec<u8>> {
    // SHA-256 with RSA; ECDSA with the digest of the key's curve (RFC 5753 §8).
    let (digest_alg, scheme, signature_algorithm) = match signer.key.algorithm() {
        PublicKeyAlg::Ec { curve } => (
            curve.digest(),
            SignatureAlg::Ecdsa(curve.digest()),
            AlgorithmIdentifierOwned {
                oid: SignatureAlg::ecdsa_oid(curve.digest()),
                parameters: None,
            },
        ),
        _ => (
            DigestAlg::Sha256,
            SignatureAlg::Rsa(RsaSignature::Pkcs1v15(DigestAlg::Sha256)),
            AlgorithmIdentifierOwned {
                oid: OID_RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
        ),
    };
    let content_digest = crypto.digest(digest_alg, content);
    let signed_attrs = signed_attributes(&content_digest, now)?;
    // The signature covers the attributes' DER with the SET OF tag.
    let signature = signer.key.sign_with(scheme, &signed_attrs.to_der()?)?;

    let digest_ai = AlgorithmIdentifierOwned {
        oid: digest_alg.oid(),
        parameters: None,
    };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: signer.certificate.tbs_certificate.issuer.clone(),
            serial_number: signer.certificate.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: digest_ai.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm,
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let mut certs = vec![CertificateChoices::Certificate(signer.certificate.clone())];
    for c in signer.chain {
        if c != signer.certificate {
            certs.push(CertificateChoices::Certificate(c.clone()));
        }
    }
    let econtent = if detached {
        None
    } else {
        Some(Any::encode_from(&OctetString::new(content)?)?)
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_ai])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: OID_DATA,
            econtent,
        },
        certificates: Some(CertificateSet::try_from(certs)?),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info])?,
    };
    super::content_info::encode(OID_SIGNED_DATA, &signed_data)
}

fn signed_attributes(content_digest: &[u8], now: SystemTime) -> Result<Attributes> {
    let time = Time::try_from(now).map_err(|e| SmimeError::Encoding(e.to_string()))?;
    let capabilities: Vec<SmimeCapability> = ADVERTISED_CIPHERS
        .iter()
        .map(|c| SmimeCapability {
            capability_id: c.oid(),
            parameters: None,
        })
        .collect();
    let attrs = vec![
        attribute(OID_ATTR_CONTENT_TYPE, Any::encode_from(&OID_DATA)?)?,
        attribute(OID_ATTR_SIGNING_TIME, Any::encode_from(&time)?)?,
        attribute(
            OID_ATTR_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(content_digest)?)?,
        )?,
        attribute(
            OID_ATTR_SMIME_CAPABILITIES,
            Any::encode_from(&capabilities)?,
        )?,
    ];
    Ok(SetOfVec::try_from(attrs)?)
}

fn attribute(oid: const_oid::ObjectIdentifier, value: Any) -> Result<Attribute> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}
