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
    // The wrapper is written straight after the outer header fields: one copy of the
    // message less alive at the peak.
    let mut out;
    match format {
        SignFormat::Detached => {
            let der = sign::sign(crypto, &entity, signer, true, now)?;
            let head_len = message.len().saturating_sub(split.body.len());
            out = Vec::with_capacity(head_len + build::multipart_signed_len(&entity, &der));
            build::assemble_head(&split.headers, &[], &mut out);
            build::write_multipart_signed(&entity, &der, "sha-256", &mut out);
        }
        SignFormat::Opaque => {
            let der = sign::sign(crypto, &entity, signer, false, now)?;
            out = build::assemble(&split.headers, &[], &build::pkcs7_mime("signed-data", &der));
        }
    }
    Ok(out)
}

/// Encrypt a whole RFC 5322 message to `recipients`; the outer header fields stay readable.
pub fn encrypt_message(
    crypto: &CryptoProvider,
    message: &[u8],
    recipients: &[&Certificate],
    options: EncryptOptions,
) -> Result<Vec<u8>> {
    let split = headers::split(message);
    let (fields, body) = build::content_entity_parts(message);
    let smime_type = if options.cipher.is_aead() {
        "authEnveloped-data"
    } else {
        "enveloped-data"
    };
    // The CMS object goes through base64 into the output as it is produced: the ciphertext
    // and the DER never exist whole (see `encrypt::encrypt_to`), and the output is reserved
    // once so growing it never holds two copies.
    let der_len = encrypt::encrypted_len_bound(fields.len() + body.len(), recipients.len());
    let head_len = message.len().saturating_sub(body.len());
    let mut out = Vec::with_capacity(head_len + build::base64_lines_len(der_len) + 1024);
    build::assemble_head(&split.headers, &[], &mut out);
    build::pkcs7_mime_header(smime_type, &mut out);
    let mut base64 = build::Base64Lines::new(&mut out);
    encrypt::encrypt_to(
        crypto,
        &[fields.as_slice(), &body[..]],
        recipients,
        options,
        &mut |piece| base64.write(piece),
    )?;
    base64.finish();
    Ok(out)
}
