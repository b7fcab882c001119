//! Inbound: decrypt with the recipient's proxy keys (current and older), verify, capture the
//! signer's certificate, and say what was checked in `Authentication-Results` (RFC 8601 with
//! the RFC 7281 `smime` method) and `X-SMIME-Gateway`. Mail that cannot be decrypted is
//! delivered unchanged with a header saying why: never dropped.

use std::time::SystemTime;

use certstore::{CaptureOutcome, PartnerCapture, Store, ValidationStatus};

use crate::address;
use crate::keys::{self, KeyCache};
use crate::mime::{self, headers, Layer, Opened};
use crate::smime::verify::SignatureReport;
pub use crate::verdict::SmimeResult;
use crate::verdict::{gateway_header, strip_incoming};

/// What happened to one inbound message, for the delivered headers, logs and metrics.
pub struct InboundResult {
    pub message: Vec<u8>,
    pub smime: SmimeResult,
    /// "decrypted", "undecryptable", "signed", "plain", "malformed".
    pub outcome: &'static str,
}

/// A failure that may pass (the store or a key could not be read): the upstream MTA must
/// keep the message and retry, not receive it undecrypted.
#[derive(Debug)]
pub struct Temporary(pub String);

pub struct Inbound<'a> {
    pub store: &'a Store,
    pub keys: &'a KeyCache,
    pub authserv_id: &'a str,
}

impl Inbound<'_> {
    /// Open, verify and describe one inbound message for `recipient`. `message` must already
    /// be free of forged verdict headers ([`crate::verdict::strip_incoming`], done once per
    /// message by the dispatcher).
    pub fn process(
        &self,
        recipient: &str,
        message: &[u8],
        now: SystemTime,
    ) -> Result<InboundResult, Temporary> {
        let identities = self
            .keys
            .decryption_identities(self.store, &address::normalise(recipient))
            .map_err(|e| {
                tracing::error!(recipient, error = %e, "cannot load proxy keys");
                Temporary(format!("cannot load the proxy keys of {recipient}"))
            })?;
        let decryption_keys = keys::decryption_keys(&identities);
        let opened = mime::open_message(self.keys.crypto(), message, &decryption_keys);

        // Not opened at all: deliver the original, unchanged but for our headers.
        if opened.was_encrypted() && !opened.decrypted() {
            let reason = opened
                .stopped
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "unknown reason".into());
            let smime = SmimeResult::Neutral {
                reason: format!("not decrypted: {reason}"),
            };
            let status = format!("not decrypted: {reason}");
            return Ok(self.deliver(message, smime, &status, "undecryptable"));
        }
        if opened.layers.is_empty() {
            let (smime, outcome, status) = match &opened.stopped {
                Some(e) => (
                    SmimeResult::PermError {
                        reason: e.to_string(),
                    },
                    "malformed",
                    format!("S/MIME structure not processed: {e}"),
                ),
                None if opened.has_signed_part_inside() => (
                    SmimeResult::Neutral {
                        reason: PARTLY_SIGNED.into(),
                    },
                    "plain",
                    format!("not encrypted; {PARTLY_SIGNED}"),
                ),
                None => (
                    SmimeResult::None,
                    "plain",
                    "not encrypted; not signed".to_string(),
                ),
            };
            return Ok(self.deliver(message, smime, &status, outcome));
        }

        let mut status = Vec::new();
        for layer in &opened.layers {
            if let Layer::Encrypted {
                cipher: Some(c),
                key_transport: Some(t),
                ..
            } = layer
            {
                status.push(format!("decrypted ({}, {})", c.name(), t.name()));
            }
        }
        if !opened.was_encrypted() {
            status.push("not encrypted".into());
        }
        // The verdict is about the message as delivered: its From (the inner one when the
        // protected content is a whole message) and the content the engine verified.
        let delivered = opened.to_message(&[]);
        // The original header was cleaned on arrival (dispatch); what unwrapping revealed (the
        // inner header of a message/rfc822) is cleaned here, copying only when it must.
        let delivered = match strip_incoming(&delivered, self.authserv_id) {
            std::borrow::Cow::Borrowed(_) => delivered,
            std::borrow::Cow::Owned(cleaned) => cleaned,
        };
        let smime = self.verdict(&opened, &delivered, now, &mut status)?;
        if let Some(e) = &opened.stopped {
            status.push(format!("stopped: {e}"));
        }
        let outcome = if opened.decrypted() {
            "decrypted"
        } else {
            "signed"
        };
        Ok(self.deliver(&delivered, smime, &status.join("; "), outcome))
    }

    fn deliver(
        &self,
        message: &[u8],
        smime: SmimeResult,
        status: &str,
        outcome: &'static str,
    ) -> InboundResult {
        let extra = [smime.header(self.authserv_id), gateway_header(status)];
        InboundResult {
            message: prepend(&extra, message),
            smime,
            outcome,
        }
    }

    /// The S/MIME result of an opened message with at least one layer.
    ///
    /// `pass` needs every signature layer valid, the author's (innermost) signature made with
    /// an accepted digest, exactly one `From:` address carried by the signer's certificate,
    /// and that certificate validated by the certstore.
    fn verdict(
        &self,
        opened: &Opened,
        delivered: &[u8],
        now: SystemTime,
        status: &mut Vec<String>,
    ) -> Result<SmimeResult, Temporary> {
        let signatures: Vec<&SignatureReport> = opened
            .layers
            .iter()
            .filter_map(|l| match l {
                Layer::Signed { report, .. } => Some(report),
                Layer::Encrypted { .. } => None,
            })
            .collect();
        let Some(author) = signatures.last() else {
            status.push("not signed".into());
            if opened.has_signed_part_inside() {
                status.push(PARTLY_SIGNED.into());
                return Ok(SmimeResult::Neutral {
                    reason: PARTLY_SIGNED.into(),
                });
            }
            return Ok(SmimeResult::None);
        };
        for sig in &signatures {
            if sig.signers.len() > 1 {
                status.push(describe_signers(sig));
            }
        }
        if let Some(bad) = signatures.iter().find(|s| !s.outcome.is_valid()) {
            status.push(format!("signature invalid: {}", bad.outcome.describe()));
            return Ok(SmimeResult::Fail {
                reason: bad.outcome.describe(),
            });
        }
        let signer = author
            .signer_emails
            .first()
            .cloned()
            .unwrap_or_else(|| "a certificate without an e-mail address".into());
        let from = match address::sole_address(delivered, "From") {
            Ok(from) => from,
            Err(problem) => {
                status.push(format!("signature valid, signer {signer}, but {problem}"));
                return Ok(SmimeResult::Fail {
                    reason: format!("signed by {signer}, but {problem}"),
                });
            }
        };
        // With several signers (all valid by now), the one that vouches for the sender is the
        // one whose certificate carries the From address.
        let vouching = author
            .signers
            .iter()
            .find(|s| s.emails.iter().any(|e| address::normalise(e) == from));
        let certificate = match vouching {
            Some(s) => s.certificate.clone(),
            None if author
                .signer_emails
                .iter()
                .any(|e| address::normalise(e) == from) =>
            {
                author.signer_certificate.clone()
            }
            None => {
                let reason = format!("signed by {signer}, but From says {from}");
                status.push(format!("signature valid, but {reason}"));
                return Ok(SmimeResult::Fail { reason });
            }
        };
        let message_id = address::message_id(delivered);
        let result = self.capture(&from, certificate, author, message_id, now)?;
        let result = match result {
            SmimeResult::Pass { identifier } if author.weak_digest => SmimeResult::Neutral {
                reason: format!(
                    "signature by {identifier} valid but made with {}, a weak digest",
                    author.digest.map(|d| d.name()).unwrap_or("SHA-1")
                ),
            },
            other => other,
        };
        status.push(match &result {
            SmimeResult::Pass { identifier } => format!("signature valid, signer {identifier}"),
            SmimeResult::Fail { reason } => {
                format!("signature valid but certificate refused: {reason}")
            }
            SmimeResult::Neutral { reason } => reason.clone(),
            other => format!(
                "signature valid, certificate not evaluated: {}",
                other.keyword()
            ),
        });
        Ok(result)
    }

    /// Record the signer's certificate (validated by the certstore) and turn the validation
    /// into the S/MIME result.
    fn capture(
        &self,
        identifier: &str,
        certificate: Option<Vec<u8>>,
        sig: &SignatureReport,
        message_id: Option<String>,
        now: SystemTime,
    ) -> Result<SmimeResult, Temporary> {
        let Some(cert) = certificate else {
            return Ok(SmimeResult::Fail {
                reason: "no signer certificate".into(),
            });
        };
        let capture = PartnerCapture {
            address: identifier.to_string(),
            certificate_der: cert,
            chain_der: sig.certificates.clone(),
            message_id,
            seen_at: now,
        };
        Ok(match self.store.capture_partner_certificate(&capture) {
            Ok(CaptureOutcome::Stored {
                status: ValidationStatus::Valid,
                ..
            }) => SmimeResult::Pass {
                identifier: identifier.to_string(),
            },
            Ok(CaptureOutcome::Stored {
                status: ValidationStatus::Refused(reason),
                ..
            }) => SmimeResult::Fail {
                reason: reason.to_string(),
            },
            Ok(CaptureOutcome::Blocked { .. }) => SmimeResult::Fail {
                reason: "the signer's certificate is blocked by the operator".into(),
            },
            Err(certstore::StoreError::Domain(e)) => SmimeResult::Fail {
                reason: format!("signer address: {e}"),
            },
            Err(e) => {
                tracing::error!(error = %e, "certificate capture failed");
                return Err(Temporary("the certificate store is unavailable".into()));
            }
        })
    }
}

/// Every signer of a multi-signer layer with its own result, for `X-SMIME-Gateway`.
fn describe_signers(sig: &SignatureReport) -> String {
    let each: Vec<String> = sig
        .signers
        .iter()
        .map(|s| {
            let who = s
                .emails
                .first()
                .cloned()
                .or_else(|| s.subject.clone())
                .unwrap_or_else(|| "unknown signer".into());
            format!("{who}: {}", s.outcome.describe())
        })
        .collect();
    format!("{} signers ({})", sig.signers.len(), each.join(", "))
}

/// The verdict for a message that is not signed as a whole but carries a signed part.
const PARTLY_SIGNED: &str = "only part of the message is signed; the signature was not checked";

/// Keep what the partner's client said it can read, so outbound mail picks AES-GCM only for
/// clients that advertised it. Best effort: a failure here must not fail the message.
pub fn remember_capabilities(
    store: &Store,
    address: &str,
    fingerprint: &str,
    sig: &crate::smime::verify::SignatureReport,
) {
    let oids: Vec<String> = sig.capabilities.iter().map(|c| c.oid.clone()).collect();
    if let Err(e) = store.set_partner_capabilities(address, fingerprint, &oids) {
        tracing::warn!(address, error = %e, "cannot record the partner's S/MIME capabilities");
    }
}

fn prepend(fields: &[String], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 512);
    for f in fields {
        headers::write_raw_line(f.as_bytes(), &mut out);
    }
    out.extend_from_slice(message);
    out
}
