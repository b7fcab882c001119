#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step fails the test
//! Running as a service: the queue id of the `250` reply in the message's log line (text and
//! JSON), SIGHUP reloading the configuration without dropping sessions, the systemd unit.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::gateway::{GatewayProcess, Options};
use integration_tests::{dot_stuff, send_mail, SmtpClient, SmtpSink};

const PLAIN: &[u8] = b"From: alice@partner.example\r\nTo: user@agency.example\r\nSubject: log me\r\nMessage-ID: <log-line-1@partner.example>\r\n\r\nhello\r\n";

/// The id in `250 2.0.0 Ok: queued as <id>`.
fn queue_id(text: &str) -> String {
    text.strip_prefix("2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("no queue id in {text:?}"))
        .trim()
        .to_string()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hup(pid: u32) {
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_queue_id_of_the_reply_is_in_the_message_log_line() {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let mut gw = GatewayProcess::start_with(
        &inbound.address(),
        &outbound.address(),
        Options {
            setup: &[&["domains", "add", "partner.example"]],
            capture_log: true,
            ..Options::default()
        },
    )
    .unwrap();
    let (code, text) = send_mail(
        &gw.smtp,
        "alice@partner.example",
        &["user@agency.example"],
        PLAIN,
    )
    .unwrap();
    assert_eq!(code, 250, "{text}");
    let id = queue_id(&text);
    wait_for("the log line", || gw.log().contains("message handled"));
    let log = gw.log();
    let line = log
        .lines()
        .find(|l| l.contains("message handled") && l.contains(&id))
        .unwrap_or_else(|| panic!("no line with {id}: {log}"));
    for field in [
        "message_id=<log-line-1@partner.example>",
        "direction=\"inbound\"",
        "outcome=\"delivered\"",
        "session{",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }

    // The same in JSON, for log shippers.
    gw.stop();
    let log_path = gw.dir.path().join("json.log");
    let mut child = Command::new(gw.binary())
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&gw.config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut smtp = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(a) = line.unwrap().strip_prefix("SMTP listening on ") {
            smtp = Some(a.trim().to_string());
            break;
        }
    }
    let smtp = smtp.expect("the gateway announces its SMTP address");
    let (code, text) = send_mail(
        &smtp,
        "alice@partner.example",
        &["user@agency.example"],
        PLAIN,
    )
    .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert_eq!(code, 250, "{text}");
    let id = queue_id(&text);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let entry: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "message handled")
        .unwrap_or_else(|| panic!("no JSON message line: {log}"));
    assert_eq!(entry["span"]["queue_id"], id.as_str(), "{entry}");
    assert_eq!(entry["span"]["direction"], "inbound", "{entry}");
    assert_eq!(
        entry["span"]["message_id"], "<log-line-1@partner.example>",
        "{entry}"
    );
    assert_eq!(entry["fields"]["outcome"], "delivered", "{entry}");
    assert_eq!(entry["spans"][0]["name"], "session", "{entry}");
}

#[test]
fn sighup_reloads_next_hops_without_dropping_sessions() {
    let first = SmtpSink::start();
    let second = SmtpSink::start();
    let outbound = SmtpSink::start();
    let gw = GatewayProcess::start_with(
        &first.address(),
        &outbound.address(),
        Options {
            setup: &[&["domains", "add", "partner.example"]],
            capture_log: true,
            ..Options::default()
        },
    )
    .unwrap();
    let mut session = SmtpClient::connect(&gw.smtp).unwrap();
    let (code, _) = session
        .send_prepared(
            "alice@partner.example",
            &["user@agency.example"],
            &dot_stuff(PLAIN),
        )
        .unwrap();
    assert_eq!(code, 250);
    first.wait_for_messages(1, Duration::from_secs(20)).unwrap();

    // A new inbound next hop, applied while the session stays open.
    let text = std::fs::read_to_string(&gw.config).unwrap();
    let changed = text.replace(&first.address(), &second.address());
    assert_ne!(text, changed);
    std::fs::write(&gw.config, &changed).unwrap();
    hup(gw.pid());
    wait_for("the reload", || gw.log().contains("configuration reloaded"));
    let (code, text) = session
        .send_prepared(
            "alice@partner.example",
            &["user@agency.example"],
            &dot_stuff(PLAIN),
        )
        .unwrap();
    assert_eq!(code, 250, "the session survived the reload: {text}");
    second
        .wait_for_messages(1, Duration::from_secs(20))
        .unwrap();
    assert_eq!(
        first.messages().len(),
        1,
        "the old next hop gets nothing more"
    );

    // A listener change needs a restart: nothing is applied, the reason is logged.
    let restart_only = changed.replace("[smtp]\n", "[smtp]\nmax_sessions = 7\n");
    std::fs::write(
        &gw.config,
        restart_only.replace(&second.address(), &first.address()),
    )
    .unwrap();
    hup(gw.pid());
    wait_for("the refusal", || {
        gw.log().contains("change only with a restart")
    });
    assert!(gw.log().contains("[smtp]"), "{}", gw.log());
    let (code, _) = session
        .send_prepared(
            "alice@partner.example",
            &["user@agency.example"],
            &dot_stuff(PLAIN),
        )
        .unwrap();
    assert_eq!(code, 250);
    second
        .wait_for_messages(2, Duration::from_secs(20))
        .unwrap();
    // A broken file is refused the same way.
    std::fs::write(&gw.config, "this is not toml [").unwrap();
    hup(gw.pid());
    wait_for("the parse error", || {
        gw.log()
            .contains("configuration not reloaded, the running one stays")
    });
    session.quit();
}
