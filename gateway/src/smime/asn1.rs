//! ASN.1 types the `cms` 0.2 crate lacks, mirroring their RFCs.

use cms::cert::CertificateChoices;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{EncryptedContentInfo, OriginatorInfo, RecipientInfos};
use cms::signed_data::EncapsulatedContentInfo;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, Sequence};
use x509_cert::attr::Attributes;

/// RFC 5083: AuthEnvelopedData, the AEAD sibling of EnvelopedData.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct AuthEnvelopedData {
    pub version: CmsVersion,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub originator_info: Option<OriginatorInfo>,
    pub recip_infos: RecipientInfos,
    pub auth_encrypted_content: EncryptedContentInfo,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub auth_attrs: Option<Attributes>,
    pub mac: OctetString,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    pub unauth_attrs: Option<Attributes>,
}

/// RFC 5084: GCMParameters. The ICV length defaults to 12; we write 16 explicitly (as OpenSSL).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct GcmParameters {
    pub nonce: OctetString,
    #[asn1(default = "default_icv_len")]
    pub icv_len: u8,
}

fn default_icv_len() -> u8 {
    12
}

/// RFC 8551 §2.5.2: SMIMECapability ::= SEQUENCE { capabilityID OID, parameters ANY OPTIONAL }.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SmimeCapability {
    pub capability_id: ObjectIdentifier,
    pub parameters: Option<Any>,
}

/// SMIMECapabilities ::= SEQUENCE OF SMIMECapability, in order of preference.
pub type SmimeCapabilities = Vec<SmimeCapability>;

/// RFC 5652 SignedData, read leniently: the `certificates` and `crls` sets are read as plain
/// lists. NSS (Thunderbird) repeats the signer's certificate in that set, which a strict DER
/// SET OF refuses as a duplicate; the signature does not cover these fields, so accepting them
/// as they come costs nothing. `digestAlgorithms` is not needed (each SignerInfo names its own).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SignedDataLenient {
    pub version: CmsVersion,
    pub digest_algorithms: Any,
    pub encap_content_info: EncapsulatedContentInfo,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub certificates: Option<Vec<CertificateChoices>>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub crls: Option<Vec<Any>>,
    /// Kept as received: each SignerInfo is decoded on its own so that its signed attributes
    /// can be hashed in the encoding that was signed (a decoded SET OF is re-sorted).
    pub signer_infos: Any,
}
