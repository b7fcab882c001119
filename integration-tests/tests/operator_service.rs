#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! The operator's command line next to a running gateway: the same commands work whether
//! `serve` holds the store (they go through its admin API) or not (they open it), and print
//! the same; proxy identities migrated from another gateway decrypt mail sent by openssl.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use integration_tests::gateway::{fixture, GatewayProcess};
use integration_tests::openssl::{encrypt_entity, partner_message};
use integration_tests::{send_mail, SmtpSink};

/// Run the binary with `args` and `--config`; (success, stdout, stderr).
fn cli(gw: &GatewayProcess, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(gw.binary())
        .args(args)
        .arg("--config")
        .arg(&gw.config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_ok(gw: &GatewayProcess, args: &[&str]) -> (String, String) {
    let (ok, out, err) = cli(gw, args);
    assert!(ok, "{args:?} failed: {err}");
    (out, err)
}

/// `proxy import --key --cert [--old]`; (success, stdout, stderr).
fn import_pem(gw: &GatewayProcess, key: &Path, cert: &Path, old: bool) -> (bool, String, String) {
    let (key, cert) = (p(key), p(cert));
    let mut args = vec!["proxy", "import", "--key", &key, "--cert", &cert];
    if old {
        args.push("--old");
    }
    cli(gw, &args)
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// An S/MIME end-entity certificate for `address` with a fresh 2048-bit key, issued by
/// `ca_cert`/`ca_key` (PEM files): writes `<name>.key` and `<name>.pem` into `dir`.
fn issue_with_openssl(
    dir: &Path,
    name: &str,
    address: &str,
    ca_cert: &Path,
    ca_key: &Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let cert = dir.join(format!("{name}.pem"));
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=emailProtection\nsubjectAltName=email:{address}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        ),
    )
    .unwrap();
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p(&key),
        "-subj",
        &format!("/CN={address}"),
        "-out",
        &p(&csr),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(ca_cert),
        "-CAkey",
        &p(ca_key),
        "-CAcreateserial",
        "-days",
        "30",
        "-sha256",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    (key, cert)
}

/// A partner's signed message to user@agency.example, encrypted by openssl to `cert`; sent
/// through the gateway, it must arrive decrypted.
fn assert_decrypts(gw: &GatewayProcess, inbound: &SmtpSink, cert: &Path, marker: &str) {
    let before = inbound.messages().len();
    let signed = partner_message(
        "alice@partner.example",
        "user@agency.example",
        "migrated",
        marker,
        Some("alice"),
    )
    .unwrap();
    let encrypted = encrypt_entity(&signed, &p(cert)).unwrap();
    let (code, text) = send_mail(
        &gw.smtp,
        "alice@partner.example",
        &["user@agency.example"],
        &encrypted,
    )
    .unwrap();
    assert_eq!(code, 250, "{text}");
    let got = inbound
        .wait_for_messages(before + 1, Duration::from_secs(20))
        .unwrap();
    let text = got[before].text();
    assert!(text.contains(marker), "not decrypted: {text}");
    assert!(!text.contains("application/pkcs7-mime"), "{text}");
}

#[test]
fn commands_use_the_admin_api_while_serving_and_print_the_same_as_offline() {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    // Bulk import before serving: alice's certificate with its chain, one PEM bundle.
    let bundle = dir.path().join("bundle.pem");
    let mut text = std::fs::read_to_string(fixture("partner/alice.pem")).unwrap();
    text.push_str(&std::fs::read_to_string(fixture("ca/partner-chain.pem")).unwrap());
    std::fs::write(&bundle, text).unwrap();
    let bundle = p(&bundle);
    let mut gw = GatewayProcess::start(
        &inbound.address(),
        &outbound.address(),
        "",
        &[
            &["domains", "add", "partner.example", "--note", "contract 7"],
            &["partners", "import", &bundle],
        ],
    )
    .unwrap();

    // While serving: writes and reads go through the admin API.
    let (out, err) = cli_ok(&gw, &["domains", "add", "other.example", "--policy", "tls"]);
    assert!(err.contains("using its admin API"), "{err}");
    assert_eq!(out, "approved other.example (tls)\n");
    let (out, _) = cli_ok(&gw, &["domains", "remove", "other.example"]);
    assert_eq!(out, "removed other.example\n");
    let (out, _) = cli_ok(&gw, &["domains", "remove", "other.example"]);
    assert_eq!(out, "other.example was not approved\n");
    let (ok, _, err) = cli(&gw, &["domains", "add", "gmail.com"]);
    assert!(!ok && err.to_lowercase().contains("free-mail"), "{err}");
    let (issued, _) = cli_ok(&gw, &["proxy", "issue", "user@agency.example", "--pem"]);
    assert!(
        issued.starts_with("user@agency.example serial "),
        "{issued}"
    );
    assert!(issued.contains("-----BEGIN CERTIFICATE-----"), "{issued}");
    let (again, _) = cli_ok(&gw, &["proxy", "issue", "user@agency.example", "--pem"]);
    assert_eq!(
        issued, again,
        "issue returns the current certificate while valid"
    );
    let (ok, _, err) = cli(&gw, &["proxy", "issue", "alice@partner.example"]);
    assert!(!ok && err.contains("proxy certificates are"), "{err}");
    let out_file = dir.path().join("user.pem");
    cli_ok(
        &gw,
        &[
            "proxy",
            "show",
            "user@agency.example",
            "--out",
            &p(&out_file),
        ],
    );
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(issued.ends_with(&text), "--out writes the certificate");
    openssl(&["x509", "-noout", "-in", &p(&out_file)]);

    let reads: &[&[&str]] = &[
        &["domains", "list"],
        &["partners", "list"],
        &["partners", "history", "alice@partner.example"],
        &["partners", "history", "nobody@partner.example"],
        &["proxy", "list"],
        &["proxy", "show", "user@agency.example", "--pem"],
        &["export-ca"],
        &["export-ca", "--der"],
    ];
    let online: Vec<String> = reads.iter().map(|args| cli_ok(&gw, args).0).collect();
    assert!(online[0].contains("\"partner.example\"") && online[0].contains("contract 7"));
    assert_eq!(online[1], "alice@partner.example\n");
    assert!(online[2].contains("^ current"), "{}", online[2]);
    assert!(online[3].contains("no certificates seen"), "{}", online[3]);
    assert!(online[4].contains("user@agency.example"), "{}", online[4]);
    let (ok, _, err) = cli(&gw, &["export-ca", "--with-private-key"]);
    assert!(!ok && err.contains("stop it first"), "{err}");

    // Stopped: the same commands open the store and print the same.
    gw.stop();
    for (args, expected) in reads.iter().zip(&online) {
        let (out, err) = cli_ok(&gw, args);
        assert!(!err.contains("admin API"), "{args:?} went remote: {err}");
        assert_eq!(&out, expected, "{args:?} differs offline");
    }
}

#[test]
fn imported_identities_decrypt_mail_and_old_keys_survive_a_renewal() {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let mut gw = GatewayProcess::start_with_partner(&inbound, &outbound).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The current proxy CA signs the "other gateway's" identity (as after a CA import).
    gw.stop();
    let ca_bundle = d.join("ca-with-key.pem");
    cli_ok(
        &gw,
        &["export-ca", "--with-private-key", "--out", &p(&ca_bundle)],
    );
    gw.restart().unwrap();
    let (key, cert) =
        issue_with_openssl(d, "current", "user@agency.example", &ca_bundle, &ca_bundle);
    let p12 = d.join("current.p12");
    let password = d.join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    openssl(&[
        "pkcs12",
        "-export",
        "-inkey",
        &p(&key),
        "-in",
        &p(&cert),
        "-out",
        &p(&p12),
        "-passout",
        "pass:s3cret",
    ]);
    // Through the running gateway's admin API.
    let (ok, _, err) = cli(&gw, &["proxy", "import", "--pkcs12", &p(&p12)]);
    assert!(!ok && err.to_lowercase().contains("password"), "{err}");
    let (out, _) = cli_ok(
        &gw,
        &[
            "proxy",
            "import",
            "--pkcs12",
            &p(&p12),
            "--password-file",
            &p(&password),
        ],
    );
    assert!(
        out.contains("imported user@agency.example as the current key"),
        "{out}"
    );
    let (shown, _) = cli_ok(&gw, &["proxy", "show", "user@agency.example", "--pem"]);
    let imported_pem = std::fs::read_to_string(&cert).unwrap();
    assert!(
        shown.contains(imported_pem.trim()),
        "the import is current: {shown}"
    );
    assert_decrypts(
        &gw,
        &inbound,
        &cert,
        "decrypted with the imported PKCS#12 key",
    );

    // An old gateway's key from another CA: only as an old key, and only for our addresses.
    let old_ca_key = d.join("old-ca.key");
    let old_ca = d.join("old-ca.pem");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p(&old_ca_key),
        "-subj",
        "/CN=Old Gateway CA",
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        &p(&old_ca),
    ]);
    let (old_key, old_cert) =
        issue_with_openssl(d, "old", "user@agency.example", &old_ca, &old_ca_key);
    let (ok, _, err) = import_pem(&gw, &old_key, &old_cert, false);
    assert!(!ok && err.contains("--old"), "{err}");
    let (ok, out, err) = import_pem(&gw, &old_key, &old_cert, true);
    assert!(ok, "{err}");
    assert!(out.contains("as an old key"), "{out}");
    let (ok, _, err) = import_pem(&gw, &old_key, &old_cert, true);
    assert!(!ok && err.contains("already in the store"), "{err}");
    let (partner_key, partner_cert) =
        issue_with_openssl(d, "partner", "bob@partner.example", &old_ca, &old_ca_key);
    let (ok, _, err) = import_pem(&gw, &partner_key, &partner_cert, true);
    assert!(!ok && err.contains("proxy certificates are"), "{err}");
    let (ok, _, err) = import_pem(&gw, &key, &old_cert, true);
    assert!(!ok && err.contains("does not belong"), "{err}");

    // A renewal makes a new current key; both imported keys still decrypt.
    let (renewed, _) = cli_ok(&gw, &["proxy", "renew", "user@agency.example"]);
    assert!(
        renewed.starts_with("renewed user@agency.example"),
        "{renewed}"
    );
    let (shown, _) = cli_ok(&gw, &["proxy", "show", "user@agency.example", "--pem"]);
    assert!(
        !shown.contains(imported_pem.trim()),
        "renewal replaced the current one"
    );
    assert_decrypts(
        &gw,
        &inbound,
        &old_cert,
        "decrypted with the old imported key",
    );
    assert_decrypts(
        &gw,
        &inbound,
        &cert,
        "still decrypted with the earlier import",
    );

    // Offline too (the store opened directly).
    gw.stop();
    let (ok, _, err) = import_pem(&gw, &partner_key, &partner_cert, true);
    assert!(!ok && err.contains("proxy certificates are"), "{err}");
}

#[test]
fn init_refuses_a_ca_import_over_an_initialised_store() {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let mut gw = GatewayProcess::start_with_partner(&inbound, &outbound).unwrap();
    gw.stop();
    let (ok, out, err) = cli(
        &gw,
        &[
            "init",
            "--import-ca-cert",
            &fixture("proxy/proxy-ca.pem"),
            "--import-ca-key",
            &fixture("proxy/proxy-ca.key"),
        ],
    );
    assert!(!ok, "{out}");
    assert!(err.contains("already initialised"), "{err}");
    // Plain init stays idempotent.
    cli_ok(&gw, &["init"]);
}

#[test]
fn partners_import_reports_each_certificate() {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let mut gw = GatewayProcess::start_with_partner(&inbound, &outbound).unwrap();
    gw.stop();
    let dir = tempfile::tempdir().unwrap();
    for name in ["alice", "bob", "selfsigned", "expired"] {
        std::fs::copy(
            fixture(&format!("partner/{name}.pem")),
            dir.path().join(format!("{name}.pem")),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    std::fs::copy(
        fixture("ca/partner-chain.pem"),
        dir.path().join("chain.pem"),
    )
    .unwrap();
    let (ok, out, err) = cli(&gw, &["partners", "import", &p(dir.path())]);
    assert!(!ok, "refusals make a non-zero exit: {out} {err}");
    // A running gateway imports through its admin API and reports the same.
    let online = GatewayProcess::start_with_partner(&inbound, &outbound).unwrap();
    let (online_ok, online_out, online_err) = cli(&online, &["partners", "import", &p(dir.path())]);
    assert!(online_err.contains("using its admin API"), "{online_err}");
    assert_eq!((online_ok, online_out.as_str()), (ok, out.as_str()));
    let (list, _) = cli_ok(&online, &["partners", "list"]);
    assert_eq!(list, "alice@partner.example\nbob@partner.example\n");
    let line = |name: &str| {
        out.lines()
            .filter(|l| l.contains(&format!("{name}.pem:")))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        line("alice").contains("alice@partner.example") && line("alice").ends_with(": imported"),
        "{out}"
    );
    assert!(line("selfsigned").contains("self-signed"), "{out}");
    assert!(line("expired").contains("has expired"), "{out}");
    assert!(line("chain").contains("intermediate"), "{out}");
    assert!(!line("junk").is_empty(), "{out}");
    let (list, _) = cli_ok(&gw, &["partners", "list"]);
    assert!(list.contains("alice@partner.example"), "{list}");
    assert!(!list.contains("eve@partner.example"), "{list}");
}
