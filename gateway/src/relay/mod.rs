//! SMTP client that hands a processed message to the next hop, with a per-recipient result.
//!
//! Not lettre: it appends its own `CRLF . CRLF`, which changes the relayed bytes. Here the
//! message goes out exactly as given, except that line ends are made CRLF (a bare LF or CR
//! on the wire is what lenient servers misread as end-of-data: "SMTP smuggling") and lines
//! starting with a dot are dot-stuffed.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader as StdBufReader;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::receive::{MailParams, RcptParams, Reply};

/// How STARTTLS is used towards the next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Longest reply line and most lines per reply we read from a next hop.
const MAX_REPLY_LINE: u64 = 4096;
const MAX_REPLY_LINES: usize = 100;

/// Why an attempt ended before the transaction completed.
enum Abort {
    /// Every recipient still pending gets this temporary failure.
    Temp(Reply),
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

/// [`deliver`] with everything a [`Transfer`] carries.
pub async fn deliver_transfer(hop: &NextHop, transfer: &Transfer<'_>) -> DeliveryReport {
    let recipients = transfer.recipients;
    if recipients.is_empty() {
        return DeliveryReport {
            per_recipient: Vec::new(),
        };
    }
    let mut use_tls = hop.tls != TlsMode::Disabled;
    loop {
        match attempt(hop, use_tls, transfer).await {
            Ok(report) => return report,
            Err(Abort::Temp(r)) => {
                tracing::warn!(hop = %hop.address, reply = %r, "delivery failed temporarily");
                return DeliveryReport::all(recipients, RecipientOutcome::TempFailed(r));
            }
            Err(Abort::Perm(r)) => {
                return DeliveryReport::all(recipients, RecipientOutcome::PermFailed(r));
            }
            Err(Abort::RetryPlain(why)) if use_tls => {
                tracing::info!(hop = %hop.address, %why, "opportunistic TLS failed, retrying in clear");
                use_tls = false;
            }
            Err(Abort::RetryPlain(why)) => {
                return DeliveryReport::all(
                    recipients,
                    RecipientOutcome::TempFailed(temp("4.4.2", why)),
                );
            }
        }
    }
}

struct Client<S> {
    io: BufReader<S>,
    hop: String,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), Abort> {
        let hop = self.hop.clone();
        let w = async {
            self.io.get_mut().write_all(bytes).await?;
            self.io.get_mut().flush().await
        };
        match tokio::time::timeout(self.timeout, w).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Abort::Temp(temp(
                "4.4.2",
                format!("connection to next hop {hop} lost: {e}"),
            ))),
            Err(_) => Err(Abort::Temp(temp(
                "4.4.2",
                format!("timeout sending to next hop {hop}"),
            ))),
        }
    }

    async fn read_reply(&mut self, after: &str) -> Result<Reply, Abort> {
        let hop = self.hop.clone();
        match tokio::time::timeout(self.timeout, read_reply(&mut self.io)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(Abort::Temp(temp(
                "4.4.2",
                format!("next hop {hop} failed after {after}: {e}"),
            ))),
            Err(_) => Err(Abort::Temp(temp(
                "4.4.2",
                format!("timeout waiting for next hop {hop} after {after}"),
            ))),
        }
    }

    async fn command(&mut self, line: &str, name: &str) -> Result<Reply, Abort> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply(name).await
    }

    /// EHLO, falling back to HELO; returns the upper-cased extension keywords.
    async fn hello(&mut self, helo_name: &str) -> Result<Vec<String>, Abort> {
        let r = self.command(&format!("EHLO {helo_name}"), "EHLO").await?;
        if r.code == 250 {
            return Ok(r
                .text
                .lines()
                .skip(1)
                .map(|l| l.trim().to_ascii_uppercase())
                .collect());
        }
        let r = self.command(&format!("HELO {helo_name}"), "HELO").await?;
        if r.code == 250 {
            Ok(Vec::new())
        } else {
            Err(Abort::Temp(hop_refused(&self.hop, "HELO", &r)))
        }
    }
}

fn hop_refused(hop: &str, step: &str, r: &Reply) -> Reply {
    temp("4.4.0", format!("next hop {hop} refused {step}: {r}"))
}

/// Reads one reply. Errors are described as text for the caller's temporary failure.
async fn read_reply<R: AsyncRead + Unpin>(io: &mut BufReader<R>) -> Result<Reply, String> {
    let mut code = 0u16;
    let mut enhanced = String::new();
    let mut lines: Vec<String> = Vec::new();
    loop {
        if lines.len() >= MAX_REPLY_LINES {
            return Err("reply has too many lines".into());
        }
        let mut raw = Vec::new();
        (&mut *io)
            .take(MAX_REPLY_LINE)
            .read_until(b'\n', &mut raw)
            .await
            .map_err(|e| e.to_string())?;
        if raw.is_empty() {
            return Err("connection closed".into());
        }
        if raw.last() != Some(&b'\n') {
            return Err("reply line too long or truncated".into());
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end_matches(['\r', '\n']);
        let bytes = line.as_bytes();
        if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
            return Err(format!("malformed reply line {:?}", truncate(line)));
        }
        let this_code: u16 = line[..3].parse().map_err(|_| "malformed reply code")?;
        if !(200..600).contains(&this_code) || (code != 0 && this_code != code) {
            return Err(format!("malformed reply line {:?}", truncate(line)));
        }
        code = this_code;
        let sep = bytes.get(3).copied().unwrap_or(b' ');
        let mut text = line.get(4..).unwrap_or("");
        // Keep the enhanced code once and strip it from every line.
        if let Some((first, rest)) = text.split_once(' ').or(Some((text, ""))) {
            if crate::receive::enhanced_matches(code, first) {
                if enhanced.is_empty() {
                    enhanced = first.to_string();
                }
                text = rest;
            }
        }
        lines.push(text.to_string());
        match sep {
            b' ' => break,
            b'-' => continue,
            _ => return Err(format!("malformed reply line {:?}", truncate(line))),
        }
    }
    Ok(Reply::new(code, enhanced, lines.join("\n")))
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
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

async fn attempt(
    hop: &NextHop,
    use_tls: bool,
    transfer: &Transfer<'_>,
) -> Result<DeliveryReport, Abort> {
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
        io: BufReader::new(stream),
        hop: hop.address.clone(),
        timeout: hop.timeout,
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
    let caps = client.hello(&hop.helo_name).await?;
    let offers_tls = caps.iter().any(|c| c == "STARTTLS");

    let wants_tls = use_tls && hop.tls != TlsMode::Disabled;
    if let TlsMode::Required { .. } = hop.tls {
        if !offers_tls {
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
    if wants_tls && offers_tls {
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
        let config = match client_tls_config(hop) {
            Ok(c) => c,
            Err(e) => return Err(Abort::Temp(temp("4.7.5", e))),
        };
        let server_name = match ServerName::try_from(host.clone()) {
            Ok(n) => n,
            Err(_) => {
                return Err(Abort::Temp(temp(
                    "4.7.5",
                    format!("next hop host {host:?} is not a valid TLS server name"),
                )))
            }
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let tcp = client.io.into_inner();
        let tls = match tokio::time::timeout(hop.timeout, connector.connect(server_name, tcp)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(tls_failure(hop, format!("TLS handshake failed: {e}"))),
            Err(_) => return Err(tls_failure(hop, "TLS handshake timed out".to_string())),
        };
        let mut client = Client {
            io: BufReader::new(tls),
            hop: hop.address.clone(),
            timeout: hop.timeout,
        };
        let caps = client.hello(&hop.helo_name).await?;
        transaction(&mut client, &caps, transfer).await
    } else {
        transaction(&mut client, &caps, transfer).await
    }
}

fn tls_failure(hop: &NextHop, why: String) -> Abort {
    let why = format!("next hop {}: {why}", hop.address);
    match hop.tls {
        TlsMode::Opportunistic => Abort::RetryPlain(why),
        _ => Abort::Temp(temp("4.7.5", why)),
    }
}

async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    caps: &[String],
    transfer: &Transfer<'_>,
) -> Result<DeliveryReport, Abort> {
    let Transfer {
        content,
        mail_from,
        mail: params,
        recipients,
        message,
        ..
    } = *transfer;
    let has = |name: &str| {
        caps.iter()
            .any(|c| c == name || c.starts_with(&format!("{name} ")))
    };
    if let Some(limit) = size_limit(caps).filter(|l| message.len() > *l) {
        let _ = client.command("QUIT", "QUIT").await;
        return Err(Abort::Perm(too_large(
            message.len(),
            limit,
            transfer.grown_by,
        )));
    }
    let offers_dsn = has("DSN");
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
            let _ = client.command("QUIT", "QUIT").await;
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
        if has("SMTPUTF8") {
            mail.push_str(" SMTPUTF8");
        } else if utf8_envelope || !header_block(message).is_ascii() {
            let _ = client.command("QUIT", "QUIT").await;
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
    let r = client.command(&mail, "MAIL FROM").await?;
    if r.is_temporary() || (!r.is_success() && !r.is_permanent()) {
        return Err(Abort::Temp(r));
    }
    if r.is_permanent() {
        let _ = client.command("QUIT", "QUIT").await;
        return Err(Abort::Perm(explain_size_refusal(
            r,
            message.len(),
            transfer.grown_by,
        )));
    }

    let mut outcomes: Vec<(String, RecipientOutcome)> = Vec::with_capacity(recipients.len());
    for (i, rcpt) in recipients.iter().enumerate() {
        let mut command = format!("RCPT TO:<{rcpt}>");
        if let Some(p) = transfer.rcpt.get(i).filter(|_| offers_dsn) {
            if let Some(notify) = p.notify {
                command.push_str(&format!(" NOTIFY={}", notify.as_param()));
            }
            if let Some(orcpt) = &p.orcpt {
                command.push_str(&format!(" ORCPT={orcpt}"));
            }
        }
        let r = client.command(&command, "RCPT TO").await?;
        let outcome = if r.code == 250 || r.code == 251 {
            RecipientOutcome::Accepted
        } else if r.is_permanent() {
            RecipientOutcome::PermFailed(r)
        } else {
            RecipientOutcome::TempFailed(r)
        };
        outcomes.push((rcpt.clone(), outcome));
    }
    if !outcomes
        .iter()
        .any(|(_, o)| *o == RecipientOutcome::Accepted)
    {
        let _ = client.command("QUIT", "QUIT").await;
        return Ok(DeliveryReport {
            per_recipient: outcomes,
        });
    }

    let r = client.command("DATA", "DATA").await?;
    if r.code != 354 {
        let failed = if r.is_permanent() {
            RecipientOutcome::PermFailed(r)
        } else {
            RecipientOutcome::TempFailed(r)
        };
        set_accepted(&mut outcomes, &failed);
        let _ = client.command("QUIT", "QUIT").await;
        return Ok(DeliveryReport {
            per_recipient: outcomes,
        });
    }
    client.send(&encode_data(message)).await?;
    let r = client.read_reply("end of data").await?;
    if !r.is_success() {
        let failed = if r.is_permanent() {
            RecipientOutcome::PermFailed(explain_size_refusal(r, message.len(), transfer.grown_by))
        } else {
            RecipientOutcome::TempFailed(r)
        };
        set_accepted(&mut outcomes, &failed);
    }
    // The transaction is settled; a failing QUIT changes nothing.
    let _ = client.command("QUIT", "QUIT").await;
    Ok(DeliveryReport {
        per_recipient: outcomes,
    })
}

/// The next hop's `SIZE` limit from its EHLO keywords; `None` when it states none (or 0).
fn size_limit(caps: &[String]) -> Option<usize> {
    caps.iter()
        .find_map(|c| c.strip_prefix("SIZE "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
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

/// The header block of `message` (up to the first empty line).
fn header_block(message: &[u8]) -> &[u8] {
    let header_end = message
        .windows(2)
        .position(|w| w == b"\n\n" || w == b"\n\r")
        .unwrap_or(message.len());
    &message[..header_end]
}

fn set_accepted(outcomes: &mut [(String, RecipientOutcome)], to: &RecipientOutcome) {
    for (_, o) in outcomes.iter_mut() {
        if *o == RecipientOutcome::Accepted {
            *o = to.clone();
        }
    }
}

/// The DATA payload: CRLF line ends, dot-stuffed, ending with `CRLF . CRLF`.
pub(crate) fn encode_data(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 8);
    let mut line_start = true;
    let mut i = 0;
    while i < message.len() {
        let b = message[i];
        if line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                // CRLF counts once; a bare CR becomes a line end of its own.
                if message.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
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
        i += 1;
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Client configurations are cached per (verify, CA file): building the webpki root store
/// for every message would be wasted work.
fn client_tls_config(hop: &NextHop) -> Result<Arc<rustls::ClientConfig>, String> {
    type Cache = Mutex<HashMap<(bool, Option<PathBuf>), Arc<rustls::ClientConfig>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let verify = matches!(hop.tls, TlsMode::Required { verify: true });
    let key = (verify, if verify { hop.ca_file.clone() } else { None });
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(map) = cache.lock() {
        if let Some(c) = map.get(&key) {
            return Ok(Arc::clone(c));
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match &hop.ca_file {
            Some(path) => {
                let file = File::open(path)
                    .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
                for cert in rustls_pemfile::certs(&mut StdBufReader::new(file)) {
                    let cert =
                        cert.map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!("no certificates in CA file {}", path.display()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(ring())))
            .with_no_client_auth()
    };
    let config = Arc::new(config);
    if let Ok(mut map) = cache.lock() {
        map.insert(key, Arc::clone(&config));
    }
    Ok(config)
}

/// Encryption without authentication, for opportunistic and `verify: false` hops. The
/// handshake signature is still checked so the session keys belong to the presented key.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
