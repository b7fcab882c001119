//! ESMTP server side of the gateway: an after-queue content filter in the style of Postfix
//! `content_filter`. The upstream MTA connects, hands over one message at a time and gets the
//! handler's verdict as the answer to DATA, so it keeps (and retries) anything we do not accept.
//!
//! Stages: [`serve`] (listener, session limit, shutdown) → `session` (command loop, pipelining,
//! timeouts) → `data` (dot-unstuffing and the size limit) → [`MessageHandler`]. `tls` holds the
//! STARTTLS helpers.

mod conn;
mod data;
mod limits;
mod params;
mod session;
mod tls;
mod xforward;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config;
pub(crate) use crate::reply::enhanced_matches;
pub use crate::reply::Reply;
pub use limits::SessionLimits;
pub use params::{decode_xtext, MailParams, Notify, RcptParams, Ret};
pub use tls::{load_server_tls, TlsSetupError};
pub use xforward::Forwarded;

/// The SMTP envelope of one received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Reverse path; `""` for the null sender (bounces, DSNs).
    pub mail_from: String,
    /// SIZE, SMTPUTF8 and the DSN parameters of MAIL FROM.
    pub params: MailParams,
    /// Forward paths in the order the client gave them.
    pub rcpt_to: Vec<String>,
    /// The DSN parameters of each RCPT TO, in the order of `rcpt_to`.
    pub rcpt_params: Vec<RcptParams>,
    /// The name the client gave in EHLO/HELO.
    pub helo: String,
    pub client: SocketAddr,
    /// Whether the message arrived over a STARTTLS-protected session.
    pub tls: bool,
    /// The original client, as the upstream MTA reported it with XFORWARD.
    pub forwarded: Forwarded,
}

impl Envelope {
    /// The RCPT parameters given with `rcpt` (the first time it was named).
    pub fn rcpt_params(&self, rcpt: &str) -> Option<&RcptParams> {
        self.rcpt_to
            .iter()
            .position(|r| r == rcpt)
            .and_then(|i| self.rcpt_params.get(i))
    }
}

/// What the gateway does with a received message. The reply becomes the answer to DATA.
pub trait MessageHandler: Send + Sync + 'static {
    fn handle(&self, envelope: Envelope, message: Vec<u8>) -> impl Future<Output = Reply> + Send;

    /// One reply per recipient, in the order of `envelope.rcpt_to` (LMTP answers DATA once
    /// per recipient). By default every recipient gets [`MessageHandler::handle`]'s reply.
    fn handle_each(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> impl Future<Output = Vec<Reply>> + Send {
        async move {
            let count = envelope.rcpt_to.len();
            vec![self.handle(envelope, message).await; count]
        }
    }
}

/// The protocol a listener speaks: the session code is the same, only the greeting command
/// and the answer to DATA differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// ESMTP (RFC 5321): one answer to DATA for all recipients.
    #[default]
    Smtp,
    /// LMTP (RFC 2033): LHLO, and one answer to DATA per recipient, so an upstream MTA retries
    /// only the recipients that failed temporarily.
    Lmtp,
}

impl Protocol {
    /// The name in the greeting.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "ESMTP",
            Protocol::Lmtp => "LMTP",
        }
    }
}

/// Settings of the SMTP server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub protocol: Protocol,
    /// Our name in the greeting and the EHLO reply.
    pub hostname: String,
    /// Largest message accepted, in octets after dot-unstuffing.
    pub max_message_size: usize,
    /// How long to wait for the next command.
    pub idle_timeout: Duration,
    /// How long one step may take once a command is under way: each read of message data,
    /// each write of a reply and the TLS handshake.
    pub command_timeout: Duration,
    /// STARTTLS is offered when set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Concurrent sessions; further connections get `421` and are closed.
    pub max_sessions: usize,
    /// Only these clients may submit mail (and see XFORWARD); others get `554 5.7.1`.
    pub trusted_clients: Vec<crate::cidr::Cidr>,
    /// Session lifetime, DATA rate, commands, recipients, sessions per client.
    pub limits: SessionLimits,
}

impl ServerConfig {
    /// The configuration file's defaults ([`crate::config`]), on plain SMTP.
    pub fn new(hostname: impl Into<String>) -> Self {
        ServerConfig {
            protocol: Protocol::Smtp,
            hostname: hostname.into(),
            max_message_size: config::DEFAULT_MAX_MESSAGE_SIZE,
            idle_timeout: Duration::from_secs(config::DEFAULT_IDLE_TIMEOUT_SECS),
            command_timeout: Duration::from_secs(config::DEFAULT_COMMAND_TIMEOUT_SECS),
            tls: None,
            max_sessions: config::DEFAULT_MAX_SESSIONS,
            trusted_clients: config::default_trusted_clients(),
            limits: SessionLimits::default(),
        }
    }
}

/// Accepts connections on `listener` until `shutdown` completes, then stops accepting, tells
/// idle sessions to close (`421`), lets sessions that are inside a transaction finish, and
/// returns once every session has ended.
pub async fn serve<H: MessageHandler>(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let sessions = Arc::new(Semaphore::new(config.max_sessions.max(1)));
    let per_client = Arc::new(limits::ClientSessions::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = joined {
                    tracing::error!(error = %e, "SMTP session task failed");
                }
            }
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Usually EMFILE/ECONNABORTED: transient. Back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let config = Arc::clone(&config);
                let slot = per_client.acquire(client.ip(), config.limits.max_sessions_per_client);
                match (Arc::clone(&sessions).try_acquire_owned(), slot) {
                    (Ok(permit), Some(slot)) => {
                        let handler = Arc::clone(&handler);
                        let stop = stop_rx.clone();
                        tasks.spawn(async move {
                            session::run(stream, client, &config, &*handler, stop)
                                .instrument(tracing::info_span!("session", %client))
                                .await;
                            drop(permit);
                            drop(slot);
                        });
                    }
                    (_, slot) => {
                        let why = if slot.is_some() { "session limit" } else { "per-client session limit" };
                        tracing::warn!(%client, "{why} reached, refusing connection");
                        tasks.spawn(session::refuse_busy(stream, config));
                    }
                }
            }
        }
    }

    drop(listener);
    let _ = stop_tx.send(true);
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "SMTP session task failed");
        }
    }
    Ok(())
}

/// Runs one session over an already-connected stream, without a listener or session limits:
/// lets the fuzz targets drive the command parser and state machine from bytes in memory.
pub async fn serve_stream<S, H>(stream: S, client: SocketAddr, config: &ServerConfig, handler: &H)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    H: MessageHandler,
{
    // The sender lives until the session ends: a dropped sender would read as "stop".
    let (stop_tx, stop_rx) = watch::channel(false);
    session::run(stream, client, config, handler, stop_rx).await;
    drop(stop_tx);
}

#[cfg(test)]
mod tests {
    //! Session tests over loopback: each test starts its own server on 127.0.0.1:0.

    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;

    use super::*;

    #[derive(Default)]
    struct Recorder {
        got: Mutex<Vec<(Envelope, Vec<u8>)>>,
        reply: Mutex<Option<Reply>>,
    }

    impl MessageHandler for Recorder {
        async fn handle(&self, envelope: Envelope, message: Vec<u8>) -> Reply {
            self.got.lock().unwrap().push((envelope, message));
            self.reply.lock().unwrap().clone().unwrap_or_else(Reply::ok)
        }

        /// Recipients whose local part starts with `temp` fail temporarily.
        async fn handle_each(&self, envelope: Envelope, message: Vec<u8>) -> Vec<Reply> {
            let answers = envelope
                .rcpt_to
                .iter()
                .map(|r| {
                    if r.starts_with("temp") {
                        Reply::temp_fail("4.4.1", format!("{r}: next hop busy"))
                    } else {
                        Reply::ok()
                    }
                })
                .collect();
            self.got.lock().unwrap().push((envelope, message));
            answers
        }
    }

    struct Server {
        addr: SocketAddr,
        handler: Arc<Recorder>,
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
    }

    impl Server {
        async fn start(tweak: impl FnOnce(&mut ServerConfig)) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut config = ServerConfig::new("gw.test");
            config.max_message_size = 1000;
            tweak(&mut config);
            let handler = Arc::new(Recorder::default());
            let (tx, rx) = oneshot::channel();
            let task = tokio::spawn(serve(
                listener,
                Arc::new(config),
                Arc::clone(&handler),
                async move {
                    let _ = rx.await;
                },
            ));
            Server {
                addr,
                handler,
                stop: Some(tx),
                task,
            }
        }

        async fn stop(mut self) {
            if let Some(tx) = self.stop.take() {
                let _ = tx.send(());
            }
            tokio::time::timeout(Duration::from_secs(5), self.task)
                .await
                .expect("server stops")
                .unwrap()
                .unwrap();
        }
    }

    struct Client {
        r: BufReader<OwnedReadHalf>,
        w: OwnedWriteHalf,
    }

    impl Client {
        async fn connect(addr: SocketAddr) -> Client {
            let s = TcpStream::connect(addr).await.unwrap();
            let (r, w) = s.into_split();
            let mut c = Client {
                r: BufReader::new(r),
                w,
            };
            let (code, _) = c.reply().await;
            assert_eq!(code, 220);
            c
        }

        async fn send(&mut self, s: &str) {
            self.w.write_all(s.as_bytes()).await.unwrap();
        }

        /// Reads one (possibly multi-line) reply: code and all text lines.
        async fn reply(&mut self) -> (u16, String) {
            let mut text = String::new();
            loop {
                let mut line = String::new();
                let n = tokio::time::timeout(Duration::from_secs(5), self.r.read_line(&mut line))
                    .await
                    .expect("reply in time")
                    .unwrap();
                assert!(n > 0, "connection closed while waiting for a reply");
                assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
                let code: u16 = line[..3].parse().unwrap();
                text.push_str(&line[4..]);
                if line.as_bytes()[3] == b' ' {
                    return (code, text);
                }
            }
        }

        async fn cmd(&mut self, s: &str) -> (u16, String) {
            self.send(&format!("{s}\r\n")).await;
            self.reply().await
        }

        async fn assert_closed(&mut self) {
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(5), self.r.read(&mut buf))
                .await
                .expect("close in time")
                .unwrap_or(0);
            assert_eq!(n, 0, "expected close, got {:?}", &buf[..n]);
        }
    }

    #[tokio::test]
    async fn full_transaction_with_dot_unstuffing() {
        let server = Server::start(|_| {}).await;
        let mut c = Client::connect(server.addr).await;
        let (code, text) = c.cmd("EHLO client.test").await;
        assert_eq!(code, 250);
        for cap in ["PIPELINING", "SIZE 1000", "8BITMIME", "ENHANCEDSTATUSCODES"] {
            assert!(text.contains(cap), "{cap} missing in {text}");
        }
        assert!(!text.contains("STARTTLS"));
        assert_eq!(
            c.cmd("MAIL FROM:<a@ext.test> BODY=8BITMIME SIZE=100")
                .await
                .0,
            250
        );
        assert_eq!(c.cmd("RCPT TO:<b@int.test>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<C@int.test>").await.0, 250);
        assert_eq!(c.cmd("DATA").await.0, 354);
        c.send("Subject: hi\r\n\r\n..dot\r\nline\r\n.\r\n").await;
        let (code, text) = c.reply().await;
        // The queue id names this message in our log (see msglog).
        assert_eq!(code, 250);
        assert!(text.starts_with("2.0.0 Ok: queued as "), "{text}");
        assert_eq!(c.cmd("QUIT").await.0, 221);
        c.assert_closed().await;

        let got = server.handler.got.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        let (env, msg) = &got[0];
        assert_eq!(env.mail_from, "a@ext.test");
        assert_eq!(env.rcpt_to, vec!["b@int.test", "C@int.test"]);
        assert_eq!(env.helo, "client.test");
        assert!(!env.tls);
        assert_eq!(msg, b"Subject: hi\r\n\r\n.dot\r\nline\r\n");
        server.stop().await;
    }

    #[tokio::test]
    async fn pipelined_commands_answered_in_order() {
        let server = Server::start(|_| {}).await;
        *server.handler.reply.lock().unwrap() =
            Some(Reply::temp_fail("4.4.1", "next hop down\nretry later"));
        let mut c = Client::connect(server.addr).await;
        c.send(
        "EHLO x.test\r\nMAIL FROM:<>\r\nRCPT TO:<a@b.test>\r\nRCPT TO:<bad>\r\nNOOP\r\nDATA\r\n",
    )
    .await;
        assert_eq!(c.reply().await.0, 250);
        assert_eq!(c.reply().await.0, 250);
        assert_eq!(c.reply().await.0, 250);
        assert_eq!(c.reply().await.0, 553);
        assert_eq!(c.reply().await.0, 250);
        assert_eq!(c.reply().await.0, 354);
        c.send("x\r\n.\r\nRSET\r\nVRFY someone\r\nQUIT\r\n").await;
        let (code, text) = c.reply().await;
        assert_eq!(code, 451);
        assert_eq!(text, "4.4.1 next hop down\r\n4.4.1 retry later\r\n");
        assert_eq!(c.reply().await.0, 250);
        assert_eq!(c.reply().await.0, 252);
        assert_eq!(c.reply().await.0, 221);
        let got = server.handler.got.lock().unwrap().clone();
        assert_eq!(got[0].0.mail_from, "");
        assert_eq!(got[0].0.rcpt_to, vec!["a@b.test"]);
        server.stop().await;
    }

    #[tokio::test]
    async fn size_limits() {
        let server = Server::start(|_| {}).await;
        let mut c = Client::connect(server.addr).await;
        c.cmd("EHLO x.test").await;
        let (code, text) = c.cmd("MAIL FROM:<a@b.test> SIZE=1001").await;
        assert_eq!(code, 552);
        assert!(text.starts_with("5.3.4"));
        let (code, _) = c
            .cmd("MAIL FROM:<a@b.test> SIZE=99999999999999999999999999")
            .await;
        assert_eq!(code, 552);
        assert_eq!(c.cmd("MAIL FROM:<a@b.test>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<c@d.test>").await.0, 250);
        assert_eq!(c.cmd("DATA").await.0, 354);
        // Far more than the limit; the server must keep reading until the dot.
        let line = format!("{}\r\n", "y".repeat(998));
        for _ in 0..200 {
            c.send(&line).await;
        }
        c.send(".\r\n").await;
        let (code, text) = c.reply().await;
        assert_eq!(code, 552);
        assert!(text.starts_with("5.3.4"));
        // The session goes on, without a transaction.
        assert_eq!(c.cmd("NOOP").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<c@d.test>").await.0, 503);
        assert!(server.handler.got.lock().unwrap().is_empty());
        server.stop().await;
    }

    #[tokio::test]
    async fn sequence_errors_and_bad_command_limit() {
        let server = Server::start(|_| {}).await;
        let mut c = Client::connect(server.addr).await;
        let (code, text) = c.cmd("MAIL FROM:<a@b.test>").await;
        assert_eq!(code, 503);
        assert!(text.starts_with("5.5.1"));
        c.cmd("HELO x.test").await;
        assert_eq!(c.cmd("RCPT TO:<a@b.test>").await.0, 503);
        assert_eq!(c.cmd("DATA").await.0, 503);
        assert_eq!(c.cmd("MAIL FROM:<a@b.test>").await.0, 250);
        assert_eq!(c.cmd("MAIL FROM:<a@b.test>").await.0, 503);
        assert_eq!(c.cmd("DATA").await.0, 503);
        assert_eq!(c.cmd("RSET").await.0, 250);
        assert_eq!(c.cmd("MAIL FROM:<a@b.test> BODY=BINARYMIME").await.0, 555);
        let (code, text) = c.cmd("FOOBAR").await;
        assert_eq!(code, 500);
        assert!(text.starts_with("5.5.2"));
        assert_eq!(c.cmd("EHLO").await.0, 501);
        assert_eq!(c.cmd("STARTTLS").await.0, 502);
        // Ten errors in all: the tenth is followed by 421 and the close.
        c.send("BAD\r\n").await;
        assert_eq!(c.reply().await.0, 500);
        let (code, text) = c.reply().await;
        assert_eq!(code, 421);
        assert!(text.starts_with("4.7.0"));
        c.assert_closed().await;
        server.stop().await;
    }

    #[tokio::test]
    async fn overlong_command_line_is_refused_without_buffering() {
        let server = Server::start(|_| {}).await;
        let mut c = Client::connect(server.addr).await;
        let long = format!("NOOP {}\r\n", "z".repeat(100_000));
        c.send(&long).await;
        let (code, text) = c.reply().await;
        assert_eq!(code, 500);
        assert!(text.contains("too long"));
        assert_eq!(c.cmd("NOOP").await.0, 250);
        server.stop().await;
    }

    #[tokio::test]
    async fn idle_timeout_closes_with_421() {
        let server = Server::start(|c| c.idle_timeout = Duration::from_millis(200)).await;
        let mut c = Client::connect(server.addr).await;
        let (code, text) = c.reply().await;
        assert_eq!(code, 421);
        assert!(text.starts_with("4.4.2"));
        c.assert_closed().await;
        server.stop().await;
    }

    #[tokio::test]
    async fn data_timeout_closes() {
        let server = Server::start(|c| c.command_timeout = Duration::from_millis(200)).await;
        let mut c = Client::connect(server.addr).await;
        c.cmd("EHLO x.test").await;
        c.cmd("MAIL FROM:<a@b.test>").await;
        c.cmd("RCPT TO:<c@d.test>").await;
        assert_eq!(c.cmd("DATA").await.0, 354);
        c.send("partial line").await;
        assert_eq!(c.reply().await.0, 421);
        c.assert_closed().await;
        assert!(server.handler.got.lock().unwrap().is_empty());
        server.stop().await;
    }

    #[tokio::test]
    async fn session_limit_and_shutdown() {
        let server = Server::start(|c| c.max_sessions = 1).await;
        let mut first = Client::connect(server.addr).await;
        let mut second = TcpStream::connect(server.addr).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf.starts_with(b"421 4.7.0"), "{buf:?}");
        assert_eq!(first.cmd("NOOP").await.0, 250);
        // Shutdown: the idle session is told and closed, and serve returns.
        let addr = server.addr;
        server.stop().await;
        let (code, _) = first.reply().await;
        assert_eq!(code, 421);
        first.assert_closed().await;
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn untrusted_clients_cannot_submit_or_forward() {
        let server = Server::start(|c| {
            c.trusted_clients = vec!["10.0.0.0/8".parse().unwrap()];
        })
        .await;
        let mut c = Client::connect(server.addr).await;
        let (code, ehlo) = c.cmd("EHLO outsider.example").await;
        assert_eq!(code, 250);
        assert!(!ehlo.contains("XFORWARD"), "{ehlo}");
        let (code, text) = c.cmd("XFORWARD LOGIN=boss").await;
        assert_eq!(code, 550, "{text}");
        let (code, text) = c.cmd("MAIL FROM:<user@agency.example>").await;
        assert_eq!(code, 554, "{text}");
        assert!(text.contains("5.7.1 client address 127.0.0.1"), "{text}");
        assert_eq!(c.cmd("QUIT").await.0, 221);
        assert!(server.handler.got.lock().unwrap().is_empty());
        server.stop().await;
    }

    // Issue 11: resource limits, each with a tiny value.

    #[tokio::test]
    async fn a_session_ends_at_its_lifetime_however_busy() {
        let server = Server::start(|c| {
            c.limits.max_session_time = Duration::from_millis(800);
            c.idle_timeout = Duration::from_secs(10);
        })
        .await;
        let mut c = Client::connect(server.addr).await;
        assert_eq!(c.cmd("EHLO x.test").await.0, 250);
        let started = std::time::Instant::now();
        let closed_by = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (code, text) = c.cmd("NOOP").await;
            if code != 250 {
                break (code, text);
            }
            assert!(started.elapsed() < Duration::from_secs(3), "never ended");
        };
        assert_eq!(closed_by.0, 421);
        assert!(closed_by.1.contains("session time"), "{}", closed_by.1);
        c.assert_closed().await;
        server.stop().await;
    }

    #[tokio::test]
    async fn a_one_byte_data_slowloris_is_cut_off() {
        let server = Server::start(|c| {
            c.command_timeout = Duration::from_millis(500);
            c.limits.min_data_rate = 1000;
        })
        .await;
        let mut c = Client::connect(server.addr).await;
        assert_eq!(c.cmd("EHLO x.test").await.0, 250);
        assert_eq!(c.cmd("MAIL FROM:<a@ext.test>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<b@int.test>").await.0, 250);
        assert_eq!(c.cmd("DATA").await.0, 354);
        // One byte every 100 ms: each read is well within the command timeout, but the rate is
        // 10 bytes a second.
        let started = std::time::Instant::now();
        let mut sent = 0;
        let (code, text) = loop {
            if c.w.write_all(b"x").await.is_err() {
                break c.reply().await;
            }
            sent += 1;
            let mut line = String::new();
            match tokio::time::timeout(Duration::from_millis(100), c.r.read_line(&mut line)).await {
                Ok(_) => break (line[..3].parse().unwrap(), line),
                Err(_) => assert!(started.elapsed() < Duration::from_secs(5), "never cut off"),
            }
        };
        assert_eq!(code, 421, "{text}");
        assert!(text.contains("too slowly"), "{text}");
        assert!(sent < 30, "{sent} bytes");
        assert!(server.handler.got.lock().unwrap().is_empty());
        server.stop().await;
    }

    #[tokio::test]
    async fn xforward_reaches_the_handler_for_one_transaction() {
        let server = Server::start(|_| {}).await;
        let mut c = Client::connect(server.addr).await;
        assert_eq!(c.cmd("XFORWARD LOGIN=early").await.0, 503);
        let (code, ehlo) = c.cmd("EHLO mta.agency.example").await;
        assert_eq!(code, 250);
        assert!(
            ehlo.contains("XFORWARD NAME ADDR PROTO HELO LOGIN"),
            "{ehlo}"
        );
        assert_eq!(
            c.cmd("XFORWARD NAME=laptop.agency.example ADDR=192.0.2.7 PROTO=ESMTP")
                .await
                .0,
            250
        );
        assert_eq!(c.cmd("XFORWARD HELO=laptop LOGIN=alice").await.0, 250);
        assert_eq!(c.cmd("XFORWARD COLOUR=blue").await.0, 501);
        assert_eq!(c.cmd("MAIL FROM:<alice@agency.example>").await.0, 250);
        assert_eq!(c.cmd("XFORWARD LOGIN=mallory").await.0, 503);
        assert_eq!(c.cmd("RCPT TO:<bob@partner.example>").await.0, 250);
        assert_eq!(c.cmd("DATA").await.0, 354);
        assert_eq!(c.cmd("Subject: one\r\n\r\nbody\r\n.").await.0, 250);
        // The next transaction starts without them.
        assert_eq!(c.cmd("MAIL FROM:<alice@agency.example>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<bob@partner.example>").await.0, 250);
        assert_eq!(c.cmd("DATA").await.0, 354);
        assert_eq!(c.cmd("Subject: two\r\n\r\nbody\r\n.").await.0, 250);
        assert_eq!(c.cmd("QUIT").await.0, 221);
        let got = server.handler.got.lock().unwrap().clone();
        assert_eq!(got.len(), 2);
        let first = &got[0].0.forwarded;
        assert_eq!(first.name.as_deref(), Some("laptop.agency.example"));
        assert_eq!(first.addr.as_deref(), Some("192.0.2.7"));
        assert_eq!(first.proto.as_deref(), Some("ESMTP"));
        assert_eq!(first.helo.as_deref(), Some("laptop"));
        assert_eq!(first.login.as_deref(), Some("alice"));
        assert_eq!(got[1].0.forwarded, Forwarded::default());
        server.stop().await;
    }

    #[tokio::test]
    async fn commands_without_a_message_are_limited() {
        let server = Server::start(|c| c.limits.max_commands_per_message = 5).await;
        let mut c = Client::connect(server.addr).await;
        assert_eq!(c.cmd("EHLO x.test").await.0, 250);
        assert_eq!(c.cmd("MAIL FROM:<a@ext.test>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<b@int.test>").await.0, 250);
        assert_eq!(c.cmd("DATA").await.0, 354);
        c.send("Subject: hi\r\n\r\nhello\r\n.\r\n").await;
        assert_eq!(c.reply().await.0, 250);
        // The count starts again after a message: five more commands, then the sixth ends it.
        for _ in 0..5 {
            assert_eq!(c.cmd("RSET").await.0, 250);
        }
        let (code, text) = c.cmd("NOOP").await;
        assert_eq!(code, 421, "{text}");
        assert!(text.contains("too many commands"), "{text}");
        c.assert_closed().await;
        server.stop().await;
    }

    #[tokio::test]
    async fn sessions_per_client_address_are_limited() {
        let server = Server::start(|c| c.limits.max_sessions_per_client = 2).await;
        let first = Client::connect(server.addr).await;
        let _second = Client::connect(server.addr).await;
        let mut third = TcpStream::connect(server.addr).await.unwrap();
        let mut greeting = String::new();
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        greeting.push_str(&String::from_utf8_lossy(&buf[..n]));
        assert!(greeting.starts_with("421"), "{greeting}");
        // A slot comes back when a session ends.
        drop(first);
        let started = std::time::Instant::now();
        loop {
            let mut s = TcpStream::connect(server.addr).await.unwrap();
            let n = s.read(&mut buf).await.unwrap();
            if buf[..n].starts_with(b"220") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "slot never freed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn recipients_per_message_are_limited() {
        let server = Server::start(|c| c.limits.max_recipients = 2).await;
        let mut c = Client::connect(server.addr).await;
        assert_eq!(c.cmd("EHLO x.test").await.0, 250);
        assert_eq!(c.cmd("MAIL FROM:<a@ext.test>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<b@int.test>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<c@int.test>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<d@int.test>").await.0, 452);
        server.stop().await;
    }

    #[tokio::test]
    async fn dsn_and_smtputf8_parameters_reach_the_handler() {
        let server = Server::start(|_| {}).await;
        let mut c = Client::connect(server.addr).await;
        let (code, ehlo) = c.cmd("EHLO x.test").await;
        assert_eq!(code, 250);
        assert!(ehlo.lines().any(|l| l == "DSN"), "{ehlo}");
        assert!(ehlo.lines().any(|l| l == "SMTPUTF8"), "{ehlo}");
        assert_eq!(
            c.cmd("MAIL FROM:<a@b.test> RET=FULL ENVID=id+2B1 SMTPUTF8 BODY=8BITMIME")
                .await
                .0,
            250
        );
        assert_eq!(
            c.cmd("RCPT TO:<c@d.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;C+40d.test")
                .await
                .0,
            250
        );
        assert_eq!(
            c.cmd("RCPT TO:<José@bücher.test> NOTIFY=NEVER").await.0,
            250
        );
        assert_eq!(c.cmd("DATA").await.0, 354);
        assert_eq!(c.cmd("Subject: x\r\n\r\nbody\r\n.").await.0, 250);
        // Without SMTPUTF8 a UTF-8 address is refused as RFC 6531 says; ASCII is fine.
        assert_eq!(c.cmd("MAIL FROM:<a@b.test>").await.0, 250);
        let (code, text) = c.cmd("RCPT TO:<José@bücher.test>").await;
        assert_eq!((code, &text[..5]), (553, "5.6.7"), "{text}");
        let (code, text) = c.cmd("RCPT TO:<c@d.test> NOTIFY=SOMETIMES").await;
        assert_eq!((code, &text[..5]), (501, "5.5.4"), "{text}");
        assert_eq!(c.cmd("QUIT").await.0, 221);

        let got = server.handler.got.lock().unwrap().clone();
        let (envelope, _) = &got[0];
        assert!(envelope.params.smtputf8);
        assert_eq!(envelope.params.ret, Some(Ret::Full));
        assert_eq!(envelope.params.envid.as_deref(), Some("id+2B1"));
        assert_eq!(envelope.rcpt_to, ["c@d.test", "José@bücher.test"]);
        let first = envelope.rcpt_params("c@d.test").unwrap();
        assert_eq!(first.notify.unwrap().as_param(), "SUCCESS,FAILURE");
        assert_eq!(first.orcpt.as_deref(), Some("rfc822;C+40d.test"));
        assert!(envelope
            .rcpt_params("José@bücher.test")
            .unwrap()
            .notify
            .unwrap()
            .never());
        server.stop().await;
    }

    #[tokio::test]
    async fn lmtp_answers_each_recipient_after_data() {
        let server = Server::start(|c| c.protocol = Protocol::Lmtp).await;
        let mut c = Client::connect(server.addr).await;
        let (code, text) = c.cmd("EHLO x.test").await;
        assert_eq!((code, &text[..5]), (500, "5.5.1"), "{text}");
        let (code, text) = c.cmd("LHLO x.test").await;
        assert_eq!(code, 250);
        assert!(text.contains("PIPELINING") && text.contains("ENHANCEDSTATUSCODES"));
        assert_eq!(c.cmd("MAIL FROM:<a@b.test>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<ok@d.test>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<temp@d.test>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<ok2@d.test>").await.0, 250);
        assert_eq!(c.cmd("DATA").await.0, 354);
        let (first, _) = c.cmd("Subject: x\r\n\r\nbody\r\n.").await;
        let (second, text) = c.reply().await;
        let (third, _) = c.reply().await;
        assert_eq!((first, second, third), (250, 451, 250));
        assert!(text.contains("temp@d.test: next hop busy"), "{text}");
        // Over the size limit: still one answer per recipient.
        assert_eq!(c.cmd("MAIL FROM:<a@b.test>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<ok@d.test>").await.0, 250);
        assert_eq!(c.cmd("RCPT TO:<ok2@d.test>").await.0, 250);
        assert_eq!(c.cmd("DATA").await.0, 354);
        c.send(&format!("{}\r\n", "y".repeat(998)).repeat(3)).await;
        assert_eq!(c.cmd(".").await.0, 552);
        assert_eq!(c.reply().await.0, 552);
        assert_eq!(c.cmd("NOOP").await.0, 250);
        assert_eq!(server.handler.got.lock().unwrap().len(), 1);
        server.stop().await;

        // SMTP refuses LHLO.
        let server = Server::start(|_| {}).await;
        let mut c = Client::connect(server.addr).await;
        assert_eq!(c.cmd("LHLO x.test").await.0, 500);
        server.stop().await;
    }
}
