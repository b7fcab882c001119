#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! The operator commands against a real data directory: init, domains, proxy certificates,
//! CA export, configuration errors.

use std::process::Command;

use integration_tests::gateway::{binary, fixture};

struct Setup {
    dir: tempfile::TempDir,
    config: String,
}

fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\nhostname = \"gw.agency.example\"\ninternal_domains = [\"agency.example\"]\n{extra}\n[trust]\nuse_system_store = false\nanchor_files = [\"{}\"]\n",
            dir.path().join("data").display(),
            fixture("ca/partner-root.pem")
        ),
    )
    .unwrap();
    Setup {
        config: config.to_string_lossy().into_owned(),
        dir,
    }
}

fn run(s: &Setup, args: &[&str]) -> (bool, String, String) {
    let mut full: Vec<&str> = args.to_vec();
    full.extend_from_slice(&["--config", &s.config]);
    let out = Command::new(binary().unwrap())
        .args(&full)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn init_domains_proxy_and_export() {
    let s = setup("");
    let (ok, out, err) = run(&s, &["init"]);
    assert!(ok, "{err}");
    assert!(out.contains("admin API token"), "{out}");
    let token = s.dir.path().join("data/admin.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&token).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // A second init changes nothing and prints no token.
    let (ok, out, _) = run(&s, &["init"]);
    assert!(ok && !out.contains("admin API token"));

    let (ok, out, err) = run(
        &s,
        &[
            "domains",
            "add",
            "Partner.Example.",
            "--policy",
            "smime",
            "--note",
            "contract 42",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("approved partner.example"), "{out}");
    let (ok, _, err) = run(&s, &["domains", "add", "gmail.com"]);
    assert!(!ok && err.to_lowercase().contains("free"), "{err}");
    let (_, out, _) = run(&s, &["domains", "list"]);
    assert!(
        out.contains("\"partner.example\"") && out.contains("contract 42"),
        "{out}"
    );
    let (ok, out, _) = run(&s, &["domains", "remove", "partner.example"]);
    assert!(ok && out.contains("removed"));

    let (ok, first, err) = run(&s, &["proxy", "issue", "user@agency.example"]);
    assert!(ok, "{err}");
    let (ok, renewed, _) = run(&s, &["proxy", "renew", "user@agency.example"]);
    assert!(ok);
    let fp = |t: &str| {
        t.split("fingerprint ")
            .nth(1)
            .unwrap_or("")
            .trim()
            .to_string()
    };
    assert_ne!(fp(&first), fp(&renewed), "renewal issues a new certificate");
    let (_, list, _) = run(&s, &["proxy", "list"]);
    assert!(list.contains("user@agency.example"), "{list}");

    let der = s.dir.path().join("ca.der");
    let (ok, _, err) = run(&s, &["export-ca", "--der", "--out", &der.to_string_lossy()]);
    assert!(ok, "{err}");
    let parsed = Command::new("openssl")
        .args([
            "x509",
            "-inform",
            "DER",
            "-noout",
            "-subject",
            "-in",
            &der.to_string_lossy(),
        ])
        .output()
        .unwrap();
    assert!(parsed.status.success());
    assert!(String::from_utf8_lossy(&parsed.stdout).contains("Proxy CA"));
    let (ok, pem, _) = run(&s, &["export-ca"]);
    assert!(ok && pem.starts_with("-----BEGIN CERTIFICATE-----") && !pem.contains("PRIVATE KEY"));

    let (_, out, _) = run(&s, &["partners", "history", "alice@partner.example"]);
    assert!(out.contains("no certificates seen"), "{out}");
}

#[test]
fn configuration_errors_name_the_key() {
    let s = setup("[smtp]\nlisten = \"not an address\"\n");
    let (ok, _, err) = run(&s, &["init"]);
    assert!(!ok);
    assert!(err.contains("smtp.listen"), "{err}");
    let s = setup("colour = \"blue\"\n");
    let (ok, _, err) = run(&s, &["init"]);
    assert!(!ok);
    assert!(err.contains("colour"), "{err}");
}
