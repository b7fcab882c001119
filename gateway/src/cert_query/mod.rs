//! The cert-query auto-responder: a partner sends a *signed* message to the cert-query address
//! with the internal address it wants to write to as Subject; we capture the partner's
//! certificate and answer with a message from that internal address, signed with its proxy key,
//! carrying its proxy certificate and the proxy CA certificate plus instructions.
//!
//! Pure logic over the store and the engine: the SMTP dispatcher calls [`CertQuery::handle`] and
//! sends the reply it returns through the outbound next hop.
//!
//! Who gets what:
//! - a certificate reply goes to the request's `From` address (authenticated by the signature
//!   and the certificate's address check), envelope sender the cert-query address;
//! - a refusal goes to the envelope sender (the return path, as for any bounce: the `From` of a
//!   refused request is unauthenticated), envelope sender null so it can never loop, and only
//!   when that sender is in an approved domain: anyone else gets nothing (no backscatter);
//! - replies are rate-limited per sender (`+tag` sub-addresses count as the base address) and
//!   in all; a reply the next hop did not take gives its slots back;
//! - null senders, auto-submitted and bulk/list mail get no reply at all (RFC 3834).

mod rate_limit;
mod reply_text;
mod request;

use std::time::{SystemTime, UNIX_EPOCH};

use certstore::{
    ApprovedDomain, CaptureOutcome, DomainPolicy, NotInternal, PartnerCapture, StoreError,
    ValidationStatus,
};
use der::Encode;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;

use crate::address::{domain_of, header_address, message_id, normalise};
use crate::keys::{self, KeyCache};
use crate::mime::{open_message, sign_message, SignFormat};

pub use rate_limit::{Allowance, RateLimited, RateLimiter};
use reply_text::{certificate_text, fingerprint, not_after, shorten, wrap, CertificateText};
use request::{
    address_in_subject, auto_generated, is_daemon, plain_address, plain_message_id, subject,
};

/// What kind of reply [`CertQueryOutcome::Reply`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// The proxy certificate, from the requested address.
    Certificate,
    /// A refusal with the reason, from the cert-query address.
    Refusal,
}

/// What the dispatcher should do with a cert-query request.
#[derive(Debug)]
pub enum CertQueryOutcome {
    /// A reply to send through the outbound next hop: envelope sender, recipient, and the message
    /// bytes. Accept the request (250) once the next hop took the reply.
    Reply {
        mail_from: String,
        rcpt_to: String,
        message: Vec<u8>,
        kind: ReplyKind,
        /// Why refused, for logs/metrics (`None` for a certificate reply).
        reason: Option<String>,
        /// Give back with [`RateLimiter::release`] if the reply cannot be relayed.
        allowance: Allowance,
    },
    /// No reply (rate-limited, or a null/auto-submitted sender that must never get an
    /// auto-reply — loops). Accept the request (250) and send nothing.
    NoReply { reason: String },
    /// An internal failure (store unusable, key generation or signing failed): answer 451 so
    /// the upstream MTA keeps the request and retries. Nothing was counted against the sender's
    /// rate limit.
    TemporaryFailure { reason: String },
}

/// The responder, borrowing the gateway's shared state.
pub struct CertQuery<'a> {
    pub config: &'a crate::config::Config,
    pub store: &'a certstore::Store,
    pub keys: &'a KeyCache,
    pub limiter: &'a RateLimiter,
}

/// A refusal: a short reason (logs, metrics, the reply's first paragraph) and what to do.
struct Refusal {
    reason: String,
    advice: String,
}

/// Why handling stopped before a certificate reply.
enum Stop {
    Refuse(Refusal),
    Temporary(String),
}

fn refuse(reason: impl Into<String>, advice: impl Into<String>) -> Stop {
    Stop::Refuse(Refusal {
        reason: reason.into(),
        advice: advice.into(),
    })
}

/// The request's identifying data, shared by both kinds of reply.
struct Request {
    /// Envelope sender, normalised (refusals go here).
    envelope: String,
    /// From address, when it is a plain usable address.
    from: Option<String>,
    message_id: Option<String>,
    /// The rate-limit slots this request took.
    allowance: Allowance,
}

impl CertQuery<'_> {
    /// Answer one request that arrived for the cert-query address. Never panics; see
    /// [`CertQueryOutcome`] for what the dispatcher does with each result.
    pub fn handle(
        &self,
        envelope_sender: &str,
        message: &[u8],
        now: SystemTime,
    ) -> CertQueryOutcome {
        let envelope = normalise(envelope_sender);
        if envelope.is_empty() {
            return no_reply("null envelope sender (a bounce): never auto-replied");
        }
        if let Some(why) = auto_generated(message) {
            return no_reply(why);
        }
        let from = header_address(message, "From").filter(|a| plain_address(a));
        let cert_query = normalise(&self.config.cert_query_address);
        if envelope == cert_query || from.as_deref() == Some(cert_query.as_str()) {
            return no_reply("request from the cert-query address itself: reply loop");
        }
        if is_daemon(&envelope) {
            return no_reply(format!(
                "envelope sender {envelope} is a mail system address"
            ));
        }
        if !plain_address(&envelope) {
            return no_reply(format!(
                "envelope sender {envelope:?} is not a usable address"
            ));
        }

        // Every address a reply could go to is limited, before any work is done.
        let mut limited = vec![envelope.as_str()];
        if let Some(f) = &from {
            if *f != envelope {
                limited.push(f.as_str());
            }
        }
        let allowance = match self.limiter.allow(&limited, now) {
            Ok(allowance) => allowance,
            Err(why) => return no_reply(why.to_string()),
        };
        let request = Request {
            envelope: envelope.clone(),
            from,
            message_id: message_id(message).filter(|id| plain_message_id(id)),
            allowance,
        };

        let outcome = match self.certificate_reply(&request, message, now) {
            Ok(outcome) => outcome,
            Err(Stop::Refuse(refusal)) => match self.refusal_allowed(&request.envelope) {
                Ok(()) => self.refusal_reply(&request, &refusal, now),
                Err(why) => no_reply(format!("refused ({}); {why}", refusal.reason)),
            },
            Err(Stop::Temporary(reason)) => CertQueryOutcome::TemporaryFailure { reason },
        };
        if matches!(outcome, CertQueryOutcome::TemporaryFailure { .. }) {
            self.limiter.release(&request.allowance);
        }
        outcome
    }

    /// Refusals go to the envelope sender, which anyone can forge: only partners in approved
    /// domains get one, so the gateway cannot be made to send mail to arbitrary addresses
    /// (backscatter). Everyone else gets nothing; the reason is logged.
    fn refusal_allowed(&self, envelope: &str) -> Result<(), NoRefusal> {
        let domain = domain_of(envelope).unwrap_or_default();
        match self.store.domain(&domain) {
            Ok(Some(_)) => Ok(()),
            Ok(None) | Err(StoreError::Domain(_)) => Err(NoRefusal::NotApproved(domain)),
            Err(e) => Err(NoRefusal::Store(e)),
        }
    }

    /// Checks the request and builds the signed certificate reply.
    fn certificate_reply(
        &self,
        request: &Request,
        message: &[u8],
        now: SystemTime,
    ) -> Result<CertQueryOutcome, Stop> {
        let cq = &self.config.cert_query_address;
        let Some(from) = request.from.clone() else {
            return Err(refuse(
                "the request has no usable From address",
                format!(
                    "Send the request from your own mailbox, signed with your S/MIME certificate, \
                     to {cq}."
                ),
            ));
        };
        let domain = domain_of(&from).unwrap_or_default();
        match self.store.domain(&domain) {
            Ok(Some(ApprovedDomain {
                policy: DomainPolicy::Smime,
                ..
            })) => {}
            Ok(Some(ApprovedDomain {
                policy: DomainPolicy::Tls,
                ..
            })) => {
                return Err(refuse(
                    format!("the domain {domain} is approved for SMTP over TLS, not for S/MIME"),
                    "Mail between your domain and the agency is protected by TLS between the mail \
                     servers; no certificates need to be exchanged. If you need S/MIME instead, \
                     ask your contact at the agency to have your domain's approval changed to \
                     S/MIME, then send this request again.",
                ))
            }
            // An invalid domain name cannot have been approved either.
            Ok(None) | Err(StoreError::Domain(_)) => {
                return Err(refuse(
                    format!(
                        "the domain {domain} is not approved for secure e-mail with the agency"
                    ),
                    format!(
                        "Certificates are exchanged only with partner domains approved by the \
                         agency. To get approved, ask your contact at the agency to request \
                         S/MIME approval of {domain} from the agency's secure e-mail team. \
                         Free-mail and ISP domains (gmail.com, yahoo.com, outlook.com, \
                         comcast.net, ...) cannot be approved. Once approved, send this request \
                         again."
                    ),
                ))
            }
            Err(e) => return Err(Stop::Temporary(format!("store: domain lookup: {e}"))),
        }

        let opened = open_message(self.keys.crypto(), message, &[]);
        let Some(report) = opened.signature() else {
            return Err(if opened.was_encrypted() {
                refuse(
                    "the request is encrypted",
                    format!(
                        "Send the request signed but not encrypted to {cq}: we need to read your \
                         signature to learn your certificate."
                    ),
                )
            } else if let Some(e) = &opened.stopped {
                refuse(
                    format!("the signature of the request could not be read: {e}"),
                    SIGN_ADVICE,
                )
            } else {
                refuse("the request is not signed", SIGN_ADVICE)
            });
        };
        if !report.outcome.is_valid() {
            return Err(refuse(
                format!(
                    "the signature does not verify: {}",
                    report.outcome.describe()
                ),
                "Send the request again, signed. If a server on your side adds a disclaimer or \
                 footer to outgoing mail, it breaks signatures: ask your mail administrator to \
                 exempt signed mail.",
            ));
        }
        let Some(signer_der) = report.signer_certificate.clone() else {
            return Err(refuse(
                "the signature does not carry the signer's certificate",
                "Configure your mail client to include your certificate when signing (the \
                 default in Outlook, Thunderbird and Apple Mail) and send the request again.",
            ));
        };
        let chain_der: Vec<Vec<u8>> = report
            .certificates
            .iter()
            .filter(|c| **c != signer_der)
            .cloned()
            .collect();
        let capture = PartnerCapture {
            address: from.clone(),
            certificate_der: signer_der.clone(),
            chain_der,
            message_id: request.message_id.clone(),
            seen_at: now,
            capabilities: crate::inbound::capability_oids(report),
        };
        // Captured before the Subject is checked: a renewed certificate is registered even
        // when the requested address turns out to be wrong.
        match self.store.capture_partner_certificate(&capture) {
            Ok(CaptureOutcome::Stored {
                status: ValidationStatus::Valid,
                ..
            }) => crate::inbound::capture_encryption_preference(
                self.store,
                &from,
                report.encryption_key_preference.as_ref(),
                &signer_der,
                report,
                request.message_id.clone(),
                now,
            ),
            Ok(CaptureOutcome::Stored {
                status: ValidationStatus::Refused(e),
                ..
            }) => {
                return Err(refuse(
                    format!("your certificate was not accepted: {e}"),
                    "The agency accepts S/MIME certificates issued to the sender's address by a \
                     trusted certificate authority (not self-signed), currently valid, with RSA \
                     keys of at least 2048 bits and SHA-256 signatures. Sign the request with \
                     such a certificate and send it again.",
                ))
            }
            Ok(CaptureOutcome::Blocked { .. }) => {
                return Err(refuse(
                    "your certificate has been blocked by the agency's administrators",
                    "Contact your contact at the agency; if your certificate was replaced, sign \
                     the request with the new one.",
                ))
            }
            Err(
                e @ (StoreError::InvalidAddress(_)
                | StoreError::BadEncoding(_)
                | StoreError::Domain(_)),
            ) => {
                return Err(refuse(
                    format!("your certificate could not be recorded: {e}"),
                    "Sign the request with your ordinary S/MIME certificate and send it again.",
                ))
            }
            Err(e) => return Err(Stop::Temporary(format!("store: capture: {e}"))),
        }

        let wanted = self.wanted_address(message)?;
        let identity = self
            .keys
            .signing_identity(self.store, &self.config.proxy_identity_addresses(), &wanted)
            .map_err(|e| Stop::Temporary(format!("proxy identity for {wanted}: {e}")))?;
        let chain = self
            .keys
            .proxy_ca_chain(self.store)
            .map_err(|e| Stop::Temporary(format!("proxy CA: {e}")))?;
        let ca_der = self
            .store
            .proxy_ca_certificate_der()
            .map_err(|e| Stop::Temporary(format!("proxy CA: {e}")))?;
        let cert_der = identity
            .certificate
            .to_der()
            .map_err(|e| Stop::Temporary(format!("proxy certificate encoding: {e}")))?;
        let ca_subject = chain
            .first()
            .map(|c| smime_pki::cert::distinguished_name(&c.tbs_certificate.subject))
            .unwrap_or_default();

        let text = certificate_text(&CertificateText {
            wanted: &wanted,
            cert_query: cq,
            request_id: request.message_id.as_deref(),
            ca_subject: &ca_subject,
            ca_domains: &self.config.internal_domains,
            ca_fingerprint: &fingerprint(&ca_der),
            cert_fingerprint: &fingerprint(&cert_der),
            not_after: not_after(&identity),
        });
        let builder = self
            .headers(request, now)
            .from(wanted.as_str())
            .sender(cq.as_str())
            .to(from.as_str())
            .subject(format!("Certificate for {wanted}"))
            .text_body(text)
            .attachment(
                "application/pkix-cert",
                format!("{wanted}.cer"),
                cert_der.as_slice(),
            )
            .attachment("application/pkix-cert", "proxy-ca.cer", ca_der.as_slice());
        let unsigned = builder
            .write_to_vec()
            .map_err(|e| Stop::Temporary(format!("building the reply: {e}")))?;
        let signed = sign_message(
            self.keys.crypto(),
            &unsigned,
            &keys::signer(&identity, &chain),
            SignFormat::Detached,
            now,
        )
        .map_err(|e| Stop::Temporary(format!("signing the reply: {e}")))?;
        Ok(CertQueryOutcome::Reply {
            mail_from: cq.clone(),
            rcpt_to: from,
            message: signed,
            kind: ReplyKind::Certificate,
            reason: None,
            allowance: request.allowance.clone(),
        })
    }

    /// The internal address named by the Subject, checked against our domains and addresses.
    fn wanted_address(&self, message: &[u8]) -> Result<String, Stop> {
        let cq = &self.config.cert_query_address;
        let example = format!(
            "user@{}",
            self.config
                .internal_domains
                .first()
                .map(String::as_str)
                .unwrap_or("agency.example")
        );
        let subject = subject(message).unwrap_or_default();
        let Some(wanted) = address_in_subject(&subject) else {
            return Err(refuse(
                format!(
                    "the Subject {:?} does not name an agency address",
                    shorten(&subject)
                ),
                format!(
                    "Put the agency address you want to write to, and nothing else, in the \
                     Subject (for example: {example}) and send the signed request again to {cq}."
                ),
            ));
        };
        let allowed = self.config.proxy_identity_addresses().check(&wanted);
        if let Err(NotInternal::OutsideDomains { .. }) = allowed {
            return Err(refuse(
                format!("{wanted} is not an agency address"),
                format!(
                    "The Subject must name an address in {}. Send the signed request again \
                     with the agency address you want to write to as Subject.",
                    self.config.internal_domains.join(", ")
                ),
            ));
        }
        if allowed.is_err() || wanted == normalise(cq) {
            return Err(refuse(
                format!("unknown address {wanted}"),
                format!(
                    "There is no mailbox {wanted} at the agency. Check the address with your \
                     contact and send the signed request again with the exact address as Subject \
                     (for example: {example})."
                ),
            ));
        }
        Ok(wanted)
    }

    /// A plain-text refusal from the cert-query address to the envelope sender, null envelope
    /// sender. Signed with the cert-query address's proxy key when that works; unsigned
    /// otherwise (the refusal matters more than its signature).
    fn refusal_reply(
        &self,
        request: &Request,
        refusal: &Refusal,
        now: SystemTime,
    ) -> CertQueryOutcome {
        let cq = &self.config.cert_query_address;
        let request_ref = request
            .message_id
            .as_deref()
            .map(|id| format!(" (message <{id}>)"))
            .unwrap_or_default();
        let paragraphs = [
            "Hello,".to_string(),
            wrap(
                &format!("your certificate request to {cq}{request_ref} could not be answered:"),
                72,
            ),
            wrap(&format!("{}.", refusal.reason), 72),
            wrap(&refusal.advice, 72),
            wrap(
                &format!(
                    "How it works: send a message signed with your S/MIME certificate (not \
                     encrypted) to {cq} with the agency address you want to write to as the \
                     Subject. The reply comes from that address and carries its certificate."
                ),
                72,
            ),
            "This is an automatic message; replies to it are not read.".to_string(),
        ];
        let mut text = paragraphs.join("\r\n\r\n");
        text.push_str("\r\n");
        let builder = self
            .headers(request, now)
            .from(("Certificate query service", cq.as_str()))
            .to(request.envelope.as_str())
            .subject("Certificate request refused")
            .text_body(text);
        let unsigned = match builder.write_to_vec() {
            Ok(m) => m,
            Err(e) => {
                return CertQueryOutcome::TemporaryFailure {
                    reason: format!("building the refusal: {e}"),
                }
            }
        };
        let message = self.sign_as(cq, &unsigned, now).unwrap_or(unsigned);
        CertQueryOutcome::Reply {
            mail_from: String::new(),
            rcpt_to: request.envelope.clone(),
            message,
            kind: ReplyKind::Refusal,
            reason: Some(refusal.reason.clone()),
            allowance: request.allowance.clone(),
        }
    }

    fn sign_as(&self, address: &str, message: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        let identity = self
            .keys
            .signing_identity(self.store, &self.config.proxy_identity_addresses(), address)
            .ok()?;
        let chain = self.keys.proxy_ca_chain(self.store).ok()?;
        sign_message(
            self.keys.crypto(),
            message,
            &keys::signer(&identity, &chain),
            SignFormat::Detached,
            now,
        )
        .ok()
    }

    /// Header fields common to both replies.
    fn headers(&self, request: &Request, now: SystemTime) -> MessageBuilder<'static> {
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut b = MessageBuilder::new()
            .message_id(format!(
                "cert-query.{secs}.{:016x}@{}",
                rand::random::<u64>(),
                self.config.hostname
            ))
            .date(Date::new(i64::try_from(secs).unwrap_or(0)))
            .header("Auto-Submitted", Raw::new("auto-replied"))
            // Keeps Outlook and Exchange from answering the reply with out-of-office notes.
            .header("X-Auto-Response-Suppress", Raw::new("All"));
        if let Some(id) = &request.message_id {
            b = b.in_reply_to(id.clone()).references(id.clone());
        }
        b
    }
}

const SIGN_ADVICE: &str = "Send the request again signed with your S/MIME certificate, not \
     encrypted (Outlook: Options > Sign; Thunderbird: Security > Digitally sign this message; \
     Apple Mail: the signing button beside the Subject).";

/// Why a refused request gets no refusal mail.
#[derive(Debug, thiserror::Error)]
enum NoRefusal {
    #[error("no refusal sent: {0} is not an approved partner domain")]
    NotApproved(String),
    #[error("no refusal sent: store: domain lookup: {0}")]
    Store(StoreError),
}

fn no_reply(reason: impl Into<String>) -> CertQueryOutcome {
    CertQueryOutcome::NoReply {
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests;
