#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Many threads using one store at once, as SMTP sessions and the admin API do.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::SystemTime;

use certstore::{AuditKind, CaptureOutcome, DomainPolicy, PartnerCapture};

#[test]
fn threads_share_one_store() {
    let (_d, store) = common::open_approved();
    store
        .import_proxy_ca(
            &common::read("proxy/proxy-ca.pem"),
            &common::read("proxy/proxy-ca.key"),
        )
        .unwrap();
    const THREADS: usize = 8;
    const PER_THREAD: usize = 40;
    let alice = common::der("partner/alice.pem");
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            let alice = alice.clone();
            std::thread::spawn(move || {
                barrier.wait();
                // All threads race to get the same proxy identity: exactly one is issued.
                let shared = store
                    .ensure_proxy_identity("shared@agency.example")
                    .unwrap();
                let mut new_count = 0;
                for i in 0..PER_THREAD {
                    // Every thread captures the same certificate for the same address…
                    let out = store
                        .capture_partner_certificate(&PartnerCapture {
                            address: "alice@partner.example".into(),
                            certificate_der: alice.clone(),
                            chain_der: vec![common::intermediate()],
                            message_id: Some(format!("<{t}-{i}@p>")),
                            seen_at: SystemTime::now(),
                            capabilities: Vec::new(),
                        })
                        .unwrap();
                    if let CaptureOutcome::Stored { new: true, .. } = out {
                        new_count += 1;
                    }
                    // …and writes its own domains, while reading.
                    store
                        .approve_domain(
                            &format!("t{t}-{i}.example"),
                            DomainPolicy::Smime,
                            "thread",
                            "",
                        )
                        .unwrap();
                    assert!(store
                        .current_partner_certificate("alice@partner.example")
                        .unwrap()
                        .is_some());
                    store.domains().unwrap();
                    store.audit(5, None).unwrap();
                }
                (shared.fingerprint_sha256, new_count)
            })
        })
        .collect();
    let results: Vec<(String, usize)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let fps: BTreeSet<&String> = results.iter().map(|(f, _)| f).collect();
    assert_eq!(fps.len(), 1, "one proxy identity for the shared address");
    assert_eq!(
        store
            .proxy_identities("shared@agency.example")
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        results.iter().map(|(_, n)| n).sum::<usize>(),
        1,
        "exactly one capture was new"
    );
    assert_eq!(
        store
            .partner_history("alice@partner.example")
            .unwrap()
            .len(),
        1
    );
    // The threads' domains and partner.example, approved by `common::open_approved`.
    assert_eq!(store.domains().unwrap().len(), THREADS * PER_THREAD + 1);
    assert_eq!(
        store
            .audit(usize::MAX, Some(AuditKind::DomainApproved))
            .unwrap()
            .len(),
        THREADS * PER_THREAD + 1
    );
    assert_eq!(
        store
            .audit(usize::MAX, Some(AuditKind::ProxyIssued))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .audit(usize::MAX, Some(AuditKind::PartnerCaptured))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn store_is_send_sync_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<certstore::Store>();
}
