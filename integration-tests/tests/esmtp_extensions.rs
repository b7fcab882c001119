#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step fails the test
//! DSN (RFC 3461), SMTPUTF8 (RFC 6531) and the next hop's SIZE through the real binary: what
//! the upstream MTA asked for reaches the next hop unchanged, and what the next hop cannot
//! take is refused with a defined answer a person understands.

use std::time::Duration;

use integration_tests::gateway::GatewayProcess;
use integration_tests::{SmtpClient, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);
const USER: &str = "user@agency.example";
const ALICE: &str = "alice@partner.example";

struct World {
    inbound: SmtpSink,
    outbound: SmtpSink,
    gateway: GatewayProcess,
}

fn world() -> World {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let gateway = GatewayProcess::start_with_partner(&inbound, &outbound).expect("gateway starts");
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
    let from_jose =
        "From: josé@partner.example\r\nTo: user@agency.example\r\nSubject: Olá\r\n\r\nOi.\r\n";
    let (code, text) = transaction(
        &w,
        "MAIL FROM:<josé@partner.example> SMTPUTF8",
        &["RCPT TO:<user@agency.example>"],
        from_jose.as_bytes(),
    );
    assert_eq!(code, 250, "{text}");
    let got = w.inbound.wait_for_messages(2, WAIT).unwrap();
    assert_eq!(got[1].mail_from, "josé@partner.example");
    assert!(got[1].mail_parameters.iter().any(|p| p == "SMTPUTF8"));

    // Without SMTPUTF8 the UTF-8 address is refused at once.
    let (code, text) = transaction(
        &w,
        "MAIL FROM:<josé@partner.example>",
        &["RCPT TO:<user@agency.example>"],
        b"",
    );
    assert_eq!(code, 553, "{text}");
    assert!(text.starts_with("5.6.7"), "{text}");

    // A next hop without SMTPUTF8 cannot take it: a permanent, explained refusal.
    w.inbound.set_offer_smtputf8(false);
    let (code, text) = transaction(
        &w,
        "MAIL FROM:<josé@partner.example> SMTPUTF8",
        &["RCPT TO:<user@agency.example>"],
        from_jose.as_bytes(),
    );
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
    let request = integration_tests::openssl::partner_message(
        ALICE,
        "cert-query@agency.example",
        USER,
        "certificate please",
        Some("alice"),
    )
    .unwrap();
    let (code, text) = transaction(
        &w,
        &format!("MAIL FROM:<{ALICE}>"),
        &["RCPT TO:<cert-query@agency.example>"],
        &request,
    );
    assert_eq!(code, 250, "{text}");
    w.outbound.wait_for_messages(1, WAIT).unwrap();

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
