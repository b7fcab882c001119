#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Proxy CA and proxy identities.

mod common;

use std::time::SystemTime;

use certstore::{AuditKind, Store, StoreError};
use common::{fixtures, read};
use der::{Decode, Encode};
use x509_cert::Certificate;

fn agency() -> Vec<String> {
    vec!["agency.example".to_string()]
}

fn init() -> (tempfile::TempDir, Store) {
    let (d, store) = common::open();
    assert!(!store.is_initialised());
    store
        .init_proxy_ca("Agency S/MIME Proxy CA", &agency())
        .unwrap();
    assert!(store.is_initialised());
    (d, store)
}

#[test]
fn proxy_ca_init_and_export() {
    let (_d, store) = init();
    let der = store.proxy_ca_certificate_der().unwrap();
    let cert = Certificate::from_der(&der).unwrap();
    assert_eq!(
        cert.tbs_certificate.subject.to_string(),
        "CN=Agency S/MIME Proxy CA"
    );
    let pem = store.proxy_ca_certificate_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let key = store.export_proxy_ca_key_pem().unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(matches!(
        store.init_proxy_ca("again", &agency()),
        Err(StoreError::AlreadyInitialised)
    ));
    let kinds: Vec<AuditKind> = store
        .audit(10, None)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![AuditKind::ProxyCaKeyExported, AuditKind::ProxyCaCreated]
    );

    // The exported pair imports into a fresh store.
    let dir2 = tempfile::tempdir().unwrap();
    let other = Store::open(dir2.path(), common::config()).unwrap();
    other.import_proxy_ca(&pem, &key).unwrap();
    assert_eq!(other.proxy_ca_certificate_der().unwrap(), der);

    // openssl agrees it is a CA with a 3072-bit key.
    if let Ok(out) = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(pem.as_bytes())?;
            c.wait_with_output()
        })
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("CA:TRUE"), "{text}");
        assert!(text.contains("3072 bit"), "{text}");
        assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
        assert!(text.contains("sha256WithRSAEncryption"), "{text}");
    }
}

#[test]
fn uninitialised_store_refuses_issuance() {
    let (_d, store) = common::open();
    assert!(matches!(
        store.ensure_proxy_identity("user@agency.example"),
        Err(StoreError::NotInitialised)
    ));
    assert!(matches!(
        store.proxy_ca_certificate_der(),
        Err(StoreError::NotInitialised)
    ));
    assert!(matches!(
        store.export_proxy_ca_key_pem(),
        Err(StoreError::NotInitialised)
    ));
}

#[test]
fn import_fixture_proxy_ca_and_bad_inputs() {
    let (_d, store) = common::open();
    let cert = read("proxy/proxy-ca.pem");
    let key = read("proxy/proxy-ca.key");
    // Wrong key for the certificate.
    assert!(matches!(
        store.import_proxy_ca(&cert, &read("partner/alice.key")),
        Err(StoreError::KeyMismatch)
    ));
    // Not a CA.
    assert!(matches!(
        store.import_proxy_ca(&read("partner/alice.pem"), &read("partner/alice.key")),
        Err(StoreError::NotACa(_))
    ));
    // Garbage.
    assert!(matches!(
        store.import_proxy_ca("garbage", &key),
        Err(StoreError::BadEncoding(_))
    ));
    assert!(matches!(
        store.import_proxy_ca(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            &key
        ),
        Err(StoreError::BadEncoding(_))
    ));
    assert!(matches!(
        store.import_proxy_ca(&cert, "nope"),
        Err(StoreError::BadEncoding(_))
    ));
    assert!(matches!(
        store.import_proxy_ca(
            &cert,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
        ),
        Err(StoreError::UnsupportedKey(_))
    ));
    assert!(!store.is_initialised());
    store.import_proxy_ca(&cert, &key).unwrap();
    // Duplicate import.
    assert!(matches!(
        store.import_proxy_ca(&cert, &key),
        Err(StoreError::AlreadyInitialised)
    ));
    // Issued certificates name the imported CA as issuer (RFC 4514 order: last RDN first).
    let id = store.ensure_proxy_identity("user@agency.example").unwrap();
    let issued = Certificate::from_der(&id.certificate_der).unwrap();
    assert_eq!(
        issued.tbs_certificate.issuer.to_string(),
        "CN=Agency S/MIME Proxy CA,O=Agency"
    );
}

#[test]
fn issue_lookup_renew() {
    let (_d, store) = init();
    assert!(store
        .current_proxy_identity("user@agency.example")
        .unwrap()
        .is_none());
    let first = store.ensure_proxy_identity("User@Agency.Example").unwrap();
    assert_eq!(first.address, "user@agency.example");
    // ensure is idempotent.
    let again = store.ensure_proxy_identity("user@agency.example").unwrap();
    assert_eq!(again.fingerprint_sha256, first.fingerprint_sha256);
    let cur = store
        .current_proxy_identity("user@agency.example")
        .unwrap()
        .unwrap();
    assert_eq!(cur.fingerprint_sha256, first.fingerprint_sha256);
    let days = cur
        .not_after
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs()
        / 86_400;
    assert!((363..=365).contains(&days), "{days}");

    let cert = Certificate::from_der(&first.certificate_der).unwrap();
    let issuer_der = cert.tbs_certificate.issuer.to_der().unwrap();
    let serial = cert.tbs_certificate.serial_number.as_bytes().to_vec();
    assert!(serial[0] < 0x80, "positive serial");
    assert_eq!(hex::encode(&serial), first.serial_hex);

    let renewed = store.renew_proxy_identity("user@agency.example").unwrap();
    assert_ne!(renewed.fingerprint_sha256, first.fingerprint_sha256);
    assert_ne!(*renewed.private_key_pkcs8_der, *first.private_key_pkcs8_der);
    let cur = store
        .current_proxy_identity("user@agency.example")
        .unwrap()
        .unwrap();
    assert_eq!(cur.fingerprint_sha256, renewed.fingerprint_sha256);
    let all = store.proxy_identities("user@agency.example").unwrap();
    assert_eq!(
        all.iter()
            .map(|i| i.fingerprint_sha256.clone())
            .collect::<Vec<_>>(),
        vec![
            renewed.fingerprint_sha256.clone(),
            first.fingerprint_sha256.clone()
        ]
    );

    // Old key still found by issuer+serial (with and without a leading zero) and by SKI.
    let by_is = store
        .proxy_identity_by_issuer_serial(&issuer_der, &serial)
        .unwrap()
        .unwrap();
    assert_eq!(by_is.fingerprint_sha256, first.fingerprint_sha256);
    assert_eq!(*by_is.private_key_pkcs8_der, *first.private_key_pkcs8_der);
    let mut padded = vec![0u8];
    padded.extend_from_slice(&serial);
    assert!(store
        .proxy_identity_by_issuer_serial(&issuer_der, &padded)
        .unwrap()
        .is_some());
    assert!(store
        .proxy_identity_by_issuer_serial(&issuer_der, &[1, 2, 3])
        .unwrap()
        .is_none());
    let ski = cert
        .tbs_certificate
        .extensions
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
        .map(|e| {
            x509_cert::ext::pkix::SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).unwrap()
        })
        .unwrap();
    let by_ski = store
        .proxy_identity_by_ski(ski.0.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(by_ski.fingerprint_sha256, first.fingerprint_sha256);
    assert!(store.proxy_identity_by_ski(b"nope").unwrap().is_none());

    store.ensure_proxy_identity("other@agency.example").unwrap();
    let list = store.proxy_addresses().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].address, "user@agency.example");
    assert_eq!(list[1].key_count, 2);
    assert_eq!(
        list[1].current_fingerprint.as_deref(),
        Some(renewed.fingerprint_sha256.as_str())
    );

    let kinds: Vec<AuditKind> = store
        .audit(3, None)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            AuditKind::ProxyIssued,
            AuditKind::ProxyRenewed,
            AuditKind::ProxyIssued
        ]
    );
    assert_eq!(
        store
            .audit(10, Some(AuditKind::ProxyRenewed))
            .unwrap()
            .len(),
        1
    );

    // Bad addresses are typed errors.
    for bad in ["", "nobody", "a@", "@b.example", "a b@c.example", "a@b"] {
        assert!(
            matches!(
                store.ensure_proxy_identity(bad),
                Err(StoreError::InvalidAddress(_))
            ),
            "{bad}"
        );
    }
}

/// `openssl x509 -text` of a PEM certificate file.
fn openssl_x509_text(path: &std::path::Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn issued_certificate_profile_and_openssl_verify() {
    let (dir, store) = init();
    let id = store.ensure_proxy_identity("user@agency.example").unwrap();
    let cert = Certificate::from_der(&id.certificate_der).unwrap();
    let exts = cert.tbs_certificate.extensions.clone().unwrap();
    let eku = exts
        .iter()
        .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
        .unwrap();
    assert!(!eku.critical, "EKU is non-critical");
    // Key is PKCS#8 RSA-2048 and matches the certificate.
    let key = crypto_provider::keys::parse(&id.private_key_pkcs8_der).unwrap();
    assert_eq!(key.bits, 2048);

    let ca_path = dir.path().join("ca.pem");
    let leaf_path = dir.path().join("leaf.pem");
    std::fs::write(&ca_path, store.proxy_ca_certificate_pem().unwrap()).unwrap();
    let leaf_pem =
        der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &id.certificate_der)
            .unwrap();
    std::fs::write(&leaf_path, leaf_pem).unwrap();
    for purpose in ["smimesign", "smimeencrypt"] {
        let Ok(out) = std::process::Command::new("openssl")
            .args(["verify", "-purpose", purpose, "-CAfile"])
            .arg(&ca_path)
            .arg(&leaf_path)
            .output()
        else {
            eprintln!("openssl not available; skipped");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("OK"),
            "{purpose}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = openssl_x509_text(&leaf_path);
    for want in [
        "email:user@agency.example",
        "E-mail Protection",
        "Digital Signature, Non Repudiation, Key Encipherment",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "CA:FALSE",
        "sha256WithRSAEncryption",
    ] {
        assert!(text.contains(want), "missing {want}: {text}");
    }
    let _ = fixtures();
}

#[test]
fn configured_validity() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        certstore::StoreConfig {
            proxy_cert_validity_days: 30,
            ..common::config()
        },
    )
    .unwrap();
    store.init_proxy_ca("CA", &agency()).unwrap();
    let id = store.ensure_proxy_identity("a@agency.example").unwrap();
    let days = id
        .not_after
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs()
        / 86_400;
    assert!((28..=30).contains(&days), "{days}");
    // A 30-day certificate is not renewed by ensure (threshold is 7 days).
    let again = store.ensure_proxy_identity("a@agency.example").unwrap();
    assert_eq!(again.fingerprint_sha256, id.fingerprint_sha256);
}

#[test]
fn p256_proxy_identities_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        certstore::StoreConfig {
            proxy_key_type: certstore::ProxyKeyType::P256,
            ..common::config()
        },
    )
    .unwrap();
    store.init_proxy_ca("CA", &agency()).unwrap();
    let id = store.ensure_proxy_identity("ec@agency.example").unwrap();
    let key = common::config()
        .crypto
        .load_private_key(&id.private_key_pkcs8_der)
        .unwrap();
    use crypto_provider::PrivateKeyOps;
    assert_eq!(
        key.algorithm(),
        crypto_provider::PublicKeyAlg::Ec {
            curve: crypto_provider::EcCurve::P256
        }
    );
    let cert = Certificate::from_der(&id.certificate_der).unwrap();
    assert_eq!(
        cert.tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap(),
        key.public_key_spki_der().unwrap(),
        "the certificate holds the key"
    );
    let ca_path = dir.path().join("ca.pem");
    let leaf_path = dir.path().join("leaf.pem");
    std::fs::write(&ca_path, store.proxy_ca_certificate_pem().unwrap()).unwrap();
    std::fs::write(
        &leaf_path,
        der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &id.certificate_der)
            .unwrap(),
    )
    .unwrap();
    // Only smimesign: OpenSSL's smimeencrypt purpose demands keyEncipherment, which an ECDH
    // key has no use for (RFC 8551 §4.4.2 wants keyAgreement; `cms -encrypt` does not check).
    let out = std::process::Command::new("openssl")
        .args(["verify", "-purpose", "smimesign", "-CAfile"])
        .arg(&ca_path)
        .arg(&leaf_path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = openssl_x509_text(&leaf_path);
    for want in [
        "id-ecPublicKey",
        "prime256v1",
        "Digital Signature, Non Repudiation, Key Agreement",
        "sha256WithRSAEncryption",
    ] {
        assert!(text.contains(want), "missing {want}: {text}");
    }
}
