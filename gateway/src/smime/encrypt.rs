//! Create EnvelopedData (AES-CBC) or AuthEnvelopedData (AES-GCM) for RSA recipients.
//! 3DES and the other legacy ciphers cannot be produced: they have no [`ContentCipher`].

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::KeyInit;
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::Any;
use rand::RngCore;
use rsa::{Oaep, Pkcs1v15Encrypt};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::algorithms::{
    ContentCipher, KeyTransport, OID_AUTH_ENVELOPED_DATA, OID_DATA, OID_ENVELOPED_DATA,
    OID_RSAES_OAEP, OID_RSA_ENCRYPTION,
};
use super::asn1::{AuthEnvelopedData, GcmParameters, RecipientInfoList};
use super::certs;
use super::content_info;
use super::error::{Result, SmimeError};

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
    content: &[u8],
    recipients: &[&Certificate],
    options: EncryptOptions,
) -> Result<Vec<u8>> {
    if recipients.is_empty() {
        return Err(SmimeError::NoRecipients);
    }
    let mut rng = rand::thread_rng();
    let mut cek = Zeroizing::new(vec![0u8; options.cipher.key_len()]);
    rng.fill_bytes(&mut cek);

    let mut infos = Vec::with_capacity(recipients.len());
    for cert in recipients {
        infos.push(RecipientInfo::Ktri(key_trans_recipient(
            cert,
            &cek,
            options.key_transport,
        )?));
    }
    let recip_infos = RecipientInfos(SetOfVec::try_from(infos)?);

    let der = if options.cipher.is_aead() {
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let mut buffer = content.to_vec();
        let nonce_ga = aes_gcm::Nonce::from_slice(&nonce);
        let tag = match options.cipher {
            ContentCipher::Aes128Gcm => aes_gcm::Aes128Gcm::new_from_slice(&cek)
                .map_err(|e| SmimeError::Encoding(e.to_string()))?
                .encrypt_in_place_detached(nonce_ga, b"", &mut buffer),
            ContentCipher::Aes192Gcm => {
                aes_gcm::AesGcm::<aes::Aes192, aes_gcm::aead::consts::U12>::new_from_slice(&cek)
                    .map_err(|e| SmimeError::Encoding(e.to_string()))?
                    .encrypt_in_place_detached(nonce_ga, b"", &mut buffer)
            }
            _ => aes_gcm::Aes256Gcm::new_from_slice(&cek)
                .map_err(|e| SmimeError::Encoding(e.to_string()))?
                .encrypt_in_place_detached(nonce_ga, b"", &mut buffer),
        }
        .map_err(|e| SmimeError::Encoding(e.to_string()))?;
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
        rng.fill_bytes(&mut iv);
        let ciphertext = match options.cipher {
            ContentCipher::Aes128Cbc => cbc::Encryptor::<aes::Aes128>::new_from_slices(&cek, &iv)
                .map_err(|e| SmimeError::Encoding(e.to_string()))?
                .encrypt_padded_vec_mut::<Pkcs7>(content),
            ContentCipher::Aes192Cbc => cbc::Encryptor::<aes::Aes192>::new_from_slices(&cek, &iv)
                .map_err(|e| SmimeError::Encoding(e.to_string()))?
                .encrypt_padded_vec_mut::<Pkcs7>(content),
            _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(&cek, &iv)
                .map_err(|e| SmimeError::Encoding(e.to_string()))?
                .encrypt_padded_vec_mut::<Pkcs7>(content),
        };
        let env = EnvelopedData {
            version: CmsVersion::V0,
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

fn key_trans_recipient(
    cert: &Certificate,
    cek: &[u8],
    transport: KeyTransport,
) -> Result<KeyTransRecipientInfo> {
    let public_key = certs::rsa_public_key(cert)?;
    let mut rng = rand::thread_rng();
    let (encrypted, algorithm) = match transport {
        KeyTransport::RsaPkcs1v15 => (
            public_key.encrypt(&mut rng, Pkcs1v15Encrypt, cek),
            AlgorithmIdentifierOwned {
                oid: OID_RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
        ),
        KeyTransport::RsaOaepSha1 => (
            public_key.encrypt(&mut rng, Oaep::new::<sha1::Sha1>(), cek),
            AlgorithmIdentifierOwned {
                oid: OID_RSAES_OAEP,
                parameters: Some(Any::encode_from(&pkcs1::RsaOaepParams::new::<sha1::Sha1>())?),
            },
        ),
        KeyTransport::RsaOaepSha256 => (
            public_key.encrypt(&mut rng, Oaep::new::<sha2::Sha256>(), cek),
            AlgorithmIdentifierOwned {
                oid: OID_RSAES_OAEP,
                parameters: Some(Any::encode_from(
                    &pkcs1::RsaOaepParams::new::<sha2::Sha256>(),
                )?),
            },
        ),
    };
    let encrypted =
        encrypted.map_err(|e| SmimeError::Certificate(format!("RSA encryption: {e}")))?;
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
