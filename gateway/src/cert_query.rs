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

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certstore::{
    ApprovedDomain, CaptureOutcome, DomainPolicy, NotInternal, PartnerCapture, StoreError,
    ValidationStatus,
};
use der::Encode;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;
use sha2::{Digest, Sha256};

use crate::address::{domain_of, header_address, message_id, normalise};
use crate::keys::{self, KeyCache, LoadedIdentity};
use crate::mime::{headers, open_message, sign_message, SignFormat};

const HOUR: Duration = Duration::from_secs(3600);

/// Sender addresses tracked at most; beyond this the least recently seen are evicted, so a
/// flood of forged senders cannot grow memory without bound.
const MAX_TRACKED_SENDERS: usize = 10_000;

/// Reply limits over a rolling hour, in memory: per sender (sub-addresses counted as their
/// base address) and for all senders together, so that many forged senders cannot make the
/// gateway send mail without bound either.
pub struct RateLimiter {
    per_hour: u32,
    global_per_hour: u32,
    max_entries: usize,
    state: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    /// Sender → times of the replies allowed within the last hour (oldest first).
    seen: HashMap<String, VecDeque<SystemTime>>,
    /// Times of every reply allowed within the last hour.
    all: VecDeque<SystemTime>,
}

/// The rate-limit slots one request took: give them back with [`RateLimiter::release`] when
/// its reply could not be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowance {
    addresses: Vec<String>,
    at: SystemTime,
}

impl RateLimiter {
    /// `per_hour` replies per sender and `global_per_hour` replies in all, per rolling hour
    /// (0 allows none).
    pub fn new(per_hour: u32, global_per_hour: u32) -> Self {
        Self::with_capacity(per_hour, global_per_hour, MAX_TRACKED_SENDERS)
    }

    fn with_capacity(per_hour: u32, global_per_hour: u32, max_entries: usize) -> Self {
        RateLimiter {
            per_hour,
            global_per_hour,
            max_entries: max_entries.max(1),
            state: Mutex::new(Counters::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A poisoned lock only means another thread panicked mid-update; the counters are
        // still usable (if slightly stale).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether one more reply may go to every one of `senders` (any case, brackets allowed)
    /// at `now`; takes the slots when it may, none at all when it may not.
    pub fn allow(&self, senders: &[&str], now: SystemTime) -> Result<Allowance, String> {
        let mut keys: Vec<String> = senders.iter().map(|s| limit_key(s)).collect();
        keys.sort();
        keys.dedup();
        let mut state = self.lock();
        prune(&mut state.all, now);
        if state.all.len() >= self.global_per_hour as usize {
            return Err(format!(
                "global rate limit of {} replies per hour reached",
                self.global_per_hour
            ));
        }
        for key in &keys {
            if !state.seen.contains_key(key) && state.seen.len() >= self.max_entries {
                evict(&mut state.seen, self.max_entries, now);
            }
            let times = state.seen.entry(key.clone()).or_default();
            prune(times, now);
            if times.len() >= self.per_hour as usize {
                return Err(format!(
                    "rate limit of {} replies per hour reached for {key}",
                    self.per_hour
                ));
            }
        }
        for key in &keys {
            state.seen.entry(key.clone()).or_default().push_back(now);
        }
        state.all.push_back(now);
        Ok(Allowance {
            addresses: keys,
            at: now,
        })
    }

    /// Give back the slots of a request whose reply was not sent (a temporary failure, or the
    /// next hop did not take it): retries must not use up the allowance.
    pub fn release(&self, allowance: &Allowance) {
        let mut state = self.lock();
        if let Some(pos) = state.all.iter().rposition(|t| *t == allowance.at) {
            state.all.remove(pos);
        }
        for key in &allowance.addresses {
            if let Some(times) = state.seen.get_mut(key) {
                if let Some(pos) = times.iter().rposition(|t| *t == allowance.at) {
                    times.remove(pos);
                }
                if times.is_empty() {
                    state.seen.remove(key);
                }
            }
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().seen.len()
    }
}

/// The per-sender key: the normalised address without its sub-address (`bob+x@d` → `bob@d`),
/// so `+tag` variants share one allowance.
fn limit_key(sender: &str) -> String {
    let address = normalise(sender);
    match address.rsplit_once('@') {
        Some((local, domain)) => match local.split_once('+') {
            Some((base, _)) if !base.is_empty() => format!("{base}@{domain}"),
            _ => address,
        },
        None => address,
    }
}

/// Make room for one more sender: forget those with no reply in the last hour, then the least
/// recently seen.
fn evict(seen: &mut HashMap<String, VecDeque<SystemTime>>, max_entries: usize, now: SystemTime) {
    seen.retain(|_, times| {
        prune(times, now);
        !times.is_empty()
    });
    if seen.len() >= max_entries {
        let oldest = seen
            .iter()
            .min_by_key(|(_, times)| times.back().copied())
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            seen.remove(&k);
        }
    }
}

/// Drop times more than an hour before `now`. Times in the future (clock stepped back) are kept:
/// forgetting them would let a clock change reset every limit.
fn prune(times: &mut VecDeque<SystemTime>, now: SystemTime) {
    while let Some(first) = times.front() {
        match now.duration_since(*first) {
            Ok(age) if age >= HOUR => {
                times.pop_front();
            }
            _ => break,
        }
    }
}

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
            Err(why) => return no_reply(why),
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
    fn refusal_allowed(&self, envelope: &str) -> Result<(), String> {
        let domain = domain_of(envelope).unwrap_or_default();
        match self.store.domain(&domain) {
            Ok(Some(_)) => Ok(()),
            Ok(None) | Err(StoreError::Domain(_)) => Err(format!(
                "no refusal sent: {domain} is not an approved partner domain"
            )),
            Err(e) => Err(format!("no refusal sent: store: domain lookup: {e}")),
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
            certificate_der: signer_der,
            chain_der,
            message_id: request.message_id.clone(),
            seen_at: now,
        };
        // Captured before the Subject is checked: a renewed certificate is registered even
        // when the requested address turns out to be wrong.
        match self.store.capture_partner_certificate(&capture) {
            Ok(CaptureOutcome::Stored {
                status: ValidationStatus::Valid,
                fingerprint,
                ..
            }) => crate::inbound::remember_capabilities(self.store, &from, &fingerprint, report),
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
            .map(|c| c.tbs_certificate.subject.to_string())
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

fn no_reply(reason: impl Into<String>) -> CertQueryOutcome {
    CertQueryOutcome::NoReply {
        reason: reason.into(),
    }
}

/// Why `message` must not get an automatic reply (RFC 3834 §2), if it must not.
fn auto_generated(message: &[u8]) -> Option<String> {
    let split = headers::split(message);
    for field in &split.headers {
        let value = field.value();
        let token = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if field.is("Auto-Submitted") && token != "no" {
            return Some(format!("Auto-Submitted: {token}: never auto-replied"));
        }
        if field.is("Precedence") && matches!(token.as_str(), "bulk" | "junk" | "list") {
            return Some(format!("Precedence: {token}: never auto-replied"));
        }
    }
    None
}

/// Mail system senders that never get auto-replies (RFC 3834 §2).
fn is_daemon(address: &str) -> bool {
    let local = address.rsplit_once('@').map(|(l, _)| l).unwrap_or(address);
    local.eq_ignore_ascii_case("mailer-daemon")
}

/// An address we are willing to write into a header or an envelope: `local@domain`, printable
/// ASCII, nothing that needs quoting.
fn plain_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && a.len() <= 254
        && a.bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"".contains(&b))
        && !domain.starts_with('.')
        && !domain.contains("..")
}

fn plain_message_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

/// The request's Subject, RFC 2047 decoded.
fn subject(message: &[u8]) -> Option<String> {
    let header_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(message.len());
    let parsed = mail_parser::MessageParser::default().parse_headers(&message[..header_end])?;
    parsed.subject().map(str::to_string)
}

/// The one address in a Subject: bare, in angle brackets or after `mailto:`, any case, with
/// reply/forward prefixes ignored. `None` when there is none or more than one.
fn address_in_subject(subject: &str) -> Option<String> {
    let mut s = subject.trim();
    // "Re: ", "Fwd: ", "AW: "... possibly repeated.
    loop {
        let lower = s.to_ascii_lowercase();
        let Some(prefix) = ["re:", "fwd:", "fw:", "aw:", "wg:", "tr:", "sv:"]
            .iter()
            .find(|p| lower.starts_with(**p))
        else {
            break;
        };
        s = s[prefix.len()..].trim_start();
    }
    let inner = match (s.find('<'), s.rfind('>')) {
        (Some(open), Some(close)) if open < close => &s[open + 1..close],
        _ => s,
    };
    let mut candidates = inner
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|t| t.contains('@'))
        .map(|t| {
            let t = t.trim_matches(|c: char| "\"'()[].<>".contains(c));
            let t = t
                .get(..7)
                .filter(|p| p.eq_ignore_ascii_case("mailto:"))
                .map_or(t, |_| &t[7..]);
            t.to_ascii_lowercase()
        });
    let first = candidates.next()?;
    if candidates.next().is_some() || !plain_address(&first) {
        return None;
    }
    Some(first)
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(77).collect();
        out.push_str("...");
        out
    }
}

/// SHA-256 fingerprint as mail clients show it: upper-case hex pairs joined by colons.
fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn not_after(identity: &LoadedIdentity) -> String {
    let t = identity
        .certificate
        .tbs_certificate
        .validity
        .not_after
        .to_system_time();
    time::OffsetDateTime::from(t).date().to_string()
}

/// Greedy word wrap to `width` columns, CRLF line ends.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        if line_len > 0 && line_len + 1 + word.len() > width {
            out.push_str("\r\n");
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word.len();
    }
    out
}

struct CertificateText<'a> {
    wanted: &'a str,
    cert_query: &'a str,
    request_id: Option<&'a str>,
    ca_subject: &'a str,
    /// The internal domains the proxy CA is limited to.
    ca_domains: &'a [String],
    ca_fingerprint: &'a str,
    cert_fingerprint: &'a str,
    not_after: String,
}

/// The instructions in a certificate reply.
fn certificate_text(t: &CertificateText<'_>) -> String {
    let wanted = t.wanted;
    let request = t
        .request_id
        .map(|id| format!(" (message <{id}>)"))
        .unwrap_or_default();
    // Fingerprints are split in two lines of 16 bytes so they are not wrapped by clients.
    let (ca_fp1, ca_fp2) = t.ca_fingerprint.split_at(t.ca_fingerprint.len().min(48));
    let (fp1, fp2) = t
        .cert_fingerprint
        .split_at(t.cert_fingerprint.len().min(48));
    let lines = [
        "Hello,".to_string(),
        String::new(),
        wrap(
            &format!(
                "this is the automatic answer to your certificate request{request}. Your \
                 certificate has been registered: mail from the agency to you will be \
                 encrypted with it."
            ),
            72,
        ),
        String::new(),
        wrap(
            &format!(
                "This message comes from {wanted} and is signed with its S/MIME certificate, \
                 attached as \"{wanted}.cer\". That certificate was issued by the agency's \
                 proxy certificate authority ({}), attached as \"proxy-ca.cer\".",
                t.ca_subject
            ),
            72,
        ),
        String::new(),
        format!("To send encrypted mail to {wanted}:"),
        String::new(),
        "1. Trust the agency's proxy CA once, for e-mail only (first compare".into(),
        "   its fingerprint with the one below). It can vouch only for".into(),
        format!("   addresses at {};", t.ca_domains.join(", ")),
        "   do not trust it for websites or software.".into(),
        "   - Outlook (Windows): open proxy-ca.cer, Install Certificate, Current".into(),
        "     User, place it in \"Trusted Root Certification Authorities\". Then".into(),
        "     in certmgr.msc open it there: Properties > \"Enable only the".into(),
        "     following purposes\" > tick \"Secure Email\" only.".into(),
        "   - Thunderbird: Settings > Privacy & Security > Manage Certificates >".into(),
        "     Authorities > Import proxy-ca.cer; tick only \"Trust this CA to".into(),
        "     identify email users\" (not websites).".into(),
        "   - Apple Mail: open proxy-ca.cer (Keychain Access adds it), open it".into(),
        "     in Keychain Access, under Trust set \"Secure Mail (S/MIME)\" to".into(),
        "     \"Always Trust\" and leave every other setting unspecified.".into(),
        format!("2. Add the sender of this message, {wanted}, to your"),
        "   contacts (Outlook: right-click the sender, Add to Outlook Contacts;".into(),
        "   Thunderbird and Apple Mail keep the certificate of signed mail).".into(),
        format!("3. Write to {wanted} with encryption switched on."),
        String::new(),
        "SHA-256 fingerprint of the proxy CA certificate:".into(),
        format!("   {ca_fp1}"),
        format!("   {}", ca_fp2.trim_start_matches(':')),
        format!("SHA-256 fingerprint of the certificate of {wanted}:"),
        format!("   {fp1}"),
        format!("   {}", fp2.trim_start_matches(':')),
        format!("It is valid until {}.", t.not_after),
        String::new(),
        wrap(
            &format!(
                "When your certificate is renewed, send a signed message with the new one to \
                 {} (Subject: {wanted}) so the agency uses it.",
                t.cert_query
            ),
            72,
        ),
        String::new(),
        "This is an automatic message; replies to it are not read.".into(),
    ];
    let mut out = lines.join("\r\n");
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests;
