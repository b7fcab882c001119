#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Issue 12 through the real binary: the connection to a next hop is reused, and a hop that
//! drops the idle connection still gets every message exactly once.

use std::time::Duration;

use integration_tests::gateway::GatewayProcess;
use integration_tests::{send_mail, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);

fn message(i: usize) -> Vec<u8> {
    format!(
        "From: alice@partner.example\r\nTo: user@agency.example\r\nSubject: reuse {i}\r\nMessage-ID: <reuse-{i}@partner.example>\r\n\r\nMessage number {i}.\r\n"
    )
    .into_bytes()
}

#[test]
fn sequential_messages_share_one_next_hop_connection_and_none_is_lost_or_doubled() {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let gateway = GatewayProcess::start(&inbound.address(), &outbound.address(), "", &[])
        .expect("gateway starts");
    // Each message arrives on its own upstream connection; they leave on one.
    let send = |range: std::ops::Range<usize>| {
        for i in range {
            let (code, text) = send_mail(
                &gateway.smtp,
                "alice@partner.example",
                &["user@agency.example"],
                &message(i),
            )
            .expect("SMTP conversation");
            assert_eq!(code, 250, "{text}");
        }
    };
    send(0..5);
    inbound.wait_for_messages(5, WAIT).expect("five messages");
    assert_eq!(inbound.connections(), 1);

    // The hop drops the idle connection (its timeout): the next messages go on a new one,
    // each exactly once.
    inbound.drop_connections();
    send(5..8);
    let got = inbound.wait_for_messages(8, WAIT).expect("eight messages");
    std::thread::sleep(Duration::from_millis(300));
    let got_now = inbound.messages();
    assert_eq!(got_now.len(), 8, "no message twice");
    for (i, m) in got.iter().enumerate() {
        assert!(
            m.text().contains(&format!("Message number {i}.")),
            "message {i} in order, once"
        );
    }
    assert_eq!(inbound.connections(), 2);
}
