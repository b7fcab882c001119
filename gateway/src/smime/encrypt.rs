//! Create EnvelopedData (AES-CBC) or AuthEnvelopedData (AES-GCM) for RSA recipients (key
//! transport) and EC recipients (key agreement, [`super::kari`]).
//! 3DES and the other legacy ciphers cannot be produced: they have no [`ContentCipher`].

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Encode};
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

    let der = if options.cipher.is_aead() {
        let mut nonce = [0u8; 12];
        random(&mut nonce)?;
        let mut buffer = content.to_vec();
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
        content_info::encode(OID_AUTH_ENVELOPED_DATA, &env)?
    } else {
        let mut iv = [0u8; 16];
        random(&mut iv)?;
        let ciphertext = crypto
            .ciphers
            .cbc_encrypt(&cek, &iv, content)
            .map_err(cipher_error)?;
        let env = EnvelopedData {
            version,
            originator_info: None,
            recip_infos,
            encrypted_content: EncryptedContentInfo {
                content_type: OID_DATA,
                content_enc_alg: AlgorithmIdentifierOwned {
                    oid: options.cipher.oid(),
                    parameters: Some(Any::encode_from(&OctetString::new(iv.to_vec())?)?),
                },
                encrypted_content: Some(OctetString::new(ciphertext)?),
            },
            unprotected_attrs: None,
        };
        content_info::encode(OID_ENVELOPED_DATA, &env)?
    };
    Ok(der)
}

/// The RecipientInfo the certificate's key calls for: key transport to RSA, key agreement
/// (ECDH, RFC 5753) to an EC key.
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
        KeyTransport::EcdhX963(_) => {
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
