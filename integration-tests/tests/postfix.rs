#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! The gateway behind a real Postfix, set up exactly as `docs/postfix.md` says (the harness
//! reads the doc's `main.cf` and `master.cf` blocks and adds only ports and paths).
//!
//! Partners and staff hand mail to Postfix's front door; Postfix's content filter hands it
//! to the gateway, which re-injects the result on the doc's ports; Postfix then delivers to
//! the staff mailboxes (an SMTP sink) or the Internet (another sink).

use std::time::Duration;

use integration_tests::gateway::{fixture, GatewayProcess, Options};
use integration_tests::postfix::{self, Ports, Postfix};
use integration_tests::{header, send_mail, SinkBehaviour, SmtpClient, SmtpSink};

const WAIT: Duration = Duration::from_secs(60);

struct Flow {
    mailboxes: SmtpSink,
    internet: SmtpSink,
    gateway: GatewayProcess,
    postfix: Postfix,
}

fn flow() -> Option<Flow> {
    flow_with_outbound_hop(None)
}

/// [`flow`], with the gateway's outbound results going to `outbound_hop` (a sink standing in
/// for the doc's port 10027) instead of back to Postfix.
fn flow_with_outbound_hop(outbound_hop: Option<&SmtpSink>) -> Option<Flow> {
    if !postfix::available() {
        // `make test` installs Postfix; a bare `cargo test` without it skips, loudly.
        eprintln!("SKIPPED: Postfix is not installed (make deps installs it)");
        return None;
    }
    let mailboxes = SmtpSink::start();
    let internet = SmtpSink::start();
    // The ports are free when picked, but a busy machine may hand one to another socket before
    // Postfix or the gateway binds it: start again on a fresh pick, a bounded number of times.
    let mut attempt = 1;
    let (gateway, postfix) = loop {
        match start_gateway_and_postfix(&mailboxes, &internet, outbound_hop) {
            Ok(started) => break started,
            Err(e) if attempt < 3 => {
                eprintln!("setup attempt {attempt} failed, retrying on new ports: {e:#}");
                attempt += 1;
            }
            Err(e) => panic!("{e:#}"),
        }
    };
    Some(Flow {
        mailboxes,
        internet,
        gateway,
        postfix,
    })
}

fn start_gateway_and_postfix(
    mailboxes: &SmtpSink,
    internet: &SmtpSink,
    outbound_hop: Option<&SmtpSink>,
) -> anyhow::Result<(GatewayProcess, Postfix)> {
    let ports = Ports::pick()?;
    let doc_settings = postfix::gateway_settings(&ports)?;
    let gateway = GatewayProcess::start_with(
        &format!("127.0.0.1:{}", ports.inbound_reinject),
        &outbound_hop.map_or_else(
            || format!("127.0.0.1:{}", ports.outbound_reinject),
            SmtpSink::address,
        ),
        Options {
            setup: &[&["domains", "add", "partner.example", "--policy", "smime"]],
            smtp_port: ports.gateway,
            sections: &doc_settings,
            ..Options::default()
        },
    )?;
    let postfix = Postfix::start(
        &ports,
        "agency.example",
        &mailboxes.address(),
        &internet.address(),
    )?;
    Ok((gateway, postfix))
}

impl Flow {
    fn hand_in(&self, from: &str, to: &str, msg: &[u8]) {
        let (code, text) = send_mail(&self.postfix.front, from, &[to], msg).unwrap();
        assert_eq!(code, 250, "Postfix refused at the front door: {text}");
    }

    fn wait(&self, sink: &SmtpSink, count: usize) -> Vec<integration_tests::ReceivedMessage> {
        sink.wait_for_messages(count, WAIT)
            .unwrap_or_else(|e| panic!("{e}\n--- Postfix log ---\n{}", self.postfix.log()))
    }
}

fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    integration_tests::openssl::ok(args, input).unwrap()
}

#[test]
fn the_doc_flow_through_a_real_postfix() {
    let Some(f) = flow() else { return };

    // cert-query: a partner's signed request comes back, signed, through Postfix.
    let request = integration_tests::openssl::partner_message(
        "alice@partner.example",
        "cert-query@agency.example",
        "user@agency.example",
        "Please send your certificate.",
        Some("alice"),
    )
    .unwrap();
    f.hand_in(
        "alice@partner.example",
        "cert-query@agency.example",
        &request,
    );
    let replies = f.wait(&f.internet, 1);
    assert_eq!(
        replies[0].rcpt_to,
        vec!["alice@partner.example".to_string()]
    );
    let signer = f.gateway.dir.path().join("proxy-user.pem");
    openssl(
        &[
            "cms",
            "-verify",
            "-CAfile",
            &f.gateway.proxy_ca_pem(),
            "-signer",
            &signer.to_string_lossy(),
            "-out",
            "/dev/null",
        ],
        &replies[0].data,
    );

    // Inbound: encrypted to the proxy certificate and signed by alice; arrives decrypted in
    // the mailbox with our verdict.
    let signed = integration_tests::openssl::partner_message(
        "alice@partner.example",
        "user@agency.example",
        "Inbound secret",
        "The launch code is 1234.",
        Some("alice"),
    )
    .unwrap();
    let encrypted =
        integration_tests::openssl::encrypt_entity(&signed, &signer.to_string_lossy()).unwrap();
    f.hand_in("alice@partner.example", "user@agency.example", &encrypted);
    let delivered = f.wait(&f.mailboxes, 1);
    let text = delivered[0].text();
    assert!(text.contains("The launch code is 1234."), "{text}");
    let verdict = header(&text, "Authentication-Results").unwrap();
    assert!(
        verdict.contains("smime=pass smime.smime-identifier=alice@partner.example"),
        "{verdict}"
    );
    assert!(header(&text, "X-SMIME-Gateway")
        .unwrap()
        .contains("decrypted"));

    // Outbound: staff to alice leaves signed and encrypted; alice decrypts it.
    let outbound = b"From: user@agency.example\r\nTo: alice@partner.example\r\nSubject: Reply\r\nMessage-ID: <out1@agency.example>\r\n\r\nOur answer is yes.\r\n";
    f.hand_in("user@agency.example", "alice@partner.example", outbound);
    let sent = f.wait(&f.internet, 2);
    let out = &sent[1];
    assert_eq!(out.rcpt_to, vec!["alice@partner.example".to_string()]);
    assert!(!out.text().contains("Our answer is yes."), "left in clear");
    let plain = openssl(
        &[
            "cms",
            "-decrypt",
            "-recip",
            &fixture("partner/alice.pem"),
            "-inkey",
            &fixture("partner/alice.key"),
        ],
        &out.data,
    );
    assert!(String::from_utf8_lossy(&plain).contains("Our answer is yes."));

    // A refusal (domain not approved) becomes a Postfix bounce to the sender, with our reason.
    let refused = b"From: user@agency.example\r\nTo: bob@unapproved.example\r\nSubject: Not allowed\r\n\r\nsecret\r\n";
    f.hand_in("user@agency.example", "bob@unapproved.example", refused);
    let bounces = f.wait(&f.mailboxes, 2);
    let bounce = bounces[1].text();
    assert_eq!(bounces[1].rcpt_to, vec!["user@agency.example".to_string()]);
    assert!(
        bounce.contains("not approved for secure mail exchange"),
        "{bounce}"
    );
    assert_eq!(f.internet.messages().len(), 2, "nothing went out in clear");
}

#[test]
fn gateway_down_postfix_defers_then_delivers_once() {
    let Some(mut f) = flow() else { return };
    f.gateway.stop();
    let msg = b"From: alice@partner.example\r\nTo: user@agency.example\r\nSubject: while down\r\nMessage-ID: <down1@partner.example>\r\n\r\nhello\r\n";
    f.hand_in("alice@partner.example", "user@agency.example", msg);
    // Postfix keeps it: nothing delivered, one message queued.
    std::thread::sleep(Duration::from_secs(3));
    assert!(f.mailboxes.messages().is_empty());
    assert_eq!(f.postfix.queued().unwrap(), 1, "{}", f.postfix.log());

    f.gateway.restart().unwrap();
    f.postfix.flush().unwrap();
    let delivered = f.wait(&f.mailboxes, 1);
    assert!(delivered[0]
        .text()
        .contains("Message-ID: <down1@partner.example>"));
    // Nothing duplicated: give Postfix time to deliver a second copy if it were going to.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(f.mailboxes.messages().len(), 1);
    assert_eq!(f.postfix.queued().unwrap(), 0);
}

/// A 20 MB message passes both ways with the doc's size settings: the front door takes it,
/// and the encrypted result (about 1.37 times larger) fits the re-injection port's limit.
#[test]
fn twenty_megabytes_both_ways() {
    let Some(f) = flow() else { return };
    // The partner's certificate is captured from a signed message first.
    let hello = integration_tests::openssl::partner_message(
        "alice@partner.example",
        "user@agency.example",
        "hello",
        "signed hello",
        Some("alice"),
    )
    .unwrap();
    f.hand_in("alice@partner.example", "user@agency.example", &hello);
    f.wait(&f.mailboxes, 1);

    let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n";
    let body = line.repeat(20 * 1024 * 1024 / line.len());
    let inbound = format!(
        "From: alice@partner.example\r\nTo: user@agency.example\r\nSubject: big in\r\n\r\n{body}"
    );
    f.hand_in(
        "alice@partner.example",
        "user@agency.example",
        inbound.as_bytes(),
    );
    let delivered = f.wait(&f.mailboxes, 2);
    assert!(delivered[1].data.len() >= 20 * 1024 * 1024 - 1024);

    let outbound = format!(
        "From: user@agency.example\r\nTo: alice@partner.example\r\nSubject: big out\r\n\r\n{body}"
    );
    f.hand_in(
        "user@agency.example",
        "alice@partner.example",
        outbound.as_bytes(),
    );
    let sent = f.wait(&f.internet, 1);
    let out = &sent[0];
    assert!(out.data.len() > 27 * 1024 * 1024, "{}", out.data.len());
    let plain = openssl(
        &[
            "cms",
            "-decrypt",
            "-recip",
            &fixture("partner/alice.pem"),
            "-inkey",
            &fixture("partner/alice.key"),
        ],
        &out.data,
    );
    assert!(plain.len() > 20 * 1024 * 1024);
}

/// Issue 15 §1: the mailbox hop refuses a message the gateway decrypted. Postfix's bounce
/// bypasses the content filter and goes straight to the partner, so it must quote headers
/// only: the gateway re-injected the decrypted message with `RET=HDRS`.
#[test]
fn a_bounce_after_decryption_carries_no_plaintext() {
    let Some(f) = flow() else { return };
    let reply = f
        .gateway
        .cert_query(
            &f.internet,
            ("alice@partner.example", "alice"),
            "user@agency.example",
            0,
        )
        .unwrap();
    let proxy = f.gateway.dir.path().join("proxy-user.pem");
    let pem = integration_tests::openssl::verified_signer(
        std::path::Path::new(&f.gateway.proxy_ca_pem()),
        &reply,
        f.gateway.dir.path(),
    )
    .unwrap()
    .expect("the cert-query reply verifies");
    std::fs::write(&proxy, pem).unwrap();
    let secret = "The merger closes on Friday at 9876 per share.";
    let signed = integration_tests::openssl::partner_message(
        "alice@partner.example",
        "user@agency.example",
        "Bounce me",
        secret,
        Some("alice"),
    )
    .unwrap();
    let encrypted =
        integration_tests::openssl::encrypt_entity(&signed, &proxy.to_string_lossy()).unwrap();

    f.mailboxes.reject_recipient("user@agency.example", 550);
    f.hand_in("alice@partner.example", "user@agency.example", &encrypted);
    let out = f.wait(&f.internet, 2);
    let bounce = &out[1];
    assert_eq!(bounce.mail_from, "", "a bounce: {}", bounce.text());
    assert_eq!(bounce.rcpt_to, vec!["alice@partner.example".to_string()]);
    let text = bounce.text();
    assert!(text.contains("text/rfc822-headers"), "{text}");
    assert!(
        !text.contains(secret),
        "the bounce carries the plaintext:\n{text}"
    );
    assert!(!text.contains("message/rfc822"), "{text}");
}

/// Issue 15 §2: the sender's DSN request crosses the filter (the success notice comes from
/// the Postfix that finally delivers, naming the original recipient and envelope id), and a
/// partner with a UTF-8 address gets through (SMTPUTF8 on every hop).
#[test]
fn dsn_requests_and_utf8_addresses_cross_the_filter() {
    let Some(f) = flow() else { return };
    // A final hop without DSN: Postfix reports the delivery to it as `relayed`, which is
    // the success notice the sender asked for.
    f.mailboxes.set_offer_dsn(false);
    let mut c = SmtpClient::connect(&f.postfix.front).unwrap();
    let send = |c: &mut SmtpClient, mail: &str, rcpt: &str, msg: &str| {
        assert_eq!(c.command(mail).unwrap().0, 250, "{mail}");
        assert_eq!(c.command(rcpt).unwrap().0, 250, "{rcpt}");
        let (code, text) = c.data(msg.as_bytes()).unwrap();
        assert_eq!(code, 250, "{text}");
    };
    send(
        &mut c,
        "MAIL FROM:<alice@partner.example> ENVID=env-42 RET=HDRS",
        "RCPT TO:<user@agency.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Original+2BUser@agency.example",
        "From: alice@partner.example\r\nTo: user@agency.example\r\nSubject: tell me\r\n\r\nDid it arrive?\r\n",
    );
    send(
        &mut c,
        "MAIL FROM:<josé@partner.example> SMTPUTF8",
        "RCPT TO:<user@agency.example>",
        "From: José <josé@partner.example>\r\nTo: user@agency.example\r\nSubject: Olá\r\n\r\nOi.\r\n",
    );
    c.quit();

    let delivered = f.wait(&f.mailboxes, 2);
    let jose = delivered
        .iter()
        .find(|m| m.mail_from == "josé@partner.example")
        .unwrap_or_else(|| panic!("no mail from josé: {delivered:?}"));
    assert!(
        jose.mail_parameters.iter().any(|p| p == "SMTPUTF8"),
        "{jose:?}"
    );
    assert!(jose.text().contains("Oi."));

    let notices = f.wait(&f.internet, 1);
    let notice = notices[0].text();
    assert_eq!(notices[0].mail_from, "", "{notice}");
    assert_eq!(notices[0].rcpt_to, ["alice@partner.example"]);
    for expected in [
        "Action: relayed",
        "Original-Envelope-Id: env-42",
        "Original-Recipient: rfc822;Original+User@agency.example",
        // From the last hop, past the gateway: the request crossed the filter.
        "queued by sink",
    ] {
        assert!(notice.contains(expected), "{expected}:\n{notice}");
    }
}

/// Issue 14 §2 with a real Postfix: over LMTP, a recipient whose next hop fails temporarily
/// stays in Postfix's queue alone; the recipient that was delivered is not delivered again
/// when Postfix retries.
#[test]
fn lmtp_defers_only_the_recipient_whose_hop_failed() {
    let partners = SmtpSink::start();
    let Some(f) = flow_with_outbound_hop(Some(&partners)) else {
        return;
    };
    f.gateway
        .cert_query(
            &partners,
            ("alice@partner.example", "alice"),
            "user@agency.example",
            0,
        )
        .unwrap();
    partners.set_behaviour(SinkBehaviour::TempFail);
    let msg = b"From: user@agency.example\r\nTo: colleague@agency.example, alice@partner.example\r\nSubject: two hops\r\nMessage-ID: <two-hops@agency.example>\r\n\r\nFor both of you.\r\n";
    let (code, text) = send_mail(
        &f.postfix.front,
        "user@agency.example",
        &["colleague@agency.example", "alice@partner.example"],
        msg,
    )
    .unwrap();
    assert_eq!(code, 250, "{text}");
    let delivered = f.wait(&f.mailboxes, 1);
    assert_eq!(delivered[0].rcpt_to, ["colleague@agency.example"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(f.postfix.queued().unwrap(), 1, "{}", f.postfix.log());

    partners.set_behaviour(SinkBehaviour::Accept);
    f.postfix.flush().unwrap();
    let sent = partners
        .wait_for_messages(2, WAIT)
        .unwrap_or_else(|e| panic!("{e}\n--- Postfix log ---\n{}", f.postfix.log()));
    assert_eq!(sent[1].rcpt_to, ["alice@partner.example"]);
    assert!(
        !sent[1].text().contains("For both of you."),
        "left in clear"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        f.mailboxes.messages().len(),
        1,
        "the colleague got it twice"
    );
    assert_eq!(f.postfix.queued().unwrap(), 0);
}
