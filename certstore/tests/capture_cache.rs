#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! A repeat capture of a certificate just validated and recorded reuses that validation and
//! writes nothing (issue 12), and never hides what a validation or the operator would now say.

mod common;

use std::time::{Duration, SystemTime};

use certstore::{CaptureOutcome, PartnerCapture, Store, ValidationStatus, CAPTURE_CACHE_TTL};
use common::build::{key, leaf_valid, spki, subject_of, validity};
use common::{capture, intermediate, open_approved};

const ALICE: &str = "alice@partner.example";

fn capture_at(rel: &str, msg: &str, seen_at: SystemTime) -> PartnerCapture {
    PartnerCapture {
        seen_at,
        ..capture(ALICE, rel, msg)
    }
}

fn last_message_id(store: &Store) -> Option<String> {
    store.partner_history(ALICE).unwrap()[0]
        .last_message_id
        .clone()
}

fn stored_valid(outcome: &CaptureOutcome) -> bool {
    matches!(
        outcome,
        CaptureOutcome::Stored {
            status: ValidationStatus::Valid,
            recorded: true,
            ..
        }
    )
}

#[test]
fn a_repeat_within_the_ttl_writes_nothing_and_a_later_one_validates_again() {
    let (_d, store) = open_approved();
    let t0 = SystemTime::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    // New: recorded and flushed; its own invalidation keeps it out of the cache.
    store
        .capture_partner_certificate(&capture_at("partner/alice.pem", "<m1@p>", at(0)))
        .unwrap();
    // Seen again: validated, last seen moves, and now remembered.
    let second = store
        .capture_partner_certificate(&capture_at("partner/alice.pem", "<m2@p>", at(1)))
        .unwrap();
    assert!(stored_valid(&second), "{second:?}");
    assert_eq!(last_message_id(&store).as_deref(), Some("<m2@p>"));
    // Within the TTL: the same answer, and the record is not rewritten.
    let third = store
        .capture_partner_certificate(&capture_at("partner/alice.pem", "<m3@p>", at(2)))
        .unwrap();
    assert!(
        matches!(
            &third,
            CaptureOutcome::Stored {
                status: ValidationStatus::Valid,
                recorded: true,
                new: false,
                ..
            }
        ),
        "{third:?}"
    );
    assert_eq!(last_message_id(&store).as_deref(), Some("<m2@p>"));
    // After it: validated and written again.
    let later = at(1) + CAPTURE_CACHE_TTL;
    let fourth = store
        .capture_partner_certificate(&capture_at("partner/alice.pem", "<m4@p>", later))
        .unwrap();
    assert!(stored_valid(&fourth), "{fourth:?}");
    assert_eq!(last_message_id(&store).as_deref(), Some("<m4@p>"));
}

/// Remembered (seen twice) and then used: what the next capture must still see.
fn remembered(store: &Store) -> SystemTime {
    let now = SystemTime::now();
    for msg in ["<m1@p>", "<m2@p>"] {
        store
            .capture_partner_certificate(&capture_at("partner/alice.pem", msg, now))
            .unwrap();
    }
    now
}

#[test]
fn a_block_is_seen_by_the_next_capture() {
    let (_d, store) = open_approved();
    let now = remembered(&store);
    let fp = store.partner_history(ALICE).unwrap()[0]
        .fingerprint_sha256
        .clone();
    store.block_partner_certificate(&fp).unwrap();
    let outcome = store
        .capture_partner_certificate(&capture_at("partner/alice.pem", "<m3@p>", now))
        .unwrap();
    assert!(
        matches!(outcome, CaptureOutcome::Blocked { .. }),
        "{outcome:?}"
    );
    store.unblock_partner_certificate(&fp).unwrap();
    let outcome = store
        .capture_partner_certificate(&capture_at("partner/alice.pem", "<m4@p>", now))
        .unwrap();
    assert!(stored_valid(&outcome), "{outcome:?}");
}

#[test]
fn another_chain_is_validated_on_its_own() {
    let (_d, store) = open_approved();
    let now = remembered(&store);
    // Without the intermediate, no path: refused, although the certificate was just accepted.
    let outcome = store
        .capture_partner_certificate(&PartnerCapture {
            chain_der: Vec::new(),
            ..capture_at("partner/alice.pem", "<m3@p>", now)
        })
        .unwrap();
    assert!(
        matches!(
            outcome,
            CaptureOutcome::Stored {
                status: ValidationStatus::Refused(_),
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[test]
fn a_removed_domain_is_no_longer_recorded() {
    let (_d, store) = open_approved();
    let now = remembered(&store);
    assert!(store.remove_domain("partner.example").unwrap());
    let outcome = store
        .capture_partner_certificate(&capture_at("partner/alice.pem", "<m3@p>", now))
        .unwrap();
    assert!(
        matches!(
            outcome,
            CaptureOutcome::Stored {
                recorded: false,
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[test]
fn new_capabilities_are_recorded_at_once() {
    let (_d, store) = open_approved();
    let now = remembered(&store);
    let gcm = "2.16.840.1.101.3.4.1.46".to_string();
    store
        .capture_partner_certificate(&PartnerCapture {
            capabilities: vec![gcm.clone()],
            ..capture_at("partner/alice.pem", "<m3@p>", now)
        })
        .unwrap();
    assert_eq!(
        store.partner_history(ALICE).unwrap()[0].capabilities,
        vec![gcm]
    );
}

#[test]
fn a_path_that_expires_is_not_reused_past_its_end() {
    let (_d, store) = open_approved();
    let now = SystemTime::now();
    // Expires well within the TTL.
    let short = leaf_valid(
        9201,
        ALICE,
        &subject_of(&intermediate()),
        &key("ca/partner-intermediate.key"),
        spki(&key("partner/alice.key")),
        true,
        validity(
            now - Duration::from_secs(3600),
            now + Duration::from_secs(20),
        ),
    );
    let at = |seconds: u64| PartnerCapture {
        address: ALICE.into(),
        certificate_der: short.clone(),
        chain_der: vec![intermediate()],
        message_id: None,
        seen_at: now + Duration::from_secs(seconds),
        capabilities: Vec::new(),
    };
    for seconds in [0, 1] {
        let outcome = store.capture_partner_certificate(&at(seconds)).unwrap();
        assert!(stored_valid(&outcome), "{outcome:?}");
    }
    let outcome = store.capture_partner_certificate(&at(30)).unwrap();
    assert!(
        matches!(
            outcome,
            CaptureOutcome::Stored {
                status: ValidationStatus::Refused(_),
                ..
            }
        ),
        "{outcome:?}"
    );
}
