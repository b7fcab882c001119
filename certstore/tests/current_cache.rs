#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! The cached current partner certificate: reused between look-ups, dropped by everything
//! that changes the choice (issue 12).

mod common;

use std::time::{Duration, SystemTime};

use certstore::{CaptureOutcome, PartnerCapture, Store, StoreConfig};
use common::build::{key, leaf_valid, spki, subject_of, validity};
use common::{capture, intermediate, open_approved};

const ALICE: &str = "alice@partner.example";

fn current(store: &Store) -> Option<String> {
    store
        .current_partner_certificate(ALICE)
        .unwrap()
        .map(|c| c.fingerprint_sha256)
}

fn captured(store: &Store, rel: &str, msg: &str) -> String {
    match store
        .capture_partner_certificate(&capture(ALICE, rel, msg))
        .unwrap()
    {
        CaptureOutcome::Stored { fingerprint, .. } => fingerprint,
        o => panic!("{o:?}"),
    }
}

#[test]
fn cached_until_a_capture_pin_block_or_capability_change() {
    let (_d, store) = open_approved();
    let first = captured(&store, "partner/alice.pem", "<m1@p>");
    assert_eq!(store.cached_current_certificates(), 0);
    assert_eq!(current(&store).as_deref(), Some(first.as_str()));
    assert_eq!(store.cached_current_certificates(), 1);
    assert_eq!(current(&store).as_deref(), Some(first.as_str()));

    // Ordinary inbound mail (the same certificate seen again) keeps the entry.
    captured(&store, "partner/alice.pem", "<m2@p>");
    assert_eq!(store.cached_current_certificates(), 1);

    // A new certificate: dropped, and the renewed one is current at once.
    let renewed = captured(&store, "partner/alice-renewed.pem", "<m3@p>");
    assert_eq!(store.cached_current_certificates(), 0);
    assert_eq!(current(&store).as_deref(), Some(renewed.as_str()));

    // Pin, unpin, block, unblock: each visible on the next look-up.
    store.pin_partner_certificate(&first).unwrap();
    assert_eq!(current(&store).as_deref(), Some(first.as_str()));
    store.unpin_partner_certificate(&first).unwrap();
    assert_eq!(current(&store).as_deref(), Some(renewed.as_str()));
    store.block_partner_certificate(&renewed).unwrap();
    assert_eq!(current(&store).as_deref(), Some(first.as_str()));
    store.unblock_partner_certificate(&renewed).unwrap();
    assert_eq!(current(&store).as_deref(), Some(renewed.as_str()));
    store.block_partner_certificate(&first).unwrap();
    store.block_partner_certificate(&renewed).unwrap();
    assert_eq!(current(&store), None);
    store.unblock_partner_certificate(&renewed).unwrap();

    // Capabilities decide the cipher: a new advertisement is seen at once.
    assert!(store
        .current_partner_certificate(ALICE)
        .unwrap()
        .unwrap()
        .capabilities
        .is_empty());
    let gcm = "2.16.840.1.101.3.4.1.46".to_string();
    store
        .set_partner_capabilities(ALICE, &renewed, std::slice::from_ref(&gcm))
        .unwrap();
    let c = store.current_partner_certificate(ALICE).unwrap().unwrap();
    assert_eq!(c.capabilities, vec![gcm]);
}

#[test]
fn an_expired_certificate_is_not_served_from_the_cache() {
    let (_d, store) = open_approved();
    let now = SystemTime::now();
    let short = leaf_valid(
        9101,
        ALICE,
        &subject_of(&intermediate()),
        &key("ca/partner-intermediate.key"),
        spki(&key("partner/alice.key")),
        true,
        validity(
            now - Duration::from_secs(3600),
            now + Duration::from_secs(3),
        ),
    );
    let outcome = store
        .capture_partner_certificate(&PartnerCapture {
            address: ALICE.into(),
            certificate_der: short,
            chain_der: vec![intermediate()],
            message_id: None,
            seen_at: now,
            capabilities: Vec::new(),
        })
        .unwrap();
    assert!(
        matches!(outcome, CaptureOutcome::Stored { recorded: true, .. }),
        "{outcome:?}"
    );
    assert!(current(&store).is_some());
    assert_eq!(store.cached_current_certificates(), 1);
    // Certificate times have whole seconds: wait past notAfter with a margin.
    std::thread::sleep(Duration::from_millis(4200));
    assert_eq!(current(&store), None);
}

#[test]
fn a_trust_change_is_a_new_store_with_nothing_cached() {
    let (dir, store) = open_approved();
    captured(&store, "partner/alice.pem", "<m1@p>");
    assert!(current(&store).is_some());
    drop(store);
    // Trust anchors and CRL files are read at open: without the partner root, nothing
    // validates, and no earlier answer is served.
    let store = common::reopen(dir.path(), StoreConfig::default());
    assert_eq!(current(&store), None);
}
