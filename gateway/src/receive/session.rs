//! One SMTP session: greeting, the command loop with its state machine, DATA, STARTTLS.

use std::net::SocketAddr;
use std::sync::Arc;

use smime_pki::{Address, DomainKind};
use smtp_proto::{Error as ProtoError, Request};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument;

use super::conn::{Conn, ConnError, Line};
use super::data::DataReader;
use super::limits::{LimitReached, SessionBudget};
use super::params::{self, EnvelopeCommand, MailParams, RcptParams};
use super::xforward::{self, Forwarded};
use super::{Envelope, MessageHandler, Protocol, Reply, ServerConfig};

/// Longest command line accepted (RFC 5321 says 512; extensions make lines longer).
pub(crate) const MAX_COMMAND_LINE: usize = 4096;
/// Error replies tolerated before the session is closed with 421.
pub(crate) const MAX_BAD_COMMANDS: u32 = 10;

struct Transaction {
    mail_from: String,
    params: MailParams,
    rcpt_to: Vec<String>,
    rcpt_params: Vec<RcptParams>,
}

struct State {
    helo: Option<String>,
    tx: Option<Transaction>,
    tls: bool,
    bad_commands: u32,
    /// The client is in `trusted_clients`: it may submit mail and use XFORWARD.
    trusted: bool,
    forwarded: Forwarded,
    budget: SessionBudget,
}

enum Outcome {
    Close,
    StartTls,
}

/// Answers a connection over the session limit and closes it.
pub(crate) async fn refuse_busy(mut stream: TcpStream, config: Arc<ServerConfig>) {
    let reply = Reply::new(
        421,
        "4.7.0",
        format!("{} Too many connections, try again later", config.hostname),
    );
    let _ = tokio::time::timeout(config.command_timeout, async {
        let _ = stream.write_all(reply.to_wire().as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Runs a whole session on `stream`; never fails, logs how it ended.
pub(crate) async fn run<S, H>(
    stream: S,
    client: SocketAddr,
    config: &ServerConfig,
    handler: &H,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: MessageHandler,
{
    let mut conn = Conn::new(stream, config.command_timeout);
    let trusted = crate::cidr::Cidr::any_contains(&config.trusted_clients, client.ip());
    if !trusted {
        tracing::warn!(%client, "client is not in smtp.trusted_clients: it may not submit mail");
    }
    let mut state = State {
        helo: None,
        tx: None,
        tls: false,
        bad_commands: 0,
        trusted,
        forwarded: Forwarded::default(),
        budget: SessionBudget::new(),
    };
    let greeting = Reply::new(
        220,
        "",
        format!(
            "{} {} smime-gateway",
            config.hostname,
            config.protocol.name()
        ),
    );
    if conn.queue(&greeting).await.is_err() {
        return;
    }
    let outcome = command_loop(&mut conn, &mut state, client, config, handler, &mut stop).await;
    let _ = conn.flush().await;
    match outcome {
        Outcome::Close => {
            let mut io = conn.into_inner();
            let _ = tokio::time::timeout(config.command_timeout, io.shutdown()).await;
        }
        Outcome::StartTls => {
            let Some(tls) = config.tls.clone() else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            let io = conn.into_inner();
            let tls_stream =
                match tokio::time::timeout(config.command_timeout, acceptor.accept(io)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::info!(%client, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%client, "TLS handshake timed out");
                        return;
                    }
                };
            // RFC 3207: forget everything learnt before the handshake.
            let mut conn = Conn::new(tls_stream, config.command_timeout);
            let mut state = State {
                helo: None,
                tx: None,
                tls: true,
                bad_commands: state.bad_commands,
                trusted: state.trusted,
                forwarded: Forwarded::default(),
                budget: state.budget,
            };
            let _ = command_loop(&mut conn, &mut state, client, config, handler, &mut stop).await;
            let _ = conn.flush().await;
            let mut io = conn.into_inner();
            let _ = tokio::time::timeout(config.command_timeout, io.shutdown()).await;
        }
    }
}

fn reply(code: u16, enhanced: &str, text: impl Into<String>) -> Reply {
    Reply::new(code, enhanced, text)
}

async fn command_loop<S, H>(
    conn: &mut Conn<S>,
    state: &mut State,
    client: SocketAddr,
    config: &ServerConfig,
    handler: &H,
    stop: &mut watch::Receiver<bool>,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: MessageHandler,
{
    loop {
        let wait = match state.budget.wait(&config.limits, config.idle_timeout) {
            Ok(wait) => wait,
            Err(limit) => return close_for_limit(conn, client, limit).await,
        };
        let line = match conn.read_line(MAX_COMMAND_LINE, wait, Some(stop)).await {
            Ok(Line::Complete(line)) => line,
            Ok(Line::TooLong) => {
                if bad_command(conn, state, reply(500, "5.5.2", "Error: line too long"))
                    .await
                    .is_err()
                {
                    return Outcome::Close;
                }
                continue;
            }
            Err(ConnError::Timeout) => {
                if let Err(limit) = state.budget.wait(&config.limits, config.idle_timeout) {
                    return close_for_limit(conn, client, limit).await;
                }
                let r = reply(
                    421,
                    "4.4.2",
                    format!("{} Error: timeout exceeded", config.hostname),
                );
                let _ = conn.queue(&r).await;
                return Outcome::Close;
            }
            Err(ConnError::Shutdown) => {
                let r = reply(
                    421,
                    "4.3.2",
                    format!("{} Service shutting down", config.hostname),
                );
                let _ = conn.queue(&r).await;
                return Outcome::Close;
            }
            Err(ConnError::Closed) => return Outcome::Close,
            Err(ConnError::Io(e)) => {
                tracing::debug!(%client, error = %e, "SMTP session I/O error");
                return Outcome::Close;
            }
        };

        if let Err(limit) = state.budget.command(&config.limits) {
            return close_for_limit(conn, client, limit).await;
        }
        // XFORWARD (smtp-proto does not know it) and MAIL/RCPT (their DSN and SMTPUTF8
        // parameters, see `params`) are recognised first; smtp-proto parses the rest.
        let step = if xforward::arguments(&line).is_some() {
            handle_xforward(state, client, &line)
        } else if let Some(envelope_command) = params::parse(&line) {
            match envelope_command {
                Ok(EnvelopeCommand::Mail { from, params }) => {
                    handle_mail(state, client, config, from, params)
                }
                Ok(EnvelopeCommand::Rcpt { to, params }) => handle_rcpt(state, config, to, params),
                Err(r) => Step::Bad(r),
            }
        } else {
            match Request::parse(&mut line.iter()) {
                Ok(request) => {
                    handle_request(conn, state, client, config, handler, request.into_owned()).await
                }
                Err(e) => Step::Bad(parse_error_reply(&e)),
            }
        };
        let result = match step {
            Step::Reply(r) => conn.queue(&r).await.map(|_| None),
            Step::Replies(rs) => {
                let mut sent = Ok(None);
                for r in &rs {
                    if let Err(e) = conn.queue(r).await {
                        sent = Err(e);
                        break;
                    }
                }
                sent
            }
            Step::Bad(r) => bad_command(conn, state, r).await.map(|_| None),
            Step::Quit(r) => conn.queue(&r).await.map(|_| Some(Outcome::Close)),
            Step::StartTls => {
                conn.discard_input();
                let r = reply(220, "2.0.0", "Ready to start TLS");
                conn.queue(&r).await.map(|_| Some(Outcome::StartTls))
            }
            Step::Lost => Ok(Some(Outcome::Close)),
        };
        match result {
            Ok(None) => {}
            Ok(Some(outcome)) => return outcome,
            Err(_) => return Outcome::Close,
        }
    }
}

/// Ends the session with 421 because a limit was reached.
async fn close_for_limit<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    client: SocketAddr,
    limit: LimitReached,
) -> Outcome {
    tracing::info!(%client, ?limit, "SMTP session limit reached");
    let _ = conn.queue(&reply(421, "4.7.0", limit.text())).await;
    Outcome::Close
}

enum Step {
    Reply(Reply),
    /// LMTP's answers to DATA, one per recipient.
    Replies(Vec<Reply>),
    /// An error reply that counts towards the bad-command limit.
    Bad(Reply),
    Quit(Reply),
    StartTls,
    /// The connection broke (during DATA).
    Lost,
}

/// Sends an error reply, or 421 and an error once the client has made too many mistakes.
async fn bad_command<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    state: &mut State,
    r: Reply,
) -> Result<(), ConnError> {
    state.bad_commands += 1;
    conn.queue(&r).await?;
    if state.bad_commands >= MAX_BAD_COMMANDS {
        conn.queue(&reply(421, "4.7.0", "Too many errors, closing connection"))
            .await?;
        return Err(ConnError::Closed);
    }
    Ok(())
}

fn handle_mail(
    state: &mut State,
    client: SocketAddr,
    config: &ServerConfig,
    from: String,
    params: MailParams,
) -> Step {
    if state.helo.is_none() {
        return Step::Bad(reply(503, "5.5.1", "Error: send HELO/EHLO first"));
    }
    if state.tx.is_some() {
        return Step::Bad(reply(503, "5.5.1", "Error: nested MAIL command"));
    }
    if !state.trusted {
        return Step::Bad(reply(
            554,
            "5.7.1",
            format!(
                "client address {} may not submit mail here: this gateway accepts mail \
                 only from the organisation's mail server (smtp.trusted_clients)",
                client.ip()
            ),
        ));
    }
    if params.size > config.max_message_size {
        return Step::Reply(size_exceeded(config));
    }
    if !from.is_empty() {
        if let Err(r) = check_address(&from, params.smtputf8, "5.1.7", "sender") {
            return Step::Bad(r);
        }
    }
    state.tx = Some(Transaction {
        mail_from: from,
        params,
        rcpt_to: Vec::new(),
        rcpt_params: Vec::new(),
    });
    Step::Reply(reply(250, "2.1.0", "Sender OK"))
}

fn handle_rcpt(state: &mut State, config: &ServerConfig, to: String, params: RcptParams) -> Step {
    let Some(tx) = state.tx.as_mut() else {
        return Step::Bad(reply(503, "5.5.1", "Error: need MAIL command"));
    };
    if to != "postmaster" {
        if let Err(r) = check_address(&to, tx.params.smtputf8, "5.1.3", "recipient") {
            return Step::Bad(r);
        }
    }
    if tx.rcpt_to.len() >= config.limits.max_recipients {
        return Step::Reply(reply(452, "4.5.3", "Error: too many recipients"));
    }
    tx.rcpt_to.push(to);
    tx.rcpt_params.push(params);
    Step::Reply(reply(250, "2.1.5", "Recipient OK"))
}

/// A UTF-8 address is accepted only in a transaction the client opened with SMTPUTF8
/// (RFC 6531 §3.4 answers others 553 5.6.7).
fn check_address(address: &str, smtputf8: bool, enhanced: &str, role: &str) -> Result<(), Reply> {
    if !address.is_ascii() && !smtputf8 {
        return Err(reply(
            553,
            "5.6.7",
            format!("Error: a non-ASCII {role} address needs MAIL FROM with SMTPUTF8"),
        ));
    }
    if Address::parse(address, DomainKind::Received).is_err() {
        return Err(reply(
            553,
            enhanced,
            format!("Error: bad {role} address syntax"),
        ));
    }
    Ok(())
}

fn handle_xforward(state: &mut State, client: SocketAddr, line: &[u8]) -> Step {
    if !state.trusted {
        tracing::warn!(%client, "XFORWARD from an untrusted client refused");
        return Step::Bad(reply(
            550,
            "5.7.1",
            "XFORWARD is accepted only from trusted clients",
        ));
    }
    if state.helo.is_none() {
        return Step::Bad(reply(503, "5.5.1", "Error: send HELO/EHLO first"));
    }
    if state.tx.is_some() {
        return Step::Bad(reply(
            503,
            "5.5.1",
            "Error: XFORWARD inside a mail transaction",
        ));
    }
    match xforward::arguments(line).map(|args| xforward::apply(args, &mut state.forwarded)) {
        Some(Ok(())) => Step::Reply(reply(250, "2.0.0", "Ok")),
        Some(Err(r)) => Step::Bad(r),
        None => Step::Bad(reply(500, "5.5.2", "Error: command not recognized")),
    }
}

fn parse_error_reply(e: &ProtoError) -> Reply {
    match e {
        ProtoError::UnknownCommand => reply(500, "5.5.2", "Error: command not recognized"),
        ProtoError::InvalidSenderAddress => reply(553, "5.1.7", "Error: bad sender address syntax"),
        ProtoError::InvalidRecipientAddress => {
            reply(553, "5.1.3", "Error: bad recipient address syntax")
        }
        ProtoError::SyntaxError { syntax } => {
            reply(501, "5.5.4", format!("Syntax error, expected: {syntax}"))
        }
        ProtoError::InvalidParameter { param } => {
            reply(501, "5.5.4", format!("Invalid {param} parameter"))
        }
        ProtoError::UnsupportedParameter { param } => reply(
            555,
            "5.5.4",
            format!("Unsupported parameter {}", sanitize(param)),
        ),
        _ => reply(501, "5.5.2", "Syntax error"),
    }
}

fn size_exceeded(config: &ServerConfig) -> Reply {
    reply(
        552,
        "5.3.4",
        format!(
            "Message size exceeds fixed maximum message size ({} bytes)",
            config.max_message_size
        ),
    )
}

fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect::<String>()
}

async fn handle_request<S, H>(
    conn: &mut Conn<S>,
    state: &mut State,
    client: SocketAddr,
    config: &ServerConfig,
    handler: &H,
    request: Request<String>,
) -> Step
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: MessageHandler,
{
    let lmtp = config.protocol == Protocol::Lmtp;
    match request {
        // LMTP's LHLO is EHLO under another name (RFC 2033 §4.1); each protocol refuses the
        // other's greeting, so a client pointed at the wrong port finds out at once.
        Request::Ehlo { .. } | Request::Helo { .. } if lmtp => {
            Step::Bad(reply(500, "5.5.1", "Error: this is LMTP, send LHLO"))
        }
        Request::Lhlo { .. } if !lmtp => {
            Step::Bad(reply(500, "5.5.1", "Error: this is SMTP, not LMTP"))
        }
        Request::Ehlo { host } | Request::Lhlo { host } => {
            state.helo = Some(host.clone());
            state.tx = None;
            state.forwarded = Forwarded::default();
            let mut lines = vec![
                format!("{} Hello {}", config.hostname, sanitize(&host)),
                "PIPELINING".to_string(),
                format!("SIZE {}", config.max_message_size),
                "8BITMIME".to_string(),
                "ENHANCEDSTATUSCODES".to_string(),
                "DSN".to_string(),
                "SMTPUTF8".to_string(),
            ];
            if config.tls.is_some() && !state.tls {
                lines.push("STARTTLS".to_string());
            }
            if state.trusted {
                lines.push(xforward::ADVERTISED.to_string());
            }
            // EHLO lines carry no enhanced code (they are keywords).
            Step::Reply(Reply::new(250, "", lines.join("\n")))
        }
        Request::Helo { host } => {
            state.helo = Some(host.clone());
            state.tx = None;
            state.forwarded = Forwarded::default();
            Step::Reply(Reply::new(
                250,
                "",
                format!("{} Hello {}", config.hostname, sanitize(&host)),
            ))
        }
        // Recognised and handled before smtp-proto (see `params`); a variant it alone accepts
        // (`MAIL FROM :`, say) is not worth supporting.
        Request::Mail { .. } | Request::Rcpt { .. } => Step::Bad(reply(
            501,
            "5.5.4",
            "Syntax error, expected: MAIL FROM:<address> or RCPT TO:<address>",
        )),
        Request::Data => {
            let Some(tx) = state.tx.as_ref() else {
                return Step::Bad(reply(503, "5.5.1", "Error: need MAIL command"));
            };
            if tx.rcpt_to.is_empty() {
                return Step::Bad(reply(503, "5.5.1", "Error: need RCPT command"));
            }
            receive_data(conn, state, client, config, handler).await
        }
        Request::Rset => {
            state.tx = None;
            state.forwarded = Forwarded::default();
            Step::Reply(reply(250, "2.0.0", "OK"))
        }
        Request::Noop { .. } => Step::Reply(reply(250, "2.0.0", "OK")),
        Request::Quit => Step::Quit(reply(221, "2.0.0", "Bye")),
        Request::Vrfy { .. } => Step::Reply(reply(
            252,
            "2.5.2",
            "Cannot VRFY user, but will accept message and attempt delivery",
        )),
        Request::Help { .. } => Step::Reply(reply(214, "2.0.0", "See RFC 5321")),
        Request::StartTls => {
            if config.tls.is_none() {
                Step::Bad(reply(502, "5.5.1", "Error: command not implemented"))
            } else if state.tls {
                Step::Bad(reply(503, "5.5.1", "Error: TLS already active"))
            } else if state.tx.is_some() {
                Step::Bad(reply(
                    503,
                    "5.5.1",
                    "Error: STARTTLS inside a mail transaction",
                ))
            } else {
                Step::StartTls
            }
        }
        Request::Expn { .. }
        | Request::Auth { .. }
        | Request::Bdat { .. }
        | Request::Etrn { .. }
        | Request::Atrn { .. }
        | Request::Burl { .. } => Step::Bad(reply(502, "5.5.1", "Error: command not implemented")),
    }
}

async fn receive_data<S, H>(
    conn: &mut Conn<S>,
    state: &mut State,
    client: SocketAddr,
    config: &ServerConfig,
    handler: &H,
) -> Step
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: MessageHandler,
{
    if conn
        .queue(&reply(354, "", "End data with <CR><LF>.<CR><LF>"))
        .await
        .is_err()
    {
        return Step::Lost;
    }
    let mut reader = DataReader::new(config.max_message_size);
    let mut message = Vec::new();
    let data_started = std::time::Instant::now();
    let mut received = 0usize;
    loop {
        if conn.has_buffered_input() {
            let (used, done) = reader.feed(conn.buffered(), &mut message);
            conn.consume(used);
            received += used;
            if done {
                break;
            }
        }
        let data_wait = state.budget.data_wait(
            &config.limits,
            config.command_timeout,
            data_started,
            received,
        );
        let result = match data_wait {
            Ok(wait) => conn.fill(wait, None).await,
            Err(_) => Err(ConnError::Timeout),
        };
        match result {
            Ok(()) => {}
            Err(ConnError::Timeout) => {
                let text = match state.budget.data_wait(
                    &config.limits,
                    config.command_timeout,
                    data_started,
                    received,
                ) {
                    Err(limit) => limit.text(),
                    Ok(_) => "Error: timeout exceeded during DATA",
                };
                tracing::info!(%client, received, "DATA ended: {text}");
                let _ = conn.queue(&reply(421, "4.4.2", text)).await;
                return Step::Lost;
            }
            Err(_) => return Step::Lost,
        }
    }
    state.budget.message_done();
    let Some(tx) = state.tx.take() else {
        return Step::Lost;
    };
    if reader.overflowed() {
        tracing::info!(%client, from = %tx.mail_from, "message refused: over the size limit");
        return match config.protocol {
            Protocol::Smtp => Step::Reply(size_exceeded(config)),
            Protocol::Lmtp => Step::Replies(vec![size_exceeded(config); tx.rcpt_to.len()]),
        };
    }
    let envelope = Envelope {
        mail_from: tx.mail_from,
        params: tx.params,
        rcpt_to: tx.rcpt_to,
        rcpt_params: tx.rcpt_params,
        helo: state.helo.clone().unwrap_or_default(),
        client,
        tls: state.tls,
        // XFORWARD describes one transaction (Postfix sends it before each MAIL).
        forwarded: std::mem::take(&mut state.forwarded),
    };
    // Replies to pipelined commands before DATA are already out; flush anyway so the client
    // is not left waiting on them while the handler works.
    if conn.flush().await.is_err() {
        return Step::Lost;
    }
    let size = message.len();
    let from = envelope.mail_from.clone();
    let rcpts = envelope.rcpt_to.len();
    let forwarded = envelope.forwarded.clone();
    let queue_id = crate::msglog::new_queue_id();
    let span = crate::msglog::message_span(&queue_id, &crate::msglog::message_id(&message));
    let replies = match config.protocol {
        Protocol::Smtp => vec![
            handler
                .handle(envelope, message)
                .instrument(span.clone())
                .await,
        ],
        Protocol::Lmtp => {
            handler
                .handle_each(envelope, message)
                .instrument(span.clone())
                .await
        }
    };
    let replies: Vec<Reply> = replies
        .into_iter()
        .map(|r| crate::msglog::accepted(r, &queue_id))
        .collect();
    let answered: Vec<String> = replies.iter().map(Reply::to_string).collect();
    let outcomes: Vec<&str> = replies.iter().map(crate::msglog::outcome).collect();
    span.in_scope(|| {
        tracing::info!(
            %client,
            %from,
            rcpts,
            size,
            orig_client = forwarded.addr.as_deref().unwrap_or("-"),
            orig_helo = forwarded.helo.as_deref().unwrap_or("-"),
            login = forwarded.login.as_deref().unwrap_or("-"),
            outcome = outcomes.join(",").as_str(),
            reply = %answered.join(" | "),
            "message handled"
        )
    });
    match config.protocol {
        Protocol::Smtp => match replies.into_iter().next() {
            Some(r) => Step::Reply(r),
            None => Step::Reply(reply(451, "4.3.0", "Internal error: no reply")),
        },
        // A handler that answered for the wrong number of recipients would desynchronise
        // the client: pad or cut to exactly one reply per recipient.
        Protocol::Lmtp => {
            let mut replies = replies;
            replies.resize(
                rcpts,
                reply(451, "4.3.0", "Internal error: no reply for this recipient"),
            );
            Step::Replies(replies)
        }
    }
}
