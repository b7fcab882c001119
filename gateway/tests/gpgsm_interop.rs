#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! GnuPG's `gpgsm` as a third independent party. `make test` installs it (Debian `gpgsm`);
//! outside CI the tests skip without it. gpgsm here holds certificates only (importing a
//! PKCS#12 key needs an interactive agent set-up), so it checks our signatures and produces
//! encrypted mail for us to read.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use common::*;
use gateway::smime::decrypt::{decrypt, DecryptionKey};
use gateway::smime::sign::{sign, Signer};

const CONTENT: &[u8] = b"Content-Type: text/plain\r\n\r\nhello from gpgsm\r\n";

struct Home(tempfile::TempDir);

impl Drop for Home {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.0.path())
            .args(["--kill", "all"])
            .output();
    }
}

fn gpgsm(home: &Path, args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new("gpgsm")
        .env("GNUPGHOME", home)
        .arg("--batch")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A gpgsm home that knows and trusts the proxy CA and the partner root, offline.
fn home() -> Option<Home> {
    if Command::new("gpgsm").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "gpgsm missing in CI: `make deps` installs it"
        );
        eprintln!("gpgsm not installed: skipping (make deps installs it)");
        return None;
    }
    // gpg-agent's socket path must be short: stay directly under /tmp.
    let dir = tempfile::Builder::new()
        .prefix("gsm")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::write(
        dir.path().join("gpgsm.conf"),
        "disable-crl-checks\ndisable-dirmngr\n",
    )
    .unwrap();
    let mut trust = String::new();
    for ca in ["proxy/proxy-ca.pem", "ca/partner-root.pem"] {
        let fp = openssl_ok(
            &["x509", "-in", &f(ca), "-noout", "-fingerprint", "-sha1"],
            b"",
        );
        let fp = String::from_utf8(fp).unwrap();
        trust.push_str(&format!("{} S\n", fp.trim().split('=').nth(1).unwrap()));
    }
    std::fs::write(dir.path().join("trustlist.txt"), trust).unwrap();
    let (ok, _, err) = gpgsm(
        dir.path(),
        &[
            "--import",
            &f("proxy/proxy-ca.pem"),
            &f("proxy/user.pem"),
            &f("ca/partner-root.pem"),
            &f("ca/partner-intermediate.pem"),
            &f("partner/alice.pem"),
        ],
    );
    assert!(ok, "{err}");
    Some(Home(dir))
}

#[test]
fn gpgsm_encrypted_ber_decrypts_with_the_engine() {
    let Some(home) = home() else { return };
    let input = home.0.path().join("content");
    std::fs::write(&input, CONTENT).unwrap();
    let (ok, der, err) = gpgsm(
        home.0.path(),
        &[
            "-r",
            "user@agency.example",
            "--encrypt",
            &input.to_string_lossy(),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        &der[..2],
        &[0x30, 0x80],
        "gpgsm writes BER with indefinite lengths"
    );
    let (c, k) = (cert("proxy/user.pem"), key("proxy/user.key"));
    let plain = decrypt(
        crypto(),
        &der,
        &[DecryptionKey {
            certificate: &c,
            key: &k,
        }],
    )
    .unwrap();
    assert_eq!(plain.content, CONTENT);
}

#[test]
fn engine_signatures_verify_in_gpgsm() {
    let Some(home) = home() else { return };
    let chain = vec![cert("proxy/proxy-ca.pem")];
    let user = cert("proxy/user.pem");
    let user_key = key("proxy/user.key");
    let signer = Signer {
        certificate: &user,
        chain: &chain,
        key: &user_key,
    };
    // Opaque.
    let der = sign(crypto(), CONTENT, &signer, false, SystemTime::now()).unwrap();
    let path = home.0.path().join("opaque.p7m");
    std::fs::write(&path, der).unwrap();
    let (ok, _, err) = gpgsm(home.0.path(), &["--verify", &path.to_string_lossy()]);
    assert!(ok && err.contains("Good signature"), "{err}");
    // Detached, with the content beside it.
    let der = sign(crypto(), CONTENT, &signer, true, SystemTime::now()).unwrap();
    let sig = home.0.path().join("detached.p7s");
    let content = home.0.path().join("content");
    std::fs::write(&sig, der).unwrap();
    std::fs::write(&content, CONTENT).unwrap();
    let (ok, _, err) = gpgsm(
        home.0.path(),
        &[
            "--verify",
            &sig.to_string_lossy(),
            &content.to_string_lossy(),
        ],
    );
    assert!(ok && err.contains("Good signature"), "{err}");
    std::fs::write(&content, b"altered").unwrap();
    let (ok, _, err) = gpgsm(
        home.0.path(),
        &[
            "--verify",
            &sig.to_string_lossy(),
            &content.to_string_lossy(),
        ],
    );
    assert!(!ok || err.contains("BAD signature"), "{err}");
}
