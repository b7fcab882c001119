//! Inbound: decrypt with the recipient's proxy keys (current and older), verify, capture the
//! signer's certificate, and say what was checked in `Authentication-Results` (RFC 8601 with
//! the RFC 7281 `smime` method) and `X-SMIME-Gateway`. Mail that cannot be decrypted is
//! delivered unchanged with a header saying why: never dropped.

use std::sync::Arc;
use std::time::SystemTime;

use certstore::{CaptureOutcome, PartnerCapture, Store, ValidationStatus};

use crate::address;
use crate::keys::{self, KeyCache, LoadedIdentity};
use crate::mime::{self, headers, Layer, Opened};
use crate::pipeline::PipelineError;
use crate::smime::key_preference::KeyPreference;
use crate::smime::verify::SignatureReport;
use crate::smime::SmimeError;
use crate::telemetry::Outcome;
pub use crate::verdict::SmimeResult;
use crate::verdict::{gateway_header, strip_incoming};

/// What happened to one inbound message, for the delivered headers, logs and metrics.
pub struct InboundResult {
    pub message: Vec<u8>,
    pub smime: SmimeResult,
    pub outcome: Outcome,
}

pub struct Inbound<'a> {
    pub store: &'a Store,
    pub keys: &'a KeyCache,
    pub authserv_id: &'a str,
}

/// Recipients that share one result (and so one delivery).
pub struct InboundGroup {
    pub recipients: Vec<String>,
    pub result: InboundResult,
}

impl Inbound<'_> {
    /// Open, verify and describe one inbound message for all its inbound recipients: it is
    /// decrypted and verified once, with the keys of all of them, and the signer's certificate
    /// captured once, however many recipients it has. `message` must already be free of forged
    /// verdict headers ([`crate::verdict::strip_incoming`], done once by the dispatcher). A recipient whose keys no opened
    /// envelope names gets the message undecrypted, as if opened with their keys alone.
    /// Recipients whose keys could not be loaded are left out, each with a
    /// [`PipelineError::Temporary`]: the upstream MTA must keep the message and retry, not
    /// receive it undecrypted.
    pub fn process_all(
        &self,
        recipients: &[String],
        message: &[u8],
        now: SystemTime,
    ) -> (Vec<InboundGroup>, Vec<PipelineError>) {
        let mut temporary = Vec::new();
        let mut identities: Vec<Arc<LoadedIdentity>> = Vec::new();
        // For each identity, the recipients (indices) holding it.
        let mut holders: Vec<Vec<usize>> = Vec::new();
        let mut loaded = Vec::new();
        for (index, recipient) in recipients.iter().enumerate() {
            let found = self
                .keys
                .decryption_identities(self.store, &address::normalise(recipient));
            let found = match found {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(recipient, error = %e, "cannot load proxy keys");
                    temporary.push(PipelineError::Temporary(format!(
                        "cannot load the proxy keys of {recipient}"
                    )));
                    continue;
                }
            };
            loaded.push((index, recipient));
            for identity in found {
                // The same address twice (other case): its keys are tried once.
                let mut known = identities.iter().zip(holders.iter_mut());
                match known.find(|(i, _)| Arc::ptr_eq(i, &identity)) {
                    Some((_, holding)) => holding.push(index),
                    None => {
                        identities.push(identity);
                        holders.push(vec![index]);
                    }
                }
            }
        }
        let decryption_keys = keys::decryption_keys(&identities);
        let opened = mime::open_message(self.keys.crypto(), message, &decryption_keys);

        let (addressed, not_addressed): (Vec<_>, Vec<_>) =
            loaded.into_iter().partition(|&(r, _)| {
                opened.addressed_to(|k| holders.get(k).is_some_and(|h| h.contains(&r)))
            });
        let mut groups = Vec::new();
        if !addressed.is_empty() {
            match self.result_of(&opened, message, now) {
                Ok(result) => groups.push(InboundGroup {
                    recipients: addressed.iter().map(|&(_, r)| r.clone()).collect(),
                    result,
                }),
                Err(t) => temporary.push(t),
            }
        }
        if !not_addressed.is_empty() {
            let reason = SmimeError::NoMatchingRecipient;
            groups.push(InboundGroup {
                recipients: not_addressed.iter().map(|&(_, r)| r.clone()).collect(),
                result: self.undecryptable(message, &reason),
            });
        }
        (groups, temporary)
    }

    fn undecryptable(&self, message: &[u8], reason: &dyn std::fmt::Display) -> InboundResult {
        let smime = SmimeResult::Neutral {
            reason: format!("not decrypted: {reason}"),
        };
        let status = format!("not decrypted: {reason}");
        self.deliver(message, smime, &status, Outcome::Undecryptable)
    }

    /// The delivered message and verdict for `opened` (opened from `message`).
    fn result_of(
        &self,
        opened: &Opened,
        message: &[u8],
        now: SystemTime,
    ) -> Result<InboundResult, PipelineError> {
        // Not opened at all: deliver the original, unchanged but for our headers.
        if opened.was_encrypted() && !opened.decrypted() {
            let reason = opened
                .stopped
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "unknown reason".into());
            return Ok(self.undecryptable(message, &reason));
        }
        if opened.layers.is_empty() {
            let (smime, outcome, status) = match &opened.stopped {
                Some(e) => (
                    SmimeResult::PermError {
                        reason: e.to_string(),
                    },
                    Outcome::Malformed,
                    format!("S/MIME structure not processed: {e}"),
                ),
                None if opened.has_signed_part_inside() => (
                    SmimeResult::Neutral {
                        reason: PARTLY_SIGNED.into(),
                    },
                    Outcome::Plain,
                    format!("not encrypted; {PARTLY_SIGNED}"),
                ),
                None => (
                    SmimeResult::None,
                    Outcome::Plain,
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
        let smime = self.verdict(opened, &delivered, now, &mut status)?;
        if let Some(e) = &opened.stopped {
            status.push(format!("stopped: {e}"));
        }
        let outcome = if opened.decrypted() {
            Outcome::Decrypted
        } else {
            Outcome::Signed
        };
        Ok(self.deliver(&delivered, smime, &status.join("; "), outcome))
    }

    fn deliver(
        &self,
        message: &[u8],
        smime: SmimeResult,
        status: &str,
        outcome: Outcome,
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
    ) -> Result<SmimeResult, PipelineError> {
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
        let (certificate, preference) = match vouching {
            Some(s) => (
                s.certificate.as_deref(),
                s.encryption_key_preference.as_ref(),
            ),
            None if author
                .signer_emails
                .iter()
                .any(|e| address::normalise(e) == from) =>
            {
                (
                    author.signer_certificate.as_deref(),
                    author.encryption_key_preference.as_ref(),
                )
            }
            None => {
                let reason = format!("signed by {signer}, but From says {from}");
                status.push(format!("signature valid, but {reason}"));
                return Ok(SmimeResult::Fail { reason });
            }
        };
        let message_id = address::message_id(delivered);
        let result = self.capture(&from, certificate, author, message_id.clone(), now)?;
        let result = match result {
            SmimeResult::Pass { identifier } if author.weak_digest => SmimeResult::Neutral {
                reason: format!(
                    "signature by {identifier} valid but made with {}, a weak digest",
                    author.digest.map(|d| d.name()).unwrap_or("SHA-1")
                ),
            },
            other => other,
        };
        // The signer's word on its encryption certificate counts only once the signature
        // passed on every count, with the signing certificate accepted.
        if let (SmimeResult::Pass { .. }, Some(signer)) = (&result, certificate) {
            capture_encryption_preference(
                self.store, &from, preference, signer, author, message_id, now,
            );
        }
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
        certificate: Option<&[u8]>,
        sig: &SignatureReport,
        message_id: Option<String>,
        now: SystemTime,
    ) -> Result<SmimeResult, PipelineError> {
        let Some(cert) = certificate else {
            return Ok(SmimeResult::Fail {
                reason: "no signer certificate".into(),
            });
        };
        let capture = PartnerCapture {
            address: identifier.to_string(),
            certificate_der: cert.to_vec(),
            chain_der: sig.certificates.clone(),
            message_id,
            seen_at: now,
            capabilities: capability_oids(sig),
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
                return Err(PipelineError::Temporary(
                    "the certificate store is unavailable".into(),
                ));
            }
        })
    }
}

/// Record the encryption certificate a signer named (SMIMEEncryptionKeyPreference, RFC 8551
/// §2.5.3) for `address`, with the signature's capabilities. Call only when the signing
/// certificate `signer` was accepted. The certificate is one the message carries, validated by
/// the store as the signer's is, for encryption, and recorded only when valid; what cannot be
/// used is logged and changes nothing else, the verdict included.
pub fn capture_encryption_preference(
    store: &Store,
    address: &str,
    preference: Option<&KeyPreference>,
    signer: &[u8],
    sig: &SignatureReport,
    message_id: Option<String>,
    now: SystemTime,
) {
    let (certificate, identifier) = match preference {
        None => return,
        Some(KeyPreference::Named {
            certificate,
            identifier,
        }) => (certificate, identifier),
        Some(KeyPreference::NotInMessage { identifier }) => {
            tracing::info!(
                address,
                named = %identifier,
                "encryption key preference not captured: the message does not carry the named certificate"
            );
            return;
        }
        Some(KeyPreference::Unreadable(reason)) => {
            tracing::info!(
                address,
                %reason,
                "encryption key preference not captured: the attribute could not be read"
            );
            return;
        }
    };
    // The signing certificate itself: captured already.
    if certificate.as_slice() == signer {
        return;
    }
    let capture = PartnerCapture {
        address: address.to_string(),
        certificate_der: certificate.clone(),
        chain_der: sig
            .certificates
            .iter()
            .filter(|c| *c != certificate)
            .cloned()
            .collect(),
        message_id,
        seen_at: now,
        capabilities: capability_oids(sig),
    };
    match store.capture_partner_encryption_certificate(&capture) {
        Ok(CaptureOutcome::Stored {
            status: ValidationStatus::Valid,
            recorded: true,
            fingerprint,
            new,
        }) => tracing::info!(
            address,
            %fingerprint,
            new,
            "encryption certificate named by the signer captured"
        ),
        Ok(CaptureOutcome::Stored {
            status: ValidationStatus::Valid,
            ..
        }) => tracing::debug!(address, "encryption certificate valid, domain not approved"),
        Ok(CaptureOutcome::Stored {
            status: ValidationStatus::Refused(reason),
            ..
        }) => tracing::info!(
            address,
            named = %identifier,
            %reason,
            "encryption key preference not captured: the named certificate was refused"
        ),
        Ok(CaptureOutcome::Blocked { fingerprint }) => tracing::info!(
            address,
            %fingerprint,
            "encryption certificate named by the signer is blocked by the operator"
        ),
        Err(e) => tracing::warn!(
            address,
            error = %e,
            "encryption key preference not captured"
        ),
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

/// What the partner's client said it can read, kept with its certificate so outbound mail picks
/// AES-GCM only for clients that advertised it.
pub fn capability_oids(sig: &SignatureReport) -> Vec<String> {
    sig.capabilities.iter().map(|c| c.oid.clone()).collect()
}

fn prepend(fields: &[String], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 512);
    for f in fields {
        headers::write_raw_line(f.as_bytes(), &mut out);
    }
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use certstore::StoreConfig;

    use super::*;
    use crate::mime::encrypt_message;
    use crate::smime::decrypt::key_transport_operations;
    use crate::smime::encrypt::EncryptOptions;
    use crypto_provider::{CipherError, CipherProvider, CryptoProvider};
    use std::sync::atomic::{AtomicU64, Ordering};

    static DECRYPTED_BYTES: AtomicU64 = AtomicU64::new(0);

    /// The given provider with its ciphers wrapped to count the bytes they decrypt: the provider
    /// is a value, so a test can observe exactly the work the engine asks of it.
    fn counting_provider(inner: &'static CryptoProvider) -> &'static CryptoProvider {
        struct Counting(&'static dyn CipherProvider);
        impl CipherProvider for Counting {
            fn cbc_encrypt(&self, k: &[u8], iv: &[u8], p: &[u8]) -> Result<Vec<u8>, CipherError> {
                self.0.cbc_encrypt(k, iv, p)
            }
            fn cbc_decrypt(&self, k: &[u8], iv: &[u8], b: &mut [u8]) -> Result<usize, CipherError> {
                DECRYPTED_BYTES.fetch_add(b.len() as u64, Ordering::SeqCst);
                self.0.cbc_decrypt(k, iv, b)
            }
            fn gcm_seal(
                &self,
                k: &[u8],
                n: &[u8],
                a: &[u8],
                b: &mut [u8],
            ) -> Result<[u8; 16], CipherError> {
                self.0.gcm_seal(k, n, a, b)
            }
            fn gcm_open(
                &self,
                k: &[u8],
                n: &[u8],
                a: &[u8],
                b: &mut [u8],
                t: &[u8],
            ) -> Result<(), CipherError> {
                DECRYPTED_BYTES.fetch_add(b.len() as u64, Ordering::SeqCst);
                self.0.gcm_open(k, n, a, b, t)
            }
            fn aes_key_wrap(&self, kek: &[u8], key: &[u8]) -> Result<Vec<u8>, CipherError> {
                self.0.aes_key_wrap(kek, key)
            }
            fn aes_key_unwrap(
                &self,
                kek: &[u8],
                wrapped: &[u8],
            ) -> Result<zeroize::Zeroizing<Vec<u8>>, CipherError> {
                self.0.aes_key_unwrap(kek, wrapped)
            }
        }
        let ciphers: &'static Counting = Box::leak(Box::new(Counting(inner.ciphers)));
        Box::leak(Box::new(CryptoProvider { ciphers, ..*inner }))
    }

    /// A message encrypted to several internal recipients costs one private-key operation and
    /// yields one delivery for all of them; a recipient it is not encrypted to gets it
    /// undecrypted, at no private-key cost.
    #[test]
    fn one_decryption_for_every_recipient() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            StoreConfig {
                use_system_trust: false,
                ..StoreConfig::default()
            },
        )
        .unwrap();
        let domains = ["agency.example".to_string()];
        store.init_proxy_ca("Test Proxy CA", &domains).unwrap();
        let allowed = certstore::InternalAddresses::new(&domains, None);
        let crypto = counting_provider(store.crypto());
        let keys = KeyCache::new(crypto);
        let recipients: Vec<String> = (0..5).map(|i| format!("u{i}@agency.example")).collect();
        let identities: Vec<_> = recipients
            .iter()
            .map(|r| keys.signing_identity(&store, &allowed, r).unwrap())
            .collect();
        // Encrypted to the first four only.
        let certs: Vec<&x509_cert::Certificate> =
            identities[..4].iter().map(|i| &i.certificate).collect();
        let plain = [
            &b"From: alice@partner.example\r\nTo: u0@agency.example\r\nSubject: s\r\n\r\nhello\r\n"
                [..],
            &b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n".repeat(64),
        ]
        .concat();
        let message =
            encrypt_message(store.crypto(), &plain, &certs, EncryptOptions::default()).unwrap();
        let inbound = Inbound {
            store: &store,
            keys: &keys,
            authserv_id: "gw.agency.example",
        };

        let before = key_transport_operations();
        let decrypted_before = DECRYPTED_BYTES.load(Ordering::SeqCst);
        let (groups, temporary) = inbound.process_all(&recipients, &message, SystemTime::now());
        // The content is decrypted once for the whole message, not once per recipient (CBC
        // also decrypts one block first to check the padding).
        let decrypted = DECRYPTED_BYTES.load(Ordering::SeqCst) - decrypted_before;
        assert!(
            (plain.len() as u64..2 * plain.len() as u64).contains(&decrypted),
            "{decrypted} bytes decrypted for a {}-byte message",
            plain.len()
        );
        // One private-key operation per RecipientInfo that names one of our keys (all are
        // unwrapped before any is tried, so timing does not tell which was genuine), once per
        // message: not once per envelope recipient.
        assert_eq!(
            key_transport_operations() - before,
            4,
            "private-key operations"
        );
        assert!(temporary.is_empty());
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].recipients, recipients[..4]);
        assert_eq!(groups[0].result.outcome, Outcome::Decrypted);
        assert!(groups[0].result.message.windows(5).any(|w| w == b"hello"));
        assert_eq!(groups[1].recipients, recipients[4..]);
        assert_eq!(groups[1].result.outcome, Outcome::Undecryptable);
        assert!(String::from_utf8_lossy(&groups[1].result.message).contains("not decrypted"));
    }
}
