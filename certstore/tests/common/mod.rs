#![allow(dead_code)]

use std::path::PathBuf;
use std::time::SystemTime;

use certstore::{PartnerCapture, Store, StoreConfig};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(fixtures().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// DER of the first certificate in a fixture PEM file.
pub fn der(rel: &str) -> Vec<u8> {
    certstore::parse_certificate_input(read(rel).as_bytes())
        .unwrap()
        .remove(0)
}

pub fn intermediate() -> Vec<u8> {
    der("ca/partner-intermediate.pem")
}

/// Trusts the partner root only (intermediates come from "the message"), with the CRL.
pub fn config() -> StoreConfig {
    StoreConfig {
        trust_anchor_files: vec![fixtures().join("ca/partner-root.pem")],
        use_system_trust: false,
        crl_files: vec![fixtures().join("ca/partner-intermediate.crl")],
        ..StoreConfig::default()
    }
}

pub fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), config()).unwrap();
    (dir, store)
}

pub fn capture(address: &str, rel: &str, msg: &str) -> PartnerCapture {
    PartnerCapture {
        address: address.into(),
        certificate_der: der(rel),
        chain_der: vec![intermediate()],
        message_id: Some(msg.into()),
        seen_at: SystemTime::now(),
    }
}
