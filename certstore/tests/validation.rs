#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! One test per refusal reason, with the openssl-made certificates in fixtures/.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certstore::{Store, StoreConfig, ValidationError};
use common::{der, fixtures, intermediate, open};

fn check(
    store: &Store,
    rel: &str,
    address: &str,
) -> Result<certstore::ValidatedCertificate, ValidationError> {
    store.validate_partner_certificate(
        &der(rel),
        &[intermediate()],
        Some(address),
        SystemTime::now(),
    )
}

#[test]
fn valid_partner_certificates() {
    let (_d, store) = open();
    let v = check(&store, "partner/alice.pem", "alice@partner.example").unwrap();
    assert_eq!(v.key_bits, 2048);
    assert_eq!(v.signature_algorithm, "sha256WithRSAEncryption");
    assert_eq!(v.email_addresses, vec!["alice@partner.example".to_string()]);
    assert_eq!(v.chain_der.len(), 3, "leaf, intermediate, root");
    // Address comparison ignores case.
    check(&store, "partner/alice.pem", "Alice@PARTNER.example").unwrap();
    check(&store, "partner/bob.pem", "bob@partner.example").unwrap();
    check(&store, "partner/carol-pss.pem", "carol@partner.example").unwrap();
    check(&store, "partner/alice-renewed.pem", "alice@partner.example").unwrap();
    // Without an address the address check is skipped.
    store
        .validate_partner_certificate(
            &der("partner/other.pem"),
            &[intermediate()],
            None,
            SystemTime::now(),
        )
        .unwrap();
}

#[test]
fn untrusted_without_intermediate() {
    let (_d, store) = open();
    let r = store.validate_partner_certificate(
        &der("partner/alice.pem"),
        &[],
        Some("alice@partner.example"),
        SystemTime::now(),
    );
    assert_eq!(r.unwrap_err(), ValidationError::Untrusted);
}

#[test]
fn intermediate_from_anchor_file_suffices() {
    // partner-chain.pem (intermediate + root) as anchors: no message intermediates needed.
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        trust_anchor_files: vec![fixtures().join("ca/partner-chain.pem")],
        use_system_trust: false,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config).unwrap();
    store
        .validate_partner_certificate(
            &der("partner/alice.pem"),
            &[],
            Some("alice@partner.example"),
            SystemTime::now(),
        )
        .unwrap();
}

#[test]
fn untrusted_with_no_anchors() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        use_system_trust: false,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config).unwrap();
    assert_eq!(
        check(&store, "partner/alice.pem", "alice@partner.example").unwrap_err(),
        ValidationError::Untrusted
    );
}

#[test]
fn self_signed_refused_even_as_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        trust_anchor_files: vec![
            fixtures().join("ca/partner-root.pem"),
            fixtures().join("partner/selfsigned.pem"),
        ],
        use_system_trust: false,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config).unwrap();
    let e = check(&store, "partner/selfsigned.pem", "eve@partner.example").unwrap_err();
    assert_eq!(e, ValidationError::SelfSigned);
    assert!(e.to_string().contains("self-signed"));
}

#[test]
fn expired() {
    let (_d, store) = open();
    assert_eq!(
        check(&store, "partner/expired.pem", "dave@partner.example").unwrap_err(),
        ValidationError::Expired
    );
}

#[test]
fn not_yet_valid() {
    let (_d, store) = open();
    let before = UNIX_EPOCH + Duration::from_secs(1_700_000_000); // 2023, before the 2025 start
    let r = store.validate_partner_certificate(
        &der("partner/alice.pem"),
        &[intermediate()],
        Some("alice@partner.example"),
        before,
    );
    assert_eq!(r.unwrap_err(), ValidationError::NotYetValid);
}

#[test]
fn weak_key() {
    let (_d, store) = open();
    assert_eq!(
        check(&store, "partner/weak1024.pem", "frank@partner.example").unwrap_err(),
        ValidationError::WeakKey { bits: 1024 }
    );
}

#[test]
fn sha1_accepted_while_unexpired_refused_when_expired() {
    // PRODUCT.md: "SHA-1 signatures are accepted only on certificates that have not expired".
    let (_d, store) = open();
    let v = check(&store, "partner/sha1.pem", "grace@partner.example").unwrap();
    assert_eq!(v.signature_algorithm, "sha1WithRSAEncryption");
    // Expiry is checked first, so the expired SHA-1 certificate is reported as expired.
    assert_eq!(
        check(&store, "partner/sha1-expired.pem", "heidi@partner.example").unwrap_err(),
        ValidationError::Expired
    );
    // After grace's certificate expires, it is refused as well.
    let later = UNIX_EPOCH + Duration::from_secs(2_400_000_000); // 2046
    let r = store.validate_partner_certificate(
        &der("partner/sha1.pem"),
        &[intermediate()],
        Some("grace@partner.example"),
        later,
    );
    assert_eq!(r.unwrap_err(), ValidationError::Expired);
}

#[test]
fn usage_not_email_protection() {
    let (_d, store) = open();
    assert_eq!(
        check(&store, "partner/nomail.pem", "ivan@partner.example").unwrap_err(),
        ValidationError::UsageNotEmailProtection
    );
}

#[test]
fn address_mismatch() {
    let (_d, store) = open();
    let e = check(&store, "partner/other.pem", "alice@partner.example").unwrap_err();
    assert_eq!(
        e,
        ValidationError::AddressMismatch {
            expected: "alice@partner.example".into(),
            found: "mallory@other.example".into()
        }
    );
    assert!(e.to_string().contains("mallory@other.example"));
    check(&store, "partner/other.pem", "mallory@other.example").unwrap();
}

#[test]
fn revoked() {
    let (_d, store) = open();
    assert_eq!(
        check(&store, "partner/revoked.pem", "trent@partner.example").unwrap_err(),
        ValidationError::Revoked
    );
    // Without the CRL configured it passes: only configured CRLs are honoured.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreConfig {
            crl_files: vec![],
            ..common::config()
        },
    )
    .unwrap();
    check(&store, "partner/revoked.pem", "trent@partner.example").unwrap();
}

#[test]
fn bad_signature() {
    let (_d, store) = open();
    let mut cert = der("partner/alice.pem");
    let n = cert.len();
    cert[n - 10] ^= 0x55; // inside the signature value
    let r = store.validate_partner_certificate(
        &cert,
        &[intermediate()],
        Some("alice@partner.example"),
        SystemTime::now(),
    );
    assert!(
        matches!(r, Err(ValidationError::BadSignature { .. })),
        "{r:?}"
    );
}

#[test]
fn issuer_not_ca() {
    // alice presented as the "issuer" of a certificate whose issuer name we cannot forge
    // here; instead: a leaf signed by a non-CA is modelled by making bob's cert the only
    // candidate for a name it does not have -> Untrusted. Direct check: the user proxy
    // certificate is not a CA, so nothing it "issues" chains.
    let (_d, store) = open();
    let r = store.validate_partner_certificate(
        &der("partner/alice.pem"),
        &[der("partner/bob.pem")],
        Some("alice@partner.example"),
        SystemTime::now(),
    );
    assert_eq!(r.unwrap_err(), ValidationError::Untrusted);
}

#[test]
fn malformed_and_unsupported() {
    let (_d, store) = open();
    for garbage in [
        &b""[..],
        b"\x30\x03\x02\x01\x01",
        b"not a certificate at all",
        &[0x30, 0x82, 0xff, 0xff],
    ] {
        let r = store.validate_partner_certificate(garbage, &[], None, SystemTime::now());
        assert!(matches!(r, Err(ValidationError::Malformed(_))), "{r:?}");
    }
    // Garbage among the message's certificates is ignored, not fatal.
    store
        .validate_partner_certificate(
            &der("partner/alice.pem"),
            &[b"junk".to_vec(), intermediate()],
            None,
            SystemTime::now(),
        )
        .unwrap();
}

#[test]
fn error_messages_are_sentences() {
    for e in [
        ValidationError::Untrusted,
        ValidationError::SelfSigned,
        ValidationError::Expired,
        ValidationError::NotYetValid,
        ValidationError::WeakKey { bits: 1024 },
        ValidationError::UnsupportedKey,
        ValidationError::Revoked,
        ValidationError::UsageNotEmailProtection,
    ] {
        let s = e.to_string();
        assert!(s.starts_with("the "), "{s}");
    }
}

/// `[trust] revocation`: the fixture root publishes no CRL for the intermediate, the
/// intermediate's CRL revokes trent.
#[test]
fn revocation_modes() {
    let open_with = |revocation| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            StoreConfig {
                revocation,
                ..common::config()
            },
        )
        .unwrap();
        (dir, store)
    };
    let validate = |store: &Store, rel: &str| {
        store.validate_partner_certificate(&der(rel), &[intermediate()], None, SystemTime::now())
    };

    // Soft-fail: accepted, and the verdict names what could not be checked.
    let (_d, store) = open_with(certstore::RevocationMode::SoftFail);
    let v = validate(&store, "partner/alice.pem").unwrap();
    assert_eq!(v.revocation_unknown.len(), 1, "{:?}", v.revocation_unknown);
    assert!(
        v.revocation_unknown[0].contains("Intermediate"),
        "{:?}",
        v.revocation_unknown
    );
    assert_eq!(
        validate(&store, "partner/revoked.pem").unwrap_err(),
        ValidationError::Revoked
    );

    // Hard-fail: the intermediate's unknown status refuses the path.
    let (_d, store) = open_with(certstore::RevocationMode::HardFail);
    assert!(matches!(
        validate(&store, "partner/alice.pem"),
        Err(ValidationError::RevocationUnknown { .. })
    ));

    // Off: not even the CRL file is consulted.
    let (_d, store) = open_with(certstore::RevocationMode::Off);
    let v = validate(&store, "partner/revoked.pem").unwrap();
    assert!(v.revocation_unknown.is_empty());
}

#[test]
fn ec_and_ed25519_partner_certificates() {
    use certstore::KeyPurpose;
    let (_d, store) = open();
    for (rel, address, bits) in [
        ("partner/erin-p256.pem", "erin@partner.example", 256),
        ("partner/peggy-p384.pem", "peggy@partner.example", 384),
        ("partner/victor-p521.pem", "victor@partner.example", 521),
        ("partner/walter-ed25519.pem", "walter@partner.example", 256),
    ] {
        let v = check(&store, rel, address).unwrap();
        assert_eq!(v.key_bits, bits, "{rel}");
        assert_eq!(v.chain_der.len(), 3);
    }
    let for_purpose = |rel: &str, purpose| {
        store.validate_partner_certificate_for(
            &der(rel),
            &[intermediate()],
            None,
            purpose,
            SystemTime::now(),
        )
    };
    // EC keys sign and agree keys (digitalSignature, keyAgreement).
    for_purpose("partner/erin-p256.pem", KeyPurpose::Sign).unwrap();
    for_purpose("partner/erin-p256.pem", KeyPurpose::Encrypt).unwrap();
    // Ed25519 only signs: no content key can be sent to it.
    for_purpose("partner/walter-ed25519.pem", KeyPurpose::Sign).unwrap();
    assert!(matches!(
        for_purpose("partner/walter-ed25519.pem", KeyPurpose::Encrypt),
        Err(ValidationError::UnsupportedKey)
    ));
}
