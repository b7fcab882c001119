#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! NSS (Thunderbird's S/MIME engine) as a second independent party, through `cmsutil`.
//! `make test` installs it (Debian `libnss3-tools`); outside CI the tests skip without it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use common::*;
use gateway::smime::decrypt::{decrypt, DecryptionKey};
use gateway::smime::encrypt::{encrypt, EncryptOptions};
use gateway::smime::sign::{sign, Signer};
use gateway::smime::verify::{verify, Detached, SignatureOutcome};

const CONTENT: &[u8] = b"Content-Type: text/plain\r\n\r\nhello from NSS\r\n";

fn available() -> bool {
    let found = Command::new("cmsutil").arg("-H").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "cmsutil missing in CI: `make deps` installs libnss3-tools"
        );
        eprintln!(
            "cmsutil not installed: skipping NSS interoperability tests (make deps installs it)"
        );
    }
    found
}

fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// An NSS database holding the proxy user's key pair, the partner's certificate, and trust in
/// both CAs.
fn nss_db(dir: &Path) -> String {
    let db = format!("sql:{}", dir.display());
    let pw = dir.join("pw");
    std::fs::write(&pw, "\n").unwrap();
    let pw = pw.to_string_lossy().into_owned();
    run("certutil", &["-N", "-d", &db, "-f", &pw]);
    let p12 = dir.join("user.p12").to_string_lossy().into_owned();
    openssl_ok(
        &[
            "pkcs12",
            "-export",
            "-in",
            &f("proxy/user.pem"),
            "-inkey",
            &f("proxy/user.key"),
            "-out",
            &p12,
            "-passout",
            "pass:x",
            "-name",
            "user",
        ],
        b"",
    );
    run("pk12util", &["-i", &p12, "-d", &db, "-W", "x", "-k", &pw]);
    run(
        "certutil",
        &[
            "-A",
            "-d",
            &db,
            "-n",
            "proxyca",
            "-t",
            "C,C,C",
            "-i",
            &f("proxy/proxy-ca.pem"),
        ],
    );
    run(
        "certutil",
        &[
            "-A",
            "-d",
            &db,
            "-n",
            "partnerroot",
            "-t",
            "C,C,C",
            "-i",
            &f("ca/partner-root.pem"),
        ],
    );
    run(
        "certutil",
        &[
            "-A",
            "-d",
            &db,
            "-n",
            "partnerint",
            "-t",
            ",,",
            "-i",
            &f("ca/partner-intermediate.pem"),
        ],
    );
    run(
        "certutil",
        &[
            "-A",
            "-d",
            &db,
            "-n",
            "alice",
            "-t",
            ",,",
            "-i",
            &f("partner/alice.pem"),
        ],
    );
    db
}

#[test]
fn nss_encrypted_ber_decrypts_with_the_engine() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = nss_db(dir.path());
    let input = dir.path().join("content");
    std::fs::write(&input, CONTENT).unwrap();
    let out = dir.path().join("enc.der");
    run(
        "cmsutil",
        &[
            "-E",
            "-r",
            "user@agency.example",
            "-i",
            &input.to_string_lossy(),
            "-o",
            &out.to_string_lossy(),
            "-d",
            &db,
        ],
    );
    let der = std::fs::read(&out).unwrap();
    assert_eq!(
        &der[..2],
        &[0x30, 0x80],
        "NSS writes BER with indefinite lengths"
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
fn nss_signature_verifies_with_the_engine() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = nss_db(dir.path());
    let pw = dir.path().join("pw").to_string_lossy().into_owned();
    let input = dir.path().join("content");
    std::fs::write(&input, CONTENT).unwrap();
    let out = dir.path().join("signed.der");
    run(
        "cmsutil",
        &[
            "-S",
            "-N",
            "user",
            "-i",
            &input.to_string_lossy(),
            "-o",
            &out.to_string_lossy(),
            "-d",
            &db,
            "-f",
            &pw,
        ],
    );
    let verified = verify(crypto(), &std::fs::read(&out).unwrap(), None).unwrap();
    assert_eq!(verified.content(), CONTENT);
    let report = verified.report;
    assert_eq!(report.outcome, SignatureOutcome::Valid);
    assert_eq!(
        report.signer_emails,
        vec!["user@agency.example".to_string()]
    );
    // Detached (-T): the content is given separately.
    run(
        "cmsutil",
        &[
            "-S",
            "-T",
            "-N",
            "user",
            "-i",
            &input.to_string_lossy(),
            "-o",
            &out.to_string_lossy(),
            "-d",
            &db,
            "-f",
            &pw,
        ],
    );
    let report = verify(
        crypto(),
        &std::fs::read(&out).unwrap(),
        Some(Detached::Binary(CONTENT)),
    )
    .unwrap()
    .report;
    assert_eq!(report.outcome, SignatureOutcome::Valid);
    let report = verify(
        crypto(),
        &std::fs::read(&out).unwrap(),
        Some(Detached::Binary(b"altered")),
    )
    .unwrap()
    .report;
    assert_eq!(report.outcome, SignatureOutcome::ContentChanged);
}

#[test]
fn engine_output_reads_in_nss() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = nss_db(dir.path());
    let pw = dir.path().join("pw").to_string_lossy().into_owned();
    // Encrypted to the user (whose key NSS holds): NSS decrypts it.
    let user = cert("proxy/user.pem");
    let der = encrypt(crypto(), CONTENT, &[&user], EncryptOptions::default()).unwrap();
    let enc = dir.path().join("ours.der");
    std::fs::write(&enc, der).unwrap();
    let plain = run(
        "cmsutil",
        &["-D", "-i", &enc.to_string_lossy(), "-d", &db, "-f", &pw],
    );
    assert_eq!(plain, CONTENT);
    // Signed by alice with her chain: NSS verifies it against the partner root it trusts.
    let chain = vec![
        cert("ca/partner-intermediate.pem"),
        cert("ca/partner-root.pem"),
    ];
    let alice = cert("partner/alice.pem");
    let alice_key = key("partner/alice.key");
    let signer = Signer {
        certificate: &alice,
        chain: &chain,
        key: &alice_key,
    };
    let der = sign(crypto(), CONTENT, &signer, false, SystemTime::now()).unwrap();
    let signed = dir.path().join("ours-signed.der");
    std::fs::write(&signed, der).unwrap();
    let out = Command::new("cmsutil")
        .args([
            "-D",
            "-i",
            &signed.to_string_lossy(),
            "-d",
            &db,
            "-f",
            &pw,
            "-u",
            "4",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(out.stdout, CONTENT);
    assert!(
        !stderr.contains("signature: FAIL") && !stderr.to_lowercase().contains("bad signature"),
        "{stderr}"
    );
}

/// Issue 13, with the P-256 partner's key pair: ECDSA signatures both ways with NSS.
#[test]
fn nss_ecdsa_both_ways() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = nss_db(dir.path());
    let pw = dir.path().join("pw").to_string_lossy().into_owned();
    let p12 = dir.path().join("erin.p12").to_string_lossy().into_owned();
    openssl_ok(
        &[
            "pkcs12",
            "-export",
            "-in",
            &f("partner/erin-p256.pem"),
            "-inkey",
            &f("partner/erin-p256.key"),
            "-out",
            &p12,
            "-passout",
            "pass:x",
            "-name",
            "erin",
        ],
        b"",
    );
    run("pk12util", &["-i", &p12, "-d", &db, "-W", "x", "-k", &pw]);
    let input = dir.path().join("content");
    std::fs::write(&input, CONTENT).unwrap();
    let (input, out) = (
        input.to_string_lossy().into_owned(),
        dir.path().join("out.der").to_string_lossy().into_owned(),
    );
    // NSS signs with ECDSA: the engine verifies.
    run(
        "cmsutil",
        &[
            "-S", "-N", "erin", "-i", &input, "-o", &out, "-d", &db, "-f", &pw,
        ],
    );
    let report = verify(crypto(), &std::fs::read(&out).unwrap(), None)
        .unwrap()
        .report;
    assert_eq!(report.outcome, SignatureOutcome::Valid);
    assert_eq!(report.scheme, Some(gateway::smime::SignatureScheme::Ecdsa));
    // The engine signs with the EC key: NSS verifies against the partner root it trusts.
    let chain = vec![cert("ca/partner-intermediate.pem")];
    let (c, k) = (cert("partner/erin-p256.pem"), key("partner/erin-p256.key"));
    let signer = Signer {
        certificate: &c,
        chain: &chain,
        key: &k,
    };
    let der = sign(crypto(), CONTENT, &signer, false, SystemTime::now()).unwrap();
    std::fs::write(&out, der).unwrap();
    let nss = Command::new("cmsutil")
        .args(["-D", "-i", &out, "-d", &db, "-f", &pw, "-u", "4"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&nss.stderr);
    assert!(nss.status.success(), "{stderr}");
    assert_eq!(nss.stdout, CONTENT);
    assert!(!stderr.contains("signature: FAIL"), "{stderr}");
    // ECDH is not checked here: this machine's NSS (3.87) neither writes key agreement
    // ("invalid algorithm") nor reads it (OpenSSL's KeyAgreeRecipientInfo is "bad DER" to it).
}
