//! The SMTP command parser and session state machine: the input is everything a client sends
//! (commands, pipelining, DATA with dot-stuffing, XFORWARD), read from memory. Every byte the
//! server writes back must be a well-formed reply line.
#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use gateway::receive::{serve_stream, Envelope, MessageHandler, Reply, ServerConfig};
use libfuzzer_sys::fuzz_target;
use smime_gateway_fuzz::within_cpu_budget;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client's bytes in, the server's replies collected.
struct Wire<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl AsyncRead for Wire<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Small reads, so command lines and DATA are split across reads as on a real socket.
        let n = buf.remaining().min(self.input.len()).min(97);
        let (now, rest) = self.input.split_at(n);
        buf.put_slice(now);
        self.input = rest;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.output.extend_from_slice(b);
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct Accept;

impl MessageHandler for Accept {
    async fn handle(&self, envelope: Envelope, message: Vec<u8>) -> Reply {
        assert!(
            !envelope.rcpt_to.is_empty(),
            "a message reached the handler without recipients"
        );
        Reply::ok_with(format!("{} bytes", message.len()))
    }
}

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
static CONFIG: OnceLock<ServerConfig> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    let config = CONFIG.get_or_init(|| {
        let mut c = ServerConfig::new("gw.fuzz.example");
        c.max_message_size = 64 * 1024;
        c
    });
    let client = "127.0.0.1:2525".parse().unwrap();
    let output = within_cpu_budget("smtp", data.len(), || {
        runtime.block_on(async {
            let mut wire = Wire {
                input: data,
                output: Vec::new(),
            };
            serve_stream(&mut wire, client, config, &Accept).await;
            wire.output
        })
    });
    assert!(
        output.ends_with(b"\r\n"),
        "the last reply is not terminated"
    );
    for line in output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let ok = line.len() >= 5
            && line.len() <= 514
            && line[..3].iter().all(u8::is_ascii_digit)
            && (line[3] == b' ' || line[3] == b'-')
            && line.ends_with(b"\r")
            && !line[..line.len() - 1].iter().any(|&b| b == b'\r' || b == 0);
        assert!(
            ok,
            "malformed reply line: {:?}",
            String::from_utf8_lossy(line)
        );
    }
});
