use super::*;

fn no_trust() -> StoreConfig {
    StoreConfig {
        use_system_trust: false,
        ..StoreConfig::default()
    }
}

#[test]
fn creates_reopens_and_refuses_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), no_trust()).unwrap();
    assert_eq!(store.schema_version(), SCHEMA_VERSION);
    store
        .approve_domain("partner.example", crate::DomainPolicy::Smime, "t", "")
        .unwrap();
    drop(store);
    let store = Store::open(dir.path(), no_trust()).unwrap();
    assert!(store.domain("partner.example").unwrap().is_some());
    set_schema_version(&store, SCHEMA_VERSION + 1);
    drop(store);
    // sled releases its file lock from a background thread: on a loaded machine the first
    // re-open can still find it held.
    let mut err = Store::open(dir.path(), no_trust()).err().unwrap();
    for _ in 0..50 {
        if matches!(err, StoreError::UnsupportedSchemaVersion { .. }) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        err = Store::open(dir.path(), no_trust()).err().unwrap();
    }
    assert!(matches!(
        err,
        StoreError::UnsupportedSchemaVersion { found, supported }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
    ));
    assert!(err.to_string().contains("newer version"), "{err}");
}

#[test]
fn bad_trust_configuration_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = StoreConfig {
        trust_anchor_files: vec![dir.path().join("nope.pem")],
        ..no_trust()
    };
    assert!(matches!(
        Store::open(dir.path(), missing),
        Err(StoreError::Io { .. })
    ));
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello").unwrap();
    let bad = StoreConfig {
        trust_anchor_files: vec![garbage.clone()],
        ..no_trust()
    };
    assert!(matches!(
        Store::open(dir.path(), bad),
        Err(StoreError::Io { .. })
    ));
    let bad_crl = StoreConfig {
        crl_files: vec![garbage],
        ..no_trust()
    };
    assert!(matches!(
        Store::open(dir.path(), bad_crl),
        Err(StoreError::Io { .. })
    ));
}

#[test]
fn system_trust_is_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(
        store.inner.trust.anchor_count(),
        0,
        "explicit anchors only by default"
    );
    drop(store);
    let config = StoreConfig {
        use_system_trust: true,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config).unwrap();
    if std::path::Path::new("/etc/ssl/certs").exists() {
        assert!(store.inner.trust.anchor_count() > 10);
    }
}

fn set_schema_version(store: &Store, v: u32) {
    let meta = store.inner.db.open_tree("meta").unwrap();
    meta.insert(META_SCHEMA_KEY, &v.to_be_bytes()).unwrap();
    store.flush().unwrap();
}
