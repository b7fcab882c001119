//! Inbound: decrypt with the recipient's proxy keys (current and older), verify, capture the
//! signer's certificate, and say what was checked in `Authentication-Results` (RFC 8601 with
//! the RFC 7281 `smime` method) and `X-SMIME-Gateway`. Mail that cannot be decrypted is
//! delivered unchanged with a header saying why: never dropped.

use std::borrow::Cow;
use std::time::SystemTime;

use certstore::{CaptureOutcome, PartnerCapture, Store, ValidationStatus};

use crate::address;
use crate::keys::{self, KeyCache};
use crate::mime::{self, headers, Layer};

/// The RFC 7281 result for the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmimeResult {
    Pass {
        identifier: String,
    },
    Fail {
        reason: String,
        identifier: Option<String>,
    },
    /// Could not be evaluated (not decrypted, temporary store failure).
    Neutral {
        reason: String,
    },
    /// Malformed S/MIME structure.
    PermError {
        reason: String,
    },
    TempError {
        reason: String,
    },
    None,
}

impl SmimeResult {
    pub fn keyword(&self) -> &'static str {
        match self {
            Self::Pass { .. } => "pass",
            Self::Fail { .. } => "fail",
            Self::Neutral { .. } => "neutral",
            Self::PermError { .. } => "permerror",
            Self::TempError { .. } => "temperror",
            Self::None => "none",
        }
    }

    /// The `Authentication-Results` field for `authserv_id`.
    pub fn header(&self, authserv_id: &str) -> String {
        let comment = |r: &str| format!(" ({})", sanitise(r));
        let body = match self {
            Self::Pass { identifier } => format!("smime=pass smime.smime-identifier={identifier}"),
            Self::Fail { reason, identifier } => format!(
                "smime=fail{}{}",
                comment(reason),
                identifier
                    .as_ref()
                    .map(|i| format!(" smime.smime-identifier={i}"))
                    .unwrap_or_default()
            ),
            Self::Neutral { reason } => format!("smime=neutral{}", comment(reason)),
            Self::PermError { reason } => format!("smime=permerror{}", comment(reason)),
            Self::TempError { reason } => format!("smime=temperror{}", comment(reason)),
            Self::None => "smime=none".to_string(),
        };
        format!("Authentication-Results: {authserv_id};\r\n\t{body}")
    }
}

/// Comments must not break the header: no parentheses, no line breaks, bounded length.
fn sanitise(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '(' | ')' | '\\' => ' ',
            c if c.is_control() => ' ',
            c => c,
        })
        .take(200)
        .collect()
}

/// What happened to one inbound message, for the delivered headers, logs and metrics.
pub struct InboundResult {
    pub message: Vec<u8>,
    pub smime: SmimeResult,
    /// "decrypted", "undecryptable", "signed", "plain", "malformed".
    pub outcome: &'static str,
}

pub struct Inbound<'a> {
    pub store: &'a Store,
    pub keys: &'a KeyCache,
    pub authserv_id: &'a str,
}

impl Inbound<'_> {
    pub fn process(&self, recipient: &str, message: &[u8], now: SystemTime) -> InboundResult {
        let message = strip_forged_results(message, self.authserv_id);
        let identities = match self
            .keys
            .decryption_identities(self.store, &address::normalise(recipient))
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(recipient, error = %e, "cannot load proxy keys");
                Vec::new()
            }
        };
        let decryption_keys = keys::decryption_keys(&identities);
        let opened = mime::open_message(&message, &decryption_keys);
        let from = address::header_address(&message, "From");

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
            return InboundResult {
                message: prepend(
                    &[smime.header(self.authserv_id), gateway_header(&status)],
                    &message,
                ),
                smime,
                outcome: "undecryptable",
            };
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
                None => (
                    SmimeResult::None,
                    "plain",
                    "not encrypted; not signed".to_string(),
                ),
            };
            return InboundResult {
                message: prepend(
                    &[smime.header(self.authserv_id), gateway_header(&status)],
                    &message,
                ),
                smime,
                outcome,
            };
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
        let message_id = address::message_id(&message);
        let smime = match opened.signature() {
            None => {
                status.push("not signed".into());
                SmimeResult::None
            }
            Some(sig) if !sig.outcome.is_valid() => {
                status.push(format!("signature invalid: {}", sig.outcome.describe()));
                SmimeResult::Fail {
                    reason: sig.outcome.describe(),
                    identifier: sig.signer_emails.first().cloned(),
                }
            }
            Some(sig) => {
                let identifier = from
                    .clone()
                    .or_else(|| sig.signer_emails.first().cloned())
                    .unwrap_or_default();
                let result = self.capture(&identifier, sig, message_id, now);
                status.push(match &result {
                    SmimeResult::Pass { identifier } => {
                        format!("signature valid, signer {identifier}")
                    }
                    SmimeResult::Fail { reason, .. } => {
                        format!("signature valid but certificate refused: {reason}")
                    }
                    other => format!(
                        "signature valid, certificate not evaluated: {}",
                        other.keyword()
                    ),
                });
                result
            }
        };
        if let Some(e) = &opened.stopped {
            status.push(format!("stopped: {e}"));
        }
        let outcome = if opened.decrypted() {
            "decrypted"
        } else {
            "signed"
        };
        let extra = [
            smime.header(self.authserv_id),
            gateway_header(&status.join("; ")),
        ];
        InboundResult {
            message: prepend(&extra, &opened.to_message(&[])),
            smime,
            outcome,
        }
    }

    /// Record the signer's certificate (validated by the certstore) and turn the validation
    /// into the S/MIME result.
    fn capture(
        &self,
        identifier: &str,
        sig: &crate::smime::verify::SignatureReport,
        message_id: Option<String>,
        now: SystemTime,
    ) -> SmimeResult {
        let Some(cert) = &sig.signer_certificate else {
            return SmimeResult::Fail {
                reason: "no signer certificate".into(),
                identifier: None,
            };
        };
        let capture = PartnerCapture {
            address: identifier.to_string(),
            certificate_der: cert.clone(),
            chain_der: sig.certificates.clone(),
            message_id,
            seen_at: now,
        };
        match self.store.capture_partner_certificate(&capture) {
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
                identifier: Some(identifier.to_string()),
            },
            Ok(CaptureOutcome::Blocked { .. }) => SmimeResult::Fail {
                reason: "the signer's certificate is blocked by the operator".into(),
                identifier: Some(identifier.to_string()),
            },
            Err(certstore::StoreError::Domain(e)) => SmimeResult::Fail {
                reason: format!("signer address: {e}"),
                identifier: Some(identifier.to_string()),
            },
            Err(e) => {
                tracing::error!(error = %e, "certificate capture failed");
                SmimeResult::TempError {
                    reason: "certificate store unavailable".into(),
                }
            }
        }
    }
}

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

fn gateway_header(status: &str) -> String {
    let safe: String = status
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(400)
        .collect();
    format!("X-SMIME-Gateway: {safe}")
}

fn prepend(fields: &[String], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 512);
    for f in fields {
        headers::write_raw_line(f.as_bytes(), &mut out);
    }
    out.extend_from_slice(message);
    out
}

/// Remove `Authentication-Results` fields that claim to come from us: only we may add them.
pub fn strip_forged_results<'m>(message: &'m [u8], authserv_id: &str) -> Cow<'m, [u8]> {
    let split = headers::split(message);
    let forged = |h: &headers::HeaderField<'_>| {
        h.is("Authentication-Results")
            && h.value()
                .split(';')
                .next()
                .and_then(|id| id.split_whitespace().next())
                .is_some_and(|id| id.eq_ignore_ascii_case(authserv_id))
    };
    if !split.headers.iter().any(forged) {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    headers::write_fields(split.headers.iter().filter(|h| !forged(h)), &mut out);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(split.body);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
