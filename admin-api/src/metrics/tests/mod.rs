use super::*;

#[test]
fn counts_histogram_and_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let store = certstore::Store::open(
        dir.path(),
        certstore::StoreConfig {
            use_system_trust: false,
            ..Default::default()
        },
    )
    .unwrap();
    let m = Metrics::new();
    m.message("inbound", "delivered");
    m.message("inbound", "delivered");
    m.message("outbound", "refused");
    m.failure(CryptoFailure::Undecryptable);
    m.cert_query_reply(CertQueryReply::Sent);
    m.processing_time(0.02);
    m.processing_time(100.0);
    m.processing_time(f64::NAN);
    m.processing_time(-1.0);
    let text = m.render(&store);
    assert!(text
        .contains("smime_gateway_messages_total{direction=\"inbound\",outcome=\"delivered\"} 2"));
    assert!(text.contains(
        "smime_gateway_crypto_failures_total{operation=\"decrypt\",reason=\"undecryptable\"} 1"
    ));
    assert!(text.contains("smime_gateway_cert_query_replies_total{outcome=\"sent\"} 1"));
    assert!(text.contains("smime_gateway_processing_seconds_bucket{le=\"0.01\"} 0"));
    assert!(text.contains("smime_gateway_processing_seconds_bucket{le=\"0.025\"} 1"));
    assert!(text.contains("smime_gateway_processing_seconds_bucket{le=\"30\"} 1"));
    assert!(text.contains("smime_gateway_processing_seconds_bucket{le=\"+Inf\"} 2"));
    assert!(text.contains("smime_gateway_processing_seconds_count 2"));
    assert!(text.contains("smime_gateway_processing_seconds_sum 100.02"));
    assert!(text.contains("smime_gateway_certificates_stored{kind=\"partner\"} 0"));
    assert!(text.contains("smime_gateway_store_readable 1"));
}

#[test]
fn label_values_come_from_a_closed_set() {
    // Issue 11: failure reasons used to be free text (a sender could add label values).
    let m = Metrics::new();
    for _ in 0..3 {
        for failure in CryptoFailure::ALL {
            m.failure(failure);
        }
    }
    let snap = m.failures.snapshot();
    assert_eq!(snap.len(), CryptoFailure::ALL.len());
    assert!(snap.iter().all(|(_, n)| *n == 3));
    assert_eq!(escape_label("a\"b\\\n"), "a\\\"b\\\\\\n");
}
