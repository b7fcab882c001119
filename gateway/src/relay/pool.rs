//! Idle next-hop connections kept for the next message (as Postfix's connection cache):
//! setting up TCP, EHLO and STARTTLS for every message costs more than the transaction.
//!
//! A connection is handed back only after a completed exchange (its last reply read), is
//! reset with `RSET` when taken out again, and is dropped after [`IDLE_TIMEOUT`] unused,
//! [`MAX_AGE`] or [`MAX_TRANSACTIONS`]. At most [`MAX_IDLE_PER_HOP`] wait per hop; the
//! number of connections in use is not limited here (it follows the number of messages
//! relayed at once).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{NextHop, Session, TlsMode};

/// Idle connections kept per next hop.
pub(super) const MAX_IDLE_PER_HOP: usize = 8;
/// An idle connection unused this long is closed (well below the 300 s servers allow,
/// RFC 5321 §4.5.3.2.7, so the hop rarely closes it first).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is not reused after this age or this many transactions, so a hop's
/// configuration change (capabilities, certificate) is seen within bounded time.
pub(super) const MAX_AGE: Duration = Duration::from_secs(300);
pub(super) const MAX_TRANSACTIONS: u32 = 1000;

/// What makes two hops interchangeable: a connection made for one serves the other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HopKey {
    address: String,
    helo_name: String,
    tls: TlsMode,
    ca_file: Option<PathBuf>,
}

impl HopKey {
    fn of(hop: &NextHop) -> Self {
        HopKey {
            address: hop.address.clone(),
            helo_name: hop.helo_name.clone(),
            tls: hop.tls.clone(),
            ca_file: hop.ca_file.clone(),
        }
    }
}

struct Idle {
    session: Session,
    since: Instant,
}

/// The process's idle connections, by hop.
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<HashMap<HopKey, Vec<Idle>>>,
}

impl Pool {
    pub(super) fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(Pool::default)
    }

    /// The most recently used idle connection to `hop` that is still within its limits.
    pub(super) fn take(&self, hop: &NextHop) -> Option<Session> {
        let key = HopKey::of(hop);
        let mut expired = Vec::new();
        let found = {
            let Ok(mut map) = self.idle.lock() else {
                return None;
            };
            let list = map.get_mut(&key)?;
            let mut found = None;
            while let Some(idle) = list.pop() {
                if idle.since.elapsed() < IDLE_TIMEOUT && idle.session.reusable() {
                    found = Some(idle.session);
                    break;
                }
                expired.push(idle.session);
            }
            if list.is_empty() {
                map.remove(&key);
            }
            found
        };
        for session in expired {
            session.close();
        }
        found
    }

    /// Keeps `session` for the next message to `hop`, unless it cannot be reused or the hop
    /// already has [`MAX_IDLE_PER_HOP`] waiting.
    pub(super) fn put(&self, hop: &NextHop, session: Session) {
        if !session.reusable() {
            session.close();
            return;
        }
        let key = HopKey::of(hop);
        let mut closing = Vec::new();
        match self.idle.lock() {
            Ok(mut map) => {
                let list = map.entry(key).or_default();
                // Connections idle too long go first.
                let (fresh, stale): (Vec<Idle>, Vec<Idle>) = std::mem::take(list)
                    .into_iter()
                    .partition(|i| i.since.elapsed() < IDLE_TIMEOUT);
                *list = fresh;
                closing.extend(stale.into_iter().map(|i| i.session));
                if list.len() < MAX_IDLE_PER_HOP {
                    list.push(Idle {
                        session,
                        since: Instant::now(),
                    });
                } else {
                    closing.push(session);
                }
            }
            Err(_) => closing.push(session),
        }
        for session in closing {
            session.close();
        }
    }

    /// Idle connections to `hop` (for tests and diagnostics).
    #[cfg(test)]
    pub(super) fn idle_count(&self, hop: &NextHop) -> usize {
        self.idle
            .lock()
            .map(|m| m.get(&HopKey::of(hop)).map_or(0, Vec::len))
            .unwrap_or(0)
    }
}
