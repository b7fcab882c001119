//! ASN.1 types the `cms` 0.2 crate lacks, mirroring their RFCs.

use cms::cert::CertificateChoices;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    EncryptedContentInfo, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
};
use cms::signed_data::EncapsulatedContentInfo;
use cms::signed_data::{SignedAttributes, SignerIdentifier, SignerInfo, UnsignedAttributes};
use der::asn1::{AnyRef, IntRef, ObjectIdentifier, OctetString, OctetStringRef};
use der::{
    Any, Choice, Decode, DecodeValue, Encode, EncodeValue, ErrorKind, FixedTag, Header, Length,
    Reader, Sequence, SliceReader, Tag, Tagged, Writer,
};
use spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef};
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

/// RecipientIdentifier as the decryptor reads it, borrowed from the message.
#[derive(Clone, Copy, Debug, Choice)]
pub enum RecipientIdentifierRef<'a> {
    IssuerAndSerialNumber(IssuerAndSerialNumberRef<'a>),
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    SubjectKeyIdentifier(OctetStringRef<'a>),
}

/// IssuerAndSerialNumber, borrowed: the issuer is kept as its encoding ([`RecipientInfoRefs`]
/// checks it with [`validate_name`]) and compared in place.
#[derive(Clone, Copy, Debug, Sequence)]
pub struct IssuerAndSerialNumberRef<'a> {
    pub issuer: AnyRef<'a>,
    pub serial_number: IntRef<'a>,
}

/// KeyTransRecipientInfo, borrowed, with any version (see [`AnyVersion`]).
#[derive(Clone, Copy, Debug, Sequence)]
pub struct KeyTransRecipientInfoRef<'a> {
    pub version: IntRef<'a>,
    pub rid: RecipientIdentifierRef<'a>,
    pub key_enc_alg: AlgorithmIdentifierRef<'a>,
    pub enc_key: OctetStringRef<'a>,
}

/// One RecipientInfo as the decryptor reads it.
#[derive(Clone, Debug)]
pub enum RecipientInfoRef<'a> {
    /// Key transport, the common kind, read without copying (its issuer name, if it names
    /// one, checked by [`validate_name`]).
    KeyTransport(KeyTransRecipientInfoRef<'a>),
    /// The other kinds, read with the `cms` types.
    Other(RecipientInfo),
}

/// RecipientInfos as the decryptor reads them: a plain list in the order given (see
/// [`RecipientInfoList`] on why not a `SetOfVec`), key transport borrowed. Every element is
/// checked as the `cms` types check it.
#[derive(Clone, Debug)]
pub struct RecipientInfoRefs<'a> {
    pub list: Vec<RecipientInfoRef<'a>>,
}

impl FixedTag for RecipientInfoRefs<'_> {
    const TAG: Tag = Tag::Set;
}

impl<'a> DecodeValue<'a> for RecipientInfoRefs<'a> {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        reader.read_nested(header.length, |reader| {
            let mut list = Vec::new();
            // Recipients usually share an issuer: a run of equal names is checked once.
            // Compared with its tag: equal content under another tag is not the same name.
            let mut last_issuer: Option<AnyRef<'a>> = None;
            while !reader.is_finished() {
                // KeyTransRecipientInfo is the one untagged choice.
                if reader.peek_tag()? != Tag::Sequence {
                    list.push(RecipientInfoRef::Other(RecipientInfo::decode(reader)?));
                    continue;
                }
                let ktri = KeyTransRecipientInfoRef::decode(reader)?;
                if let RecipientIdentifierRef::IssuerAndSerialNumber(ias) = ktri.rid {
                    if ias.serial_number.len() > SERIAL_NUMBER_MAX_LEN {
                        return Err(Tag::Integer.value_error());
                    }
                    if last_issuer != Some(ias.issuer) {
                        validate_name(ias.issuer)?;
                        last_issuer = Some(ias.issuer);
                    }
                }
                list.push(RecipientInfoRef::KeyTransport(ktri));
            }
            Ok(Self { list })
        })
    }
}

/// The elements of a constructed value's content, borrowed, in order; stops at the first
/// element that does not decode.
pub struct Elements<'a> {
    reader: Option<SliceReader<'a>>,
}

impl<'a> Elements<'a> {
    pub fn of(content: &'a [u8]) -> der::Result<Self> {
        Ok(Self {
            reader: Some(SliceReader::new(content)?),
        })
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = der::Result<AnyRef<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let reader = self.reader.as_mut()?;
        if reader.is_finished() {
            return None;
        }
        let element = AnyRef::decode(reader);
        if element.is_err() {
            self.reader = None;
        }
        Some(element)
    }
}

/// RFC 5280 AttributeTypeAndValue, borrowed.
#[derive(Clone, Copy, Debug, Sequence)]
pub struct AttributeTypeAndValueRef<'a> {
    pub oid: ObjectIdentifier,
    pub value: AnyRef<'a>,
}

/// Accepts exactly what `x509_cert::name::Name` decodes — a SEQUENCE of SETs of
/// AttributeTypeAndValue, no two alike in one SET (`der` refuses duplicates when it sorts a
/// SET OF) — without building one: a thousand RecipientInfos may each name another issuer,
/// and allocating each name cost more than the rest of reading them.
pub fn validate_name(name: AnyRef<'_>) -> der::Result<()> {
    name.tag().assert_eq(Tag::Sequence)?;
    for rdn in Elements::of(name.value())? {
        let rdn = rdn?;
        rdn.tag().assert_eq(Tag::Set)?;
        let mut attributes = Elements::of(rdn.value())?;
        let check = |a: AnyRef<'_>| a.decode_as::<AttributeTypeAndValueRef<'_>>().map(|_| ());
        let Some(first) = attributes.next().transpose()? else {
            continue;
        };
        check(first)?;
        // Nearly every RDN holds one attribute: nothing to compare, nothing allocated.
        let Some(second) = attributes.next().transpose()? else {
            continue;
        };
        let mut all = vec![first, second];
        for attribute in attributes {
            all.push(attribute?);
        }
        for attribute in all.iter().skip(1) {
            check(*attribute)?;
        }
        // All SEQUENCEs now, so equal content is an equal attribute. Sorted, not compared
        // pairwise: the SET's size is the sender's choice.
        all.sort_unstable_by(|a, b| a.value().cmp(b.value()));
        if all.windows(2).any(|pair| matches!(pair, [a, b] if a == b)) {
            return Err(ErrorKind::SetDuplicate.into());
        }
    }
    Ok(())
}

// Encoding is needed by the `Sequence` derive of the types that hold this one; it writes the
// elements back as read.
impl EncodeValue for RecipientInfoRefs<'_> {
    fn value_len(&self) -> der::Result<Length> {
        self.list.iter().try_fold(Length::ZERO, |len, ri| {
            len + match ri {
                RecipientInfoRef::KeyTransport(k) => k.encoded_len()?,
                RecipientInfoRef::Other(ri) => ri.encoded_len()?,
            }
        })
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.list.iter().try_for_each(|ri| match ri {
            RecipientInfoRef::KeyTransport(k) => k.encode(writer),
            RecipientInfoRef::Other(ri) => ri.encode(writer),
        })
    }
}

/// The longest serial number `x509-cert` decodes (RFC 5280's 20 octets, plus a sign octet).
const SERIAL_NUMBER_MAX_LEN: Length = Length::new(21);

/// RFC 5652 EnvelopedData as the decryptor reads it: recipients as [`RecipientInfoRefs`],
/// and the fields it does not use (originator certificates, unprotected attributes) unparsed,
/// so that no SET in them is sorted either.
#[derive(Clone, Debug, Sequence)]
pub struct EnvelopedDataRef<'a> {
    pub version: IntRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub originator_info: Option<AnyRef<'a>>,
    pub recip_infos: RecipientInfoRefs<'a>,
    pub encrypted_content: EncryptedContentInfo,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub unprotected_attrs: Option<AnyRef<'a>>,
}

/// [`AuthEnvelopedData`] as the decryptor reads it (recipients as in [`EnvelopedDataRef`]).
#[derive(Clone, Debug, Sequence)]
pub struct AuthEnvelopedDataRef<'a> {
    pub version: IntRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub originator_info: Option<AnyRef<'a>>,
    pub recip_infos: RecipientInfoRefs<'a>,
    pub auth_encrypted_content: EncryptedContentInfo,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub auth_attrs: Option<Attributes>,
    pub mac: OctetStringRef<'a>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    pub unauth_attrs: Option<Attributes>,
}

/// RFC 5083: AuthEnvelopedData, the AEAD sibling of EnvelopedData, as we write it (the
/// decryptor reads [`AuthEnvelopedDataRef`]).
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
