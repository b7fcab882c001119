#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! OpenSSL produces, the engine reads: every cipher, key transport, digest and signature form.

mod common;

use common::*;
use gateway::mime::{open_message, Layer};
use gateway::smime::decrypt::{decrypt, DecryptionKey};
use gateway::smime::verify::SignatureOutcome;
use gateway::smime::{ContentCipher, DigestAlg, KeyTransport, SignatureScheme, SmimeError};

fn proxy_keys() -> (x509_cert::Certificate, gateway::smime::crypto::PrivateKey) {
    (cert("proxy/user.pem"), key("proxy/user.key"))
}

fn encrypt_with_openssl(extra: &[&str]) -> Vec<u8> {
    // `-keyopt` applies to the `-recip` before it.
    let user = f("proxy/user.pem");
    let split = extra
        .iter()
        .position(|a| *a == "-keyopt")
        .unwrap_or(extra.len());
    let mut args = vec!["cms", "-encrypt"];
    args.extend_from_slice(&extra[..split]);
    args.extend_from_slice(&["-recip", &user]);
    args.extend_from_slice(&extra[split..]);
    with_headers(&openssl_ok(&args, BODY))
}

fn open_as_user(message: &[u8]) -> gateway::mime::Opened {
    let (c, k) = proxy_keys();
    open_message(
        crypto(),
        message,
        &[DecryptionKey {
            certificate: &c,
            key: &k,
        }],
    )
}

fn assert_decrypts(message: &[u8], cipher: ContentCipher, transport: KeyTransport) {
    let opened = open_as_user(message);
    assert!(opened.stopped.is_none(), "stopped: {:?}", opened.stopped);
    match &opened.layers[0] {
        Layer::Encrypted {
            cipher: c,
            key_transport: t,
            ..
        } => {
            assert_eq!(*c, Some(cipher));
            assert_eq!(*t, Some(transport));
        }
        other => panic!("unexpected layer {other:?}"),
    }
    assert!(opened
        .content
        .ends_with(b"Hello from the partner.\r\nSecond line.\r\n"));
    let delivered = opened.to_message(&[]);
    let text = String::from_utf8(delivered).unwrap();
    assert!(text.contains("Subject: test\r\n"));
    assert!(text.contains("Message-ID: <t1@partner.example>\r\n"));
    assert!(text.contains("Content-Type: text/plain"));
}

#[test]
fn aes128_cbc() {
    assert_decrypts(
        &encrypt_with_openssl(&["-aes128"]),
        ContentCipher::Aes128Cbc,
        KeyTransport::RsaPkcs1v15,
    );
}

#[test]
fn aes192_and_aes256_cbc() {
    assert_decrypts(
        &encrypt_with_openssl(&["-aes192"]),
        ContentCipher::Aes192Cbc,
        KeyTransport::RsaPkcs1v15,
    );
    assert_decrypts(
        &encrypt_with_openssl(&["-aes256"]),
        ContentCipher::Aes256Cbc,
        KeyTransport::RsaPkcs1v15,
    );
}

#[test]
fn aes256_gcm_auth_enveloped() {
    let msg = encrypt_with_openssl(&["-aes-256-gcm"]);
    assert_decrypts(&msg, ContentCipher::Aes256Gcm, KeyTransport::RsaPkcs1v15);
    let msg = encrypt_with_openssl(&["-aes-128-gcm"]);
    assert_decrypts(&msg, ContentCipher::Aes128Gcm, KeyTransport::RsaPkcs1v15);
}

#[test]
fn oaep_sha1_and_sha256() {
    let msg = encrypt_with_openssl(&["-aes256", "-keyopt", "rsa_padding_mode:oaep"]);
    assert_decrypts(&msg, ContentCipher::Aes256Cbc, KeyTransport::RsaOaepSha1);
    let msg = encrypt_with_openssl(&[
        "-aes256",
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-keyopt",
        "rsa_oaep_md:sha256",
        "-keyopt",
        "rsa_mgf1_md:sha256",
    ]);
    assert_decrypts(&msg, ContentCipher::Aes256Cbc, KeyTransport::RsaOaepSha256);
}

#[test]
fn subject_key_identifier_recipient() {
    let msg = encrypt_with_openssl(&["-aes256", "-keyid"]);
    assert_decrypts(&msg, ContentCipher::Aes256Cbc, KeyTransport::RsaPkcs1v15);
}

#[test]
fn streamed_ber_input() {
    let msg = encrypt_with_openssl(&["-aes256", "-stream"]);
    assert_decrypts(&msg, ContentCipher::Aes256Cbc, KeyTransport::RsaPkcs1v15);
}

#[test]
fn two_recipients_and_old_and_new_keys() {
    let alice = f("partner/alice.pem");
    let old = f("proxy/user-old.pem");
    let user = f("proxy/user.pem");
    // Two recipients: a partner and our user; we hold only our user's key.
    let msg = with_headers(&openssl_ok(
        &["cms", "-encrypt", "-aes256", &alice, &user],
        BODY,
    ));
    assert_decrypts(&msg, ContentCipher::Aes256Cbc, KeyTransport::RsaPkcs1v15);
    // Encrypted to the old proxy certificate: opens with the old key among several.
    let msg = with_headers(&openssl_ok(&["cms", "-encrypt", "-aes256", &old], BODY));
    let (c_new, k_new) = proxy_keys();
    let (c_old, k_old) = (cert("proxy/user-old.pem"), key("proxy/user-old.key"));
    let keys = [
        DecryptionKey {
            certificate: &c_new,
            key: &k_new,
        },
        DecryptionKey {
            certificate: &c_old,
            key: &k_old,
        },
    ];
    let opened = open_message(crypto(), &msg, &keys);
    assert!(opened.stopped.is_none());
    assert!(matches!(
        opened.layers[0],
        Layer::Encrypted {
            key_index: Some(1),
            ..
        }
    ));
}

#[test]
fn wrong_key_and_legacy_ciphers_are_typed_errors() {
    let out = openssl_ok(
        &[
            "cms",
            "-encrypt",
            "-aes256",
            "-outform",
            "DER",
            &f("proxy/user.pem"),
        ],
        BODY,
    );
    // A key that is not a recipient.
    let (c, k) = (cert("partner/alice.pem"), key("partner/alice.key"));
    let err = decrypt(
        crypto(),
        &out,
        &[DecryptionKey {
            certificate: &c,
            key: &k,
        }],
    )
    .unwrap_err();
    assert!(matches!(err, SmimeError::NoMatchingRecipient), "{err}");
    // The right certificate with the wrong private key: one generic failure.
    let c = cert("proxy/user.pem");
    let k = key("proxy/user-old.key");
    let err = decrypt(
        crypto(),
        &out,
        &[DecryptionKey {
            certificate: &c,
            key: &k,
        }],
    )
    .unwrap_err();
    assert!(matches!(err, SmimeError::DecryptionFailed), "{err}");
    // 3DES.
    let des = openssl_ok(
        &[
            "cms",
            "-encrypt",
            "-des3",
            "-outform",
            "DER",
            &f("proxy/user.pem"),
        ],
        BODY,
    );
    let (c, k) = proxy_keys();
    let err = decrypt(
        crypto(),
        &des,
        &[DecryptionKey {
            certificate: &c,
            key: &k,
        }],
    )
    .unwrap_err();
    assert!(matches!(err, SmimeError::LegacyCipher(_)), "{err}");
}

#[test]
fn corrupt_ciphertext_fails_the_same_way() {
    let mut der = openssl_ok(
        &[
            "cms",
            "-encrypt",
            "-aes256",
            "-outform",
            "DER",
            &f("proxy/user.pem"),
        ],
        &vec![b'x'; 4000],
    );
    let n = der.len();
    der[n - 40] ^= 0x55;
    der[n - 2] ^= 0x01;
    let (c, k) = proxy_keys();
    let err = decrypt(
        crypto(),
        &der,
        &[DecryptionKey {
            certificate: &c,
            key: &k,
        }],
    );
    // CBC without integrity: a flipped byte near the end breaks the padding (or, rarely, not).
    if let Err(e) = err {
        assert!(matches!(e, SmimeError::DecryptionFailed), "{e}");
    }
}

fn sign_with_openssl(signer: &str, extra: &[&str]) -> Vec<u8> {
    let cert = f(&format!("partner/{signer}.pem"));
    let key = f(&format!("partner/{signer}.key"));
    let chain = f("ca/partner-chain.pem");
    let mut args = vec![
        "cms",
        "-sign",
        "-signer",
        &cert,
        "-inkey",
        &key,
        "-certfile",
        &chain,
    ];
    args.extend_from_slice(extra);
    with_headers(&openssl_ok(&args, BODY))
}

fn verify_report(message: &[u8]) -> gateway::smime::verify::SignatureReport {
    let opened = open_message(crypto(), message, &[]);
    assert!(opened.stopped.is_none(), "{:?}", opened.stopped);
    match opened.layers.into_iter().next() {
        Some(Layer::Signed { report, .. }) => report,
        other => panic!("expected a signed layer, got {other:?}"),
    }
}

#[test]
fn detached_signatures_with_each_digest() {
    for (md, alg) in [
        ("sha256", DigestAlg::Sha256),
        ("sha384", DigestAlg::Sha384),
        ("sha512", DigestAlg::Sha512),
        ("sha1", DigestAlg::Sha1),
    ] {
        let report = verify_report(&sign_with_openssl("alice", &["-md", md]));
        assert_eq!(report.outcome, SignatureOutcome::Valid, "{md}");
        assert_eq!(report.digest, Some(alg));
        assert_eq!(report.weak_digest, alg == DigestAlg::Sha1);
        assert_eq!(
            report.signer_emails,
            vec!["alice@partner.example".to_string()]
        );
        assert_eq!(
            report.certificates.len(),
            3,
            "signer, intermediate and root"
        );
        assert!(report.signing_time.is_some());
        assert!(report.advertises(ContentCipher::Aes256Cbc));
    }
}

#[test]
fn opaque_signature_and_bare_lf_input() {
    let report = verify_report(&sign_with_openssl("alice", &["-nodetach"]));
    assert_eq!(report.outcome, SignatureOutcome::Valid);
    // OpenSSL writes files with bare LF when asked for text mode: canonicalised before hashing.
    let lf: Vec<u8> = sign_with_openssl("alice", &[])
        .into_iter()
        .filter(|b| *b != b'\r')
        .collect();
    assert_eq!(verify_report(&lf).outcome, SignatureOutcome::Valid);
}

#[test]
fn rsa_pss_signature() {
    let report = verify_report(&sign_with_openssl(
        "carol-pss",
        &["-keyopt", "rsa_padding_mode:pss", "-md", "sha256"],
    ));
    assert_eq!(report.outcome, SignatureOutcome::Valid);
    assert_eq!(report.scheme, Some(SignatureScheme::RsaPss));
}

#[test]
fn altered_content_is_reported_as_changed() {
    let msg = sign_with_openssl("alice", &[]);
    let text = String::from_utf8(msg).unwrap();
    let altered = text.replacen(
        "Second line.",
        "Second line.\r\n-- \r\nDisclaimer: appended by a server",
        1,
    );
    assert_eq!(
        verify_report(altered.as_bytes()).outcome,
        SignatureOutcome::ContentChanged
    );
}

#[test]
fn missing_signer_certificate_and_bad_signature() {
    let msg = sign_with_openssl("alice", &["-nocerts"]);
    assert_eq!(
        verify_report(&msg).outcome,
        SignatureOutcome::NoSignerCertificate
    );
    // Flip a byte inside the signature value of an opaque DER signature.
    let der = openssl_ok(
        &[
            "cms",
            "-sign",
            "-signer",
            &f("partner/alice.pem"),
            "-inkey",
            &f("partner/alice.key"),
            "-nodetach",
            "-outform",
            "DER",
        ],
        BODY,
    );
    let mut der = der;
    // The signature value is the last 256 bytes (RSA-2048) of the DER.
    let n = der.len();
    der[n - 10] ^= 0xff;
    let report = gateway::smime::verify::verify(crypto(), &der, None)
        .unwrap()
        .report;
    assert_eq!(report.outcome, SignatureOutcome::BadSignature);
}

#[test]
fn signed_then_encrypted_fixture_unwraps_fully() {
    let msg = read("messages/signed-encrypted.eml");
    let opened = open_as_user(&msg);
    assert!(opened.stopped.is_none(), "{:?}", opened.stopped);
    assert_eq!(opened.layers.len(), 2);
    assert!(opened.decrypted());
    assert_eq!(opened.signature().unwrap().outcome, SignatureOutcome::Valid);
}

#[test]
fn encrypted_then_signed_unwraps_fully() {
    let enc = openssl_ok(&["cms", "-encrypt", "-aes256", &f("proxy/user.pem")], BODY);
    let signed = openssl_ok(
        &[
            "cms",
            "-sign",
            "-signer",
            &f("partner/alice.pem"),
            "-inkey",
            &f("partner/alice.key"),
            "-nodetach",
        ],
        &enc,
    );
    let opened = open_as_user(&with_headers(&signed));
    assert!(opened.stopped.is_none(), "{:?}", opened.stopped);
    assert_eq!(opened.layers.len(), 2);
    assert!(matches!(opened.layers[0], Layer::Signed { .. }));
    assert!(opened.decrypted());
    assert!(opened.content.ends_with(b"Second line.\r\n"));
}

#[test]
fn committed_fixture_messages_open() {
    for (name, layers) in [
        ("signed-detached.eml", 1),
        ("signed-opaque.eml", 1),
        ("encrypted.eml", 1),
        ("cert-query.eml", 1),
    ] {
        let opened = open_as_user(&read(&format!("messages/{name}")));
        assert!(opened.stopped.is_none(), "{name}: {:?}", opened.stopped);
        assert_eq!(opened.layers.len(), layers, "{name}");
        if let Some(sig) = opened.signature() {
            assert_eq!(sig.outcome, SignatureOutcome::Valid, "{name}");
        }
    }
    // Encrypted to the old certificate, and we only hold the new key: stopped, typed.
    let opened = open_as_user(&read("messages/encrypted-old.eml"));
    assert!(matches!(
        opened.stopped,
        Some(SmimeError::NoMatchingRecipient)
    ));
}

#[test]
fn legacy_content_types_and_p7m_attachments_open() {
    let msg = String::from_utf8(encrypt_with_openssl(&["-aes256"])).unwrap();
    assert!(msg.contains("application/pkcs7-mime") || msg.contains("application/x-pkcs7-mime"));
    let legacy = msg.replace("application/pkcs7-mime", "application/x-pkcs7-mime");
    assert_decrypts(
        legacy.as_bytes(),
        ContentCipher::Aes256Cbc,
        KeyTransport::RsaPkcs1v15,
    );
    // A client that sends the CMS as a generic attachment named smime.p7m.
    let start = msg.find("Content-Type:").unwrap();
    let end = msg[start..]
        .find("\n\n")
        .or_else(|| msg[start..].find("\r\n\r\n"))
        .unwrap()
        + start;
    let mut p7m = msg[..start].to_string();
    p7m.push_str("Content-Type: application/octet-stream; name=\"smime.p7m\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"");
    p7m.push_str(&msg[end..]);
    assert_decrypts(
        p7m.as_bytes(),
        ContentCipher::Aes256Cbc,
        KeyTransport::RsaPkcs1v15,
    );
}
