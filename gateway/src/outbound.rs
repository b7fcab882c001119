//! Outbound: check who may sign (the header `From:` must be the submitter, or allowed by
//! `send_as`), decide per recipient what policy allows, then sign with the sender's proxy key
//! and encrypt to the recipient's newest valid certificate.

use std::time::SystemTime;

use certstore::{DomainPolicy, Store};
use x509_cert::Certificate;

use crate::address::{domain_of, normalise, sole_address};
use crate::config::{Config, PolicyWithoutCertificate};
use crate::keys::{self, KeyCache, KeyLoadError, LoadedIdentity};
use crate::mime::{self, SignFormat};
use crate::smime::certs;
use crate::smime::crypto::CryptoProvider;
use crate::smime::encrypt::EncryptOptions;
use crate::smime::ContentCipher;

/// What may be sent to one external recipient.
#[derive(Debug)]
pub enum Decision {
    /// Sign, then encrypt to this certificate with this cipher.
    Encrypt {
        certificate: Box<Certificate>,
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

/// Why a message cannot be signed.
#[derive(Debug)]
pub enum SignError {
    /// Permanent: the submitter may not sign as the message's `From:` (550 5.7.1).
    Refused(String),
    /// May pass (store or key unreadable): 451 4.3.0.
    Temporary(String),
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
                Ok(Some(partner)) => match certs::parse_certificate(&partner.certificate_der) {
                    Ok(c) => Decision::Encrypt {
                        certificate: Box::new(c),
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
    pub fn signing_address(&self, mail_from: &str, message: &[u8]) -> Result<String, String> {
        let submitter = normalise(mail_from);
        let from = sole_address(message, "From").map_err(|e| {
            format!("the message cannot be signed for {submitter}: {e}; it needs exactly one From: address, yours")
        })?;
        let allowed = from == submitter
            || self
                .config
                .outbound
                .send_as
                .get(&submitter)
                .is_some_and(|list| list.contains(&from));
        if !allowed {
            return Err(format!(
                "you submitted as {submitter} but the message says From: {from}; the gateway signs only as the person who submits (if {submitter} may send as {from}, the mail administrators can allow it with [outbound] send_as)"
            ));
        }
        self.config
            .proxy_identity_addresses()
            .check(&from)
            .map_err(|e| format!("{from} cannot sign outgoing mail: {e}"))?;
        Ok(from)
    }

    /// The proxy identity of `address` (see [`Self::signing_address`]), issued on first use.
    pub fn signing_identity(
        &self,
        address: &str,
    ) -> Result<std::sync::Arc<LoadedIdentity>, SignError> {
        self.keys
            .signing_identity(self.store, &self.config.proxy_identity_addresses(), address)
            .map_err(|e| match e {
                KeyLoadError::NotInternal(e) => SignError::Refused(e.to_string()),
                e => SignError::Temporary(format!(
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
    ) -> Result<Vec<u8>, String> {
        let chain = self
            .keys
            .proxy_ca_chain(self.store)
            .map_err(|e| e.to_string())?;
        mime::sign_message(
            self.keys.crypto(),
            message,
            &keys::signer(identity, &chain),
            SignFormat::Detached,
            now,
        )
        .map_err(|e| format!("signing failed: {e}"))
    }
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
) -> Result<Vec<u8>, String> {
    let options = EncryptOptions {
        cipher,
        ..EncryptOptions::default()
    };
    mime::encrypt_message(crypto, signed, &[certificate], options)
        .map_err(|e| format!("encryption failed: {e}"))
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
        let mut config = Config::default_for_run(dir.path());
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
            f.outbound().signing_address(submitter, msg.as_bytes())
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
            Err(SignError::Refused(_))
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
            Err(SignError::Temporary(_))
        ));
    }
}
