//! ASN.1 types the `cms` 0.2 crate lacks, mirroring their RFCs.

use cms::cert::CertificateChoices;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    EncryptedContentInfo, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
};
use cms::signed_data::EncapsulatedContentInfo;
use cms::signed_data::{SignedAttributes, SignerIdentifier, SignerInfo, UnsignedAttributes};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{
    Any, Decode, DecodeValue, Encode, EncodeValue, FixedTag, Header, Length, Reader, Sequence, Tag,
    Writer,
};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attributes;

/// A CMS `version` as a reader takes it: any INTEGER, not checked. RFC 5652 §1.3 has readers
/// decode by structure and look at the version only to explain a decoding error, "forgiving
/// when an incorrect version number is used by the sender"; OpenSSL accepts any value too.
/// What we write is always the version RFC 5652 prescribes (from a [`CmsVersion`]).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct AnyVersion(pub der::asn1::Int);

impl TryFrom<CmsVersion> for AnyVersion {
    type Error = der::Error;

    fn try_from(v: CmsVersion) -> der::Result<Self> {
        der::asn1::Int::new(&[v as u8]).map(Self)
    }
}

impl FixedTag for AnyVersion {
    const TAG: Tag = Tag::Integer;
}

impl<'a> DecodeValue<'a> for AnyVersion {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        der::asn1::Int::decode_value(reader, header).map(Self)
    }
}

impl EncodeValue for AnyVersion {
    fn value_len(&self) -> der::Result<Length> {
        self.0.value_len()
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.0.encode_value(writer)
    }
}

/// RFC 5652 KeyTransRecipientInfo with any version ([`AnyVersion`]).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct KeyTransRecipientInfoLenient {
    version: AnyVersion,
    rid: RecipientIdentifier,
    key_enc_alg: AlgorithmIdentifierOwned,
    enc_key: OctetString,
}

impl KeyTransRecipientInfoLenient {
    /// The `cms` type, with the version that matches the identifier (its own version is
    /// checked by nothing that follows).
    fn into_ktri(self) -> KeyTransRecipientInfo {
        let version = match self.rid {
            RecipientIdentifier::IssuerAndSerialNumber(_) => CmsVersion::V0,
            RecipientIdentifier::SubjectKeyIdentifier(_) => CmsVersion::V2,
        };
        KeyTransRecipientInfo {
            version,
            rid: self.rid,
            key_enc_alg: self.key_enc_alg,
            enc_key: self.enc_key,
        }
    }
}

/// RFC 5652 SignerInfo with any version ([`AnyVersion`]); the signed attributes are read as
/// the `cms` type reads them (their received bytes are hashed separately, see `verify`).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SignerInfoLenient {
    pub version: AnyVersion,
    pub sid: SignerIdentifier,
    pub digest_alg: AlgorithmIdentifierOwned,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub signed_attrs: Option<SignedAttributes>,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    pub signature: OctetString,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub unsigned_attrs: Option<UnsignedAttributes>,
}

impl SignerInfoLenient {
    /// The `cms` type, with the version that matches the identifier.
    pub fn into_signer_info(self) -> SignerInfo {
        let version = match self.sid {
            SignerIdentifier::IssuerAndSerialNumber(_) => CmsVersion::V1,
            SignerIdentifier::SubjectKeyIdentifier(_) => CmsVersion::V3,
        };
        SignerInfo {
            version,
            sid: self.sid,
            digest_alg: self.digest_alg,
            signed_attrs: self.signed_attrs,
            signature_algorithm: self.signature_algorithm,
            signature: self.signature,
            unsigned_attrs: self.unsigned_attrs,
        }
    }
}

/// RecipientInfos read as a plain list, in the order given. `der` 0.7 insertion-sorts a
/// decoded SET OF, and `cms` compares two RecipientInfos by encoding both: decoding them as a
/// `SetOfVec` is quadratic with a large constant. Order does not matter to a reader.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct RecipientInfoList(pub Vec<RecipientInfo>);

impl FixedTag for RecipientInfoList {
    const TAG: Tag = Tag::Set;
}

impl<'a> DecodeValue<'a> for RecipientInfoList {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        reader.read_nested(header.length, |reader| {
            let mut list = Vec::new();
            while !reader.is_finished() {
                // KeyTransRecipientInfo is the one untagged choice: read with any version.
                let ri = if reader.peek_tag()? == Tag::Sequence {
                    RecipientInfo::Ktri(KeyTransRecipientInfoLenient::decode(reader)?.into_ktri())
                } else {
                    RecipientInfo::decode(reader)?
                };
                list.push(ri);
            }
            Ok(Self(list))
        })
    }
}

impl EncodeValue for RecipientInfoList {
    fn value_len(&self) -> der::Result<Length> {
        self.0
            .iter()
            .try_fold(Length::ZERO, |len, ri| len + ri.encoded_len()?)
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.0.iter().try_for_each(|ri| ri.encode(writer))
    }
}

/// RFC 5652 EnvelopedData as the decryptor reads it: recipients as a [`RecipientInfoList`],
/// and the fields it does not use (originator certificates, unprotected attributes) unparsed,
/// so that no SET in them is sorted either.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct EnvelopedDataLenient {
    pub version: AnyVersion,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub originator_info: Option<Any>,
    pub recip_infos: RecipientInfoList,
    pub encrypted_content: EncryptedContentInfo,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub unprotected_attrs: Option<Any>,
}

/// RFC 5083: AuthEnvelopedData, the AEAD sibling of EnvelopedData (recipients and originator
/// information read leniently, as in [`EnvelopedDataLenient`]).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct AuthEnvelopedData {
    pub version: AnyVersion,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub originator_info: Option<Any>,
    pub recip_infos: RecipientInfoList,
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
/// as they come costs nothing. `digestAlgorithms` is read by the verifier element by element.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SignedDataLenient {
    pub version: AnyVersion,
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
