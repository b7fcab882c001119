#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! The engine produces, OpenSSL reads: signatures verify, encryption decrypts, both combined.

mod common;

use std::time::SystemTime;

use common::*;
use gateway::mime::{encrypt_message, sign_message, SignFormat};
use gateway::smime::encrypt::EncryptOptions;
use gateway::smime::sign::Signer;
use gateway::smime::{ContentCipher, KeyTransport};

const MESSAGE: &[u8] = "From: user@agency.example\r\nTo: alice@partner.example\r\nSubject: Quarterly report\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@agency.example>\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus der Behörde.\nA line with trailing space \nEnd.\n".as_bytes();

fn sign_as_user(message: &[u8], format: SignFormat) -> Vec<u8> {
    let chain = vec![cert("proxy/proxy-ca.pem")];
    let user = cert("proxy/user.pem");
    let key = key("proxy/user.key");
    let signer = Signer {
        certificate: &user,
        chain: &chain,
        key: &key,
    };
    sign_message(crypto(), message, &signer, format, SystemTime::now()).unwrap()
}

fn openssl_verify(message: &[u8]) -> Vec<u8> {
    openssl_ok(
        &[
            "cms",
            "-verify",
            "-CAfile",
            &f("proxy/proxy-ca.pem"),
            "-purpose",
            "smimesign",
        ],
        message,
    )
}

#[test]
fn detached_signature_verifies_with_openssl() {
    let signed = sign_as_user(MESSAGE, SignFormat::Detached);
    let text = String::from_utf8(signed.clone()).unwrap();
    assert!(text.starts_with("From: user@agency.example\r\n"));
    assert!(text.contains("Message-ID: <m1@agency.example>\r\n"));
    assert!(text.contains("multipart/signed"));
    assert!(
        signed.is_ascii(),
        "8-bit content converted to 7 bit before signing"
    );
    let content = openssl_verify(&signed);
    let content = String::from_utf8(content).unwrap();
    assert!(content.contains("Gr=C3=BC=C3=9Fe aus der Beh=C3=B6rde."));
    // The signature carries signer and CA: OpenSSL can verify with only the CA as anchor and
    // writes out both certificates.
    let certs = openssl_ok(
        &[
            "cms",
            "-verify",
            "-CAfile",
            &f("proxy/proxy-ca.pem"),
            "-certsout",
            "/dev/stdout",
            "-out",
            "/dev/null",
        ],
        &signed,
    );
    assert_eq!(
        String::from_utf8_lossy(&certs)
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
}

#[test]
fn opaque_signature_verifies_with_openssl() {
    let signed = sign_as_user(MESSAGE, SignFormat::Opaque);
    assert!(String::from_utf8_lossy(&signed).contains("smime-type=signed-data"));
    let content = openssl_verify(&signed);
    assert!(String::from_utf8_lossy(&content).contains("quoted-printable"));
}

#[test]
fn signature_attributes_are_what_outlook_expects() {
    let signed = sign_as_user(MESSAGE, SignFormat::Opaque);
    let der = openssl_ok(&["smime", "-pk7out"], &signed);
    let dump = openssl_ok(&["cms", "-cmsout", "-print", "-inform", "PEM"], &der);
    let dump = String::from_utf8_lossy(&dump);
    assert!(dump.contains("signingTime"), "{dump}");
    assert!(dump.contains("1.2.840.113549.1.9.15"));
    assert!(dump.contains("sha256"));
}

fn encrypt_to(recipients: &[&str], options: EncryptOptions) -> Vec<u8> {
    let certs: Vec<_> = recipients.iter().map(|r| cert(r)).collect();
    let refs: Vec<_> = certs.iter().collect();
    encrypt_message(crypto(), MESSAGE, &refs, options).unwrap()
}

fn openssl_decrypt(message: &[u8], name: &str) -> Vec<u8> {
    openssl_ok(
        &[
            "cms",
            "-decrypt",
            "-recip",
            &f(&format!("partner/{name}.pem")),
            "-inkey",
            &f(&format!("partner/{name}.key")),
        ],
        message,
    )
}

#[test]
fn every_cipher_and_key_transport_decrypts_with_openssl() {
    for cipher in [
        ContentCipher::Aes128Cbc,
        ContentCipher::Aes192Cbc,
        ContentCipher::Aes256Cbc,
        ContentCipher::Aes256Gcm,
        ContentCipher::Aes128Gcm,
    ] {
        for key_transport in [
            KeyTransport::RsaPkcs1v15,
            KeyTransport::RsaOaepSha1,
            KeyTransport::RsaOaepSha256,
        ] {
            let msg = encrypt_to(
                &["partner/alice.pem"],
                EncryptOptions {
                    cipher,
                    key_transport,
                },
            );
            let text = String::from_utf8_lossy(&msg).into_owned();
            assert!(text.contains("Subject: Quarterly report\r\n"));
            assert!(text
                .lines()
                .filter(|l| !l.contains(':') && !l.is_empty())
                .all(|l| l.len() <= 76));
            let plain = openssl_decrypt(&msg, "alice");
            assert!(
                String::from_utf8_lossy(&plain).contains("Grüße aus der Behörde."),
                "{cipher:?} {key_transport:?}"
            );
        }
    }
}

#[test]
fn several_recipients_each_decrypt() {
    let msg = encrypt_to(
        &["partner/alice.pem", "partner/bob.pem"],
        EncryptOptions::default(),
    );
    openssl_decrypt(&msg, "alice");
    openssl_decrypt(&msg, "bob");
}

#[test]
fn signed_then_encrypted_passes_openssl_both_ways() {
    let signed = sign_as_user(MESSAGE, SignFormat::Detached);
    let alice = cert("partner/alice.pem");
    let msg = encrypt_message(crypto(), &signed, &[&alice], EncryptOptions::default()).unwrap();
    let inner = openssl_decrypt(&msg, "alice");
    let content = openssl_verify(&inner);
    assert!(String::from_utf8_lossy(&content).contains("Beh=C3=B6rde"));
}

#[test]
fn engine_reads_its_own_output() {
    let signed = sign_as_user(MESSAGE, SignFormat::Detached);
    let alice = cert("partner/alice.pem");
    let msg = encrypt_message(
        crypto(),
        &signed,
        &[&alice],
        EncryptOptions {
            cipher: ContentCipher::Aes256Gcm,
            key_transport: KeyTransport::RsaOaepSha256,
        },
    )
    .unwrap();
    let key = key("partner/alice.key");
    let opened = gateway::mime::open_message(
        crypto(),
        &msg,
        &[gateway::smime::decrypt::DecryptionKey {
            certificate: &alice,
            key: &key,
        }],
    );
    assert!(opened.stopped.is_none(), "{:?}", opened.stopped);
    assert!(opened.decrypted());
    let sig = opened.signature().unwrap();
    assert!(sig.outcome.is_valid());
    assert_eq!(sig.signer_emails, vec!["user@agency.example".to_string()]);
    assert!(sig.advertises(ContentCipher::Aes256Gcm));
}

/// AES-CBC output is produced in 64 KiB chunks (issue 12, streaming CMS output): contents
/// at and around the chunk and block boundaries, in one part or several, decrypt with
/// OpenSSL to exactly what went in.
#[test]
fn chunked_cbc_encryption_decrypts_with_openssl_at_every_boundary() {
    use gateway::smime::encrypt::{encrypt, encrypt_to};
    let openssl_decrypt_der = |der: &[u8]| {
        let (recip, key) = (f("partner/alice.pem"), f("partner/alice.key"));
        openssl_ok(
            &[
                "cms", "-decrypt", "-inform", "DER", "-binary", "-recip", &recip, "-inkey", &key,
            ],
            der,
        )
    };
    let alice = cert("partner/alice.pem");
    let chunk = 64 * 1024;
    for len in [
        0,
        15,
        16,
        17,
        chunk - 1,
        chunk,
        chunk + 1,
        2 * chunk,
        3 * chunk + 7,
    ] {
        let content: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let der = encrypt(crypto(), &content, &[&alice], EncryptOptions::default()).unwrap();
        let plain = openssl_decrypt_der(&der);
        assert_eq!(plain.len(), len, "length {len}");
        assert!(plain == content, "content of length {len}");
        // The same content handed over in uneven parts gives the same plaintext.
        let (a, rest) = content.split_at(len / 3);
        let (b, c) = rest.split_at(rest.len() / 2);
        let mut parted = Vec::new();
        encrypt_to(
            crypto(),
            &[a, b, c],
            &[&alice],
            EncryptOptions::default(),
            &mut |piece| parted.extend_from_slice(piece),
        )
        .unwrap();
        assert_eq!(parted.len(), der.len(), "same DER length for {len}");
        let plain = openssl_decrypt_der(&parted);
        assert!(plain == content, "parted content of length {len}");
    }
}
