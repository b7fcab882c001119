//! Decrypt EnvelopedData (AES-CBC) and AuthEnvelopedData (AES-GCM) with RSA key transport or
//! ECDH key agreement ([`super::kari`], for EC proxy keys).
//!
//! Every failure after a recipient matched — wrong key, bad RSA padding, bad CBC padding,
//! corrupt ciphertext, bad GCM tag — ends in [`SmimeError::DecryptionFailed`]. Key transport
//! uses deterministic implicit rejection (`crypto_provider::implicit_rejection`): a failed
//! unwrap continues with a synthetic key derived from our private key and the ciphertext, so a
//! forged message fails later, at the content, exactly like a wrong key does — and the same
//! message always meets the same fate.
//!
//! **Which candidate may open the content.** A message may name our key in several
//! RecipientInfos (at most [`MAX_ATTEMPTS_PER_KEY`] are tried). AES-CBC has no integrity: a
//! synthetic key passes its padding check about one time in 256 and would deliver garbage.
//! So a synthetic key of one private key is tried only when no RecipientInfo for the *same*
//! private key unwrapped genuinely. A genuine unwrap is what the sender made for us (or a
//! replay of it), and the choice depends only on whether such a one exists in the message —
//! never on which bogus ones surround it — so the rule adds no padding oracle: a forger
//! without the key gets the real content or nothing, as before. What remains: a message whose
//! every RecipientInfo for our key is bogus still opens one time in 256 under CBC (with
//! garbage that is the same on every retry); AES-GCM authenticates and never does.

use cms::enveloped_data::{
    EncryptedContentInfo, KeyAgreeRecipientIdentifier, KeyAgreeRecipientInfo, RecipientInfo,
};
use der::asn1::{AnyRef, OctetString};
use der::{Decode, Encode};
use spki::AlgorithmIdentifierRef;
use x509_cert::name::Name;
use x509_cert::Certificate;

use super::algorithms::{
    ContentCipher, KeyTransport, OID_AUTH_ENVELOPED_DATA, OID_ENVELOPED_DATA, OID_RSAES_OAEP,
    OID_RSA_ENCRYPTION,
};
use super::asn1::{
    AuthEnvelopedDataRef, EnvelopedDataRef, GcmParameters, KeyTransRecipientInfoRef,
    RecipientIdentifierRef, RecipientInfoRef, RecipientInfoRefs,
};
use super::certs;
use super::content_info;
use super::crypto::{CryptoProvider, PrivateKeyOps, UnwrappedKey};
use super::error::{Result, SmimeError};
use super::kari;

/// Most RecipientInfos tried per key. Each costs an RSA private operation; a genuine message
/// names a recipient once (twice at most, by issuer and serial and by key identifier).
pub const MAX_ATTEMPTS_PER_KEY: usize = 2;

/// A key pair we may decrypt with: the certificate identifies it, the key does the work.
pub struct DecryptionKey<'a> {
    pub certificate: &'a Certificate,
    pub key: &'a dyn PrivateKeyOps,
}

/// The plaintext and how it was protected.
#[derive(Debug)]
pub struct Decrypted {
    pub content: Vec<u8>,
    pub cipher: ContentCipher,
    pub key_transport: KeyTransport,
    /// Index into the keys given to [`decrypt`] of the key that opened the message.
    pub key_index: usize,
    /// Indices of every key given that a RecipientInfo names (found by identifier, no
    /// private-key operation): who else the message is addressed to, when one decryption
    /// serves several recipients.
    pub addressed_keys: Vec<usize>,
    /// True for AuthEnvelopedData (integrity protected by the GCM tag).
    pub authenticated: bool,
    /// What the message says about itself (cipher, every recipient).
    pub envelope: EnvelopeSummary,
}

/// How a recipient is identified in the message (for reports).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum RecipientId {
    IssuerAndSerial {
        issuer: IssuerName,
        serial: String,
    },
    SubjectKeyIdentifier {
        ski: String,
    },
    /// A recipient kind we do not support (KEK, password, other).
    Unsupported {
        kind: String,
    },
}

/// An issuer as a RecipientInfo names it. Kept as its encoding and written as RFC 4514 text
/// only when read: a message can name a thousand issuers that nobody looks at, and writing
/// each would cost more than everything else done with that message.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuerName {
    /// The content octets of the Name's SEQUENCE (already decoded once, so known to be one).
    content: Vec<u8>,
}

impl IssuerName {
    fn from_content(content: &[u8]) -> Self {
        Self {
            content: content.to_vec(),
        }
    }

    fn from_name(name: &Name) -> Self {
        let content = name
            .to_der()
            .ok()
            .and_then(|der| Some(AnyRef::from_der(&der).ok()?.value().to_vec()))
            .unwrap_or_default();
        Self { content }
    }

    fn name(&self) -> der::Result<Name> {
        AnyRef::new(der::Tag::Sequence, &self.content)?.decode_as()
    }
}

impl std::fmt::Display for IssuerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Ok(name) => f.write_str(&smime_pki::cert::distinguished_name(&name)),
            // Not reached: the name was decoded when the message was read.
            Err(_) => write!(f, "(undecodable name {})", hex::encode(&self.content)),
        }
    }
}

impl std::fmt::Debug for IssuerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl serde::Serialize for IssuerName {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One recipient of an encrypted message, as the message states it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RecipientSummary {
    pub id: RecipientId,
    pub key_transport: Option<String>,
}

/// What an encrypted message says about itself, without decrypting it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EnvelopeSummary {
    pub authenticated: bool,
    pub cipher: String,
    pub recipients: Vec<RecipientSummary>,
}

/// An (Auth)EnvelopedData, borrowing from its DER.
struct Parsed<'a> {
    recipients: RecipientInfoRefs<'a>,
    content: EncryptedContentInfo,
    /// AuthEnvelopedData only: the tag and the additional authenticated data.
    aead: Option<(Vec<u8>, Vec<u8>)>,
}

fn parse(der: &[u8]) -> Result<Parsed<'_>> {
    let info = content_info::decode(der)?;
    match info.content_type {
        OID_ENVELOPED_DATA => {
            let env: EnvelopedDataRef = info.content.decode_as()?;
            Ok(Parsed {
                recipients: env.recip_infos,
                content: env.encrypted_content,
                aead: None,
            })
        }
        OID_AUTH_ENVELOPED_DATA => {
            let env: AuthEnvelopedDataRef = info.content.decode_as()?;
            // RFC 5083: the AAD is the DER of authAttrs with a SET OF tag.
            let aad = match &env.auth_attrs {
                Some(attrs) => attrs.to_der()?,
                None => Vec::new(),
            };
            Ok(Parsed {
                recipients: env.recip_infos,
                content: env.auth_encrypted_content,
                aead: Some((env.mac.as_bytes().to_vec(), aad)),
            })
        }
        other => Err(SmimeError::UnsupportedContentType(other.to_string())),
    }
}

/// Describe an encrypted message: cipher and recipients.
pub fn describe(input: &[u8]) -> Result<EnvelopeSummary> {
    let der = content_info::to_der(input)?;
    Ok(summarise(&parse(&der)?))
}

fn summarise(parsed: &Parsed) -> EnvelopeSummary {
    let cipher = match ContentCipher::from_oid(&parsed.content.content_enc_alg.oid) {
        Ok(c) => c.name().to_string(),
        Err(e) => e.to_string(),
    };
    let mut recipients = Vec::new();
    for ri in parsed.recipients.list.iter() {
        let ri = match ri {
            RecipientInfoRef::KeyTransport(k) => {
                recipients.push(RecipientSummary {
                    id: recipient_id(&RecipientName::of_transport(k)),
                    key_transport: Some(match key_transport(&k.key_enc_alg) {
                        Ok(t) => t.name().to_string(),
                        Err(e) => e.to_string(),
                    }),
                });
                continue;
            }
            RecipientInfoRef::Other(ri) => ri,
        };
        match ri {
            // One entry per recipient the agreement serves, named by its key-agreement KDF.
            RecipientInfo::Kari(k) => {
                let kdf = match kari::algorithms(k) {
                    Ok((kdf, _)) => kdf.name().to_string(),
                    Err(e) => e.to_string(),
                };
                for rek in &k.recipient_enc_keys {
                    recipients.push(RecipientSummary {
                        id: recipient_id(&RecipientName::of_agreement(&rek.rid)),
                        key_transport: Some(kdf.clone()),
                    });
                }
            }
            other => recipients.push(RecipientSummary {
                id: RecipientId::Unsupported {
                    kind: recipient_kind(other).into(),
                },
                key_transport: None,
            }),
        }
    }
    EnvelopeSummary {
        authenticated: parsed.aead.is_some(),
        cipher,
        recipients,
    }
}

fn recipient_kind(ri: &RecipientInfo) -> &'static str {
    match ri {
        RecipientInfo::Ktri(_) => "key-transport",
        RecipientInfo::Kari(_) => "key-agreement",
        RecipientInfo::Kekri(_) => "kek",
        RecipientInfo::Pwri(_) => "password",
        RecipientInfo::Ori(_) => "other",
    }
}

/// Who a RecipientInfo names, borrowed from the message: the same two ways to name a
/// certificate for key transport and key agreement, so both are matched and reported alike.
enum RecipientName<'a> {
    IssuerAndSerial {
        issuer: IssuerRef<'a>,
        serial: &'a [u8],
    },
    SubjectKeyIdentifier(&'a [u8]),
}

/// An issuer as a RecipientInfo gives it.
#[derive(Clone, Copy)]
enum IssuerRef<'a> {
    /// Key transport: the content octets of a Name as received, checked by
    /// [`super::asn1::validate_name`] and never decoded.
    Encoded(&'a [u8]),
    /// Key agreement, read with the `cms` types.
    Decoded(&'a Name),
}

impl<'a> RecipientName<'a> {
    fn of_transport(ktri: &KeyTransRecipientInfoRef<'a>) -> Self {
        match ktri.rid {
            RecipientIdentifierRef::IssuerAndSerialNumber(ias) => Self::IssuerAndSerial {
                issuer: IssuerRef::Encoded(ias.issuer.value()),
                serial: ias.serial_number.as_bytes(),
            },
            RecipientIdentifierRef::SubjectKeyIdentifier(ski) => {
                Self::SubjectKeyIdentifier(ski.as_bytes())
            }
        }
    }

    fn of_agreement(rid: &'a KeyAgreeRecipientIdentifier) -> Self {
        match rid {
            KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(ias) => Self::IssuerAndSerial {
                issuer: IssuerRef::Decoded(&ias.issuer),
                serial: ias.serial_number.as_bytes(),
            },
            KeyAgreeRecipientIdentifier::RKeyId(key_id) => {
                Self::SubjectKeyIdentifier(key_id.subject_key_identifier.0.as_bytes())
            }
        }
    }
}

fn recipient_id(rid: &RecipientName<'_>) -> RecipientId {
    match rid {
        RecipientName::IssuerAndSerial { issuer, serial } => RecipientId::IssuerAndSerial {
            issuer: match issuer {
                IssuerRef::Encoded(content) => IssuerName::from_content(content),
                IssuerRef::Decoded(name) => IssuerName::from_name(name),
            },
            serial: hex::encode(serial),
        },
        RecipientName::SubjectKeyIdentifier(ski) => RecipientId::SubjectKeyIdentifier {
            ski: hex::encode(ski),
        },
    }
}

fn key_transport(alg: &AlgorithmIdentifierRef<'_>) -> Result<KeyTransport> {
    match alg.oid {
        OID_RSA_ENCRYPTION => Ok(KeyTransport::RsaPkcs1v15),
        OID_RSAES_OAEP => {
            let Some(params) = &alg.parameters else {
                return Ok(KeyTransport::RsaOaepSha1);
            };
            let der = params.to_der()?;
            let params = pkcs1::RsaOaepParams::try_from(der.as_slice()).map_err(|e| {
                SmimeError::UnsupportedKeyTransport(format!("OAEP parameters: {e}"))
            })?;
            let mgf_hash = params.mask_gen.parameters.as_ref().map(|p| p.oid);
            let empty_label =
                params.p_source.parameters.map(|p| p.value().is_empty()) != Some(false);
            match (
                super::algorithms::DigestAlg::from_oid(&params.hash.oid),
                mgf_hash.and_then(|o| super::algorithms::DigestAlg::from_oid(&o)),
            ) {
                (Some(super::algorithms::DigestAlg::Sha1), Some(super::algorithms::DigestAlg::Sha1))
                    if empty_label =>
                {
                    Ok(KeyTransport::RsaOaepSha1)
                }
                (
                    Some(super::algorithms::DigestAlg::Sha256),
                    Some(super::algorithms::DigestAlg::Sha256),
                ) if empty_label => Ok(KeyTransport::RsaOaepSha256),
                _ => Err(SmimeError::UnsupportedKeyTransport(
                    "RSAES-OAEP with parameters other than SHA-1/SHA-1 or SHA-256/SHA-256 and an empty label"
                        .into(),
                )),
            }
        }
        other => Err(SmimeError::UnsupportedKeyTransport(other.to_string())),
    }
}

/// How one of our certificates is named in a RecipientInfo, worked out once per message.
struct OurName<'a> {
    certificate: &'a Certificate,
    /// The issuer's encoding (its content octets), to compare before comparing names.
    issuer: Option<Vec<u8>>,
    subject_key_identifier: Vec<u8>,
}

impl<'a> OurName<'a> {
    fn of(certificate: &'a Certificate) -> Self {
        let issuer = certificate
            .tbs_certificate
            .issuer
            .to_der()
            .ok()
            .and_then(|der| Some(AnyRef::from_der(&der).ok()?.value().to_vec()));
        Self {
            certificate,
            issuer,
            subject_key_identifier: certs::subject_key_identifier(certificate),
        }
    }

    /// Whether `rid` names this certificate: serial number and issuer (by RFC 5280 name
    /// comparison; an identical encoding needs no decoding), or subject key identifier.
    fn is_named_by(&self, rid: &RecipientName<'_>) -> bool {
        let tbs = &self.certificate.tbs_certificate;
        match rid {
            RecipientName::IssuerAndSerial { issuer, serial } => {
                *serial == tbs.serial_number.as_bytes()
                    && match issuer {
                        IssuerRef::Encoded(content) => {
                            Some(*content) == self.issuer.as_deref()
                                || certs::encoded_name_matches(content, &tbs.issuer)
                        }
                        IssuerRef::Decoded(name) => certs::names_match(name, &tbs.issuer),
                    }
            }
            RecipientName::SubjectKeyIdentifier(ski) => *ski == self.subject_key_identifier,
        }
    }
}

/// Decrypt an `enveloped-data` or `authEnveloped-data` CMS object (BER or DER) with whichever of
/// `keys` the message names as a recipient. Several matching keys are tried in turn.
pub fn decrypt(
    crypto: &CryptoProvider,
    input: &[u8],
    keys: &[DecryptionKey<'_>],
) -> Result<Decrypted> {
    decrypt_or_describe(crypto, input, keys).map_err(|(e, _)| e)
}

/// [`decrypt`]; a failure comes with what the message says about itself when it parsed, so
/// that it is described without parsing the message a second time.
pub fn decrypt_or_describe(
    crypto: &CryptoProvider,
    input: &[u8],
    keys: &[DecryptionKey<'_>],
) -> std::result::Result<Decrypted, (SmimeError, Option<EnvelopeSummary>)> {
    let der = content_info::to_der(input).map_err(|e| (e, None))?;
    let parsed = parse(&der).map_err(|e| (e, None))?;
    let mut envelope = Some(summarise(&parsed));
    decrypt_parsed(crypto, parsed, &mut envelope, keys).map_err(|e| (e, envelope))
}

/// The work of [`decrypt`] after parsing; takes `envelope` on success.
fn decrypt_parsed(
    crypto: &CryptoProvider,
    parsed: Parsed,
    envelope: &mut Option<EnvelopeSummary>,
    keys: &[DecryptionKey<'_>],
) -> Result<Decrypted> {
    let cipher = ContentCipher::from_oid(&parsed.content.content_enc_alg.oid)?;
    if cipher.is_aead() != parsed.aead.is_some() {
        return Err(SmimeError::UnsupportedCipher(format!(
            "{} inside {}",
            cipher.name(),
            if parsed.aead.is_some() {
                "AuthEnvelopedData"
            } else {
                "EnvelopedData"
            }
        )));
    }
    let params = parsed
        .content
        .content_enc_alg
        .parameters
        .as_ref()
        .ok_or_else(|| SmimeError::UnsupportedCipher("missing IV/nonce parameters".into()))?
        .to_der()?;

    let ours: Vec<OurName<'_>> = keys.iter().map(|k| OurName::of(k.certificate)).collect();
    let mut candidates = Vec::new();
    let mut attempts_per_key = vec![0usize; keys.len()];
    let mut any_supported = false;
    let mut transport_error = None;
    // Records a candidate for each of our keys that `rid` names, up to the attempt limit.
    let mut consider = |rid: RecipientName<'_>, transport: &Result<KeyTransport>, wrapped| {
        for (index, (our, attempts)) in ours.iter().zip(&mut attempts_per_key).enumerate() {
            if *attempts < MAX_ATTEMPTS_PER_KEY && our.is_named_by(&rid) {
                match transport {
                    Ok(transport) => {
                        *attempts += 1;
                        candidates.push((wrapped, *transport, index));
                    }
                    Err(e) => {
                        transport_error = Some(SmimeError::UnsupportedKeyTransport(e.to_string()))
                    }
                }
            }
        }
    };
    for ri in parsed.recipients.list.iter() {
        match ri {
            RecipientInfoRef::KeyTransport(ktri) => {
                any_supported = true;
                consider(
                    RecipientName::of_transport(ktri),
                    &key_transport(&ktri.key_enc_alg),
                    Wrapped::Transport(ktri.enc_key.as_bytes()),
                );
            }
            // One recipient per RecipientEncryptedKey.
            RecipientInfoRef::Other(RecipientInfo::Kari(kari)) => {
                any_supported = true;
                let transport = kari::algorithms(kari).map(|(transport, _)| transport);
                for rek in &kari.recipient_enc_keys {
                    consider(
                        RecipientName::of_agreement(&rek.rid),
                        &transport,
                        Wrapped::Agreement(kari, rek.enc_key.as_bytes()),
                    );
                }
            }
            RecipientInfoRef::Other(_) => {}
        }
    }
    if candidates.is_empty() {
        return Err(match (transport_error, any_supported) {
            (Some(e), _) => e,
            (None, false) => SmimeError::UnsupportedRecipientType,
            (None, true) => SmimeError::NoMatchingRecipient,
        });
    }

    let Some(ciphertext) = parsed.content.encrypted_content else {
        return Err(SmimeError::MissingContent);
    };
    let mut content = ciphertext.into_bytes();
    let content_key = ContentKey::parse(&params, parsed.aead.as_ref())?;
    // Every candidate is unwrapped (a bounded number of private-key operations) before any
    // is tried, so the work done does not depend on which of them is genuine.
    let unwrapped: Vec<_> = candidates
        .iter()
        .map(|(wrapped, transport, index)| {
            KEY_TRANSPORT_OPERATIONS.with(|c| c.set(c.get() + 1));
            let key = keys.get(*index)?.key;
            match wrapped {
                Wrapped::Transport(encrypted_key) => {
                    Some(key.unwrap_key(*transport, encrypted_key, cipher.key_len()))
                }
                // AES key wrap authenticates the key: a failed unwrap is no candidate at all.
                Wrapped::Agreement(kari, encrypted_key) => {
                    kari::unwrap(crypto, kari, encrypted_key, key, cipher.key_len())
                        .map(|key| UnwrappedKey { key, genuine: true })
                }
            }
        })
        .collect();
    let mut genuine_for_key = vec![false; keys.len()];
    for ((_, _, index), cek) in candidates.iter().zip(&unwrapped) {
        if let Some(genuine) = genuine_for_key.get_mut(*index) {
            *genuine |= cek.as_ref().is_some_and(|c| c.genuine);
        }
    }
    let eligible: Vec<_> = candidates
        .iter()
        .zip(&unwrapped)
        .filter_map(|(candidate, cek)| Some((candidate, cek.as_ref()?)))
        .filter(|((_, _, index), cek)| cek.genuine || genuine_for_key.get(*index) == Some(&false))
        .collect();
    let last = eligible.len().saturating_sub(1);
    for (position, ((_, transport, index), cek)) in eligible.into_iter().enumerate() {
        if content_key.opens(crypto, cipher, &cek.key, &mut content, position == last)? {
            return Ok(Decrypted {
                content,
                cipher,
                key_transport: *transport,
                key_index: *index,
                addressed_keys: attempts_per_key
                    .iter()
                    .enumerate()
                    .filter(|(_, attempts)| **attempts > 0)
                    .map(|(k, _)| k)
                    .collect(),
                authenticated: parsed.aead.is_some(),
                envelope: envelope.take().unwrap_or_default(),
            });
        }
    }
    Err(SmimeError::DecryptionFailed)
}

/// Where a candidate's content-encryption key is: RSA-encrypted, or wrapped under a key
/// agreed with the sender (the RecipientInfo and this recipient's wrapped key).
#[derive(Clone, Copy)]
enum Wrapped<'a> {
    /// The RSA-encrypted key.
    Transport(&'a [u8]),
    Agreement(&'a KeyAgreeRecipientInfo, &'a [u8]),
}

thread_local! {
    static KEY_TRANSPORT_OPERATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Private-key operations [`decrypt`] has done on this thread so far. Per thread, so that a
/// caller (a test, the dispatcher) can count exactly the work of its own synchronous call.
pub fn key_transport_operations() -> u64 {
    KEY_TRANSPORT_OPERATIONS.with(|c| c.get())
}

/// What the content cipher needs besides the key: the IV, or the nonce, tag and AAD.
enum ContentKey<'a> {
    Cbc {
        iv: Vec<u8>,
    },
    Gcm {
        nonce: Vec<u8>,
        tag: &'a [u8],
        aad: &'a [u8],
    },
}

impl<'a> ContentKey<'a> {
    fn parse(params_der: &[u8], aead: Option<&'a (Vec<u8>, Vec<u8>)>) -> Result<Self> {
        match aead {
            None => Ok(ContentKey::Cbc {
                iv: OctetString::from_der(params_der)?.into_bytes(),
            }),
            Some((tag, aad)) => {
                let params = GcmParameters::from_der(params_der)?;
                let nonce = params.nonce.into_bytes();
                if nonce.len() != 12 || params.icv_len != 16 || tag.len() != 16 {
                    return Err(SmimeError::UnsupportedCipher(format!(
                        "AES-GCM with a {}-byte nonce and a {}-byte tag (12 and 16 are supported)",
                        nonce.len(),
                        params.icv_len
                    )));
                }
                Ok(ContentKey::Gcm { nonce, tag, aad })
            }
        }
    }

    /// Decrypt `content` in place if `key` is the right one; `Ok(false)` leaves it untouched.
    /// A wrong key never costs a full CBC decryption (only the last block is tried, for its
    /// padding); AES-GCM decrypts while it checks the tag, so unless this is the `last` try it
    /// works on a copy.
    fn opens(
        &self,
        crypto: &CryptoProvider,
        cipher: ContentCipher,
        key: &[u8],
        content: &mut Vec<u8>,
        last: bool,
    ) -> Result<bool> {
        if key.len() != cipher.key_len() {
            return Err(SmimeError::DecryptionFailed);
        }
        match self {
            ContentKey::Cbc { iv } => {
                const BLOCK: usize = 16;
                if !content.len().is_multiple_of(BLOCK) {
                    return Err(SmimeError::DecryptionFailed);
                }
                // Whole blocks, at least one: the last is chained from the one before it, or
                // from the IV when it is the only one.
                let Some((earlier, last)) = content.split_last_chunk::<BLOCK>() else {
                    return Err(SmimeError::DecryptionFailed);
                };
                let chain = earlier
                    .last_chunk::<BLOCK>()
                    .map_or(iv.as_slice(), |block| block.as_slice());
                let mut last_block = last.to_vec();
                if crypto
                    .ciphers
                    .cbc_decrypt(key, chain, &mut last_block)
                    .is_err()
                {
                    return Ok(false);
                }
                let len = crypto
                    .ciphers
                    .cbc_decrypt(key, iv, content)
                    .map_err(|_| SmimeError::DecryptionFailed)?;
                content.truncate(len);
                Ok(true)
            }
            ContentKey::Gcm { nonce, tag, aad } => {
                if last {
                    return Ok(crypto
                        .ciphers
                        .gcm_open(key, nonce, aad, content, tag)
                        .is_ok());
                }
                let mut attempt = content.clone();
                if crypto
                    .ciphers
                    .gcm_open(key, nonce, aad, &mut attempt, tag)
                    .is_err()
                {
                    return Ok(false);
                }
                *content = attempt;
                Ok(true)
            }
        }
    }
}
