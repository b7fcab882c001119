#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! End to end: the real binary over real SMTP, with OpenSSL as the independent party.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use integration_tests::gateway::{fixture, GatewayProcess};
use integration_tests::{send_mail, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);

fn openssl_ok(args: &[&str], input: &[u8]) -> Vec<u8> {
    integration_tests::openssl::ok(args, input).expect("openssl")
}

/// A partner's message: signed by `signer` (fixtures/partner/NAME) unless `None`.
fn partner_message(
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
    signer: Option<&str>,
) -> Vec<u8> {
    integration_tests::openssl::partner_message(from, to, subject, body, signer).expect("openssl")
}

struct World {
    inbound: SmtpSink,
    outbound: SmtpSink,
    gateway: GatewayProcess,
}

fn world() -> World {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let gateway = GatewayProcess::start(
        &inbound.address(),
        &outbound.address(),
        "",
        &[&[
            "domains",
            "add",
            "partner.example",
            "--policy",
            "smime",
            "--note",
            "test partner",
        ]],
    )
    .expect("gateway starts");
    World {
        inbound,
        outbound,
        gateway,
    }
}

impl World {
    fn send(&self, from: &str, to: &[&str], msg: &[u8]) -> (u16, String) {
        send_mail(&self.gateway.smtp, from, to, msg).expect("SMTP conversation")
    }

    /// Run the cert-query for user@agency.example as alice; returns the proxy certificate PEM.
    fn cert_query(&self) -> String {
        self.cert_query_as("alice", "alice@partner.example")
    }

    /// The cert-query for user@agency.example, signed by the fixture partner `signer`.
    fn cert_query_as(&self, signer: &str, from: &str) -> String {
        let request = partner_message(
            from,
            "cert-query@agency.example",
            "<User@Agency.Example>",
            "Please send your certificate.",
            Some(signer),
        );
        let (code, text) = self.send(from, &["cert-query@agency.example"], &request);
        assert_eq!(code, 250, "{text}");
        let replies = self.outbound.wait_for_messages(1, WAIT).unwrap();
        let reply = &replies[0];
        assert_eq!(reply.rcpt_to, vec![from.to_string()]);
        let signer = self.gateway.dir.path().join("signer.pem");
        let signer_arg = signer.to_string_lossy().into_owned();
        openssl_ok(
            &[
                "cms",
                "-verify",
                "-CAfile",
                &self.gateway.proxy_ca_pem(),
                "-signer",
                &signer_arg,
                "-out",
                "/dev/null",
            ],
            &reply.data,
        );
        let pem = std::fs::read_to_string(&signer).unwrap();
        let text = openssl_ok(
            &["x509", "-noout", "-ext", "subjectAltName"],
            pem.as_bytes(),
        );
        assert!(String::from_utf8_lossy(&text).contains("user@agency.example"));
        let reply_text = reply.text();
        assert!(
            reply_text.contains("From: user@agency.example")
                || reply_text.contains("From: <user@agency.example>"),
            "{reply_text}"
        );
        assert!(
            reply_text.contains("Sender: cert-query@agency.example")
                || reply_text.contains("Sender: <cert-query@agency.example>")
        );
        assert!(reply_text.contains("In-Reply-To:"));
        pem
    }
}

#[test]
fn the_whole_story() {
    let w = world();

    // 1. cert-query from an approved partner: a signed reply carrying the proxy certificate.
    let proxy_pem = w.cert_query();
    let proxy_path = w.gateway.dir.path().join("proxy.pem");
    std::fs::write(&proxy_path, &proxy_pem).unwrap();
    let proxy_arg = proxy_path.to_string_lossy().into_owned();

    // 2. The partner encrypts to the proxy certificate (signed by alice): delivered decrypted.
    let signed = partner_message(
        "alice@partner.example",
        "user@agency.example",
        "Inbound secret",
        "The launch code is 1234.",
        Some("alice"),
    );
    let split = signed.windows(4).position(|x| x == b"\r\n\r\n").unwrap();
    let _ = split;
    let body_start = signed
        .windows(13)
        .position(|x| x == b"MIME-Version:")
        .unwrap();
    let encrypted_body = openssl_ok(
        &["cms", "-encrypt", "-aes256", "-recip", &proxy_arg],
        &signed[body_start..],
    );
    let mut encrypted = signed[..body_start].to_vec();
    encrypted.extend_from_slice(&encrypted_body);
    let (code, text) = w.send(
        "alice@partner.example",
        &["user@agency.example"],
        &encrypted,
    );
    assert_eq!(code, 250, "{text}");
    let delivered = w.inbound.wait_for_messages(1, WAIT).unwrap();
    let text = delivered[0].text();
    assert!(text.contains("The launch code is 1234."), "{text}");
    assert!(
        text.contains("smime=pass smime.smime-identifier=alice@partner.example"),
        "{text}"
    );
    assert!(
        text.contains("X-SMIME-Gateway: decrypted (aes256-cbc"),
        "{text}"
    );
    assert!(text.contains("Subject: Inbound secret"));

    // 3. The internal reply goes out signed and encrypted to alice's captured certificate.
    let reply = b"From: user@agency.example\r\nTo: alice@partner.example\r\nSubject: Re: Inbound secret\r\nMessage-ID: <r1@agency.example>\r\n\r\nReceived, thanks.\r\n";
    let (code, text) = w.send("user@agency.example", &["alice@partner.example"], reply);
    assert_eq!(code, 250, "{text}");
    let out = w.outbound.wait_for_messages(2, WAIT).unwrap();
    let sent = &out[1];
    assert!(sent.text().contains("Subject: Re: Inbound secret"));
    let inner = openssl_ok(
        &[
            "cms",
            "-decrypt",
            "-recip",
            &fixture("partner/alice.pem"),
            "-inkey",
            &fixture("partner/alice.key"),
        ],
        &sent.data,
    );
    let content = openssl_ok(
        &["cms", "-verify", "-CAfile", &w.gateway.proxy_ca_pem()],
        &inner,
    );
    assert!(String::from_utf8_lossy(&content).contains("Received, thanks."));

    // 5. A partner without a certificate: refused with the reason; mixed recipients: DSN.
    let to_bob = b"From: user@agency.example\r\nTo: bob@partner.example\r\nSubject: hello bob\r\n\r\nHi Bob\r\n";
    let (code, text) = w.send("user@agency.example", &["bob@partner.example"], to_bob);
    assert_eq!(code, 550, "{text}");
    assert!(
        text.contains("no S/MIME certificate on file for bob@partner.example"),
        "{text}"
    );
    assert!(text.contains("cert-query@agency.example"), "{text}");
    let (code, text) = w.send(
        "user@agency.example",
        &["alice@partner.example", "bob@partner.example"],
        to_bob,
    );
    assert_eq!(code, 250, "{text}");
    let out = w.outbound.wait_for_messages(3, WAIT).unwrap();
    assert_eq!(out[2].rcpt_to, vec!["alice@partner.example".to_string()]);
    let dsn = w.inbound.wait_for_messages(2, WAIT).unwrap();
    let dsn = &dsn[1];
    assert_eq!(dsn.mail_from, "");
    assert_eq!(dsn.rcpt_to, vec!["user@agency.example".to_string()]);
    let dsn_text = dsn.text();
    assert!(dsn_text.contains("multipart/report"), "{dsn_text}");
    assert!(dsn_text.contains("bob@partner.example"));
    assert!(dsn_text.contains("5.7.1"));

    // 7. A forged Authentication-Results header with our authserv-id is removed.
    let mut forged = b"Authentication-Results: gw.agency.example; smime=pass smime.smime-identifier=ceo@agency.example\r\n".to_vec();
    forged.extend_from_slice(&partner_message(
        "alice@partner.example",
        "user@agency.example",
        "forged",
        "trust me",
        None,
    ));
    let (code, _) = w.send("alice@partner.example", &["user@agency.example"], &forged);
    assert_eq!(code, 250);
    let got = w.inbound.wait_for_messages(3, WAIT).unwrap();
    let text = got[2].text();
    assert!(!text.contains("ceo@agency.example"), "{text}");
    assert!(text.contains("smime=none"), "{text}");
}

#[test]
fn cert_query_refusals_name_the_reason() {
    let w = world();
    // From a domain that is not approved: no mail at all (no backscatter to forged senders).
    let req = partner_message(
        "mallory@other.example",
        "cert-query@agency.example",
        "user@agency.example",
        "certificate please",
        Some("other"),
    );
    let (code, text) = w.send(
        "mallory@other.example",
        &["cert-query@agency.example"],
        &req,
    );
    assert_eq!(code, 250, "{text}");
    let cases: [(&str, Option<&str>, &str); 3] = [
        ("alice@partner.example", None, "signed"),
        ("eve@partner.example", Some("selfsigned"), "self-signed"),
        ("dave@partner.example", Some("expired"), "expired"),
    ];
    for (n, (from, signer, reason)) in cases.iter().enumerate() {
        let req = partner_message(
            from,
            "cert-query@agency.example",
            "user@agency.example",
            "certificate please",
            *signer,
        );
        let (code, text) = w.send(from, &["cert-query@agency.example"], &req);
        assert_eq!(code, 250, "{from}: {text}");
        let replies = w.outbound.wait_for_messages(n + 1, WAIT).unwrap();
        let reply = &replies[n];
        assert_eq!(reply.rcpt_to, vec![from.to_string()]);
        let text = reply.text().to_lowercase();
        assert!(
            text.contains(reason),
            "{from}: expected '{reason}' in {text}"
        );
    }
    assert_eq!(w.outbound.messages().len(), cases.len());
}

#[test]
fn next_hop_down_gives_4xx_and_the_retry_delivers() {
    let mut w = world();
    let msg = partner_message(
        "alice@partner.example",
        "user@agency.example",
        "retry",
        "hello again",
        Some("alice"),
    );
    w.inbound.stop();
    let (code, text) = w.send("alice@partner.example", &["user@agency.example"], &msg);
    assert!((400..500).contains(&code), "{code} {text}");
    w.inbound.restart().unwrap();
    let (code, text) = w.send("alice@partner.example", &["user@agency.example"], &msg);
    assert_eq!(code, 250, "{text}");
    let got = w.inbound.wait_for_messages(1, WAIT).unwrap();
    assert!(got[0].text().contains("hello again"));
    assert!(got[0].text().contains("smime=pass"));
}

#[test]
fn relaying_between_external_addresses_is_refused() {
    let w = world();
    let (code, text) = w.send(
        "x@elsewhere.example",
        &["y@other.example"],
        b"Subject: relay\r\n\r\nno\r\n",
    );
    assert_eq!(code, 550, "{text}");
    assert!(text.contains("relaying denied"));
}

/// `entity` signed by carol with our own engine (`smime-gateway sign`), which advertises
/// AES-256-GCM in its SMIMECapabilities.
fn carol_signs(entity: &[u8]) -> Vec<u8> {
    let bin = integration_tests::gateway::binary().unwrap();
    let mut child = Command::new(bin)
        .args([
            "sign",
            "--key",
            &fixture("partner/carol-pss.key"),
            "--cert",
            &fixture("partner/carol-pss.pem"),
            "--chain",
            &fixture("ca/partner-chain.pem"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(entity).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// A partner whose client advertised AES-256-GCM (here: signed by our own engine, which
/// advertises it) gets AuthEnvelopedData; OpenSSL-signed partners (no GCM in their list) get
/// AES-256-CBC, as the cert-query in `the_whole_story` shows.
#[test]
fn aes_gcm_only_for_partners_that_advertised_it() {
    let w = world();
    w.cert_query(); // alice (OpenSSL-signed: no GCM advertised)
    let entity = b"From: carol@partner.example\r\nTo: cert-query@agency.example\r\nSubject: user@agency.example\r\nMessage-ID: <gcm@partner.example>\r\n\r\nPlease send your certificate.\r\n";
    let request = carol_signs(entity);
    let (code, text) = w.send(
        "carol@partner.example",
        &["cert-query@agency.example"],
        &request,
    );
    assert_eq!(code, 250, "{text}");
    w.outbound.wait_for_messages(2, WAIT).unwrap();

    // Two partners in one message: each gets its own copy, in the cipher its client reads.
    let msg = b"From: user@agency.example\r\nTo: carol@partner.example, alice@partner.example\r\nSubject: gcm\r\n\r\nsealed\r\n";
    let (code, text) = w.send(
        "user@agency.example",
        &["carol@partner.example", "alice@partner.example"],
        msg,
    );
    assert_eq!(code, 250, "{text}");
    let out = w.outbound.wait_for_messages(4, WAIT).unwrap();
    for sent in &out[2..] {
        let (name, smime_type) = if sent.rcpt_to == ["carol@partner.example"] {
            ("carol-pss", "smime-type=authEnveloped-data")
        } else {
            assert_eq!(sent.rcpt_to, ["alice@partner.example"]);
            ("alice", "smime-type=enveloped-data")
        };
        assert!(sent.text().contains(smime_type), "{}", sent.text());
        let inner = openssl_ok(
            &[
                "cms",
                "-decrypt",
                "-recip",
                &fixture(&format!("partner/{name}.pem")),
                "-inkey",
                &fixture(&format!("partner/{name}.key")),
            ],
            &sent.data,
        );
        let content = openssl_ok(
            &["cms", "-verify", "-CAfile", &w.gateway.proxy_ca_pem()],
            &inner,
        );
        assert!(String::from_utf8_lossy(&content).contains("sealed"));
    }
}

/// Capabilities are kept from every verified signature, not only from cert-query: a partner
/// whose ordinary signed mail advertises AES-256-GCM (signed here by our own engine, which
/// advertises it) receives AuthEnvelopedData afterwards.
#[test]
fn capabilities_from_ordinary_signed_mail_pick_gcm() {
    let w = world();
    let entity = b"From: carol@partner.example\r\nTo: user@agency.example\r\nSubject: hello\r\nMessage-ID: <caps@partner.example>\r\n\r\nJust saying hello.\r\n";
    let signed = carol_signs(entity);
    let (code, text) = w.send("carol@partner.example", &["user@agency.example"], &signed);
    assert_eq!(code, 250, "{text}");
    let got = w.inbound.wait_for_messages(1, WAIT).unwrap();
    assert!(got[0].text().contains("smime=pass"), "{}", got[0].text());
    // Counted by the gateway's telemetry, served by the admin API.
    let (status, metrics) = w.gateway.admin_get("/metrics").unwrap();
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics.lines().any(
            |l| l == "smime_gateway_messages_total{direction=\"inbound\",outcome=\"signed\"} 1"
        ),
        "{metrics}"
    );

    let msg = b"From: user@agency.example\r\nTo: carol@partner.example\r\nSubject: reply\r\n\r\nsealed\r\n";
    let (code, text) = w.send("user@agency.example", &["carol@partner.example"], msg);
    assert_eq!(code, 250, "{text}");
    let out = w.outbound.wait_for_messages(1, WAIT).unwrap();
    assert!(
        out[0].text().contains("smime-type=authEnveloped-data"),
        "{}",
        out[0].text()
    );
    let inner = openssl_ok(
        &[
            "cms",
            "-decrypt",
            "-recip",
            &fixture("partner/carol-pss.pem"),
            "-inkey",
            &fixture("partner/carol-pss.key"),
        ],
        &out[0].data,
    );
    assert!(String::from_utf8_lossy(&inner).contains("sealed"));
}

/// One key-size policy (issue 10): an RSA-8192 partner certificate, the largest size accepted,
/// is usable end to end: its signature verifies and is captured, and mail to it is encrypted
/// so that OpenSSL decrypts it with the partner's key.
#[test]
fn an_rsa_8192_partner_is_usable_end_to_end() {
    let w = world();
    let entity = b"From: ivan@partner.example\r\nTo: user@agency.example\r\nSubject: big key\r\nMessage-ID: <big@partner.example>\r\n\r\nMy key is large.\r\n";
    let signed = openssl_ok(
        &[
            "cms",
            "-sign",
            "-signer",
            &fixture("partner/ivan-rsa8192.pem"),
            "-inkey",
            &fixture("partner/ivan-rsa8192.key"),
            "-certfile",
            &fixture("ca/partner-chain.pem"),
            "-md",
            "sha256",
            "-from",
            "ivan@partner.example",
            "-to",
            "user@agency.example",
            "-subject",
            "big key",
        ],
        entity,
    );
    let (code, text) = w.send("ivan@partner.example", &["user@agency.example"], &signed);
    assert_eq!(code, 250, "{text}");
    let got = w.inbound.wait_for_messages(1, WAIT).unwrap();
    assert!(got[0].text().contains("smime=pass"), "{}", got[0].text());

    let msg = b"From: user@agency.example\r\nTo: ivan@partner.example\r\nSubject: reply\r\n\r\nsealed for a big key\r\n";
    let (code, text) = w.send("user@agency.example", &["ivan@partner.example"], msg);
    assert_eq!(code, 250, "{text}");
    let out = w.outbound.wait_for_messages(1, WAIT).unwrap();
    let inner = openssl_ok(
        &[
            "cms",
            "-decrypt",
            "-recip",
            &fixture("partner/ivan-rsa8192.pem"),
            "-inkey",
            &fixture("partner/ivan-rsa8192.key"),
        ],
        &out[0].data,
    );
    assert!(String::from_utf8_lossy(&inner).contains("sealed for a big key"));
}

/// A domain approved for SMTP over TLS instead of S/MIME: mail is signed and relayed only over
/// a verified STARTTLS hop; a hop without STARTTLS gets a temporary refusal, never clear text.
#[test]
fn tls_policy_domains_never_go_out_in_clear() {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let gateway = GatewayProcess::start(
        &inbound.address(),
        &outbound.address(),
        "",
        &[&["domains", "add", "tlspartner.example", "--policy", "tls"]],
    )
    .unwrap();
    let msg = b"From: user@agency.example\r\nTo: carl@tlspartner.example\r\nSubject: tls only\r\n\r\nhello\r\n";
    let (code, text) = send_mail(
        &gateway.smtp,
        "user@agency.example",
        &["carl@tlspartner.example"],
        msg,
    )
    .unwrap();
    assert!((400..500).contains(&code), "{code} {text}");
    assert!(text.contains("TLS") || text.contains("STARTTLS"), "{text}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(outbound.messages().is_empty(), "nothing may leave in clear");
}

/// Inbound mail the gateway cannot decrypt is delivered unchanged with the reason; a signed
/// message altered after signing is delivered with `smime=fail` and says so.
#[test]
fn undecryptable_and_altered_inbound_mail_is_delivered_with_the_reason() {
    let w = world();
    // Encrypted to a proxy certificate this gateway never issued.
    let foreign = std::fs::read(fixture("messages/encrypted-old.eml")).unwrap();
    let (code, text) = w.send("alice@partner.example", &["user@agency.example"], &foreign);
    assert_eq!(code, 250, "{text}");
    let got = w.inbound.wait_for_messages(1, WAIT).unwrap();
    let delivered = got[0].text();
    assert!(
        delivered.contains(
            "X-SMIME-Gateway: not decrypted: none of the message's recipients is a key we hold"
        ),
        "{delivered}"
    );
    assert!(delivered.contains("smime=neutral"), "{delivered}");
    assert!(
        got[0].data.ends_with(&foreign[foreign.len() - 200..]),
        "original body delivered unchanged"
    );

    // A disclaimer appended by a server after alice signed.
    let signed =
        String::from_utf8(std::fs::read(fixture("messages/signed-detached.eml")).unwrap()).unwrap();
    let altered = signed.replacen(
        "Alice\r\n",
        "Alice\r\n\r\nThis e-mail and any attachments are confidential.\r\n",
        1,
    );
    let (code, text) = w.send(
        "alice@partner.example",
        &["user@agency.example"],
        altered.as_bytes(),
    );
    assert_eq!(code, 250, "{text}");
    let got = w.inbound.wait_for_messages(2, WAIT).unwrap();
    let delivered = got[1].text();
    assert!(delivered.contains("smime=fail"), "{delivered}");
    assert!(
        delivered.contains("content changed after signing"),
        "{delivered}"
    );
    assert!(delivered.contains("This e-mail and any attachments are confidential."));
}

/// Recipients whose processed message is the same share one delivery (one copy in memory).
#[test]
fn inbound_recipients_with_the_same_result_share_one_delivery() {
    let w = world();
    let msg = partner_message(
        "alice@partner.example",
        "user@agency.example, boss@agency.example",
        "both",
        "hello both",
        Some("alice"),
    );
    let (code, text) = w.send(
        "alice@partner.example",
        &["user@agency.example", "boss@agency.example"],
        &msg,
    );
    assert_eq!(code, 250, "{text}");
    let got = w.inbound.wait_for_messages(1, WAIT).unwrap();
    assert_eq!(
        got[0].rcpt_to,
        vec![
            "user@agency.example".to_string(),
            "boss@agency.example".to_string()
        ]
    );
    assert!(got[0].text().contains("smime=pass"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(w.inbound.messages().len(), 1);
}

/// Issue 13: a partner whose certificate holds a P-256 key sends an ECDSA-signed cert-query,
/// gets the signed reply, and the mail then sent to it is encrypted by ECDH key agreement
/// (RFC 5753) so that OpenSSL decrypts it with the partner's EC key.
#[test]
fn a_p256_partner_is_usable_end_to_end() {
    let w = world();
    w.cert_query_as("erin-p256", "erin@partner.example");
    let msg = b"From: user@agency.example\r\nTo: erin@partner.example\r\nSubject: reply\r\n\r\nsealed for an EC key\r\n";
    let (code, text) = w.send("user@agency.example", &["erin@partner.example"], msg);
    assert_eq!(code, 250, "{text}");
    let out = w.outbound.wait_for_messages(2, WAIT).unwrap();
    let sealed = &out[1];
    assert_eq!(sealed.rcpt_to, vec!["erin@partner.example".to_string()]);
    let inner = openssl_ok(
        &[
            "cms",
            "-decrypt",
            "-recip",
            &fixture("partner/erin-p256.pem"),
            "-inkey",
            &fixture("partner/erin-p256.key"),
        ],
        &sealed.data,
    );
    assert!(String::from_utf8_lossy(&inner).contains("sealed for an EC key"));
    // Key agreement it is: the envelope names dhSinglePass-stdDH-sha256kdf-scheme.
    let structure = openssl_ok(&["cms", "-cmsout", "-print"], &sealed.data);
    assert!(
        String::from_utf8_lossy(&structure).contains("dhSinglePass-stdDH-sha256kdf-scheme"),
        "{}",
        String::from_utf8_lossy(&structure)
    );
}

/// Issue 13: a partner whose encryption certificate holds an X25519 key. Such a key cannot
/// sign, so here its certificate reaches the store by the operator's `partners import` (when
/// the partner's signed mail names it, it is captured from that mail instead:
/// `encryption_key_preference.rs`); mail then sent to the partner is encrypted by X25519 key agreement
/// (RFC 8418). No CLI here decrypts that (OpenSSL 3.0's `cms` cannot): the engine opens it
/// with the partner's private key, and `openssl cms -cmsout -print` shows the structure.
#[test]
fn an_x25519_partner_is_usable_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    integration_tests::openssl::issue_partner_certificate(
        dir.path(),
        "x",
        "X25519",
        "xavier@partner.example",
        "keyAgreement",
        0x2F25519,
    )
    .unwrap();
    let mut bundle = std::fs::read_to_string(p("x.pem")).unwrap();
    bundle.push_str(&std::fs::read_to_string(fixture("ca/partner-chain.pem")).unwrap());
    std::fs::write(p("bundle.pem"), bundle).unwrap();

    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let gateway = GatewayProcess::start(
        &inbound.address(),
        &outbound.address(),
        "",
        &[
            &["domains", "add", "partner.example", "--policy", "smime"],
            &["partners", "import", &p("bundle.pem")],
        ],
    )
    .expect("gateway starts");
    let msg = b"From: user@agency.example\r\nTo: xavier@partner.example\r\nSubject: reply\r\n\r\nsealed for an X25519 key\r\n";
    let (code, text) = send_mail(
        &gateway.smtp,
        "user@agency.example",
        &["xavier@partner.example"],
        msg,
    )
    .expect("SMTP conversation");
    assert_eq!(code, 250, "{text}");
    let out = outbound.wait_for_messages(1, WAIT).unwrap();
    let sealed = &out[0];
    assert_eq!(sealed.rcpt_to, vec!["xavier@partner.example".to_string()]);
    assert!(sealed.text().contains("application/pkcs7-mime"));

    use gateway::smime::decrypt::{decrypt, DecryptionKey};
    let der = openssl_ok(&["cms", "-cmsout", "-outform", "DER"], &sealed.data);
    let provider = gateway::smime::crypto::default_provider();
    let key = provider
        .load_private_key(&std::fs::read(p("x.key")).unwrap())
        .unwrap();
    let cert =
        gateway::smime::certs::parse_certificate(&std::fs::read(p("x.pem")).unwrap()).unwrap();
    let decrypted = decrypt(
        provider,
        &der,
        &[DecryptionKey {
            certificate: &cert,
            key: &key,
        }],
    )
    .unwrap();
    assert_eq!(
        decrypted.key_transport,
        gateway::smime::KeyTransport::EcdhHkdfSha256
    );
    // An imported certificate advertises nothing: AES-256-CBC.
    assert_eq!(decrypted.cipher, gateway::smime::ContentCipher::Aes256Cbc);
    assert!(String::from_utf8_lossy(&decrypted.content).contains("sealed for an X25519 key"));
    // The envelope as OpenSSL parses it: an X25519 originator key and the RFC 8418 scheme.
    let structure =
        String::from_utf8_lossy(&openssl_ok(&["cms", "-cmsout", "-print"], &sealed.data))
            .into_owned();
    assert!(structure.contains("X25519"), "{structure}");
    assert!(
        structure.contains("1.2.840.113549.1.9.16.3.19")
            || structure.contains("dhSinglePass-stdDH-hkdf-sha256-scheme"),
        "{structure}"
    );
}
