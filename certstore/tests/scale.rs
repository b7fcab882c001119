#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Thousands of certificates: look-ups must stay fast. Prints the measured figures.
//! Size with CERTSTORE_SCALE_CERTS (default 3000 certificates over 1000 addresses).

mod common;

use std::time::{Duration, Instant, SystemTime};

use certstore::{CaptureOutcome, DomainPolicy, PartnerCapture};
use common::build::{key, leaf, spki, subject_of};
use common::{intermediate, open_approved};

fn per_op(total: Duration, n: usize) -> String {
    format!("{:.1} µs", total.as_secs_f64() * 1e6 / n as f64)
}

#[test]
fn lookups_stay_fast_with_thousands_of_certificates() {
    let n: usize = std::env::var("CERTSTORE_SCALE_CERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let per_address = 3;
    let addresses = n / per_address;
    let (_d, store) = open_approved();
    for d in 0..17 {
        store
            .approve_domain(&format!("d{d}.example"), DomainPolicy::Smime, "test", "")
            .unwrap();
    }
    let ik = key("ca/partner-intermediate.key");
    let issuer = subject_of(&intermediate());
    let leaf_spki = spki(&key("partner/alice.key"));

    let t = Instant::now();
    let certs: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let addr = format!("p{}@d{}.example", i % addresses, i % 17);
            (
                addr.clone(),
                leaf(10_000 + i as u64, &addr, &issuer, &ik, leaf_spki.clone()),
            )
        })
        .collect();
    let build = t.elapsed();

    let t = Instant::now();
    let mut fps = Vec::with_capacity(n);
    for (addr, cert) in &certs {
        let out = store
            .capture_partner_certificate(&PartnerCapture {
                address: addr.clone(),
                certificate_der: cert.clone(),
                chain_der: vec![intermediate()],
                message_id: None,
                seen_at: SystemTime::now(),
                capabilities: Vec::new(),
            })
            .unwrap();
        let CaptureOutcome::Stored {
            fingerprint,
            new: true,
            status,
            recorded: true,
        } = out
        else {
            panic!("{out:?}")
        };
        assert!(status.is_valid(), "{status:?}");
        fps.push(fingerprint);
    }
    let capture = t.elapsed();

    let probes = 500.min(addresses);
    let t = Instant::now();
    for i in 0..probes {
        let addr = format!("p{}@d{}.example", i, i % 17);
        assert!(
            store.current_partner_certificate(&addr).unwrap().is_some(),
            "{addr}"
        );
    }
    let current = t.elapsed();

    let t = Instant::now();
    for i in 0..probes {
        let addr = format!("p{}@d{}.example", i, i % 17);
        assert!(!store.partner_history(&addr).unwrap().is_empty());
    }
    let history = t.elapsed();

    let t = Instant::now();
    for fp in fps.iter().step_by((n / probes).max(1)).take(probes) {
        assert!(store
            .partner_certificate_by_fingerprint(fp)
            .unwrap()
            .is_some());
    }
    let by_fp = t.elapsed();

    let t = Instant::now();
    let page = store.partner_addresses(Some("d3.example"), 20, 50).unwrap();
    let listing = t.elapsed();
    assert_eq!(page.len(), 50);

    eprintln!(
        "scale: {n} certificates, {addresses} addresses ({per_address} each)\n  \
         building certs: {build:?}\n  \
         capture (validate + store + fsync): {} per certificate\n  \
         current_partner_certificate (incl. re-validation): {}\n  \
         partner_history: {}\n  \
         partner_certificate_by_fingerprint: {}\n  \
         partner_addresses page of 50 in one domain: {listing:?}",
        per_op(capture, n),
        per_op(current, probes),
        per_op(history, probes),
        per_op(by_fp, probes),
    );
    // Generous bound even for unoptimised builds: look-ups must not scan the whole store.
    assert!(current / probes as u32 <= Duration::from_millis(50));
    assert!(by_fp / probes as u32 <= Duration::from_millis(20));
}
