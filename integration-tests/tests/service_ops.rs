#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Running as a service: the queue id of the `250` reply in the message's log line (text and
//! JSON), SIGHUP reloading the configuration without dropping sessions, the systemd unit.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
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

/// A gateway logging at `info` into a file, partner.example approved.
fn logging_gateway(inbound: &SmtpSink, outbound: &SmtpSink) -> GatewayProcess {
    GatewayProcess::start_with(
        &inbound.address(),
        &outbound.address(),
        Options {
            setup: &[&["domains", "add", "partner.example"]],
            capture_log: true,
            ..Options::default()
        },
    )
    .unwrap()
}

/// PLAIN from alice to user in an open session; the reply.
fn send_plain(session: &mut SmtpClient) -> (u16, String) {
    session
        .send_prepared(
            "alice@partner.example",
            &["user@agency.example"],
            &dot_stuff(PLAIN),
        )
        .unwrap()
}

fn hup(pid: u32) {
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `serve` for `gw`'s configuration with extra arguments, `NOTIFY_SOCKET` and stderr into
/// `log`; returns the child and its SMTP address once it listens.
fn serve(
    gw: &GatewayProcess,
    args: &[&str],
    notify_socket: Option<&Path>,
    log: &Path,
) -> (Child, String) {
    let mut command = Command::new(gw.binary());
    command
        .arg("serve")
        .args(args)
        .arg("--config")
        .arg(&gw.config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    if let Some(socket) = notify_socket {
        command.env("NOTIFY_SOCKET", socket);
    }
    let mut child = command.spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    // Keep draining stdout so the gateway never writes into a closed pipe.
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("SMTP listening on ") {
                let _ = tx.send(a.trim().to_string());
            }
        }
    });
    let smtp = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the gateway announces its SMTP address");
    (child, smtp)
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn the_queue_id_of_the_reply_is_in_the_message_log_line() {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let mut gw = logging_gateway(&inbound, &outbound);
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
    let (mut child, smtp) = serve(&gw, &["--log-format", "json"], None, &log_path);
    let (code, text) = send_mail(
        &smtp,
        "alice@partner.example",
        &["user@agency.example"],
        PLAIN,
    )
    .unwrap();
    terminate(&mut child);
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
    let gw = logging_gateway(&first, &outbound);
    let mut session = SmtpClient::connect(&gw.smtp).unwrap();
    let (code, _) = send_plain(&mut session);
    assert_eq!(code, 250);
    first.wait_for_messages(1, Duration::from_secs(20)).unwrap();

    // A new inbound next hop, applied while the session stays open.
    let text = std::fs::read_to_string(&gw.config).unwrap();
    let changed = text.replace(&first.address(), &second.address());
    assert_ne!(text, changed);
    std::fs::write(&gw.config, &changed).unwrap();
    hup(gw.pid());
    wait_for("the reload", || gw.log().contains("configuration reloaded"));
    let (code, text) = send_plain(&mut session);
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
    let (code, _) = send_plain(&mut session);
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

/// Type=notify: READY=1 once the listeners accept connections, STOPPING=1 on SIGTERM.
#[cfg(target_os = "linux")]
#[test]
fn systemd_is_told_when_the_gateway_is_ready_and_stopping() {
    let inbound = SmtpSink::start();
    let outbound = SmtpSink::start();
    let mut gw = GatewayProcess::start_with_partner(&inbound, &outbound).unwrap();
    gw.stop();
    let socket_path = gw.dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let log = gw.dir.path().join("notify.log");
    let (mut child, smtp) = serve(&gw, &[], Some(&socket_path), &log);
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means ready: the SMTP listener answers.
    let session = SmtpClient::connect(&smtp).unwrap();
    session.quit();
    terminate(&mut child);
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
}

/// The unit in packaging/ has the hardening the service needs, and systemd accepts it
/// without a single warning.
#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit_path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/smime-gateway.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    for line in [
        "Type=notify",
        "User=smime-gateway",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/smime-gateway",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "CapabilityBoundingSet=",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line:?} missing");
    }
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    };
    assert!(out.status.success());
    // Verified as installed, with ExecStart pointing at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("smime-gateway.service");
    let bin = integration_tests::gateway::binary().unwrap();
    std::fs::write(
        &installed,
        unit.replace("/usr/local/bin/smime-gateway", &bin.to_string_lossy()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&installed)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // systemd ignores unknown keys and bad values with a warning and exit status 0.
    assert!(
        !stderr.contains("smime-gateway.service"),
        "warnings: {stderr}"
    );
}
