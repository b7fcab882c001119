#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Name constraints as S/MIME needs them (the CA/B Forum S/MIME requirements allow
//! name-constrained organisation CAs): a CA constrained to partner.example must not vouch for
//! other domains, whether the address is in subjectAltName or in the subject's emailAddress
//! attribute. (directoryName constraints: NIST PKITS 4.13.1–4.13.20, `tests/pkits.rs`.)

mod common;

use std::time::SystemTime;

use certstore::{KeyPurpose, RevocationMode, ValidationError};
use common::pki::Pki;

#[test]
fn constrained_ca_vouches_only_for_its_names() {
    let pki = Pki::new(&[
        "nameConstraints=critical,permitted;email:partner.example,excluded;email:blocked@partner.example",
    ]);
    let san = |addr: &str| format!("subjectAltName = email:{addr}");
    pki.issue("inside", "/CN=inside", &san("alice@partner.example"));
    pki.issue("outside", "/CN=outside", &san("mallory@elsewhere.example"));
    pki.issue("excluded", "/CN=excluded", &san("blocked@partner.example"));
    pki.issue(
        "subject-attribute",
        "/CN=attr/emailAddress=mallory@elsewhere.example",
        &san("alice@partner.example"),
    );
    let anchors = pki.anchors(RevocationMode::Off);
    let check = |name: &str| {
        anchors.validate_for(
            &pki.der(&format!("{name}.pem")),
            &[],
            None,
            KeyPurpose::Any,
            SystemTime::now(),
        )
    };
    check("inside").unwrap();
    for name in ["outside", "excluded", "subject-attribute"] {
        let r = check(name);
        assert!(
            matches!(r, Err(ValidationError::NameConstraintViolation { .. })),
            "{name}: {r:?}"
        );
    }
}
