//! Per-session and per-client resource limits: no client can hold a session slot forever.
//!
//! The idle timer alone restarts on every byte, so a client sending one byte at a time could
//! keep a session (and, during DATA, a transaction) open indefinitely. These limits bound a
//! session's total lifetime, the time DATA may take for the bytes received (a minimum rate),
//! the commands between two messages (NOOP/RSET/MAIL loops) and the sessions per client
//! address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The configurable limits (`[smtp]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLimits {
    /// Longest a session may last, from connect to close.
    pub max_session_time: Duration,
    /// During DATA, after a grace of one command timeout: at least this many bytes per second
    /// on average.
    pub min_data_rate: u64,
    /// Commands accepted between two messages (a transaction is MAIL, its RCPTs and DATA).
    pub max_commands_per_message: usize,
    /// Recipients per message.
    pub max_recipients: usize,
    /// Concurrent sessions from one client address.
    pub max_sessions_per_client: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_session_time: Duration::from_secs(30 * 60),
            min_data_rate: 1024,
            max_commands_per_message: 1100,
            max_recipients: 1000,
            max_sessions_per_client: 20,
        }
    }
}

/// Why a session is being ended by a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitReached {
    SessionTime,
    DataRate,
    Commands,
}

impl LimitReached {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::SessionTime => "Error: session time limit exceeded",
            Self::DataRate => "Error: data arrives too slowly",
            Self::Commands => "Error: too many commands without a message",
        }
    }
}

/// What one session has used of its limits.
pub(crate) struct SessionBudget {
    started: Instant,
    commands: usize,
}

impl SessionBudget {
    pub(crate) fn new() -> Self {
        SessionBudget {
            started: Instant::now(),
            commands: 0,
        }
    }

    /// How long the next read may wait: `timeout`, cut to what is left of the session.
    pub(crate) fn wait(
        &self,
        limits: &SessionLimits,
        timeout: Duration,
    ) -> Result<Duration, LimitReached> {
        let left = limits
            .max_session_time
            .checked_sub(self.started.elapsed())
            .filter(|d| !d.is_zero())
            .ok_or(LimitReached::SessionTime)?;
        Ok(timeout.min(left))
    }

    /// Counts one command.
    pub(crate) fn command(&mut self, limits: &SessionLimits) -> Result<(), LimitReached> {
        self.commands += 1;
        if self.commands > limits.max_commands_per_message {
            return Err(LimitReached::Commands);
        }
        Ok(())
    }

    /// A message was received: the command count starts again.
    pub(crate) fn message_done(&mut self) {
        self.commands = 0;
    }

    /// How long the next read during DATA may wait, given `received` bytes since DATA began
    /// at `data_started`: the time the minimum rate allows for them plus a grace of
    /// `command_timeout`, minus the time already spent, and within the session's lifetime.
    pub(crate) fn data_wait(
        &self,
        limits: &SessionLimits,
        command_timeout: Duration,
        data_started: Instant,
        received: usize,
    ) -> Result<Duration, LimitReached> {
        let rate = limits.min_data_rate.max(1);
        let earned = Duration::from_secs((received as u64) / rate);
        let left = (command_timeout + earned)
            .checked_sub(data_started.elapsed())
            .filter(|d| !d.is_zero())
            .ok_or(LimitReached::DataRate)?;
        let wait = self.wait(limits, command_timeout)?;
        Ok(wait.min(left))
    }
}

/// Sessions per client address, shared by the listener's sessions.
#[derive(Default)]
pub(crate) struct ClientSessions {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One session's place in [`ClientSessions`]; given back on drop.
pub(crate) struct ClientSlot {
    sessions: Arc<ClientSessions>,
    ip: IpAddr,
}

impl ClientSessions {
    /// A slot for a new session from `ip`, unless it has `max` open already.
    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= max.max(1) {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            sessions: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self
            .sessions
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
