#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! DSN (RFC 3461), SMTPUTF8 (RFC 6531) and the next hop's SIZE through the real binary: what
//! the upstream MTA asked for reaches the next hop unchanged, and what the next hop cannot
//! take is refused with a defined answer a person understands.

use std::time::Duration;

use integration_tests::gateway::{GatewayProcess, Options};
use integration_tests::{SinkBehaviour, SmtpClient, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);
const USER: &str = "user@agency.example";
const ALICE: &str = "alice@partner.example";

struct World {
    inbound: SmtpSink,
    outbound: SmtpSink,
    gateway: GatewayProcess,
}

fn world() -> World {
    world_with(Options {
        setup: APPROVE_PARTNER,
        ..Options::default()
    })
}

/// The gateway's LMTP listener on any free port.
const LMTP: &str = "[lmtp]\nlisten = \"127.0.0.1:0\"\n";
const APPROVE_PARTNER: &[&[&str]] = &[&["domains", "add", "partner.example", "--policy", "smime"]];

fn world_with(options: Options<'_>) -> World {
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

/// One transaction with the given MAIL and RCPT lines; the reply to the end of data (or the
/// first refusal).
fn transaction(w: &World, mail: &str, rcpts: &[&str], message: &[u8]) -> (u16, String) {
    let mut c = SmtpClient::connect(&w.gateway.smtp).unwrap();
    let r = c.command(mail).unwrap();
    if r.0 != 250 {
        return r;
    }
    for rcpt in rcpts {
        let r = c.command(rcpt).unwrap();
        if r.0 != 250 {
            return r;
        }
    }
    let r = c.data(message).unwrap();
    c.quit();
    r
}

#[test]
fn dsn_requests_and_utf8_addresses_reach_the_next_hop_unchanged() {
    let w = world();
    let (code, ehlo) = SmtpClient::connect(&w.gateway.smtp)
        .unwrap()
        .command("EHLO again.test")
        .unwrap();
    assert_eq!(code, 250);
    assert!(ehlo.contains("DSN") && ehlo.contains("SMTPUTF8"), "{ehlo}");

    // Internal mail with a DSN request and a UTF-8 colleague.
    let (code, text) = transaction(
        &w,
        "MAIL FROM:<user@agency.example> RET=FULL ENVID=msg+2B42 SMTPUTF8",
        &[
            "RCPT TO:<colleague@agency.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Colleague+40agency.example",
            "RCPT TO:<josé@agency.example> NOTIFY=NEVER",
        ],
        "From: user@agency.example\r\nSubject: Grüße\r\n\r\nHallo.\r\n".as_bytes(),
    );
    assert_eq!(code, 250, "{text}");
    let got = w.inbound.wait_for_messages(1, WAIT).unwrap();
    let m = &got[0];
    for p in ["RET=FULL", "ENVID=msg+2B42", "SMTPUTF8"] {
        assert!(m.mail_parameters.iter().any(|x| x == p), "{p}: {m:?}");
    }
    assert_eq!(
        m.rcpt_to,
        ["colleague@agency.example", "josé@agency.example"]
    );
    assert_eq!(
        m.rcpt_parameters,
        [
            vec![
                "NOTIFY=SUCCESS,FAILURE".to_string(),
                "ORCPT=rfc822;Colleague+40agency.example".to_string()
            ],
            vec!["NOTIFY=NEVER".to_string()],
        ]
    );

    // A partner with a UTF-8 address.
    let from_jose = |mail_parameters: &str| {
        transaction(
            &w,
            &format!("MAIL FROM:<josé@partner.example>{mail_parameters}"),
            &["RCPT TO:<user@agency.example>"],
            "From: josé@partner.example\r\nTo: user@agency.example\r\nSubject: Olá\r\n\r\nOi.\r\n"
                .as_bytes(),
        )
    };
    let (code, text) = from_jose(" SMTPUTF8");
    assert_eq!(code, 250, "{text}");
    let got = w.inbound.wait_for_messages(2, WAIT).unwrap();
    assert_eq!(got[1].mail_from, "josé@partner.example");
    assert!(got[1].mail_parameters.iter().any(|p| p == "SMTPUTF8"));

    // Without SMTPUTF8 the UTF-8 address is refused at once.
    let (code, text) = from_jose("");
    assert_eq!(code, 553, "{text}");
    assert!(text.starts_with("5.6.7"), "{text}");

    // A next hop without SMTPUTF8 cannot take it: a permanent, explained refusal.
    w.inbound.set_offer_smtputf8(false);
    let (code, text) = from_jose(" SMTPUTF8");
    assert_eq!(code, 550, "{text}");
    assert!(
        text.contains("5.6.7") && text.contains("SMTPUTF8"),
        "{text}"
    );
    assert_eq!(w.inbound.messages().len(), 2, "nothing more was relayed");
}

#[test]
fn encrypted_mail_over_the_next_hops_size_is_refused_in_words() {
    let w = world();
    // alice's cert-query registers her certificate; the reply is the first outbound message.
    w.gateway
        .cert_query(&w.outbound, (ALICE, "alice"), USER, 0)
        .unwrap();

    // 1.6 MB grows past 2 MB once signed and encrypted.
    w.outbound.set_size_limit(2_000_000);
    let line = format!("{}\r\n", "x".repeat(76));
    let body = line.repeat(1_600_000 / line.len());
    let message = format!("From: {USER}\r\nTo: {ALICE}\r\nSubject: big\r\n\r\n{body}");
    let (code, text) = transaction(
        &w,
        &format!("MAIL FROM:<{USER}>"),
        &[&format!("RCPT TO:<{ALICE}>")],
        message.as_bytes(),
    );
    assert_eq!(code, 552, "{text}");
    assert!(
        text.starts_with(
            "5.3.4 after encryption the message is 2.2 MB; the outgoing limit is 2 MB"
        ),
        "{text}"
    );
    assert_eq!(
        w.outbound.messages().len(),
        1,
        "only the cert-query reply left"
    );
}

/// LMTP answers each recipient after its own next hop: a hop failing temporarily makes only
/// its recipients retried (with SMTP every recipient would be, and delivered twice).
#[test]
fn lmtp_retries_only_the_recipient_whose_hop_failed() {
    let World {
        inbound,
        outbound,
        gateway,
    } = world_with(Options {
        outbound:
            "policy_without_certificate = \"plaintext\"\nplaintext_domains = [\"listed.example\"]",
        sections: LMTP,
        ..Options::default()
    });
    let lmtp = gateway.lmtp.clone().expect("LMTP listener announced");
    let message = format!("From: {USER}\r\nSubject: to three\r\n\r\nHello.\r\n");

    let mut c = SmtpClient::connect_lhlo(&lmtp).unwrap();
    assert_eq!(c.command(&format!("MAIL FROM:<{USER}>")).unwrap().0, 250);
    for rcpt in [
        "colleague@agency.example",
        "bob@listed.example",
        "bob@other.example",
    ] {
        assert_eq!(c.command(&format!("RCPT TO:<{rcpt}>")).unwrap().0, 250);
    }
    outbound.set_behaviour(SinkBehaviour::TempFail);
    let colleague = c.data(message.as_bytes()).unwrap();
    let bob_listed = c.reply().unwrap();
    let bob_other = c.reply().unwrap();
    assert_eq!(colleague.0, 250, "{colleague:?}");
    assert_eq!(bob_listed.0, 451, "{bob_listed:?}");
    assert!(
        bob_listed.1.contains("sink is failing temporarily"),
        "{bob_listed:?}"
    );
    assert_eq!(bob_other.0, 550, "{bob_other:?}");
    assert!(bob_other.1.starts_with("5.7.1"), "{bob_other:?}");
    assert_eq!(inbound.wait_for_messages(1, WAIT).unwrap().len(), 1);

    // The upstream MTA retries the deferred recipient alone: nobody gets the message twice.
    outbound.set_behaviour(SinkBehaviour::Accept);
    assert_eq!(c.command(&format!("MAIL FROM:<{USER}>")).unwrap().0, 250);
    assert_eq!(c.command("RCPT TO:<bob@listed.example>").unwrap().0, 250);
    assert_eq!(c.data(message.as_bytes()).unwrap().0, 250);
    let sent = outbound.wait_for_messages(1, WAIT).unwrap();
    assert_eq!(sent[0].rcpt_to, ["bob@listed.example"]);
    c.quit();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        inbound.messages().len(),
        1,
        "no duplicate for the colleague"
    );
    assert_eq!(outbound.messages().len(), 1);
}

/// Over SMTP the gateway tells the sender itself about recipients it refused while others
/// were delivered, unless the sender asked for no notice (`NOTIFY=NEVER`).
#[test]
fn the_gateways_own_notice_honours_notify() {
    let w = world();
    let message = format!("From: {USER}\r\nSubject: two\r\n\r\nHello.\r\n");
    for (notify, notices) in [
        ("NOTIFY=NEVER", 0),
        (
            "NOTIFY=FAILURE ORCPT=rfc822;Bob+2BOrig@unapproved.example",
            1,
        ),
    ] {
        let before = w.inbound.messages().len();
        let (code, text) = transaction(
            &w,
            &format!("MAIL FROM:<{USER}> ENVID=env+2B7"),
            &[
                "RCPT TO:<colleague@agency.example>",
                &format!("RCPT TO:<bob@unapproved.example> {notify}"),
            ],
            message.as_bytes(),
        );
        assert_eq!(code, 250, "{text}");
        let got = w
            .inbound
            .wait_for_messages(before + 1 + notices, WAIT)
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let got_now = w.inbound.messages();
        assert_eq!(got_now.len(), before + 1 + notices, "{notify}: {got:?}");
        let dsns: Vec<_> = got_now[before..]
            .iter()
            .filter(|m| m.mail_from.is_empty())
            .collect();
        assert_eq!(dsns.len(), notices, "{notify}");
        if let Some(dsn) = dsns.first() {
            assert_eq!(dsn.rcpt_to, [USER]);
            let text = dsn.text();
            assert!(text.contains("bob@unapproved.example"), "{text}");
            assert!(text.contains("Original-Envelope-Id: env+2B7"), "{text}");
            assert!(
                text.contains("Original-Recipient: rfc822;Bob+Orig@unapproved.example"),
                "{text}"
            );
        }
    }
}

/// Over LMTP a recipient whose processing fails before relaying (its domain record cannot be
/// read) is deferred alone; over SMTP nothing is relayed and all are retried.
#[test]
fn lmtp_defers_only_the_recipient_the_store_failed_for() {
    let damage_partner = |data: &std::path::Path| {
        let config = certstore::StoreConfig {
            use_system_trust: false,
            ..certstore::StoreConfig::default()
        };
        certstore::Store::open(&data.join("store"), config)?
            .damage_domain_record_for_tests("partner.example")?;
        Ok(())
    };
    let World {
        inbound,
        outbound,
        gateway,
    } = world_with(Options {
        setup: APPROVE_PARTNER,
        sections: LMTP,
        before_serve: Some(&damage_partner),
        ..Options::default()
    });
    let message = format!("From: {USER}\r\nSubject: two\r\n\r\nHello.\r\n");
    let rcpts = [
        "RCPT TO:<colleague@agency.example>",
        "RCPT TO:<alice@partner.example>",
    ];

    let mut smtp = SmtpClient::connect(&gateway.smtp).unwrap();
    assert_eq!(smtp.command(&format!("MAIL FROM:<{USER}>")).unwrap().0, 250);
    for rcpt in rcpts {
        assert_eq!(smtp.command(rcpt).unwrap().0, 250);
    }
    let (code, text) = smtp.data(message.as_bytes()).unwrap();
    assert_eq!((code, &text[..5]), (451, "4.3.0"), "{text}");
    smtp.quit();
    std::thread::sleep(Duration::from_millis(300));
    assert!(inbound.messages().is_empty(), "SMTP relays nothing then");

    let mut lmtp = SmtpClient::connect_lhlo(gateway.lmtp.as_deref().unwrap()).unwrap();
    assert_eq!(lmtp.command(&format!("MAIL FROM:<{USER}>")).unwrap().0, 250);
    for rcpt in rcpts {
        assert_eq!(lmtp.command(rcpt).unwrap().0, 250);
    }
    let colleague = lmtp.data(message.as_bytes()).unwrap();
    let alice = lmtp.reply().unwrap();
    lmtp.quit();
    assert_eq!(colleague.0, 250, "{colleague:?}");
    assert_eq!((alice.0, &alice.1[..5]), (451, "4.3.0"), "{alice:?}");
    assert!(alice.1.contains("alice@partner.example"), "{alice:?}");
    let got = inbound.wait_for_messages(1, WAIT).unwrap();
    assert_eq!(got[0].rcpt_to, ["colleague@agency.example"]);
    assert!(outbound.messages().is_empty());
}
