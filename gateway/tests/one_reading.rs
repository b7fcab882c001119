#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! One reading of every message: messages mutated the way the differential run found them,
//! each read by the engine and, where OpenSSL decides the question, by `openssl cms` too.
//! Where a verdict depends on which parser reads a message, the attacker chooses the parser;
//! these pin the engine to the reading the references (and the reader's client) share.

mod common;

use common::*;
use der::{Decode, Encode};
use gateway::mime::{open_message, Layer};
use gateway::smime::crypto::PrivateKeyOps;
use gateway::smime::verify::{verify, SignatureOutcome};
use sha2::{Digest, Sha256};

/// A detached signature by alice over BODY, as `openssl cms -sign` writes the whole message
/// (with its bare line ends made CRLF, as on the wire).
fn detached_message() -> Vec<u8> {
    let text = String::from_utf8(with_headers(&openssl_ok(
        &[
            "cms",
            "-sign",
            "-signer",
            &f("partner/alice.pem"),
            "-inkey",
            &f("partner/alice.key"),
            "-certfile",
            &f("ca/partner-chain.pem"),
        ],
        BODY,
    )))
    .unwrap();
    text.replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes()
}

fn openssl_verifies(message: &[u8]) -> bool {
    openssl(
        &[
            "cms",
            "-verify",
            "-CAfile",
            &f("ca/partner-root.pem"),
            "-out",
            "/dev/null",
        ],
        message,
    )
    .ok
}

fn valid_signature(message: &[u8]) -> bool {
    let opened = open_message(crypto(), message, &[]);
    opened.stopped.is_none() && opened.signature().is_some_and(|s| s.outcome.is_valid())
}

fn replace_once(haystack: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(haystack.to_vec()).unwrap();
    assert!(text.contains(from), "{from:?} not in message");
    text.replacen(from, to, 1).into_bytes()
}

// ---------------------------------------------------------------- 1. two header readers

#[test]
fn a_second_content_type_makes_the_message_ambiguous() {
    let original = detached_message();
    // The attacker puts their own Content-Type before the signed message's one: some readers
    // take the first field, others the last.
    let attacker = replace_once(
        &original,
        "MIME-Version: 1.0\r\n",
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"evil\"\r\n",
    );
    let opened = open_message(crypto(), &attacker, &[]);
    assert!(opened.layers.is_empty());
    let err = opened.stopped.expect("refused").to_string();
    assert!(err.contains("ambiguous MIME headers"), "{err}");

    // The same for Content-Transfer-Encoding and MIME-Version.
    for extra in [
        "MIME-Version: 1.0\r\nMIME-Version: 1.0\r\n",
        "MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 7bit\r\n",
    ] {
        let m = replace_once(&original, "MIME-Version: 1.0\r\n", extra);
        let err = open_message(crypto(),&m, &[]).stopped.expect("refused").to_string();
        assert!(err.contains("ambiguous MIME headers"), "{err}");
    }
}

#[test]
fn a_stray_header_line_does_not_hide_the_signature() {
    // OpenSSL reads past a line without a colon; so must we, or the message reads "not
    // signed" here and "signed" in the reader's client.
    let m = replace_once(
        &detached_message(),
        "MIME-Version: 1.0\r\n",
        "this line has no colon\r\nMIME-Version: 1.0\r\n",
    );
    assert!(openssl_verifies(&m));
    assert!(valid_signature(&m));
}

// ---------------------------------------------------------------- 2. parts of multipart/signed

#[test]
fn multipart_signed_with_a_third_part_is_refused() {
    let original = detached_message();
    let text = String::from_utf8(original).unwrap();
    let boundary = text
        .split("boundary=\"")
        .nth(1)
        .and_then(|b| b.split('"').next())
        .unwrap()
        .to_string();
    let closing = format!("--{boundary}--");
    let extra = format!(
        "--{boundary}\r\nContent-Type: text/plain\r\n\r\nUnsigned extra part.\r\n\r\n{closing}"
    );
    let m = text.replacen(&closing, &extra, 1);
    let err = open_message(crypto(), m.as_bytes(), &[])
        .stopped
        .expect("refused")
        .to_string();
    assert!(err.contains("exactly two parts"), "{err}");
}

#[test]
fn a_preamble_line_that_starts_with_the_boundary_is_not_a_delimiter() {
    let original = String::from_utf8(detached_message()).unwrap();
    let boundary = original
        .split("boundary=\"")
        .nth(1)
        .and_then(|b| b.split('"').next())
        .unwrap()
        .to_string();
    let m = original.replacen(
        "This is an S/MIME signed message",
        &format!("--{boundary}-not-a-delimiter in the preamble"),
        1,
    );
    // RFC 2046 §5.1.1 (NSS and gpgsm read it so); OpenSSL matches the prefix only and sees an
    // empty first part: a documented difference (docs/differences.md).
    assert!(valid_signature(m.as_bytes()));
}

#[test]
fn the_signature_part_must_be_a_signature() {
    let m = replace_once(
        &detached_message(),
        "Content-Type: application/pkcs7-signature",
        "Content-Type: text/plain",
    );
    let err = open_message(crypto(), &m, &[])
        .stopped
        .expect("refused")
        .to_string();
    assert!(err.contains("not an application/pkcs7-signature"), "{err}");
}

// ---------------------------------------------------------------- 3–5. signed attributes, signers

/// A minimal DER writer for hand-made SignedData.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

const OID_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];
const OID_SIGNED_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];
const OID_CONTENT_TYPE: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03,
];
const OID_MESSAGE_DIGEST: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04,
];
const ALG_SHA256: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
];
const ALG_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn content_type_attr() -> Vec<u8> {
    tlv(0x30, &cat(&[OID_CONTENT_TYPE, &tlv(0x31, OID_DATA)]))
}

fn message_digest_attr(values: &[&[u8]]) -> Vec<u8> {
    let set: Vec<u8> = values.iter().flat_map(|v| tlv(0x04, v)).collect();
    tlv(0x30, &cat(&[OID_MESSAGE_DIGEST, &tlv(0x31, &set)]))
}

/// One SignerInfo by alice: `sent` is the attributes' content as transmitted, `signed` the
/// content whose SET encoding the signature covers.
fn signer_info(sent: &[u8], signed: &[u8], corrupt: bool) -> Vec<u8> {
    let cert = cert("partner/alice.pem");
    let issuer = cert.tbs_certificate.issuer.to_der().unwrap();
    let serial = cert.tbs_certificate.serial_number.to_der().unwrap();
    let mut signature = key("partner/alice.key")
        .sign(
            gateway::smime::crypto::RsaSignature::Pkcs1v15(gateway::smime::DigestAlg::Sha256),
            &tlv(0x31, signed),
        )
        .unwrap();
    if corrupt {
        signature[10] ^= 0xff;
    }
    tlv(
        0x30,
        &cat(&[
            &[0x02, 0x01, 0x01],
            &tlv(0x30, &cat(&[&issuer, &serial])),
            ALG_SHA256,
            &tlv(0xa0, sent),
            ALG_RSA,
            &tlv(0x04, &signature),
        ]),
    )
}

fn signed_data(content: &[u8], signer_infos: &[Vec<u8>]) -> Vec<u8> {
    signed_data_listing(ALG_SHA256, content, signer_infos)
}

/// SignedData whose `digestAlgorithms` set holds `digest_algorithms` (concatenated
/// AlgorithmIdentifiers).
fn signed_data_listing(
    digest_algorithms: &[u8],
    content: &[u8],
    signer_infos: &[Vec<u8>],
) -> Vec<u8> {
    let cert_der = std::fs::read_to_string(fixture("partner/alice.pem")).unwrap();
    let cert = x509_cert::Certificate::from_der(&pem_der(&cert_der))
        .unwrap()
        .to_der()
        .unwrap();
    let sd = tlv(
        0x30,
        &cat(&[
            &[0x02, 0x01, 0x01],
            &tlv(0x31, digest_algorithms),
            &tlv(0x30, &cat(&[OID_DATA, &tlv(0xa0, &tlv(0x04, content))])),
            &tlv(0xa0, &cert),
            &tlv(0x31, &signer_infos.concat()),
        ]),
    );
    tlv(0x30, &cat(&[OID_SIGNED_DATA, &tlv(0xa0, &sd)]))
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn outcome(der: &[u8]) -> SignatureOutcome {
    verify(crypto(), der, None).unwrap().report.outcome
}

fn openssl_verifies_der(der: &[u8]) -> bool {
    openssl(
        &[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-noverify",
            "-out",
            "/dev/null",
        ],
        der,
    )
    .ok
}

#[test]
fn signed_attributes_are_hashed_as_received() {
    let content = b"Content-Type: text/plain\r\n\r\nSigned.\r\n";
    let md = Sha256::digest(content);
    let ct = content_type_attr();
    let mdattr = message_digest_attr(&[&md]);
    let der_order = cat(&[&ct, &mdattr]);
    let other_order = cat(&[&mdattr, &ct]);

    // Sanity: DER order, signed as sent.
    let good = signed_data(content, &[signer_info(&der_order, &der_order, false)]);
    assert_eq!(outcome(&good), SignatureOutcome::Valid);
    assert!(openssl_verifies_der(&good));

    // Non-DER order, signed as sent: the signature holds over what was sent (NSS, gpgsm and
    // OpenSSL accept it).
    let as_sent = signed_data(content, &[signer_info(&other_order, &other_order, false)]);
    assert_eq!(outcome(&as_sent), SignatureOutcome::Valid);
    assert!(openssl_verifies_der(&as_sent));

    // Sent reordered after being signed sorted: not what was signed.
    let reordered = signed_data(content, &[signer_info(&other_order, &der_order, false)]);
    assert_eq!(outcome(&reordered), SignatureOutcome::BadSignature);
    assert!(!openssl_verifies_der(&reordered));
}

/// Finding 6 (reviewed leniency): a signer whose digest `digestAlgorithms` does not list is
/// refused, as OpenSSL (`CMS Verification failure`) and NSS (`DigestMismatch`) refuse it.
#[test]
fn signer_digest_must_be_listed_in_digest_algorithms() {
    const ALG_SHA512: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00,
    ];
    let content = b"Content-Type: text/plain\r\n\r\nSigned.\r\n";
    let attrs = cat(&[
        &content_type_attr(),
        &message_digest_attr(&[&Sha256::digest(content)]),
    ]);
    let signer = || vec![signer_info(&attrs, &attrs, false)];

    let listed = signed_data_listing(&cat(&[ALG_SHA512, ALG_SHA256]), content, &signer());
    assert_eq!(outcome(&listed), SignatureOutcome::Valid);
    assert!(openssl_verifies_der(&listed));

    for set in [ALG_SHA512, &[][..]] {
        let unlisted = signed_data_listing(set, content, &signer());
        match outcome(&unlisted) {
            SignatureOutcome::WrongDigest(d) => assert!(d.contains("not listed"), "{d}"),
            other => panic!("expected a wrong digest, got {other:?}"),
        }
        assert!(!openssl_verifies_der(&unlisted));
    }
}

#[test]
fn one_signature_cannot_cover_two_contents() {
    let content = b"Content-Type: text/plain\r\n\r\nSigned.\r\n";
    let md = Sha256::digest(content);
    let other = Sha256::digest(b"Content-Type: text/plain\r\n\r\nOther.\r\n");
    let ct = content_type_attr();

    // Two values in one message-digest attribute.
    let two_values = cat(&[&ct, &message_digest_attr(&[&md, &other])]);
    let der = signed_data(content, &[signer_info(&two_values, &two_values, false)]);
    match outcome(&der) {
        SignatureOutcome::BadAttributes(d) => assert!(d.contains("exactly one value"), "{d}"),
        other => panic!("expected bad attributes, got {other:?}"),
    }

    // Two message-digest attributes.
    let two_attrs = cat(&[
        &ct,
        &message_digest_attr(&[&md]),
        &message_digest_attr(&[&other]),
    ]);
    let der = signed_data(content, &[signer_info(&two_attrs, &two_attrs, false)]);
    // A strict DER reader may refuse the set outright (an error): also not a pass.
    if let Ok(v) = verify(crypto(), &der, None) {
        match v.report.outcome {
            SignatureOutcome::BadAttributes(d) => assert!(d.contains("more than once"), "{d}"),
            other => panic!("expected bad attributes, got {other:?}"),
        }
    }
}

#[test]
fn every_signer_must_verify_and_each_is_reported() {
    let content = b"Content-Type: text/plain\r\n\r\nSigned twice.\r\n";
    let md = Sha256::digest(content);
    let attrs = cat(&[&content_type_attr(), &message_digest_attr(&[&md])]);
    let valid = signer_info(&attrs, &attrs, false);
    let forged_twin = signer_info(&attrs, &attrs, true);

    let both_valid = signed_data(content, &[valid.clone(), valid.clone()]);
    let report = verify(crypto(), &both_valid, None).unwrap().report;
    assert_eq!(report.outcome, SignatureOutcome::Valid);
    assert_eq!(report.signers.len(), 2);

    // A forged twin with alice's issuer and serial: the message fails, whatever the order,
    // and the report shows both signers with their own results.
    for order in [
        vec![valid.clone(), forged_twin.clone()],
        vec![forged_twin.clone(), valid.clone()],
    ] {
        let der = signed_data(content, &order);
        let report = verify(crypto(), &der, None).unwrap().report;
        assert_eq!(report.outcome, SignatureOutcome::BadSignature);
        let outcomes: Vec<bool> = report
            .signers
            .iter()
            .map(|s| s.outcome.is_valid())
            .collect();
        assert_eq!(outcomes.iter().filter(|v| **v).count(), 1, "{outcomes:?}");
        assert_eq!(outcomes.len(), 2);
        assert!(!openssl_verifies_der(&der));
    }
}

// ---------------------------------------------------------------- 7. strictness to relax

#[test]
fn sha224_signatures_verify() {
    let m = with_headers(&openssl_ok(
        &[
            "cms",
            "-sign",
            "-md",
            "sha224",
            "-signer",
            &f("partner/alice.pem"),
            "-inkey",
            &f("partner/alice.key"),
        ],
        BODY,
    ));
    let opened = open_message(crypto(), &m, &[]);
    match opened.layers.first() {
        Some(Layer::Signed { report, .. }) => {
            assert_eq!(report.outcome, SignatureOutcome::Valid);
            assert_eq!(report.digest.map(|d| d.name()), Some("sha224"));
        }
        other => panic!("{other:?} / {:?}", opened.stopped),
    }
}

/// An opaque signature by alice over BODY, DER, as `openssl cms -sign -nodetach` writes it.
fn opaque_signed_der() -> Vec<u8> {
    openssl_ok(
        &[
            "cms",
            "-sign",
            "-nodetach",
            "-outform",
            "DER",
            "-signer",
            &f("partner/alice.pem"),
            "-inkey",
            &f("partner/alice.key"),
        ],
        BODY,
    )
}

#[test]
fn trailing_bytes_after_the_cms_object_are_ignored() {
    let der = opaque_signed_der();
    let mut padded = der.clone();
    padded.extend_from_slice(&[0, 0, 0, 0]);
    assert!(openssl_verifies_der(&padded));
    let verified = verify(crypto(), &padded, None).unwrap();
    assert_eq!(verified.report.outcome, SignatureOutcome::Valid);
    assert_eq!(verified.content(), BODY);
}

#[test]
fn issuer_names_compare_by_rfc5280_rules() {
    use gateway::smime::certs::names_match;
    use std::str::FromStr;
    use x509_cert::name::Name;
    let a = Name::from_str("CN=Partner  Issuing CA,O=Partner Example").unwrap();
    let b = Name::from_str("CN=partner issuing ca,O=PARTNER EXAMPLE").unwrap();
    let c = Name::from_str("CN=Other CA,O=Partner Example").unwrap();
    assert!(names_match(&a, &b));
    assert!(!names_match(&a, &c));
    // PrintableString against UTF8String with the same text.
    let alice = cert("partner/alice.pem");
    let issuer = &alice.tbs_certificate.issuer;
    let mut retyped = issuer.clone();
    for rdn in retyped.0.iter_mut() {
        let attrs: Vec<_> = rdn
            .0
            .iter()
            .map(|atv| {
                let text = std::str::from_utf8(atv.value.value())
                    .unwrap()
                    .to_uppercase();
                x509_cert::attr::AttributeTypeAndValue {
                    oid: atv.oid,
                    value: der::Any::new(der::Tag::PrintableString, text.as_bytes().to_vec())
                        .unwrap_or_else(|_| {
                            der::Any::new(der::Tag::Utf8String, text.as_bytes().to_vec()).unwrap()
                        }),
                }
            })
            .collect();
        *rdn = x509_cert::name::RelativeDistinguishedName::try_from(attrs).unwrap();
    }
    assert_ne!(&retyped, issuer);
    assert!(names_match(&retyped, issuer));
}

// ---------------------------------------------------------------- found by `make difftest`

#[test]
fn a_stray_line_before_the_first_field_does_not_hide_the_signature() {
    let mut m = b"a line without a colon\r\n".to_vec();
    m.extend_from_slice(&detached_message());
    assert!(openssl_verifies(&m));
    assert!(valid_signature(&m));
}

#[test]
fn a_missing_transfer_encoding_label_on_the_signature_is_read_as_base64() {
    let m = replace_once(
        &detached_message(),
        "Content-Transfer-Encoding: base64\r\n",
        "",
    );
    assert!(openssl_verifies(&m));
    assert!(valid_signature(&m));
}

#[test]
fn recipient_issuer_names_compare_by_rfc5280_rules() {
    use base64::Engine;
    use gateway::smime::decrypt::DecryptionKey;
    let der = openssl_ok(
        &[
            "cms",
            "-encrypt",
            "-aes256",
            "-outform",
            "DER",
            "-recip",
            &f("proxy/user.pem"),
        ],
        BODY,
    );
    let user = cert("proxy/user.pem");
    let issuer = user.tbs_certificate.issuer.to_der().unwrap();
    let at = der
        .windows(issuer.len())
        .position(|w| w == issuer.as_slice())
        .expect("issuer in the RecipientInfo");
    // Change the case of the last letter of the issuer name (inside a string value): the same
    // name by RFC 5280 rules, different bytes.
    let mut mutated = der.clone();
    let letter = (at..at + issuer.len())
        .rev()
        .find(|i| mutated[*i].is_ascii_lowercase())
        .expect("a lower-case letter in the issuer name");
    mutated[letter] = mutated[letter].to_ascii_uppercase();
    let body = base64::engine::general_purpose::STANDARD.encode(&mutated);
    let message = with_headers(
        format!(
            "MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n"
        )
        .as_bytes(),
    );
    let key = key("proxy/user.key");
    let opened = open_message(
        crypto(),
        &message,
        &[DecryptionKey {
            certificate: &user,
            key: &key,
        }],
    );
    assert!(opened.decrypted(), "{:?}", opened.stopped);
    assert!(opened.content.ends_with(b"Second line.\r\n"));
}

/// Offset of the content of the first `02 01 xx` (one-byte INTEGER) at or after `from`.
fn version_at(der: &[u8], from: usize) -> usize {
    from + der[from..]
        .windows(2)
        .position(|w| w == [0x02, 0x01])
        .expect("a one-byte INTEGER")
        + 2
}

/// RFC 5652 §1.3: readers decode by structure; the version number is not checked (OpenSSL
/// accepts any value too). SignedData and SignerInfo versions.
#[test]
fn unusual_signed_data_and_signer_info_versions_are_accepted() {
    let der = opaque_signed_der();
    // SignedData's version is the first INTEGER; the SignerInfo's the first after the
    // signer's certificate.
    let signed_data_version = version_at(&der, 0);
    let alice = pem_der(&std::fs::read_to_string(f("partner/alice.pem")).unwrap());
    let cert_end = der
        .windows(alice.len())
        .position(|w| w == alice.as_slice())
        .expect("the signer's certificate is carried")
        + alice.len();
    let signer_info_version = version_at(&der, cert_end);
    for (field, at) in [
        ("SignedData", signed_data_version),
        ("SignerInfo", signer_info_version),
    ] {
        for version in [0u8, 2, 4, 7, 99] {
            let mut mutated = der.clone();
            mutated[at] = version;
            assert!(
                openssl_verifies_der(&mutated),
                "{field} v{version}: openssl"
            );
            let verified = verify(crypto(), &mutated, None)
                .unwrap_or_else(|e| panic!("{field} version {version}: {e}"));
            assert_eq!(
                verified.report.outcome,
                SignatureOutcome::Valid,
                "{field} v{version}"
            );
            assert_eq!(verified.content(), BODY);
        }
    }
}

/// The same for EnvelopedData and KeyTransRecipientInfo versions.
#[test]
fn unusual_enveloped_data_and_recipient_info_versions_are_accepted() {
    use gateway::smime::decrypt::{decrypt, DecryptionKey};
    let der = openssl_ok(
        &[
            "cms",
            "-encrypt",
            "-aes256",
            "-outform",
            "DER",
            "-recip",
            &f("proxy/user.pem"),
        ],
        BODY,
    );
    let enveloped_version = version_at(&der, 0);
    let ktri_version = version_at(&der, enveloped_version);
    let (user, key) = (cert("proxy/user.pem"), key("proxy/user.key"));
    let keys = [DecryptionKey {
        certificate: &user,
        key: &key,
    }];
    for (field, at) in [
        ("EnvelopedData", enveloped_version),
        ("KeyTransRecipientInfo", ktri_version),
    ] {
        for version in [1u8, 3, 4, 9, 99] {
            let mut mutated = der.clone();
            mutated[at] = version;
            let decrypted = decrypt(crypto(), &mutated, &keys)
                .unwrap_or_else(|e| panic!("{field} v{version}: {e}"));
            assert!(
                decrypted.content.ends_with(b"Second line.\r\n"),
                "{field} v{version}"
            );
        }
    }
}

/// Messages `make difftest` found (kept as found, in `tests/difftest-found/`): single-bit flips
/// of a detached signature on which the engine and OpenSSL disagreed. `refused-*`: OpenSSL and
/// NSS refuse them, so must the engine. `accepted-*`: OpenSSL reads the original content, so
/// must the engine.
#[test]
fn messages_found_by_the_exhaustive_bit_flip_run_read_as_openssl_reads_them() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/difftest-found");
    let (mut refused, mut accepted) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let message = std::fs::read(&path).unwrap();
        let openssl = openssl(&["cms", "-verify", "-noverify"], &message);
        if name.starts_with("refused-") {
            refused += 1;
            assert!(!valid_signature(&message), "{name} verified");
            assert!(!openssl.ok, "{name}: openssl accepts it");
        } else if name.starts_with("accepted-") {
            accepted += 1;
            let opened = open_message(crypto(), &message, &[]);
            assert!(valid_signature(&message), "{name}: {:?}", opened.stopped);
            assert!(openssl.ok, "{name}: {}", openssl.stderr);
            assert!(
                String::from_utf8_lossy(&opened.content).contains("Hello from the partner."),
                "{name}"
            );
        }
    }
    assert!(
        refused >= 2 && accepted >= 2,
        "messages missing in {}",
        dir.display()
    );
}
