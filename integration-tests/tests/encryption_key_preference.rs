#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Issue 13, RFC 8551 §2.5.3: a partner whose signing key cannot encrypt (Ed25519) names its
//! encryption certificate with the SMIMEEncryptionKeyPreference signed attribute and carries it
//! in the message. The gateway captures it from that signed mail, and encrypts the mail it then
//! sends to the partner to it. A preference naming a certificate that is absent, of another
//! address, or without an encryption keyUsage captures nothing and leaves the verdict alone.
//!
//! No CMS tool here writes that attribute (nor an Ed25519 CMS signature, with OpenSSL 3.0), so
//! the SignedData is assembled here and its Ed25519 signature made by `openssl pkeyutl -rawin`
//! over the signed attributes' DER. Certificates are made by the openssl CLI, issued by the
//! fixture partner intermediate the gateway trusts.

use std::time::Duration;

use base64::Engine;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::CmsVersion;
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tag, TagNumber};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

use gateway::smime::certs::parse_certificate;
use gateway::smime::crypto::default_provider;
use gateway::smime::decrypt::{decrypt, DecryptionKey};
use gateway::smime::{ContentCipher, DigestAlg, KeyTransport};
use integration_tests::gateway::{fixture, GatewayProcess, Options};
use integration_tests::{send_mail, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);
const AES256_GCM: &str = "2.16.840.1.101.3.4.1.46";
const AES256_CBC: &str = "2.16.840.1.101.3.4.1.42";

fn openssl_ok(args: &[&str]) -> Vec<u8> {
    integration_tests::openssl::ok(args, b"").expect("openssl")
}

/// Certificates in a temporary directory, issued by the fixture partner intermediate.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn p(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// `name.key` and `name.pem` (see [`integration_tests::openssl::issue_partner_certificate`]).
    fn issue(&self, name: &str, algorithm: &str, email: &str, key_usage: &str, serial: u32) {
        integration_tests::openssl::issue_partner_certificate(
            self.dir.path(),
            name,
            algorithm,
            email,
            key_usage,
            serial,
        )
        .unwrap();
    }

    fn cert(&self, name: &str) -> Certificate {
        parse_certificate(&std::fs::read(self.p(&format!("{name}.pem"))).unwrap()).unwrap()
    }
}

fn issuer_and_serial(c: &Certificate) -> IssuerAndSerialNumber {
    IssuerAndSerialNumber {
        issuer: c.tbs_certificate.issuer.clone(),
        serial_number: c.tbs_certificate.serial_number.clone(),
    }
}

fn attribute(oid: const_oid::ObjectIdentifier, value: Any) -> Attribute {
    Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).unwrap(),
    }
}

/// A whole message from `from` to `to`: opaque SignedData by the Ed25519 certificate `signer`
/// of `pki`, carrying `carried` certificates of `pki` (and the partner chain), with an
/// SMIMEEncryptionKeyPreference naming `named` (`[0]` issuerAndSerialNumber) and
/// SMIMECapabilities listing AES-256-GCM first.
fn signed_message(
    pki: &Pki,
    from: &str,
    to: &str,
    signer: &str,
    named: &Certificate,
    carried: &[&str],
) -> Vec<u8> {
    let entity = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nmy encryption certificate is attached\r\n";
    let signer_cert = pki.cert(signer);
    let digest = default_provider().digest(DigestAlg::Sha512, entity);
    // SMIMECapabilities: a SEQUENCE OF SEQUENCE { OID }.
    let capabilities: Vec<u8> = [AES256_GCM, AES256_CBC]
        .iter()
        .flat_map(|oid| {
            let oid = const_oid::ObjectIdentifier::new_unwrap(oid);
            Any::new(Tag::Sequence, oid.to_der().unwrap())
                .unwrap()
                .to_der()
                .unwrap()
        })
        .collect();
    // [0] IMPLICIT IssuerAndSerialNumber (RFC 8551's module is IMPLICIT TAGS).
    let ias = issuer_and_serial(named).to_der().unwrap();
    let preference = Any::new(
        Tag::ContextSpecific {
            constructed: true,
            number: TagNumber::N0,
        },
        Any::from_der(&ias).unwrap().value(),
    )
    .unwrap();
    let attrs = SetOfVec::try_from(vec![
        attribute(
            const_oid::db::rfc5911::ID_CONTENT_TYPE,
            Any::encode_from(&const_oid::db::rfc5911::ID_DATA).unwrap(),
        ),
        attribute(
            const_oid::db::rfc5911::ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest).unwrap()).unwrap(),
        ),
        attribute(
            const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.15"),
            Any::new(Tag::Sequence, capabilities).unwrap(),
        ),
        attribute(const_oid::db::rfc5911::ID_AA_ENCRYP_KEY_PREF, preference),
    ])
    .unwrap();
    let tbs = pki.p(&format!(
        "{signer}-{}.tbs",
        named.tbs_certificate.serial_number
    ));
    std::fs::write(&tbs, attrs.to_der().unwrap()).unwrap();
    let signature = openssl_ok(&[
        "pkeyutl",
        "-sign",
        "-rawin",
        "-inkey",
        &pki.p(&format!("{signer}.key")),
        "-in",
        &tbs,
    ]);
    let sha512 = AlgorithmIdentifierOwned {
        oid: DigestAlg::Sha512.oid(),
        parameters: None,
    };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(issuer_and_serial(&signer_cert)),
        digest_alg: sha512.clone(),
        signed_attrs: Some(attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: const_oid::ObjectIdentifier::new_unwrap("1.3.101.112"),
            parameters: None,
        },
        signature: OctetString::new(signature).unwrap(),
        unsigned_attrs: None,
    };
    let mut certificates = vec![CertificateChoices::Certificate(signer_cert)];
    for name in carried {
        certificates.push(CertificateChoices::Certificate(pki.cert(name)));
    }
    certificates.push(CertificateChoices::Certificate(
        parse_certificate(&std::fs::read(fixture("ca/partner-intermediate.pem")).unwrap()).unwrap(),
    ));
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha512]).unwrap(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: const_oid::db::rfc5911::ID_DATA,
            econtent: Some(Any::encode_from(&OctetString::new(&entity[..]).unwrap()).unwrap()),
        },
        certificates: Some(CertificateSet::try_from(certificates).unwrap()),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info]).unwrap(),
    };
    let der = cms::content_info::ContentInfo {
        content_type: const_oid::db::rfc5911::ID_SIGNED_DATA,
        content: Any::encode_from(&signed).unwrap(),
    }
    .to_der()
    .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut msg = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: signed\r\nMessage-ID: <{signer}@partner.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=signed-data; \
         name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=smime.p7m\r\n\r\n"
    );
    for line in b64.as_bytes().chunks(76) {
        msg.push_str(std::str::from_utf8(line).unwrap());
        msg.push_str("\r\n");
    }
    msg.into_bytes()
}

struct World {
    inbound: SmtpSink,
    outbound: SmtpSink,
    gateway: GatewayProcess,
}

impl World {
    /// A gateway with `partner.example` approved; its log kept when `capture_log`.
    fn start(capture_log: bool) -> World {
        let inbound = SmtpSink::start();
        let outbound = SmtpSink::start();
        let gateway = GatewayProcess::start_with(
            &inbound.address(),
            &outbound.address(),
            Options {
                setup: &[&["domains", "add", "partner.example", "--policy", "smime"]],
                capture_log,
                ..Options::default()
            },
        )
        .expect("gateway starts");
        World {
            inbound,
            outbound,
            gateway,
        }
    }

    /// Delivers `msg` inbound from `from`; the `n`-th inbound delivery must say smime=pass.
    fn deliver_signed(&self, from: &str, msg: &[u8], n: usize) {
        let (code, text) =
            send_mail(&self.gateway.smtp, from, &["user@agency.example"], msg).unwrap();
        assert_eq!(code, 250, "{text}");
        let delivered = self.inbound.wait_for_messages(n, WAIT).unwrap();
        let text = delivered[n - 1].text();
        assert!(text.contains("smime=pass"), "{text}");
    }

    /// Sends a reply from staff to `to`: the SMTP answer.
    fn reply_to(&self, to: &str) -> (u16, String) {
        let msg = format!(
            "From: user@agency.example\r\nTo: {to}\r\nSubject: reply\r\n\r\nsealed for the encryption key\r\n"
        );
        send_mail(
            &self.gateway.smtp,
            "user@agency.example",
            &[to],
            msg.as_bytes(),
        )
        .unwrap()
    }
}

fn der_of(message: &[u8]) -> Vec<u8> {
    integration_tests::openssl::ok(&["cms", "-cmsout", "-outform", "DER"], message).unwrap()
}

/// An Ed25519-signing partner names its X25519 certificate: captured from the signed mail,
/// and the reply is encrypted to it by X25519 key agreement with AES-256-GCM (advertised).
/// No CMS tool here reads X25519: the engine decrypts with the partner's key.
#[test]
fn an_x25519_encryption_certificate_is_captured_from_signed_mail() {
    let pki = Pki::new();
    pki.issue(
        "xs",
        "Ed25519",
        "xavier@partner.example",
        "digitalSignature",
        0x5101,
    );
    pki.issue(
        "xe",
        "X25519",
        "xavier@partner.example",
        "keyAgreement",
        0x5102,
    );
    let w = World::start(false);
    // Before: the partner is unknown, mail to it is refused.
    let (code, _) = w.reply_to("xavier@partner.example");
    assert_eq!(code, 550);

    let msg = signed_message(
        &pki,
        "xavier@partner.example",
        "user@agency.example",
        "xs",
        &pki.cert("xe"),
        &["xe"],
    );
    w.deliver_signed("xavier@partner.example", &msg, 1);

    let (code, text) = w.reply_to("xavier@partner.example");
    assert_eq!(code, 250, "{text}");
    let out = w.outbound.wait_for_messages(1, WAIT).unwrap();
    let sealed = &out[0];
    assert_eq!(sealed.rcpt_to, vec!["xavier@partner.example".to_string()]);
    let provider = default_provider();
    let key = provider
        .load_private_key(&std::fs::read(pki.p("xe.key")).unwrap())
        .unwrap();
    let cert = pki.cert("xe");
    let opened = decrypt(
        provider,
        &der_of(&sealed.data),
        &[DecryptionKey {
            certificate: &cert,
            key: &key,
        }],
    )
    .unwrap();
    assert_eq!(opened.key_transport, KeyTransport::EcdhHkdfSha256);
    // The capabilities of the signature came with the certificate.
    assert_eq!(opened.cipher, ContentCipher::Aes256Gcm);
    assert!(String::from_utf8_lossy(&opened.content).contains("sealed for the encryption key"));

    // The history holds both: the signing certificate and the encryption certificate.
    let history = w
        .gateway
        .cli(&["partners", "history", "xavier@partner.example"])
        .unwrap();
    assert!(
        history.contains("xs") && history.contains("xe"),
        "{history}"
    );
}

/// An Ed25519-signing partner names its RSA certificate (keyEncipherment): the reply is
/// encrypted to it, and `openssl cms -decrypt` reads it with the partner's RSA key.
#[test]
fn an_rsa_encryption_certificate_is_captured_and_openssl_decrypts() {
    let pki = Pki::new();
    pki.issue(
        "rs",
        "Ed25519",
        "rita@partner.example",
        "digitalSignature",
        0x5201,
    );
    pki.issue(
        "re",
        "RSA",
        "rita@partner.example",
        "keyEncipherment",
        0x5202,
    );
    let w = World::start(false);
    let msg = signed_message(
        &pki,
        "rita@partner.example",
        "user@agency.example",
        "rs",
        &pki.cert("re"),
        &["re"],
    );
    w.deliver_signed("rita@partner.example", &msg, 1);
    let (code, text) = w.reply_to("rita@partner.example");
    assert_eq!(code, 250, "{text}");
    let out = w.outbound.wait_for_messages(1, WAIT).unwrap();
    let inner = integration_tests::openssl::ok(
        &[
            "cms",
            "-decrypt",
            "-recip",
            &pki.p("re.pem"),
            "-inkey",
            &pki.p("re.key"),
        ],
        &out[0].data,
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&inner).contains("sealed for the encryption key"));
    let structure = String::from_utf8_lossy(
        &integration_tests::openssl::ok(&["cms", "-cmsout", "-print"], &out[0].data).unwrap(),
    )
    .into_owned();
    assert!(structure.contains("aes-256-gcm") || structure.contains("id-aes256-GCM"));
}

/// Preferences that name nothing usable: the certificate is not in the message, is another
/// address's, or has no encryption keyUsage. The signature still passes; nothing is captured
/// to encrypt to, so mail to the partner is refused as before.
#[test]
fn unusable_preferences_capture_nothing_and_leave_the_verdict() {
    let pki = Pki::new();
    // Yara names a certificate the message does not carry.
    pki.issue(
        "ys",
        "Ed25519",
        "yara@partner.example",
        "digitalSignature",
        0x5301,
    );
    pki.issue(
        "ye",
        "X25519",
        "yara@partner.example",
        "keyAgreement",
        0x5302,
    );
    // Zoe names a certificate issued to someone else.
    pki.issue(
        "zs",
        "Ed25519",
        "zoe@partner.example",
        "digitalSignature",
        0x5303,
    );
    pki.issue(
        "ze",
        "X25519",
        "zed@partner.example",
        "keyAgreement",
        0x5304,
    );
    // Wanda names her RSA certificate that may only sign.
    pki.issue(
        "ws",
        "Ed25519",
        "wanda@partner.example",
        "digitalSignature",
        0x5305,
    );
    pki.issue(
        "we",
        "RSA",
        "wanda@partner.example",
        "digitalSignature",
        0x5306,
    );
    let w = World::start(true);
    let cases = [
        ("yara@partner.example", "ys", "ye", Vec::<&str>::new()),
        ("zoe@partner.example", "zs", "ze", vec!["ze"]),
        ("wanda@partner.example", "ws", "we", vec!["we"]),
    ];
    for (n, (address, signer, named, carried)) in cases.iter().enumerate() {
        let msg = signed_message(
            &pki,
            address,
            "user@agency.example",
            signer,
            &pki.cert(named),
            carried,
        );
        w.deliver_signed(address, &msg, n + 1);
        let (code, text) = w.reply_to(address);
        assert_eq!(code, 550, "{address}: {text}");
        let history = w.gateway.cli(&["partners", "history", address]).unwrap();
        assert!(history.contains(&format!("CN={signer},")), "{history}");
        assert!(!history.contains(&format!("CN={named},")), "{history}");
    }
    // Each reason is in the log.
    let log = w.gateway.log();
    assert!(
        log.contains("the message does not carry the named certificate"),
        "{log}"
    );
    assert!(
        log.contains(
            "the certificate is for zed@partner.example, not for the sender zoe@partner.example"
        ),
        "{log}"
    );
    assert_eq!(
        log.matches("the named certificate was refused").count(),
        2,
        "{log}"
    );
    assert!(log.contains("does not permit e-mail protection"), "{log}");
    // Zed's certificate was not recorded under Zed either: only what a signer vouches for
    // its own address is.
    let zed = w
        .gateway
        .cli(&["partners", "history", "zed@partner.example"])
        .unwrap();
    assert!(zed.contains("no certificates seen"), "{zed}");
    assert!(w.outbound.messages().is_empty());
}
