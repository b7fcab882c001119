//! Open every S/MIME layer of an inbound message: decrypt, verify, repeat (signed-then-encrypted
//! and encrypted-then-signed alike), up to a fixed depth.

use super::build;
use super::classify::{classify, Classified};
use super::headers::{self, HeaderField};
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

    /// The first signature layer's report (the outermost signature).
    pub fn signature(&self) -> Option<&SignatureReport> {
        self.layers.iter().find_map(|l| match l {
            Layer::Signed { report, .. } => Some(report),
            _ => None,
        })
    }

    /// The delivered message: the original outer header fields, `extra` fields, the content.
    pub fn to_message(&self, extra: &[String]) -> Vec<u8> {
        let outer = headers::split(&self.outer);
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
}

/// How far [`open_message_with`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Decrypt and verify every layer down to plain content.
    All,
    /// Decrypt only: stop at the first signed layer and keep it whole.
    DecryptOnly,
}

/// Open `message` with the given keys. Never fails: what could not be opened is reported in
/// [`Opened::stopped`], and `content` is then the last entity reached.
pub fn open_message(message: &[u8], keys: &[DecryptionKey<'_>]) -> Opened {
    open_message_with(message, keys, OpenMode::All)
}

/// [`open_message`], choosing whether signed layers are unwrapped.
pub fn open_message_with(message: &[u8], keys: &[DecryptionKey<'_>], mode: OpenMode) -> Opened {
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
                if mode == OpenMode::DecryptOnly =>
            {
                break
            }
            Ok(Classified::Encrypted(cms)) => {
                match decrypt::decrypt(&cms, keys) {
                    Ok(d) => {
                        layers.push(Layer::Encrypted {
                            envelope: Some(d.envelope),
                            cipher: Some(d.cipher),
                            key_transport: Some(d.key_transport),
                            key_index: Some(d.key_index),
                        });
                        d.content
                    }
                    Err(e) => {
                        // Parsed again only on failure, to report what the message says.
                        layers.push(Layer::Encrypted {
                            envelope: decrypt::describe(&cms).ok(),
                            cipher: None,
                            key_transport: None,
                            key_index: None,
                        });
                        stopped = Some(e);
                        break;
                    }
                }
            }
            Ok(Classified::SignedOpaque(cms)) => match verify::verify(&cms, None) {
                Ok(mut report) => {
                    let content = report.content.take().unwrap_or_default();
                    layers.push(Layer::Signed {
                        detached: false,
                        report,
                    });
                    content
                }
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            },
            Ok(Classified::SignedDetached { signed, signature }) => {
                match verify::verify(&signature, Some(Detached::Mime(signed))) {
                    Ok(report) => {
                        let content = signed.to_vec();
                        layers.push(Layer::Signed {
                            detached: true,
                            report,
                        });
                        content
                    }
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
