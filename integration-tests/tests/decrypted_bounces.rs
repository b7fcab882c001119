#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Decrypted mail never goes back out in clear (issue 15 §1): it is re-injected with
//! `RET=HDRS` so later bounces quote headers only, held back (4xx) from a next hop without
//! DSN unless the operator allows it, and the gateway's own DSNs quote no decrypted content.

use std::time::Duration;

use integration_tests::gateway::GatewayProcess;
use integration_tests::openssl::{encrypt_entity, ok as openssl_ok, partner_message};
use integration_tests::{send_mail, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "The vault code is 5521.";

struct World {
    inbound: SmtpSink,
    outbound: SmtpSink,
    gateway: GatewayProcess,
    dir: std::path::PathBuf,
}

fn world() -> World {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let gateway = GatewayProcess::start_with_partner(&inbound, &outbound).expect("gateway starts");
    let dir = gateway.dir.path().to_path_buf();
    World {
        inbound,
        outbound,
        gateway,
        dir,
    }
}

impl World {
    /// The proxy certificate of each of `internal` (via cert-query), as PEM file paths.
    fn proxy_certificates(&self, internal: &[&str]) -> Vec<String> {
        let mut paths = Vec::new();
        for (n, address) in internal.iter().enumerate() {
            let reply = self
                .gateway
                .cert_query(
                    &self.outbound,
                    ("alice@partner.example", "alice"),
                    address,
                    n,
                )
                .unwrap();
            let signer = integration_tests::openssl::verified_signer(
                std::path::Path::new(&self.gateway.proxy_ca_pem()),
                &reply,
                &self.dir,
            )
            .unwrap()
            .expect("cert-query reply verifies");
            let path = self.dir.join(format!("proxy-{n}.pem"));
            std::fs::write(&path, signer).unwrap();
            paths.push(path.to_string_lossy().into_owned());
        }
        paths
    }

    /// alice's signed message to `to`, encrypted to every certificate in `recipients`.
    fn encrypted(&self, to: &str, recipients: &[String]) -> Vec<u8> {
        let signed = partner_message(
            "alice@partner.example",
            to,
            "Confidential",
            SECRET,
            Some("alice"),
        )
        .unwrap();
        if let [only] = recipients {
            return encrypt_entity(&signed, only).unwrap();
        }
        let start = signed
            .windows(13)
            .position(|x| x == b"MIME-Version:")
            .unwrap();
        let mut args = vec!["cms", "-encrypt", "-aes256"];
        for r in recipients {
            args.extend_from_slice(&["-recip", r]);
        }
        let mut out = signed[..start].to_vec();
        out.extend_from_slice(&openssl_ok(&args, &signed[start..]).unwrap());
        out
    }

    /// alice's signed (not encrypted) message to user@agency.example, accepted.
    fn send_signed_only(&self) {
        let signed = partner_message(
            "alice@partner.example",
            "user@agency.example",
            "Signed only",
            "nothing secret",
            Some("alice"),
        )
        .unwrap();
        let (code, text) = self.send(&["user@agency.example"], &signed);
        assert_eq!(code, 250, "{text}");
    }

    fn send(&self, to: &[&str], message: &[u8]) -> (u16, String) {
        send_mail(&self.gateway.smtp, "alice@partner.example", to, message).unwrap()
    }
}

#[test]
fn decrypted_mail_is_reinjected_asking_for_headers_only_bounces() {
    let w = world();
    let certs = w.proxy_certificates(&["user@agency.example"]);
    let (code, text) = w.send(
        &["user@agency.example"],
        &w.encrypted("user@agency.example", &certs),
    );
    assert_eq!(code, 250, "{text}");
    let got = w.inbound.wait_for_messages(1, WAIT).unwrap();
    assert!(got[0].text().contains(SECRET), "decrypted");
    assert!(
        got[0].mail_parameters.contains(&"RET=HDRS".to_string()),
        "{:?}",
        got[0].mail_parameters
    );

    // Mail that was not decrypted (signed only) keeps the sender's choice.
    w.send_signed_only();
    let got = w.inbound.wait_for_messages(2, WAIT).unwrap();
    assert!(
        !got[1].mail_parameters.iter().any(|p| p.starts_with("RET=")),
        "{:?}",
        got[1].mail_parameters
    );
}

#[test]
fn next_hop_without_dsn_gets_no_decrypted_mail_unless_allowed() {
    let mut w = world();
    let certs = w.proxy_certificates(&["user@agency.example"]);
    let message = w.encrypted("user@agency.example", &certs);
    w.inbound.set_offer_dsn(false);
    let (code, text) = w.send(&["user@agency.example"], &message);
    assert_eq!(code, 451, "{text}");
    assert!(text.contains("does not offer DSN"), "{text}");
    assert!(text.contains("allow_next_hop_without_dsn"), "{text}");
    assert!(w.inbound.messages().is_empty(), "nothing was relayed");

    // Signed-only mail is not decrypted content: it still goes through.
    w.send_signed_only();

    // The operator's explicit choice lets decrypted mail through.
    let config = std::fs::read_to_string(&w.gateway.config).unwrap();
    std::fs::write(
        &w.gateway.config,
        config.replace(
            "[inbound]\n",
            "[inbound]\nallow_next_hop_without_dsn = true\n",
        ),
    )
    .unwrap();
    w.gateway.restart().unwrap();
    let (code, text) = w.send(&["user@agency.example"], &message);
    assert_eq!(code, 250, "{text}");
    let got = w.inbound.wait_for_messages(2, WAIT).unwrap();
    assert!(got[1].text().contains(SECRET));
    assert!(!got[1].mail_parameters.contains(&"RET=HDRS".to_string()));
}

#[test]
fn the_gateways_own_dsn_after_decryption_quotes_no_decrypted_content() {
    let w = world();
    let certs = w.proxy_certificates(&["user@agency.example", "clerk@agency.example"]);
    let message = w.encrypted("user@agency.example, clerk@agency.example", &certs);
    // The mailbox hop refuses one recipient of the decrypted message, accepts the other.
    w.inbound.reject_recipient("user@agency.example", 550);
    let (code, text) = w.send(&["user@agency.example", "clerk@agency.example"], &message);
    assert_eq!(code, 250, "{text}");
    let delivered = w.inbound.wait_for_messages(1, WAIT).unwrap();
    assert_eq!(
        delivered[0].rcpt_to,
        vec!["clerk@agency.example".to_string()]
    );
    assert!(
        delivered[0].text().contains(SECRET),
        "clerk gets it decrypted"
    );

    // The notice to the partner (two cert-query replies came before it).
    let out = w.outbound.wait_for_messages(3, WAIT).unwrap();
    let dsn = &out[2];
    assert_eq!(dsn.mail_from, "");
    assert_eq!(dsn.rcpt_to, vec!["alice@partner.example".to_string()]);
    let text = dsn.text();
    assert!(text.contains("multipart/report"), "{text}");
    assert!(text.contains("user@agency.example"), "{text}");
    assert!(text.contains("text/rfc822-headers"), "{text}");
    assert!(!text.contains("message/rfc822"), "{text}");
    assert!(
        !text.contains(SECRET),
        "the DSN quotes decrypted content:\n{text}"
    );
    assert!(!text.contains("X-SMIME-Gateway"), "{text}");
    assert!(
        !text.contains("text/plain; charset=us-ascii\r\n\r\nThe"),
        "{text}"
    );
    // What it quotes are the headers of the message as it arrived: still encrypted.
    assert!(
        text.contains("application/pkcs7-mime") || text.contains("application/x-pkcs7-mime"),
        "{text}"
    );
}
