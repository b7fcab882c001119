#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! The operator commands, run as a real process.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn gateway(args: &[&str], input: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smime-gateway"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn verify_exit_status_and_reasons() {
    let ca = f("ca/partner-root.pem");
    let (code, _, _) = gateway(
        &["verify", "--ca", &ca, &f("messages/signed-detached.eml")],
        b"",
    );
    assert_eq!(code, 0);
    let (code, _, err) = gateway(
        &["verify", "--ca", &ca, &f("messages/expired-signed.eml")],
        b"",
    );
    assert_eq!(code, 1);
    assert!(err.contains("expired"), "{err}");
    let (code, _, err) = gateway(
        &["verify", "--ca", &ca, &f("messages/selfsigned-signed.eml")],
        b"",
    );
    assert_eq!(code, 1);
    assert!(err.contains("self-signed"), "{err}");
    // Trusting a different CA: untrusted.
    let (code, _, err) = gateway(
        &[
            "verify",
            "--ca",
            &f("proxy/proxy-ca.pem"),
            &f("messages/signed-detached.eml"),
        ],
        b"",
    );
    assert_eq!(code, 1);
    assert!(err.to_lowercase().contains("trust"), "{err}");
    // Altered content.
    let text = String::from_utf8(read("messages/signed-detached.eml")).unwrap();
    let altered = text.replacen(
        "Alice\r\n",
        "Alice\r\n\r\nThis e-mail is confidential.\r\n",
        1,
    );
    let (code, _, err) = gateway(&["verify", "--ca", &ca], altered.as_bytes());
    assert_eq!(code, 1);
    assert!(err.contains("content changed"), "{err}");
    // Not signed.
    let (code, _, err) = gateway(&["verify", "--ca", &ca, &f("messages/plain.eml")], b"");
    assert_eq!(code, 1);
    assert!(err.contains("not signed"), "{err}");
}

#[test]
fn verify_json_shape() {
    let (code, out, _) = gateway(
        &[
            "verify",
            "--json",
            "--ca",
            &f("ca/partner-root.pem"),
            &f("messages/signed-opaque.eml"),
        ],
        b"",
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["signature"]["outcome"]["result"], "valid");
    assert_eq!(v["signature"]["digest"], "sha256");
    assert_eq!(v["signature"]["signer_emails"][0], "alice@partner.example");
    assert_eq!(v["trust"]["trusted"], true);
    assert_eq!(v["layers"][0]["layer"], "signed");
}

#[test]
fn decrypt_with_several_key_pairs() {
    let (code, out, err) = gateway(
        &[
            "decrypt",
            "--key",
            &f("proxy/user.key"),
            "--cert",
            &f("proxy/user.pem"),
            "--key",
            &f("proxy/user-old.key"),
            "--cert",
            &f("proxy/user-old.pem"),
            &f("messages/encrypted-old.eml"),
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Subject:"));
    assert!(!text.contains("pkcs7-mime"));
    let (code, _, err) = gateway(
        &[
            "decrypt",
            "--key",
            &f("proxy/user.key"),
            "--cert",
            &f("proxy/user.pem"),
            &f("messages/encrypted-old.eml"),
        ],
        b"",
    );
    assert_ne!(code, 0);
    assert!(err.contains("none of the message's recipients"), "{err}");
}

#[test]
fn sign_and_encrypt_pipeline_reads_in_openssl() {
    let plain = read("messages/plain-outbound.eml");
    let (code, signed, err) = gateway(
        &[
            "sign",
            "--key",
            &f("proxy/user.key"),
            "--cert",
            &f("proxy/user.pem"),
            "--chain",
            &f("proxy/proxy-ca.pem"),
        ],
        &plain,
    );
    assert_eq!(code, 0, "{err}");
    let (code, encrypted, err) = gateway(
        &["encrypt", "--recipient", &f("partner/alice.pem"), "--oaep"],
        &signed,
    );
    assert_eq!(code, 0, "{err}");
    let inner = openssl_ok(
        &[
            "cms",
            "-decrypt",
            "-recip",
            &f("partner/alice.pem"),
            "-inkey",
            &f("partner/alice.key"),
        ],
        &encrypted,
    );
    openssl_ok(
        &["cms", "-verify", "-CAfile", &f("proxy/proxy-ca.pem")],
        &inner,
    );
    let (code, opaque, _) = gateway(
        &[
            "sign",
            "--opaque",
            "--key",
            &f("proxy/user.key"),
            "--cert",
            &f("proxy/user.pem"),
        ],
        &plain,
    );
    assert_eq!(code, 0);
    openssl_ok(
        &["cms", "-verify", "-CAfile", &f("proxy/proxy-ca.pem")],
        &opaque,
    );
}

#[test]
fn inspect_reports_layers_and_bad_input_is_an_error_not_a_panic() {
    let (code, out, _) = gateway(&["inspect", "--json", &f("messages/encrypted.eml")], b"");
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["layers"][0]["layer"], "encrypted");
    assert_eq!(v["layers"][0]["envelope"]["cipher"], "aes256-cbc");
    assert!(v["stopped"].as_str().unwrap().contains("recipients"));
    let garbage = b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAAAAAA\r\n";
    let (code, out, err) = gateway(&["inspect", "--json"], garbage);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(v["stopped"].as_str().unwrap().contains("malformed"));
    let (code, _, err) = gateway(
        &[
            "sign",
            "--key",
            "/nonexistent",
            "--cert",
            &f("proxy/user.pem"),
        ],
        b"x",
    );
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn verify_honours_crls() {
    let signed = openssl_ok(
        &[
            "cms",
            "-sign",
            "-signer",
            &f("partner/revoked.pem"),
            "-inkey",
            &f("partner/revoked.key"),
            "-certfile",
            &f("ca/partner-chain.pem"),
        ],
        BODY,
    );
    let msg = with_headers(&signed);
    let ca = f("ca/partner-root.pem");
    let (code, _, err) = gateway(&["verify", "--ca", &ca], &msg);
    assert_eq!(code, 0, "without the CRL the certificate is fine: {err}");
    let (code, _, err) = gateway(
        &[
            "verify",
            "--ca",
            &ca,
            "--crl",
            &f("ca/partner-intermediate.crl"),
        ],
        &msg,
    );
    assert_eq!(code, 1);
    assert!(err.contains("revoked"), "{err}");
}

/// RFC 2634 triple wrapping made by openssl (signed, encrypted, signed again): `decrypt`
/// removes the outer signature, decrypts, keeps the inner signed entity whole, and reports
/// each layer.
#[test]
fn decrypt_peels_the_outer_signature_of_a_triple_wrapped_message() {
    let dir = tempfile::tempdir().unwrap();
    let inner_signed = openssl_ok(
        &[
            "smime",
            "-sign",
            "-signer",
            &f("partner/alice.pem"),
            "-inkey",
            &f("partner/alice.key"),
        ],
        b"Content-Type: text/plain\r\n\r\nThe triple-wrapped secret.\r\n",
    );
    let encrypted = openssl_ok(
        &["smime", "-encrypt", "-aes256", &f("proxy/user.pem")],
        &inner_signed,
    );
    let triple = openssl_ok(
        &[
            "smime",
            "-sign",
            "-nodetach",
            "-signer",
            &f("partner/alice.pem"),
            "-inkey",
            &f("partner/alice.key"),
        ],
        &encrypted,
    );
    let path = dir.path().join("triple.eml");
    std::fs::write(&path, &triple).unwrap();
    let (code, out, err) = gateway(
        &[
            "decrypt",
            "--key",
            &f("proxy/user.key"),
            "--cert",
            &f("proxy/user.pem"),
            &path.to_string_lossy(),
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("layer ")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0]
            .starts_with("layer 1: signed (opaque signed-data), outside the encryption: removed")
            && lines[0].contains("alice@partner.example"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("layer 2: encrypted (aes256-cbc"),
        "{err}"
    );
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("multipart/signed"),
        "inner signature kept: {text}"
    );
    assert!(text.contains("The triple-wrapped secret."), "{text}");
    assert!(!text.contains("pkcs7-mime"), "{text}");
}
