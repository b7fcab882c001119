#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Partner-certificate capture, history, selection, pin/block, and domains.

mod common;

use std::time::{Duration, SystemTime};

use certstore::{
    AuditKind, CaptureOutcome, DomainError, DomainPolicy, PartnerCapture, StoreError,
    ValidationError, ValidationStatus,
};
use common::{capture, der, intermediate, open_approved};

#[test]
fn capture_history_and_current() {
    let (_d, store) = open_approved();
    assert!(store
        .current_partner_certificate("alice@partner.example")
        .unwrap()
        .is_none());

    let out = store
        .capture_partner_certificate(&capture(
            "alice@partner.example",
            "partner/alice.pem",
            "<m1@p>",
        ))
        .unwrap();
    let CaptureOutcome::Stored {
        fingerprint: fp1,
        new: true,
        status: ValidationStatus::Valid,
        recorded: true,
    } = out
    else {
        panic!("{out:?}")
    };
    // Seen again: not new, last-seen updated.
    let mut again = capture("Alice@Partner.Example", "partner/alice.pem", "<m2@p>");
    again.seen_at = SystemTime::now() + Duration::from_secs(60);
    let out = store.capture_partner_certificate(&again).unwrap();
    assert!(
        matches!(out, CaptureOutcome::Stored { new: false, .. }),
        "{out:?}"
    );
    let cur = store
        .current_partner_certificate("alice@partner.example")
        .unwrap()
        .unwrap();
    assert_eq!(cur.fingerprint_sha256, fp1);
    assert_eq!(cur.first_message_id.as_deref(), Some("<m1@p>"));
    assert_eq!(cur.last_message_id.as_deref(), Some("<m2@p>"));
    assert!(cur.last_seen > cur.first_seen);
    assert_eq!(cur.key_bits, 2048);
    assert!(cur.subject.contains("alice"), "{}", cur.subject);

    // Renewed certificate (later notBefore) becomes current; the old one stays in history.
    let out = store
        .capture_partner_certificate(&capture(
            "alice@partner.example",
            "partner/alice-renewed.pem",
            "<m3@p>",
        ))
        .unwrap();
    let CaptureOutcome::Stored {
        fingerprint: fp2,
        new: true,
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    let cur = store
        .current_partner_certificate("alice@partner.example")
        .unwrap()
        .unwrap();
    assert_eq!(cur.fingerprint_sha256, fp2);
    let hist = store.partner_history("alice@partner.example").unwrap();
    assert_eq!(hist.len(), 2);

    // Pinning the older one makes it current; blocking it falls back to the newest.
    let pinned = store.pin_partner_certificate(&fp1).unwrap();
    assert!(pinned.pinned);
    assert_eq!(
        store
            .current_partner_certificate("alice@partner.example")
            .unwrap()
            .unwrap()
            .fingerprint_sha256,
        fp1
    );
    store.unpin_partner_certificate(&fp1).unwrap();
    assert_eq!(
        store
            .current_partner_certificate("alice@partner.example")
            .unwrap()
            .unwrap()
            .fingerprint_sha256,
        fp2
    );
    store.block_partner_certificate(&fp2).unwrap();
    assert_eq!(
        store
            .current_partner_certificate("alice@partner.example")
            .unwrap()
            .unwrap()
            .fingerprint_sha256,
        fp1
    );
    // A blocked certificate seen again is reported as blocked (and still recorded).
    let out = store
        .capture_partner_certificate(&capture(
            "alice@partner.example",
            "partner/alice-renewed.pem",
            "<m4@p>",
        ))
        .unwrap();
    assert_eq!(
        out,
        CaptureOutcome::Blocked {
            fingerprint: fp2.clone()
        }
    );
    store.unblock_partner_certificate(&fp2).unwrap();
    assert_eq!(
        store
            .current_partner_certificate("alice@partner.example")
            .unwrap()
            .unwrap()
            .fingerprint_sha256,
        fp2
    );

    // By fingerprint, with colons and upper case.
    let colon: String = fp1
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(
        store
            .partner_certificate_by_fingerprint(&colon)
            .unwrap()
            .unwrap()
            .fingerprint_sha256,
        fp1
    );
    assert!(store
        .partner_certificate_by_fingerprint(&"0".repeat(64))
        .unwrap()
        .is_none());
    assert!(matches!(
        store.partner_certificate_by_fingerprint("xyz"),
        Err(StoreError::InvalidFingerprint(_))
    ));
    assert!(matches!(
        store.pin_partner_certificate(&"0".repeat(64)),
        Err(StoreError::UnknownCertificate(_))
    ));

    // JSON for the admin API.
    let json = serde_json::to_value(&cur).unwrap();
    assert_eq!(json["status"], "valid");
    assert!(json["first_seen"].as_str().unwrap().ends_with('Z'));

    let kinds: Vec<AuditKind> = store
        .audit(100, None)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == AuditKind::PartnerCaptured)
            .count(),
        2
    );
    assert!(
        kinds.contains(&AuditKind::PartnerPinned) && kinds.contains(&AuditKind::PartnerBlocked)
    );
}

#[test]
fn refused_certificates_are_recorded() {
    let (_d, store) = open_approved();
    let cases = [
        (
            "dave@partner.example",
            "partner/expired.pem",
            ValidationError::Expired,
        ),
        (
            "eve@partner.example",
            "partner/selfsigned.pem",
            ValidationError::SelfSigned,
        ),
        (
            "frank@partner.example",
            "partner/weak1024.pem",
            ValidationError::WeakKey { bits: 1024 },
        ),
        (
            "trent@partner.example",
            "partner/revoked.pem",
            ValidationError::Revoked,
        ),
        (
            "ivan@partner.example",
            "partner/nomail.pem",
            ValidationError::UsageNotEmailProtection,
        ),
    ];
    for (addr, file, reason) in cases {
        let out = store
            .capture_partner_certificate(&capture(addr, file, "<x@p>"))
            .unwrap();
        let CaptureOutcome::Stored {
            new: true,
            status: ValidationStatus::Refused(r),
            fingerprint,
            recorded: true,
        } = out
        else {
            panic!("{out:?}")
        };
        assert_eq!(r, reason);
        let hist = store.partner_history(addr).unwrap();
        assert_eq!(hist.len(), 1);
        assert_eq!(hist[0].status, ValidationStatus::Refused(reason.clone()));
        assert!(
            store.current_partner_certificate(addr).unwrap().is_none(),
            "{addr}"
        );
        // Refused certificates cannot be pinned into use.
        assert!(matches!(
            store.pin_partner_certificate(&fingerprint),
            Err(StoreError::CannotPinRefused(_))
        ));
    }
    // A certificate for another address is recorded under the sender, as a mismatch.
    let out = store
        .capture_partner_certificate(&capture(
            "alice@partner.example",
            "partner/other.pem",
            "<y@p>",
        ))
        .unwrap();
    assert!(matches!(
        out,
        CaptureOutcome::Stored {
            status: ValidationStatus::Refused(ValidationError::AddressMismatch { .. }),
            ..
        }
    ));
    // Garbage is recorded as malformed.
    let garbage = PartnerCapture {
        address: "bob@partner.example".into(),
        certificate_der: b"garbage".to_vec(),
        chain_der: vec![],
        message_id: None,
        seen_at: SystemTime::now(),
        capabilities: Vec::new(),
    };
    let out = store.capture_partner_certificate(&garbage).unwrap();
    assert!(matches!(
        out,
        CaptureOutcome::Stored {
            status: ValidationStatus::Refused(ValidationError::Malformed(_)),
            ..
        }
    ));
    let refusals = store.audit(100, Some(AuditKind::PartnerRefused)).unwrap();
    assert_eq!(refusals.len(), 7);
    assert!(refusals.iter().any(|e| e.detail.contains("expired")));
    // Invalid address and oversized input are errors, not records.
    let mut bad = capture("not-an-address", "partner/alice.pem", "<z@p>");
    assert!(matches!(
        store.capture_partner_certificate(&bad),
        Err(StoreError::InvalidAddress(_))
    ));
    bad.address = "alice@partner.example".into();
    bad.certificate_der = vec![0; certstore::MAX_CERTIFICATE_BYTES + 1];
    assert!(matches!(
        store.capture_partner_certificate(&bad),
        Err(StoreError::BadEncoding(_))
    ));
}

#[test]
fn partner_address_listing() {
    let (_d, store) = open_approved();
    store
        .approve_domain("other.example", DomainPolicy::Tls, "test", "")
        .unwrap();
    store
        .capture_partner_certificate(&capture("bob@partner.example", "partner/bob.pem", "<1>"))
        .unwrap();
    store
        .capture_partner_certificate(&capture(
            "alice@partner.example",
            "partner/alice.pem",
            "<2>",
        ))
        .unwrap();
    store
        .capture_partner_certificate(&capture(
            "mallory@other.example",
            "partner/other.pem",
            "<3>",
        ))
        .unwrap();
    assert_eq!(
        store.partner_addresses(None, 0, 10).unwrap(),
        vec![
            "mallory@other.example",
            "alice@partner.example",
            "bob@partner.example"
        ]
    );
    assert_eq!(
        store
            .partner_addresses(Some("Partner.Example."), 0, 10)
            .unwrap(),
        vec!["alice@partner.example", "bob@partner.example"]
    );
    assert_eq!(
        store
            .partner_addresses(Some("partner.example"), 1, 10)
            .unwrap(),
        vec!["bob@partner.example"]
    );
    assert_eq!(store.partner_addresses(None, 0, 1).unwrap().len(), 1);
    assert!(store
        .partner_addresses(Some("nope.example"), 0, 10)
        .unwrap()
        .is_empty());
    assert!(store.partner_addresses(Some("bad domain"), 0, 10).is_err());
}

#[test]
fn domains() {
    let (_d, store) = open_approved();
    let d = store
        .approve_domain("Partner.Example.", DomainPolicy::Smime, "op", "contract 12")
        .unwrap();
    assert_eq!(d.domain, "partner.example");
    // Idempotent.
    let again = store
        .approve_domain("partner.example", DomainPolicy::Smime, "someone else", "")
        .unwrap();
    assert_eq!(again, d);
    // Policy change replaces.
    let tls = store
        .approve_domain("partner.example", DomainPolicy::Tls, "op2", "TLS only")
        .unwrap();
    assert_eq!(tls.policy, DomainPolicy::Tls);
    store
        .approve_domain("bücher.example", DomainPolicy::Smime, "op", "")
        .unwrap();
    assert!(store.domain("xn--bcher-kva.example").unwrap().is_some());
    assert_eq!(store.domains().unwrap().len(), 2);
    assert_eq!(serde_json::to_value(&tls).unwrap()["policy"], "tls");
    assert!(matches!(
        store.approve_domain("gmail.com", DomainPolicy::Smime, "op", ""),
        Err(StoreError::Domain(DomainError::Freemail(_)))
    ));
    assert!(matches!(
        store.approve_domain("not a domain", DomainPolicy::Smime, "op", ""),
        Err(StoreError::Domain(DomainError::Name(_)))
    ));
    assert!(store.remove_domain("PARTNER.example").unwrap());
    assert!(!store.remove_domain("partner.example").unwrap());
    assert!(store.domain("partner.example").unwrap().is_none());
    let kinds: Vec<AuditKind> = store
        .audit(10, None)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            AuditKind::DomainRemoved,
            AuditKind::DomainRefused,
            AuditKind::DomainApproved,
            AuditKind::DomainApproved,
            AuditKind::DomainApproved
        ]
    );
    // Configured extra free-mail domains.
    let dir = tempfile::tempdir().unwrap();
    let s2 = certstore::Store::open(
        dir.path(),
        certstore::StoreConfig {
            extra_freemail_domains: vec!["isp.example".into()],
            ..common::config()
        },
    )
    .unwrap();
    assert!(s2
        .approve_domain("mail.isp.example", DomainPolicy::Smime, "op", "")
        .is_err());
}

#[test]
fn intermediates_needed_only_once() {
    // The stored chain lets current_partner_certificate re-validate later without the message.
    let (_d, store) = open_approved();
    store
        .capture_partner_certificate(&capture("bob@partner.example", "partner/bob.pem", "<1>"))
        .unwrap();
    let cur = store
        .current_partner_certificate("bob@partner.example")
        .unwrap()
        .unwrap();
    assert_eq!(cur.certificate_der, der("partner/bob.pem"));
    let _ = intermediate();
}

#[test]
fn advertised_capabilities_are_kept_with_the_certificate() {
    let (_dir, store) = open_approved();
    let c = capture(
        "alice@partner.example",
        "partner/alice.pem",
        "m1@partner.example",
    );
    let CaptureOutcome::Stored { fingerprint, .. } = store.capture_partner_certificate(&c).unwrap()
    else {
        panic!("not stored");
    };
    let gcm = "2.16.840.1.101.3.4.1.46".to_string();
    store
        .set_partner_capabilities(
            "Alice@Partner.Example",
            &fingerprint,
            std::slice::from_ref(&gcm),
        )
        .unwrap();
    let current = store
        .current_partner_certificate("alice@partner.example")
        .unwrap()
        .unwrap();
    assert_eq!(current.capabilities, vec![gcm]);
    // Unknown certificate for the address: a typed error, nothing written.
    let err = store
        .set_partner_capabilities("bob@partner.example", &fingerprint, &[])
        .unwrap_err();
    assert!(
        matches!(err, certstore::StoreError::UnknownCertificate(_)),
        "{err}"
    );
}

/// Every verified signature carries its capabilities into the store with the capture: the
/// latest advertisement replaces the earlier one, and a signature without any keeps it.
#[test]
fn capture_records_the_advertised_capabilities() {
    let (_dir, store) = open_approved();
    let gcm = "2.16.840.1.101.3.4.1.46".to_string();
    let cbc = "2.16.840.1.101.3.4.1.42".to_string();
    let current = || {
        store
            .current_partner_certificate("alice@partner.example")
            .unwrap()
            .unwrap()
            .capabilities
    };
    let mut c = capture(
        "alice@partner.example",
        "partner/alice.pem",
        "m1@partner.example",
    );
    c.capabilities = vec![cbc.clone()];
    store.capture_partner_certificate(&c).unwrap();
    assert_eq!(current(), vec![cbc.clone()]);

    c.seen_at += std::time::Duration::from_secs(60);
    c.capabilities = vec![gcm.clone(), cbc.clone()];
    store.capture_partner_certificate(&c).unwrap();
    assert_eq!(current(), vec![gcm.clone(), cbc.clone()]);

    c.seen_at += std::time::Duration::from_secs(60);
    c.capabilities = Vec::new();
    store.capture_partner_certificate(&c).unwrap();
    assert_eq!(current(), vec![gcm, cbc]);
}

/// Issue 11: what a sender outside the approved domains, or a forger inside one, can write.
#[test]
fn store_growth_from_outside_senders_is_bounded() {
    use common::build::{key, leaf, spki, subject_of};
    let (_d, store) = open_approved();
    let audit_before = store.audit(usize::MAX, None).unwrap().len();

    // A valid certificate from a domain that is not approved: validated, nothing recorded.
    let out = store
        .capture_partner_certificate(&capture(
            "mallory@other.example",
            "partner/other.pem",
            "<m>",
        ))
        .unwrap();
    assert!(
        matches!(
            out,
            CaptureOutcome::Stored {
                recorded: false,
                ..
            }
        ),
        "{out:?}"
    );
    assert!(store
        .partner_history("mallory@other.example")
        .unwrap()
        .is_empty());
    assert_eq!(store.partner_counts().certificates, 0);
    assert_eq!(store.audit(usize::MAX, None).unwrap().len(), audit_before);

    // Oversized certificates are refused before anything else.
    let mut huge = capture("alice@partner.example", "partner/alice.pem", "<h>");
    huge.certificate_der = vec![0x30; certstore::MAX_CERTIFICATE_BYTES + 1];
    assert!(matches!(
        store.capture_partner_certificate(&huge),
        Err(StoreError::BadEncoding(_))
    ));

    // Forged certificates for one address of an approved domain (signed by the wrong key):
    // refused, and only the first few are recorded.
    let forger = key("partner/alice.key");
    let issuer = subject_of(&intermediate());
    for serial in 0..(certstore::MAX_REFUSED_PER_ADDRESS as u64 + 5) {
        let cert = leaf(
            50_000 + serial,
            "victim@partner.example",
            &issuer,
            &forger,
            spki(&forger),
        );
        let out = store
            .capture_partner_certificate(&PartnerCapture {
                address: "victim@partner.example".into(),
                certificate_der: cert,
                chain_der: vec![intermediate(); 100],
                message_id: None,
                seen_at: SystemTime::now(),
                capabilities: Vec::new(),
            })
            .unwrap();
        let CaptureOutcome::Stored {
            status, recorded, ..
        } = out
        else {
            panic!("{out:?}")
        };
        assert!(!status.is_valid());
        assert_eq!(
            recorded,
            serial < certstore::MAX_REFUSED_PER_ADDRESS as u64,
            "{serial}"
        );
    }
    assert_eq!(
        store
            .partner_history("victim@partner.example")
            .unwrap()
            .len(),
        certstore::MAX_REFUSED_PER_ADDRESS
    );
    assert_eq!(
        store.partner_counts(),
        certstore::PartnerCounts {
            addresses: 1,
            certificates: certstore::MAX_REFUSED_PER_ADDRESS
        }
    );
}
