#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test harness: a failure here fails the test that uses it
//! Helpers for end-to-end tests: an SMTP sink standing in for a next hop, and a small
//! blocking SMTP client for talking to the gateway.
//!
//! Plain threads and blocking sockets, so the helpers work the same from `#[test]` and
//! `#[tokio::test]` functions and never depend on the gateway's own SMTP code.

pub mod gateway;
pub mod openssl;
pub mod postfix;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub mail_from: String,
    /// ESMTP parameters after the reverse path in MAIL FROM (e.g. `["SIZE=12", "RET=HDRS"]`).
    pub mail_parameters: Vec<String>,
    pub rcpt_to: Vec<String>,
    /// ESMTP parameters after each forward path, in the order of `rcpt_to`.
    pub rcpt_parameters: Vec<Vec<String>>,
    /// As received, dot-unstuffed, CRLF line ends, without the final `.` line.
    pub data: Vec<u8>,
}

impl ReceivedMessage {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// How the sink answers at the end of DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkBehaviour {
    /// `250`, and the message is recorded.
    Accept,
    /// `451 4.3.0`, nothing recorded.
    TempFail,
    /// `550 5.7.1`, nothing recorded.
    PermFail,
}

#[derive(Default)]
struct State {
    messages: Vec<ReceivedMessage>,
    rcpt_replies: HashMap<String, u16>,
}

struct Shared {
    state: Mutex<State>,
    arrived: Condvar,
    behaviour: Mutex<SinkBehaviour>,
    attempts: AtomicUsize,
    /// Messages answered `250` (in both modes).
    accepted: AtomicUsize,
    /// Count accepted messages without keeping them (long benchmark runs).
    counting: AtomicBool,
    /// Advertise the DSN extension in EHLO (on by default, as Postfix does).
    offer_dsn: AtomicBool,
    /// Advertise SMTPUTF8 in EHLO (on by default, as Postfix 3.x does).
    offer_smtputf8: AtomicBool,
    /// The SIZE limit announced in EHLO (not enforced: the sender must honour it).
    size_limit: AtomicUsize,
    stopping: AtomicBool,
    /// Open connections, so `stop` can cut them; entries leave when the session ends.
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicUsize,
}

/// An SMTP server on 127.0.0.1 recording what it receives.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl SmtpSink {
    /// Starts on an ephemeral port.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test environment).
    pub fn start() -> SmtpSink {
        Self::start_with(false)
    }

    /// Starts on an ephemeral port in counting mode: accepted messages are counted
    /// ([`SmtpSink::accepted`]) but not stored, so a long run does not grow the sink's memory.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test environment).
    pub fn start_counting() -> SmtpSink {
        Self::start_with(true)
    }

    fn start_with(counting: bool) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            behaviour: Mutex::new(SinkBehaviour::Accept),
            attempts: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            counting: AtomicBool::new(counting),
            offer_dsn: AtomicBool::new(true),
            offer_smtputf8: AtomicBool::new(true),
            size_limit: AtomicUsize::new(104_857_600),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicUsize::new(0),
        });
        let mut sink = SmtpSink {
            addr,
            shared,
            accept_thread: None,
        };
        sink.run(listener);
        sink
    }

    fn run(&mut self, listener: TcpListener) {
        self.shared.stopping.store(false, Ordering::SeqCst);
        let shared = Arc::clone(&self.shared);
        self.accept_thread = Some(std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let id = shared.next_conn.fetch_add(1, Ordering::SeqCst) as u64;
                if let Ok(clone) = stream.try_clone() {
                    shared.conns.lock().unwrap().insert(id, clone);
                }
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve_conn(stream, &shared);
                    shared.conns.lock().unwrap().remove(&id);
                });
            }
        }));
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:port`, as a next-hop setting.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_behaviour(&self, b: SinkBehaviour) {
        *self.shared.behaviour.lock().unwrap() = b;
    }

    /// Answer `RCPT TO:<rcpt>` with `code` (4xx or 5xx) instead of 250.
    pub fn reject_recipient(&self, rcpt: &str, code: u16) {
        self.shared
            .state
            .lock()
            .unwrap()
            .rcpt_replies
            .insert(rcpt.to_ascii_lowercase(), code);
    }

    /// Advertise DSN (RFC 3461) in EHLO or not, from the next connection on (open ones are
    /// closed, as a reconfigured server restarts: the gateway keeps idle connections).
    pub fn set_offer_dsn(&self, offer: bool) {
        self.shared.offer_dsn.store(offer, Ordering::SeqCst);
        self.drop_connections();
    }

    /// Advertise SMTPUTF8 (RFC 6531) in EHLO or not, from the next connection on (open ones
    /// are closed).
    pub fn set_offer_smtputf8(&self, offer: bool) {
        self.shared.offer_smtputf8.store(offer, Ordering::SeqCst);
        self.drop_connections();
    }

    /// The SIZE announced in EHLO from the next connection on (open ones are closed).
    pub fn set_size_limit(&self, bytes: usize) {
        self.shared.size_limit.store(bytes, Ordering::SeqCst);
        self.drop_connections();
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.next_conn.load(Ordering::SeqCst)
    }

    /// Closes every open connection without a word (as a server whose idle timeout struck);
    /// keeps listening.
    pub fn drop_connections(&self) {
        for (_, c) in self.shared.conns.lock().unwrap().drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Switch counting mode on (messages are counted, not stored; the stored ones are
    /// dropped) or off.
    pub fn set_counting(&self, counting: bool) {
        self.shared.counting.store(counting, Ordering::SeqCst);
        if counting {
            self.shared.state.lock().unwrap().messages = Vec::new();
        }
    }

    /// Messages answered `250` so far (stored or only counted).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Messages accepted so far (none are stored in counting mode).
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.state.lock().unwrap().messages.clone()
    }

    /// DATA transactions seen (accepted or not).
    pub fn attempts(&self) -> usize {
        self.shared.attempts.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages were accepted; returns them all.
    pub fn wait_for_messages(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedMessage>> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock().unwrap();
        while state.messages.len() < n {
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "sink {}: {} message(s) after {:?}, expected {n}",
                    self.addr,
                    state.messages.len(),
                    timeout
                );
            }
            state = self
                .shared
                .arrived
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
        Ok(state.messages.clone())
    }

    /// Stops listening and drops every open connection (a hop going down).
    pub fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        self.drop_connections();
    }

    /// Listens again on the same port (a hop coming back).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.accept_thread.is_some() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e).with_context(|| format!("rebinding {}", self.addr)),
            }
        };
        self.run(listener);
        Ok(())
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_conn(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    w.write_all(b"220 sink.test ESMTP test sink\r\n")?;
    // Replies to pipelined commands (RFC 2920) go out together once the batch is read, as a
    // real server sends them: one write per reply would leave the client waiting on each.
    let mut replies: Vec<u8> = Vec::new();
    let mut mail_from: Option<String> = None;
    let mut mail_parameters: Vec<String> = Vec::new();
    let mut rcpts: Vec<String> = Vec::new();
    let mut rcpt_parameters: Vec<Vec<String>> = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 || shared.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let dsn = if shared.offer_dsn.load(Ordering::SeqCst) {
                "250-DSN\r\n"
            } else {
                ""
            };
            let utf8 = if shared.offer_smtputf8.load(Ordering::SeqCst) {
                "250-SMTPUTF8\r\n"
            } else {
                ""
            };
            let size = shared.size_limit.load(Ordering::SeqCst);
            format!("250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n{dsn}{utf8}250-SIZE {size}\r\n250 ENHANCEDSTATUSCODES\r\n")
        } else if upper.starts_with("HELO") {
            "250 sink.test\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = Some(angle(&line[10..]));
            mail_parameters = parameters(&line[10..]);
            rcpts.clear();
            rcpt_parameters.clear();
            "250 2.1.0 OK\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = angle(&line[8..]);
            let code = shared
                .state
                .lock()
                .unwrap()
                .rcpt_replies
                .get(&rcpt.to_ascii_lowercase())
                .copied();
            match code {
                Some(c) if c >= 500 => format!("{c} 5.1.1 <{rcpt}> rejected by sink\r\n"),
                Some(c) => format!("{c} 4.2.0 <{rcpt}> deferred by sink\r\n"),
                None => {
                    rcpts.push(rcpt);
                    rcpt_parameters.push(parameters(&line[8..]));
                    "250 2.1.5 OK\r\n".into()
                }
            }
        } else if upper == "DATA" {
            if mail_from.is_none() || rcpts.is_empty() {
                "503 5.5.1 need MAIL and RCPT\r\n".into()
            } else {
                replies.extend_from_slice(b"354 go ahead\r\n");
                w.write_all(&replies)?;
                replies.clear();
                let counting = shared.counting.load(Ordering::SeqCst);
                let data = if counting {
                    skip_data(&mut r)?;
                    Vec::new()
                } else {
                    read_data(&mut r)?
                };
                shared.attempts.fetch_add(1, Ordering::SeqCst);
                let behaviour = *shared.behaviour.lock().unwrap();
                let reply = match behaviour {
                    SinkBehaviour::Accept if counting => {
                        shared.accepted.fetch_add(1, Ordering::SeqCst);
                        "250 2.0.0 counted by sink\r\n"
                    }
                    SinkBehaviour::Accept => {
                        shared.accepted.fetch_add(1, Ordering::SeqCst);
                        let mut st = shared.state.lock().unwrap();
                        st.messages.push(ReceivedMessage {
                            mail_from: mail_from.take().unwrap_or_default(),
                            mail_parameters: std::mem::take(&mut mail_parameters),
                            rcpt_to: std::mem::take(&mut rcpts),
                            rcpt_parameters: std::mem::take(&mut rcpt_parameters),
                            data,
                        });
                        shared.arrived.notify_all();
                        "250 2.0.0 queued by sink\r\n"
                    }
                    SinkBehaviour::TempFail => "451 4.3.0 sink is failing temporarily\r\n",
                    SinkBehaviour::PermFail => "550 5.7.1 sink refuses the message\r\n",
                };
                mail_from = None;
                rcpts.clear();
                rcpt_parameters.clear();
                reply.into()
            }
        } else if upper == "RSET" {
            mail_from = None;
            rcpts.clear();
            rcpt_parameters.clear();
            "250 2.0.0 OK\r\n".into()
        } else if upper.starts_with("NOOP") {
            "250 2.0.0 OK\r\n".into()
        } else if upper == "QUIT" {
            replies.extend_from_slice(b"221 2.0.0 bye\r\n");
            w.write_all(&replies)?;
            return Ok(());
        } else {
            "502 5.5.1 not implemented\r\n".into()
        };
        replies.extend_from_slice(reply.as_bytes());
        if r.buffer().is_empty() {
            w.write_all(&replies)?;
            replies.clear();
        }
    }
}

/// The ESMTP parameters after the path of a MAIL or RCPT argument.
fn parameters(argument: &str) -> Vec<String> {
    argument
        .rsplit_once('>')
        .map(|(_, p)| p.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The address inside `<...>`, ignoring parameters after it.
fn angle(s: &str) -> String {
    let s = s.trim();
    match (s.find('<'), s.find('>')) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].to_string(),
        _ => s.split_whitespace().next().unwrap_or("").to_string(),
    }
}

fn read_data(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" {
            return Ok(data);
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(line);
    }
}

/// Reads a DATA section up to the final `.` line and forgets it (one line buffer, reused).
fn skip_data(r: &mut impl BufRead) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" {
            return Ok(());
        }
    }
}

/// A client session that stays open for many messages (one MAIL transaction after another,
/// `RSET` after a refused one), for load generation.
pub struct SmtpClient {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl SmtpClient {
    /// Connects, reads the greeting and says EHLO.
    pub fn connect(addr: impl ToSocketAddrs) -> anyhow::Result<Self> {
        Self::connect_with(addr, "EHLO")
    }

    /// Connects to an LMTP server: LHLO instead of EHLO.
    pub fn connect_lhlo(addr: impl ToSocketAddrs) -> anyhow::Result<Self> {
        Self::connect_with(addr, "LHLO")
    }

    fn connect_with(addr: impl ToSocketAddrs, hello: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).context("connecting")?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        stream.set_nodelay(true)?;
        let w = stream.try_clone()?;
        let mut c = SmtpClient {
            w,
            r: BufReader::new(stream),
        };
        let (code, text) = read_reply(&mut c.r)?;
        if code != 220 {
            bail!("greeting {code} {text}");
        }
        let (code, text) = c.command(&format!("{hello} client.test"))?;
        if code != 250 {
            bail!("{hello} refused: {code} {text}");
        }
        Ok(c)
    }

    /// Sends one command line and reads the reply.
    pub fn command(&mut self, line: &str) -> anyhow::Result<(u16, String)> {
        self.w.write_all(format!("{line}\r\n").as_bytes())?;
        read_reply(&mut self.r)
    }

    /// One transaction; `data` is already prepared by [`dot_stuff`]. Returns the deciding
    /// reply (end of DATA, or the first refusal). After a refusal the session is reset.
    pub fn send_prepared(
        &mut self,
        from: &str,
        rcpts: &[&str],
        data: &[u8],
    ) -> anyhow::Result<(u16, String)> {
        let reply = self.transaction(from, rcpts, data)?;
        if reply.0 >= 400 {
            self.command("RSET")?;
        }
        Ok(reply)
    }

    fn transaction(
        &mut self,
        from: &str,
        rcpts: &[&str],
        data: &[u8],
    ) -> anyhow::Result<(u16, String)> {
        let mail = self.command(&format!("MAIL FROM:<{from}>"))?;
        if mail.0 >= 400 {
            return Ok(mail);
        }
        let mut first_refusal = None;
        let mut accepted = 0;
        for rcpt in rcpts {
            let r = self.command(&format!("RCPT TO:<{rcpt}>"))?;
            if r.0 < 300 {
                accepted += 1;
            } else if first_refusal.is_none() {
                first_refusal = Some(r);
            }
        }
        if accepted == 0 {
            return first_refusal.ok_or_else(|| anyhow!("no recipients given"));
        }
        let (code, text) = self.command("DATA")?;
        if code != 354 {
            return Ok((code, text));
        }
        self.w.write_all(data)?;
        read_reply(&mut self.r)
    }

    /// `DATA`, then `message` (dot-stuffed here); the reply to the end of data.
    pub fn data(&mut self, message: &[u8]) -> anyhow::Result<(u16, String)> {
        let (code, text) = self.command("DATA")?;
        if code != 354 {
            return Ok((code, text));
        }
        self.w.write_all(&dot_stuff(message))?;
        read_reply(&mut self.r)
    }

    /// One more reply without sending anything (LMTP answers DATA once per recipient).
    pub fn reply(&mut self) -> anyhow::Result<(u16, String)> {
        read_reply(&mut self.r)
    }

    /// Says QUIT (errors ignored: the session is over either way).
    pub fn quit(mut self) {
        let _ = self.command("QUIT");
    }
}

/// The value of the first header field `name` (case-insensitive) in the header section of
/// `message`, unfolded; `None` when absent.
pub fn header(message: &str, name: &str) -> Option<String> {
    let head = message
        .split("\r\n\r\n")
        .next()
        .unwrap_or(message)
        .split("\n\n")
        .next()
        .unwrap_or(message);
    let mut found: Option<String> = None;
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(v) = found.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.trim().eq_ignore_ascii_case(name) {
                found = Some(v.trim().to_string());
            }
        }
    }
    found
}

/// Every reply of one SMTP transaction made by [`send_mail_detailed`].
#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub mail: (u16, String),
    pub rcpt: Vec<(u16, String)>,
    /// `None` when no recipient was accepted (DATA was not sent).
    pub data: Option<(u16, String)>,
}

/// Sends one message and returns the deciding reply: the answer to the end of DATA, or the
/// first refusal of MAIL/RCPT if the transaction did not get that far.
pub fn send_mail(
    addr: impl ToSocketAddrs,
    from: &str,
    rcpts: &[&str],
    message: &[u8],
) -> anyhow::Result<(u16, String)> {
    let out = send_mail_detailed(addr, from, rcpts, message)?;
    if out.mail.0 >= 400 {
        return Ok(out.mail);
    }
    if let Some(d) = out.data {
        return Ok(d);
    }
    out.rcpt
        .into_iter()
        .find(|(c, _)| *c >= 400)
        .ok_or_else(|| anyhow!("no recipients given"))
}

/// Sends one message and returns every reply.
pub fn send_mail_detailed(
    addr: impl ToSocketAddrs,
    from: &str,
    rcpts: &[&str],
    message: &[u8],
) -> anyhow::Result<SendOutcome> {
    let stream = TcpStream::connect(addr).context("connecting")?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let (code, text) = read_reply(&mut r)?;
    if code != 220 {
        bail!("greeting {code} {text}");
    }
    let cmd = |w: &mut TcpStream, r: &mut BufReader<TcpStream>, line: &str| {
        w.write_all(format!("{line}\r\n").as_bytes())?;
        read_reply(r)
    };
    let (code, text) = cmd(&mut w, &mut r, "EHLO client.test")?;
    if code != 250 {
        bail!("EHLO refused: {code} {text}");
    }
    let mail = cmd(&mut w, &mut r, &format!("MAIL FROM:<{from}>"))?;
    let mut out = SendOutcome {
        mail,
        rcpt: Vec::new(),
        data: None,
    };
    if out.mail.0 >= 400 {
        let _ = cmd(&mut w, &mut r, "QUIT");
        return Ok(out);
    }
    for rcpt in rcpts {
        out.rcpt
            .push(cmd(&mut w, &mut r, &format!("RCPT TO:<{rcpt}>"))?);
    }
    if out.rcpt.iter().any(|(c, _)| *c < 300) {
        let (code, text) = cmd(&mut w, &mut r, "DATA")?;
        if code != 354 {
            out.data = Some((code, text));
        } else {
            w.write_all(&dot_stuff(message))?;
            out.data = Some(read_reply(&mut r)?);
        }
    }
    let _ = cmd(&mut w, &mut r, "QUIT");
    Ok(out)
}

/// CRLF line ends, dot-stuffing and the final `.` line.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let text = message;
    let mut start = true;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' if text.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
                start = true;
            }
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                start = true;
            }
            _ => {
                out.push(b);
                start = false;
            }
        }
        i += 1;
    }
    if !start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Reads one reply; returns the code and the text lines joined with `\n`.
pub fn read_reply(r: &mut impl BufRead) -> anyhow::Result<(u16, String)> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            bail!("connection closed while waiting for a reply");
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.len() < 3 {
            bail!("malformed reply line {line:?}");
        }
        let code: u16 = line[..3]
            .parse()
            .with_context(|| format!("malformed reply line {line:?}"))?;
        lines.push(line.get(4..).unwrap_or("").to_string());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, lines.join("\n")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_sink_and_persistent_client() {
        let sink = SmtpSink::start_counting();
        let mut c = SmtpClient::connect(sink.addr()).unwrap();
        let data = dot_stuff(b"Subject: t\r\n\r\n.dot\r\nbody\r\n");
        for _ in 0..3 {
            assert_eq!(
                c.send_prepared("a@x.test", &["b@y.test"], &data).unwrap().0,
                250
            );
        }
        sink.reject_recipient("bad@y.test", 550);
        assert_eq!(
            c.send_prepared("a@x.test", &["bad@y.test"], &data)
                .unwrap()
                .0,
            550
        );
        assert_eq!(
            c.send_prepared("a@x.test", &["b@y.test"], &data).unwrap().0,
            250
        );
        c.quit();
        assert_eq!(sink.accepted(), 4);
        assert!(sink.messages().is_empty());
        sink.set_counting(false);
        send_mail(sink.addr(), "a@x.test", &["b@y.test"], b"x").unwrap();
        assert_eq!(sink.messages().len(), 1);
        assert_eq!(sink.accepted(), 5);
    }

    #[test]
    fn header_unfolds_and_ignores_the_body() {
        let m = "From: a@x\r\nAuthentication-Results: gw;\r\n smime=pass\r\nSubject: s\r\n\r\nX-Not: body\r\n";
        assert_eq!(
            header(m, "authentication-results").unwrap(),
            "gw; smime=pass"
        );
        assert_eq!(header(m, "Subject").unwrap(), "s");
        assert!(header(m, "X-Not").is_none());
    }

    #[test]
    fn sink_records_and_switches_behaviour() {
        let mut sink = SmtpSink::start();
        let msg = b"Subject: t\r\n\r\n.dot line\r\nbody\r\n";
        let (code, _) = send_mail(sink.addr(), "a@x.test", &["b@y.test", "c@y.test"], msg).unwrap();
        assert_eq!(code, 250);
        let got = sink.wait_for_messages(1, Duration::from_secs(5)).unwrap();
        assert_eq!(got[0].mail_from, "a@x.test");
        assert_eq!(got[0].rcpt_to, vec!["b@y.test", "c@y.test"]);
        assert_eq!(got[0].data, msg);

        sink.set_behaviour(SinkBehaviour::TempFail);
        assert_eq!(
            send_mail(sink.addr(), "", &["b@y.test"], b"x").unwrap().0,
            451
        );
        sink.set_behaviour(SinkBehaviour::PermFail);
        assert_eq!(
            send_mail(sink.addr(), "", &["b@y.test"], b"x").unwrap().0,
            550
        );
        sink.set_behaviour(SinkBehaviour::Accept);
        sink.reject_recipient("bad@y.test", 550);
        let out = send_mail_detailed(sink.addr(), "a@x.test", &["bad@y.test", "ok@y.test"], b"x")
            .unwrap();
        assert_eq!(out.rcpt[0].0, 550);
        assert_eq!(out.data.unwrap().0, 250);
        assert_eq!(
            send_mail(sink.addr(), "a@x.test", &["bad@y.test"], b"x")
                .unwrap()
                .0,
            550
        );
        assert_eq!(sink.attempts(), 4);
        assert_eq!(sink.messages().len(), 2);

        // Down, then back on the same port.
        let addr = sink.addr();
        sink.stop();
        assert!(send_mail(addr, "a@x.test", &["b@y.test"], b"x").is_err());
        sink.restart().unwrap();
        assert_eq!(sink.addr(), addr);
        assert_eq!(
            send_mail(addr, "a@x.test", &["b@y.test"], b"x").unwrap().0,
            250
        );
        assert!(sink.wait_for_messages(3, Duration::from_secs(5)).is_ok());
        assert!(sink
            .wait_for_messages(9, Duration::from_millis(100))
            .is_err());
    }
}
