//! Counters shared with the SMTP gateway and their Prometheus text rendering.
//!
//! Recording is cheap and never blocks for long: labelled counters live in small maps behind
//! a mutex held only for an increment; the histogram is lock-free atomics. Every label value
//! comes from a closed set (an enum, or a `&'static str` written in the code), never from a
//! message: a sender cannot create label values, so the maps stay small by construction.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Upper bounds (seconds) of the processing-time histogram buckets.
pub const PROCESSING_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A failed cryptographic operation, as counted: the operation and a reason from a closed set
/// (the free-text reason goes to the log, not to a label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoFailure {
    /// An inbound message could not be decrypted.
    Undecryptable,
    /// An inbound signature did not verify or its certificate was refused.
    SignatureRejected,
    /// Signing an outbound message failed.
    SignFailed,
    /// Encrypting an outbound message failed.
    EncryptFailed,
}

impl CryptoFailure {
    pub const ALL: [CryptoFailure; 4] = [
        Self::Undecryptable,
        Self::SignatureRejected,
        Self::SignFailed,
        Self::EncryptFailed,
    ];

    fn labels(self) -> [&'static str; 2] {
        match self {
            Self::Undecryptable => ["decrypt", "undecryptable"],
            Self::SignatureRejected => ["verify", "signature-rejected"],
            Self::SignFailed => ["sign", "sign-failed"],
            Self::EncryptFailed => ["encrypt", "encrypt-failed"],
        }
    }
}

/// What became of a cert-query request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertQueryReply {
    /// The certificate was sent.
    Sent,
    /// A signed refusal was sent.
    Refused,
    /// No mail was sent (unsigned or unverifiable request, rate limit, nothing to send).
    NotAnswered,
}

impl CertQueryReply {
    fn label(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Refused => "refused",
            Self::NotAnswered => "not-answered",
        }
    }
}

/// Counters keyed by label values, all `'static`: written in the code, never taken from input.
#[derive(Default)]
struct LabelledCounter {
    values: Mutex<BTreeMap<Vec<&'static str>, u64>>,
}

impl LabelledCounter {
    fn inc(&self, labels: &[&'static str]) {
        let mut map = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry(labels.to_vec()).or_insert(0) += 1;
    }

    fn snapshot(&self) -> Vec<(Vec<&'static str>, u64)> {
        let map = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// Gateway metrics. Create once with [`Metrics::new`] and share the `Arc`.
pub struct Metrics {
    messages: LabelledCounter,
    failures: LabelledCounter,
    cert_query_replies: LabelledCounter,
    /// Cumulative counts per bucket of [`PROCESSING_BUCKETS`], then +Inf.
    processing_buckets: [AtomicU64; PROCESSING_BUCKETS.len() + 1],
    processing_count: AtomicU64,
    /// Sum of observations in microseconds (an integer so it can be atomic).
    processing_sum_micros: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics {
            messages: LabelledCounter::default(),
            failures: LabelledCounter::default(),
            cert_query_replies: LabelledCounter::default(),
            processing_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            processing_count: AtomicU64::new(0),
            processing_sum_micros: AtomicU64::new(0),
        })
    }

    /// A message finished: `direction` inbound|outbound|cert-query, `outcome`
    /// delivered|refused|tempfail|undecryptable|... (constants of the code, never input).
    pub fn message(&self, direction: &'static str, outcome: &'static str) {
        self.messages.inc(&[direction, outcome]);
    }

    /// A cryptographic operation failed.
    pub fn failure(&self, failure: CryptoFailure) {
        self.failures.inc(&failure.labels());
    }

    /// A cert-query request was answered (or deliberately not).
    pub fn cert_query_reply(&self, outcome: CertQueryReply) {
        self.cert_query_replies.inc(&[outcome.label()]);
    }

    /// Time spent processing one message. Negative or NaN values are ignored.
    pub fn processing_time(&self, seconds: f64) {
        if seconds.is_nan() || seconds < 0.0 {
            return;
        }
        for (i, bound) in PROCESSING_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                if let Some(b) = self.processing_buckets.get(i) {
                    b.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(inf) = self.processing_buckets.last() {
            inf.fetch_add(1, Ordering::Relaxed);
        }
        self.processing_count.fetch_add(1, Ordering::Relaxed);
        // Saturating conversion: absurd values cannot wrap the sum.
        let micros = (seconds * 1e6).min(u64::MAX as f64) as u64;
        self.processing_sum_micros
            .fetch_add(micros, Ordering::Relaxed);
    }

    /// Prometheus text exposition format (version 0.0.4), including store gauges. Reads the
    /// store (blocking, sled): call from a blocking context. Store figures that cannot be read
    /// are left out and `smime_gateway_store_readable` says so.
    pub fn render(&self, store: &certstore::Store) -> String {
        let mut out = String::new();
        counter(
            &mut out,
            "smime_gateway_messages_total",
            "Messages processed, by direction and outcome.",
            &["direction", "outcome"],
            &self.messages.snapshot(),
        );
        counter(
            &mut out,
            "smime_gateway_crypto_failures_total",
            "Failed decrypt/verify/sign/encrypt operations, by reason.",
            &["operation", "reason"],
            &self.failures.snapshot(),
        );
        counter(
            &mut out,
            "smime_gateway_cert_query_replies_total",
            "cert-query auto-responder replies, by outcome.",
            &["outcome"],
            &self.cert_query_replies.snapshot(),
        );
        self.render_histogram(&mut out);
        render_store(&mut out, store);
        out
    }

    fn render_histogram(&self, out: &mut String) {
        let name = "smime_gateway_processing_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to process one message, in seconds."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, bound) in PROCESSING_BUCKETS.iter().enumerate() {
            let n = self
                .processing_buckets
                .get(i)
                .map_or(0, |b| b.load(Ordering::Relaxed));
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let inf = self
            .processing_buckets
            .last()
            .map_or(0, |b| b.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {inf}");
        let sum = self.processing_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(
            out,
            "{name}_count {}",
            self.processing_count.load(Ordering::Relaxed)
        );
    }
}

/// Figures read from the store: certificates and approvals.
struct StoreFigures {
    partner_certificates: u64,
    partner_addresses: u64,
    proxy_certificates: u64,
    proxy_addresses: u64,
    approved_domains: u64,
}

fn store_figures(store: &certstore::Store) -> Result<StoreFigures, certstore::StoreError> {
    let partners = store.partner_counts();
    let proxies = store.proxy_addresses()?;
    Ok(StoreFigures {
        partner_certificates: partners.certificates as u64,
        partner_addresses: partners.addresses as u64,
        proxy_certificates: proxies.iter().map(|p| p.key_count as u64).sum(),
        proxy_addresses: proxies.len() as u64,
        approved_domains: store.domains()?.len() as u64,
    })
}

fn render_store(out: &mut String, store: &certstore::Store) {
    let figures = store_figures(store);
    gauge(
        out,
        "smime_gateway_store_readable",
        "1 if the certificate store could be read for these figures.",
        "",
        u64::from(figures.is_ok()),
    );
    let f = match figures {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("metrics: certificate store not readable: {e}");
            return;
        }
    };
    let name = "smime_gateway_certificates_stored";
    let _ = writeln!(
        out,
        "# HELP {name} Certificates in the store (partner: every captured one, history included; proxy: every key ever issued)."
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name}{{kind=\"partner\"}} {}", f.partner_certificates);
    let _ = writeln!(out, "{name}{{kind=\"proxy\"}} {}", f.proxy_certificates);
    gauge(
        out,
        "smime_gateway_partner_addresses",
        "Partner addresses with captured certificates.",
        "",
        f.partner_addresses,
    );
    gauge(
        out,
        "smime_gateway_proxy_addresses",
        "Internal addresses with proxy certificates.",
        "",
        f.proxy_addresses,
    );
    gauge(
        out,
        "smime_gateway_approved_domains",
        "Approved partner domains.",
        "",
        f.approved_domains,
    );
}

fn gauge(out: &mut String, name: &str, help: &str, labels: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name}{labels} {value}");
}

fn counter(
    out: &mut String,
    name: &str,
    help: &str,
    label_names: &[&str],
    values: &[(Vec<&'static str>, u64)],
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (labels, value) in values {
        let rendered: Vec<String> = label_names
            .iter()
            .zip(labels)
            .map(|(n, v)| format!("{n}=\"{}\"", escape_label(v)))
            .collect();
        let _ = writeln!(out, "{name}{{{}}} {value}", rendered.join(","));
    }
}

/// Label values escape backslash, double quote and line feed (exposition format rules).
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests;
