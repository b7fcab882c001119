#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Issue 11 through the real binary: what a hostile sender can make the gateway do.

use std::time::Duration;

use integration_tests::gateway::GatewayProcess;
use integration_tests::{send_mail, SinkBehaviour, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);

fn cert_query_request(from: &str) -> Vec<u8> {
    integration_tests::openssl::partner_message(
        from,
        "cert-query@agency.example",
        "user@agency.example",
        "Please send your certificate.",
        Some("alice"),
    )
    .expect("openssl")
}

#[test]
fn a_cert_query_reply_the_next_hop_refused_does_not_use_up_the_allowance() {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let gateway = GatewayProcess::start(
        &inbound.address(),
        &outbound.address(),
        "[cert_query]\nrate_limit_per_hour = 1\n",
        &[&["domains", "add", "partner.example", "--policy", "smime"]],
    )
    .expect("gateway starts");
    let request = cert_query_request("alice@partner.example");
    let send = || {
        send_mail(
            &gateway.smtp,
            "alice@partner.example",
            &["cert-query@agency.example"],
            &request,
        )
        .expect("SMTP conversation")
    };

    outbound.set_behaviour(SinkBehaviour::PermFail);
    let (code, text) = send();
    assert_eq!(
        code, 250,
        "a refused reply does not bounce the request: {text}"
    );
    outbound.set_behaviour(SinkBehaviour::Accept);
    let (code, text) = send();
    assert_eq!(code, 250, "{text}");
    let replies = outbound.wait_for_messages(1, WAIT).expect("the reply");
    assert_eq!(
        replies[0].rcpt_to,
        vec!["alice@partner.example".to_string()]
    );
    // Now the allowance (1 per hour) is used: a sub-address does not get another reply.
    let (code, _) = send_mail(
        &gateway.smtp,
        "alice+again@partner.example",
        &["cert-query@agency.example"],
        &cert_query_request("alice+again@partner.example"),
    )
    .expect("SMTP conversation");
    assert_eq!(code, 250);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(outbound.messages().len(), 1);
}
