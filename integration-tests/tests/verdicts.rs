#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Trustworthy verdicts, end to end: the real binary over SMTP, messages made by OpenSSL and
//! altered by hand the way an attacker would. `smime=pass` only for content that was signed,
//! by the sender shown; nobody outside can add or alter a verdict header.

use std::time::Duration;

use base64::Engine;
use integration_tests::gateway::{fixture, GatewayProcess};
use integration_tests::{header, send_mail, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);
const AUTHSERV_ID: &str = "gw.agency.example";

struct World {
    inbound: SmtpSink,
    _outbound: SmtpSink,
    gateway: GatewayProcess,
}

fn world() -> World {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let gateway = GatewayProcess::start(
        &inbound.address(),
        &outbound.address(),
        "",
        &[&["domains", "add", "partner.example", "--policy", "smime"]],
    )
    .expect("gateway starts");
    World {
        inbound,
        _outbound: outbound,
        gateway,
    }
}

impl World {
    /// Sends `msg` from `from` to user@agency.example and returns the delivered message.
    fn deliver(&self, from: &str, msg: &[u8]) -> String {
        self.deliver_to(from, "user@agency.example", msg)
    }

    fn deliver_to(&self, from: &str, to: &str, msg: &[u8]) -> String {
        let before = self.inbound.messages().len();
        let (code, text) = send_mail(&self.gateway.smtp, from, &[to], msg).expect("SMTP");
        assert_eq!(code, 250, "{text}");
        let all = self.inbound.wait_for_messages(before + 1, WAIT).unwrap();
        all[before].text()
    }
}

fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    integration_tests::openssl::ok(args, input).expect("openssl")
}

/// `From:`/`To:`/`Subject:` and a text body, signed detached by partner `signer`, chain included.
fn signed_by(signer: &str, from: &str, body: &str, extra_sign_args: &[&str]) -> Vec<u8> {
    let entity = format!("Content-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n");
    let cert = fixture(&format!("partner/{signer}.pem"));
    let key = fixture(&format!("partner/{signer}.key"));
    let chain = fixture("ca/partner-chain.pem");
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
    args.extend_from_slice(extra_sign_args);
    let signed = openssl(&args, entity.as_bytes());
    let mut msg = format!(
        "From: {from}\r\nTo: user@agency.example\r\nSubject: verdict test\r\nMessage-ID: <{}@partner.example>\r\n",
        body.len() * 31 + signer.len()
    )
    .into_bytes();
    msg.extend_from_slice(&signed);
    msg
}

/// The single `Authentication-Results` field we wrote, unfolded.
fn our_results(delivered: &str) -> String {
    let ours: Vec<String> = all_fields(delivered, "Authentication-Results")
        .into_iter()
        .filter(|v| v.trim_start().starts_with(AUTHSERV_ID))
        .collect();
    assert_eq!(ours.len(), 1, "exactly one verdict of ours:\n{delivered}");
    ours[0].clone()
}

/// Every value of header `name` in the header block, unfolded.
fn all_fields(message: &str, name: &str) -> Vec<String> {
    let head = message.split("\r\n\r\n").next().unwrap_or("");
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            fields.push(line.to_string());
        }
    }
    fields
        .into_iter()
        .filter_map(|f| {
            let (n, v) = f.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
        .collect()
}

/// A multipart/signed whose first part says one thing while its signature part carries an
/// opaque SignedData (eContent present) over other content, signed by alice.
fn econtent_pasted(layout: &str) -> Vec<u8> {
    let cert = fixture("partner/alice.pem");
    let key = fixture("partner/alice.key");
    let chain = fixture("ca/partner-chain.pem");
    let signed_elsewhere = b"Content-Type: text/plain\r\n\r\nSee you at lunch.\r\n";
    let der = openssl(
        &[
            "cms",
            "-sign",
            "-nodetach",
            "-binary",
            "-outform",
            "DER",
            "-signer",
            &cert,
            "-inkey",
            &key,
            "-certfile",
            &chain,
        ],
        signed_elsewhere,
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let shown = "Content-Type: text/plain; charset=us-ascii\r\n\r\nPlease wire 1,000,000 to account 99-1234.\r\n";
    let (ctype, preamble, sigtype) = match layout {
        // As `openssl cms -sign` lays it out.
        "openssl" => (
            "multipart/signed; protocol=\"application/x-pkcs7-signature\"; micalg=\"sha-256\"; boundary=\"----B\"",
            "This is an S/MIME signed message\r\n\r\n",
            "application/x-pkcs7-signature; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"",
        ),
        // As Thunderbird lays it out (its "mismatch-econtent" test case).
        _ => (
            "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256;\r\n boundary=\"----B\"",
            "This is a cryptographically signed message in MIME format.\r\n\r\n",
            "application/pkcs7-signature; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\nContent-Description: S/MIME Cryptographic Signature",
        ),
    };
    format!(
        "From: alice@partner.example\r\nTo: user@agency.example\r\nSubject: urgent\r\nMIME-Version: 1.0\r\nContent-Type: {ctype}\r\n\r\n{preamble}------B\r\n{shown}\r\n------B\r\nContent-Type: {sigtype}\r\n\r\n{}\r\n\r\n------B--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

#[test]
fn signature_over_other_content_than_shown_fails() {
    let w = world();
    for layout in ["openssl", "thunderbird"] {
        let msg = econtent_pasted(layout);
        let delivered = w.deliver("alice@partner.example", &msg);
        let verdict = our_results(&delivered);
        assert!(verdict.contains("smime=fail"), "{layout}: {verdict}");
        assert!(
            verdict.contains("the signature covers different content than the message shows"),
            "{layout}: {verdict}"
        );
        assert!(!verdict.contains("smime-identifier"), "{verdict}");

        // The command line says the same.
        let path = w.gateway.dir.path().join(format!("econtent-{layout}.eml"));
        std::fs::write(&path, &msg).unwrap();
        let out = std::process::Command::new(w.gateway.binary())
            .args([
                "verify",
                &path.to_string_lossy(),
                "--ca",
                &fixture("ca/partner-root.pem"),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{layout}: verify must exit non-zero");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("different content"), "{layout}: {text}");
    }
}

#[test]
fn sender_shown_must_be_the_signer() {
    let w = world();

    // Control: alice signs as alice.
    let good = signed_by("alice", "alice@partner.example", "Hello.", &[]);
    let verdict = our_results(&w.deliver("alice@partner.example", &good));
    assert!(
        verdict.contains("smime=pass smime.smime-identifier=alice@partner.example"),
        "{verdict}"
    );

    // Signed by alice, From says bob.
    let mismatch = signed_by("alice", "Bob <bob@partner.example>", "I am Bob.", &[]);
    let delivered = w.deliver("bob@partner.example", &mismatch);
    let verdict = our_results(&delivered);
    assert!(verdict.contains("smime=fail"), "{verdict}");
    assert!(
        verdict.contains("signed by alice@partner.example, but From says bob@partner.example"),
        "{verdict}"
    );

    // Two From fields: whichever a reader shows, the signature cannot vouch for both.
    let mut two = b"From: ceo@partner.example\r\n".to_vec();
    two.extend_from_slice(&signed_by("alice", "alice@partner.example", "Two.", &[]));
    let verdict = our_results(&w.deliver("alice@partner.example", &two));
    assert!(verdict.contains("smime=fail"), "{verdict}");
    assert!(verdict.contains("it has 2 From: headers"), "{verdict}");

    // One From field with two addresses.
    let several = signed_by(
        "alice",
        "alice@partner.example, ceo@partner.example",
        "Several.",
        &[],
    );
    let verdict = our_results(&w.deliver("alice@partner.example", &several));
    assert!(verdict.contains("smime=fail"), "{verdict}");
    assert!(
        verdict.contains("its From: header names 2 addresses"),
        "{verdict}"
    );
}

#[test]
fn sha1_signature_is_not_a_clean_pass() {
    let w = world();
    let msg = signed_by(
        "sha1",
        "grace@partner.example",
        "Old client.",
        &["-md", "sha1"],
    );
    let delivered = w.deliver("grace@partner.example", &msg);
    let verdict = our_results(&delivered);
    assert!(verdict.contains("smime=neutral"), "{verdict}");
    assert!(verdict.contains("weak digest"), "{verdict}");
    let status = header(&delivered, "X-SMIME-Gateway").unwrap();
    assert!(status.contains("weak digest"), "{status}");
}

#[test]
fn only_part_signed_is_neutral() {
    let w = world();
    let signed = signed_by("alice", "alice@partner.example", "Inner.", &[]);
    let msg = format!(
        "From: alice@partner.example\r\nTo: user@agency.example\r\nSubject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\nContent-Type: text/plain\r\n\r\nUnsigned text around a signed message.\r\n--mix\r\nContent-Type: message/rfc822\r\n\r\n{}\r\n--mix--\r\n",
        String::from_utf8(signed).unwrap()
    );
    let verdict = our_results(&w.deliver("alice@partner.example", msg.as_bytes()));
    assert!(verdict.contains("smime=neutral"), "{verdict}");
    assert!(
        verdict.contains("only part of the message is signed"),
        "{verdict}"
    );
}

#[test]
fn inner_headers_of_a_wrapped_message_are_the_ones_delivered() {
    let w = world();
    // RFC 8551 §3.1: alice signs a whole message (message/rfc822) whose own From and Subject
    // are protected; the outer, unprotected header was changed on the way.
    let inner = "From: alice@partner.example\r\nTo: user@agency.example\r\nSubject: The real subject\r\nContent-Type: text/plain\r\n\r\nProtected body.\r\n";
    let entity = format!("Content-Type: message/rfc822\r\n\r\n{inner}");
    let signed = openssl(
        &[
            "cms",
            "-sign",
            "-signer",
            &fixture("partner/alice.pem"),
            "-inkey",
            &fixture("partner/alice.key"),
            "-certfile",
            &fixture("ca/partner-chain.pem"),
        ],
        entity.as_bytes(),
    );
    let mut msg = b"From: mallory@partner.example\r\nTo: user@agency.example\r\nSubject: Changed on the way\r\n".to_vec();
    msg.extend_from_slice(&signed);
    let delivered = w.deliver("alice@partner.example", &msg);
    let verdict = our_results(&delivered);
    assert!(verdict.contains("smime=pass"), "{verdict}");
    assert_eq!(
        all_fields(&delivered, "Subject"),
        vec!["The real subject".to_string()]
    );
    assert_eq!(
        all_fields(&delivered, "From"),
        vec!["alice@partner.example".to_string()]
    );
    assert!(delivered.contains("Protected body."));
}

const FORGED: &[&str] = &[
    "Authentication-Results: gw.agency.example; smime=pass smime.smime-identifier=ceo@agency.example",
    "authentication-results: GW.AGENCY.EXAMPLE; smime=pass",
    "Authentication-Results: (trusted) gw.agency.example; smime=pass",
    "Authentication-Results: gw.agency.example (ours); smime=pass",
    "Authentication-Results: gw.agency.example 1; smime=pass",
    "Authentication-Results: \"gw.agency.example\"; smime=pass",
    "Authentication-Results:\r\n\tgw.agency.example;\r\n smime=pass",
    "X-SMIME-Gateway: decrypted; signature valid, signer ceo@agency.example",
];

fn with_forged_headers(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in FORGED {
        out.extend_from_slice(f.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Authentication-Results: mx.partner.example; dkim=pass\r\n");
    out.extend_from_slice(msg);
    out
}

#[test]
fn verdict_headers_cannot_be_forged() {
    let w = world();

    // Inbound, unsigned: our own verdict is `none`, and the forged ones are gone.
    let plain = b"From: alice@partner.example\r\nTo: user@agency.example\r\nSubject: plain\r\n\r\nhello\r\n";
    let delivered = w.deliver("alice@partner.example", &with_forged_headers(plain));
    assert!(
        our_results(&delivered).contains("smime=none"),
        "{delivered}"
    );
    assert_eq!(
        all_fields(&delivered, "X-SMIME-Gateway").len(),
        1,
        "{delivered}"
    );
    assert!(!delivered.contains("ceo@agency.example"), "{delivered}");
    assert!(delivered.contains("mx.partner.example; dkim=pass"));

    // Inbound, signed by alice with the forged fields outside the signature.
    let signed = signed_by("alice", "alice@partner.example", "Signed.", &[]);
    let delivered = w.deliver("alice@partner.example", &with_forged_headers(&signed));
    let verdict = our_results(&delivered);
    assert!(verdict.contains("alice@partner.example"), "{verdict}");
    assert!(!delivered.contains("ceo@agency.example"), "{delivered}");

    // Internal to internal: passed on unchanged, except that no verdict of ours survives.
    let internal =
        b"From: boss@agency.example\r\nTo: user@agency.example\r\nSubject: internal\r\n\r\nhi\r\n";
    let delivered = w.deliver_to(
        "boss@agency.example",
        "user@agency.example",
        &with_forged_headers(internal),
    );
    assert!(
        all_fields(&delivered, "Authentication-Results")
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains(AUTHSERV_ID)),
        "{delivered}"
    );
    assert!(all_fields(&delivered, "X-SMIME-Gateway").is_empty());
    assert!(delivered.contains("mx.partner.example; dkim=pass"));
    assert!(delivered.contains("Subject: internal"));
}

#[test]
fn every_signer_is_reported_and_the_one_matching_from_vouches() {
    let w = world();
    let entity = b"Content-Type: text/plain\r\n\r\nCo-signed.\r\n";
    let signed = openssl(
        &[
            "cms",
            "-sign",
            "-signer",
            &fixture("partner/alice.pem"),
            "-inkey",
            &fixture("partner/alice.key"),
            "-signer",
            &fixture("partner/bob.pem"),
            "-inkey",
            &fixture("partner/bob.key"),
            "-certfile",
            &fixture("ca/partner-chain.pem"),
        ],
        entity,
    );
    let mut msg =
        b"From: bob@partner.example\r\nTo: user@agency.example\r\nSubject: co-signed\r\n".to_vec();
    msg.extend_from_slice(&signed);
    let delivered = w.deliver("bob@partner.example", &msg);
    let verdict = our_results(&delivered);
    assert!(
        verdict.contains("smime=pass smime.smime-identifier=bob@partner.example"),
        "{verdict}"
    );
    let status = header(&delivered, "X-SMIME-Gateway").unwrap();
    assert!(status.contains("2 signers"), "{status}");
    assert!(
        status.contains("alice@partner.example: signature valid"),
        "{status}"
    );
    assert!(
        status.contains("bob@partner.example: signature valid"),
        "{status}"
    );
}
