//! Outbound: per recipient, decide what policy allows, then sign with the sender's proxy key
//! and encrypt to the recipient's newest valid certificate.

use std::time::SystemTime;

use certstore::{DomainPolicy, Store};
use x509_cert::Certificate;

use crate::address::{domain_of, normalise};
use crate::config::{Config, PolicyWithoutCertificate};
use crate::keys::{self, KeyCache, LoadedIdentity};
use crate::mime::{self, SignFormat};
use crate::smime::certs;
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
        let plaintext_allowed = self.config.outbound.policy_without_certificate
            == PolicyWithoutCertificate::Plaintext
            || self
                .config
                .outbound
                .plaintext_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&domain));
        let approved = match self.store.domain(&domain) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "domain look-up failed");
                return Decision::Refuse {
                    reason: "the certificate store is unavailable; try again later".into(),
                };
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
                    Err(e) => Decision::Refuse {
                        reason: format!("the certificate on file for {recipient} is unreadable: {e}"),
                    },
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
                    Decision::Refuse {
                        reason: "the certificate store is unavailable; try again later".into(),
                    }
                }
            },
            None if plaintext_allowed => Decision::Plaintext,
            None => Decision::Refuse {
                reason: format!(
                    "{domain} is not approved for secure mail exchange; the secure-only policy forbids sending to {recipient} (ask the mail administrators to approve the domain)"
                ),
            },
        }
    }

    /// The identity that signs for this message: the From address when it is internal,
    /// otherwise the envelope sender.
    pub fn sender_identity(
        &self,
        mail_from: &str,
        message: &[u8],
    ) -> Result<std::sync::Arc<LoadedIdentity>, String> {
        let internal = |a: &str| domain_of(a).is_some_and(|d| self.config.is_internal_domain(&d));
        let sender = crate::address::header_address(message, "From")
            .filter(|a| internal(a))
            .or_else(|| Some(normalise(mail_from)).filter(|a| internal(a)))
            .ok_or_else(|| "the sender is not an internal address".to_string())?;
        self.keys
            .signing_identity(self.store, &sender)
            .map_err(|e| format!("cannot obtain a proxy certificate for {sender}: {e}"))
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
            message,
            &keys::signer(identity, &chain),
            SignFormat::Detached,
            now,
        )
        .map_err(|e| format!("signing failed: {e}"))
    }
}

/// Encrypt the signed message to one recipient certificate (PKCS#1 v1.5 key transport: what
/// Outlook expects).
pub fn encrypt(
    signed: &[u8],
    certificate: &Certificate,
    cipher: ContentCipher,
) -> Result<Vec<u8>, String> {
    let options = EncryptOptions {
        cipher,
        ..EncryptOptions::default()
    };
    mime::encrypt_message(signed, &[certificate], options)
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
