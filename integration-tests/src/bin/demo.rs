//! `make demo`: the whole story on localhost, step by step, with OpenSSL as the partner's
//! mail client. Exits 0 only if every step did what it should, so it is also a check.
//!
//! Runs `target/release/smime-gateway` (beside this binary; `SMIME_GATEWAY_BIN` overrides).

#![allow(clippy::indexing_slicing)] // a test tool over our own fixtures: a bad index is a failed run, not a stalled gateway

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use integration_tests::gateway::{fixture, GatewayProcess};
use integration_tests::{header, openssl, send_mail, ReceivedMessage, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);
const PARTNER: &str = "alice@partner.example";
const USER: &str = "user@agency.example";
const CERT_QUERY: &str = "cert-query@agency.example";

/// Counts the checks and prints them.
#[derive(Default)]
struct Checks {
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: &str) -> bool {
        if ok {
            self.passed += 1;
            println!("    \u{2714} {what}");
        } else {
            self.failed.push(what.to_string());
            println!("    \u{2718} FAILED: {what}");
        }
        ok
    }
}

fn step(n: u32, title: &str) {
    println!();
    println!("[{n}] {title}");
}

fn show(label: &str, value: &str) {
    println!("    {label:<24} {}", excerpt(value, 160));
}

fn excerpt(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

fn show_headers(msg: &ReceivedMessage, names: &[&str]) {
    let text = msg.text();
    for name in names {
        if let Some(v) = header(&text, name) {
            show(&format!("{name}:"), &v);
        }
    }
}

fn main() -> ExitCode {
    let started = Instant::now();
    let mut checks = Checks::default();
    let result = story(&mut checks);
    println!();
    if let Err(e) = &result {
        println!("demo aborted: {e:#}");
    }
    let secs = started.elapsed().as_secs_f64();
    if result.is_ok() && checks.failed.is_empty() {
        println!(
            "demo passed: {} checks in {secs:.1} s; every step did what it should.",
            checks.passed
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "demo FAILED after {secs:.1} s: {} passed, {} failed{}",
            checks.passed,
            checks.failed.len(),
            if checks.failed.is_empty() {
                String::new()
            } else {
                format!(": {}", checks.failed.join("; "))
            }
        );
        ExitCode::FAILURE
    }
}

fn story(checks: &mut Checks) -> anyhow::Result<()> {
    println!("S/MIME proxy gateway: the whole story on 127.0.0.1");
    println!("(partner alice@partner.example uses openssl as her mail client; staff member user@agency.example is behind the gateway)");

    // 1 ────────────────────────────────────────────────────────────────────────────────────
    step(
        1,
        "Start the internal mail system, the internet and the gateway",
    );
    let internal = SmtpSink::start();
    let internet = SmtpSink::start();
    let approve: &[&str] = &[
        "domains",
        "add",
        "partner.example",
        "--policy",
        "smime",
        "--note",
        "demo partner",
    ];
    let gw = GatewayProcess::start(&internal.address(), &internet.address(), "", &[approve])
        .context("starting the gateway")?;
    show(
        "internal mail system:",
        &format!("SMTP sink on {} (inbound next hop)", internal.address()),
    );
    show(
        "internet:",
        &format!("SMTP sink on {} (outbound next hop)", internet.address()),
    );
    show(
        "gateway:",
        &format!("{} (pid {})", gw.binary().display(), gw.pid()),
    );
    show("gateway SMTP:", &gw.smtp);
    show("admin API:", &format!("http://{}", gw.admin));
    show("proxy CA:", &gw.proxy_ca_pem());

    // 2 ────────────────────────────────────────────────────────────────────────────────────
    step(2, "The operator approves partner.example for S/MIME");
    let shown: Vec<String> = approve
        .iter()
        .map(|a| {
            if a.contains(' ') {
                format!("\"{a}\"")
            } else {
                a.to_string()
            }
        })
        .collect();
    println!(
        "    $ smime-gateway {} --config gateway.toml   (run before serving)",
        shown.join(" ")
    );
    let (status, body) = gw.admin_get("/api/v1/domains")?;
    show("GET /api/v1/domains:", &format!("{status} {}", body.trim()));
    checks.check(
        status == 200 && body.contains("partner.example") && body.contains("smime"),
        "partner.example is approved with policy smime",
    );

    // 3 ────────────────────────────────────────────────────────────────────────────────────
    step(3, "alice sends a signed cert-query for user@agency.example");
    let request = openssl::partner_message(
        PARTNER,
        CERT_QUERY,
        "<User@Agency.Example>",
        "Please send me your certificate.",
        Some("alice"),
    )?;
    show(
        "sent:",
        &format!(
            "{PARTNER} -> {CERT_QUERY}, Subject: <User@Agency.Example>, signed by alice ({} bytes)",
            request.len()
        ),
    );
    let (code, text) = send_mail(&gw.smtp, PARTNER, &[CERT_QUERY], &request)?;
    show("gateway answered:", &format!("{code} {text}"));
    checks.check(code == 250, "the gateway accepted the request");
    let replies = internet
        .wait_for_messages(1, WAIT)
        .context("waiting for the cert-query reply on the internet sink")?;
    let reply = &replies[0];
    println!(
        "    reply on the internet sink, to {}:",
        reply.rcpt_to.join(", ")
    );
    show_headers(
        reply,
        &[
            "From",
            "Sender",
            "To",
            "Subject",
            "In-Reply-To",
            "Content-Type",
        ],
    );
    let reply_text = reply.text();
    let from = header(&reply_text, "From").unwrap_or_default();
    let sender = header(&reply_text, "Sender").unwrap_or_default();
    checks.check(
        reply.rcpt_to == [PARTNER] && from.contains(USER),
        "the reply goes to alice, From: the requested address",
    );
    checks.check(
        sender.contains(CERT_QUERY),
        "Sender: is the cert-query address",
    );
    let signer = gw.dir.path().join("proxy-user.pem");
    let signer_arg = signer.to_string_lossy().into_owned();
    println!("    $ openssl cms -verify -CAfile <proxy CA> -signer proxy-user.pem < reply");
    let (ok, _, err) = openssl::run(
        &[
            "cms",
            "-verify",
            "-CAfile",
            &gw.proxy_ca_pem(),
            "-signer",
            &signer_arg,
            "-out",
            "/dev/null",
        ],
        &reply.data,
    )?;
    show("openssl says:", err.trim());
    checks.check(
        ok,
        "openssl accepts the reply's signature with the proxy CA",
    );
    if !ok {
        anyhow::bail!("cannot go on without the proxy certificate");
    }
    let subject = openssl::ok(
        &[
            "x509",
            "-in",
            &signer_arg,
            "-noout",
            "-subject",
            "-issuer",
            "-ext",
            "subjectAltName",
        ],
        b"",
    )?;
    let subject = String::from_utf8_lossy(&subject);
    for line in subject.lines().filter(|l| !l.trim().is_empty()) {
        show("proxy certificate:", line);
    }
    checks.check(
        subject.contains(USER),
        "the signer is the proxy certificate for user@agency.example",
    );

    // 4 ────────────────────────────────────────────────────────────────────────────────────
    step(
        4,
        "alice signs and encrypts a message to the proxy certificate (openssl) and sends it",
    );
    let signed = openssl::partner_message(
        PARTNER,
        USER,
        "Quarterly figures",
        "Hello, the figures are attached in spirit: revenue 42, costs 17.",
        Some("alice"),
    )?;
    let encrypted = openssl::encrypt_entity(&signed, &signer_arg)?;
    println!("    $ openssl cms -sign -signer alice.pem … | openssl cms -encrypt -aes256 -recip proxy-user.pem");
    let enc_text = String::from_utf8_lossy(&encrypted).into_owned();
    show(
        "sent Content-Type:",
        &header(&enc_text, "Content-Type").unwrap_or_default(),
    );
    show("sent size:", &format!("{} bytes", encrypted.len()));
    let (code, text) = send_mail(&gw.smtp, PARTNER, &[USER], &encrypted)?;
    show("gateway answered:", &format!("{code} {text}"));
    checks.check(code == 250, "the gateway accepted the encrypted message");
    let delivered = internal
        .wait_for_messages(1, WAIT)
        .context("waiting for the decrypted message on the internal sink")?;
    let msg = &delivered[0];
    println!(
        "    arrived at the internal mail system, to {}:",
        msg.rcpt_to.join(", ")
    );
    show_headers(
        msg,
        &[
            "Authentication-Results",
            "X-SMIME-Gateway",
            "From",
            "Subject",
            "Content-Type",
        ],
    );
    let text = msg.text();
    let body_line = text
        .lines()
        .find(|l| l.contains("revenue 42"))
        .unwrap_or("(body not found)");
    show("body:", body_line);
    checks.check(
        header(&text, "Authentication-Results").is_some_and(|v| {
            v.contains("smime=pass") && v.contains("smime-identifier=alice@partner.example")
        }),
        "Authentication-Results says smime=pass for alice@partner.example",
    );
    checks.check(
        header(&text, "X-SMIME-Gateway").is_some_and(|v| v.starts_with("decrypted")),
        "X-SMIME-Gateway says decrypted",
    );
    checks.check(
        text.contains("revenue 42") && !text.contains("application/pkcs7-mime"),
        "the internal mail system sees the plaintext",
    );

    // 5 ────────────────────────────────────────────────────────────────────────────────────
    step(
        5,
        "user replies to alice: the gateway signs and encrypts it",
    );
    let reply_msg = format!(
        "From: {USER}\r\nTo: {PARTNER}\r\nSubject: Re: Quarterly figures\r\nMessage-ID: <demo-reply@agency.example>\r\n\r\nThanks Alice, figures received.\r\n"
    );
    show(
        "sent:",
        &format!("{USER} -> {PARTNER}, plain text, Subject: Re: Quarterly figures"),
    );
    let (code, text) = send_mail(&gw.smtp, USER, &[PARTNER], reply_msg.as_bytes())?;
    show("gateway answered:", &format!("{code} {text}"));
    checks.check(code == 250, "the gateway accepted the reply");
    let out = internet
        .wait_for_messages(2, WAIT)
        .context("waiting for the encrypted reply on the internet sink")?;
    let sent = &out[1];
    println!("    on the internet sink, to {}:", sent.rcpt_to.join(", "));
    show_headers(sent, &["From", "To", "Subject", "Content-Type"]);
    let ct = header(&sent.text(), "Content-Type").unwrap_or_default();
    checks.check(
        ct.contains("application/pkcs7-mime") && ct.contains("enveloped-data"),
        "the outbound message is application/pkcs7-mime (enveloped-data)",
    );
    checks.check(
        !sent.text().contains("figures received"),
        "no plaintext on the wire",
    );
    println!("    $ openssl cms -decrypt -recip alice.pem -inkey alice.key | openssl cms -verify -CAfile <proxy CA>");
    let inner = openssl::run(
        &[
            "cms",
            "-decrypt",
            "-recip",
            &fixture("partner/alice.pem"),
            "-inkey",
            &fixture("partner/alice.key"),
        ],
        &sent.data,
    )?;
    checks.check(inner.0, "openssl decrypts it with alice's key");
    if !inner.0 {
        show("openssl says:", &inner.2);
    }
    let verified = openssl::run(&["cms", "-verify", "-CAfile", &gw.proxy_ca_pem()], &inner.1)?;
    show("openssl says:", verified.2.trim());
    let content = String::from_utf8_lossy(&verified.1).into_owned();
    if let Some(l) = content.lines().find(|l| l.contains("figures received")) {
        show("decrypted body:", l);
    }
    checks.check(
        verified.0 && content.contains("figures received"),
        "the signature verifies against the proxy CA and the text is intact",
    );

    // 6 ────────────────────────────────────────────────────────────────────────────────────
    step(
        6,
        "user writes to bob@partner.example, who has no certificate on file",
    );
    let to_bob =
        format!("From: {USER}\r\nTo: bob@partner.example\r\nSubject: hello bob\r\n\r\nHi Bob\r\n");
    let (code, text) = send_mail(&gw.smtp, USER, &["bob@partner.example"], to_bob.as_bytes())?;
    show("gateway answered:", &format!("{code} {text}"));
    checks.check(
        code == 550 && text.starts_with("5.7.1"),
        "refused with 550 5.7.1 (secure-only policy)",
    );
    checks.check(
        text.contains("no S/MIME certificate on file for bob@partner.example")
            && text.contains(CERT_QUERY),
        "the reason says what to do (ask bob to write to the cert-query address)",
    );
    let leaked = internet.messages().len() > 2;
    checks.check(!leaked, "nothing reached the internet for bob");
    Ok(())
}
