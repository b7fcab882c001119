//! Protect an outbound message: sign (multipart/signed or opaque), encrypt, or both.

use std::time::SystemTime;

use x509_cert::Certificate;

use super::build;
use super::headers;
use super::seven_bit;
use crate::smime::crypto::CryptoProvider;
use crate::smime::encrypt::{self, EncryptOptions};
use crate::smime::error::Result;
use crate::smime::sign::{self, Signer};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignFormat {
    /// multipart/signed: readable by clients without S/MIME. The default.
    #[default]
    Detached,
    /// application/pkcs7-mime; smime-type=signed-data.
    Opaque,
}

/// Sign a whole RFC 5322 message; the outer header fields stay outside the signature.
pub fn sign_message(
    crypto: &CryptoProvider,
    message: &[u8],
    signer: &Signer<'_>,
    format: SignFormat,
    now: SystemTime,
) -> Result<Vec<u8>> {
    let split = headers::split(message);
    let entity = build::content_entity(message);
    let entity = seven_bit::to_seven_bit(&entity)?;
    let wrapped = match format {
        SignFormat::Detached => {
            let der = sign::sign(crypto, &entity, signer, true, now)?;
            build::multipart_signed(&entity, &der, "sha-256")
        }
        SignFormat::Opaque => {
            let der = sign::sign(crypto, &entity, signer, false, now)?;
            build::pkcs7_mime("signed-data", &der)
        }
    };
    Ok(build::assemble(&split.headers, &[], &wrapped))
}

/// Encrypt a whole RFC 5322 message to `recipients`; the outer header fields stay readable.
pub fn encrypt_message(
    crypto: &CryptoProvider,
    message: &[u8],
    recipients: &[&Certificate],
    options: EncryptOptions,
) -> Result<Vec<u8>> {
    let split = headers::split(message);
    let entity = build::content_entity(message);
    let der = encrypt::encrypt(crypto, &entity, recipients, options)?;
    let smime_type = if options.cipher.is_aead() {
        "authEnveloped-data"
    } else {
        "enveloped-data"
    };
    Ok(build::assemble(
        &split.headers,
        &[],
        &build::pkcs7_mime(smime_type, &der),
    ))
}
