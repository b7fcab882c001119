//! Outbound: check who may sign (the header `From:` must be the submitter, or allowed by
//! `send_as`), decide per recipient what policy allows, then sign once with the sender's proxy
//! key and encrypt to each recipient's newest valid certificate, now or just before relaying.
//! The whole stage is [`Outbound::process`]: it returns the deliveries and the refusals.

use std::sync::Arc;
use std::time::SystemTime;

use certstore::{DomainPolicy, Store};
use x509_cert::Certificate;

use crate::address::{domain_of, normalise, sole_address};
use crate::config::{Config, PolicyWithoutCertificate};
use crate::keys::{self, KeyCache, KeyLoadError, LoadedIdentity};
use crate::mime::{self, SignFormat};
use crate::pipeline::PipelineError;
use crate::receive::Envelope;
use crate::smime::crypto::CryptoProvider;
use crate::smime::encrypt::EncryptOptions;
use crate::smime::ContentCipher;
use crate::telemetry::Outcome;

/// What may be sent to one external recipient.
#[derive(Debug)]
pub enum Decision {
    /// Sign, then encrypt to this certificate with this cipher.
    Encrypt {
        certificate: Arc<Certificate>,
        cipher: ContentCipher,
    },
    /// Domain approved for SMTP over TLS instead of S/MIME: sign, relay only over verified TLS.
    SignOverTls,
    /// The operator allows clear text for this domain.
    Plaintext,
    /// Secure-only policy: refused, with a reason a person understands.
    Refuse { reason: String },
    /// The store or a stored certificate could not be read: a reason that may pass, so the
    /// upstream MTA must keep the message and retry.
    Temporary { reason: String },
}

/// What a delivery sends. Encryption to a recipient is done just before relaying it when
/// there are several, so a large message to many partners holds one encrypted copy at a time,
/// not one per recipient.
#[derive(Clone)]
pub enum Payload {
    Ready(Arc<Vec<u8>>),
    EncryptFor {
        signed: Arc<Vec<u8>>,
        certificate: Arc<Certificate>,
        cipher: ContentCipher,
    },
}

impl Payload {
    pub fn ready(bytes: Vec<u8>) -> Self {
        Self::Ready(Arc::new(bytes))
    }

    /// The bytes to send, encrypted now when that is due: CPU-bound, call it on a crypto
    /// thread.
    pub fn bytes(&self, crypto: &CryptoProvider) -> Result<Arc<Vec<u8>>, PipelineError> {
        match self {
            Payload::Ready(bytes) => Ok(bytes.clone()),
            Payload::EncryptFor {
                signed,
                certificate,
                cipher,
            } => encrypt(crypto, signed, certificate, *cipher).map(Arc::new),
        }
    }
}

/// One message the outbound stage sends.
pub struct OutboundDelivery {
    /// Only over STARTTLS with a verified certificate (domains approved `tls`).
    pub over_tls: bool,
    pub recipients: Vec<String>,
    pub payload: Payload,
    pub outcome: Outcome,
}

/// What the outbound stage made of one message for its outbound recipients.
#[derive(Default)]
pub struct OutboundPlan {
    pub deliveries: Vec<OutboundDelivery>,
    /// Recipients refused for good, each with why.
    pub refused: Vec<(String, PipelineError)>,
    /// Recipients to retry, in groups that failed together, with why.
    pub deferred: Vec<(Vec<String>, PipelineError)>,
}

pub struct Outbound<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    pub keys: &'a KeyCache,
}

impl Outbound<'_> {
    pub fn decide(&self, recipient: &str) -> Decision {
        let recipient = normalise(recipient);
        let Some(domain) = domain_of(&recipient) else {
            return Decision::Refuse {
                reason: format!("{recipient} is not a valid address"),
            };
        };
        // "plaintext" allows clear text only to the listed domains; "refuse" never does
        // (plaintext_domains are ignored under it: secure-only means exactly that).
        let outbound = &self.config.outbound;
        let plaintext_allowed = outbound.policy_without_certificate
            == PolicyWithoutCertificate::Plaintext
            && outbound
                .plaintext_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&domain));
        let approved = match self.store.domain(&domain) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "domain look-up failed");
                return store_unavailable();
            }
        };
        match approved.map(|a| a.policy) {
            Some(DomainPolicy::Tls) => Decision::SignOverTls,
            Some(DomainPolicy::Smime) => match self.store.current_partner_certificate(&recipient) {
                Ok(Some(partner)) => match self
                    .keys
                    .partner_certificate(&partner.fingerprint_sha256, &partner.certificate_der)
                {
                    Ok(c) => Decision::Encrypt {
                        certificate: c,
                        cipher: cipher_for(&partner.capabilities),
                    },
                    // A stored record that does not parse is store damage, not the partner's fault.
                    Err(e) => {
                        tracing::error!(error = %e, %recipient, "stored partner certificate unreadable");
                        store_unavailable()
                    }
                },
                Ok(None) if plaintext_allowed => Decision::Plaintext,
                Ok(None) => Decision::Refuse {
                    reason: format!(
                        "no S/MIME certificate on file for {recipient}; ask them to send a signed message to {}",
                        self.config.cert_query_address
                    ),
                },
                Err(e) => {
                    tracing::error!(error = %e, "partner certificate look-up failed");
                    store_unavailable()
                }
            },
            None if plaintext_allowed => Decision::Plaintext,
            None if outbound.policy_without_certificate == PolicyWithoutCertificate::Plaintext => {
                Decision::Refuse {
                    reason: format!(
                        "{domain} is neither approved for secure mail exchange nor among the domains allowed in clear text; sending to {recipient} is refused (ask the mail administrators to approve the domain)"
                    ),
                }
            }
            None => Decision::Refuse {
                reason: format!(
                    "{domain} is not approved for secure mail exchange; the secure-only policy forbids sending to {recipient} (ask the mail administrators to approve the domain)"
                ),
            },
        }
    }

    /// The address this message may be signed as: its one `From:` address, which must be the
    /// envelope sender (the person who submitted, any case) or one that `send_as` allows the
    /// submitter, and must be allowed a proxy identity. `Err` is the refusal, for a person.
    pub fn signing_address(
        &self,
        mail_from: &str,
        message: &[u8],
    ) -> Result<String, PipelineError> {
        let submitter = normalise(mail_from);
        let from = sole_address(message, "From").map_err(|e| {
            PipelineError::Refused(format!("the message cannot be signed for {submitter}: {e}; it needs exactly one From: address, yours"))
        })?;
        let allowed = from == submitter
            || self
                .config
                .outbound
                .send_as
                .get(&submitter)
                .is_some_and(|list| list.contains(&from));
        if !allowed {
            return Err(PipelineError::Refused(format!(
                "you submitted as {submitter} but the message says From: {from}; the gateway signs only as the person who submits (if {submitter} may send as {from}, the mail administrators can allow it with [outbound] send_as)"
            )));
        }
        self.config
            .proxy_identity_addresses()
            .check(&from)
            .map_err(|e| {
                PipelineError::Refused(format!("{from} cannot sign outgoing mail: {e}"))
            })?;
        Ok(from)
    }

    /// The proxy identity of `address` (see [`Self::signing_address`]), issued on first use.
    pub fn signing_identity(&self, address: &str) -> Result<Arc<LoadedIdentity>, PipelineError> {
        self.keys
            .signing_identity(self.store, &self.config.proxy_identity_addresses(), address)
            .map_err(|e| match e {
                KeyLoadError::NotInternal(e) => PipelineError::Refused(e.to_string()),
                e => PipelineError::SignFailed(format!(
                    "cannot obtain a proxy certificate for {address}: {e}"
                )),
            })
    }

    /// Sign `message` as `identity` (multipart/signed, with the proxy CA in the signature).
    pub fn sign(
        &self,
        identity: &LoadedIdentity,
        message: &[u8],
        now: SystemTime,
    ) -> Result<Vec<u8>, PipelineError> {
        let chain = self
            .keys
            .proxy_ca_chain(self.store)
            .map_err(|e| PipelineError::SignFailed(e.to_string()))?;
        mime::sign_message(
            self.keys.crypto(),
            message,
            &keys::signer(identity, &chain),
            SignFormat::Detached,
            now,
        )
        .map_err(|e| PipelineError::SignFailed(format!("signing failed: {e}")))
    }

    /// The whole outbound stage for `recipients` of one message: who may sign (checked for
    /// clear text too: mail leaves the organisation only under the name of the person who
    /// submitted it), a decision per recipient, one signature for all, and encryption per
    /// recipient: now when there is one partner, just before relaying when there are several.
    pub fn process(
        &self,
        envelope: &Envelope,
        message: &[u8],
        recipients: Vec<String>,
        now: SystemTime,
    ) -> OutboundPlan {
        let mut plan = OutboundPlan::default();
        let submitted = &envelope.forwarded;
        let signing_address = match self.signing_address(&envelope.mail_from, message) {
            Ok(address) => address,
            Err(error) => {
                refuse_identity(envelope, recipients, error, &mut plan);
                return plan;
            }
        };
        let decisions: Vec<(String, Decision)> = recipients
            .into_iter()
            .map(|r| {
                let d = self.decide(&r);
                (r, d)
            })
            .collect();
        let count = |f: fn(&Decision) -> bool| decisions.iter().filter(|(_, d)| f(d)).count();
        tracing::info!(
            submitter = %envelope.mail_from,
            from = %signing_address,
            login = submitted.login.as_deref().unwrap_or("-"),
            orig_client = submitted.addr.as_deref().unwrap_or("-"),
            encrypt = count(|d| matches!(d, Decision::Encrypt { .. })),
            sign_over_tls = count(|d| matches!(d, Decision::SignOverTls)),
            plaintext = count(|d| matches!(d, Decision::Plaintext)),
            refused = count(|d| matches!(d, Decision::Refuse { .. })),
            temporary = count(|d| matches!(d, Decision::Temporary { .. })),
            "outbound decisions"
        );
        let needs_signature = decisions
            .iter()
            .any(|(_, d)| matches!(d, Decision::Encrypt { .. } | Decision::SignOverTls));
        // One signature serves every recipient; encryption is per recipient.
        let signed = if needs_signature {
            let signed = self
                .signing_identity(&signing_address)
                .and_then(|identity| self.sign(&identity, message, now));
            match signed {
                Ok(s) => Some(Arc::new(s)),
                Err(error @ PipelineError::Refused(_)) => {
                    let recipients = decisions.into_iter().map(|(rcpt, _)| rcpt).collect();
                    refuse_identity(envelope, recipients, error, &mut plan);
                    return plan;
                }
                Err(error) => {
                    tracing::error!(reason = %error, "outbound signing failed");
                    let recipients = decisions.into_iter().map(|(rcpt, _)| rcpt).collect();
                    plan.deferred.push((recipients, error));
                    return plan;
                }
            }
        } else {
            None
        };
        let signed_or_original = || signed.clone().unwrap_or_else(|| Arc::new(message.to_vec()));
        let encrypt_count = decisions
            .iter()
            .filter(|(_, d)| matches!(d, Decision::Encrypt { .. }))
            .count();
        let mut over_tls = Vec::new();
        let mut plaintext = Vec::new();
        for (rcpt, decision) in decisions {
            match decision {
                Decision::Refuse { reason } => {
                    plan.refused.push((rcpt, PipelineError::Refused(reason)))
                }
                Decision::Temporary { reason } => plan.deferred.push((
                    vec![rcpt.clone()],
                    PipelineError::Temporary(format!("{rcpt}: {reason}")),
                )),
                Decision::Plaintext => plaintext.push(rcpt),
                Decision::SignOverTls => over_tls.push(rcpt),
                Decision::Encrypt {
                    certificate,
                    cipher,
                } => {
                    let payload = Payload::EncryptFor {
                        signed: signed_or_original(),
                        certificate,
                        cipher,
                    };
                    // One encrypted copy is made now, on this crypto thread; with several
                    // partners, each copy is made just before it is relayed (bounded memory).
                    let payload = if encrypt_count == 1 {
                        match payload.bytes(self.keys.crypto()) {
                            Ok(bytes) => Payload::Ready(bytes),
                            Err(error) => {
                                plan.refused.push((rcpt, error));
                                continue;
                            }
                        }
                    } else {
                        payload
                    };
                    plan.deliveries.push(OutboundDelivery {
                        over_tls: false,
                        recipients: vec![rcpt],
                        payload,
                        outcome: Outcome::Encrypted,
                    });
                }
            }
        }
        if !over_tls.is_empty() {
            plan.deliveries.push(OutboundDelivery {
                over_tls: true,
                recipients: over_tls,
                payload: Payload::Ready(signed_or_original()),
                outcome: Outcome::SignedTls,
            });
        }
        if !plaintext.is_empty() {
            plan.deliveries.push(OutboundDelivery {
                over_tls: false,
                recipients: plaintext,
                payload: Payload::ready(message.to_vec()),
                outcome: Outcome::Plaintext,
            });
        }
        plan
    }
}

/// The message may not be signed as its From: every outbound recipient is refused
/// (550 5.7.1), and the decision is logged with who submitted it.
fn refuse_identity(
    envelope: &Envelope,
    recipients: Vec<String>,
    error: PipelineError,
    plan: &mut OutboundPlan,
) {
    let submitted = &envelope.forwarded;
    tracing::warn!(
        submitter = %envelope.mail_from,
        login = submitted.login.as_deref().unwrap_or("-"),
        orig_client = submitted.addr.as_deref().unwrap_or("-"),
        reason = %error,
        "outbound refused: signing identity"
    );
    plan.refused
        .extend(recipients.into_iter().map(|rcpt| (rcpt, error.clone())));
}

fn store_unavailable() -> Decision {
    Decision::Temporary {
        reason: "the certificate store is unavailable; try again later".into(),
    }
}

/// Encrypt the signed message to one recipient certificate (PKCS#1 v1.5 key transport: what
/// Outlook expects).
pub fn encrypt(
    crypto: &CryptoProvider,
    signed: &[u8],
    certificate: &Certificate,
    cipher: ContentCipher,
) -> Result<Vec<u8>, PipelineError> {
    let options = EncryptOptions {
        cipher,
        ..EncryptOptions::default()
    };
    mime::encrypt_message(crypto, signed, &[certificate], options)
        .map_err(|e| PipelineError::EncryptFailed(format!("encryption failed: {e}")))
}

/// AES-256-GCM only for a partner whose own signed mail advertised it (Apple Mail and some
/// Thunderbird releases cannot read AuthEnvelopedData); AES-256-CBC otherwise.
pub fn cipher_for(capabilities: &[String]) -> ContentCipher {
    let gcm = ContentCipher::Aes256Gcm.oid().to_string();
    if capabilities.contains(&gcm) {
        ContentCipher::Aes256Gcm
    } else {
        ContentCipher::Aes256Cbc
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use certstore::StoreConfig;

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        config: Config,
        keys: KeyCache,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("store"),
            StoreConfig {
                use_system_trust: false,
                ..StoreConfig::default()
            },
        )
        .unwrap();
        for domain in ["listed-approved.example", "approved.example"] {
            store
                .approve_domain(domain, DomainPolicy::Smime, "test", "")
                .unwrap();
        }
        let mut config = Config::default_for_run(dir.path()).unwrap();
        config.internal_domains = vec!["agency.example".into()];
        config.outbound.plaintext_domains =
            vec!["listed.example".into(), "listed-approved.example".into()];
        Fixture {
            _dir: dir,
            store,
            config,
            keys: KeyCache::new(crate::smime::crypto::default_provider()),
        }
    }

    impl Fixture {
        fn outbound(&self) -> Outbound<'_> {
            Outbound {
                config: &self.config,
                store: &self.store,
                keys: &self.keys,
            }
        }
    }

    /// Every combination: policy × domain listed in plaintext_domains or not × approved for
    /// S/MIME without a certificate on file, or not approved.
    #[test]
    fn clear_text_only_under_plaintext_to_listed_domains() {
        let mut f = fixture();
        for policy in [
            PolicyWithoutCertificate::Plaintext,
            PolicyWithoutCertificate::Refuse,
        ] {
            f.config.outbound.policy_without_certificate = policy;
            for (domain, listed) in [
                ("listed.example", true),
                ("listed-approved.example", true),
                ("approved.example", false),
                ("other.example", false),
            ] {
                let decision = f.outbound().decide(&format!("bob@{domain}"));
                let clear = policy == PolicyWithoutCertificate::Plaintext && listed;
                match decision {
                    Decision::Plaintext => assert!(clear, "{policy:?} {domain}"),
                    Decision::Refuse { reason } => {
                        assert!(!clear, "{policy:?} {domain}: {reason}");
                        assert!(reason.contains(&format!("bob@{domain}")), "{reason}");
                    }
                    other => panic!("{policy:?} {domain}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_damaged_store_is_temporary_not_a_refusal() {
        let f = fixture();
        f.store
            .damage_domain_record_for_tests("approved.example")
            .unwrap();
        assert!(matches!(
            f.outbound().decide("bob@approved.example"),
            Decision::Temporary { .. }
        ));
        // The other domains are unaffected.
        assert!(matches!(
            f.outbound().decide("bob@other.example"),
            Decision::Refuse { .. }
        ));
    }

    #[test]
    fn the_signing_address_is_the_submitter_or_allowed_by_send_as() {
        let mut f = fixture();
        f.config.outbound.send_as = BTreeMap::from([(
            "assistant@agency.example".to_string(),
            vec!["boss@agency.example".to_string()],
        )]);
        let sign_as = |f: &Fixture, submitter: &str, from: &str| {
            let msg = format!("{from}Subject: s\r\n\r\nbody\r\n");
            f.outbound()
                .signing_address(submitter, msg.as_bytes())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            sign_as(&f, "<User@Agency.Example>", "From: USER@agency.example\r\n").as_deref(),
            Ok("user@agency.example")
        );
        assert_eq!(
            sign_as(
                &f,
                "assistant@agency.example",
                "From: Boss <boss@agency.example>\r\n"
            )
            .as_deref(),
            Ok("boss@agency.example")
        );
        let refused =
            sign_as(&f, "user@agency.example", "From: boss@agency.example\r\n").unwrap_err();
        assert!(
        refused.starts_with(
            "you submitted as user@agency.example but the message says From: boss@agency.example"
        ),
        "{refused}"
    );
        assert!(refused.contains("send_as"), "{refused}");
        assert!(sign_as(
            &f,
            "boss@agency.example",
            "From: assistant@agency.example\r\n"
        )
        .is_err());
        for ambiguous in [
            "From: user@agency.example\r\nFrom: boss@agency.example\r\n",
            "From: user@agency.example, boss@agency.example\r\n",
            "",
        ] {
            let refused = sign_as(&f, "user@agency.example", ambiguous).unwrap_err();
            assert!(refused.contains("exactly one From: address"), "{refused}");
        }
        // Inside the domain but not a known address.
        f.config.internal_addresses = Some(vec!["boss@agency.example".into()]);
        let refused =
            sign_as(&f, "user@agency.example", "From: user@agency.example\r\n").unwrap_err();
        assert!(refused.contains("internal_addresses"), "{refused}");
    }

    #[test]
    fn no_key_is_made_for_an_address_that_is_not_internal() {
        let f = fixture();
        f.store
            .init_proxy_ca("Test Proxy CA", &["agency.example".to_string()])
            .unwrap();
        assert!(matches!(
            f.outbound().signing_identity("ceo@bigbank.example"),
            Err(PipelineError::Refused(_))
        ));
        assert!(f
            .store
            .proxy_identities("ceo@bigbank.example")
            .unwrap()
            .is_empty());
        let identity = f
            .outbound()
            .signing_identity("user@agency.example")
            .unwrap();
        assert_eq!(identity.address, "user@agency.example");
        // A damaged key record may pass (restore from backup): temporary, not a refusal.
        let other = fixture();
        other
            .store
            .init_proxy_ca("Test Proxy CA", &["agency.example".to_string()])
            .unwrap();
        other
            .store
            .ensure_proxy_identity("user@agency.example")
            .unwrap();
        other
            .store
            .damage_proxy_identities_for_tests("user@agency.example")
            .unwrap();
        assert!(matches!(
            other.outbound().signing_identity("user@agency.example"),
            Err(PipelineError::SignFailed(_))
        ));
    }
}
