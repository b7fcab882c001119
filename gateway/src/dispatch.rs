//! The SMTP handler: route each recipient, run the inbound / outbound / cert-query pipelines,
//! relay the results, and answer the upstream MTA only once the next hop has answered.
//!
//! Never lose mail: `250` only after every recipient was delivered or refused by policy (the
//! refused ones get a DSN when others went through); `4xx` as soon as any delivery failed
//! temporarily, so the upstream MTA keeps the message and retries. A retry may deliver again
//! to recipients that had already been accepted: a duplicate is preferred to a loss.
//! Over LMTP each recipient gets its own answer ([`MessageHandler::handle_each`]), so only
//! the ones that failed temporarily are retried, and the refused ones are bounced by the
//! upstream MTA rather than by a DSN of ours.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::telemetry::{CertQueryReply, CryptoFailure, Direction, Metrics, Outcome};
use certstore::Store;

use crate::cert_query::{Allowance, CertQuery, CertQueryOutcome, RateLimiter};
use crate::config::Config;
use crate::dsn::{build_dsn, DsnRequest, FailedRecipient};
use crate::inbound::Inbound;
use crate::keys::KeyCache;
use crate::outbound::{Outbound, Payload};
use crate::pipeline::PipelineError;
use crate::receive::{Envelope, MessageHandler};
use crate::relay::{self, NextHop, RecipientOutcome, TlsMode};
use crate::reply::{status, Reply};
use crate::route::{route, Route};

/// Where a processed message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hop {
    Inbound,
    Outbound,
    /// Outbound, but only over STARTTLS with a verified certificate (domains approved `tls`).
    OutboundTls,
}

struct Delivery {
    hop: Hop,
    mail_from: String,
    recipients: Vec<String>,
    message: Payload,
    direction: Direction,
    outcome: Outcome,
}

impl Delivery {
    /// What the next hop must guarantee for this message: decrypted inbound mail may only go
    /// where bounces quote headers, never the plaintext (see [`relay::Content`]).
    fn content(&self, config: &Config) -> relay::Content {
        if self.direction == Direction::Inbound && self.outcome == Outcome::Decrypted {
            relay::Content::Decrypted {
                allow_without_dsn: config.inbound_allow_next_hop_without_dsn,
            }
        } else {
            relay::Content::Ordinary
        }
    }
}

/// A recipient refused for good, with why (the SMTP status follows from the kind).
struct Refusal {
    recipient: String,
    error: PipelineError,
    direction: Direction,
}

/// Recipients whose processing failed before relaying, for a reason that may pass.
struct Deferred {
    recipients: Vec<String>,
    error: PipelineError,
}

#[derive(Default)]
struct Plan {
    deliveries: Vec<Delivery>,
    refused: Vec<Refusal>,
    /// Work that failed for a reason that may pass (store unavailable...): answer 451 4.3.0.
    temporary: Vec<Deferred>,
    /// The envelope's cert-query recipients (answered or deliberately not).
    query_recipients: Vec<String>,
    /// The rate-limit slots of the cert-query reply, given back if it is not relayed.
    cert_query_allowance: Option<Allowance>,
}

impl Plan {
    /// Where the recipients went, for the message's log line (`-`: nowhere, e.g. nothing
    /// but cert-queries that were not answered).
    fn directions(&self) -> String {
        let mut all: Vec<&str> = self
            .deliveries
            .iter()
            .map(|d| d.direction.as_label())
            .chain(self.refused.iter().map(|r| r.direction.as_label()))
            .collect();
        all.sort_unstable();
        all.dedup();
        if all.is_empty() {
            "-".into()
        } else {
            all.join(",")
        }
    }
}

pub struct Gateway {
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    store: Store,
    keys: KeyCache,
    limiter: RateLimiter,
    metrics: Arc<Metrics>,
    inbound_hop: NextHop,
    outbound_hop: NextHop,
    tls_hop: NextHop,
    /// One permit per core: more crypto threads than cores only adds context switches.
    cpu: tokio::sync::Semaphore,
}

impl Gateway {
    pub fn new(config: Config, store: Store, metrics: Arc<Metrics>) -> Self {
        let inbound_hop = config.inbound_hop();
        let outbound_hop = config.outbound_hop();
        let mut tls_hop = outbound_hop.clone();
        tls_hop.tls = TlsMode::Required { verify: true };
        let limiter = RateLimiter::new(
            config.cert_query.rate_limit_per_hour,
            config.cert_query.global_rate_limit_per_hour,
        );
        let keys = KeyCache::new(store.crypto());
        Self {
            shared: Arc::new(Shared {
                config,
                store,
                keys,
                limiter,
                metrics,
                inbound_hop,
                outbound_hop,
                tls_hop,
                cpu: tokio::sync::Semaphore::new(
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2),
                ),
            }),
        }
    }
}

impl MessageHandler for Gateway {
    async fn handle(&self, envelope: Envelope, message: Vec<u8>) -> Reply {
        match self.process(envelope, message, false).await {
            Ok((settled, envelope, message)) => {
                self.shared.smtp_answer(settled, &envelope, &message).await
            }
            Err(reply) => reply,
        }
    }

    async fn handle_each(&self, envelope: Envelope, message: Vec<u8>) -> Vec<Reply> {
        let count = envelope.rcpt_to.len();
        match self.process(envelope, message, true).await {
            Ok((settled, envelope, _)) => settled.answers(&envelope),
            Err(reply) => vec![reply; count],
        }
    }
}

impl Gateway {
    /// Plan (on a crypto thread) and relay; what became of each recipient (see
    /// [`Shared::execute`] for `per_recipient`). `Err` is the answer for every recipient when
    /// the message could not be processed at all.
    async fn process(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
        per_recipient: bool,
    ) -> Result<(Settled, Envelope, Vec<u8>), Reply> {
        let started = Instant::now();
        let shared = self.shared.clone();
        // Crypto is CPU-bound (an RSA private operation is milliseconds): keep it off the
        // threads that serve SMTP sessions, and run at most one message per core at a time.
        let Ok(permit) = self.shared.cpu.acquire().await else {
            return Err(Reply::temp_fail("4.3.0", "shutting down; try again later"));
        };
        // The blocking thread logs inside this message's span too.
        let span = tracing::Span::current();
        let planned = tokio::task::spawn_blocking(move || {
            let plan = span.in_scope(|| shared.plan(&envelope, &message, SystemTime::now()));
            (plan, envelope, message)
        })
        .await;
        // Relaying waits on the network, not the CPU: let the next message in.
        drop(permit);
        let (plan, envelope, message) = match planned {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "message processing failed");
                return Err(Reply::temp_fail(
                    "4.3.0",
                    "internal error while processing the message; try again later",
                ));
            }
        };
        crate::msglog::record_direction(&plan.directions());
        let settled = self.shared.execute(plan, &envelope, per_recipient).await;
        self.shared
            .metrics
            .processing_time(started.elapsed().as_secs_f64());
        Ok((settled, envelope, message))
    }
}

/// What became of the recipients of one message once every delivery was tried.
struct Settled {
    /// Work that failed before relaying (store or keys unavailable): nothing was relayed,
    /// every recipient gets this answer and the retry delivers each exactly once.
    before_relay: Option<Reply>,
    /// Recipients delivered (or cert-queries handled).
    accepted: usize,
    /// A next hop failed temporarily: (envelope recipient, the recipient at that hop, why).
    temporary: Vec<(String, String, Reply)>,
    refused: Vec<Refusal>,
    /// A next hop refused these recipients.
    permanent: Vec<(String, Reply)>,
}

impl Settled {
    /// One answer per envelope recipient, in order (LMTP, RFC 2033 §4.2).
    fn answers(&self, envelope: &Envelope) -> Vec<Reply> {
        envelope
            .rcpt_to
            .iter()
            .map(|rcpt| {
                if let Some(r) = &self.before_relay {
                    return r.clone();
                }
                if let Some((_, _, r)) = self.temporary.iter().find(|(e, _, _)| e == rcpt) {
                    return r.clone();
                }
                if let Some(r) = self.refused.iter().find(|r| &r.recipient == rcpt) {
                    return Reply::perm_fail(r.error.enhanced(), r.error.to_string());
                }
                if let Some((_, r)) = self.permanent.iter().find(|(p, _)| p == rcpt) {
                    return r.clone();
                }
                Reply::ok()
            })
            .collect()
    }
}

impl Shared {
    fn hop(&self, hop: Hop) -> &NextHop {
        match hop {
            Hop::Inbound => &self.inbound_hop,
            Hop::Outbound => &self.outbound_hop,
            Hop::OutboundTls => &self.tls_hop,
        }
    }

    /// Everything that needs no network: route, decrypt/verify, sign/encrypt, answer queries.
    fn plan(&self, envelope: &Envelope, message: &[u8], now: SystemTime) -> Plan {
        // Only we write verdict headers: whatever arrives claiming to be ours goes, on every
        // route (internal mail too, which is otherwise passed on unchanged).
        let message = &*crate::verdict::strip_incoming(message, &self.config.authserv_id);
        let mut plan = Plan::default();
        let mut inbound = Vec::new();
        let mut outbound = Vec::new();
        let mut internal = Vec::new();
        let mut queries = Vec::new();
        for rcpt in &envelope.rcpt_to {
            match route(&self.config, &envelope.mail_from, rcpt) {
                Route::Inbound => inbound.push(rcpt.clone()),
                Route::Outbound => outbound.push(rcpt.clone()),
                Route::Internal => internal.push(rcpt.clone()),
                Route::CertQuery => queries.push(rcpt.clone()),
                Route::Relay => plan.refused.push(Refusal {
                    recipient: rcpt.clone(),
                    error: PipelineError::Refused(format!(
                        "relaying denied: neither {} nor {rcpt} is an internal address",
                        envelope.mail_from
                    )),
                    direction: Direction::Relay,
                }),
            }
        }

        let inbound_pipeline = Inbound {
            store: &self.store,
            keys: &self.keys,
            authserv_id: &self.config.authserv_id,
        };
        let (groups, temporary) = inbound_pipeline.process_all(&inbound, message, now);
        // The keys of all inbound recipients are loaded together: a failure defers them all.
        plan.temporary
            .extend(temporary.into_iter().map(|error| Deferred {
                recipients: inbound.clone(),
                error,
            }));
        for group in groups {
            let result = group.result;
            if result.outcome == Outcome::Undecryptable {
                self.metrics.failure(CryptoFailure::Undecryptable);
            }
            if let crate::inbound::SmimeResult::Fail { .. } = &result.smime {
                self.metrics.failure(CryptoFailure::SignatureRejected);
            }
            plan.deliveries.push(Delivery {
                hop: Hop::Inbound,
                mail_from: envelope.mail_from.clone(),
                recipients: group.recipients,
                message: Payload::ready(result.message),
                direction: Direction::Inbound,
                outcome: result.outcome,
            });
        }

        if !internal.is_empty() {
            plan.deliveries.push(Delivery {
                hop: Hop::Inbound,
                mail_from: envelope.mail_from.clone(),
                recipients: internal,
                message: Payload::ready(message.to_vec()),
                direction: Direction::Internal,
                outcome: Outcome::Relayed,
            });
        }

        if !outbound.is_empty() {
            self.plan_outbound(envelope, message, outbound, now, &mut plan);
        }

        if !queries.is_empty() {
            plan.query_recipients = queries;
            let responder = CertQuery {
                config: &self.config,
                store: &self.store,
                keys: &self.keys,
                limiter: &self.limiter,
            };
            match responder.handle(&envelope.mail_from, message, now) {
                CertQueryOutcome::Reply {
                    mail_from,
                    rcpt_to,
                    message,
                    kind,
                    reason,
                    allowance,
                } => {
                    plan.cert_query_allowance = Some(allowance);
                    let (reply, outcome) = match kind {
                        crate::cert_query::ReplyKind::Certificate => {
                            (CertQueryReply::Sent, Outcome::CertificateSent)
                        }
                        crate::cert_query::ReplyKind::Refusal => {
                            (CertQueryReply::Refused, Outcome::RefusalSent)
                        }
                    };
                    if let Some(reason) = reason {
                        tracing::info!(requester = %rcpt_to, %reason, "cert-query refused");
                    }
                    self.metrics.cert_query_reply(reply);
                    plan.deliveries.push(Delivery {
                        hop: Hop::Outbound,
                        mail_from,
                        recipients: vec![rcpt_to],
                        message: Payload::ready(message),
                        direction: Direction::CertQuery,
                        outcome,
                    });
                }
                CertQueryOutcome::NoReply { reason } => {
                    tracing::info!(%reason, "cert-query not answered");
                    self.metrics.cert_query_reply(CertQueryReply::NotAnswered);
                    self.metrics
                        .message(Direction::CertQuery, Outcome::NotAnswered);
                }
                CertQueryOutcome::TemporaryFailure { reason } => plan.temporary.push(Deferred {
                    recipients: plan.query_recipients.clone(),
                    error: PipelineError::Temporary(reason),
                }),
            }
        }
        plan
    }

    /// The outbound stage's deliveries and refusals, into the plan.
    fn plan_outbound(
        &self,
        envelope: &Envelope,
        message: &[u8],
        recipients: Vec<String>,
        now: SystemTime,
        plan: &mut Plan,
    ) {
        let pipeline = Outbound {
            config: &self.config,
            store: &self.store,
            keys: &self.keys,
        };
        let outbound = pipeline.process(envelope, message, recipients, now);
        for delivery in outbound.deliveries {
            plan.deliveries.push(Delivery {
                hop: if delivery.over_tls {
                    Hop::OutboundTls
                } else {
                    Hop::Outbound
                },
                mail_from: envelope.mail_from.clone(),
                recipients: delivery.recipients,
                message: delivery.payload,
                direction: Direction::Outbound,
                outcome: delivery.outcome,
            });
        }
        for (recipient, error) in outbound.refused {
            self.count_failure(&error);
            plan.refused.push(Refusal {
                recipient,
                error,
                direction: Direction::Outbound,
            });
        }
        for (recipients, error) in outbound.deferred {
            self.count_failure(&error);
            plan.temporary.push(Deferred { recipients, error });
        }
    }

    fn count_failure(&self, error: &PipelineError) {
        if let Some(failure) = error.crypto_failure() {
            self.metrics.failure(failure);
        }
    }

    /// A cert-query reply the next hop did not take was not sent: it must not count.
    fn release_cert_query_allowance(&self, plan: &mut Plan, direction: Direction) {
        if direction == Direction::CertQuery {
            if let Some(allowance) = plan.cert_query_allowance.take() {
                self.limiter.release(&allowance);
            }
        }
    }

    /// Relay the planned deliveries and collect what became of each recipient.
    /// `per_recipient` (LMTP): recipients whose processing failed temporarily are answered on
    /// their own and the others relayed; otherwise (SMTP) nothing is relayed then.
    async fn execute(&self, mut plan: Plan, envelope: &Envelope, per_recipient: bool) -> Settled {
        let mut settled = Settled {
            before_relay: None,
            accepted: plan.query_recipients.len(),
            temporary: Vec::new(),
            refused: Vec::new(),
            permanent: Vec::new(),
        };
        let deferred = std::mem::take(&mut plan.temporary);
        if !deferred.is_empty() {
            let reasons: Vec<String> = deferred.iter().map(|d| d.error.to_string()).collect();
            tracing::warn!(
                ?reasons,
                "temporary failure before relaying; upstream will retry"
            );
            if !per_recipient {
                // One answer for all: relay nothing, so the upstream MTA's retry delivers
                // every recipient exactly once.
                settled.before_relay = Some(Reply::temp_fail(
                    status::TEMPORARY_LOCAL,
                    format!("temporary failure, try again later: {}", reasons.join("; ")),
                ));
                return settled;
            }
            // One answer each: only these are retried; the others are relayed now.
            for d in deferred {
                let reply = Reply::temp_fail(
                    status::TEMPORARY_LOCAL,
                    format!("temporary failure, try again later: {}", d.error),
                );
                for rcpt in d.recipients {
                    settled.temporary.push((rcpt.clone(), rcpt, reply.clone()));
                }
            }
        }
        let no_params = crate::receive::MailParams::default();
        let deliveries = std::mem::take(&mut plan.deliveries);
        for delivery in &deliveries {
            let bytes = match self.payload(&delivery.message).await {
                Ok(b) => b,
                Err(error) if error.is_temporary() => {
                    let reply = Reply::temp_fail(
                        error.enhanced(),
                        format!("temporary failure, try again later: {error}"),
                    );
                    for rcpt in &delivery.recipients {
                        settled
                            .temporary
                            .push((rcpt.clone(), rcpt.clone(), reply.clone()));
                    }
                    continue;
                }
                Err(error) => {
                    self.count_failure(&error);
                    for rcpt in &delivery.recipients {
                        plan.refused.push(Refusal {
                            recipient: rcpt.clone(),
                            error: error.clone(),
                            direction: delivery.direction,
                        });
                    }
                    continue;
                }
            };
            let is_query_reply = delivery.direction == Direction::CertQuery;
            // The sender's DSN requests travel with its own recipients, not with a
            // cert-query reply we originate.
            let rcpt_params: Vec<_> = if is_query_reply {
                Vec::new()
            } else {
                delivery
                    .recipients
                    .iter()
                    .map(|r| envelope.rcpt_params(r).cloned().unwrap_or_default())
                    .collect()
            };
            let transfer = relay::Transfer {
                content: delivery.content(&self.config),
                mail_from: &delivery.mail_from,
                mail: if is_query_reply {
                    &no_params
                } else {
                    &envelope.params
                },
                recipients: &delivery.recipients,
                rcpt: &rcpt_params,
                grown_by: (delivery.outcome == Outcome::Encrypted).then_some("encryption"),
                message: &bytes,
            };
            let report = relay::deliver_transfer(self.hop(delivery.hop), &transfer).await;
            for (rcpt, outcome) in report.per_recipient {
                match outcome {
                    RecipientOutcome::Accepted => {
                        settled.accepted += 1;
                        self.metrics.message(delivery.direction, delivery.outcome);
                    }
                    RecipientOutcome::TempFailed(reply) => {
                        self.metrics.message(delivery.direction, Outcome::Tempfail);
                        self.release_cert_query_allowance(&mut plan, delivery.direction);
                        // A cert-query reply that could not be sent is retried through the
                        // request: its recipients are the ones to retry.
                        let affected = if is_query_reply {
                            plan.query_recipients.clone()
                        } else {
                            vec![rcpt.clone()]
                        };
                        for envelope_rcpt in affected {
                            settled
                                .temporary
                                .push((envelope_rcpt, rcpt.clone(), reply.clone()));
                        }
                    }
                    RecipientOutcome::PermFailed(reply) => {
                        self.metrics
                            .message(delivery.direction, Outcome::NextHopRefused);
                        self.release_cert_query_allowance(&mut plan, delivery.direction);
                        // A refused cert-query reply must not bounce the request itself.
                        if !is_query_reply {
                            settled.permanent.push((rcpt, reply));
                        }
                    }
                }
            }
        }
        for r in &plan.refused {
            self.metrics.message(r.direction, Outcome::Refused);
        }
        settled.refused = plan.refused;
        settled
    }

    /// The one SMTP answer for all recipients: `4xx` when any must be retried (a retry may
    /// deliver again to the others: a duplicate is preferred to a loss), `5xx` when all were
    /// refused, else `250` with a DSN to the sender for the refused ones.
    async fn smtp_answer(&self, settled: Settled, envelope: &Envelope, original: &[u8]) -> Reply {
        if let Some(reply) = settled.before_relay {
            return reply;
        }
        if !settled.temporary.is_empty() {
            let reasons: Vec<String> = settled
                .temporary
                .iter()
                .map(|(_, rcpt, reply)| format!("{rcpt}: {}", reply.text))
                .collect();
            tracing::warn!(?reasons, "temporary failure; upstream will retry");
            // A temporary failure here is a next hop's (4.4.1); our own (store, keys) was
            // answered before relaying with 4.3.0.
            return Reply::temp_fail(
                "4.4.1",
                format!("temporary failure, try again later: {}", reasons.join("; ")),
            );
        }
        let refused_count = settled.refused.len() + settled.permanent.len();
        if settled.accepted == 0 && refused_count > 0 {
            return refusal_reply(&settled.refused, &settled.permanent);
        }
        if refused_count > 0 {
            self.send_dsn(envelope, original, &settled.refused, &settled.permanent)
                .await;
        }
        Reply::ok()
    }

    /// The bytes of a delivery, encrypting (on a crypto thread) when it is due.
    async fn payload(&self, payload: &Payload) -> Result<Arc<Vec<u8>>, PipelineError> {
        if let Payload::Ready(bytes) = payload {
            return Ok(bytes.clone());
        }
        let Ok(_permit) = self.cpu.acquire().await else {
            return Err(PipelineError::Temporary("shutting down".into()));
        };
        let payload = payload.clone();
        let crypto = self.keys.crypto();
        tokio::task::spawn_blocking(move || payload.bytes(crypto))
            .await
            .map_err(|e| PipelineError::EncryptFailed(format!("encryption failed: {e}")))?
    }

    /// Tell the sender which recipients were refused (others were delivered). `original` is
    /// the message as received (inbound: still encrypted), never a decrypted result, and only
    /// its headers are quoted: the notice goes back outside.
    async fn send_dsn(
        &self,
        envelope: &Envelope,
        original: &[u8],
        refused: &[Refusal],
        permanent: &[(String, Reply)],
    ) {
        let mail_from = envelope.mail_from.as_str();
        if mail_from.is_empty() {
            return; // never answer a bounce with a bounce
        }
        // NOTIFY=NEVER (or without FAILURE): the sender asked not to be told.
        let wanted = |rcpt: &str| {
            envelope
                .rcpt_params(rcpt)
                .is_none_or(|p| p.wants_failure_notice())
        };
        let original_recipient = |rcpt: &str| {
            envelope
                .rcpt_params(rcpt)
                .and_then(|p| p.original_recipient())
        };
        let refused: Vec<&Refusal> = refused.iter().filter(|r| wanted(&r.recipient)).collect();
        let permanent: Vec<&(String, Reply)> =
            permanent.iter().filter(|(r, _)| wanted(r)).collect();
        if refused.is_empty() && permanent.is_empty() {
            return;
        }
        let mut failed: Vec<FailedRecipient> = refused
            .iter()
            .map(|r| FailedRecipient {
                address: r.recipient.clone(),
                status: r.error.enhanced().to_string(),
                diagnostic: format!("550 {} {}", r.error.enhanced(), r.error),
                reason: r.error.to_string(),
                original_recipient: original_recipient(&r.recipient),
            })
            .collect();
        failed.extend(permanent.iter().map(|(rcpt, reply)| FailedRecipient {
            address: rcpt.clone(),
            status: if reply.enhanced.is_empty() {
                status::PERMANENT_UNSPECIFIED.into()
            } else {
                reply.enhanced.clone()
            },
            diagnostic: reply.to_string(),
            reason: format!("the receiving system refused it: {}", reply.text),
            original_recipient: original_recipient(rcpt),
        }));
        let request = DsnRequest {
            reporting_mta: &self.config.hostname,
            from: &self.config.postmaster_address,
            original_sender: mail_from,
            original_message: original,
            failed: &failed,
            arrival_date: None,
            envelope_id: envelope.params.envid.as_deref(),
        };
        let dsn = match build_dsn(&request, time::OffsetDateTime::now_utc()) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the DSN");
                return;
            }
        };
        let internal_sender = crate::address::domain_of(mail_from)
            .is_some_and(|d| self.config.is_internal_domain(&d));
        let hop = if internal_sender {
            &self.inbound_hop
        } else {
            &self.outbound_hop
        };
        let report = relay::deliver(
            hop,
            &dsn.mail_from,
            std::slice::from_ref(&dsn.rcpt_to),
            &dsn.message,
        )
        .await;
        if !report.all_accepted() {
            // The message itself was handled; the notice is what could not be sent.
            tracing::error!(sender = mail_from, outcome = ?report.per_recipient, "DSN could not be delivered");
        }
    }
}

/// Every recipient refused: one answer that names each reason.
fn refusal_reply(refused: &[Refusal], permanent: &[(String, Reply)]) -> Reply {
    if let ([], [(_, reply)]) = (refused, permanent) {
        return reply.clone();
    }
    if let ([only], []) = (refused, permanent) {
        return Reply::perm_fail(only.error.enhanced(), only.error.to_string());
    }
    let mut lines: Vec<String> = refused
        .iter()
        .map(|r| format!("{}: {}", r.recipient, r.error))
        .collect();
    lines.extend(
        permanent
            .iter()
            .map(|(rcpt, reply)| format!("{rcpt}: {}", reply.text)),
    );
    Reply::perm_fail(status::REFUSED_BY_POLICY, lines.join("\n"))
}
