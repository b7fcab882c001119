#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! The proxy CA through the real binary: rotation keeps old mail readable and signs new mail
//! under the new CA; the exported key file is owner-only.

use std::path::Path;
use std::time::Duration;

use integration_tests::gateway::{fixture, GatewayProcess};
use integration_tests::openssl::{
    decrypt_as_partner, encrypt_entity, ok as openssl_ok, partner_message, verified_signer,
};
use integration_tests::{send_mail, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);

fn start() -> (SmtpSink, SmtpSink, GatewayProcess) {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let gateway = GatewayProcess::start_with_partner(&inbound, &outbound).expect("gateway starts");
    (inbound, outbound, gateway)
}

/// alice's cert-query for user@agency.example: the signed reply.
fn cert_query(gateway: &GatewayProcess, outbound: &SmtpSink, replies_before: usize) -> Vec<u8> {
    gateway
        .cert_query(
            outbound,
            ("alice@partner.example", "alice"),
            "user@agency.example",
            replies_before,
        )
        .unwrap()
}

fn signer_under(ca: &Path, signed: &[u8], dir: &Path) -> Option<String> {
    verified_signer(ca, signed, dir).unwrap()
}

#[test]
fn rotation_keeps_old_mail_readable_and_signs_under_the_new_ca() {
    let (inbound, outbound, mut gateway) = start();
    let dir = gateway.dir.path().to_path_buf();
    let old_ca = dir.join("old-ca.pem");
    std::fs::copy(gateway.proxy_ca_pem(), &old_ca).unwrap();

    // Before: the proxy certificate chains to the (constrained) first CA.
    let reply = cert_query(&gateway, &outbound, 0);
    let old_proxy = signer_under(&old_ca, &reply, &dir).expect("reply verifies under the CA");
    let old_proxy_path = dir.join("old-proxy.pem");
    std::fs::write(&old_proxy_path, &old_proxy).unwrap();
    // Mail the partner encrypted to that certificate, delivered only after the rotation.
    let old_mail = encrypt_entity(
        &partner_message(
            "alice@partner.example",
            "user@agency.example",
            "Written before the rotation",
            "The old vault code is 9876.",
            Some("alice"),
        )
        .unwrap(),
        old_proxy_path.to_str().unwrap(),
    )
    .unwrap();

    gateway.stop();
    let out = gateway.cli(&["proxy-ca", "rotate"]).unwrap();
    assert!(
        out.contains("G2") && out.contains("agency.example"),
        "{out}"
    );
    let list = gateway.cli(&["proxy-ca", "list"]).unwrap();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains("\"current\":true") && list.contains("\"current\":false"));
    let all = dir.join("all-cas.pem");
    gateway
        .cli(&["export-ca", "--all", "--out", all.to_str().unwrap()])
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&all)
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
    gateway.restart().unwrap();
    let new_ca = Path::new(&gateway.proxy_ca_pem()).to_path_buf();
    assert_ne!(
        std::fs::read(&new_ca).unwrap(),
        std::fs::read(&old_ca).unwrap(),
        "proxy-ca.pem now holds the new CA"
    );

    // Old mail still decrypts with the old key.
    let (code, text) = send_mail(
        &gateway.smtp,
        "alice@partner.example",
        &["user@agency.example"],
        &old_mail,
    )
    .unwrap();
    assert_eq!(code, 250, "{text}");
    let delivered = inbound.wait_for_messages(1, WAIT).unwrap();
    let text = delivered[0].text();
    assert!(text.contains("The old vault code is 9876."), "{text}");
    assert!(text.contains("X-SMIME-Gateway: decrypted"), "{text}");

    // New outbound signatures chain to the new CA, and not to the old one.
    let mail = b"From: user@agency.example\r\nTo: alice@partner.example\r\nSubject: after\r\nMessage-ID: <after@agency.example>\r\n\r\nSigned under the new CA.\r\n";
    let (code, text) = send_mail(
        &gateway.smtp,
        "user@agency.example",
        &["alice@partner.example"],
        mail,
    )
    .unwrap();
    assert_eq!(code, 250, "{text}");
    let sent = outbound.wait_for_messages(2, WAIT).unwrap();
    let inner = decrypt_as_partner(&sent[1].data, "alice").unwrap();
    let new_proxy = signer_under(&new_ca, &inner, &dir).expect("signature chains to the new CA");
    assert!(signer_under(&old_ca, &inner, &dir).is_none());
    assert_ne!(new_proxy, old_proxy);
    let subject = openssl_ok(
        &["x509", "-noout", "-issuer", "-ext", "subjectAltName"],
        new_proxy.as_bytes(),
    )
    .unwrap();
    let subject = String::from_utf8_lossy(&subject);
    assert!(
        subject.contains("Proxy CA G2") && subject.contains("user@agency.example"),
        "{subject}"
    );
    // The cert-query now hands out the new certificate and the new CA.
    let reply = cert_query(&gateway, &outbound, 2);
    assert_eq!(signer_under(&new_ca, &reply, &dir), Some(new_proxy));
}

#[test]
fn exported_private_key_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (_inbound, _outbound, mut gateway) = start();
    gateway.stop();
    let dir = gateway.dir.path().to_path_buf();
    let fresh = dir.join("ca-with-key.pem");
    // Also an existing world-readable file: narrowed, not written as it was.
    let existing = dir.join("existing.pem");
    std::fs::write(&existing, "old").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
    for out in [&fresh, &existing] {
        gateway
            .cli(&[
                "export-ca",
                "--with-private-key",
                "--out",
                out.to_str().unwrap(),
            ])
            .unwrap();
        let mode = std::fs::metadata(out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", out.display());
        let text = std::fs::read_to_string(out).unwrap();
        assert!(text.contains("BEGIN CERTIFICATE") && text.contains("BEGIN PRIVATE KEY"));
    }
    // The certificate alone is public: no need to restrict it.
    let public = dir.join("ca.pem");
    gateway
        .cli(&["export-ca", "--out", public.to_str().unwrap()])
        .unwrap();
    assert!(!std::fs::read_to_string(&public)
        .unwrap()
        .contains("PRIVATE KEY"));
}

#[test]
fn an_unconstrained_ca_keeps_working_with_a_warning_until_rotated() {
    use integration_tests::gateway::binary;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\nhostname = \"gw.agency.example\"\ninternal_domains = [\"agency.example\"]\n[trust]\nuse_system_store = false\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(binary().unwrap())
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The fixture proxy CA predates name constraints.
    let (_, warning) = run(&[
        "init",
        "--import-ca-cert",
        &fixture("proxy/proxy-ca.pem"),
        "--import-ca-key",
        &fixture("proxy/proxy-ca.key"),
    ]);
    assert!(warning.contains("no name constraints"), "{warning}");
    let (issued, _) = run(&["proxy", "issue", "user@agency.example"]);
    let (list, _) = run(&["proxy-ca", "list"]);
    assert!(list.contains("\"name_constrained\":false"), "{list}");

    run(&["proxy-ca", "rotate"]);
    let (list, _) = run(&["proxy-ca", "list"]);
    let current = list.lines().next().unwrap();
    assert!(
        current.contains("\"current\":true") && current.contains("\"name_constrained\":true"),
        "{list}"
    );
    // No warning any more; the next issuance is under the new CA.
    let (_, warning) = run(&["init"]);
    assert!(!warning.contains("no name constraints"), "{warning}");
    let (reissued, _) = run(&["proxy", "issue", "user@agency.example"]);
    assert_ne!(issued, reissued);
    let (summary, _) = run(&["proxy", "list"]);
    assert!(summary.contains("\"key_count\":2"), "{summary}");
}
