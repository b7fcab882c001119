//! SMTP client that hands a processed message to the next hop, with a per-recipient result.
//!
//! Not lettre: it appends its own `CRLF . CRLF`, which changes the relayed bytes. Here the
//! message goes out exactly as given, except that line ends are made CRLF (a bare LF or CR
//! on the wire is what lenient servers misread as end-of-data: "SMTP smuggling") and lines
//! starting with a dot are dot-stuffed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{
    EhloResponse, Error as ProtoError, Response, EXT_DSN, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8,
    EXT_START_TLS,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::receive::{MailParams, RcptParams, Reply};

mod pool;
mod tls;

use pool::Pool;
use tls::TlsError;

/// How STARTTLS is used towards the next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// Never STARTTLS (a local hop that offers broken TLS).
    Disabled,
    /// STARTTLS when offered, certificate not checked; if the handshake fails the message is
    /// sent again in clear over a new connection (as Postfix `smtp_tls_security_level = may`).
    Opportunistic,
    /// STARTTLS must succeed or the delivery fails temporarily. With `verify`, the
    /// certificate must chain to the configured CA file (or the webpki roots) and match
    /// the host name.
    Required { verify: bool },
}

#[derive(Debug, Clone)]
pub struct NextHop {
    /// `host:port` (`[v6addr]:port` for IPv6).
    pub address: String,
    /// Our name in EHLO.
    pub helo_name: String,
    pub tls: TlsMode,
    /// Limit for the connection and for each reply we wait for.
    pub timeout: Duration,
    /// PEM trust anchors for `Required { verify: true }` instead of the webpki roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientOutcome {
    Accepted,
    TempFailed(Reply),
    PermFailed(Reply),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub per_recipient: Vec<(String, RecipientOutcome)>,
}

impl DeliveryReport {
    fn all(recipients: &[String], outcome: RecipientOutcome) -> Self {
        DeliveryReport {
            per_recipient: recipients
                .iter()
                .map(|r| (r.clone(), outcome.clone()))
                .collect(),
        }
    }

    /// Whether every recipient was accepted.
    pub fn all_accepted(&self) -> bool {
        self.per_recipient
            .iter()
            .all(|(_, o)| *o == RecipientOutcome::Accepted)
    }

    /// Whether any recipient failed temporarily.
    pub fn any_temp_failed(&self) -> bool {
        self.per_recipient
            .iter()
            .any(|(_, o)| matches!(o, RecipientOutcome::TempFailed(_)))
    }
}

/// Most bytes one reply from a next hop may take, all its lines together.
const MAX_REPLY_BYTES: usize = 16 * 1024;

/// Why an attempt ended before the transaction completed.
enum Abort {
    /// Every recipient still pending gets this temporary failure.
    Temp(Reply),
    /// The connection broke or timed out (also a temporary failure; on a reused connection,
    /// before the message was sent, the reason to try once more on a fresh one).
    Lost(Reply),
    /// Every recipient still pending gets this permanent failure (MAIL FROM refused).
    Perm(Reply),
    /// Opportunistic TLS failed: try again in clear.
    RetryPlain(String),
}

fn temp(enhanced: &str, text: impl Into<String>) -> Reply {
    Reply::new(451, enhanced, text)
}

/// What a relayed message holds, as far as the next hop's bounces are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Content {
    #[default]
    Ordinary,
    /// Mail we decrypted. A bounce that quotes it would carry the plaintext back to the
    /// (external) sender, past any content filter: the next hop is asked for headers-only
    /// bounces (`RET=HDRS`, RFC 3461), and a hop that does not offer DSN gets the message only
    /// when `allow_without_dsn` (`[inbound] allow_next_hop_without_dsn`).
    Decrypted { allow_without_dsn: bool },
}

/// One transaction for the next hop: the envelope with the ESMTP parameters the upstream
/// client gave, and the message.
#[derive(Debug, Clone, Copy)]
pub struct Transfer<'a> {
    pub content: Content,
    pub mail_from: &'a str,
    /// ENVID, RET and SMTPUTF8 of the original MAIL FROM (SIZE and BODY are recomputed).
    pub mail: &'a MailParams,
    pub recipients: &'a [String],
    /// NOTIFY and ORCPT, in the order of `recipients` (missing entries: none given).
    pub rcpt: &'a [RcptParams],
    /// What made the message larger than it arrived ("encryption"), for a size refusal.
    pub grown_by: Option<&'static str>,
    pub message: &'a [u8],
}

/// Delivers `message` to `recipients` through `hop`. Never fails as a whole: every
/// recipient gets an outcome, and anything that goes wrong with the connection is a
/// temporary failure with the reason.
pub async fn deliver(
    hop: &NextHop,
    mail_from: &str,
    recipients: &[String],
    message: &[u8],
) -> DeliveryReport {
    deliver_content(hop, Content::Ordinary, mail_from, recipients, message).await
}

/// [`deliver`], for a message whose [`Content`] decides what the next hop must offer.
pub async fn deliver_content(
    hop: &NextHop,
    content: Content,
    mail_from: &str,
    recipients: &[String],
    message: &[u8],
) -> DeliveryReport {
    let mail = MailParams::default();
    let transfer = Transfer {
        content,
        mail_from,
        mail: &mail,
        recipients,
        rcpt: &[],
        grown_by: None,
        message,
    };
    deliver_transfer(hop, &transfer).await
}

/// [`deliver`] with everything a [`Transfer`] carries. An idle connection to the hop is
/// reused when there is one (see [`pool`]).
pub async fn deliver_transfer(hop: &NextHop, transfer: &Transfer<'_>) -> DeliveryReport {
    let recipients = transfer.recipients;
    if recipients.is_empty() {
        return DeliveryReport {
            per_recipient: Vec::new(),
        };
    }
    if let Some(session) = Pool::global().take(hop) {
        match reuse(hop, session, transfer).await {
            Reused::Done(result) => return conclude(hop, recipients, result),
            Reused::Stale(why) => {
                // Nothing of this message reached the hop: it goes once more, on a new
                // connection, so it is neither lost nor delivered twice.
                tracing::debug!(hop = %hop.address, %why, "pooled connection unusable, opening a new one");
            }
        }
    }
    let mut use_tls = hop.tls != TlsMode::Disabled;
    loop {
        let result = match open(hop, use_tls).await {
            Ok(mut session) => {
                let result = session.transaction(transfer, Reset::No).await;
                keep_unless_lost(hop, session, &result);
                result
            }
            Err(abort) => Err(abort),
        };
        match result {
            Err(Abort::RetryPlain(why)) if use_tls => {
                tracing::info!(hop = %hop.address, %why, "opportunistic TLS failed, retrying in clear");
                use_tls = false;
            }
            result => return conclude(hop, recipients, result),
        }
    }
}

enum Reused {
    Done(Result<DeliveryReport, Abort>),
    /// The connection failed before any of the message was sent.
    Stale(Reply),
}

/// One transaction on a pooled connection, after `RSET`.
async fn reuse(hop: &NextHop, mut session: Session, transfer: &Transfer<'_>) -> Reused {
    let result = session.transaction(transfer, Reset::First).await;
    let stale = match &result {
        Err(Abort::Lost(r)) if !session.payload_sent => Some(r.clone()),
        // 421: the hop closes the connection (an idle timeout on its side).
        Err(Abort::Temp(r)) if r.code == 421 && !session.payload_sent => Some(r.clone()),
        _ => None,
    };
    if let Some(why) = stale {
        return Reused::Stale(why);
    }
    keep_unless_lost(hop, session, &result);
    Reused::Done(result)
}

/// Hands `session` back to the pool after an exchange that left it in a known state.
fn keep_unless_lost(hop: &NextHop, session: Session, result: &Result<DeliveryReport, Abort>) {
    if !matches!(result, Err(Abort::Lost(_))) {
        Pool::global().put(hop, session);
    }
}

/// The per-recipient report of an attempt that ended with `result`.
fn conclude(
    hop: &NextHop,
    recipients: &[String],
    result: Result<DeliveryReport, Abort>,
) -> DeliveryReport {
    match result {
        Ok(report) => report,
        Err(Abort::Temp(r) | Abort::Lost(r)) => {
            tracing::warn!(hop = %hop.address, reply = %r, "delivery failed temporarily");
            DeliveryReport::all(recipients, RecipientOutcome::TempFailed(r))
        }
        Err(Abort::Perm(r)) => DeliveryReport::all(recipients, RecipientOutcome::PermFailed(r)),
        Err(Abort::RetryPlain(why)) => {
            DeliveryReport::all(recipients, RecipientOutcome::TempFailed(temp("4.4.2", why)))
        }
    }
}

/// Either side of STARTTLS.
pub(super) trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}
pub(super) type Stream = Box<dyn AsyncStream>;

struct Client {
    io: BufReader<Stream>,
    hop: String,
    timeout: Duration,
    /// The hop answered 421: it is closing the connection.
    closing: bool,
}

impl Client {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), Abort> {
        let w = async {
            self.io.get_mut().write_all(bytes).await?;
            self.io.get_mut().flush().await
        };
        match tokio::time::timeout(self.timeout, w).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Abort::Lost(temp(
                "4.4.2",
                format!("connection to next hop {} lost: {e}", self.hop),
            ))),
            Err(_) => Err(Abort::Lost(temp(
                "4.4.2",
                format!("timeout sending to next hop {}", self.hop),
            ))),
        }
    }

    async fn read_reply(&mut self, after: &str) -> Result<Reply, Abort> {
        Ok(self.read_reply_raw(after).await?.0)
    }

    /// The next reply, with its bytes as they came (EHLO keywords are parsed from them).
    async fn read_reply_raw(&mut self, after: &str) -> Result<(Reply, Vec<u8>), Abort> {
        match tokio::time::timeout(self.timeout, read_reply(&mut self.io)).await {
            Ok(Ok((r, raw))) => {
                self.closing |= r.code == 421;
                Ok((r, raw))
            }
            Ok(Err(e)) => Err(Abort::Lost(temp(
                "4.4.2",
                format!("next hop {} failed after {after}: {e}", self.hop),
            ))),
            Err(_) => Err(Abort::Lost(temp(
                "4.4.2",
                format!("timeout waiting for next hop {} after {after}", self.hop),
            ))),
        }
    }

    async fn command(&mut self, line: &str, name: &str) -> Result<Reply, Abort> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply(name).await
    }

    /// EHLO, falling back to HELO (no extensions then).
    async fn hello(&mut self, helo_name: &str) -> Result<Capabilities, Abort> {
        self.send(format!("EHLO {helo_name}\r\n").as_bytes())
            .await?;
        let (r, raw) = self.read_reply_raw("EHLO").await?;
        if r.code == 250 {
            return Ok(Capabilities::from_ehlo(&self.hop, &raw));
        }
        let r = self.command(&format!("HELO {helo_name}"), "HELO").await?;
        if r.code == 250 {
            Ok(Capabilities::default())
        } else {
            Err(Abort::Temp(hop_refused(&self.hop, "HELO", &r)))
        }
    }
}

/// The EHLO extensions the relay acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Capabilities {
    starttls: bool,
    dsn: bool,
    smtputf8: bool,
    /// RFC 2920: the envelope commands go in one write, their replies are read after.
    pipelining: bool,
    /// The hop's SIZE limit; `None` when it states none (or 0).
    size: Option<usize>,
}

impl Capabilities {
    /// From a `250` EHLO reply. A reply whose keywords cannot be parsed counts as offering
    /// no extension (so no DSN, SMTPUTF8 or STARTTLS is relied on).
    fn from_ehlo(hop: &str, raw: &[u8]) -> Self {
        match EhloResponse::parse(&mut raw.iter()) {
            Ok(ehlo) => Capabilities {
                starttls: ehlo.has_capability(EXT_START_TLS),
                dsn: ehlo.has_capability(EXT_DSN),
                smtputf8: ehlo.has_capability(EXT_SMTP_UTF8),
                pipelining: ehlo.has_capability(EXT_PIPELINING),
                size: Some(ehlo.size).filter(|n| *n > 0 && ehlo.has_capability(EXT_SIZE)),
            },
            Err(e) => {
                tracing::warn!(%hop, "EHLO reply not understood ({e}): no extensions used");
                Capabilities::default()
            }
        }
    }
}

fn hop_refused(hop: &str, step: &str, r: &Reply) -> Reply {
    temp("4.4.0", format!("next hop {hop} refused {step}: {r}"))
}

/// Why no usable reply came from the next hop (the caller's temporary failure says it).
#[derive(Debug, thiserror::Error)]
enum ReplyError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("connection closed")]
    Closed,
    #[error("reply too long")]
    TooLong,
    #[error("malformed reply ({reason}): {raw:?}")]
    Unparsable { reason: String, raw: String },
    #[error("malformed reply {0:?}")]
    Malformed(String),
}

/// Reads one reply with `smtp-proto`'s parser; returns it and its raw bytes.
async fn read_reply<R: AsyncRead + Unpin>(
    io: &mut BufReader<R>,
) -> Result<(Reply, Vec<u8>), ReplyError> {
    let mut parser = ResponseReceiver::default();
    let mut raw = Vec::new();
    loop {
        let buf = io.fill_buf().await?;
        if buf.is_empty() {
            return Err(ReplyError::Closed);
        }
        let mut rest = buf.iter();
        let parsed = parser.parse(&mut rest);
        let used = buf.len() - rest.len();
        raw.extend_from_slice(buf.get(..used).unwrap_or_default());
        io.consume(used);
        match parsed {
            Ok(response) => return reply_from(response, &raw).map(|r| (r, raw)),
            Err(ProtoError::NeedsMoreData { .. }) if raw.len() <= MAX_REPLY_BYTES => {}
            Err(ProtoError::NeedsMoreData { .. } | ProtoError::ResponseTooLong) => {
                return Err(ReplyError::TooLong)
            }
            Err(e) => {
                return Err(ReplyError::Unparsable {
                    reason: e.to_string(),
                    raw: truncate(&raw),
                })
            }
        }
    }
}

/// Our [`Reply`] from a parsed one: the code must be a reply code and the same on every
/// line (the parser takes the first line's); an enhanced code of another class than the
/// reply's is dropped.
fn reply_from(response: Response<String>, raw: &[u8]) -> Result<Reply, ReplyError> {
    let code = response.code;
    let digits = code.to_string();
    let same_code = raw
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .all(|line| line.starts_with(digits.as_bytes()));
    if !(200..600).contains(&code) || !same_code {
        return Err(ReplyError::Malformed(truncate(raw)));
    }
    let [class, subject, detail] = response.esc;
    let enhanced = format!("{class}.{subject}.{detail}");
    let enhanced = if crate::receive::enhanced_matches(code, &enhanced) {
        enhanced
    } else {
        String::new()
    };
    // The parser keeps the CR of an empty continuation line.
    let text: String = response.message.chars().filter(|c| *c != '\r').collect();
    Ok(Reply::new(code, enhanced, text))
}

fn truncate(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).chars().take(80).collect()
}

/// Splits `host:port` / `[v6]:port`.
fn split_address(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok()?;
    if host.is_empty() || port == 0 {
        return None;
    }
    Some((host.to_string(), port))
}

/// An open connection to a next hop, greeted and past EHLO (and STARTTLS).
pub(super) struct Session {
    client: Client,
    caps: Capabilities,
    opened: Instant,
    transactions: u32,
    /// Part of the current message may have reached the hop: the transaction is never
    /// repeated on another connection after this.
    payload_sent: bool,
}

impl Session {
    /// Whether another transaction may run on this connection.
    pub(super) fn reusable(&self) -> bool {
        !self.client.closing
            && self.opened.elapsed() < pool::MAX_AGE
            && self.transactions < pool::MAX_TRANSACTIONS
    }

    /// Says QUIT in the background and closes.
    pub(super) fn close(mut self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = self.client.command("QUIT", "QUIT").await;
            });
        }
    }
}

/// Whether a transaction starts with `RSET`: on a reused connection, for a clean state and a
/// check that the hop is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reset {
    First,
    No,
}

/// The replies to the envelope commands. `data` is `None` when DATA was not sent yet (without
/// PIPELINING it is sent only once MAIL and a recipient were accepted).
struct EnvelopeReplies {
    mail: Reply,
    rcpt: Vec<Reply>,
    data: Option<Reply>,
}

/// Connects, reads the greeting, says EHLO and (as `hop.tls` and `use_tls` say) STARTTLS.
async fn open(hop: &NextHop, use_tls: bool) -> Result<Session, Abort> {
    let Some((host, port)) = split_address(&hop.address) else {
        return Err(Abort::Temp(temp(
            "4.3.5",
            format!("next hop address {:?} is not host:port", hop.address),
        )));
    };
    let stream =
        match tokio::time::timeout(hop.timeout, TcpStream::connect((host.as_str(), port))).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(Abort::Temp(temp(
                    "4.4.1",
                    format!("cannot connect to next hop {}: {e}", hop.address),
                )))
            }
            Err(_) => {
                return Err(Abort::Temp(temp(
                    "4.4.1",
                    format!("timeout connecting to next hop {}", hop.address),
                )))
            }
        };
    let _ = stream.set_nodelay(true);
    let mut client = Client {
        io: BufReader::new(Box::new(stream)),
        hop: hop.address.clone(),
        timeout: hop.timeout,
        closing: false,
    };
    let greeting = client.read_reply("connect").await?;
    if greeting.code != 220 {
        // A hop that will not talk to us is an operational problem, not a verdict on the mail.
        return Err(Abort::Temp(hop_refused(
            &hop.address,
            "the connection",
            &greeting,
        )));
    }
    let mut caps = client.hello(&hop.helo_name).await?;

    let wants_tls = use_tls && hop.tls != TlsMode::Disabled;
    if let TlsMode::Required { .. } = hop.tls {
        if !caps.starttls {
            let _ = client.command("QUIT", "QUIT").await;
            return Err(Abort::Temp(temp(
                "4.7.10",
                format!(
                    "next hop {} does not offer STARTTLS, which is required",
                    hop.address
                ),
            )));
        }
    }
    if wants_tls && caps.starttls {
        let r = client.command("STARTTLS", "STARTTLS").await?;
        if r.code != 220 {
            return Err(tls_failure(hop, format!("STARTTLS refused: {r}")));
        }
        if !client.io.buffer().is_empty() {
            // Plaintext after the 220 would be read as if it came over TLS.
            return Err(Abort::Temp(temp(
                "4.7.0",
                format!("next hop {} sent data after STARTTLS", hop.address),
            )));
        }
        let stream = match tls::handshake(hop, &host, client.io.into_inner()).await {
            Ok(s) => s,
            Err(TlsError::Setup(e)) => return Err(Abort::Temp(temp("4.7.5", e))),
            Err(TlsError::Handshake(e)) => return Err(tls_failure(hop, e)),
        };
        client = Client {
            io: BufReader::new(stream),
            hop: hop.address.clone(),
            timeout: hop.timeout,
            closing: false,
        };
        caps = client.hello(&hop.helo_name).await?;
    }
    Ok(Session {
        client,
        caps,
        opened: Instant::now(),
        transactions: 0,
        payload_sent: false,
    })
}

fn tls_failure(hop: &NextHop, why: String) -> Abort {
    let why = format!("next hop {}: {why}", hop.address);
    match hop.tls {
        TlsMode::Opportunistic => Abort::RetryPlain(why),
        _ => Abort::Temp(temp("4.7.5", why)),
    }
}

impl Session {
    /// One mail transaction. The connection is left between transactions (a refusal before
    /// MAIL, or after it, is cleared by the next `RSET`), never QUIT here.
    async fn transaction(
        &mut self,
        transfer: &Transfer<'_>,
        reset: Reset,
    ) -> Result<DeliveryReport, Abort> {
        self.payload_sent = false;
        let caps = self.caps;
        let client = &mut self.client;
        let Transfer {
            content,
            mail_from,
            mail: params,
            recipients,
            message,
            ..
        } = *transfer;
        if let Some(limit) = caps.size.filter(|l| message.len() > *l) {
            return Err(Abort::Perm(too_large(
                message.len(),
                limit,
                transfer.grown_by,
            )));
        }
        let offers_dsn = caps.dsn;
        let mut mail = format!("MAIL FROM:<{mail_from}>");
        if let Content::Decrypted { allow_without_dsn } = content {
            if offers_dsn {
                mail.push_str(" RET=HDRS");
            } else if allow_without_dsn {
                tracing::warn!(
                    hop = %client.hop,
                    "next hop does not offer DSN: decrypted mail relayed anyway \
                     (allow_next_hop_without_dsn); its bounces may quote the plaintext"
                );
            } else {
                let reason = format!(
                    "next hop {} does not offer DSN, so its bounces could carry decrypted content \
                 back to the sender in clear; not relayed (enable DSN there, or set [inbound] \
                 allow_next_hop_without_dsn = true)",
                    client.hop
                );
                tracing::error!(%reason, "decrypted mail held back");
                return Err(Abort::Temp(temp("4.3.5", reason)));
            }
        } else if let Some(ret) = params.ret.filter(|_| offers_dsn) {
            mail.push_str(&format!(" RET={}", ret.as_param()));
        }
        if let Some(envid) = params.envid.as_deref().filter(|_| offers_dsn) {
            mail.push_str(&format!(" ENVID={envid}"));
        }
        // A UTF-8 address always needs SMTPUTF8, also in mail we originate (a notice to a UTF-8
        // sender); UTF-8 headers need it only when the client declared them so (raw 8-bit
        // headers without SMTPUTF8 are passed on as they came).
        let utf8_envelope = !mail_from.is_ascii() || recipients.iter().any(|r| !r.is_ascii());
        if params.smtputf8 || utf8_envelope {
            if caps.smtputf8 {
                mail.push_str(" SMTPUTF8");
            } else if utf8_envelope || !smime_pki::header::header_block(message).is_ascii() {
                return Err(Abort::Perm(Reply::new(
                    550,
                    "5.6.7",
                    format!(
                        "the next hop {} does not offer SMTPUTF8, which this message needs \
                     (a non-ASCII address or header)",
                        client.hop
                    ),
                )));
            }
        }
        let rcpt_commands: Vec<String> = recipients
            .iter()
            .enumerate()
            .map(|(i, rcpt)| {
                let mut command = format!("RCPT TO:<{rcpt}>");
                if let Some(p) = transfer.rcpt.get(i).filter(|_| offers_dsn) {
                    if let Some(notify) = p.notify {
                        command.push_str(&format!(" NOTIFY={}", notify.as_param()));
                    }
                    if let Some(orcpt) = &p.orcpt {
                        command.push_str(&format!(" ORCPT={orcpt}"));
                    }
                }
                command
            })
            .collect();
        let replies = if caps.pipelining {
            self.envelope_pipelined(reset, &mail, &rcpt_commands)
                .await?
        } else {
            self.envelope_in_turn(reset, &mail, &rcpt_commands).await?
        };
        let EnvelopeReplies {
            mail: r,
            rcpt,
            data,
        } = replies;
        if r.is_temporary() || (!r.is_success() && !r.is_permanent()) {
            self.end_unwanted_data(data.as_ref()).await;
            return Err(Abort::Temp(r));
        }
        if r.is_permanent() {
            self.end_unwanted_data(data.as_ref()).await;
            return Err(Abort::Perm(explain_size_refusal(
                r,
                message.len(),
                transfer.grown_by,
            )));
        }

        let mut outcomes: Vec<(String, RecipientOutcome)> = recipients
            .iter()
            .cloned()
            .zip(rcpt.into_iter().map(|r| {
                if r.code == 250 || r.code == 251 {
                    RecipientOutcome::Accepted
                } else if r.is_permanent() {
                    RecipientOutcome::PermFailed(r)
                } else {
                    RecipientOutcome::TempFailed(r)
                }
            }))
            .collect();
        if !outcomes
            .iter()
            .any(|(_, o)| *o == RecipientOutcome::Accepted)
        {
            self.end_unwanted_data(data.as_ref()).await;
            return Ok(DeliveryReport {
                per_recipient: outcomes,
            });
        }

        let r = match data {
            Some(r) => r,
            None => self.client.command("DATA", "DATA").await?,
        };
        if r.code != 354 {
            let failed = if r.is_permanent() {
                RecipientOutcome::PermFailed(r)
            } else {
                RecipientOutcome::TempFailed(r)
            };
            set_accepted(&mut outcomes, &failed);
            return Ok(DeliveryReport {
                per_recipient: outcomes,
            });
        }
        self.payload_sent = true;
        let client = &mut self.client;
        client.send(&encode_data(message)).await?;
        let r = client.read_reply("end of data").await?;
        if !r.is_success() {
            let failed = if r.is_permanent() {
                RecipientOutcome::PermFailed(explain_size_refusal(
                    r,
                    message.len(),
                    transfer.grown_by,
                ))
            } else {
                RecipientOutcome::TempFailed(r)
            };
            set_accepted(&mut outcomes, &failed);
        }
        self.transactions += 1;
        Ok(DeliveryReport {
            per_recipient: outcomes,
        })
    }
}

impl Session {
    /// RSET (when asked), MAIL and RCPT one at a time, each answered before the next; DATA is
    /// left to the caller.
    async fn envelope_in_turn(
        &mut self,
        reset: Reset,
        mail: &str,
        rcpt_commands: &[String],
    ) -> Result<EnvelopeReplies, Abort> {
        let client = &mut self.client;
        if reset == Reset::First {
            let r = client.command("RSET", "RSET").await?;
            if r.code != 250 {
                return Err(Abort::Lost(hop_refused(&client.hop, "RSET", &r)));
            }
        }
        let mail = client.command(mail, "MAIL FROM").await?;
        let mut rcpt = Vec::with_capacity(rcpt_commands.len());
        if mail.is_success() {
            for command in rcpt_commands {
                rcpt.push(client.command(command, "RCPT TO").await?);
            }
        }
        Ok(EnvelopeReplies {
            mail,
            rcpt,
            data: None,
        })
    }

    /// RFC 2920: RSET (when asked), MAIL, every RCPT and DATA in one write, then their
    /// replies in order. Every reply is read, whatever came before, so the connection stays
    /// in step; a DATA the hop accepted although nothing else was is ended by the caller.
    async fn envelope_pipelined(
        &mut self,
        reset: Reset,
        mail: &str,
        rcpt_commands: &[String],
    ) -> Result<EnvelopeReplies, Abort> {
        let client = &mut self.client;
        let mut batch = String::with_capacity(
            mail.len() + rcpt_commands.iter().map(|c| c.len() + 2).sum::<usize>() + 16,
        );
        if reset == Reset::First {
            batch.push_str("RSET\r\n");
        }
        for command in std::iter::once(mail).chain(rcpt_commands.iter().map(String::as_str)) {
            batch.push_str(command);
            batch.push_str("\r\n");
        }
        batch.push_str("DATA\r\n");
        client.send(batch.as_bytes()).await?;
        if reset == Reset::First {
            let r = client.read_reply("RSET").await?;
            if r.code != 250 {
                // The commands after it may have been taken: this connection is not used again.
                client.closing = true;
                return Err(Abort::Lost(hop_refused(&client.hop, "RSET", &r)));
            }
        }
        let mail = client.read_reply("MAIL FROM").await?;
        let mut rcpt = Vec::with_capacity(rcpt_commands.len());
        for _ in rcpt_commands {
            rcpt.push(client.read_reply("RCPT TO").await?);
        }
        let data = client.read_reply("DATA").await?;
        Ok(EnvelopeReplies {
            mail,
            rcpt,
            data: Some(data),
        })
    }

    /// A DATA accepted (354) for a transaction that is not going ahead (MAIL or every
    /// recipient refused) is ended with an empty message, as RFC 2920 §3.1 says; with no
    /// recipient the hop delivers nothing. Should that fail, the connection is not reused.
    async fn end_unwanted_data(&mut self, data: Option<&Reply>) {
        if data.is_some_and(|r| r.code == 354) {
            let ended = match self.client.send(b".\r\n").await {
                Ok(()) => self.client.read_reply("end of data").await.ok(),
                Err(_) => None,
            };
            if ended.is_none() {
                self.client.closing = true;
            }
        }
    }
}

/// The refusal for a message over the next hop's limit, in words a sender understands.
fn too_large(size: usize, limit: usize, grown_by: Option<&str>) -> Reply {
    let after = grown_by.map(|g| format!("after {g} ")).unwrap_or_default();
    Reply::new(
        552,
        "5.3.4",
        format!(
            "{after}the message is {}; the outgoing limit is {} ({size} bytes, limit {limit} bytes)",
            megabytes(size),
            megabytes(limit)
        ),
    )
}

/// A next hop's own "too large" refusal (5.3.4, or 5.2.3 "message length exceeds
/// administrative limit", RFC 3463), which would reach the sender as a bare code, with the
/// size in words; other replies (552 5.2.2 is a full mailbox) unchanged.
fn explain_size_refusal(r: Reply, size: usize, grown_by: Option<&str>) -> Reply {
    if !matches!(r.enhanced.as_str(), "5.3.4" | "5.2.3") {
        return r;
    }
    let after = grown_by.map(|g| format!("after {g} ")).unwrap_or_default();
    Reply::new(
        552,
        "5.3.4",
        format!(
            "{after}the message is {}, too large for the next hop ({size} bytes; it said: {r})",
            megabytes(size)
        ),
    )
}

/// `11.2 MB`, `10 MB`: decimal megabytes with one decimal where it matters.
fn megabytes(bytes: usize) -> String {
    let tenths = (bytes as u128 * 10 + 500_000) / 1_000_000;
    if tenths.is_multiple_of(10) {
        format!("{} MB", tenths / 10)
    } else {
        format!("{}.{} MB", tenths / 10, tenths % 10)
    }
}

fn set_accepted(outcomes: &mut [(String, RecipientOutcome)], to: &RecipientOutcome) {
    for (_, o) in outcomes.iter_mut() {
        if *o == RecipientOutcome::Accepted {
            *o = to.clone();
        }
    }
}

/// The DATA payload: CRLF line ends, dot-stuffed, ending with `CRLF . CRLF`. A bare LF and a
/// bare CR each end a line too. Lines are found with `memchr` and copied whole.
pub(crate) fn encode_data(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 8);
    let mut rest = message;
    while !rest.is_empty() {
        let (content, end) = match memchr::memchr2(b'\r', b'\n', rest) {
            Some(at) => rest.split_at(at),
            None => (rest, &[][..]),
        };
        if content.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(content);
        // The line end (CRLF counts once), or none at the end of an unterminated message.
        rest = match end {
            [b'\r', b'\n', after @ ..] | [_, after @ ..] => after,
            [] => &[],
        };
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
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
        fake_server_in(false, script).await
    }

    /// [`fake_server`], advertising PIPELINING when `pipelining` (RFC 2920).
    async fn fake_server_in(
        pipelining: bool,
        script: fn(&str) -> String,
    ) -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
        let fake = fake_server_with_in(pipelining, script, AfterData::Reply).await;
        (fake.addr, fake.data)
    }

    /// The EHLO reply `reply` with PIPELINING added after its greeting line.
    fn with_pipelining(reply: String) -> String {
        match reply.split_once("\r\n") {
            Some((first, rest)) if first.starts_with("250-") => {
                format!("{first}\r\n250-PIPELINING\r\n{rest}")
            }
            Some((first, rest)) if first.starts_with("250 ") => {
                format!("250-{}\r\n250 PIPELINING\r\n{rest}", &first[4..])
            }
            _ => reply,
        }
    }

    /// What a fake server does once it has a message's data.
    #[derive(Clone, Copy, PartialEq)]
    enum AfterData {
        /// Answers `script(".")` and goes on.
        Reply,
        /// Answers, then closes the connection (an idle timeout that strikes at once).
        ReplyThenClose,
        /// Closes without an answer (a connection lost after the data was sent).
        Close,
    }

    struct Fake {
        addr: SocketAddr,
        data: Arc<Mutex<Vec<Vec<u8>>>>,
        connections: Arc<std::sync::atomic::AtomicUsize>,
        commands: Arc<Mutex<Vec<String>>>,
    }

    /// A scripted server taking any number of connections, counting them; it advertises
    /// PIPELINING when `pipelining`. It reads commands one line at a time either way, so a
    /// pipelined batch is answered in order.
    async fn fake_server_with_in(
        pipelining: bool,
        script: fn(&str) -> String,
        after_data: AfterData,
    ) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Fake {
            addr: listener.local_addr().unwrap(),
            data: Arc::new(Mutex::new(Vec::new())),
            connections: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            commands: Arc::new(Mutex::new(Vec::new())),
        };
        let (store, connections, commands) = (
            Arc::clone(&fake.data),
            Arc::clone(&fake.connections),
            Arc::clone(&fake.commands),
        );
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (store, commands) = (Arc::clone(&store), Arc::clone(&commands));
                tokio::spawn(async move {
                    let mut s = BufReader::new(s);
                    s.get_mut().write_all(script("").as_bytes()).await.unwrap();
                    let (mut mail_ok, mut recipients) = (false, 0);
                    loop {
                        let mut line = String::new();
                        if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        commands.lock().unwrap().push(line.trim_end().to_string());
                        let mut reply = script(line.trim_end());
                        if pipelining && line.starts_with("EHLO") {
                            reply = with_pipelining(reply);
                        }
                        // As a real server: no RCPT without MAIL, no DATA without recipients.
                        match line.trim_end() {
                            l if l.starts_with("MAIL") => {
                                (mail_ok, recipients) = (reply.starts_with('2'), 0);
                            }
                            l if l.starts_with("RCPT") && !mail_ok => {
                                reply = "503 5.5.1 need MAIL\r\n".into();
                            }
                            l if l.starts_with("RCPT") && reply.starts_with('2') => {
                                recipients += 1;
                            }
                            "DATA" if !mail_ok || recipients == 0 => {
                                reply = "503 5.5.1 no valid recipients\r\n".into();
                            }
                            "RSET" => (mail_ok, recipients) = (false, 0),
                            _ => {}
                        }
                        s.get_mut().write_all(reply.as_bytes()).await.unwrap();
                        if line.trim_end() == "DATA" && reply.starts_with("354") {
                            let mut raw = Vec::new();
                            while !raw.ends_with(b"\r\n.\r\n") && raw != b".\r\n" {
                                let mut b = [0u8; 1];
                                if s.read(&mut b).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                raw.push(b[0]);
                            }
                            store.lock().unwrap().push(raw);
                            (mail_ok, recipients) = (false, 0);
                            if after_data == AfterData::Close {
                                return;
                            }
                            s.get_mut().write_all(script(".").as_bytes()).await.unwrap();
                            if after_data == AfterData::ReplyThenClose {
                                return;
                            }
                        }
                        if line.starts_with("QUIT") {
                            return;
                        }
                    }
                });
            }
        });
        fake
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
            "RSET" => "250 2.0.0 reset\r\n".into(),
            _ => "500 what\r\n".into(),
        }
    }

    #[tokio::test]
    async fn per_recipient_outcomes_and_dot_stuffing() {
        for pipelining in [false, true] {
            let (addr, data) = fake_server_in(pipelining, basic_script).await;
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
    }

    #[tokio::test]
    async fn final_temp_failure_applies_to_accepted_recipients() {
        fn script(line: &str) -> String {
            match line {
                "." => "451 4.3.0 try later\r\n".into(),
                l => basic_script(l),
            }
        }
        for pipelining in [false, true] {
            let (addr, _) = fake_server_in(pipelining, script).await;
            let report = deliver(
                &hop(addr, TlsMode::Opportunistic),
                "",
                &rcpts(&["a@x.test", "perm@x.test"]),
                b"x\r\n",
            )
            .await;
            assert!(
                matches!(&report.per_recipient[0].1, RecipientOutcome::TempFailed(r) if r.code == 451)
            );
            assert!(
                matches!(&report.per_recipient[1].1, RecipientOutcome::PermFailed(r) if r.code == 550)
            );
        }
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
        for pipelining in [false, true] {
            let (addr, _) = fake_server_in(pipelining, script).await;
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

    // --- Connection reuse ----------------------------------------------------------------

    /// Delivers `n` one-line messages one after the other; returns their reports.
    async fn deliver_n(h: &NextHop, n: usize) -> Vec<DeliveryReport> {
        let mut reports = Vec::new();
        for i in 0..n {
            let message = format!("Subject: {i}\r\n\r\nmessage {i}\r\n");
            reports.push(deliver(h, "s@a.test", &rcpts(&["a@x.test"]), message.as_bytes()).await);
        }
        reports
    }

    /// A hop that advertises PIPELINING and answers nothing until it has read `expect`
    /// command lines; then it sends `replies` and, after a 354, reads the data. Returns the
    /// lines and data it read, in order.
    async fn batch_only_hop(
        expect: usize,
        replies: &'static str,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut s = BufReader::new(s);
            let mut seen = Vec::new();
            s.get_mut().write_all(b"220 hop\r\n").await.unwrap();
            let mut line = String::new();
            s.read_line(&mut line).await.unwrap();
            s.get_mut()
                .write_all(b"250-hop\r\n250 PIPELINING\r\n")
                .await
                .unwrap();
            for _ in 0..expect {
                let mut line = String::new();
                // A client waiting for a reply before its next command never gets here.
                let read = tokio::time::timeout(Duration::from_secs(3), s.read_line(&mut line));
                match read.await {
                    Ok(Ok(n)) if n > 0 => seen.push(line.trim_end().to_string()),
                    _ => return seen,
                }
            }
            s.get_mut().write_all(replies.as_bytes()).await.unwrap();
            if replies.contains("354") {
                let mut line = String::new();
                while line != ".\r\n" && s.read_line(&mut line).await.unwrap_or(0) > 0 {
                    seen.push(line.trim_end().to_string());
                    if line == ".\r\n" {
                        break;
                    }
                    line.clear();
                }
                s.get_mut().write_all(b"250 2.0.0 done\r\n").await.unwrap();
            }
            // Wait for the client to go (QUIT or close).
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest)).await;
            seen
        });
        (addr, task)
    }

    #[tokio::test]
    async fn with_pipelining_the_envelope_goes_in_one_write() {
        let (addr, hop_task) = batch_only_hop(
            4,
            "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go\r\n",
        )
        .await;
        let h = hop(addr, TlsMode::Disabled);
        let report = deliver(
            &h,
            "s@a.test",
            &rcpts(&["a@x.test", "perm@x.test"]),
            b"Subject: t\r\n\r\nbody\r\n",
        )
        .await;
        assert_eq!(report.per_recipient[0].1, RecipientOutcome::Accepted);
        assert!(
            matches!(&report.per_recipient[1].1, RecipientOutcome::PermFailed(r) if r.code == 550),
            "{report:?}"
        );
        drop(Pool::global().take(&h));
        let seen = hop_task.await.unwrap();
        assert_eq!(
            seen[..4],
            [
                "MAIL FROM:<s@a.test>",
                "RCPT TO:<a@x.test>",
                "RCPT TO:<perm@x.test>",
                "DATA"
            ]
        );
        assert_eq!(seen[4..], ["Subject: t", "", "body", "."]);
    }

    #[tokio::test]
    async fn a_data_accepted_for_no_recipient_is_ended_empty() {
        // RFC 2920 servers refuse DATA when no recipient was accepted; one that says 354
        // anyway gets an empty message (a lone dot), never the content.
        let (addr, hop_task) =
            batch_only_hop(3, "250 2.1.0 ok\r\n550 5.1.1 no such user\r\n354 go\r\n").await;
        let h = hop(addr, TlsMode::Disabled);
        let report = deliver(&h, "s@a.test", &rcpts(&["perm@x.test"]), b"secret\r\n").await;
        assert!(
            matches!(&report.per_recipient[0].1, RecipientOutcome::PermFailed(r) if r.code == 550),
            "{report:?}"
        );
        drop(Pool::global().take(&h));
        let seen = hop_task.await.unwrap();
        assert_eq!(
            seen,
            ["MAIL FROM:<s@a.test>", "RCPT TO:<perm@x.test>", "DATA", "."]
        );
    }

    #[tokio::test]
    async fn sequential_messages_share_one_connection() {
        for pipelining in [false, true] {
            let fake = fake_server_with_in(pipelining, basic_script, AfterData::Reply).await;
            let h = hop(fake.addr, TlsMode::Opportunistic);
            for report in deliver_n(&h, 5).await {
                assert!(report.all_accepted(), "{report:?}");
            }
            let connections = fake.connections.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(connections, 1);
            assert_eq!(fake.data.lock().unwrap().len(), 5);
            // One EHLO; RSET before each reused transaction; no QUIT while the pool keeps it.
            let commands = fake.commands.lock().unwrap().clone();
            let count = |c: &str| commands.iter().filter(|l| l.starts_with(c)).count();
            assert_eq!((count("EHLO"), count("RSET"), count("QUIT")), (1, 4, 0));
            assert_eq!(Pool::global().idle_count(&h), 1);
        }
    }

    #[tokio::test]
    async fn a_dropped_idle_connection_loses_and_repeats_nothing() {
        for pipelining in [false, true] {
            // The hop closes every connection after its transaction: each reuse finds it gone
            // (RSET fails) and the message goes once, on a new connection.
            let fake =
                fake_server_with_in(pipelining, basic_script, AfterData::ReplyThenClose).await;
            let h = hop(fake.addr, TlsMode::Disabled);
            for report in deliver_n(&h, 4).await {
                assert!(report.all_accepted(), "{report:?}");
            }
            let data = fake.data.lock().unwrap().clone();
            let expected: Vec<Vec<u8>> = (0..4)
                .map(|i| format!("Subject: {i}\r\n\r\nmessage {i}\r\n.\r\n").into_bytes())
                .collect();
            assert_eq!(data, expected, "every message exactly once, in order");
            assert_eq!(
                fake.connections.load(std::sync::atomic::Ordering::SeqCst),
                4
            );
        }
    }

    #[tokio::test]
    async fn a_connection_lost_after_the_data_is_not_retried() {
        for pipelining in [false, true] {
            // The data reached the hop, its answer did not: the hop may have taken the message,
            // so it is a temporary failure (the sender retries later), never a second copy now.
            let fake = fake_server_with_in(pipelining, basic_script, AfterData::Close).await;
            let h = hop(fake.addr, TlsMode::Disabled);
            let report = deliver(&h, "s@a.test", &rcpts(&["a@x.test"]), b"x\r\n").await;
            assert!(
                matches!(&report.per_recipient[0].1, RecipientOutcome::TempFailed(r) if r.enhanced == "4.4.2"),
                "{report:?}"
            );
            assert_eq!(fake.data.lock().unwrap().len(), 1);
            assert_eq!(
                Pool::global().idle_count(&h),
                0,
                "a lost connection is not kept"
            );
        }
    }

    #[tokio::test]
    async fn refusals_keep_the_connection_and_their_meaning() {
        for pipelining in [false, true] {
            // A refused recipient and a refused MAIL are answers, not broken connections: the
            // per-recipient outcome is unchanged and the connection serves the next message.
            fn script(line: &str) -> String {
                match line {
                    "MAIL FROM:<refused@a.test>" => "550 5.7.1 sender refused\r\n".into(),
                    "MAIL FROM:<later@a.test>" => "451 4.3.0 try later\r\n".into(),
                    l => basic_script(l),
                }
            }
            let fake = fake_server_with_in(pipelining, script, AfterData::Reply).await;
            let h = hop(fake.addr, TlsMode::Disabled);
            let report = deliver(
                &h,
                "s@a.test",
                &rcpts(&["perm@x.test", "a@x.test"]),
                b"x\r\n",
            )
            .await;
            assert!(
                matches!(&report.per_recipient[0].1, RecipientOutcome::PermFailed(r) if r.code == 550)
            );
            assert_eq!(report.per_recipient[1].1, RecipientOutcome::Accepted);
            let report = deliver(&h, "refused@a.test", &rcpts(&["a@x.test"]), b"x\r\n").await;
            assert!(
                matches!(&report.per_recipient[0].1, RecipientOutcome::PermFailed(r) if r.code == 550)
            );
            let report = deliver(&h, "later@a.test", &rcpts(&["a@x.test"]), b"x\r\n").await;
            assert!(
                matches!(&report.per_recipient[0].1, RecipientOutcome::TempFailed(r) if r.code == 451)
            );
            assert!(deliver_n(&h, 1).await[0].all_accepted());
            assert_eq!(
                fake.connections.load(std::sync::atomic::Ordering::SeqCst),
                1
            );
            assert_eq!(fake.data.lock().unwrap().len(), 2);
        }
    }

    #[tokio::test]
    async fn a_hop_closing_with_421_gets_the_message_on_a_new_connection() {
        fn script(line: &str) -> String {
            match line {
                "RSET" => "421 4.4.2 idle too long, closing\r\n".into(),
                l => basic_script(l),
            }
        }
        for pipelining in [false, true] {
            let fake = fake_server_with_in(pipelining, script, AfterData::Reply).await;
            let h = hop(fake.addr, TlsMode::Disabled);
            for report in deliver_n(&h, 3).await {
                assert!(report.all_accepted(), "{report:?}");
            }
            assert_eq!(fake.data.lock().unwrap().len(), 3);
            assert_eq!(
                fake.connections.load(std::sync::atomic::Ordering::SeqCst),
                3
            );
        }
    }

    #[test]
    fn replies_through_smtp_proto() {
        let read = |raw: &str| {
            let raw = raw.as_bytes().to_vec();
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(async move {
                    let mut io = BufReader::new(std::io::Cursor::new(raw));
                    read_reply(&mut io).await.map(|(r, _)| r)
                })
        };
        let r = read("250-first\r\n250-\r\n250 2.1.0 last\r\n").unwrap();
        assert_eq!((r.code, r.text.as_str()), (250, "first\n\nlast"));
        let r = read("451 4.7.10 later\r\n").unwrap();
        assert_eq!(
            (r.code, r.enhanced.as_str(), r.text.as_str()),
            (451, "4.7.10", "later")
        );
        // An enhanced code of another class than the reply's is not taken as one.
        let r = read("250 5.1.1 odd\r\n").unwrap();
        assert_eq!(r.enhanced, "");
        // Malformed: codes that differ between lines, no code, out of range, cut short.
        for bad in ["250-a\r\n550 b\r\n", "hello\r\n", "150 x\r\n", "250-a\r\n"] {
            assert!(read(bad).is_err(), "{bad:?}");
        }
        // A reply is bounded.
        let long = format!("250-{}\r\n", "x".repeat(200)).repeat(200);
        assert!(matches!(read(&long), Err(ReplyError::TooLong)));
        let caps = Capabilities::from_ehlo(
            "hop",
            b"250-hop\r\n250-STARTTLS\r\n250-dsn\r\n250-SMTPUTF8\r\n250-PIPELINING\r\n250 SIZE 100\r\n",
        );
        assert_eq!(
            caps,
            Capabilities {
                starttls: true,
                dsn: true,
                smtputf8: true,
                pipelining: true,
                size: Some(100)
            }
        );
    }

    #[test]
    fn data_encoding() {
        assert_eq!(encode_data(b""), b".\r\n");
        assert_eq!(encode_data(b"a"), b"a\r\n.\r\n");
        assert_eq!(encode_data(b"\r"), b"\r\n.\r\n");
        assert_eq!(encode_data(b"."), b"..\r\n.\r\n");
        assert_eq!(encode_data(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(encode_data(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(encode_data(b"a\r\r\nb\n.c"), b"a\r\n\r\nb\r\n..c\r\n.\r\n");
    }

    /// The byte-at-a-time encoder `encode_data` replaced: the reference it must agree with.
    fn encode_data_bytewise(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut line_start = true;
        let mut bytes = message.iter().peekable();
        while let Some(&b) = bytes.next() {
            if line_start && b == b'.' {
                out.push(b'.');
            }
            match b {
                b'\r' => {
                    out.extend_from_slice(b"\r\n");
                    bytes.next_if_eq(&&b'\n');
                    line_start = true;
                }
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    line_start = true;
                }
                _ => {
                    out.push(b);
                    line_start = false;
                }
            }
        }
        if !line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    proptest::proptest! {
        #[test]
        fn data_encoding_agrees_with_the_bytewise_reference(
            message in proptest::collection::vec(
                proptest::sample::select(vec![b'.', b'\r', b'\n', b'a', b' ']),
                0..200,
            )
        ) {
            proptest::prop_assert_eq!(encode_data(&message), encode_data_bytewise(&message));
        }
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
        assert!(
            matches!(&report.per_recipient[0].1, RecipientOutcome::PermFailed(r) if r.code == 555)
        );
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
        let size = |ehlo: &str| Capabilities::from_ehlo("hop", ehlo.as_bytes()).size;
        assert_eq!(size("250-hop\r\n250 SIZE 0\r\n"), None);
        assert_eq!(size("250-hop\r\n250 SIZE\r\n"), None);
        assert_eq!(size("250-hop\r\n250 SIZE 2048\r\n"), Some(2048));
        assert_eq!(size("250 hop\r\n"), None);
    }
}
