#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Elliptic-curve and Ed25519 partners (issue 13) against OpenSSL, both directions: ECDSA and
//! Ed25519 signatures the engine verifies, ECDH key agreement it encrypts to and decrypts.
//! `make test` runs it on both backends (aws-lc-rs and RustCrypto).

mod common;

use common::*;
use der::{Any, Encode};
use gateway::smime::verify::{verify, Detached, SignatureOutcome};
use gateway::smime::{DigestAlg, SignatureScheme};

fn openssl_signed(signer: &str, md: &str, detached: bool) -> Vec<u8> {
    let (cert, key, chain) = (
        f(&format!("partner/{signer}.pem")),
        f(&format!("partner/{signer}.key")),
        f("ca/partner-chain.pem"),
    );
    let mut args = vec![
        "cms",
        "-sign",
        "-md",
        md,
        "-signer",
        &cert,
        "-inkey",
        &key,
        "-certfile",
        &chain,
        "-outform",
        "DER",
    ];
    if !detached {
        args.push("-nodetach");
    }
    openssl_ok(&args, BODY)
}

#[test]
fn openssl_ecdsa_signatures_verify_opaque_and_detached() {
    for (signer, md, digest) in [
        ("erin-p256", "sha256", DigestAlg::Sha256),
        ("peggy-p384", "sha384", DigestAlg::Sha384),
        ("victor-p521", "sha512", DigestAlg::Sha512),
    ] {
        for detached in [false, true] {
            let der = openssl_signed(signer, md, detached);
            let content = detached.then_some(Detached::Mime(BODY));
            let report = verify(crypto(), &der, content).unwrap().report;
            assert_eq!(
                report.outcome,
                SignatureOutcome::Valid,
                "{signer} {detached}"
            );
            assert_eq!(report.scheme, Some(SignatureScheme::Ecdsa));
            assert_eq!(report.digest, Some(digest));
            assert!(report.signer_emails[0].starts_with(signer.split('-').next().unwrap()));
            // The signed content altered: the message digest no longer matches.
            if detached {
                let altered = verify(
                    crypto(),
                    &der,
                    Some(Detached::Mime(
                        b"Content-Type: text/plain\r\n\r\nforged\r\n",
                    )),
                )
                .unwrap()
                .report;
                assert_eq!(altered.outcome, SignatureOutcome::ContentChanged);
            }
        }
    }
}

#[test]
fn a_tampered_ecdsa_signature_fails() {
    let mut der = openssl_signed("erin-p256", "sha256", false);
    // The signature value (a DER Ecdsa-Sig-Value) ends the SignerInfo, the last field.
    let n = der.len();
    der[n - 5] ^= 0x55;
    let report = verify(crypto(), &der, None).unwrap().report;
    assert_eq!(report.outcome, SignatureOutcome::BadSignature);
}

/// OpenSSL 3.0's `cms -sign` cannot sign with Ed25519 ("no default digest"): the SignedData is
/// assembled here as RFC 8419 §3 lays it out, and its signature made by `openssl pkeyutl
/// -rawin` over the DER of the signed attributes.
fn ed25519_signed(content: &[u8], detached: bool) -> Vec<u8> {
    use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
    use cms::content_info::CmsVersion;
    use cms::signed_data::{
        CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo,
        SignerInfos,
    };
    use der::asn1::{OctetString, SetOfVec};
    use spki::AlgorithmIdentifierOwned;
    use x509_cert::attr::Attribute;

    let signer = cert("partner/walter-ed25519.pem");
    let digest = crypto().digest(DigestAlg::Sha512, content);
    let attribute = |oid, value: Any| Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).unwrap(),
    };
    let attrs = SetOfVec::try_from(vec![
        attribute(
            const_oid::db::rfc5911::ID_CONTENT_TYPE,
            Any::encode_from(&const_oid::db::rfc5911::ID_DATA).unwrap(),
        ),
        attribute(
            const_oid::db::rfc5911::ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest).unwrap()).unwrap(),
        ),
    ])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tbs = dir.path().join("tbs");
    std::fs::write(&tbs, attrs.to_der().unwrap()).unwrap();
    let signature = openssl_ok(
        &[
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            &f("partner/walter-ed25519.key"),
            "-in",
            tbs.to_str().unwrap(),
        ],
        b"",
    );
    let sha512 = AlgorithmIdentifierOwned {
        oid: DigestAlg::Sha512.oid(),
        parameters: None,
    };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: signer.tbs_certificate.issuer.clone(),
            serial_number: signer.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha512.clone(),
        signed_attrs: Some(attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: const_oid::ObjectIdentifier::new_unwrap("1.3.101.112"),
            parameters: None,
        },
        signature: OctetString::new(signature).unwrap(),
        unsigned_attrs: None,
    };
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha512]).unwrap(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: const_oid::db::rfc5911::ID_DATA,
            econtent: (!detached)
                .then(|| Any::encode_from(&OctetString::new(content).unwrap()).unwrap()),
        },
        certificates: Some(
            CertificateSet::try_from(vec![CertificateChoices::Certificate(signer)]).unwrap(),
        ),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info]).unwrap(),
    };
    cms::content_info::ContentInfo {
        content_type: const_oid::db::rfc5911::ID_SIGNED_DATA,
        content: Any::encode_from(&signed).unwrap(),
    }
    .to_der()
    .unwrap()
}

#[test]
fn openssl_made_ed25519_signatures_verify_opaque_and_detached() {
    for detached in [false, true] {
        let der = ed25519_signed(BODY, detached);
        let content = detached.then_some(Detached::Binary(BODY));
        let report = verify(crypto(), &der, content).unwrap().report;
        assert_eq!(
            report.outcome,
            SignatureOutcome::Valid,
            "detached {detached}"
        );
        assert_eq!(report.scheme, Some(SignatureScheme::Ed25519));
        assert_eq!(report.signer_emails, ["walter@partner.example"]);
    }
    // `openssl cms -verify` of 3.0 (this machine's) cannot check it: CMS Ed25519 fails there
    // with "invalid digest" in both directions. The signature itself is OpenSSL's (pkeyutl).
}

#[test]
fn a_tampered_ed25519_signature_fails() {
    let mut der = ed25519_signed(BODY, false);
    let n = der.len();
    der[n - 3] ^= 0x01;
    let report = verify(crypto(), &der, None).unwrap().report;
    assert_eq!(report.outcome, SignatureOutcome::BadSignature);
}

/// `openssl cms -decrypt` of DER with a fixture partner's key.
fn openssl_decrypt(der: &[u8], partner: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc.der");
    std::fs::write(&path, der).unwrap();
    openssl(
        &[
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-binary",
            "-in",
            path.to_str().unwrap(),
            "-recip",
            &f(&format!("partner/{partner}.pem")),
            "-inkey",
            &f(&format!("partner/{partner}.key")),
        ],
        b"",
    )
}

#[test]
fn openssl_decrypts_what_the_engine_encrypts_to_ec_and_rsa_partners() {
    use gateway::smime::encrypt::{encrypt, EncryptOptions};
    use gateway::smime::ContentCipher;
    let partners = ["erin-p256", "peggy-p384", "victor-p521", "alice"];
    let certs: Vec<_> = partners
        .iter()
        .map(|p| cert(&format!("partner/{p}.pem")))
        .collect();
    let refs: Vec<_> = certs.iter().collect();
    for cipher in [ContentCipher::Aes256Cbc, ContentCipher::Aes256Gcm] {
        let options = EncryptOptions {
            cipher,
            ..EncryptOptions::default()
        };
        let der = encrypt(crypto(), BODY, &refs, options).unwrap();
        // One RecipientInfo of the right kind each: three key agreements, one key transport.
        let summary = gateway::smime::decrypt::describe(&der).unwrap();
        let mut kinds: Vec<_> = summary
            .recipients
            .iter()
            .map(|r| r.key_transport.clone().unwrap_or_default())
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                "ecdh-x963-sha256",
                "ecdh-x963-sha384",
                "ecdh-x963-sha512",
                "rsa-pkcs1v15"
            ],
            "{cipher:?}"
        );
        for partner in partners {
            let out = openssl_decrypt(&der, partner);
            assert!(out.ok, "{partner} {cipher:?}: {}", out.stderr);
            assert_eq!(out.stdout, BODY, "{partner} {cipher:?}");
        }
    }
    // An Ed25519 key cannot receive a content key: a typed refusal, not a panic.
    let walter = cert("partner/walter-ed25519.pem");
    assert!(encrypt(crypto(), BODY, &[&walter], EncryptOptions::default()).is_err());
}

/// `openssl cms -encrypt` to the P-256 partner certificate (standing in for an EC proxy
/// identity: the engine only sees a certificate and its key), DER.
fn openssl_encrypted_to_p256(extra: &[&str]) -> Vec<u8> {
    let cert = f("partner/erin-p256.pem");
    let mut args = vec!["cms", "-encrypt", "-outform", "DER", "-binary"];
    let split = extra
        .iter()
        .position(|a| *a == "-keyopt")
        .unwrap_or(extra.len());
    args.extend_from_slice(&extra[..split]);
    args.extend_from_slice(&["-recip", &cert]);
    args.extend_from_slice(&extra[split..]);
    openssl_ok(&args, BODY)
}

fn decrypt_with_p256(
    der: &[u8],
) -> Result<gateway::smime::decrypt::Decrypted, gateway::smime::SmimeError> {
    use gateway::smime::decrypt::{decrypt, DecryptionKey};
    let (c, k) = (cert("partner/erin-p256.pem"), key("partner/erin-p256.key"));
    decrypt(
        crypto(),
        der,
        &[DecryptionKey {
            certificate: &c,
            key: &k,
        }],
    )
}

#[test]
fn the_engine_decrypts_what_openssl_encrypts_to_an_ec_key() {
    use gateway::smime::{ContentCipher, KeyTransport};
    for (extra, cipher, transport) in [
        (
            &["-aes256"][..],
            ContentCipher::Aes256Cbc,
            KeyTransport::EcdhX963(DigestAlg::Sha1),
        ),
        (
            &["-aes128", "-keyopt", "ecdh_kdf_md:sha256"][..],
            ContentCipher::Aes128Cbc,
            KeyTransport::EcdhX963(DigestAlg::Sha256),
        ),
        (
            &["-aes-256-gcm", "-keyopt", "ecdh_kdf_md:sha384"][..],
            ContentCipher::Aes256Gcm,
            KeyTransport::EcdhX963(DigestAlg::Sha384),
        ),
    ] {
        let der = openssl_encrypted_to_p256(extra);
        let decrypted = decrypt_with_p256(&der).unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        assert_eq!(decrypted.content, BODY);
        assert_eq!(decrypted.cipher, cipher);
        assert_eq!(decrypted.key_transport, transport);
        // Reports (the CLI's JSON, the message log) name it as the envelope summary does.
        assert_eq!(
            serde_json::to_value(transport).unwrap(),
            serde_json::Value::from(transport.name())
        );
    }
}

/// Index of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

#[test]
fn bad_key_agreement_input_is_the_one_decryption_error() {
    use gateway::smime::SmimeError;
    let der = openssl_encrypted_to_p256(&["-aes256", "-keyopt", "ecdh_kdf_md:sha256"]);
    // The originator's ephemeral key: BIT STRING of 66 bytes, an uncompressed P-256 point.
    let point = find(&der, &[0x03, 0x42, 0x00, 0x04]) + 4;
    let mut off_curve = der.clone();
    off_curve[point + 40] ^= 0x01;
    // The wrapped key: the OCTET STRING of 40 bytes after the point (AES key wrap of 32).
    let wrapped = point + find(&der[point..], &[0x04, 0x28]) + 2;
    let mut bad_wrap = der.clone();
    bad_wrap[wrapped + 3] ^= 0x80;
    // dhSinglePass-stdDH-sha256kdf-scheme (1.3.132.1.11.1) claimed as ...sha384kdf (…11.2).
    let kdf = find(&der, &[0x06, 0x06, 0x2b, 0x81, 0x04, 0x01, 0x0b, 0x01]);
    let mut wrong_kdf = der.clone();
    wrong_kdf[kdf + 7] = 0x02;
    for (name, forged) in [
        ("invalid point", off_curve),
        ("unwrap failure", bad_wrap),
        ("wrong KDF", wrong_kdf),
    ] {
        match decrypt_with_p256(&forged) {
            Err(SmimeError::DecryptionFailed) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
    // The untouched message still opens (the offsets above hit what they meant to).
    decrypt_with_p256(&der).unwrap();
}

#[test]
fn openssl_verifies_what_the_engine_signs_with_an_ec_key() {
    use gateway::smime::sign::{sign, Signer};
    let (c, k) = (cert("partner/erin-p256.pem"), key("partner/erin-p256.key"));
    let chain = [cert("ca/partner-intermediate.pem")];
    for detached in [false, true] {
        let der = sign(
            crypto(),
            BODY,
            &Signer {
                certificate: &c,
                chain: &chain,
                key: &k,
            },
            detached,
            std::time::SystemTime::now(),
        )
        .unwrap();
        // Our own reading first, then OpenSSL's.
        let content = detached.then_some(Detached::Binary(BODY));
        let report = verify(crypto(), &der, content).unwrap().report;
        assert_eq!(report.outcome, SignatureOutcome::Valid);
        assert_eq!(report.scheme, Some(SignatureScheme::Ecdsa));
        let dir = tempfile::tempdir().unwrap();
        let (sig, data) = (dir.path().join("sig.der"), dir.path().join("data"));
        std::fs::write(&sig, &der).unwrap();
        std::fs::write(&data, BODY).unwrap();
        let root = f("ca/partner-root.pem");
        let mut args = vec![
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-binary",
            "-purpose",
            "smimesign",
            "-in",
            sig.to_str().unwrap(),
            "-CAfile",
            &root,
        ];
        if detached {
            args.extend_from_slice(&["-content", data.to_str().unwrap()]);
        }
        let out = openssl(&args, b"");
        assert!(out.ok, "detached {detached}: {}", out.stderr);
        assert_eq!(out.stdout, BODY);
    }
}
