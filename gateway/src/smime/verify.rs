//! Verify CMS SignedData: opaque (content inside) or detached (content given by the caller).
//!
//! The result says whether the signature holds and, when it does not, *why* — the question an
//! operator asks when a partner's mail shows up as "signature invalid".

use std::time::SystemTime;

use cms::cert::CertificateChoices;
use cms::signed_data::{SignerIdentifier, SignerInfo};
use der::asn1::OctetString;
use der::{Decode, Encode};
use x509_cert::Certificate;

use super::algorithms::{
    ContentCipher, DigestAlg, SignatureScheme, OID_ATTR_CONTENT_TYPE, OID_ATTR_MESSAGE_DIGEST,
    OID_ATTR_SIGNING_TIME, OID_ATTR_SMIME_CAPABILITIES, OID_RSASSA_PSS, OID_RSA_ENCRYPTION,
    OID_SIGNED_DATA,
};
use super::asn1::{SignedDataLenient, SignerInfoLenient, SmimeCapabilities};
use super::certs;
use super::content_info;
use super::crypto::{CryptoProvider, PublicKeyAlg, RsaSignature, SignatureAlg};
use super::error::{Result, SmimeError};
use super::key_preference::{self, KeyPreference, OID_ATTR_ENCRYPTION_KEY_PREFERENCE};

/// Why a signature does or does not hold.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "kebab-case")]
pub enum SignatureOutcome {
    Valid,
    /// The message-digest attribute does not match the content: it was altered after signing
    /// (a disclaimer appended by a server is the classic case).
    ContentChanged,
    /// The signature value does not verify with the signer's public key.
    BadSignature,
    /// The signer's certificate is not in the message.
    NoSignerCertificate,
    /// The digest algorithm is unknown, or the signature algorithm names a different digest
    /// than the digest algorithm field, or the message-digest attribute has the wrong length.
    WrongDigest(String),
    /// A signature algorithm or key type we do not verify.
    UnsupportedSignature(String),
    /// Signed attributes present but content-type or message-digest missing or malformed.
    BadAttributes(String),
    /// A `multipart/signed` whose SignedData carries its own content (`eContent`): the
    /// signature covers that content, not the first MIME part the reader sees.
    DifferentContent,
}

impl SignatureOutcome {
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Valid)
    }

    /// A sentence a person understands.
    pub fn describe(&self) -> String {
        match self {
            Self::Valid => "signature valid".into(),
            Self::ContentChanged => {
                "content changed after signing (the signed part was altered, e.g. a disclaimer was appended)".into()
            }
            Self::BadSignature => "bad signature (does not verify with the signer's key)".into(),
            Self::NoSignerCertificate => "no signer certificate in the message".into(),
            Self::WrongDigest(d) => format!("wrong digest: {d}"),
            Self::UnsupportedSignature(d) => format!("unsupported signature: {d}"),
            Self::BadAttributes(d) => format!("bad signed attributes: {d}"),
            Self::DifferentContent => {
                "the signature covers different content than the message shows".into()
            }
        }
    }
}

/// An algorithm the signer says its client can read (RFC 8551 SMIMECapabilities).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Capability {
    pub oid: String,
    /// Our name for it when we know it (e.g. "aes256-gcm").
    pub name: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SignatureReport {
    pub outcome: SignatureOutcome,
    pub digest: Option<DigestAlg>,
    /// SHA-1: still verified, reported as weak.
    pub weak_digest: bool,
    pub scheme: Option<SignatureScheme>,
    /// DER of the signer's certificate, when the message carries it.
    #[serde(skip)]
    pub signer_certificate: Option<Vec<u8>>,
    pub signer_subject: Option<String>,
    pub signer_emails: Vec<String>,
    /// DER of every certificate the message carries (signer's included), for chain building.
    #[serde(skip)]
    pub certificates: Vec<Vec<u8>>,
    pub signing_time: Option<u64>,
    pub capabilities: Vec<Capability>,
    /// Every SignerInfo of the message in the order received, this one included. The message
    /// verifies only when every one of them does.
    pub signers: Vec<SignerSummary>,
    /// The certificate this signer wants encrypted mail sent to, when it says (RFC 8551
    /// §2.5.3).
    #[serde(skip)]
    pub encryption_key_preference: Option<KeyPreference>,
}

/// One signer of a message and its own result, for reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SignerSummary {
    /// DER of this signer's certificate, when the message carries it.
    #[serde(skip)]
    pub certificate: Option<Vec<u8>>,
    pub subject: Option<String>,
    pub emails: Vec<String>,
    pub outcome: SignatureOutcome,
    /// This signer's encryption-key preference ([`SignatureReport::encryption_key_preference`]).
    #[serde(skip)]
    pub encryption_key_preference: Option<KeyPreference>,
}

/// More SignerInfos than this is refused before any is checked: real mail has one or two.
pub const MAX_SIGNERS: usize = 64;

/// A verification result together with the bytes it is about.
///
/// The content is the one the engine hashed (the encapsulated content of opaque signed-data,
/// the first part of `multipart/signed`), handed back so that callers deliver exactly what was
/// verified and can never verify one buffer and deliver another.
#[derive(Debug)]
pub struct Verified {
    pub report: SignatureReport,
    content: Vec<u8>,
}

impl Verified {
    /// The signed content (a MIME entity for S/MIME).
    pub fn content(&self) -> &[u8] {
        &self.content
    }

    pub fn into_parts(self) -> (SignatureReport, Vec<u8>) {
        (self.report, self.content)
    }
}

impl SignatureReport {
    /// Whether the signer's client advertised it can read `cipher`.
    pub fn advertises(&self, cipher: ContentCipher) -> bool {
        let oid = cipher.oid().to_string();
        self.capabilities.iter().any(|c| c.oid == oid)
    }

    pub fn signing_time(&self) -> Option<SystemTime> {
        self.signing_time
            .map(|s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s))
    }
}

/// How detached content should be hashed.
pub enum Detached<'a> {
    /// Bytes exactly as transmitted; bare LF is canonicalised to CRLF while hashing (RFC 8551).
    Mime(&'a [u8]),
    /// Bytes hashed as they are.
    Binary(&'a [u8]),
}

/// Verify a `signed-data` CMS object (BER or DER). `detached` is the signed content for
/// `multipart/signed`; for opaque signed-data it is `None`. Either way the content the
/// signature was checked against comes back in [`Verified`].
///
/// Detached content given while the SignedData carries its own is a failure
/// ([`SignatureOutcome::DifferentContent`]): the reader would see the detached bytes while the
/// signature covers the embedded ones.
pub fn verify(
    crypto: &CryptoProvider,
    input: &[u8],
    detached: Option<Detached<'_>>,
) -> Result<Verified> {
    let der = content_info::to_der(input)?;
    let info = content_info::decode(&der)?;
    if info.content_type != OID_SIGNED_DATA {
        return Err(SmimeError::UnsupportedContentType(
            info.content_type.to_string(),
        ));
    }
    let mut sd: SignedDataLenient = info.content.decode_as()?;
    drop(der);

    // Moved out of the SignedData (the signers are checked against this list only).
    let certificates: Vec<Certificate> = sd
        .certificates
        .take()
        .map(|list| {
            let mut unique: Vec<Certificate> = Vec::with_capacity(list.len());
            for c in list {
                if let CertificateChoices::Certificate(cert) = c {
                    if !unique.contains(&cert) {
                        unique.push(cert);
                    }
                }
            }
            unique
        })
        .unwrap_or_default();
    let certificates_der: Vec<Vec<u8>> = certificates
        .iter()
        .filter_map(|c| c.to_der().ok())
        .collect();

    let econtent = match &sd.encap_content_info.econtent {
        Some(any) => Some(any.decode_as::<OctetString>()?.into_bytes()),
        None => None,
    };
    let different_content = econtent.is_some() && detached.is_some();
    // What the reader is shown is what gets hashed: the detached part when there is one.
    let delivered = match (&detached, econtent) {
        (Some(Detached::Mime(c) | Detached::Binary(c)), _) => c.to_vec(),
        (None, Some(c)) => c,
        (None, None) => return Err(SmimeError::MissingContent),
    };
    let content = match detached {
        Some(d) => d,
        None => Detached::Binary(&delivered),
    };

    let signer_infos = split_signer_infos(&sd.signer_infos)?;
    let mut reports: Vec<SignatureReport> = signer_infos
        .iter()
        .map(|raw| {
            let mut report =
                verify_signer(crypto, raw, &sd, &certificates, &certificates_der, &content);
            if different_content {
                report.outcome = SignatureOutcome::DifferentContent;
            }
            report
        })
        .collect();
    let signers: Vec<SignerSummary> = reports
        .iter()
        .map(|r| SignerSummary {
            certificate: r.signer_certificate.clone(),
            subject: r.signer_subject.clone(),
            emails: r.signer_emails.clone(),
            outcome: r.outcome.clone(),
            encryption_key_preference: r.encryption_key_preference.clone(),
        })
        .collect();
    // Policy: every signer must verify (as `openssl cms -verify` requires). A forged twin or
    // a bad co-signature is a reason to distrust the message, not noise to skip. The report
    // is the first failing signer's, or the first signer's when all hold.
    let index = reports
        .iter()
        .position(|r| !r.outcome.is_valid())
        .unwrap_or(0);
    if index >= reports.len() {
        return Err(SmimeError::NoSignerInfo);
    }
    let mut report = reports.swap_remove(index);
    report.signers = signers;
    Ok(Verified {
        report,
        content: delivered,
    })
}

/// A SignerInfo as received, with its signed attributes' bytes re-tagged as the SET OF that
/// the signature covers (RFC 5652 §5.4).
struct RawSigner {
    info: SignerInfo,
    signed_attrs_set: Option<Vec<u8>>,
}

/// Decode each SignerInfo of the `signerInfos` SET on its own, in the order received.
fn split_signer_infos(set: &der::Any) -> Result<Vec<RawSigner>> {
    use der::Reader;
    let mut reader = der::SliceReader::new(set.value())?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        if out.len() >= MAX_SIGNERS {
            return Err(SmimeError::Mime(format!(
                "more than {MAX_SIGNERS} signers in one message"
            )));
        }
        let tlv = reader.tlv_bytes()?;
        let info = SignerInfoLenient::from_der(tlv)?.into_signer_info();
        out.push(RawSigner {
            info,
            signed_attrs_set: signed_attrs_bytes(tlv)?,
        });
    }
    if out.is_empty() {
        return Err(SmimeError::NoSignerInfo);
    }
    Ok(out)
}

/// The `[0] IMPLICIT` signedAttrs of a DER SignerInfo exactly as received, with the SET tag.
fn signed_attrs_bytes(signer_info: &[u8]) -> Result<Option<Vec<u8>>> {
    use der::Reader;
    let mut outer = der::SliceReader::new(signer_info)?;
    let header = outer.peek_header()?;
    let _ = outer.tlv_bytes()?;
    let body_len = usize::try_from(header.length)?;
    let body = signer_info
        .get(signer_info.len() - body_len..)
        .ok_or_else(|| SmimeError::Mime("truncated SignerInfo".into()))?;
    let mut fields = der::SliceReader::new(body)?;
    // version, sid, digestAlgorithm
    for _ in 0..3 {
        fields.tlv_bytes()?;
    }
    if fields.is_finished() {
        return Ok(None);
    }
    let attrs = fields.tlv_bytes()?;
    // [0] IMPLICIT, constructed: the only tag signedAttrs can have at this position.
    let Some((&0xA0, after_tag)) = attrs.split_first() else {
        return Ok(None);
    };
    // The same bytes under the SET OF tag.
    let mut set = Vec::with_capacity(attrs.len());
    set.push(0x31);
    set.extend_from_slice(after_tag);
    Ok(Some(set))
}

fn find_signer<'c>(sid: &SignerIdentifier, certs: &'c [Certificate]) -> Option<&'c Certificate> {
    certs.iter().find(|c| match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            ias.serial_number == c.tbs_certificate.serial_number
                && certs::names_match(&ias.issuer, &c.tbs_certificate.issuer)
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            ski.0.as_bytes() == certs::subject_key_identifier(c).as_slice()
        }
    })
}

fn verify_signer(
    crypto: &CryptoProvider,
    raw: &RawSigner,
    sd: &SignedDataLenient,
    certificates: &[Certificate],
    certificates_der: &[Vec<u8>],
    content: &Detached<'_>,
) -> SignatureReport {
    let mut report = SignatureReport {
        outcome: SignatureOutcome::Valid,
        digest: None,
        weak_digest: false,
        scheme: None,
        signer_certificate: None,
        signer_subject: None,
        signer_emails: Vec::new(),
        certificates: certificates_der.to_vec(),
        signing_time: None,
        capabilities: Vec::new(),
        signers: Vec::new(),
        encryption_key_preference: None,
    };
    let si = &raw.info;
    let signer = find_signer(&si.sid, certificates);
    if let Some(cert) = signer {
        report.signer_certificate = cert.to_der().ok();
        report.signer_subject = Some(certs::subject_string(cert));
        report.signer_emails = certs::email_addresses(cert);
    }
    if let Some(attrs) = &si.signed_attrs {
        for attr in attrs.iter() {
            match attr.oid {
                OID_ATTR_SIGNING_TIME => {
                    report.signing_time = attr
                        .values
                        .iter()
                        .next()
                        .and_then(|v| v.to_der().ok())
                        .and_then(|d| x509_cert::time::Time::from_der(&d).ok())
                        .map(|t| t.to_unix_duration().as_secs());
                }
                OID_ATTR_SMIME_CAPABILITIES => {
                    report.capabilities = attr
                        .values
                        .iter()
                        .next()
                        .and_then(|v| v.to_der().ok())
                        .and_then(|d| SmimeCapabilities::from_der(&d).ok())
                        .map(|caps| caps.iter().map(|c| capability(&c.capability_id)).collect())
                        .unwrap_or_default();
                }
                // The RFC attribute wins over Microsoft's when both are present.
                oid if key_preference::is_preference_attribute(&oid)
                    && (oid == OID_ATTR_ENCRYPTION_KEY_PREFERENCE
                        || report.encryption_key_preference.is_none()) =>
                {
                    report.encryption_key_preference =
                        Some(key_preference::named_certificate(attr, certificates));
                }
                _ => {}
            }
        }
    }
    report.outcome = check(crypto, raw, sd, signer, content, &mut report);
    report
}

fn capability(oid: &const_oid::ObjectIdentifier) -> Capability {
    let name = ContentCipher::from_oid(oid)
        .ok()
        .map(|c| c.name().to_string())
        .or_else(|| match oid.to_string().as_str() {
            "1.2.840.113549.3.7" => Some("des-ede3-cbc".to_string()),
            "1.2.840.113549.3.2" => Some("rc2-cbc".to_string()),
            "1.2.840.113549.1.1.7" => Some("rsaes-oaep".to_string()),
            "1.2.840.113549.1.1.10" => Some("rsassa-pss".to_string()),
            _ => DigestAlg::from_oid(oid).map(|d| d.name().to_string()),
        });
    Capability {
        oid: oid.to_string(),
        name,
    }
}

/// Whether SignedData's `digestAlgorithms` set names `oid` (parameters aside: NULL and absent
/// are both written for SHA-2). Read element by element, at most [`MAX_LISTED_DIGESTS`].
fn lists_digest(sd: &SignedDataLenient, oid: &der::asn1::ObjectIdentifier) -> bool {
    const MAX_LISTED_DIGESTS: usize = 64;
    if der::Tagged::tag(&sd.digest_algorithms) != der::Tag::Set {
        return false;
    }
    let Ok(mut reader) = der::SliceReader::new(sd.digest_algorithms.value()) else {
        return false;
    };
    for _ in 0..MAX_LISTED_DIGESTS {
        if der::Reader::is_finished(&reader) {
            return false;
        }
        match spki::AlgorithmIdentifierOwned::decode(&mut reader) {
            Ok(listed) if listed.oid == *oid => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

fn check(
    crypto: &CryptoProvider,
    raw: &RawSigner,
    sd: &SignedDataLenient,
    signer: Option<&Certificate>,
    content: &Detached<'_>,
    report: &mut SignatureReport,
) -> SignatureOutcome {
    let si = &raw.info;
    let Some(digest_alg) = DigestAlg::from_oid(&si.digest_alg.oid) else {
        return SignatureOutcome::WrongDigest(format!(
            "unsupported digest algorithm {}",
            si.digest_alg.oid
        ));
    };
    report.digest = Some(digest_alg);
    report.weak_digest = digest_alg.is_weak();
    // OpenSSL and NSS hash the content with the digests listed in SignedData and refuse a
    // signer whose digest is not among them; reading it anyway would make our verdict differ
    // from the reader's client.
    if !lists_digest(sd, &si.digest_alg.oid) {
        return SignatureOutcome::WrongDigest(format!(
            "{} is not listed in the SignedData's digestAlgorithms",
            digest_alg.name()
        ));
    }

    // The signature algorithm: rsaEncryption (what OpenSSL writes; the digest comes from the
    // digest field), sha*WithRSAEncryption, RSASSA-PSS, ECDSA or Ed25519.
    let sig_oid = si.signature_algorithm.oid;
    // sha*WithRSAEncryption and ecdsa-with-SHA* name a digest: it must be the digest field's.
    let named_digest = DigestAlg::from_rsa_signature_oid(&sig_oid)
        .map(|d| (d, SignatureScheme::RsaPkcs1v15))
        .or_else(|| {
            SignatureAlg::ecdsa_digest_from_oid(&sig_oid).map(|d| (d, SignatureScheme::Ecdsa))
        });
    let scheme = if sig_oid == OID_RSA_ENCRYPTION {
        SignatureScheme::RsaPkcs1v15
    } else if sig_oid == OID_RSASSA_PSS {
        SignatureScheme::RsaPss
    } else if let Some((named, scheme)) = named_digest {
        if named != digest_alg {
            return SignatureOutcome::WrongDigest(format!(
                "signature algorithm uses {} but the digest algorithm is {}",
                named.name(),
                digest_alg.name()
            ));
        }
        scheme
    } else if sig_oid == PublicKeyAlg::EC_PUBLIC_KEY_OID {
        // Some writers name the key type, as OpenSSL does with rsaEncryption.
        SignatureScheme::Ecdsa
    } else if sig_oid == PublicKeyAlg::ED25519_OID {
        SignatureScheme::Ed25519
    } else {
        return SignatureOutcome::UnsupportedSignature(format!("signature algorithm {sig_oid}"));
    };
    report.scheme = Some(scheme);

    let content_digest = hash_content(crypto, digest_alg, content);
    // What the signature covers: the signed attributes as sent, else the content itself.
    let signed_attrs_set = match &si.signed_attrs {
        None => None,
        Some(attrs) => {
            let (message_digest, content_type) = match single_valued_attributes(attrs) {
                Ok(values) => values,
                Err(outcome) => return outcome,
            };
            let Some(message_digest) = message_digest else {
                return SignatureOutcome::BadAttributes("no message-digest attribute".into());
            };
            if content_type != Some(sd.encap_content_info.econtent_type) {
                return SignatureOutcome::BadAttributes(
                    "content-type attribute missing or different from the content".into(),
                );
            }
            if message_digest.as_bytes().len() != digest_alg.output_len() {
                return SignatureOutcome::WrongDigest(format!(
                    "message-digest attribute is {} bytes, {} needs {}",
                    message_digest.as_bytes().len(),
                    digest_alg.name(),
                    digest_alg.output_len()
                ));
            }
            if message_digest.as_bytes() != content_digest.as_slice() {
                return SignatureOutcome::ContentChanged;
            }
            // The signature covers the attributes as they were sent (re-tagged as a SET OF),
            // not our re-encoding of them: a decoded SET OF comes back sorted.
            match &raw.signed_attrs_set {
                Some(set) => Some(set.as_slice()),
                None => {
                    return SignatureOutcome::BadAttributes("signed attributes unreadable".into())
                }
            }
        }
    };
    let signed_digest = match signed_attrs_set {
        Some(set) => crypto.digest(digest_alg, set),
        None => content_digest,
    };

    let Some(cert) = signer else {
        return SignatureOutcome::NoSignerCertificate;
    };
    let spki = match cert.tbs_certificate.subject_public_key_info.to_der() {
        Ok(der) => der,
        Err(e) => return SignatureOutcome::UnsupportedSignature(e.to_string()),
    };
    let signature = si.signature.as_bytes();
    let rsa_scheme = match scheme {
        SignatureScheme::Ecdsa => {
            return signature_outcome(crypto.public_keys.verify_ecdsa(
                &spki,
                digest_alg,
                &signed_digest,
                signature,
            ))
        }
        // PureEdDSA signs the message itself (RFC 8419 §3.1), not a digest.
        SignatureScheme::Ed25519 => {
            let message = match signed_attrs_set {
                Some(set) => std::borrow::Cow::Borrowed(set),
                None => content_bytes(content),
            };
            return signature_outcome(
                crypto
                    .public_keys
                    .verify_ed25519(&spki, &message, signature),
            );
        }
        SignatureScheme::RsaPkcs1v15 => RsaSignature::Pkcs1v15(digest_alg),
        SignatureScheme::RsaPss => {
            let (pss_digest, salt_len) = match pss_parameters(si) {
                Ok(p) => p,
                Err(outcome) => return outcome,
            };
            if pss_digest != digest_alg {
                return SignatureOutcome::WrongDigest(format!(
                    "RSASSA-PSS uses {} but the digest algorithm is {}",
                    pss_digest.name(),
                    digest_alg.name()
                ));
            }
            RsaSignature::Pss {
                digest: digest_alg,
                salt_len,
            }
        }
    };
    signature_outcome(
        crypto
            .public_keys
            .verify(&spki, rsa_scheme, &signed_digest, signature),
    )
}

fn signature_outcome(
    result: std::result::Result<(), crypto_provider::PublicKeyError>,
) -> SignatureOutcome {
    match result {
        Ok(()) => SignatureOutcome::Valid,
        Err(crypto_provider::PublicKeyError::BadSignature) => SignatureOutcome::BadSignature,
        Err(e) => SignatureOutcome::UnsupportedSignature(e.to_string()),
    }
}

/// The content as signed: MIME canonicalised to CRLF, binary as it is.
fn content_bytes<'a>(content: &Detached<'a>) -> std::borrow::Cow<'a, [u8]> {
    match content {
        Detached::Binary(bytes) => std::borrow::Cow::Borrowed(bytes),
        Detached::Mime(bytes) => {
            let mut canonical = Vec::with_capacity(bytes.len());
            super::canonical::for_each_crlf_chunk(bytes, |chunk| {
                canonical.extend_from_slice(chunk)
            });
            std::borrow::Cow::Owned(canonical)
        }
    }
}

/// The message-digest and content-type values, refusing the shapes that would let one
/// signature cover two contents: RFC 5652 §11 allows each of message-digest, content-type
/// and signing-time once, with exactly one value.
fn single_valued_attributes(
    attrs: &x509_cert::attr::Attributes,
) -> std::result::Result<(Option<OctetString>, Option<const_oid::ObjectIdentifier>), SignatureOutcome>
{
    let mut message_digest = None;
    let mut content_type = None;
    for oid in [
        OID_ATTR_MESSAGE_DIGEST,
        OID_ATTR_CONTENT_TYPE,
        OID_ATTR_SIGNING_TIME,
    ] {
        let mut found = attrs.iter().filter(|a| a.oid == oid);
        let Some(attr) = found.next() else {
            continue;
        };
        let name = match oid {
            OID_ATTR_MESSAGE_DIGEST => "message-digest",
            OID_ATTR_CONTENT_TYPE => "content-type",
            _ => "signing-time",
        };
        if found.next().is_some() {
            return Err(SignatureOutcome::BadAttributes(format!(
                "the {name} attribute appears more than once"
            )));
        }
        if attr.values.len() != 1 {
            return Err(SignatureOutcome::BadAttributes(format!(
                "the {name} attribute must have exactly one value"
            )));
        }
        let value = attr.values.iter().next();
        match oid {
            OID_ATTR_MESSAGE_DIGEST => {
                message_digest = value.and_then(|v| v.decode_as::<OctetString>().ok());
            }
            OID_ATTR_CONTENT_TYPE => {
                content_type =
                    value.and_then(|v| v.decode_as::<const_oid::ObjectIdentifier>().ok());
            }
            _ => {}
        }
    }
    Ok((message_digest, content_type))
}

fn pss_parameters(si: &SignerInfo) -> std::result::Result<(DigestAlg, usize), SignatureOutcome> {
    let unsupported = |d: String| SignatureOutcome::UnsupportedSignature(d);
    let Some(params) = &si.signature_algorithm.parameters else {
        return Ok((DigestAlg::Sha1, 20));
    };
    let der = params.to_der().map_err(|e| unsupported(e.to_string()))?;
    let params = pkcs1::RsaPssParams::try_from(der.as_slice())
        .map_err(|e| unsupported(format!("RSASSA-PSS parameters: {e}")))?;
    let digest = DigestAlg::from_oid(&params.hash.oid)
        .ok_or_else(|| unsupported(format!("RSASSA-PSS hash {}", params.hash.oid)))?;
    // RFC 4055: MGF1 is the only mask generation function defined for RSASSA-PSS.
    if params.mask_gen.oid != const_oid::db::rfc5912::ID_MGF_1 {
        return Err(unsupported(format!(
            "RSASSA-PSS mask generation function {}",
            params.mask_gen.oid
        )));
    }
    let mgf_digest = params
        .mask_gen
        .parameters
        .as_ref()
        .and_then(|p| DigestAlg::from_oid(&p.oid));
    if mgf_digest != Some(digest) {
        return Err(unsupported(
            "RSASSA-PSS with an MGF1 hash different from the message hash".into(),
        ));
    }
    Ok((digest, params.salt_len as usize))
}

fn hash_content(crypto: &CryptoProvider, alg: DigestAlg, content: &Detached<'_>) -> Vec<u8> {
    match content {
        Detached::Binary(bytes) => crypto.digest(alg, bytes),
        Detached::Mime(bytes) => {
            let mut hasher = crypto.digests.hasher(alg);
            super::canonical::for_each_crlf_chunk(bytes, |chunk| hasher.update(chunk));
            hasher.finish()
        }
    }
}
