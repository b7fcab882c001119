#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Bad input never panics: random bytes, truncations, bit flips, empty bodies, absurd nesting.

mod common;

use common::*;
use gateway::mime::open_message;
use gateway::smime::decrypt::{decrypt, DecryptionKey};
use gateway::smime::{ber, verify, SmimeError};
use proptest::prelude::*;

fn user_keys() -> (x509_cert::Certificate, gateway::smime::crypto::PrivateKey) {
    (cert("proxy/user.pem"), key("proxy/user.key"))
}

fn sample_cms() -> Vec<Vec<u8>> {
    let body = BODY;
    vec![
        openssl_ok(
            &[
                "cms",
                "-encrypt",
                "-aes256",
                "-outform",
                "DER",
                &f("proxy/user.pem"),
            ],
            body,
        ),
        openssl_ok(
            &[
                "cms",
                "-encrypt",
                "-aes-256-gcm",
                "-outform",
                "DER",
                &f("proxy/user.pem"),
            ],
            body,
        ),
        openssl_ok(
            &[
                "cms",
                "-encrypt",
                "-aes128",
                "-stream",
                "-outform",
                "DER",
                &f("proxy/user.pem"),
            ],
            body,
        ),
        openssl_ok(
            &[
                "cms",
                "-sign",
                "-nodetach",
                "-signer",
                &f("partner/alice.pem"),
                "-inkey",
                &f("partner/alice.key"),
                "-outform",
                "DER",
            ],
            body,
        ),
    ]
}

fn exercise(der: &[u8]) {
    let (c, k) = user_keys();
    let _ = decrypt(
        crypto(),
        der,
        &[DecryptionKey {
            certificate: &c,
            key: &k,
        }],
    );
    let _ = verify::verify(crypto(), der, None);
    let _ = verify::verify(crypto(), der, Some(verify::Detached::Mime(b"x")));
    let _ = ber::normalise(der);
}

#[test]
fn truncations_and_bit_flips_of_real_cms_are_errors_not_panics() {
    for der in sample_cms() {
        for cut in (0..der.len()).step_by(7) {
            exercise(&der[..cut]);
        }
        for i in (0..der.len()).step_by(3) {
            let mut flipped = der.clone();
            flipped[i] ^= 0x41;
            exercise(&flipped);
        }
    }
}

#[test]
fn truncated_encrypted_message_gives_a_typed_error() {
    let der = openssl_ok(
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
    let (c, k) = user_keys();
    let err = decrypt(
        crypto(),
        &der[..der.len() / 2],
        &[DecryptionKey {
            certificate: &c,
            key: &k,
        }],
    )
    .unwrap_err();
    assert!(
        matches!(err, SmimeError::Ber(_) | SmimeError::Asn1(_)),
        "{err}"
    );
    let err = decrypt(crypto(), b"", &[]).unwrap_err();
    assert!(
        matches!(err, SmimeError::Ber(ber::BerError::Empty)),
        "{err}"
    );
}

#[test]
fn absurd_nesting_is_refused() {
    // An encrypted message nested inside signatures deeper than the bound.
    let mut msg = read("messages/signed-opaque.eml");
    for _ in 0..10 {
        msg = openssl_ok(
            &[
                "cms",
                "-sign",
                "-nodetach",
                "-signer",
                &f("partner/alice.pem"),
                "-inkey",
                &f("partner/alice.key"),
            ],
            &msg,
        );
    }
    let opened = open_message(crypto(), &msg, &[]);
    assert!(
        matches!(opened.stopped, Some(SmimeError::NestingTooDeep(_))),
        "{:?}",
        opened.stopped
    );
    // BER nesting beyond the bound.
    let deep: Vec<u8> = [0x30u8, 0x80].repeat(100_000);
    assert!(matches!(ber::normalise(&deep), Err(ber::BerError::TooDeep)));
}

#[test]
fn empty_and_malformed_mime_bodies() {
    for msg in [
        &b""[..],
        b"\r\n\r\n",
        b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\n",
        b"Content-Type: application/pkcs7-mime\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n",
        b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=x\r\n\r\n--x\r\nhi\r\n--x--\r\n",
        b"Content-Type: multipart/signed; boundary=x\r\n\r\n--x\r\n\r\nhi\r\n--x\r\nContent-Type: application/pkcs7-signature\r\n\r\ngarbage\r\n--x--\r\n",
    ] {
        let opened = open_message(crypto(),msg, &[]);
        // Never a panic; plain content or a reason.
        let _ = opened.to_message(&[]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes);
        let _ = open_message(crypto(),&bytes, &[]);
    }

    #[test]
    fn random_der_like_structures_never_panic(
        tags in proptest::collection::vec(prop_oneof![Just(0x30u8), Just(0xa0), Just(0x24), Just(0x04), Just(0x06), Just(0x31), Just(0x80)], 1..40),
        lens in proptest::collection::vec(prop_oneof![Just(0x80u8), 0u8..0x7f, Just(0x81), Just(0x84)], 1..40),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = Vec::new();
        for (t, l) in tags.iter().zip(lens.iter()) {
            bytes.push(*t);
            bytes.push(*l);
        }
        bytes.extend_from_slice(&tail);
        exercise(&bytes);
    }

    #[test]
    fn random_mime_around_smime_headers_never_panics(
        ct in prop_oneof![
            Just("application/pkcs7-mime; smime-type=enveloped-data"),
            Just("application/x-pkcs7-mime; smime-type=signed-data"),
            Just("multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b"),
            Just("application/octet-stream; name=smime.p7m"),
        ],
        body in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let mut msg = format!("From: a@b\r\nContent-Type: {ct}\r\nContent-Transfer-Encoding: base64\r\n\r\n").into_bytes();
        msg.extend_from_slice(&body);
        let opened = open_message(crypto(),&msg, &[]);
        let _ = opened.to_message(&[]);
    }
}
