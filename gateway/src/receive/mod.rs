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

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

pub use limits::SessionLimits;
pub use params::{decode_xtext, MailParams, Notify, RcptParams, Ret};
pub use session::{valid_address, valid_domain, valid_utf8_address};
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

/// An SMTP reply: code, enhanced status code (RFC 3463, may be empty) and text, which may
/// span several lines (separated by `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: String,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, enhanced: impl Into<String>, text: impl Into<String>) -> Self {
        Reply {
            code,
            enhanced: enhanced.into(),
            text: text.into(),
        }
    }

    /// `250 2.0.0 OK`.
    pub fn ok() -> Self {
        Reply::new(250, "2.0.0", "OK")
    }

    /// `250 2.0.0 <text>`.
    pub fn ok_with(text: impl Into<String>) -> Self {
        Reply::new(250, "2.0.0", text)
    }

    /// `451 <enhanced> <text>`: the client keeps the message and retries.
    pub fn temp_fail(enhanced: impl Into<String>, text: impl Into<String>) -> Self {
        Reply::new(451, enhanced, text)
    }

    /// `550 <enhanced> <text>`: the client bounces the message.
    pub fn perm_fail(enhanced: impl Into<String>, text: impl Into<String>) -> Self {
        Reply::new(550, enhanced, text)
    }

    pub fn is_success(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The reply as it goes on the wire (CRLF line ends, `code-` continuation lines).
    ///
    /// Anything a handler might get wrong (a code outside 2xx–5xx, an enhanced code of the
    /// wrong class, control characters, over-long lines) is repaired here, because an invalid
    /// reply would make the upstream MTA treat the session as broken.
    pub fn to_wire(&self) -> String {
        let (code, enhanced, text) = if (200..600).contains(&self.code) {
            (self.code, self.enhanced.as_str(), self.text.as_str())
        } else {
            (
                451,
                "4.3.0",
                "Internal error: invalid reply from message handler",
            )
        };
        let enhanced = if enhanced_matches(code, enhanced) {
            enhanced
        } else {
            ""
        };
        let mut lines: Vec<String> = Vec::new();
        for raw in text.split('\n') {
            let clean: String = raw
                .trim_end_matches('\r')
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            // RFC 5321 limits a reply line to 512 octets; split long text at char boundaries.
            let mut rest = clean.as_str();
            loop {
                if rest.len() <= 400 {
                    lines.push(rest.to_string());
                    break;
                }
                let mut cut = 400;
                while !rest.is_char_boundary(cut) {
                    cut -= 1;
                }
                lines.push(rest[..cut].to_string());
                rest = &rest[cut..];
            }
        }
        let mut out = String::new();
        let last = lines.len().saturating_sub(1);
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.push_str(&code.to_string());
            out.push(sep);
            if !enhanced.is_empty() {
                out.push_str(enhanced);
                if !line.is_empty() {
                    out.push(' ');
                }
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if !self.enhanced.is_empty() {
            write!(f, " {}", self.enhanced)?;
        }
        let text = self.text.replace(['\r', '\n'], " ");
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

/// Whether `enhanced` is a well-formed RFC 3463 code of the same class as `code`.
pub(crate) fn enhanced_matches(code: u16, enhanced: &str) -> bool {
    let mut parts = enhanced.split('.');
    let (Some(class), Some(subject), Some(detail), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    class.len() == 1
        && class.as_bytes()[0] == b'0' + (code / 100) as u8
        && digits(subject, 3)
        && digits(detail, 3)
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
    /// Defaults suitable for tests and `make run`.
    pub fn new(hostname: impl Into<String>) -> Self {
        ServerConfig {
            protocol: Protocol::Smtp,
            hostname: hostname.into(),
            max_message_size: 50 * 1024 * 1024,
            idle_timeout: Duration::from_secs(120),
            command_timeout: Duration::from_secs(60),
            tls: None,
            max_sessions: 100,
            trusted_clients: crate::config::default_trusted_clients(),
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
mod tests;
