#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Outbound trust through the real binary over SMTP: only trusted clients submit, only the
//! submitter signs (or whom `send_as` allows), clear text only as the policy documents, proxy
//! identities only for internal addresses, and a failing store is a temporary answer.

use std::path::Path;
use std::time::Duration;

use certstore::{Store, StoreConfig};
use integration_tests::gateway::{GatewayProcess, Options};
use integration_tests::{send_mail, SmtpClient, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);
const USER: &str = "user@agency.example";
const ALICE: &str = "alice@partner.example";

fn openssl_ok(args: &[&str], input: &[u8]) -> Vec<u8> {
    integration_tests::openssl::ok(args, input).expect("openssl")
}

fn message(from_lines: &str, to: &str, subject: &str) -> Vec<u8> {
    format!("{from_lines}To: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@agency.example>\r\n\r\nHello from the agency.\r\n")
        .into_bytes()
}

struct World {
    inbound: SmtpSink,
    outbound: SmtpSink,
    gateway: GatewayProcess,
}

fn world(options: Options<'_>) -> World {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let gateway = GatewayProcess::start_with(&inbound.address(), &outbound.address(), options)
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

    /// alice's cert-query for user@agency.example: her certificate is captured (the reply is
    /// the first outbound message).
    fn capture_alice(&self) {
        let request = integration_tests::openssl::partner_message(
            ALICE,
            "cert-query@agency.example",
            USER,
            "certificate please",
            Some("alice"),
        )
        .expect("openssl");
        let (code, text) = self.send(ALICE, &["cert-query@agency.example"], &request);
        assert_eq!(code, 250, "{text}");
        self.outbound.wait_for_messages(1, WAIT).unwrap();
    }

    /// The subjectAltName of the signer of a message encrypted to alice (verified).
    fn signer_of(&self, sent: &[u8]) -> String {
        let (_, pem) = integration_tests::openssl::open_as_partner(
            sent,
            "alice",
            &self.gateway.proxy_ca_pem(),
            &self.gateway.dir.path().join("signer.pem"),
        )
        .expect("alice reads it");
        String::from_utf8_lossy(&openssl_ok(
            &["x509", "-noout", "-ext", "subjectAltName"],
            pem.as_bytes(),
        ))
        .into_owned()
    }
}

const APPROVE_PARTNER: &[&str] = &["domains", "add", "partner.example", "--policy", "smime"];

/// An internal envelope sender cannot get mail signed as someone else; `send_as` allows
/// exactly the listed pairs; the SASL login reported by XFORWARD is logged with the refusal.
#[test]
fn only_the_submitter_signs_unless_send_as_allows() {
    let w = world(Options {
        outbound: "send_as = { \"assistant@agency.example\" = [\"Boss@Agency.Example\"] }",
        setup: &[APPROVE_PARTNER],
        capture_log: true,
        ..Options::default()
    });
    w.capture_alice();

    // Someone else's From: refused with a reason a person understands; nothing leaves.
    let forged = message("From: boss@agency.example\r\n", ALICE, "forged");
    let (code, text) = w.send(USER, &[ALICE], &forged);
    assert_eq!(code, 550, "{text}");
    assert!(
        text.contains("5.7.1 you submitted as user@agency.example but the message says From: boss@agency.example"),
        "{text}"
    );
    // Two From headers, several addresses, none: refused.
    for (from_lines, why) in [
        (
            "From: user@agency.example\r\nFrom: boss@agency.example\r\n",
            "2 From: headers",
        ),
        (
            "From: user@agency.example, boss@agency.example\r\n",
            "names 2 addresses",
        ),
        ("", "no From: header"),
    ] {
        let (code, text) = w.send(USER, &[ALICE], &message(from_lines, ALICE, "ambiguous"));
        assert_eq!(code, 550, "{from_lines:?}: {text}");
        assert!(text.contains(why), "{from_lines:?}: {text}");
    }
    // Case does not matter; the signature is the submitter's.
    let own = message("From: \"User\" <User@AGENCY.example>\r\n", ALICE, "own");
    let (code, text) = w.send(USER, &[ALICE], &own);
    assert_eq!(code, 250, "{text}");
    let out = w.outbound.wait_for_messages(2, WAIT).unwrap();
    assert!(w.signer_of(&out[1].data).contains(USER));

    // send_as: the assistant may send as the boss, signed as the boss...
    let delegated = message("From: boss@agency.example\r\n", ALICE, "delegated");
    let (code, text) = w.send("assistant@agency.example", &[ALICE], &delegated);
    assert_eq!(code, 250, "{text}");
    let out = w.outbound.wait_for_messages(3, WAIT).unwrap();
    assert!(w.signer_of(&out[2].data).contains("boss@agency.example"));
    // ...but not the other way round.
    let reverse = message("From: assistant@agency.example\r\n", ALICE, "reverse");
    let (code, text) = w.send("boss@agency.example", &[ALICE], &reverse);
    assert_eq!(code, 550, "{text}");

    // The Postfix XFORWARD login of the original client is logged with the decision.
    let mut c = SmtpClient::connect(&w.gateway.smtp).unwrap();
    let (code, ehlo) = c.command("EHLO mta.agency.example").unwrap();
    assert_eq!(code, 250);
    assert!(
        ehlo.contains("XFORWARD NAME ADDR PROTO HELO LOGIN"),
        "{ehlo}"
    );
    let (code, text) = c
        .command("XFORWARD NAME=laptop.agency.example ADDR=192.0.2.7 PROTO=ESMTP HELO=laptop LOGIN=mallory+40agency")
        .unwrap();
    assert_eq!(code, 250, "{text}");
    let data = integration_tests::dot_stuff(&forged);
    let (code, text) = c.send_prepared(USER, &[ALICE], &data).unwrap();
    assert_eq!(code, 550, "{text}");
    c.quit();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(w.outbound.messages().len(), 3, "nothing forged left");
    let log = w.gateway.log();
    let refusal = log
        .lines()
        .find(|l| l.contains("outbound refused") && l.contains("mallory@agency"))
        .unwrap_or_else(|| panic!("no refusal with the login in the log:\n{log}"));
    assert!(refusal.contains("192.0.2.7"), "{refusal}");
    assert!(refusal.contains("boss@agency.example"), "{refusal}");
    let handled = log
        .lines()
        .find(|l| l.contains("message handled") && l.contains("mallory@agency"))
        .unwrap_or_else(|| panic!("no session log line with the login:\n{log}"));
    assert!(handled.contains("laptop"), "{handled}");
}

/// A client outside `trusted_clients` cannot submit anything, and is never offered XFORWARD.
#[test]
fn untrusted_clients_cannot_submit() {
    let w = world(Options {
        smtp: "trusted_clients = [\"127.0.0.2/32\", \"::1\"]",
        setup: &[APPROVE_PARTNER],
        ..Options::default()
    });
    let mut c = SmtpClient::connect(&w.gateway.smtp).unwrap();
    let (code, ehlo) = c.command("EHLO outsider.example").unwrap();
    assert_eq!(code, 250);
    assert!(!ehlo.contains("XFORWARD"), "{ehlo}");
    let (code, text) = c.command("XFORWARD LOGIN=boss").unwrap();
    assert_eq!(code, 550, "{text}");
    let (code, text) = c.command(&format!("MAIL FROM:<{USER}>")).unwrap();
    assert_eq!(code, 554, "{text}");
    assert!(text.starts_with("5.7.1 client address 127.0.0.1"), "{text}");
    assert!(text.contains("trusted_clients"), "{text}");
    c.quit();
    // Inbound mail too: the gateway is reachable only through the organisation's MTA.
    let (code, _) = w.send(
        ALICE,
        &[USER],
        &message("From: alice@partner.example\r\n", USER, "in"),
    );
    assert_eq!(code, 554);
}

/// `policy_without_certificate` × domain listed in `plaintext_domains` or not × domain
/// approved for S/MIME (no certificate on file) or not approved.
#[test]
fn clear_text_only_under_plaintext_and_only_to_listed_domains() {
    let setup: &[&[&str]] = &[
        &[
            "domains",
            "add",
            "listed-approved.example",
            "--policy",
            "smime",
        ],
        &["domains", "add", "approved.example", "--policy", "smime"],
    ];
    let listed = "plaintext_domains = [\"listed.example\", \"listed-approved.example\"]";
    for policy in ["plaintext", "refuse"] {
        let outbound = format!("policy_without_certificate = \"{policy}\"\n{listed}");
        let w = world(Options {
            outbound: &outbound,
            setup,
            ..Options::default()
        });
        let mut delivered = 0;
        for (domain, in_clear_under_plaintext) in [
            ("listed.example", true),
            ("listed-approved.example", true),
            ("approved.example", false),
            ("other.example", false),
        ] {
            let rcpt = format!("bob@{domain}");
            let msg = message(&format!("From: {USER}\r\n"), &rcpt, "clear");
            let (code, text) = w.send(USER, &[&rcpt], &msg);
            let expect_clear = policy == "plaintext" && in_clear_under_plaintext;
            if expect_clear {
                assert_eq!(code, 250, "{policy} {domain}: {text}");
                delivered += 1;
                let out = w.outbound.wait_for_messages(delivered, WAIT).unwrap();
                let sent = &out[delivered - 1];
                assert_eq!(sent.rcpt_to, vec![rcpt.clone()]);
                let text = sent.text();
                assert!(text.contains("Hello from the agency."), "{text}");
                assert!(!text.contains("multipart/signed"), "{text}");
            } else {
                assert_eq!(code, 550, "{policy} {domain}: {text}");
                assert!(text.starts_with("5.7.1 "), "{text}");
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(w.outbound.messages().len(), delivered, "{policy}");
    }
}

fn damage(data_dir: &Path, what: impl Fn(&Store) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let config = StoreConfig {
        use_system_trust: false,
        ..StoreConfig::default()
    };
    let store = Store::open(&data_dir.join("store"), config)?;
    what(&store)
}

/// A store that fails (a damaged record) never bounces mail: outbound, signing and
/// cert-query all answer `451 4.3.0`, so the upstream MTA keeps the message and retries.
#[test]
fn a_failing_store_is_a_temporary_failure() {
    let damage_all = |dir: &Path| {
        damage(dir, |store| {
            store.damage_domain_record_for_tests("partner.example")?;
            anyhow::ensure!(store.damage_proxy_identities_for_tests(USER)? == 1);
            Ok(())
        })
    };
    let w = world(Options {
        setup: &[
            APPROVE_PARTNER,
            &["domains", "add", "tlspartner.example", "--policy", "tls"],
            &["proxy", "issue", USER],
        ],
        before_serve: Some(&damage_all),
        ..Options::default()
    });
    // Domain look-up fails.
    let (code, text) = w.send(
        "boss@agency.example",
        &[ALICE],
        &message("From: boss@agency.example\r\n", ALICE, "lookup"),
    );
    assert_eq!(code, 451, "{text}");
    assert!(text.starts_with("4.3.0 "), "{text}");
    // The signing key cannot be loaded.
    let rcpt = "carl@tlspartner.example";
    let (code, text) = w.send(
        USER,
        &[rcpt],
        &message(&format!("From: {USER}\r\n"), rcpt, "key"),
    );
    assert_eq!(code, 451, "{text}");
    assert!(text.starts_with("4.3.0 "), "{text}");
    assert!(
        text.contains("proxy certificate for user@agency.example"),
        "{text}"
    );
    // cert-query: the requester's domain cannot be looked up.
    let request = integration_tests::openssl::partner_message(
        ALICE,
        "cert-query@agency.example",
        "boss@agency.example",
        "certificate please",
        Some("alice"),
    )
    .unwrap();
    let (code, text) = w.send(ALICE, &["cert-query@agency.example"], &request);
    assert_eq!(code, 451, "{text}");
    assert!(text.starts_with("4.3.0 "), "{text}");
    // Inbound: the recipient's proxy keys cannot be loaded. Not delivered undecrypted, not
    // bounced: 451, and nothing reaches the mailbox.
    let inbound = integration_tests::openssl::partner_message(
        ALICE,
        USER,
        "inbound while the store fails",
        "secret",
        Some("alice"),
    )
    .unwrap();
    let (code, text) = w.send(ALICE, &[USER], &inbound);
    assert_eq!(code, 451, "{text}");
    assert!(text.starts_with("4.3.0 "), "{text}");
    assert!(text.contains("proxy keys"), "{text}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(w.outbound.messages().is_empty());
    assert!(w.inbound.messages().is_empty());
}

/// No proxy identity for addresses outside the organisation: not by mail, not by the CLI.
#[test]
fn proxy_identities_only_for_internal_addresses() {
    let w = world(Options {
        top: "internal_addresses = [\"user@agency.example\", \"boss@agency.example\"]",
        setup: &[APPROVE_PARTNER],
        ..Options::default()
    });
    w.capture_alice();
    // An internal-domain sender that is not a known address: refused, no key issued.
    let invented = "nobody@agency.example";
    let (code, text) = w.send(
        invented,
        &[ALICE],
        &message(&format!("From: {invented}\r\n"), ALICE, "invented"),
    );
    assert_eq!(code, 550, "{text}");
    assert!(
        text.contains("not one of the organisation's addresses"),
        "{text}"
    );
    let (status, _) = w
        .gateway
        .admin_get(&format!("/api/v1/proxy/addresses/{invented}"))
        .unwrap();
    assert_eq!(status, 404, "no key was issued for {invented}");

    // The admin API knows the configured addresses (the store is the gateway's now, so the
    // CLI below only gets as far as its own check).
    let issue = |address: &str| {
        w.gateway
            .admin_call(
                "POST",
                &format!("/api/v1/proxy/addresses/{address}/certificate"),
            )
            .unwrap()
    };
    for address in ["ceo@bigbank.example", invented] {
        let (status, body) = issue(address);
        assert_eq!(status, 422, "{address}: {body}");
        assert!(body.contains("not_internal"), "{body}");
    }
    let (status, body) = issue("boss@agency.example");
    assert_eq!(status, 201, "{body}");

    let err = w
        .gateway
        .cli(&["proxy", "issue", "ceo@bigbank.example"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not in the organisation's domains"), "{err}");
    let err = w
        .gateway
        .cli(&["proxy", "renew", invented])
        .unwrap_err()
        .to_string();
    assert!(err.contains("internal_addresses"), "{err}");
}

/// Postfix's `smtp_tls_policy_maps` over the real socketmap listener: `secure` for domains
/// approved `tls`, nothing for the others.
#[test]
fn postfix_tls_policy_socketmap_answers_from_the_approvals() {
    use std::io::{Read, Write};
    let w = world(Options {
        sections: "[postfix]\ntls_policy_socketmap = \"127.0.0.1:0\"",
        setup: &[
            APPROVE_PARTNER,
            &["domains", "add", "tlspartner.example", "--policy", "tls"],
        ],
        ..Options::default()
    });
    let addr = w.gateway.socketmap.clone().expect("socketmap announced");
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let ask = |c: &mut std::net::TcpStream, key: &str| {
        let request = format!("tls_policy {key}");
        c.write_all(format!("{}:{request},", request.len()).as_bytes())
            .unwrap();
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b",") {
            c.read_exact(&mut byte).unwrap();
            reply.push(byte[0]);
        }
        String::from_utf8(reply).unwrap()
    };
    assert_eq!(ask(&mut c, "tlspartner.example"), "9:OK secure,");
    assert_eq!(ask(&mut c, "TLSpartner.example"), "9:OK secure,");
    assert_eq!(ask(&mut c, "partner.example"), "9:NOTFOUND ,");
    assert_eq!(ask(&mut c, "elsewhere.example"), "9:NOTFOUND ,");
}
