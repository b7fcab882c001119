#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! The current proxy identity's fingerprint, remembered per address for outbound mail
//! (issue 12): always the identity `ensure_proxy_identity` gives, also right after a renewal,
//! a CA rotation or an import.

mod common;

use certstore::Store;

const BOB: &str = "bob@agency.example";

fn init() -> (tempfile::TempDir, Store) {
    let (d, store) = common::open();
    store
        .init_proxy_ca("agency.example CA", &["agency.example".to_string()])
        .unwrap();
    (d, store)
}

fn current(store: &Store) -> String {
    store.ensure_proxy_identity(BOB).unwrap().fingerprint_sha256
}

#[test]
fn the_remembered_fingerprint_follows_renewal_and_rotation() {
    let (_d, store) = init();
    let first = store.ensure_proxy_fingerprint(BOB).unwrap();
    assert_eq!(first, current(&store));
    // Remembered: the same answer, also under another spelling of the address.
    assert_eq!(store.ensure_proxy_fingerprint(BOB).unwrap(), first);
    assert_eq!(
        store
            .ensure_proxy_fingerprint("Bob@AGENCY.example")
            .unwrap(),
        first
    );
    assert!(store
        .proxy_identity_by_fingerprint(&first)
        .unwrap()
        .is_some());

    let renewed = store.renew_proxy_identity(BOB).unwrap().fingerprint_sha256;
    assert_ne!(renewed, first);
    assert_eq!(store.ensure_proxy_fingerprint(BOB).unwrap(), renewed);

    store
        .rotate_proxy_ca("agency.example CA G2", &["agency.example".to_string()])
        .unwrap();
    let rotated = store.ensure_proxy_fingerprint(BOB).unwrap();
    assert_ne!(rotated, renewed, "issued under the new CA on next use");
    assert_eq!(rotated, current(&store));
    // Every identity stays listed for decryption, newest first.
    assert_eq!(
        store.proxy_fingerprints(BOB).unwrap(),
        vec![rotated, renewed, first]
    );
}

#[test]
fn the_first_use_issues_and_other_addresses_are_apart() {
    let (_d, store) = init();
    let bob = store.ensure_proxy_fingerprint(BOB).unwrap();
    let carol = store
        .ensure_proxy_fingerprint("carol@agency.example")
        .unwrap();
    assert_ne!(bob, carol);
    assert_eq!(store.proxy_fingerprints(BOB).unwrap(), vec![bob]);
}
