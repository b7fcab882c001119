//! Relay tests against a scripted fake server and against our own receive server (TLS).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;
use crate::receive::{self, Envelope, MessageHandler};

/// Answers each command line with `script(line)`; records the raw DATA payload.
async fn fake_server(script: fn(&str) -> String) -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let data = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::clone(&data);
    tokio::spawn(async move {
        let Ok((s, _)) = listener.accept().await else {
            return;
        };
        let mut s = BufReader::new(s);
        s.get_mut().write_all(script("").as_bytes()).await.unwrap();
        loop {
            let mut line = String::new();
            if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let reply = script(line.trim_end());
            s.get_mut().write_all(reply.as_bytes()).await.unwrap();
            if line.trim_end() == "DATA" && reply.starts_with("354") {
                let mut raw = Vec::new();
                while !raw.ends_with(b"\r\n.\r\n") {
                    let mut b = [0u8; 1];
                    if s.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    raw.push(b[0]);
                }
                store.lock().unwrap().push(raw);
                s.get_mut().write_all(script(".").as_bytes()).await.unwrap();
            }
            if line.starts_with("QUIT") {
                return;
            }
        }
    });
    (addr, data)
}

fn hop(addr: SocketAddr, tls: TlsMode) -> NextHop {
    NextHop {
        address: addr.to_string(),
        helo_name: "gw.test".into(),
        tls,
        timeout: Duration::from_secs(5),
        ca_file: None,
    }
}

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn basic_script(line: &str) -> String {
    match line {
        "" => "220 fake ESMTP\r\n".into(),
        l if l.starts_with("EHLO") => "250-fake\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n".into(),
        l if l.starts_with("MAIL") => "250 2.1.0 ok\r\n".into(),
        "RCPT TO:<temp@x.test>" => "450 4.2.1 mailbox busy\r\n".into(),
        "RCPT TO:<perm@x.test>" => "550-5.1.1 no such\r\n550 5.1.1 user\r\n".into(),
        l if l.starts_with("RCPT") => "250 2.1.5 ok\r\n".into(),
        "DATA" => "354 go\r\n".into(),
        "." => "250 2.0.0 queued\r\n".into(),
        "QUIT" => "221 bye\r\n".into(),
        _ => "500 what\r\n".into(),
    }
}

#[tokio::test]
async fn per_recipient_outcomes_and_dot_stuffing() {
    let (addr, data) = fake_server(basic_script).await;
    let report = deliver(
        &hop(addr, TlsMode::Opportunistic),
        "s@a.test",
        &rcpts(&["ok@x.test", "temp@x.test", "perm@x.test"]),
        b"Subject: t\r\n\r\n.hidden\nbare lf\r\n..two\r\nno final newline",
    )
    .await;
    let p = &report.per_recipient;
    assert_eq!(p[0], ("ok@x.test".into(), RecipientOutcome::Accepted));
    match &p[1].1 {
        RecipientOutcome::TempFailed(r) => {
            assert_eq!((r.code, r.enhanced.as_str()), (450, "4.2.1"));
            assert_eq!(r.text, "mailbox busy");
        }
        o => panic!("{o:?}"),
    }
    match &p[2].1 {
        RecipientOutcome::PermFailed(r) => {
            assert_eq!((r.code, r.enhanced.as_str()), (550, "5.1.1"));
            assert_eq!(r.text, "no such\nuser");
        }
        o => panic!("{o:?}"),
    }
    assert!(!report.all_accepted());
    let raw = data.lock().unwrap()[0].clone();
    assert_eq!(
        raw,
        b"Subject: t\r\n\r\n..hidden\r\nbare lf\r\n...two\r\nno final newline\r\n.\r\n"
    );
}

#[tokio::test]
async fn final_temp_failure_applies_to_accepted_recipients() {
    fn script(line: &str) -> String {
        match line {
            "." => "451 4.3.0 try later\r\n".into(),
            l => basic_script(l),
        }
    }
    let (addr, _) = fake_server(script).await;
    let report = deliver(
        &hop(addr, TlsMode::Opportunistic),
        "",
        &rcpts(&["a@x.test", "perm@x.test"]),
        b"x\r\n",
    )
    .await;
    assert!(matches!(&report.per_recipient[0].1, RecipientOutcome::TempFailed(r) if r.code == 451));
    assert!(matches!(&report.per_recipient[1].1, RecipientOutcome::PermFailed(r) if r.code == 550));
}

#[tokio::test]
async fn mail_from_refused_permanently() {
    fn script(line: &str) -> String {
        if line.starts_with("MAIL") {
            "553 5.7.1 sender not allowed\r\n".into()
        } else {
            basic_script(line)
        }
    }
    let (addr, _) = fake_server(script).await;
    let report = deliver(
        &hop(addr, TlsMode::Disabled),
        "s@a.test",
        &rcpts(&["a@x.test", "b@x.test"]),
        b"x\r\n",
    )
    .await;
    assert!(report
        .per_recipient
        .iter()
        .all(|(_, o)| matches!(o, RecipientOutcome::PermFailed(r) if r.code == 553)));
}

#[tokio::test]
async fn ehlo_refused_falls_back_to_helo() {
    fn script(line: &str) -> String {
        if line.starts_with("EHLO") {
            "502 5.5.1 no\r\n".into()
        } else if line.starts_with("HELO") {
            "250 hi\r\n".into()
        } else {
            basic_script(line)
        }
    }
    let (addr, _) = fake_server(script).await;
    let report = deliver(
        &hop(addr, TlsMode::Opportunistic),
        "s@a.test",
        &rcpts(&["a@x.test"]),
        b"x\r\n",
    )
    .await;
    assert!(report.all_accepted());
}

#[tokio::test]
async fn connection_refused_is_temporary() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let report = deliver(
        &hop(addr, TlsMode::Opportunistic),
        "s@a.test",
        &rcpts(&["a@x.test", "b@x.test"]),
        b"x\r\n",
    )
    .await;
    assert_eq!(report.per_recipient.len(), 2);
    for (_, o) in &report.per_recipient {
        match o {
            RecipientOutcome::TempFailed(r) => {
                assert_eq!(r.enhanced, "4.4.1");
                assert!(r.text.contains("cannot connect"), "{}", r.text);
            }
            o => panic!("{o:?}"),
        }
    }
    assert!(report.any_temp_failed());
}

#[tokio::test]
async fn silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut h = hop(addr, TlsMode::Opportunistic);
    h.timeout = Duration::from_millis(300);
    let report = deliver(&h, "s@a.test", &rcpts(&["a@x.test"]), b"x\r\n").await;
    assert!(
        matches!(&report.per_recipient[0].1, RecipientOutcome::TempFailed(r) if r.text.contains("timeout"))
    );
    drop(listener);
}

#[tokio::test]
async fn required_tls_not_offered_is_temporary() {
    let (addr, data) = fake_server(basic_script).await;
    let report = deliver(
        &hop(addr, TlsMode::Required { verify: false }),
        "s@a.test",
        &rcpts(&["a@x.test"]),
        b"x\r\n",
    )
    .await;
    assert!(
        matches!(&report.per_recipient[0].1, RecipientOutcome::TempFailed(r) if r.enhanced == "4.7.10")
    );
    assert!(data.lock().unwrap().is_empty());
}

#[test]
fn data_encoding() {
    assert_eq!(encode_data(b""), b".\r\n");
    assert_eq!(encode_data(b"a\r\n"), b"a\r\n.\r\n");
    assert_eq!(encode_data(b".\r\n"), b"..\r\n.\r\n");
    assert_eq!(encode_data(b"a\r\r\nb\n.c"), b"a\r\n\r\nb\r\n..c\r\n.\r\n");
}

#[test]
fn address_split() {
    assert_eq!(split_address("mx.test:25"), Some(("mx.test".into(), 25)));
    assert_eq!(split_address("[::1]:2525"), Some(("::1".into(), 2525)));
    assert_eq!(split_address("mx.test"), None);
    assert_eq!(split_address(":25"), None);
}

// --- TLS against our own server -------------------------------------------------------

struct Sink(Mutex<Vec<(Envelope, Vec<u8>)>>);

impl MessageHandler for Sink {
    async fn handle(&self, envelope: Envelope, message: Vec<u8>) -> Reply {
        self.0.lock().unwrap().push((envelope, message));
        Reply::ok()
    }
}

/// A CA and a leaf certificate for 127.0.0.1 made with the openssl CLI (None if absent).
/// Returns (leaf chain, leaf key, CA certificate).
fn make_cert(dir: &std::path::Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let p = |n: &str| dir.join(n);
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
    ];
    let ok = run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-subj",
            "/CN=Test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    ]
    .concat())
        && run(&[
            &["req", "-x509", "-CA", "ca.pem", "-CAkey", "ca.key"][..],
            &ec,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "extendedKeyUsage=serverAuth",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
            ],
        ]
        .concat());
    ok.then(|| (p("cert.pem"), p("key.pem"), p("ca.pem")))
}

async fn tls_server(
    dir: &std::path::Path,
) -> Option<(
    SocketAddr,
    Arc<Sink>,
    PathBuf,
    tokio::sync::oneshot::Sender<()>,
)> {
    let (cert, key, ca) = make_cert(dir)?;
    let mut config = receive::ServerConfig::new("gw.test");
    config.tls = Some(receive::load_server_tls(&cert, &key).unwrap());
    let (addr, sink, tx) = serve_sink(config).await;
    Some((addr, sink, ca, tx))
}

/// Our own receive server on loopback, recording what it receives, until `tx` is dropped.
async fn serve_sink(
    config: receive::ServerConfig,
) -> (SocketAddr, Arc<Sink>, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = Arc::new(Sink(Mutex::new(Vec::new())));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(receive::serve(
        listener,
        Arc::new(config),
        Arc::clone(&sink),
        async move {
            let _ = rx.await;
        },
    ));
    (addr, sink, tx)
}

#[tokio::test]
async fn starttls_modes_against_receive_server() {
    let dir = tempfile::tempdir().unwrap();
    let Some((addr, sink, cert, _stop)) = tls_server(dir.path()).await else {
        eprintln!("openssl CLI not available; skipping TLS test");
        return;
    };
    let r = rcpts(&["a@x.test"]);
    // Opportunistic and unverified-required: encrypted, certificate not checked.
    for mode in [TlsMode::Opportunistic, TlsMode::Required { verify: false }] {
        let report = deliver(&hop(addr, mode.clone()), "s@a.test", &r, b"x\r\n").await;
        assert!(report.all_accepted(), "{mode:?}: {report:?}");
    }
    // Verified against the right CA file.
    let mut h = hop(addr, TlsMode::Required { verify: true });
    h.ca_file = Some(cert.clone());
    let report = deliver(&h, "s@a.test", &r, b"x\r\n").await;
    assert!(report.all_accepted(), "{report:?}");
    // Verified against the webpki roots: a self-signed certificate must fail, temporarily.
    let report = deliver(
        &hop(addr, TlsMode::Required { verify: true }),
        "s@a.test",
        &r,
        b"x\r\n",
    )
    .await;
    match &report.per_recipient[0].1 {
        RecipientOutcome::TempFailed(r) => assert_eq!(r.enhanced, "4.7.5"),
        o => panic!("{o:?}"),
    }
    // Disabled: in clear.
    let report = deliver(&hop(addr, TlsMode::Disabled), "s@a.test", &r, b"x\r\n").await;
    assert!(report.all_accepted());

    let got = sink.0.lock().unwrap().clone();
    let tls: Vec<bool> = got.iter().map(|(e, _)| e.tls).collect();
    assert_eq!(tls, vec![true, true, true, false]);
    assert!(got.iter().all(|(_, m)| m == b"x\r\n"));
}

/// A hop offering DSN that insists on `RET=HDRS` in MAIL FROM (any other MAIL is refused).
fn dsn_script(line: &str) -> String {
    match line {
        l if l.starts_with("EHLO") => "250-fake\r\n250-DSN\r\n250 SIZE 1000000\r\n".into(),
        l if l.starts_with("MAIL") && l.split_whitespace().any(|p| p == "RET=HDRS") => {
            "250 2.1.0 ok\r\n".into()
        }
        l if l.starts_with("MAIL") => "555 5.5.4 headers-only bounces expected\r\n".into(),
        l => basic_script(l),
    }
}

#[tokio::test]
async fn decrypted_content_asks_for_headers_only_bounces() {
    let decrypted = Content::Decrypted {
        allow_without_dsn: false,
    };
    let (addr, data) = fake_server(dsn_script).await;
    let r = rcpts(&["a@x.test"]);
    let report = deliver_content(
        &hop(addr, TlsMode::Disabled),
        decrypted,
        "s@a.test",
        &r,
        b"x\r\n",
    )
    .await;
    assert!(report.all_accepted(), "{report:?}");
    assert_eq!(data.lock().unwrap().len(), 1);
    // Ordinary mail keeps the sender's choice (no RET added).
    let (addr, _) = fake_server(dsn_script).await;
    let report = deliver(&hop(addr, TlsMode::Disabled), "s@a.test", &r, b"x\r\n").await;
    assert!(matches!(&report.per_recipient[0].1, RecipientOutcome::PermFailed(r) if r.code == 555));
}

#[tokio::test]
async fn decrypted_content_is_held_back_from_a_hop_without_dsn() {
    let r = rcpts(&["a@x.test", "b@x.test"]);
    let (addr, data) = fake_server(basic_script).await;
    let report = deliver_content(
        &hop(addr, TlsMode::Disabled),
        Content::Decrypted {
            allow_without_dsn: false,
        },
        "s@a.test",
        &r,
        b"secret\r\n",
    )
    .await;
    assert_eq!(report.per_recipient.len(), 2);
    for (_, outcome) in &report.per_recipient {
        match outcome {
            RecipientOutcome::TempFailed(reply) => {
                assert_eq!((reply.code, reply.enhanced.as_str()), (451, "4.3.5"));
                assert!(reply.text.contains("does not offer DSN"), "{reply}");
                assert!(reply.text.contains("allow_next_hop_without_dsn"), "{reply}");
            }
            o => panic!("{o:?}"),
        }
    }
    assert!(data.lock().unwrap().is_empty(), "nothing was sent");
    // The operator may allow it.
    let (addr, data) = fake_server(basic_script).await;
    let report = deliver_content(
        &hop(addr, TlsMode::Disabled),
        Content::Decrypted {
            allow_without_dsn: true,
        },
        "s@a.test",
        &r,
        b"secret\r\n",
    )
    .await;
    assert!(report.all_accepted(), "{report:?}");
    assert_eq!(data.lock().unwrap().len(), 1);
}

// --- ESMTP parameters and limits ------------------------------------------------------

fn dsn_request() -> (MailParams, Vec<RcptParams>) {
    let mail = MailParams {
        size: 0,
        smtputf8: true,
        ret: Some(crate::receive::Ret::Full),
        envid: Some("QQ+2B1".into()),
    };
    let rcpt = vec![
        RcptParams {
            notify: Some(crate::receive::Notify {
                success: true,
                failure: true,
                delay: false,
            }),
            orcpt: Some("rfc822;Bob+40x.test".into()),
        },
        RcptParams::default(),
    ];
    (mail, rcpt)
}

#[tokio::test]
async fn dsn_and_smtputf8_parameters_travel_unchanged() {
    // Our own receive server offers DSN and SMTPUTF8.
    let (addr, sink, _stop) = serve_sink(receive::ServerConfig::new("hop.test")).await;
    let (mail, rcpt) = dsn_request();
    let recipients = rcpts(&["bob@x.test", "josé@bücher.test"]);
    let transfer = Transfer {
        content: Content::Ordinary,
        mail_from: "s@a.test",
        mail: &mail,
        recipients: &recipients,
        rcpt: &rcpt,
        grown_by: None,
        message: "Subject: grüße\r\n\r\nx\r\n".as_bytes(),
    };
    let report = deliver_transfer(&hop(addr, TlsMode::Disabled), &transfer).await;
    assert!(report.all_accepted(), "{report:?}");
    // Decrypted content: RET becomes HDRS, the rest is kept.
    let decrypted = Transfer {
        content: Content::Decrypted {
            allow_without_dsn: false,
        },
        ..transfer
    };
    let report = deliver_transfer(&hop(addr, TlsMode::Disabled), &decrypted).await;
    assert!(report.all_accepted(), "{report:?}");

    let got = sink.0.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let (first, _) = &got[0];
    assert_eq!(first.params.envid.as_deref(), Some("QQ+2B1"));
    assert_eq!(first.params.ret, Some(crate::receive::Ret::Full));
    assert!(first.params.smtputf8);
    assert_eq!(first.rcpt_to, recipients);
    assert_eq!(first.rcpt_params, rcpt);
    let (second, _) = &got[1];
    assert_eq!(second.params.ret, Some(crate::receive::Ret::Hdrs));
    assert_eq!(second.params.envid.as_deref(), Some("QQ+2B1"));
    assert_eq!(second.rcpt_params, rcpt);
}

#[tokio::test]
async fn utf8_mail_is_refused_by_a_hop_without_smtputf8() {
    let (mail, rcpt) = dsn_request();
    let (addr, data) = fake_server(basic_script).await;
    let utf8 = rcpts(&["josé@bücher.test"]);
    let transfer = Transfer {
        content: Content::Ordinary,
        mail_from: "s@a.test",
        mail: &mail,
        recipients: &utf8,
        rcpt: &rcpt,
        grown_by: None,
        message: b"Subject: x\r\n\r\nx\r\n",
    };
    let report = deliver_transfer(&hop(addr, TlsMode::Disabled), &transfer).await;
    match &report.per_recipient[0].1 {
        RecipientOutcome::PermFailed(r) => {
            assert_eq!((r.code, r.enhanced.as_str()), (550, "5.6.7"), "{r}");
            assert!(r.text.contains("does not offer SMTPUTF8"), "{r}");
        }
        o => panic!("{o:?}"),
    }
    assert!(data.lock().unwrap().is_empty());
    // A UTF-8 address needs SMTPUTF8 even when nobody declared it (a notice we originate).
    let notice = |addr| async move {
        deliver(
            &hop(addr, TlsMode::Disabled),
            "",
            &rcpts(&["josé@bücher.test"]),
            b"Subject: x\r\n\r\nx\r\n",
        )
        .await
    };
    let (addr, data) = fake_server(basic_script).await;
    let report = notice(addr).await;
    assert!(
        matches!(&report.per_recipient[0].1, RecipientOutcome::PermFailed(r) if r.enhanced == "5.6.7"),
        "{report:?}"
    );
    assert!(data.lock().unwrap().is_empty());
    let (addr, sink, _stop) = serve_sink(receive::ServerConfig::new("hop.test")).await;
    let report = notice(addr).await;
    assert!(report.all_accepted(), "{report:?}");
    assert!(sink.0.lock().unwrap()[0].0.params.smtputf8);
    // SMTPUTF8 requested but nothing needs it: sent as plain ASCII mail.
    let (addr, data) = fake_server(basic_script).await;
    let ascii = rcpts(&["bob@x.test"]);
    let transfer = Transfer {
        recipients: &ascii,
        ..transfer
    };
    let report = deliver_transfer(&hop(addr, TlsMode::Disabled), &transfer).await;
    assert!(report.all_accepted(), "{report:?}");
    assert_eq!(data.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn over_the_next_hops_size_the_refusal_says_why() {
    // basic_script announces SIZE 1000000.
    let (addr, data) = fake_server(basic_script).await;
    let big = vec![b'a'; 1_150_000];
    let mail = MailParams::default();
    let recipients = rcpts(&["a@x.test", "b@x.test"]);
    let transfer = Transfer {
        content: Content::Ordinary,
        mail_from: "s@a.test",
        mail: &mail,
        recipients: &recipients,
        rcpt: &[],
        grown_by: Some("encryption"),
        message: &big,
    };
    let report = deliver_transfer(&hop(addr, TlsMode::Disabled), &transfer).await;
    assert_eq!(report.per_recipient.len(), 2);
    for (_, outcome) in &report.per_recipient {
        match outcome {
            RecipientOutcome::PermFailed(r) => {
                assert_eq!((r.code, r.enhanced.as_str()), (552, "5.3.4"));
                assert!(
                    r.text.starts_with(
                        "after encryption the message is 1.2 MB; the outgoing limit is 1 MB"
                    ),
                    "{r}"
                );
            }
            o => panic!("{o:?}"),
        }
    }
    assert!(data.lock().unwrap().is_empty(), "nothing was sent");
    // A hop that states no SIZE but refuses at the end of data: the bare 552 is explained.
    let (addr, _) = fake_server(|line| match line {
        "." => "552 5.3.4 Message size exceeds fixed limit\r\n".into(),
        l if l.starts_with("EHLO") => "250 fake\r\n".into(),
        l => basic_script(l),
    })
    .await;
    let report = deliver_transfer(&hop(addr, TlsMode::Disabled), &transfer).await;
    match &report.per_recipient[0].1 {
        RecipientOutcome::PermFailed(r) => {
            assert_eq!((r.code, r.enhanced.as_str()), (552, "5.3.4"));
            assert!(
                r.text.starts_with(
                    "after encryption the message is 1.2 MB, too large for the next hop"
                ),
                "{r}"
            );
            assert!(r.text.contains("Message size exceeds fixed limit"), "{r}");
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(megabytes(11_234_567), "11.2 MB");
    assert_eq!(megabytes(10_240_000), "10.2 MB");
    assert_eq!(megabytes(10_000_000), "10 MB");
    assert_eq!(size_limit(&["SIZE 0".into()]), None);
    assert_eq!(size_limit(&["SIZE".into()]), None);
    assert_eq!(size_limit(&["SIZE 2048".into()]), Some(2048));
}
