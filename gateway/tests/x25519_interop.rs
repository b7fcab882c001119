#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! X25519 partners (RFC 8418, issue 13): the engine encrypts to an X25519 certificate by key
//! agreement (ECDH ephemeral-static, HKDF-SHA256, AES-256 key wrap) and decrypts such mail
//! with an X25519 private key.
//!
//! No CMS implementation here reads X25519 key agreement (OpenSSL 3.0's `cms` cannot, NSS 3.87
//! has no CMS key agreement), so the independent check is OpenSSL's *primitives*, one step at
//! a time: `pkeyutl -derive` for the shared secret, `kdf HKDF` (or `X963KDF`) for the
//! key-encryption key over a SharedInfo written out by hand here, `enc -id-aes256-wrap` for
//! the key wrap and `enc -aes-256-cbc` for the content. The X25519 key and its certificate are
//! made by the `openssl` CLI in a temporary directory (an X25519 key cannot sign: a small EC
//! CA issues the certificate, `x509 -force_pubkey` puts the X25519 key in it).
//! `make test` runs it on both backends (aws-lc-rs and RustCrypto).

mod common;

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::ContentInfo;
use cms::enveloped_data::{
    EnvelopedData, KeyAgreeRecipientIdentifier, KeyAgreeRecipientInfo, OriginatorIdentifierOrKey,
    RecipientInfo, RecipientInfos,
};
use common::*;
use der::asn1::{BitString, ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use gateway::smime::asn1::AuthEnvelopedData;
use gateway::smime::certs;
use gateway::smime::crypto::PrivateKey;
use gateway::smime::decrypt::{decrypt, describe, Decrypted, DecryptionKey};
use gateway::smime::encrypt::{encrypt, EncryptOptions};
use gateway::smime::{ContentCipher, KeyTransport, SmimeError};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

const OID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// RFC 8418 dhSinglePass-stdDH-hkdf-sha256-scheme.
const OID_HKDF_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.3.19");
/// RFC 8418 dhSinglePass-stdDH-hkdf-sha384-scheme (not supported by the engine).
const OID_HKDF_SHA384: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.3.20");
/// RFC 5753 dhSinglePass-stdDH-sha256kdf-scheme (X9.63), which RFC 8418 §2.1 allows too.
const OID_X963_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.1.11.1");
const OID_AES256_WRAP: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.45");
const OID_ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");

/// RFC 5753 §7.2 ECC-CMS-SharedInfo as RFC 8418 uses it for AES-256 key wrap, DER written
/// out by hand (not by the engine's encoder): SEQUENCE { keyInfo SEQUENCE { id-aes256-wrap
/// }, [0] EXPLICIT OCTET STRING ukm (optional), [2] EXPLICIT OCTET STRING 00000100 (256
/// bits) }.
fn shared_info(ukm: Option<&[u8]>) -> String {
    let key_info = "300b060960864801650304012d";
    let supp_pub_info = "a206040400000100";
    let entity_u_info = ukm.map_or(String::new(), |u| {
        assert!(u.len() < 100);
        format!("a0{:02x}04{:02x}{}", u.len() + 2, u.len(), hex::encode(u))
    });
    let body = format!("{key_info}{entity_u_info}{supp_pub_info}");
    format!("30{:02x}{body}", body.len() / 2)
}

/// An X25519 partner: key and certificate made by the openssl CLI in a temporary directory.
struct Partner {
    dir: tempfile::TempDir,
    cert: Certificate,
}

impl Partner {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let partner = Partner {
            dir,
            cert: cert("partner/alice.pem"),
        };
        let p = |n: &str| partner.path(n);
        openssl_ok(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &p("ca.key"),
                "-out",
                &p("ca.pem"),
                "-subj",
                "/CN=X25519 test CA",
                "-days",
                "30",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            b"",
        );
        openssl_ok(
            &["genpkey", "-algorithm", "X25519", "-out", &p("x.key")],
            b"",
        );
        openssl_ok(
            &["pkey", "-in", &p("x.key"), "-pubout", "-out", &p("x.pub")],
            b"",
        );
        // The request is signed by a throwaway key (X25519 cannot sign); the certificate
        // carries the X25519 key instead (-force_pubkey).
        openssl_ok(
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &p("csr.key"),
                "-out",
                &p("x.csr"),
                "-subj",
                "/CN=Xavier X25519",
            ],
            b"",
        );
        std::fs::write(
            p("x.ext"),
            "keyUsage=critical,keyAgreement\nextendedKeyUsage=emailProtection\n\
             subjectAltName=email:xavier@partner.example\nsubjectKeyIdentifier=hash\n\
             authorityKeyIdentifier=keyid\n",
        )
        .unwrap();
        openssl_ok(
            &[
                "x509",
                "-req",
                "-in",
                &p("x.csr"),
                "-CA",
                &p("ca.pem"),
                "-CAkey",
                &p("ca.key"),
                "-set_serial",
                "0x25519",
                "-days",
                "30",
                "-force_pubkey",
                &p("x.pub"),
                "-extfile",
                &p("x.ext"),
                "-out",
                &p("x.pem"),
            ],
            b"",
        );
        let cert = certs::parse_certificate(&std::fs::read(p("x.pem")).unwrap()).unwrap();
        Partner { cert, ..partner }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn key(&self) -> PrivateKey {
        crypto()
            .load_private_key(&std::fs::read(self.path("x.key")).unwrap())
            .unwrap()
    }

    fn decrypt(&self, der: &[u8]) -> Result<Decrypted, SmimeError> {
        let key = self.key();
        decrypt(
            crypto(),
            der,
            &[DecryptionKey {
                certificate: &self.cert,
                key: &key,
            }],
        )
    }
}

/// The hex the `openssl kdf` command prints (`AB:CD:...`), as bytes.
fn kdf_output(out: &[u8]) -> Vec<u8> {
    hex::decode(String::from_utf8_lossy(out).trim().replace(':', "")).unwrap()
}

/// What the checks need of an (Auth)EnvelopedData, read with the `cms` crate.
struct Envelope {
    recipients: Vec<RecipientInfo>,
    content_alg: AlgorithmIdentifierOwned,
    ciphertext: Vec<u8>,
    /// AuthEnvelopedData only.
    tag: Option<Vec<u8>>,
}

fn envelope(der: &[u8]) -> Envelope {
    let info = ContentInfo::from_der(der).unwrap();
    if info.content_type == OID_ENVELOPED_DATA {
        let env: EnvelopedData = info.content.decode_as().unwrap();
        Envelope {
            recipients: env.recip_infos.0.into_vec(),
            content_alg: env.encrypted_content.content_enc_alg,
            ciphertext: env
                .encrypted_content
                .encrypted_content
                .unwrap()
                .into_bytes(),
            tag: None,
        }
    } else {
        let env: AuthEnvelopedData = info.content.decode_as().unwrap();
        Envelope {
            recipients: env.recip_infos.0,
            content_alg: env.auth_encrypted_content.content_enc_alg,
            ciphertext: env
                .auth_encrypted_content
                .encrypted_content
                .unwrap()
                .into_bytes(),
            tag: Some(env.mac.into_bytes()),
        }
    }
}

/// The one KeyAgreeRecipientInfo naming `cert`.
fn kari_for(recipients: &[RecipientInfo], cert: &Certificate) -> KeyAgreeRecipientInfo {
    let mut found = recipients.iter().filter_map(|ri| match ri {
        RecipientInfo::Kari(k) => match &k.recipient_enc_keys[..] {
            [rek] if names(&rek.rid, cert) => Some(k.clone()),
            _ => None,
        },
        _ => None,
    });
    let kari = found.next().expect("a key agreement for the certificate");
    assert!(found.next().is_none(), "one RecipientInfo per recipient");
    kari
}

fn names(rid: &KeyAgreeRecipientIdentifier, cert: &Certificate) -> bool {
    rid == &KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: cert.tbs_certificate.issuer.clone(),
        serial_number: cert.tbs_certificate.serial_number.clone(),
    })
}

/// RFC 8418 §3 as the engine must write it: version 3, the originator an X25519 key
/// (parameters absent, 32 bytes), no ukm, the HKDF-SHA256 scheme with AES-256 key wrap
/// (parameters absent), the recipient by issuer and serial number, a 40-byte wrapped key.
fn assert_rfc8418_shape(kari: &KeyAgreeRecipientInfo) {
    assert_eq!(kari.version, cms::content_info::CmsVersion::V3);
    let OriginatorIdentifierOrKey::OriginatorKey(originator) = &kari.originator else {
        panic!("originator is not an originatorKey: {:?}", kari.originator);
    };
    assert_eq!(originator.algorithm.oid, OID_X25519);
    assert!(originator.algorithm.parameters.is_none());
    assert_eq!(originator.public_key.as_bytes().unwrap().len(), 32);
    assert!(kari.ukm.is_none());
    assert_eq!(kari.key_enc_alg.oid, OID_HKDF_SHA256);
    let wrap = AlgorithmIdentifierOwned::from_der(
        &kari
            .key_enc_alg
            .parameters
            .as_ref()
            .unwrap()
            .to_der()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(wrap.oid, OID_AES256_WRAP);
    assert!(wrap.parameters.is_none());
    assert_eq!(kari.recipient_enc_keys[0].enc_key.as_bytes().len(), 40);
}

/// The content-encryption key of `kari` for the partner, by OpenSSL's primitives alone:
/// X25519 (`pkeyutl -derive`) with the originator's key, HKDF-SHA256 without salt over the
/// hand-written SharedInfo (`kdf HKDF`), AES-256 key unwrap (`enc -id-aes256-wrap`).
fn openssl_cek(partner: &Partner, kari: &KeyAgreeRecipientInfo) -> Vec<u8> {
    let OriginatorIdentifierOrKey::OriginatorKey(originator) = &kari.originator else {
        panic!("no originator key");
    };
    let ephemeral = spki::SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: OID_X25519,
            parameters: None,
        },
        subject_public_key: originator.public_key.clone(),
    }
    .to_der()
    .unwrap();
    let peer = partner.write("ephemeral.der", &ephemeral);
    let z = openssl_ok(
        &[
            "pkeyutl",
            "-derive",
            "-inkey",
            &partner.path("x.key"),
            "-peerform",
            "DER",
            "-peerkey",
            &peer,
        ],
        b"",
    );
    assert_eq!(z.len(), 32);
    let kek = kdf_output(&openssl_ok(
        &[
            "kdf",
            "-keylen",
            "32",
            "-kdfopt",
            "digest:SHA256",
            "-kdfopt",
            &format!("hexkey:{}", hex::encode(&z)),
            "-kdfopt",
            &format!("hexinfo:{}", shared_info(None)),
            "HKDF",
        ],
        b"",
    ));
    let wrapped = partner.write("wrapped.bin", kari.recipient_enc_keys[0].enc_key.as_bytes());
    openssl_ok(
        &[
            "enc",
            "-d",
            "-id-aes256-wrap",
            "-K",
            &hex::encode(&kek),
            "-iv",
            "A6A6A6A6A6A6A6A6",
            "-in",
            &wrapped,
        ],
        b"",
    )
}

/// The AES-256-CBC content of `env` decrypted by `openssl enc` with `cek`.
fn openssl_cbc_content(partner: &Partner, env: &Envelope, cek: &[u8]) -> Vec<u8> {
    assert_eq!(env.content_alg.oid, ContentCipher::Aes256Cbc.oid());
    let iv = OctetString::from_der(
        &env.content_alg
            .parameters
            .as_ref()
            .unwrap()
            .to_der()
            .unwrap(),
    )
    .unwrap();
    let ciphertext = partner.write("content.bin", &env.ciphertext);
    openssl_ok(
        &[
            "enc",
            "-d",
            "-aes-256-cbc",
            "-K",
            &hex::encode(cek),
            "-iv",
            &hex::encode(iv.as_bytes()),
            "-in",
            &ciphertext,
        ],
        b"",
    )
}

fn encrypt_to(certs: &[&Certificate], cipher: ContentCipher) -> Vec<u8> {
    let options = EncryptOptions {
        cipher,
        ..EncryptOptions::default()
    };
    encrypt(crypto(), BODY, certs, options).unwrap()
}

#[test]
fn openssl_primitives_decrypt_what_the_engine_encrypts_to_an_x25519_key() {
    let partner = Partner::new();
    let der = encrypt_to(&[&partner.cert], ContentCipher::Aes256Cbc);
    let env = envelope(&der);
    assert_eq!(env.recipients.len(), 1);
    let kari = kari_for(&env.recipients, &partner.cert);
    assert_rfc8418_shape(&kari);
    let cek = openssl_cek(&partner, &kari);
    assert_eq!(cek.len(), 32);
    assert_eq!(openssl_cbc_content(&partner, &env, &cek), BODY);

    // AES-256-GCM (for partners that advertised it): `openssl enc` has no AEAD modes, so
    // OpenSSL's primitives recover the key and the provider's AES-GCM opens the content.
    let der = encrypt_to(&[&partner.cert], ContentCipher::Aes256Gcm);
    let env = envelope(&der);
    let kari = kari_for(&env.recipients, &partner.cert);
    assert_rfc8418_shape(&kari);
    let cek = openssl_cek(&partner, &kari);
    assert_eq!(env.content_alg.oid, ContentCipher::Aes256Gcm.oid());
    let params = gateway::smime::asn1::GcmParameters::from_der(
        &env.content_alg
            .parameters
            .as_ref()
            .unwrap()
            .to_der()
            .unwrap(),
    )
    .unwrap();
    let mut content = env.ciphertext.clone();
    crypto()
        .ciphers
        .gcm_open(
            &cek,
            params.nonce.as_bytes(),
            b"",
            &mut content,
            env.tag.as_ref().unwrap(),
        )
        .unwrap();
    assert_eq!(content, BODY);
}

#[test]
fn the_engine_decrypts_what_it_encrypts_to_an_x25519_key() {
    let partner = Partner::new();
    for cipher in [ContentCipher::Aes256Cbc, ContentCipher::Aes256Gcm] {
        let der = encrypt_to(&[&partner.cert], cipher);
        let decrypted = partner.decrypt(&der).unwrap();
        assert_eq!(decrypted.content, BODY);
        assert_eq!(decrypted.cipher, cipher);
        assert_eq!(decrypted.key_transport, KeyTransport::EcdhHkdfSha256);
        assert_eq!(decrypted.authenticated, cipher.is_aead());
        // Reports name it as the envelope summary does.
        let summary = describe(&der).unwrap();
        assert_eq!(
            summary.recipients[0].key_transport.as_deref(),
            Some("ecdh-hkdf-sha256")
        );
        assert_eq!(
            serde_json::to_value(decrypted.key_transport).unwrap(),
            serde_json::Value::from("ecdh-hkdf-sha256")
        );
    }
}

/// An RSA, an EC and an X25519 partner in one message: one RecipientInfo of the right kind
/// each, and each partner reads it — OpenSSL's `cms -decrypt` for RSA and EC (it passes
/// over the X25519 key agreement), OpenSSL's primitives and the engine for X25519.
#[test]
fn a_message_to_rsa_ec_and_x25519_partners_has_one_recipient_info_each() {
    let partner = Partner::new();
    let alice = cert("partner/alice.pem");
    let erin = cert("partner/erin-p256.pem");
    for cipher in [ContentCipher::Aes256Cbc, ContentCipher::Aes256Gcm] {
        let der = encrypt_to(&[&alice, &erin, &partner.cert], cipher);
        let env = envelope(&der);
        assert_eq!(env.recipients.len(), 3);
        let ktri: Vec<_> = env
            .recipients
            .iter()
            .filter_map(|ri| match ri {
                RecipientInfo::Ktri(k) => Some(k),
                _ => None,
            })
            .collect();
        assert_eq!(ktri.len(), 1);
        assert_eq!(
            ktri[0].rid,
            cms::enveloped_data::RecipientIdentifier::IssuerAndSerialNumber(
                IssuerAndSerialNumber {
                    issuer: alice.tbs_certificate.issuer.clone(),
                    serial_number: alice.tbs_certificate.serial_number.clone(),
                }
            )
        );
        let ec = kari_for(&env.recipients, &erin);
        assert_eq!(ec.key_enc_alg.oid, OID_X963_SHA256);
        let OriginatorIdentifierOrKey::OriginatorKey(originator) = &ec.originator else {
            panic!("EC originator");
        };
        assert_eq!(originator.algorithm.oid, OID_EC_PUBLIC_KEY);
        assert_rfc8418_shape(&kari_for(&env.recipients, &partner.cert));
        let mut kinds: Vec<_> = describe(&der)
            .unwrap()
            .recipients
            .into_iter()
            .map(|r| r.key_transport.unwrap_or_default())
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            ["ecdh-hkdf-sha256", "ecdh-x963-sha256", "rsa-pkcs1v15"]
        );

        for name in ["alice", "erin-p256"] {
            let path = partner.write("mixed.der", &der);
            let out = openssl(
                &[
                    "cms",
                    "-decrypt",
                    "-inform",
                    "DER",
                    "-binary",
                    "-in",
                    &path,
                    "-recip",
                    &f(&format!("partner/{name}.pem")),
                    "-inkey",
                    &f(&format!("partner/{name}.key")),
                ],
                b"",
            );
            assert!(out.ok, "{name} {cipher:?}: {}", out.stderr);
            assert_eq!(out.stdout, BODY, "{name} {cipher:?}");
            let key = key(&format!("partner/{name}.key"));
            let c = cert(&format!("partner/{name}.pem"));
            let ours = decrypt(
                crypto(),
                &der,
                &[DecryptionKey {
                    certificate: &c,
                    key: &key,
                }],
            )
            .unwrap();
            assert_eq!(ours.content, BODY);
        }
        assert_eq!(partner.decrypt(&der).unwrap().content, BODY);
        if cipher == ContentCipher::Aes256Cbc {
            let cek = openssl_cek(&partner, &kari_for(&env.recipients, &partner.cert));
            assert_eq!(openssl_cbc_content(&partner, &env, &cek), BODY);
        }
    }
}

/// `der` (an EnvelopedData) with the X25519 partner's KeyAgreeRecipientInfo changed by `edit`.
fn with_kari(
    der: &[u8],
    partner: &Partner,
    edit: impl FnOnce(&mut KeyAgreeRecipientInfo),
) -> Vec<u8> {
    let info = ContentInfo::from_der(der).unwrap();
    let mut env: EnvelopedData = info.content.decode_as().unwrap();
    let mut recipients = env.recip_infos.0.into_vec();
    let mut edit = Some(edit);
    for ri in &mut recipients {
        if let RecipientInfo::Kari(k) = ri {
            if names(&k.recipient_enc_keys[0].rid, &partner.cert) {
                (edit.take().unwrap())(k);
            }
        }
    }
    assert!(edit.is_none(), "the partner's RecipientInfo was found");
    env.recip_infos = RecipientInfos(SetOfVec::try_from(recipients).unwrap());
    ContentInfo {
        content_type: OID_ENVELOPED_DATA,
        content: Any::encode_from(&env).unwrap(),
    }
    .to_der()
    .unwrap()
}

fn originator_key(
    kari: &mut KeyAgreeRecipientInfo,
) -> &mut cms::enveloped_data::OriginatorPublicKey {
    match &mut kari.originator {
        OriginatorIdentifierOrKey::OriginatorKey(k) => k,
        other => panic!("{other:?}"),
    }
}

/// Every forgery of the key agreement ends in the one decryption error the other paths give
/// (or, for a scheme the engine does not read at all, the typed refusal the EC path gives),
/// never in a panic.
#[test]
fn bad_x25519_key_agreement_input_is_the_one_decryption_error() {
    let partner = Partner::new();
    let der = encrypt_to(&[&partner.cert], ContentCipher::Aes256Cbc);
    let one = {
        let mut u = [0u8; 32];
        u[0] = 1;
        u
    };
    let forgeries: Vec<(&str, Vec<u8>)> = vec![
        // A KDF the engine reads, but not the one the sender used.
        (
            "X9.63 KDF claimed",
            with_kari(&der, &partner, |k| k.key_enc_alg.oid = OID_X963_SHA256),
        ),
        // Small-order points: an all-zero shared secret, refused (RFC 7748 §6.1).
        (
            "zero point",
            with_kari(&der, &partner, |k| {
                originator_key(k).public_key = BitString::from_bytes(&[0u8; 32]).unwrap()
            }),
        ),
        (
            "point of order 1",
            with_kari(&der, &partner, |k| {
                originator_key(k).public_key = BitString::from_bytes(&one).unwrap()
            }),
        ),
        (
            "short point",
            with_kari(&der, &partner, |k| {
                originator_key(k).public_key = BitString::from_bytes(&[9u8; 31]).unwrap()
            }),
        ),
        (
            "long point",
            with_kari(&der, &partner, |k| {
                originator_key(k).public_key = BitString::from_bytes(&[9u8; 33]).unwrap()
            }),
        ),
        (
            "another point",
            with_kari(&der, &partner, |k| {
                let mut key = originator_key(k).public_key.as_bytes().unwrap().to_vec();
                key[3] ^= 0x10;
                originator_key(k).public_key = BitString::from_bytes(&key).unwrap()
            }),
        ),
        (
            "EC originator",
            with_kari(&der, &partner, |k| {
                originator_key(k).algorithm.oid = OID_EC_PUBLIC_KEY
            }),
        ),
        (
            "originator parameters",
            with_kari(&der, &partner, |k| {
                originator_key(k).algorithm.parameters = Some(Any::null())
            }),
        ),
        (
            "unwrap failure",
            with_kari(&der, &partner, |k| {
                let mut wrapped = k.recipient_enc_keys[0].enc_key.as_bytes().to_vec();
                wrapped[9] ^= 0x80;
                k.recipient_enc_keys[0].enc_key = OctetString::new(wrapped).unwrap();
            }),
        ),
        (
            "short wrapped key",
            with_kari(&der, &partner, |k| {
                let wrapped = k.recipient_enc_keys[0].enc_key.as_bytes()[..16].to_vec();
                k.recipient_enc_keys[0].enc_key = OctetString::new(wrapped).unwrap();
            }),
        ),
        // A ukm the sender did not use changes both the HKDF salt and the SharedInfo.
        (
            "ukm added",
            with_kari(&der, &partner, |k| {
                k.ukm = Some(OctetString::new(vec![7u8; 16]).unwrap())
            }),
        ),
        (
            "AES-128 wrap claimed",
            with_kari(&der, &partner, |k| {
                k.key_enc_alg.parameters = Some(
                    Any::encode_from(&AlgorithmIdentifierOwned {
                        oid: ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.5"),
                        parameters: None,
                    })
                    .unwrap(),
                )
            }),
        ),
    ];
    for (name, forged) in &forgeries {
        match partner.decrypt(forged) {
            Err(SmimeError::DecryptionFailed) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
    // A scheme not read at all (HKDF-SHA-384) is refused by name, as an unknown X9.63
    // scheme is on the EC path.
    let sha384 = with_kari(&der, &partner, |k| k.key_enc_alg.oid = OID_HKDF_SHA384);
    match partner.decrypt(&sha384) {
        Err(SmimeError::UnsupportedKeyTransport(_)) => {}
        other => panic!("HKDF-SHA-384: {other:?}"),
    }
    // The untouched message still opens (the edits above hit what they meant to).
    assert_eq!(partner.decrypt(&der).unwrap().content, BODY);
}

/// A KeyAgreeRecipientInfo built by OpenSSL's primitives alone, wrapping `cek` for the
/// partner: a fresh X25519 key (`genpkey`), the shared secret (`pkeyutl -derive`), the KEK by
/// HKDF-SHA256 (RFC 8418 §2.2: the ukm, if any, is the salt and the SharedInfo's entityUInfo)
/// or by the X9.63 KDF with SHA-256 (RFC 8418 §2.1), and AES-256 key wrap (`enc`).
fn openssl_kari(
    partner: &Partner,
    template: &KeyAgreeRecipientInfo,
    cek: &[u8],
    scheme: ObjectIdentifier,
    ukm: Option<&[u8]>,
) -> KeyAgreeRecipientInfo {
    let p = |n: &str| partner.path(n);
    openssl_ok(
        &["genpkey", "-algorithm", "X25519", "-out", &p("e.key")],
        b"",
    );
    let spki = openssl_ok(
        &["pkey", "-in", &p("e.key"), "-pubout", "-outform", "DER"],
        b"",
    );
    let z = openssl_ok(
        &[
            "pkeyutl",
            "-derive",
            "-inkey",
            &p("e.key"),
            "-peerkey",
            &p("x.pub"),
        ],
        b"",
    );
    let info = shared_info(ukm);
    let kek = if scheme == OID_HKDF_SHA256 {
        let mut args = vec![
            "kdf".to_string(),
            "-keylen".into(),
            "32".into(),
            "-kdfopt".into(),
            "digest:SHA256".into(),
            "-kdfopt".into(),
            format!("hexkey:{}", hex::encode(&z)),
            "-kdfopt".into(),
            format!("hexinfo:{info}"),
        ];
        if let Some(ukm) = ukm {
            args.extend(["-kdfopt".into(), format!("hexsalt:{}", hex::encode(ukm))]);
        }
        args.push("HKDF".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kdf_output(&openssl_ok(&args, b""))
    } else {
        kdf_output(&openssl_ok(
            &[
                "kdf",
                "-keylen",
                "32",
                "-kdfopt",
                "digest:SHA256",
                "-kdfopt",
                &format!("hexsecret:{}", hex::encode(&z)),
                "-kdfopt",
                &format!("hexinfo:{info}"),
                "X963KDF",
            ],
            b"",
        ))
    };
    let cek_path = partner.write("cek.bin", cek);
    let wrapped = openssl_ok(
        &[
            "enc",
            "-e",
            "-id-aes256-wrap",
            "-K",
            &hex::encode(&kek),
            "-iv",
            "A6A6A6A6A6A6A6A6",
            "-in",
            &cek_path,
        ],
        b"",
    );
    let mut kari = template.clone();
    *originator_key(&mut kari) = cms::enveloped_data::OriginatorPublicKey {
        algorithm: AlgorithmIdentifierOwned {
            oid: OID_X25519,
            parameters: None,
        },
        public_key: BitString::from_bytes(&spki[spki.len() - 32..]).unwrap(),
    };
    kari.ukm = ukm.map(|u| OctetString::new(u.to_vec()).unwrap());
    kari.key_enc_alg.oid = scheme;
    kari.recipient_enc_keys[0].enc_key = OctetString::new(wrapped).unwrap();
    kari
}

/// The decrypting side against key agreements OpenSSL's primitives made: HKDF without and
/// with a ukm (salt and entityUInfo), and the X9.63 KDF that RFC 8418 also allows.
#[test]
fn the_engine_decrypts_key_agreements_made_by_openssl_primitives() {
    let partner = Partner::new();
    let der = encrypt_to(&[&partner.cert], ContentCipher::Aes256Cbc);
    let template = kari_for(&envelope(&der).recipients, &partner.cert);
    let cek = openssl_cek(&partner, &template);
    let ukm = b"user keying material, 32 bytes.!";
    for (scheme, ukm, transport) in [
        (OID_HKDF_SHA256, None, KeyTransport::EcdhHkdfSha256),
        (
            OID_HKDF_SHA256,
            Some(&ukm[..]),
            KeyTransport::EcdhHkdfSha256,
        ),
        (
            OID_X963_SHA256,
            None,
            KeyTransport::EcdhX963(gateway::smime::DigestAlg::Sha256),
        ),
        (
            OID_X963_SHA256,
            Some(&ukm[..]),
            KeyTransport::EcdhX963(gateway::smime::DigestAlg::Sha256),
        ),
    ] {
        let kari = openssl_kari(&partner, &template, &cek, scheme, ukm);
        let rebuilt = with_kari(&der, &partner, |k| *k = kari);
        let decrypted = partner
            .decrypt(&rebuilt)
            .unwrap_or_else(|e| panic!("{scheme} ukm {}: {e}", ukm.is_some()));
        assert_eq!(decrypted.content, BODY);
        assert_eq!(decrypted.key_transport, transport);
    }
    // With a ukm, a reader that took it only as entityUInfo (no salt) derives another key:
    // the engine must not open such a message as if the salt were absent.
    let kari = openssl_kari(&partner, &template, &cek, OID_HKDF_SHA256, None);
    let ukm_only_in_info = with_kari(&der, &partner, |k| {
        *k = kari;
        k.ukm = Some(OctetString::new(ukm.to_vec()).unwrap());
    });
    assert!(matches!(
        partner.decrypt(&ukm_only_in_info),
        Err(SmimeError::DecryptionFailed)
    ));
}

/// The certificate's key type decides the RecipientInfo; an Ed25519 key still cannot receive
/// a content key (a typed refusal, not a panic).
#[test]
fn only_agreement_keys_receive_content_keys() {
    let walter = cert("partner/walter-ed25519.pem");
    assert!(matches!(
        encrypt(crypto(), BODY, &[&walter], EncryptOptions::default()),
        Err(SmimeError::Certificate(_))
    ));
    // The X25519 private key signs nothing.
    let partner = Partner::new();
    let key = partner.key();
    use gateway::smime::crypto::{PrivateKeyOps, PublicKeyAlg, SignatureAlg};
    assert_eq!(key.algorithm(), PublicKeyAlg::X25519);
    assert!(key.sign_with(SignatureAlg::Ed25519, b"m").is_err());
    // Its public key is the certificate's.
    assert_eq!(
        key.public_key_spki_der().unwrap(),
        partner
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap()
    );
}
