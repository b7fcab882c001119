#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! The proxy CA cannot be abused: name constraints checked by OpenSSL, rotation.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use certstore::{AuditKind, Store};

fn agency() -> Vec<String> {
    vec!["agency.example".to_string()]
}

fn init() -> (tempfile::TempDir, Store) {
    let (d, store) = common::open();
    store
        .init_proxy_ca("agency.example S/MIME Proxy CA", &agency())
        .unwrap();
    (d, store)
}

fn pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `openssl verify -CAfile ca [-purpose p] cert`.
fn verify(ca: &Path, purpose: Option<&str>, cert: &Path) -> (bool, String) {
    let mut args = vec!["verify", "-CAfile", path(ca)];
    if let Some(p) = purpose {
        args.extend_from_slice(&["-purpose", p]);
    }
    args.push(path(cert));
    openssl(&args)
}

/// A certificate signed with the proxy CA's own key by OpenSSL, with whatever extensions the
/// test wants: what someone holding the key (or a bug in our issuance policy) could make.
fn forge(dir: &Path, ca: &Path, ca_key: &Path, name: &str, subject: &str, exts: &str) -> PathBuf {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let cert = dir.join(format!("{name}.pem"));
    let ext = write(dir, &format!("{name}.ext"), exts);
    let (ok, text) = openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        subject,
        "-keyout",
        path(&key),
        "-out",
        path(&csr),
    ]);
    assert!(ok, "{text}");
    let (ok, text) = openssl(&[
        "x509",
        "-req",
        "-in",
        path(&csr),
        "-CA",
        path(ca),
        "-CAkey",
        path(ca_key),
        "-set_serial",
        "4242",
        "-days",
        "30",
        "-sha256",
        "-extfile",
        path(&ext),
        "-out",
        path(&cert),
    ]);
    assert!(ok, "{text}");
    cert
}

#[test]
fn new_ca_is_name_constrained_email_only_and_five_years() {
    let (dir, store) = init();
    let ca = write(
        dir.path(),
        "ca.pem",
        &store.proxy_ca_certificate_pem().unwrap(),
    );
    let (ok, text) = openssl(&["x509", "-noout", "-text", "-in", path(&ca)]);
    assert!(ok, "{text}");
    for want in [
        "X509v3 Name Constraints: critical",
        "email:agency.example",
        "email:.agency.example",
        "Excluded:",
        "DNS:",
        "IP:0.0.0.0/0.0.0.0",
        "IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0",
        "CA:TRUE, pathlen:0",
        "Certificate Sign, CRL Sign",
        "E-mail Protection",
    ] {
        assert!(text.contains(want), "missing {want}: {text}");
    }
    assert!(!text.contains("TLS Web Server"), "{text}");
    let cas = store.proxy_cas().unwrap();
    assert_eq!(cas.len(), 1);
    assert!(cas[0].current && cas[0].name_constrained);
    let years = cas[0]
        .not_after
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs()
        / (365 * 86_400);
    assert_eq!(years, 5, "new proxy CAs are valid for five years");
}

#[test]
fn openssl_accepts_our_certificates_and_rejects_anything_outside_the_constraints() {
    let (dir, store) = init();
    let d = dir.path();
    let ca = write(d, "ca.pem", &store.proxy_ca_certificate_pem().unwrap());
    let ca_key = write(d, "ca.key", &store.export_proxy_ca_key_pem().unwrap());

    // What we issue for an internal address (and a subdomain) passes for S/MIME.
    for address in ["user@agency.example", "clerk@branch.agency.example"] {
        let id = store.ensure_proxy_identity(address).unwrap();
        let leaf = write(d, "leaf.pem", &pem(&id.certificate_der));
        for purpose in ["smimesign", "smimeencrypt"] {
            let (ok, text) = verify(&ca, Some(purpose), &leaf);
            assert!(ok && text.contains("OK"), "{address} {purpose}: {text}");
        }
        // Our proxy certificates are for e-mail only.
        let (ok, text) = verify(&ca, Some("sslclient"), &leaf);
        assert!(!ok, "{address} must not pass as a TLS client: {text}");
    }

    // The same CA key signing for an outside address: OpenSSL refuses the name.
    let outside = forge(
        d,
        &ca,
        &ca_key,
        "ceo",
        "/CN=ceo@bigbank.example",
        "subjectAltName = email:ceo@bigbank.example\n\
         extendedKeyUsage = emailProtection\n\
         keyUsage = critical, digitalSignature, keyEncipherment\n",
    );
    for purpose in ["smimesign", "smimeencrypt"] {
        let (ok, text) = verify(&ca, Some(purpose), &outside);
        assert!(!ok, "ceo@bigbank.example passed {purpose}: {text}");
        assert!(text.contains("permitted subtree violation"), "{text}");
    }
    // A look-alike domain is outside too ("agency.example" must not match a suffix).
    let lookalike = forge(
        d,
        &ca,
        &ca_key,
        "lookalike",
        "/CN=x@evilagency.example",
        "subjectAltName = email:x@evilagency.example\nextendedKeyUsage = emailProtection\n",
    );
    let (ok, text) = verify(&ca, Some("smimesign"), &lookalike);
    assert!(
        !ok && text.contains("permitted subtree violation"),
        "{text}"
    );
    // An outside address only in the subject's emailAddress attribute is checked as well.
    let in_subject = forge(
        d,
        &ca,
        &ca_key,
        "subject",
        "/CN=Chief/emailAddress=ceo@bigbank.example",
        "extendedKeyUsage = emailProtection\n",
    );
    let (ok, text) = verify(&ca, Some("smimesign"), &in_subject);
    assert!(
        !ok && text.contains("permitted subtree violation"),
        "{text}"
    );

    // A TLS server certificate from the same key: refused by name (whatever the purpose
    // asked), and by purpose too, since the CA itself is for e-mail only.
    for (name, subject, san) in [
        ("web", "/CN=www.bigbank.example", "DNS:www.bigbank.example"),
        ("web-cn", "/CN=www.bigbank.example", ""),
        ("web-ip4", "/CN=server", "IP:192.0.2.1"),
        ("web-ip6", "/CN=server", "IP:2001:db8::1"),
    ] {
        let mut exts = String::from(
            "extendedKeyUsage = serverAuth\nkeyUsage = critical, digitalSignature, keyEncipherment\n",
        );
        if !san.is_empty() {
            exts.push_str(&format!("subjectAltName = {san}\n"));
        }
        let server = forge(d, &ca, &ca_key, name, subject, &exts);
        let (ok, text) = verify(&ca, None, &server);
        assert!(!ok, "{name} passed: {text}");
        assert!(
            text.contains("excluded subtree violation"),
            "{name}: {text}"
        );
        let (ok, text) = verify(&ca, Some("sslserver"), &server);
        assert!(!ok, "{name} passed as sslserver: {text}");
    }
}

#[test]
fn rotation_keeps_old_keys_and_issues_under_the_new_ca() {
    let (dir, store) = init();
    let d = dir.path();
    let old_ca = write(d, "old-ca.pem", &store.proxy_ca_certificate_pem().unwrap());
    let old = store.ensure_proxy_identity("bob@agency.example").unwrap();

    let info = store
        .rotate_proxy_ca("agency.example S/MIME Proxy CA G2", &agency())
        .unwrap();
    assert!(info.current && info.name_constrained);
    let new_ca = write(d, "new-ca.pem", &store.proxy_ca_certificate_pem().unwrap());
    assert_ne!(
        std::fs::read(&old_ca).unwrap(),
        std::fs::read(&new_ca).unwrap()
    );
    let cas = store.proxy_cas().unwrap();
    assert_eq!(cas.len(), 2);
    assert!(cas[0].current && !cas[1].current);
    assert_eq!(cas[0].fingerprint_sha256, info.fingerprint_sha256);
    let all = store.all_proxy_ca_certificates_pem().unwrap();
    assert_eq!(all.matches("BEGIN CERTIFICATE").count(), 2);

    // Next use issues under the new CA; the old key stays for decryption of old mail.
    assert!(store
        .current_proxy_identity("bob@agency.example")
        .unwrap()
        .is_none());
    let summary = &store.proxy_addresses().unwrap()[0];
    assert_eq!(
        (summary.key_count, summary.current_fingerprint.as_ref()),
        (1, None)
    );
    let new = store.ensure_proxy_identity("bob@agency.example").unwrap();
    assert_ne!(new.fingerprint_sha256, old.fingerprint_sha256);
    let new_leaf = write(d, "new.pem", &pem(&new.certificate_der));
    let old_leaf = write(d, "old.pem", &pem(&old.certificate_der));
    let (ok, text) = verify(&new_ca, Some("smimesign"), &new_leaf);
    assert!(ok, "{text}");
    let (ok, _) = verify(&old_ca, Some("smimesign"), &new_leaf);
    assert!(!ok, "the new certificate must not chain to the old CA");
    let (ok, text) = verify(&old_ca, Some("smimesign"), &old_leaf);
    assert!(
        ok,
        "the old certificate still verifies under the old CA: {text}"
    );
    let keys: Vec<String> = store
        .proxy_identities("bob@agency.example")
        .unwrap()
        .into_iter()
        .map(|i| i.fingerprint_sha256)
        .collect();
    assert_eq!(
        keys,
        vec![new.fingerprint_sha256.clone(), old.fingerprint_sha256]
    );
    let again = store.ensure_proxy_identity("bob@agency.example").unwrap();
    assert_eq!(again.fingerprint_sha256, new.fingerprint_sha256);
    let summary = &store.proxy_addresses().unwrap()[0];
    assert_eq!(
        (summary.key_count, summary.current_fingerprint.as_ref()),
        (2, Some(&new.fingerprint_sha256))
    );

    let kinds: Vec<AuditKind> = store
        .audit(10, None)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&AuditKind::ProxyCaRotated), "{kinds:?}");
    // The rotation survives a reopen.
    drop(store);
    let store = common::reopen(d, common::config());
    assert_eq!(store.proxy_cas().unwrap().len(), 2);
    assert!(store
        .proxy_cas()
        .unwrap()
        .iter()
        .all(|ca| ca.name_constrained));
}

#[test]
fn rotation_needs_a_ca_and_valid_domains() {
    let (_d, store) = common::open();
    assert!(matches!(
        store.rotate_proxy_ca("CA", &agency()),
        Err(certstore::StoreError::NotInitialised)
    ));
    assert!(store.init_proxy_ca("CA", &[]).is_err());
    assert!(store
        .init_proxy_ca("CA", &["not a domain".to_string()])
        .is_err());
    assert!(!store.is_initialised());
}

#[test]
fn proxy_certificates_never_outlive_their_ca() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        certstore::StoreConfig {
            proxy_cert_validity_days: 20 * 366,
            ..common::config()
        },
    )
    .unwrap();
    store.init_proxy_ca("CA", &agency()).unwrap();
    let ca_end = store.proxy_cas().unwrap()[0].not_after;
    let id = store.ensure_proxy_identity("a@agency.example").unwrap();
    assert!(id.not_after <= ca_end);
    assert!(id.not_after + Duration::from_secs(60) >= ca_end);
}
