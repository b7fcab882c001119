//! Open every S/MIME layer of an inbound message: decrypt, verify, repeat (signed-then-encrypted
//! and encrypted-then-signed alike), up to a fixed depth.

use super::build;
use super::classify::{classify, Classified};
use super::headers::{self, HeaderField};
use crate::smime::crypto::CryptoProvider;
use crate::smime::decrypt::{self, DecryptionKey, EnvelopeSummary};
use crate::smime::error::SmimeError;
use crate::smime::verify::{self, Detached, SignatureReport};
use crate::smime::{ContentCipher, KeyTransport};

/// More S/MIME layers than this is refused: real mail has at most three.
pub const MAX_LAYERS: usize = 8;

/// One S/MIME layer, outermost first.
#[derive(Debug, serde::Serialize)]
#[serde(tag = "layer", rename_all = "kebab-case")]
pub enum Layer {
    Encrypted {
        envelope: Option<EnvelopeSummary>,
        /// Set when this layer was opened.
        cipher: Option<ContentCipher>,
        key_transport: Option<KeyTransport>,
        /// Index of the key that opened it, into the keys given to [`open_message`].
        #[serde(skip)]
        key_index: Option<usize>,
        /// Every key (same indices) a RecipientInfo of this layer names; empty if not opened.
        #[serde(skip)]
        addressed_keys: Vec<usize>,
    },
    Signed {
        detached: bool,
        report: SignatureReport,
    },
}

/// The result of opening a message.
#[derive(Debug)]
pub struct Opened {
    pub layers: Vec<Layer>,
    /// The innermost entity reached (Content-* fields and body).
    pub content: Vec<u8>,
    /// Why opening stopped before plain content, if it did (e.g. no key for an encrypted layer).
    pub stopped: Option<SmimeError>,
    outer: Vec<u8>,
}

impl Opened {
    pub fn was_encrypted(&self) -> bool {
        self.layers
            .iter()
            .any(|l| matches!(l, Layer::Encrypted { .. }))
    }

    /// Whether every encrypted layer was opened.
    pub fn decrypted(&self) -> bool {
        self.was_encrypted()
            && self
                .layers
                .iter()
                .all(|l| !matches!(l, Layer::Encrypted { cipher: None, .. }))
    }

    /// Whether every encrypted layer that was opened names, in a RecipientInfo, a key for
    /// which `holds` is true (indices into the keys given to [`open_message`]). True when
    /// nothing was decrypted.
    pub fn addressed_to(&self, holds: impl Fn(usize) -> bool) -> bool {
        self.layers.iter().all(|l| match l {
            Layer::Encrypted {
                cipher: Some(_),
                addressed_keys,
                ..
            } => addressed_keys.iter().any(|&k| holds(k)),
            _ => true,
        })
    }

    /// The first signature layer's report (the outermost signature).
    pub fn signature(&self) -> Option<&SignatureReport> {
        self.layers.iter().find_map(|l| match l {
            Layer::Signed { report, .. } => Some(report),
            _ => None,
        })
    }

    /// The delivered message: the original outer header fields, `extra` fields, the content.
    ///
    /// When the protected content is a whole message (`message/rfc822`, RFC 8551 §3.1), its
    /// own header fields are the ones that were signed or encrypted: they replace the outer
    /// fields of the same name, and the outer ones stay only where the inner message has none
    /// (trace fields such as `Received`).
    pub fn to_message(&self, extra: &[String]) -> Vec<u8> {
        let outer = headers::split(&self.outer);
        if !self.layers.is_empty() {
            if let Some(inner) = super::classify::wrapped_message(&self.content) {
                let inner = headers::split(inner);
                let mut fields: Vec<&HeaderField<'_>> = outer
                    .headers
                    .iter()
                    .filter(|o| !inner.headers.iter().any(|i| i.is(o.name)))
                    .collect();
                fields.extend(inner.headers.iter().filter(|h| !h.is("MIME-Version")));
                let mut out = Vec::with_capacity(inner.body.len() + 2048);
                let (content, other): (Vec<_>, Vec<_>) =
                    fields.into_iter().partition(|h| h.is_content());
                headers::write_fields(other, &mut out);
                for line in extra {
                    headers::write_raw_line(line.as_bytes(), &mut out);
                }
                out.extend_from_slice(b"MIME-Version: 1.0\r\n");
                headers::write_fields(content, &mut out);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(inner.body);
                return out;
            }
        }
        let content = headers::split(&self.content);
        // Only the inner entity's Content-* fields travel; the outer header wins for the rest.
        let mut entity = Vec::with_capacity(self.content.len() + 256);
        headers::write_fields(
            content.headers.iter().filter(|h| h.is_content()),
            &mut entity,
        );
        entity.extend_from_slice(b"\r\n");
        entity.extend_from_slice(content.body);
        build::assemble(&outer.headers, extra, &entity)
    }

    /// Whether an unsigned message holds a signed part somewhere inside (a signed message
    /// forwarded as an attachment, a signed part in a `multipart/mixed`).
    pub fn has_signed_part_inside(&self) -> bool {
        super::classify::contains_signed_part(&self.content)
    }
}

/// How far [`open_message_with`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Decrypt and verify every layer down to plain content.
    All,
    /// Decrypt only: signature layers outside the encryption (RFC 2634 triple wrapping) are
    /// verified and removed as the mail flow does; the first signed layer under a decrypted
    /// one is kept whole.
    DecryptOnly,
}

/// Open `message` with the given keys. Never fails: what could not be opened is reported in
/// [`Opened::stopped`], and `content` is then the last entity reached.
pub fn open_message(crypto: &CryptoProvider, message: &[u8], keys: &[DecryptionKey<'_>]) -> Opened {
    open_message_with(crypto, message, keys, OpenMode::All)
}

/// Record a signed layer and continue with the content the engine verified: never with
/// bytes taken from the message on the side.
fn signed_layer(layers: &mut Vec<Layer>, detached: bool, verified: verify::Verified) -> Vec<u8> {
    let (report, content) = verified.into_parts();
    layers.push(Layer::Signed { detached, report });
    content
}

/// [`open_message`], choosing whether signed layers are unwrapped.
pub fn open_message_with(
    crypto: &CryptoProvider,
    message: &[u8],
    keys: &[DecryptionKey<'_>],
    mode: OpenMode,
) -> Opened {
    let split = headers::split(message);
    let mut outer = Vec::new();
    let outer_fields: Vec<&HeaderField<'_>> =
        split.headers.iter().filter(|h| !h.is_content()).collect();
    headers::write_fields(outer_fields, &mut outer);
    outer.extend_from_slice(b"\r\n");

    let mut layers = Vec::new();
    // Borrow the original until a layer produces new bytes: a 50 MB message is not copied.
    let mut current: std::borrow::Cow<'_, [u8]> = std::borrow::Cow::Borrowed(message);
    let mut stopped = None;
    loop {
        if layers.len() >= MAX_LAYERS {
            stopped = Some(SmimeError::NestingTooDeep(MAX_LAYERS));
            break;
        }
        let next = match classify(&current) {
            Err(e) => {
                stopped = Some(e);
                break;
            }
            Ok(Classified::Plain) => break,
            Ok(Classified::SignedOpaque(_) | Classified::SignedDetached { .. })
                if mode == OpenMode::DecryptOnly
                    && layers.iter().any(|l| matches!(l, Layer::Encrypted { .. })) =>
            {
                break
            }
            Ok(Classified::Encrypted(cms)) => {
                match decrypt::decrypt_or_describe(crypto, &cms, keys) {
                    Ok(d) => {
                        layers.push(Layer::Encrypted {
                            envelope: Some(d.envelope),
                            cipher: Some(d.cipher),
                            key_transport: Some(d.key_transport),
                            key_index: Some(d.key_index),
                            addressed_keys: d.addressed_keys,
                        });
                        d.content
                    }
                    Err((e, envelope)) => {
                        layers.push(Layer::Encrypted {
                            envelope,
                            cipher: None,
                            key_transport: None,
                            key_index: None,
                            addressed_keys: Vec::new(),
                        });
                        stopped = Some(e);
                        break;
                    }
                }
            }
            Ok(Classified::SignedOpaque(cms)) => match verify::verify(crypto, &cms, None) {
                Ok(verified) => signed_layer(&mut layers, false, verified),
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            },
            Ok(Classified::SignedDetached { signed, signature }) => {
                match verify::verify(crypto, &signature, Some(Detached::Mime(signed))) {
                    Ok(verified) => signed_layer(&mut layers, true, verified),
                    Err(e) => {
                        stopped = Some(e);
                        break;
                    }
                }
            }
        };
        current = std::borrow::Cow::Owned(next);
    }
    Opened {
        layers,
        content: current.into_owned(),
        stopped,
        outer,
    }
}
