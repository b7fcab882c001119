//! Recognise S/MIME entities and take out their CMS bytes (parsed with `mail-parser`).

use mail_parser::{MessageParser, MimeHeaders, PartType};

use crate::smime::algorithms::{OID_AUTH_ENVELOPED_DATA, OID_ENVELOPED_DATA, OID_SIGNED_DATA};
use crate::smime::content_info;
use crate::smime::error::{Result, SmimeError};

/// What an entity is, as far as S/MIME goes.
pub enum Classified<'a> {
    /// EnvelopedData or AuthEnvelopedData: the CMS bytes (BER or DER).
    Encrypted(Vec<u8>),
    /// Opaque signed-data: the CMS bytes.
    SignedOpaque(Vec<u8>),
    /// multipart/signed: the first part exactly as transmitted, and the signature's CMS bytes.
    SignedDetached {
        signed: &'a [u8],
        signature: Vec<u8>,
    },
    /// Not S/MIME (plain content).
    Plain,
}

fn is_pkcs7_mime(ctype: &str, subtype: &str, name: Option<&str>) -> bool {
    let pkcs7 = ctype.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("pkcs7-mime")
            || subtype.eq_ignore_ascii_case("x-pkcs7-mime"));
    // Legacy: an application/octet-stream body named *.p7m.
    let p7m_file = ctype.eq_ignore_ascii_case("application")
        && subtype.eq_ignore_ascii_case("octet-stream")
        && name.is_some_and(|n| n.to_ascii_lowercase().ends_with(".p7m"));
    pkcs7 || p7m_file
}

/// Classify a message or MIME entity.
pub fn classify(entity: &[u8]) -> Result<Classified<'_>> {
    let message = MessageParser::default()
        .parse(entity)
        .ok_or_else(|| SmimeError::Mime("cannot parse the message".into()))?;
    let root = message.root_part();
    let Some(ct) = root.content_type() else {
        return Ok(Classified::Plain);
    };
    let subtype = ct.subtype().unwrap_or("");
    if is_pkcs7_mime(ct.ctype(), subtype, root.attachment_name()) {
        let der = root.contents().to_vec();
        if der.is_empty() {
            return Err(SmimeError::Mime("empty application/pkcs7-mime body".into()));
        }
        // The CMS content type, not the smime-type parameter, decides: clients get it wrong.
        let normalised = content_info::to_der(&der)?;
        let info = content_info::decode(&normalised)?;
        return match info.content_type {
            OID_ENVELOPED_DATA | OID_AUTH_ENVELOPED_DATA => Ok(Classified::Encrypted(der)),
            OID_SIGNED_DATA => Ok(Classified::SignedOpaque(der)),
            other => Err(SmimeError::UnsupportedContentType(other.to_string())),
        };
    }
    if ct.ctype().eq_ignore_ascii_case("multipart") && subtype.eq_ignore_ascii_case("signed") {
        let Some(parts) = root.sub_parts() else {
            return Err(SmimeError::Mime("multipart/signed without parts".into()));
        };
        let (Some(first), Some(second)) = (
            parts.first().and_then(|id| message.part(*id)),
            parts.get(1).and_then(|id| message.part(*id)),
        ) else {
            return Err(SmimeError::Mime(
                "multipart/signed needs two parts (content and signature)".into(),
            ));
        };
        let start = first.raw_header_offset() as usize;
        let end = first.raw_end_offset() as usize;
        let signed = entity
            .get(start..end)
            .ok_or_else(|| SmimeError::Mime("multipart/signed part offsets out of range".into()))?;
        let signature = match &second.body {
            PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
            PartType::Text(t) => t.as_bytes().to_vec(),
            _ => {
                return Err(SmimeError::Mime(
                    "signature part is not a binary part".into(),
                ))
            }
        };
        if signature.is_empty() {
            return Err(SmimeError::Mime("empty signature part".into()));
        }
        return Ok(Classified::SignedDetached { signed, signature });
    }
    Ok(Classified::Plain)
}
