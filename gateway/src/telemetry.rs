//! What the gateway counts, in one place: metric families whose labels are enums (a sender can
//! never create a label value), kept with `prometheus-client` and rendered as OpenMetrics text.
//! The admin API only serves that text ([`admin_api::MetricsSource`]): the mail flow does not
//! depend on the HTTP crate for its counters.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds (seconds) of the processing-time histogram buckets.
pub const PROCESSING_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Label enums are written as their `as_label()` text.
macro_rules! label_value {
    ($t:ty) => {
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                std::fmt::Write::write_str(encoder, self.as_label())
            }
        }
    };
}

/// Which way a message (or one copy of it) went.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Direction {
    /// From a partner to staff: decrypt, verify.
    Inbound,
    /// From staff to a partner: sign, encrypt.
    Outbound,
    /// A request to the cert-query address and its reply.
    CertQuery,
    /// Between internal addresses: passed on untouched.
    Internal,
    /// Neither side internal: refused.
    Relay,
}

impl Direction {
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::CertQuery => "cert-query",
            Self::Internal => "internal",
            Self::Relay => "relay",
        }
    }
}
label_value!(Direction);

/// What became of a message (or one copy of it).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Inbound, decrypted (and verified where signed).
    Decrypted,
    /// Inbound, encrypted but not for any key we hold: delivered as it came, with the reason.
    Undecryptable,
    /// Inbound, signed but not encrypted.
    Signed,
    /// Inbound, neither encrypted nor signed.
    Plain,
    /// Inbound, an S/MIME structure that could not be read.
    Malformed,
    /// Internal mail, passed on.
    Relayed,
    /// Outbound, signed and encrypted.
    Encrypted,
    /// Outbound, signed and sent over verified TLS (domains approved `tls`).
    SignedTls,
    /// Outbound, in clear (policy allowed it).
    Plaintext,
    /// A cert-query reply carrying the certificate.
    CertificateSent,
    /// A cert-query reply refusing the request, signed.
    RefusalSent,
    /// A cert-query request deliberately not answered.
    NotAnswered,
    /// Refused by policy (5xx to the sender or a DSN).
    Refused,
    /// The next hop answered 4xx: the upstream MTA retries.
    Tempfail,
    /// The next hop answered 5xx.
    NextHopRefused,
}

impl Outcome {
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Decrypted => "decrypted",
            Self::Undecryptable => "undecryptable",
            Self::Signed => "signed",
            Self::Plain => "plain",
            Self::Malformed => "malformed",
            Self::Relayed => "relayed",
            Self::Encrypted => "encrypted",
            Self::SignedTls => "signed-tls",
            Self::Plaintext => "plaintext",
            Self::CertificateSent => "sent",
            Self::RefusalSent => "refused",
            Self::NotAnswered => "not-answered",
            Self::Refused => "refused",
            Self::Tempfail => "tempfail",
            Self::NextHopRefused => "next-hop-refused",
        }
    }
}
label_value!(Outcome);

/// A failed cryptographic operation, as counted: the operation and a reason from a closed set
/// (the free-text reason goes to the log, not to a label).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
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

    fn operation(self) -> Operation {
        match self {
            Self::Undecryptable => Operation::Decrypt,
            Self::SignatureRejected => Operation::Verify,
            Self::SignFailed => Operation::Sign,
            Self::EncryptFailed => Operation::Encrypt,
        }
    }

    pub fn as_label(self) -> &'static str {
        match self {
            Self::Undecryptable => "undecryptable",
            Self::SignatureRejected => "signature-rejected",
            Self::SignFailed => "sign-failed",
            Self::EncryptFailed => "encrypt-failed",
        }
    }
}
label_value!(CryptoFailure);

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Operation {
    Decrypt,
    Verify,
    Sign,
    Encrypt,
}

impl Operation {
    fn as_label(self) -> &'static str {
        match self {
            Self::Decrypt => "decrypt",
            Self::Verify => "verify",
            Self::Sign => "sign",
            Self::Encrypt => "encrypt",
        }
    }
}
label_value!(Operation);

/// What became of a cert-query request.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum CertQueryReply {
    /// The certificate was sent.
    Sent,
    /// A signed refusal was sent.
    Refused,
    /// No mail was sent (unsigned or unverifiable request, rate limit, nothing to send).
    NotAnswered,
}

impl CertQueryReply {
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Refused => "refused",
            Self::NotAnswered => "not-answered",
        }
    }
}
label_value!(CertQueryReply);

/// Which certificates a store figure counts.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum CertificateKind {
    Partner,
    Proxy,
}

impl CertificateKind {
    fn as_label(self) -> &'static str {
        match self {
            Self::Partner => "partner",
            Self::Proxy => "proxy",
        }
    }
}
label_value!(CertificateKind);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    direction: Direction,
    outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    operation: Operation,
    reason: CryptoFailure,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplyLabels {
    outcome: CertQueryReply,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: CertificateKind,
}

/// Gateway metrics. Create once with [`Metrics::new`] and share the `Arc`. Recording is an
/// atomic add (the families hold one entry per label combination, a closed set).
pub struct Metrics {
    registry: Registry,
    messages: Family<MessageLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    cert_query_replies: Family<ReplyLabels, Counter>,
    processing: Histogram,
    store_readable: Gauge,
    certificates_stored: Family<KindLabels, Gauge>,
    partner_addresses: Gauge,
    proxy_addresses: Gauge,
    approved_domains: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> std::sync::Arc<Metrics> {
        let mut registry = Registry::with_prefix("smime_gateway");
        let messages = Family::<MessageLabels, Counter>::default();
        registry.register(
            "messages",
            "Messages processed, by direction and outcome",
            messages.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "crypto_failures",
            "Failed decrypt/verify/sign/encrypt operations, by reason",
            failures.clone(),
        );
        let cert_query_replies = Family::<ReplyLabels, Counter>::default();
        registry.register(
            "cert_query_replies",
            "cert-query auto-responder replies, by outcome",
            cert_query_replies.clone(),
        );
        let processing = Histogram::new(PROCESSING_BUCKETS);
        registry.register_with_unit(
            "processing",
            "Time to process one message",
            Unit::Seconds,
            processing.clone(),
        );
        let store_readable = Gauge::default();
        registry.register(
            "store_readable",
            "1 if the certificate store could be read for the store figures (0: they are stale)",
            store_readable.clone(),
        );
        let certificates_stored = Family::<KindLabels, Gauge>::default();
        registry.register(
            "certificates_stored",
            "Certificates in the store (partner: every captured one, history included; proxy: every key ever issued)",
            certificates_stored.clone(),
        );
        let partner_addresses = Gauge::default();
        registry.register(
            "partner_addresses",
            "Partner addresses with captured certificates",
            partner_addresses.clone(),
        );
        let proxy_addresses = Gauge::default();
        registry.register(
            "proxy_addresses",
            "Internal addresses with proxy certificates",
            proxy_addresses.clone(),
        );
        let approved_domains = Gauge::default();
        registry.register(
            "approved_domains",
            "Approved partner domains",
            approved_domains.clone(),
        );
        std::sync::Arc::new(Metrics {
            registry,
            messages,
            failures,
            cert_query_replies,
            processing,
            store_readable,
            certificates_stored,
            partner_addresses,
            proxy_addresses,
            approved_domains,
        })
    }

    /// A message (or one copy of it) finished.
    pub fn message(&self, direction: Direction, outcome: Outcome) {
        self.messages
            .get_or_create(&MessageLabels { direction, outcome })
            .inc();
    }

    /// A cryptographic operation failed.
    pub fn failure(&self, failure: CryptoFailure) {
        self.failures
            .get_or_create(&FailureLabels {
                operation: failure.operation(),
                reason: failure,
            })
            .inc();
    }

    /// A cert-query request was answered (or deliberately not).
    pub fn cert_query_reply(&self, outcome: CertQueryReply) {
        self.cert_query_replies
            .get_or_create(&ReplyLabels { outcome })
            .inc();
    }

    /// Time spent processing one message. Negative or NaN values are ignored.
    pub fn processing_time(&self, seconds: f64) {
        if seconds.is_nan() || seconds < 0.0 {
            return;
        }
        self.processing.observe(seconds);
    }

    /// OpenMetrics text, with the store figures read now. Reads the store (blocking, sled):
    /// call from a blocking context. When the store cannot be read, its figures keep their
    /// last values and `smime_gateway_store_readable` is 0.
    pub fn render(&self, store: &certstore::Store) -> String {
        match store_figures(store) {
            Ok(f) => {
                self.store_readable.set(1);
                self.certificates_stored
                    .get_or_create(&KindLabels {
                        kind: CertificateKind::Partner,
                    })
                    .set(f.partner_certificates);
                self.certificates_stored
                    .get_or_create(&KindLabels {
                        kind: CertificateKind::Proxy,
                    })
                    .set(f.proxy_certificates);
                self.partner_addresses.set(f.partner_addresses);
                self.proxy_addresses.set(f.proxy_addresses);
                self.approved_domains.set(f.approved_domains);
            }
            Err(e) => {
                tracing::warn!("metrics: certificate store not readable: {e}");
                self.store_readable.set(0);
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("metrics could not be encoded: {e}");
        }
        out
    }
}

impl admin_api::MetricsSource for Metrics {
    fn render(&self, store: &certstore::Store) -> String {
        Metrics::render(self, store)
    }
}

/// Figures read from the store: certificates and approvals.
struct StoreFigures {
    partner_certificates: i64,
    partner_addresses: i64,
    proxy_certificates: i64,
    proxy_addresses: i64,
    approved_domains: i64,
}

fn store_figures(store: &certstore::Store) -> Result<StoreFigures, certstore::StoreError> {
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let partners = store.partner_counts();
    let proxies = store.proxy_addresses()?;
    Ok(StoreFigures {
        partner_certificates: count(partners.certificates),
        partner_addresses: count(partners.addresses),
        proxy_certificates: count(proxies.iter().map(|p| p.key_count).sum()),
        proxy_addresses: count(proxies.len()),
        approved_domains: count(store.domains()?.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, certstore::Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = certstore::Store::open(
            dir.path(),
            certstore::StoreConfig {
                use_system_trust: false,
                ..Default::default()
            },
        )
        .unwrap();
        (dir, store)
    }

    #[test]
    fn counts_histogram_and_store_figures() {
        let (_dir, store) = store();
        let m = Metrics::new();
        m.message(Direction::Inbound, Outcome::Decrypted);
        m.message(Direction::Inbound, Outcome::Decrypted);
        m.message(Direction::Outbound, Outcome::Refused);
        m.failure(CryptoFailure::Undecryptable);
        m.cert_query_reply(CertQueryReply::Sent);
        m.processing_time(0.02);
        m.processing_time(100.0);
        m.processing_time(f64::NAN);
        m.processing_time(-1.0);
        let text = m.render(&store);
        for line in [
            "smime_gateway_messages_total{direction=\"inbound\",outcome=\"decrypted\"} 2",
            "smime_gateway_messages_total{direction=\"outbound\",outcome=\"refused\"} 1",
            "smime_gateway_crypto_failures_total{operation=\"decrypt\",reason=\"undecryptable\"} 1",
            "smime_gateway_cert_query_replies_total{outcome=\"sent\"} 1",
            "smime_gateway_processing_seconds_bucket{le=\"0.01\"} 0",
            "smime_gateway_processing_seconds_bucket{le=\"0.025\"} 1",
            "smime_gateway_processing_seconds_bucket{le=\"30.0\"} 1",
            "smime_gateway_processing_seconds_bucket{le=\"+Inf\"} 2",
            "smime_gateway_processing_seconds_count 2",
            "smime_gateway_processing_seconds_sum 100.02",
            "smime_gateway_certificates_stored{kind=\"partner\"} 0",
            "smime_gateway_store_readable 1",
            "# TYPE smime_gateway_processing_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn label_values_come_from_a_closed_set() {
        // Issue 11: failure reasons used to be free text (a sender could add label values).
        let (_dir, store) = store();
        let m = Metrics::new();
        for _ in 0..3 {
            for failure in CryptoFailure::ALL {
                m.failure(failure);
            }
        }
        let text = m.render(&store);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("smime_gateway_crypto_failures_total{"))
            .collect();
        assert_eq!(lines.len(), CryptoFailure::ALL.len(), "{text}");
        assert!(lines.iter().all(|l| l.ends_with(" 3")), "{text}");
    }
}
