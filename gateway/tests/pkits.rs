#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! NIST PKITS (`../shared/pkits/`) as the mail flow sees it: each signed message is opened by
//! the gateway's MIME/CMS engine (`mime::open_message`, signature verified), and its signer is
//! validated by the certstore with the S/MIME profile and hard-fail revocation, as
//! `smime-gateway verify --revocation hard-fail` does. The RFC 5280 part alone is
//! `certstore/tests/pkits.rs` (222/224).
//!
//! Expected differences, each asserted to stay as it is:
//! - 4.1.4, 4.1.5: the messages are signed with DSA, which the S/MIME engine does not verify
//!   (RSA only).
//! - 4.2.3: a certificate with a UTCTime before 1970 (1950): the engine's DER decoder refuses
//!   the CMS structure.
//! - 4.6.8, 4.6.14, 4.8.6, 4.14.13: the end entity is a CA certificate, which the S/MIME
//!   profile refuses (a CA certificate is not an e-mail certificate).
//! - 4.14.30: circular CRL path (see certstore's test).

use std::path::PathBuf;
use std::time::SystemTime;

use certstore::{KeyPurpose, RevocationMode, StoreConfig, TrustAnchors};
use gateway::mime::open_message;

const EXPECTED_DIFFERENCES: &[&str] = &[
    "4.1.4", "4.1.5", "4.2.3", "4.6.8", "4.6.14", "4.8.6", "4.14.13", "4.14.30",
];

#[test]
fn nist_pkits_through_the_mail_flow() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/pkits");
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv"))
        .unwrap_or_else(|e| panic!("PKITS is expected at {}: {e}", dir.display()));
    let crls = std::fs::read_dir(dir.join("crls"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let anchors = TrustAnchors::from_config(&StoreConfig {
        trust_anchor_files: vec![dir.join("TrustAnchorRootCertificate.pem")],
        intermediate_files: vec![dir.join("intermediates.pem")],
        crl_files: crls,
        revocation: RevocationMode::HardFail,
        ..StoreConfig::default()
    })
    .unwrap();

    let mut right = 0;
    let mut differences = Vec::new();
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (file, expected, test) = (col("file"), col("expected"), col("test"));
    let mut total = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        total += 1;
        let f: Vec<&str> = line.split('\t').collect();
        let number = f[test].split_once(' ').unwrap().0;
        let message = std::fs::read(dir.join(f[file])).unwrap();
        let opened = open_message(gateway::smime::crypto::default_provider(), &message, &[]);
        let verdict = match opened.signature() {
            Some(sig) if sig.outcome.is_valid() => match &sig.signer_certificate {
                Some(signer) => anchors
                    .validate_for(
                        signer,
                        &sig.certificates,
                        None,
                        KeyPurpose::Sign,
                        SystemTime::now(),
                    )
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                None => Err("no signer certificate".to_string()),
            },
            Some(sig) => Err(format!("signature: {:?}", sig.outcome)),
            None => Err(format!("not verified: {:?}", opened.stopped)),
        };
        if verdict.is_ok() == (f[expected] == "valid") {
            right += 1;
        } else {
            differences.push((number.to_string(), verdict));
        }
    }
    println!("PKITS through the mail flow: {right}/{total}");
    let numbers: Vec<&str> = differences.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(numbers, EXPECTED_DIFFERENCES, "{differences:#?}");
    assert_eq!(total, 224);
}
