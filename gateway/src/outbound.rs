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
mod tests;
