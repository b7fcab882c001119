#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Chain shapes built in the test: PSS signatures, non-CA issuers, path length, expired
//! issuers, overlong chains.

mod common;

use std::time::{Duration, SystemTime};

use certstore::{KeyPurpose, ValidationError};
use common::build::{
    default_validity, key, leaf, leaf_pss, leaf_with_usage, spki, sub_ca, subject_of, validity,
};
use common::{der, intermediate, open};

fn root_name() -> x509_cert::name::Name {
    subject_of(&der("ca/partner-root.pem"))
}

#[test]
fn pss_signed_leaf_is_accepted() {
    let (_d, store) = open();
    let ik = key("ca/partner-intermediate.key");
    let cert = leaf_pss(
        7001,
        "carol@partner.example",
        &subject_of(&intermediate()),
        &ik,
        spki(&key("partner/carol-pss.key")),
    );
    let v = store
        .validate_partner_certificate(
            &cert,
            &[intermediate()],
            Some("carol@partner.example"),
            SystemTime::now(),
        )
        .unwrap();
    assert!(
        v.signature_algorithm.contains("PSS"),
        "{}",
        v.signature_algorithm
    );
}

#[test]
fn issuer_not_ca() {
    let (_d, store) = open();
    // bob (CA:FALSE) "issues" a certificate: his signature verifies but he is no CA.
    let bob = der("partner/bob.pem");
    let cert = leaf(
        7002,
        "x@partner.example",
        &subject_of(&bob),
        &key("partner/bob.key"),
        spki(&key("partner/alice.key")),
    );
    let r =
        store.validate_partner_certificate(&cert, &[bob, intermediate()], None, SystemTime::now());
    assert!(
        matches!(r, Err(ValidationError::IssuerNotCa { .. })),
        "{r:?}"
    );
}

#[test]
fn path_length_exceeded() {
    let (_d, store) = open();
    // The intermediate has pathlen:0, so a CA below it may not issue.
    let ik = key("ca/partner-intermediate.key");
    let sub_key = key("partner/bob.key");
    let sub = sub_ca(
        7003,
        "Sub CA",
        &subject_of(&intermediate()),
        &ik,
        spki(&sub_key),
        default_validity(),
        None,
    );
    let cert = leaf(
        7004,
        "x@partner.example",
        &subject_of(&sub),
        &sub_key,
        spki(&key("partner/alice.key")),
    );
    let r =
        store.validate_partner_certificate(&cert, &[sub, intermediate()], None, SystemTime::now());
    assert!(
        matches!(r, Err(ValidationError::PathLengthExceeded { .. })),
        "{r:?}"
    );
}

#[test]
fn expired_issuer() {
    let (_d, store) = open();
    let rk = key("ca/partner-root.key");
    let sub_key = key("partner/bob.key");
    let y = Duration::from_secs(365 * 86_400);
    let old = validity(SystemTime::now() - 3 * y, SystemTime::now() - y);
    let sub = sub_ca(
        7005,
        "Old Sub CA",
        &root_name(),
        &rk,
        spki(&sub_key),
        old,
        None,
    );
    let cert = leaf(
        7006,
        "x@partner.example",
        &subject_of(&sub),
        &sub_key,
        spki(&key("partner/alice.key")),
    );
    let r = store.validate_partner_certificate(&cert, &[sub], None, SystemTime::now());
    assert!(
        matches!(r, Err(ValidationError::IssuerNotValid { .. })),
        "{r:?}"
    );
}

#[test]
fn chain_too_long() {
    let (_d, store) = open();
    let rk = key("ca/partner-root.key");
    let ca_key = key("partner/bob.key");
    let mut pool = Vec::new();
    let mut issuer = root_name();
    let mut issuer_key = rk;
    for i in 0..certstore::MAX_CHAIN {
        let c = sub_ca(
            7100 + i as u64,
            &format!("Sub CA {i}"),
            &issuer,
            &issuer_key,
            spki(&ca_key),
            default_validity(),
            None,
        );
        issuer = subject_of(&c);
        issuer_key = ca_key.clone();
        pool.push(c);
    }
    let cert = leaf(
        7200,
        "x@partner.example",
        &issuer,
        &ca_key,
        spki(&key("partner/alice.key")),
    );
    let r = store.validate_partner_certificate(&cert, &pool, None, SystemTime::now());
    assert_eq!(
        r.unwrap_err(),
        ValidationError::ChainTooLong {
            max: certstore::MAX_CHAIN
        }
    );
    // Three sub-CAs deep is fine.
    let short: Vec<Vec<u8>> = pool.iter().take(3).cloned().collect();
    let cert = leaf(
        7201,
        "x@partner.example",
        &subject_of(&short[2]),
        &ca_key,
        spki(&key("partner/alice.key")),
    );
    store
        .validate_partner_certificate(&cert, &short, None, SystemTime::now())
        .unwrap();
}

#[test]
fn wrong_issuer_key_is_untrusted() {
    let (_d, store) = open();
    // Claims the intermediate as issuer but is signed by another key, and its authority key
    // identifier names that key: the intermediate is not its issuer, so no path exists.
    let cert = leaf(
        7300,
        "x@partner.example",
        &subject_of(&intermediate()),
        &key("partner/bob.key"),
        spki(&key("partner/alice.key")),
    );
    let r = store.validate_partner_certificate(&cert, &[intermediate()], None, SystemTime::now());
    assert_eq!(r.unwrap_err(), ValidationError::Untrusted);
}

/// Issue 11, item 2: 24 look-alike CA certificates (12 "A issued by B", 12 "B issued by A",
/// one key) made the old depth-first search try every ordering (9.5 s). The path search must
/// stay bounded: one issuer is chosen per level, so the A-B-A-... loop ends at the depth
/// bound, quickly.
#[test]
fn look_alike_cross_signed_cas_do_not_blow_up_the_path_search() {
    let (_d, store) = open();
    let k = key("ca/partner-intermediate.key");
    let name = |cn: &str| <x509_cert::name::Name as std::str::FromStr>::from_str(cn).unwrap();
    let (a, b) = (name("CN=Look-alike CA"), name("CN=Look-alike CA 2"));
    let mut pool = Vec::new();
    for i in 0..12 {
        pool.push(sub_ca(
            8000 + i,
            "Look-alike CA",
            &b,
            &k,
            spki(&k),
            default_validity(),
            None,
        ));
        pool.push(sub_ca(
            8100 + i,
            "Look-alike CA 2",
            &a,
            &k,
            spki(&k),
            default_validity(),
            None,
        ));
    }
    let cert = leaf(
        8200,
        "x@partner.example",
        &a,
        &k,
        spki(&key("partner/alice.key")),
    );
    let started = std::time::Instant::now();
    let r = store.validate_partner_certificate(&cert, &pool, None, SystemTime::now());
    let took = started.elapsed();
    assert_eq!(r.unwrap_err(), ValidationError::ChainTooLong { max: 8 });
    assert!(took < Duration::from_secs(2), "path search took {took:?}");

    // The same noise next to the real intermediate does not hide the real path.
    let real = leaf(
        8301,
        "x@partner.example",
        &subject_of(&intermediate()),
        &k,
        spki(&key("partner/alice.key")),
    );
    pool.push(intermediate());
    let started = std::time::Instant::now();
    store
        .validate_partner_certificate(&real, &pool, None, SystemTime::now())
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn too_many_offered_certificates_are_refused() {
    let (_d, store) = open();
    let pool = vec![intermediate(); certstore::MAX_OFFERED_CERTIFICATES + 1];
    let r = store.validate_partner_certificate(
        &der("partner/alice.pem"),
        &pool,
        None,
        SystemTime::now(),
    );
    assert_eq!(
        r.unwrap_err(),
        ValidationError::TooManyCertificates {
            max: certstore::MAX_OFFERED_CERTIFICATES
        }
    );
}

#[test]
fn key_usage_is_checked_by_purpose() {
    let (_d, store) = open();
    let ik = key("ca/partner-intermediate.key");
    let sign_only = leaf_with_usage(
        8400,
        "s@partner.example",
        &subject_of(&intermediate()),
        &ik,
        spki(&key("partner/alice.key")),
        false,
    );
    let check = |purpose| {
        store.validate_partner_certificate_for(
            &sign_only,
            &[intermediate()],
            Some("s@partner.example"),
            purpose,
            SystemTime::now(),
        )
    };
    check(KeyPurpose::Sign).unwrap();
    check(KeyPurpose::Any).unwrap();
    assert_eq!(
        check(KeyPurpose::Encrypt).unwrap_err(),
        ValidationError::UsageNotEmailProtection
    );
    // A normal leaf (digitalSignature + keyEncipherment) serves both.
    let both = der("partner/alice.pem");
    for purpose in [KeyPurpose::Sign, KeyPurpose::Encrypt] {
        store
            .validate_partner_certificate_for(
                &both,
                &[intermediate()],
                None,
                purpose,
                SystemTime::now(),
            )
            .unwrap();
    }
}

#[test]
fn ca_certificate_as_leaf_is_refused() {
    let (_d, store) = open();
    let ik = key("ca/partner-intermediate.key");
    let ca = sub_ca(
        8500,
        "Some Sub CA",
        &subject_of(&intermediate()),
        &ik,
        spki(&key("partner/alice.key")),
        default_validity(),
        None,
    );
    let r = store.validate_partner_certificate(&ca, &[intermediate()], None, SystemTime::now());
    assert_eq!(r.unwrap_err(), ValidationError::LeafIsCa);
}
