//! A buffered SMTP connection: bounded line reads, queued replies flushed before blocking.
//!
//! Our own buffer (rather than `BufReader`) because STARTTLS must be able to see and discard
//! whatever the client pipelined after the command, and because DATA consumes the buffer
//! directly without line splitting.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::Reply;

/// Read buffer size; must exceed the longest command line we accept.
const BUF_SIZE: usize = 16 * 1024;
/// Queued replies are flushed once this much is pending, so a client that pipelines without
/// reading cannot make us buffer without bound.
const WRITE_HIGH_WATER: usize = 16 * 1024;

#[derive(Debug)]
pub(crate) enum ConnError {
    /// The peer closed the connection.
    Closed,
    /// No data within the allowed time.
    Timeout,
    /// The server is shutting down and the session was idle.
    Shutdown,
    Io(std::io::Error),
}

impl From<std::io::Error> for ConnError {
    fn from(e: std::io::Error) -> Self {
        ConnError::Io(e)
    }
}

pub(crate) enum Line {
    /// A complete line, including its line end.
    Complete(Vec<u8>),
    /// The line exceeded the limit; it has been consumed and dropped.
    TooLong,
}

pub(crate) struct Conn<S> {
    io: S,
    rbuf: Box<[u8]>,
    start: usize,
    end: usize,
    wbuf: Vec<u8>,
    write_timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub(crate) fn new(io: S, write_timeout: Duration) -> Self {
        Conn {
            io,
            rbuf: vec![0u8; BUF_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
            wbuf: Vec::new(),
            write_timeout,
        }
    }

    /// Whether the client has sent bytes we have not consumed yet.
    pub(crate) fn has_buffered_input(&self) -> bool {
        self.start < self.end
    }

    /// Drops buffered input (STARTTLS: nothing sent before the handshake may be trusted).
    pub(crate) fn discard_input(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    pub(crate) fn into_inner(self) -> S {
        self.io
    }

    pub(crate) fn buffered(&self) -> &[u8] {
        // start <= end <= rbuf.len() always holds.
        self.rbuf.get(self.start..self.end).unwrap_or_default()
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub(crate) async fn queue(&mut self, reply: &Reply) -> Result<(), ConnError> {
        self.queue_raw(reply.to_wire().as_bytes()).await
    }

    pub(crate) async fn queue_raw(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.wbuf.extend_from_slice(bytes);
        if self.wbuf.len() >= WRITE_HIGH_WATER {
            self.flush().await?;
        }
        Ok(())
    }

    pub(crate) async fn flush(&mut self) -> Result<(), ConnError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let write = async {
            self.io.write_all(&self.wbuf).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(self.write_timeout, write).await {
            Ok(Ok(())) => {
                self.wbuf.clear();
                Ok(())
            }
            Ok(Err(e)) => Err(ConnError::Io(e)),
            Err(_) => Err(ConnError::Timeout),
        }
    }

    /// Reads more bytes into the buffer, flushing queued replies first (pipelining: replies
    /// go out when we have nothing left to process). With `stop`, a shutdown signal ends the
    /// wait.
    pub(crate) async fn fill(
        &mut self,
        timeout: Duration,
        stop: Option<&mut watch::Receiver<bool>>,
    ) -> Result<(), ConnError> {
        self.flush().await?;
        if self.start > 0 {
            self.rbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let Some(free @ [_, ..]) = self.rbuf.get_mut(self.end..) else {
            // Callers consume before refilling; a full buffer here is a logic error, not
            // something to wait on.
            return Err(ConnError::Io(std::io::Error::other("read buffer full")));
        };
        let read = tokio::time::timeout(timeout, self.io.read(free));
        let result = match stop {
            Some(stop) => {
                if *stop.borrow() {
                    return Err(ConnError::Shutdown);
                }
                tokio::select! {
                    r = read => r,
                    _ = stop.changed() => return Err(ConnError::Shutdown),
                }
            }
            None => read.await,
        };
        match result {
            Ok(Ok(0)) => Err(ConnError::Closed),
            Ok(Ok(n)) => {
                self.end += n;
                Ok(())
            }
            Ok(Err(e)) => Err(ConnError::Io(e)),
            Err(_) => Err(ConnError::Timeout),
        }
    }

    /// Reads one line of at most `max` bytes (line end included). Longer lines are read to
    /// their end and dropped without being buffered.
    pub(crate) async fn read_line(
        &mut self,
        max: usize,
        idle_timeout: Duration,
        mut stop: Option<&mut watch::Receiver<bool>>,
    ) -> Result<Line, ConnError> {
        let max = max.min(BUF_SIZE);
        let mut discarding = false;
        loop {
            let avail = self.buffered();
            let newline = avail.iter().position(|&b| b == b'\n');
            if let Some(line) = newline.and_then(|i| avail.get(..=i)) {
                let line = line.to_vec();
                self.consume(line.len());
                return Ok(if discarding || line.len() > max {
                    Line::TooLong
                } else {
                    Line::Complete(line)
                });
            }
            if avail.len() >= max {
                discarding = true;
                self.start = 0;
                self.end = 0;
            }
            // Only an idle session (nothing received yet) may be interrupted by shutdown.
            let stop_now = if self.start == self.end && !discarding {
                stop.as_deref_mut()
            } else {
                None
            };
            self.fill(idle_timeout, stop_now).await?;
        }
    }
}
