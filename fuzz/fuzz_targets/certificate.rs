//! Certificate parsing and path validation with attacker-supplied intermediates: the input is a
//! run of DER certificates, the first the signer's, the rest what a message would carry. The
//! anchor is the fixture partner root (as a partner-certificate capture would use it).
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use certstore::{KeyPurpose, TrustAnchors};
use gateway::smime::certs;
use libfuzzer_sys::fuzz_target;
use smime_gateway_fuzz::{fixture_path, split_elements, within_cpu_budget};

static ANCHORS: OnceLock<TrustAnchors> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let anchors = ANCHORS.get_or_init(|| {
        TrustAnchors::from_files(&[fixture_path("ca/partner-root.pem")], &[]).unwrap()
    });
    // A fixed "now" inside the fixtures' validity, so a run does not depend on the date.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    within_cpu_budget("certificate", data.len(), || {
        let elements = split_elements(data);
        for der in &elements {
            if let Ok(cert) = certs::parse_certificate(der) {
                let _ = certs::email_addresses(&cert);
                let _ = certs::subject_key_identifier(&cert);
                let _ = certs::subject_string(&cert);
            }
        }
        let _ = certs::parse_certificates(data);
        let _ = certstore::parse_certificate_input(data);
        let Some((leaf, offered)) = elements.split_first() else {
            return;
        };
        let offered: Vec<Vec<u8>> = offered.iter().map(|c| c.to_vec()).collect();
        let _ = anchors.validate_for(
            leaf,
            &offered,
            Some("alice@partner.example"),
            KeyPurpose::Any,
            now,
        );
        let _ = anchors.validate_path(leaf, &offered, now);
    });
});
