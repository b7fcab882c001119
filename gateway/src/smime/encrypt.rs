//! Create EnvelopedData (AES-CBC) or AuthEnvelopedData (AES-GCM) for RSA recipients (key
//! transport) and EC or X25519 recipients (key agreement, [`super::kari`]).
//! 3DES and the other legacy ciphers cannot be produced: they have no [`ContentCipher`].

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    EncryptedContentInfo, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo, RecipientInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Encode, Header, Length, Tag, TagNumber};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::algorithms::{
    ContentCipher, KeyTransport, OID_AUTH_ENVELOPED_DATA, OID_DATA, OID_ENVELOPED_DATA,
    OID_RSAES_OAEP, OID_RSA_ENCRYPTION,
};
use super::asn1::{AuthEnvelopedData, GcmParameters, RecipientInfoList};
use super::content_info;
use super::crypto::{CryptoProvider, PublicKeyAlg};
use super::error::{Result, SmimeError};
use super::kari;

#[derive(Clone, Copy, Debug)]
pub struct EncryptOptions {
    pub cipher: ContentCipher,
    pub key_transport: KeyTransport,
}

impl Default for EncryptOptions {
    /// AES-256-CBC with PKCS#1 v1.5 key transport: what every S/MIME client reads.
    fn default() -> Self {
        Self {
            cipher: ContentCipher::Aes256Cbc,
            key_transport: KeyTransport::RsaPkcs1v15,
        }
    }
}

/// Encrypt `content` (a MIME entity) to every certificate in `recipients`. Returns DER.
pub fn encrypt(
    crypto: &CryptoProvider,
    content: &[u8],
    recipients: &[&Certificate],
    options: EncryptOptions,
) -> Result<Vec<u8>> {
    let mut der = Vec::with_capacity(encrypted_len_bound(content.len(), recipients.len()));
    encrypt_to(crypto, &[content], recipients, options, &mut |piece| {
        der.extend_from_slice(piece)
    })?;
    Ok(der)
}

/// Content encrypted in one call to the cipher: the AES-CBC ciphertext is produced (and
/// handed on) this much at a time. A multiple of the block size.
const CBC_CHUNK: usize = 64 * 1024;

/// An upper bound of the DER length of [`encrypt`] for `content_len` bytes and
/// `recipients` recipients (for reserving output buffers once).
pub fn encrypted_len_bound(content_len: usize, recipients: usize) -> usize {
    content_len + 16 + 2048 * recipients.max(1) + 256
}

/// [`encrypt`] of the concatenation of `content`, the DER handed to `out` in pieces, in
/// order. With AES-CBC the ciphertext is made [`CBC_CHUNK`] bytes at a time, so neither a
/// copy of the content, the whole ciphertext nor the whole DER exists at once; AES-GCM
/// seals one buffer (the cipher interface has no incremental GCM).
pub fn encrypt_to(
    crypto: &CryptoProvider,
    content: &[&[u8]],
    recipients: &[&Certificate],
    options: EncryptOptions,
    out: &mut dyn FnMut(&[u8]),
) -> Result<()> {
    if recipients.is_empty() {
        return Err(SmimeError::NoRecipients);
    }
    let random = |out: &mut [u8]| {
        crypto
            .fill_random(out)
            .map_err(|e| SmimeError::Encoding(e.to_string()))
    };
    let cipher_error = |e: crypto_provider::CipherError| SmimeError::Encoding(e.to_string());
    let mut cek = Zeroizing::new(vec![0u8; options.cipher.key_len()]);
    random(&mut cek)?;

    let mut infos = Vec::with_capacity(recipients.len());
    for cert in recipients {
        infos.push(recipient_info(crypto, cert, &cek, options.key_transport)?);
    }
    // RFC 5652 §6.1: version 2 as soon as one RecipientInfo is not a version-0 ktri.
    let version = if infos.iter().all(|ri| matches!(ri, RecipientInfo::Ktri(_))) {
        CmsVersion::V0
    } else {
        CmsVersion::V2
    };
    let recip_infos = RecipientInfos(SetOfVec::try_from(infos)?);

    if options.cipher.is_aead() {
        let mut nonce = [0u8; 12];
        random(&mut nonce)?;
        let mut buffer = content.concat();
        let tag = crypto
            .ciphers
            .gcm_seal(&cek, &nonce, b"", &mut buffer)
            .map_err(cipher_error)?;
        let params = GcmParameters {
            nonce: OctetString::new(nonce.to_vec())?,
            icv_len: 16,
        };
        let env = AuthEnvelopedData {
            version: CmsVersion::V0.try_into()?,
            originator_info: None,
            recip_infos: RecipientInfoList(recip_infos.0.into_vec()),
            auth_encrypted_content: EncryptedContentInfo {
                content_type: OID_DATA,
                content_enc_alg: AlgorithmIdentifierOwned {
                    oid: options.cipher.oid(),
                    parameters: Some(Any::encode_from(&params)?),
                },
                encrypted_content: Some(OctetString::new(buffer)?),
            },
            auth_attrs: None,
            mac: OctetString::new(tag.to_vec())?,
            unauth_attrs: None,
        };
        out(&content_info::encode(OID_AUTH_ENVELOPED_DATA, &env)?);
        return Ok(());
    }
    let mut iv = [0u8; 16];
    random(&mut iv)?;
    let content_enc_alg = AlgorithmIdentifierOwned {
        oid: options.cipher.oid(),
        parameters: Some(Any::encode_from(&OctetString::new(iv.to_vec())?)?),
    };
    // PKCS#7 padding always adds 1 to 16 bytes.
    let content_len: usize = content.iter().map(|c| c.len()).sum();
    let ciphertext_len = (content_len / 16 + 1) * 16;
    // The DER around the ciphertext, by hand so the ciphertext can follow in chunks:
    // ContentInfo { envelopedData, [0] EnvelopedData { version, recipientInfos,
    //   EncryptedContentInfo { data, algorithm, [0] IMPLICIT ciphertext } } }
    let version = version.to_der()?;
    let infos = recip_infos.to_der()?;
    let info_head = [OID_DATA.to_der()?, content_enc_alg.to_der()?].concat();
    let ciphertext_head = header(context_tag(false), ciphertext_len)?;
    let info_len = info_head.len() + ciphertext_head.len() + ciphertext_len;
    let info_header = header(Tag::Sequence, info_len)?;
    let env_len = version.len() + infos.len() + info_header.len() + info_len;
    let env_header = header(Tag::Sequence, env_len)?;
    let explicit_len = env_header.len() + env_len;
    let explicit_header = header(context_tag(true), explicit_len)?;
    let content_type = OID_ENVELOPED_DATA.to_der()?;
    let outer = header(
        Tag::Sequence,
        content_type.len() + explicit_header.len() + explicit_len,
    )?;
    for piece in [
        &outer,
        &content_type,
        &explicit_header,
        &env_header,
        &version,
        &infos,
        &info_header,
        &info_head,
        &ciphertext_head,
    ] {
        out(piece);
    }
    cbc_encrypt_chunks(crypto, &cek, iv, content, out)
}

/// `[0]`, primitive (IMPLICIT OCTET STRING) or constructed (EXPLICIT).
fn context_tag(constructed: bool) -> Tag {
    Tag::ContextSpecific {
        constructed,
        number: TagNumber::N0,
    }
}

/// The DER tag and length octets of a value of `len` bytes.
fn header(tag: Tag, len: usize) -> Result<Vec<u8>> {
    Ok(Header::new(tag, Length::try_from(len)?)?.to_der()?)
}

/// AES-CBC with PKCS#7 padding over the concatenation of `parts`, [`CBC_CHUNK`] bytes per
/// call. A chunk of whole blocks comes back with one block of padding, which is dropped: the
/// blocks before it are exactly the CBC blocks, and the next chunk chains from the last.
fn cbc_encrypt_chunks(
    crypto: &CryptoProvider,
    key: &[u8],
    mut iv: [u8; 16],
    parts: &[&[u8]],
    out: &mut dyn FnMut(&[u8]),
) -> Result<()> {
    let cipher_error = |e: crypto_provider::CipherError| SmimeError::Encoding(e.to_string());
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut staged = Zeroizing::new(Vec::with_capacity(CBC_CHUNK.min(total)));
    for part in parts {
        let mut part: &[u8] = part;
        while !part.is_empty() {
            let take = (CBC_CHUNK - staged.len()).min(part.len());
            let (head, rest) = part.split_at(take);
            staged.extend_from_slice(head);
            part = rest;
            if staged.len() == CBC_CHUNK {
                let sealed = crypto
                    .ciphers
                    .cbc_encrypt(key, &iv, &staged)
                    .map_err(cipher_error)?;
                let (blocks, last_block) = sealed
                    .get(..CBC_CHUNK)
                    .and_then(|blocks| Some((blocks, blocks.last_chunk::<16>()?)))
                    .ok_or_else(|| {
                        SmimeError::Encoding("AES-CBC returned too little ciphertext".into())
                    })?;
                iv = *last_block;
                out(blocks);
                staged.clear();
            }
        }
    }
    let last = crypto
        .ciphers
        .cbc_encrypt(key, &iv, &staged)
        .map_err(cipher_error)?;
    out(&last);
    Ok(())
}

/// The RecipientInfo the certificate's key calls for: key transport to RSA, key agreement
/// to an EC key (ECDH, RFC 5753) or an X25519 key (RFC 8418).
fn recipient_info(
    crypto: &CryptoProvider,
    cert: &Certificate,
    cek: &[u8],
    transport: KeyTransport,
) -> Result<RecipientInfo> {
    let spki = cert.tbs_certificate.subject_public_key_info.to_der()?;
    match crypto_provider::keys::public_key_alg(&spki)
        .map_err(|e| SmimeError::Certificate(e.to_string()))?
    {
        PublicKeyAlg::Rsa { .. } => Ok(RecipientInfo::Ktri(key_trans_recipient(
            crypto, cert, cek, transport,
        )?)),
        PublicKeyAlg::Ec { curve } => Ok(RecipientInfo::Kari(kari::recipient(
            crypto, cert, curve, cek,
        )?)),
        PublicKeyAlg::X25519 => Ok(RecipientInfo::Kari(kari::recipient_x25519(
            crypto, cert, cek,
        )?)),
        other => Err(SmimeError::Certificate(format!(
            "cannot encrypt to an {} key",
            other.name()
        ))),
    }
}

fn key_trans_recipient(
    crypto: &CryptoProvider,
    cert: &Certificate,
    cek: &[u8],
    transport: KeyTransport,
) -> Result<KeyTransRecipientInfo> {
    let spki = cert.tbs_certificate.subject_public_key_info.to_der()?;
    let algorithm = match transport {
        KeyTransport::EcdhX963(_) | KeyTransport::EcdhHkdfSha256 => {
            return Err(SmimeError::UnsupportedKeyTransport(format!(
                "{} for an RSA recipient",
                transport.name()
            )))
        }
        KeyTransport::RsaPkcs1v15 => AlgorithmIdentifierOwned {
            oid: OID_RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        KeyTransport::RsaOaepSha1 => AlgorithmIdentifierOwned {
            oid: OID_RSAES_OAEP,
            parameters: Some(Any::encode_from(&pkcs1::RsaOaepParams::new::<sha1::Sha1>())?),
        },
        KeyTransport::RsaOaepSha256 => AlgorithmIdentifierOwned {
            oid: OID_RSAES_OAEP,
            parameters: Some(Any::encode_from(
                &pkcs1::RsaOaepParams::new::<sha2::Sha256>(),
            )?),
        },
    };
    let encrypted = crypto
        .public_keys
        .encrypt(&spki, transport, cek)
        .map_err(|e| SmimeError::Certificate(format!("RSA encryption: {e}")))?;
    Ok(KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        key_enc_alg: algorithm,
        enc_key: OctetString::new(encrypted)?,
    })
}
