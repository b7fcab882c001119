#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Encryption certificates a signer names (RFC 8551 SMIMEEncryptionKeyPreference): validated
//! for encryption, recorded only when valid, for approved domains only.

mod common;

use certstore::{CaptureOutcome, ValidationError, ValidationStatus};
use common::{capture, open_approved};

const GCM: &str = "2.16.840.1.101.3.4.1.46";

#[test]
fn a_named_encryption_certificate_is_recorded_with_the_capabilities() {
    let (_d, store) = open_approved();
    let mut named = capture("alice@partner.example", "partner/alice.pem", "<m1@p>");
    named.capabilities = vec![GCM.into()];
    let out = store
        .capture_partner_encryption_certificate(&named)
        .unwrap();
    assert!(
        matches!(
            out,
            CaptureOutcome::Stored {
                new: true,
                status: ValidationStatus::Valid,
                recorded: true,
                ..
            }
        ),
        "{out:?}"
    );
    let current = store
        .current_partner_certificate("alice@partner.example")
        .unwrap()
        .unwrap();
    assert_eq!(current.capabilities, vec![GCM.to_string()]);
}

#[test]
fn a_signing_only_key_is_refused_and_nothing_is_recorded() {
    let (_d, store) = open_approved();
    // Walter signs with Ed25519: captured as a signer, but no encryption certificate.
    let signer = capture(
        "walter@partner.example",
        "partner/walter-ed25519.pem",
        "<m@p>",
    );
    let out = store.capture_partner_certificate(&signer).unwrap();
    assert!(
        matches!(
            out,
            CaptureOutcome::Stored {
                status: ValidationStatus::Valid,
                ..
            }
        ),
        "{out:?}"
    );
    assert!(store
        .current_partner_certificate("walter@partner.example")
        .unwrap()
        .is_none());
    let out = store
        .capture_partner_encryption_certificate(&signer)
        .unwrap();
    assert_eq!(
        out,
        CaptureOutcome::Stored {
            fingerprint: out_fingerprint(&out),
            new: false,
            status: ValidationStatus::Refused(ValidationError::UnsupportedKey),
            recorded: false,
        }
    );
    assert_eq!(
        store
            .partner_history("walter@partner.example")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_certificate_of_another_address_is_refused_and_not_recorded() {
    let (_d, store) = open_approved();
    let named = capture("walter@partner.example", "partner/alice.pem", "<m@p>");
    let out = store
        .capture_partner_encryption_certificate(&named)
        .unwrap();
    assert!(
        matches!(
            &out,
            CaptureOutcome::Stored {
                status: ValidationStatus::Refused(ValidationError::AddressMismatch { .. }),
                recorded: false,
                ..
            }
        ),
        "{out:?}"
    );
    assert!(store
        .partner_history("walter@partner.example")
        .unwrap()
        .is_empty());
    // Unlike a signing certificate, a refused one is not kept in the history either.
    assert!(store
        .partner_history("alice@partner.example")
        .unwrap()
        .is_empty());
}

#[test]
fn unapproved_domains_are_not_recorded() {
    let (_d, store) = open_approved();
    let named = capture("mallory@other.example", "partner/other.pem", "<m@o>");
    let out = store
        .capture_partner_encryption_certificate(&named)
        .unwrap();
    assert!(
        matches!(
            out,
            CaptureOutcome::Stored {
                status: ValidationStatus::Valid,
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
}

fn out_fingerprint(out: &CaptureOutcome) -> String {
    match out {
        CaptureOutcome::Stored { fingerprint, .. } | CaptureOutcome::Blocked { fingerprint } => {
            fingerprint.clone()
        }
    }
}
