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
//!   refused request is unauthenticated), envelope sender null so it can never loop;
//! - null senders, auto-submitted and bulk/list mail get no reply at all (RFC 3834).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certstore::{
    ApprovedDomain, CaptureOutcome, DomainPolicy, PartnerCapture, StoreError, ValidationStatus,
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

/// Per-sender reply limit over a rolling hour, in memory.
pub struct RateLimiter {
    per_hour: u32,
    max_entries: usize,
    /// Sender → times of the replies allowed within the last hour (oldest first).
    seen: Mutex<HashMap<String, VecDeque<SystemTime>>>,
}

impl RateLimiter {
    /// `per_hour` replies per sender per rolling hour (0 allows none).
    pub fn new(per_hour: u32) -> Self {
        Self::with_capacity(per_hour, MAX_TRACKED_SENDERS)
    }

    fn with_capacity(per_hour: u32, max_entries: usize) -> Self {
        RateLimiter {
            per_hour,
            max_entries: max_entries.max(1),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `sender` (any case, brackets allowed) may get another reply at `now`; counts it
    /// when it may.
    pub fn allow(&self, sender: &str, now: SystemTime) -> bool {
        let key = normalise(sender);
        // A poisoned lock only means another thread panicked mid-update; the map is still a
        // usable (if slightly stale) set of counters.
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.contains_key(&key) && seen.len() >= self.max_entries {
            seen.retain(|_, times| {
                prune(times, now);
                !times.is_empty()
            });
            if seen.len() >= self.max_entries {
                let oldest = seen
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    seen.remove(&k);
                }
            }
        }
        let times = seen.entry(key).or_default();
        prune(times, now);
        if times.len() >= self.per_hour as usize {
            return false;
        }
        times.push_back(now);
        true
    }

    /// Give back the slot taken at `now` (the request failed temporarily and will be retried:
    /// retries must not use up the sender's allowance).
    fn release(&self, sender: &str, now: SystemTime) {
        let key = normalise(sender);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(times) = seen.get_mut(&key) {
            if let Some(pos) = times.iter().rposition(|t| *t == now) {
                times.remove(pos);
            }
            if times.is_empty() {
                seen.remove(&key);
            }
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
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
        let request = Request {
            envelope: envelope.clone(),
            from,
            message_id: message_id(message).filter(|id| plain_message_id(id)),
        };
        let cert_query = normalise(&self.config.cert_query_address);
        if envelope == cert_query || request.from.as_deref() == Some(cert_query.as_str()) {
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
        let mut limited = vec![envelope.clone()];
        if let Some(f) = &request.from {
            if *f != envelope {
                limited.push(f.clone());
            }
        }
        for (i, address) in limited.iter().enumerate() {
            if !self.limiter.allow(address, now) {
                for earlier in &limited[..i] {
                    self.limiter.release(earlier, now);
                }
                return no_reply(format!(
                    "rate limit of {} replies per hour reached for {address}",
                    self.limiter.per_hour
                ));
            }
        }

        let outcome = match self.certificate_reply(&request, message, now) {
            Ok(outcome) => outcome,
            Err(Stop::Refuse(refusal)) => self.refusal_reply(&request, &refusal, now),
            Err(Stop::Temporary(reason)) => CertQueryOutcome::TemporaryFailure { reason },
        };
        if matches!(outcome, CertQueryOutcome::TemporaryFailure { .. }) {
            for address in &limited {
                self.limiter.release(address, now);
            }
        }
        outcome
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

        let opened = open_message(message, &[]);
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
            .signing_identity(self.store, &wanted)
            .map_err(|e| Stop::Temporary(format!("proxy identity for {wanted}: {e}")))?;
        let chain = keys::proxy_ca_chain(self.store)
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
        let domain = domain_of(&wanted).unwrap_or_default();
        if !self.config.is_internal_domain(&domain) {
            return Err(refuse(
                format!("{wanted} is not an agency address"),
                format!(
                    "The Subject must name an address in {}. Send the signed request again \
                     with the agency address you want to write to as Subject.",
                    self.config.internal_domains.join(", ")
                ),
            ));
        }
        let known = match &self.config.internal_addresses {
            Some(list) => list.iter().any(|a| normalise(a) == wanted),
            None => true,
        };
        if !known || wanted == normalise(cq) {
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
        }
    }

    fn sign_as(&self, address: &str, message: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        let identity = self.keys.signing_identity(self.store, address).ok()?;
        let chain = keys::proxy_ca_chain(self.store).ok()?;
        sign_message(
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
        "1. Trust the agency's proxy CA once (first compare its fingerprint with".into(),
        "   the one below):".into(),
        "   - Outlook (Windows): open proxy-ca.cer, Install Certificate, Current".into(),
        "     User, place it in \"Trusted Root Certification Authorities\".".into(),
        "   - Thunderbird: Settings > Privacy & Security > Manage Certificates >".into(),
        "     Authorities > Import proxy-ca.cer, tick \"Trust this CA to identify".into(),
        "     email users\".".into(),
        "   - Apple Mail: open proxy-ca.cer (Keychain Access adds it), open it".into(),
        "     in Keychain Access, under Trust choose \"Always Trust\".".into(),
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
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use certstore::{Store, StoreConfig};

    use crate::config::Config;

    fn fixture(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(path)
    }

    fn crlf(bytes: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(bytes).replace("\r\n", "\n");
        text.replace('\n', "\r\n").into_bytes()
    }

    /// A request signed with `partner/<who>` by the openssl CLI, as gen.sh makes them.
    fn signed_request(dir: &Path, who: &str, from: &str, subject: &str, id: &str) -> Vec<u8> {
        let body = dir.join("body.mime");
        std::fs::write(
            &body,
            "Content-Type: text/plain; charset=us-ascii\r\n\r\nPlease send me the certificate.\r\n",
        )
        .unwrap();
        let out = dir.join(format!("{id}.eml"));
        let status = Command::new("openssl")
            .args(["cms", "-sign", "-md", "sha256", "-in"])
            .arg(&body)
            .arg("-signer")
            .arg(fixture(&format!("partner/{who}.pem")))
            .arg("-inkey")
            .arg(fixture(&format!("partner/{who}.key")))
            .arg("-certfile")
            .arg(fixture("ca/partner-chain.pem"))
            .args(["-from", from, "-to", "cert-query@agency.example"])
            .args(["-subject", subject, "-out"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "openssl cms -sign failed");
        let mut message = format!(
            "Date: Wed, 01 Oct 2025 10:00:00 +0000\r\nMessage-ID: <{id}@partner.example>\r\n"
        )
        .into_bytes();
        message.extend(crlf(&std::fs::read(&out).unwrap()));
        message
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        work: PathBuf,
        store: Store,
        config: Config,
        keys: KeyCache,
    }

    fn fixture_store() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let store = Store::open(
            &dir.path().join("store"),
            StoreConfig {
                trust_anchor_files: vec![fixture("ca/partner-root.pem")],
                use_system_trust: false,
                ..Default::default()
            },
        )
        .unwrap();
        store.init_proxy_ca("Test Proxy CA").unwrap();
        store
            .approve_domain("partner.example", DomainPolicy::Smime, "test", "")
            .unwrap();
        let mut config = Config::default_for_run(dir.path());
        config.internal_domains = vec!["agency.example".into()];
        config.cert_query_address = "cert-query@agency.example".into();
        Fixture {
            _dir: dir,
            work,
            store,
            config,
            keys: KeyCache::default(),
        }
    }

    impl Fixture {
        fn handle_with(
            &self,
            config: &Config,
            limiter: &RateLimiter,
            sender: &str,
            message: &[u8],
        ) -> CertQueryOutcome {
            CertQuery {
                config,
                store: &self.store,
                keys: &self.keys,
                limiter,
            }
            .handle(sender, message, SystemTime::now())
        }

        fn handle(&self, sender: &str, message: &[u8]) -> CertQueryOutcome {
            // A fresh limiter per request: these tests are not about rate limits.
            self.handle_with(&self.config, &RateLimiter::new(100), sender, message)
        }

        fn request(&self, who: &str, from: &str, subject: &str, id: &str) -> Vec<u8> {
            signed_request(&self.work, who, from, subject, id)
        }

        /// `openssl cms -verify` with the store's proxy CA; returns the signer certificate text.
        fn openssl_verify(&self, message: &[u8]) -> String {
            let ca = self.work.join("proxy-ca.pem");
            std::fs::write(&ca, self.store.proxy_ca_certificate_pem().unwrap()).unwrap();
            let msg = self.work.join("reply.eml");
            std::fs::write(&msg, message).unwrap();
            let signer = self.work.join("signer.pem");
            let out = Command::new("openssl")
                .args(["cms", "-verify", "-CAfile"])
                .arg(&ca)
                .arg("-in")
                .arg(&msg)
                .arg("-signer")
                .arg(&signer)
                .args(["-out", "/dev/null"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl cms -verify: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = Command::new("openssl")
                .args([
                    "x509",
                    "-noout",
                    "-subject",
                    "-ext",
                    "subjectAltName",
                    "-in",
                ])
                .arg(&signer)
                .output()
                .unwrap();
            String::from_utf8_lossy(&text.stdout).into_owned()
        }
    }

    fn header(message: &[u8], name: &str) -> Option<String> {
        headers::split(message).get(name).map(|h| h.value())
    }

    /// The reply's fields, asserting it is a reply of `kind`.
    fn reply(
        outcome: CertQueryOutcome,
        kind: ReplyKind,
    ) -> (String, String, Vec<u8>, Option<String>) {
        match outcome {
            CertQueryOutcome::Reply {
                mail_from,
                rcpt_to,
                message,
                kind: k,
                reason,
            } => {
                assert_eq!(k, kind, "reason: {reason:?}");
                (mail_from, rcpt_to, message, reason)
            }
            other => panic!("expected a {kind:?} reply, got {other:?}"),
        }
    }

    /// Asserts a refusal whose reason contains `needle`, sent the bounce way.
    fn assert_refused(outcome: CertQueryOutcome, envelope: &str, needle: &str) -> Vec<u8> {
        let (mail_from, rcpt_to, message, reason) = reply(outcome, ReplyKind::Refusal);
        let reason = reason.unwrap_or_default();
        assert!(
            reason.contains(needle),
            "reason {reason:?} lacks {needle:?}"
        );
        assert_eq!(mail_from, "");
        assert_eq!(rcpt_to, envelope);
        // Unfolded: the text is wrapped, possibly quoted-printable.
        let text = String::from_utf8_lossy(&message)
            .replace("=\r\n", "")
            .replace("\r\n", " ");
        assert!(
            text.contains(needle),
            "refusal text lacks {needle:?}:\n{text}"
        );
        assert_eq!(
            header(&message, "From").as_deref(),
            Some("\"Certificate query service\" <cert-query@agency.example>")
        );
        assert_eq!(
            header(&message, "Auto-Submitted").as_deref(),
            Some("auto-replied")
        );
        assert!(header(&message, "In-Reply-To").is_some());
        message
    }

    #[test]
    fn certificate_reply_and_refusals() {
        let f = fixture_store();

        // Success: the ready-made fixture request from alice for user@agency.example.
        let request = std::fs::read(fixture("messages/cert-query.eml")).unwrap();
        let (mail_from, rcpt_to, message, reason) = reply(
            f.handle("alice@partner.example", &request),
            ReplyKind::Certificate,
        );
        assert_eq!(reason, None);
        assert_eq!(mail_from, "cert-query@agency.example");
        assert_eq!(rcpt_to, "alice@partner.example");
        assert_eq!(
            header(&message, "From").as_deref(),
            Some("<user@agency.example>")
        );
        assert_eq!(
            header(&message, "Sender").as_deref(),
            Some("<cert-query@agency.example>")
        );
        assert_eq!(
            header(&message, "To").as_deref(),
            Some("<alice@partner.example>")
        );
        assert_eq!(
            header(&message, "Subject").as_deref(),
            Some("Certificate for user@agency.example")
        );
        assert_eq!(
            header(&message, "In-Reply-To").as_deref(),
            Some("<cert-query.0001@partner.example>")
        );
        assert_eq!(
            header(&message, "References").as_deref(),
            Some("<cert-query.0001@partner.example>")
        );
        assert_eq!(
            header(&message, "Auto-Submitted").as_deref(),
            Some("auto-replied")
        );
        assert!(header(&message, "Message-ID")
            .unwrap()
            .ends_with("@localhost>"));
        assert!(header(&message, "Date").is_some());
        let text = String::from_utf8_lossy(&message);
        assert!(text.contains("multipart/signed"));
        assert!(text.contains("multipart/mixed"));
        assert!(text.contains("application/pkix-cert"));
        assert!(text.contains("user@agency.example.cer"));
        assert!(text.contains("proxy-ca.cer"));
        let ca_fp = fingerprint(&f.store.proxy_ca_certificate_der().unwrap());
        assert!(
            text.contains(&ca_fp[..47]),
            "CA fingerprint missing:\n{text}"
        );
        let signer = f.openssl_verify(&message);
        assert!(signer.contains("user@agency.example"), "{signer}");
        // Our own engine reads it too, with both certificates in the signature.
        let opened = open_message(&message, &[]);
        let report = opened.signature().unwrap();
        assert!(report.outcome.is_valid());
        assert_eq!(report.signer_emails, vec!["user@agency.example"]);
        assert_eq!(report.certificates.len(), 2);
        // The partner's certificate was captured.
        assert!(f
            .store
            .current_partner_certificate("alice@partner.example")
            .unwrap()
            .is_some());

        // Angle brackets, case, Re: prefix: the same identity answers.
        let request = f.request(
            "alice",
            "alice@partner.example",
            "Re: <USER@Agency.Example>",
            "brackets",
        );
        let (_, _, message, _) = reply(
            f.handle("alice@partner.example", &request),
            ReplyKind::Certificate,
        );
        assert_eq!(
            header(&message, "From").as_deref(),
            Some("<user@agency.example>")
        );
        assert!(f.openssl_verify(&message).contains("user@agency.example"));

        // Unsigned.
        let plain = std::fs::read(fixture("messages/plain.eml")).unwrap();
        let refusal = assert_refused(
            f.handle("alice@partner.example", &plain),
            "alice@partner.example",
            "not signed",
        );
        // Refusals are signed by the cert-query address, verifiable with the proxy CA.
        assert!(f
            .openssl_verify(&refusal)
            .contains("cert-query@agency.example"));

        // Domain not approved: mallory's certificate is valid, but other.example is not approved.
        let request = f.request(
            "other",
            "mallory@other.example",
            "user@agency.example",
            "other",
        );
        assert_refused(
            f.handle("mallory@other.example", &request),
            "mallory@other.example",
            "not approved",
        );
        assert!(f
            .store
            .current_partner_certificate("mallory@other.example")
            .unwrap()
            .is_none());

        // Self-signed and expired certificates: the validation reason is named.
        let request = f.request(
            "selfsigned",
            "eve@partner.example",
            "user@agency.example",
            "selfsigned",
        );
        assert_refused(
            f.handle("eve@partner.example", &request),
            "eve@partner.example",
            "self-signed",
        );
        let request = f.request(
            "expired",
            "dave@partner.example",
            "user@agency.example",
            "expired",
        );
        assert_refused(
            f.handle("dave@partner.example", &request),
            "dave@partner.example",
            "expired",
        );

        // Address mismatch: alice's certificate on a request from bob.
        let request = f.request(
            "alice",
            "bob@partner.example",
            "user@agency.example",
            "mismatch",
        );
        assert_refused(
            f.handle("bob@partner.example", &request),
            "bob@partner.example",
            "not for the sender",
        );

        // Content changed after signing (a footer appended by a server).
        let mut altered = std::fs::read(fixture("messages/cert-query.eml")).unwrap();
        let pos = String::from_utf8_lossy(&altered).find("Alice\r\n").unwrap();
        altered.splice(pos..pos, b"Disclaimer\r\n".iter().copied());
        assert_refused(
            f.handle("alice@partner.example", &altered),
            "alice@partner.example",
            "content changed",
        );

        // Subject not an internal address; no address at all.
        let request = f.request(
            "alice",
            "alice@partner.example",
            "bob@partner.example",
            "external",
        );
        assert_refused(
            f.handle("alice@partner.example", &request),
            "alice@partner.example",
            "not an agency address",
        );
        let request = f.request(
            "alice",
            "alice@partner.example",
            "certificate please",
            "none",
        );
        assert_refused(
            f.handle("alice@partner.example", &request),
            "alice@partner.example",
            "does not name an agency address",
        );

        // Unknown address when a list of internal addresses is configured.
        let mut listed = f.config.clone();
        listed.internal_addresses = Some(vec!["user@agency.example".into()]);
        let request = f.request(
            "alice",
            "alice@partner.example",
            "nobody@agency.example",
            "unknown",
        );
        assert_refused(
            f.handle_with(
                &listed,
                &RateLimiter::new(10),
                "alice@partner.example",
                &request,
            ),
            "alice@partner.example",
            "unknown address nobody@agency.example",
        );
        // The listed address is still answered under that configuration.
        let request = std::fs::read(fixture("messages/cert-query.eml")).unwrap();
        reply(
            f.handle_with(
                &listed,
                &RateLimiter::new(10),
                "alice@partner.example",
                &request,
            ),
            ReplyKind::Certificate,
        );

        // Rate limit: with 1 per hour the second request gets nothing.
        let limiter = RateLimiter::new(1);
        reply(
            f.handle_with(&f.config, &limiter, "alice@partner.example", &request),
            ReplyKind::Certificate,
        );
        match f.handle_with(&f.config, &limiter, "alice@partner.example", &request) {
            CertQueryOutcome::NoReply { reason } => assert!(reason.contains("rate limit")),
            other => panic!("expected NoReply, got {other:?}"),
        }
        // Refusals count too (they are replies to the same person).
        let limiter = RateLimiter::new(1);
        reply(
            f.handle_with(&f.config, &limiter, "alice@partner.example", &plain),
            ReplyKind::Refusal,
        );
        assert!(matches!(
            f.handle_with(&f.config, &limiter, "alice@partner.example", &plain),
            CertQueryOutcome::NoReply { .. }
        ));
    }

    #[test]
    fn loops_get_no_reply() {
        // No proxy CA needed: none of these gets as far as the store.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store"), StoreConfig::default()).unwrap();
        let mut config = Config::default_for_run(dir.path());
        config.cert_query_address = "cert-query@agency.example".into();
        let keys = KeyCache::default();
        let limiter = RateLimiter::new(100);
        let cq = CertQuery {
            config: &config,
            store: &store,
            keys: &keys,
            limiter: &limiter,
        };
        let request = std::fs::read(fixture("messages/cert-query.eml")).unwrap();
        let with = |field: &str| {
            let mut m = field.as_bytes().to_vec();
            m.extend_from_slice(&request);
            m
        };
        let now = SystemTime::now();
        for (sender, message, why) in [
            ("", request.clone(), "null envelope sender"),
            ("<>", request.clone(), "null envelope sender"),
            (
                "alice@partner.example",
                with("Auto-Submitted: auto-replied\r\n"),
                "Auto-Submitted",
            ),
            (
                "alice@partner.example",
                with("auto-submitted: Auto-Generated; x=y\r\n"),
                "Auto-Submitted",
            ),
            (
                "alice@partner.example",
                with("Precedence: bulk\r\n"),
                "Precedence",
            ),
            (
                "alice@partner.example",
                with("Precedence: LIST\r\n"),
                "Precedence",
            ),
            (
                "alice@partner.example",
                with("Precedence: junk\r\n"),
                "Precedence",
            ),
            ("cert-query@agency.example", request.clone(), "loop"),
            (
                "MAILER-DAEMON@partner.example",
                request.clone(),
                "mail system",
            ),
        ] {
            match cq.handle(sender, &message, now) {
                CertQueryOutcome::NoReply { reason } => {
                    assert!(reason.contains(why), "{sender:?}: {reason}")
                }
                other => panic!("{sender:?} {why}: expected NoReply, got {other:?}"),
            }
        }
        // Auto-Submitted: no is an ordinary message: it gets past the loop checks (and is refused
        // here because nothing is approved in this store).
        let message = with("Auto-Submitted: no\r\n");
        assert!(!matches!(
            cq.handle("alice@partner.example", &message, now),
            CertQueryOutcome::NoReply { .. }
        ));
    }

    #[test]
    fn internal_failures_are_temporary_and_do_not_use_the_allowance() {
        // An approved domain but no proxy CA: the store cannot issue a certificate.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("store"),
            StoreConfig {
                trust_anchor_files: vec![fixture("ca/partner-root.pem")],
                use_system_trust: false,
                ..Default::default()
            },
        )
        .unwrap();
        store
            .approve_domain("partner.example", DomainPolicy::Smime, "test", "")
            .unwrap();
        let config = Config::default_for_run(dir.path());
        let keys = KeyCache::default();
        let limiter = RateLimiter::new(1);
        let cq = CertQuery {
            config: &config,
            store: &store,
            keys: &keys,
            limiter: &limiter,
        };
        let request = std::fs::read(fixture("messages/cert-query.eml")).unwrap();
        for _ in 0..3 {
            match cq.handle("alice@partner.example", &request, SystemTime::now()) {
                CertQueryOutcome::TemporaryFailure { reason } => {
                    assert!(reason.contains("proxy"), "{reason}")
                }
                other => panic!("expected TemporaryFailure, got {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store"), StoreConfig::default()).unwrap();
        store
            .approve_domain("partner.example", DomainPolicy::Smime, "test", "")
            .unwrap();
        let config = Config::default_for_run(dir.path());
        let keys = KeyCache::default();
        let limiter = RateLimiter::new(1000);
        let cq = CertQuery {
            config: &config,
            store: &store,
            keys: &keys,
            limiter: &limiter,
        };
        let request = std::fs::read(fixture("messages/cert-query.eml")).unwrap();
        let now = SystemTime::now();
        for input in [
            &b""[..],
            b"\r\n\r\n",
            b"From: <>\r\n\r\n",
            b"From: a@exa_mple.example\r\n\r\n",
            b"From: alice@partner.example\r\nContent-Type: multipart/signed; boundary=x\r\n\r\n--x\r\n",
            b"From: alice@partner.example\r\nContent-Type: application/pkcs7-mime\r\n\r\nAAAA\r\n",
            &request[..request.len() / 2],
            &[0xff; 64],
        ] {
            // Every outcome is fine except a panic; a refusal must never go to a null sender.
            if let CertQueryOutcome::Reply { rcpt_to, .. } =
                cq.handle("alice@partner.example", input, now)
            {
                assert_eq!(rcpt_to, "alice@partner.example");
            }
        }
    }

    #[test]
    fn rate_limiter_rolls_over_the_hour_and_stays_bounded() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let limiter = RateLimiter::new(2);
        assert!(limiter.allow("a@x.example", t0));
        assert!(limiter.allow("<A@X.example>", t0 + Duration::from_secs(60)));
        assert!(!limiter.allow("a@x.example", t0 + Duration::from_secs(120)));
        assert!(limiter.allow("b@x.example", t0 + Duration::from_secs(120)));
        // The first reply leaves the window after an hour, the second a minute later.
        assert!(limiter.allow("a@x.example", t0 + HOUR));
        assert!(!limiter.allow("a@x.example", t0 + HOUR));
        assert!(limiter.allow("a@x.example", t0 + HOUR + Duration::from_secs(60)));
        // Released slots are given back.
        let now = t0 + 3 * HOUR;
        let limiter = RateLimiter::new(1);
        assert!(limiter.allow("c@x.example", now));
        limiter.release("c@x.example", now);
        assert!(limiter.allow("c@x.example", now));

        let limiter = RateLimiter::with_capacity(1, 3);
        for (i, who) in ["1@x.example", "2@x.example", "3@x.example"]
            .iter()
            .enumerate()
        {
            assert!(limiter.allow(who, t0 + Duration::from_secs(i as u64)));
        }
        // Full: the least recently seen sender is evicted.
        assert!(limiter.allow("4@x.example", t0 + Duration::from_secs(10)));
        assert_eq!(limiter.tracked(), 3);
        assert!(limiter.allow("1@x.example", t0 + Duration::from_secs(11)));
        assert!(!limiter.allow("3@x.example", t0 + Duration::from_secs(12)));
        // Expired entries are swept first.
        assert!(limiter.allow("5@x.example", t0 + 2 * HOUR));
        assert_eq!(limiter.tracked(), 1);
        // Zero allows nothing.
        assert!(!RateLimiter::new(0).allow("a@x.example", t0));
    }

    #[test]
    fn subject_forms() {
        for (subject, want) in [
            ("user@agency.example", Some("user@agency.example")),
            ("  <User@Agency.Example>  ", Some("user@agency.example")),
            (
                "Re: RE: Fwd: user@agency.example",
                Some("user@agency.example"),
            ),
            (
                "Certificate for <user@agency.example>",
                Some("user@agency.example"),
            ),
            ("mailto:USER@agency.example", Some("user@agency.example")),
            ("\"user@agency.example\"", Some("user@agency.example")),
            ("please: user@agency.example.", Some("user@agency.example")),
            ("a@agency.example b@agency.example", None),
            ("certificate please", None),
            ("", None),
            ("<>", None),
            ("us er@agency.example another@agency.example", None),
            ("user@", None),
        ] {
            assert_eq!(address_in_subject(subject).as_deref(), want, "{subject:?}");
        }
    }

    #[test]
    fn address_and_id_checks() {
        assert!(plain_address("alice@partner.example"));
        assert!(!plain_address("alice@partner"));
        assert!(!plain_address("a\r\nBcc: x@y.example"));
        assert!(!plain_address("\"a b\"@partner.example"));
        assert!(plain_message_id("x.1@partner.example"));
        assert!(!plain_message_id("x y@z"));
        assert!(!plain_message_id(""));
        assert_eq!(wrap("a bb ccc", 4), "a bb\r\nccc");
        assert_eq!(fingerprint(b"").len(), 32 * 3 - 1);
    }
}
