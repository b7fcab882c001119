//! Reply limits over a rolling hour, per sender and in all.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::address::normalise;

pub(super) const HOUR: Duration = Duration::from_secs(3600);

/// Sender addresses tracked at most; beyond this the least recently seen are evicted, so a
/// flood of forged senders cannot grow memory without bound.
pub(super) const MAX_TRACKED_SENDERS: usize = 10_000;

/// Reply limits over a rolling hour, in memory: per sender (sub-addresses counted as their
/// base address) and for all senders together, so that many forged senders cannot make the
/// gateway send mail without bound either.
pub struct RateLimiter {
    per_hour: u32,
    global_per_hour: u32,
    max_entries: usize,
    state: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    /// Sender → times of the replies allowed within the last hour (oldest first).
    seen: HashMap<String, VecDeque<SystemTime>>,
    /// Times of every reply allowed within the last hour.
    all: VecDeque<SystemTime>,
}

/// The rate-limit slots one request took: give them back with [`RateLimiter::release`] when
/// its reply could not be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowance {
    addresses: Vec<String>,
    at: SystemTime,
}

/// Why no reply may go out now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimited {
    #[error("global rate limit of {per_hour} replies per hour reached")]
    Global { per_hour: u32 },
    #[error("rate limit of {per_hour} replies per hour reached for {sender}")]
    Sender { per_hour: u32, sender: String },
}

impl RateLimiter {
    /// `per_hour` replies per sender and `global_per_hour` replies in all, per rolling hour
    /// (0 allows none).
    pub fn new(per_hour: u32, global_per_hour: u32) -> Self {
        Self::with_capacity(per_hour, global_per_hour, MAX_TRACKED_SENDERS)
    }

    fn with_capacity(per_hour: u32, global_per_hour: u32, max_entries: usize) -> Self {
        RateLimiter {
            per_hour,
            global_per_hour,
            max_entries: max_entries.max(1),
            state: Mutex::new(Counters::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A poisoned lock only means another thread panicked mid-update; the counters are
        // still usable (if slightly stale).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether one more reply may go to every one of `senders` (any case, brackets allowed)
    /// at `now`; takes the slots when it may, none at all when it may not.
    pub fn allow(&self, senders: &[&str], now: SystemTime) -> Result<Allowance, RateLimited> {
        let mut keys: Vec<String> = senders.iter().map(|s| limit_key(s)).collect();
        keys.sort();
        keys.dedup();
        let mut state = self.lock();
        prune(&mut state.all, now);
        if state.all.len() >= self.global_per_hour as usize {
            return Err(RateLimited::Global {
                per_hour: self.global_per_hour,
            });
        }
        for key in &keys {
            if !state.seen.contains_key(key) && state.seen.len() >= self.max_entries {
                evict(&mut state.seen, self.max_entries, now);
            }
            let times = state.seen.entry(key.clone()).or_default();
            prune(times, now);
            if times.len() >= self.per_hour as usize {
                return Err(RateLimited::Sender {
                    per_hour: self.per_hour,
                    sender: key.clone(),
                });
            }
        }
        for key in &keys {
            state.seen.entry(key.clone()).or_default().push_back(now);
        }
        state.all.push_back(now);
        Ok(Allowance {
            addresses: keys,
            at: now,
        })
    }

    /// Give back the slots of a request whose reply was not sent (a temporary failure, or the
    /// next hop did not take it): retries must not use up the allowance.
    pub fn release(&self, allowance: &Allowance) {
        let mut state = self.lock();
        if let Some(pos) = state.all.iter().rposition(|t| *t == allowance.at) {
            state.all.remove(pos);
        }
        for key in &allowance.addresses {
            if let Some(times) = state.seen.get_mut(key) {
                if let Some(pos) = times.iter().rposition(|t| *t == allowance.at) {
                    times.remove(pos);
                }
                if times.is_empty() {
                    state.seen.remove(key);
                }
            }
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().seen.len()
    }
}

/// The per-sender key: the normalised address without its sub-address (`bob+x@d` → `bob@d`),
/// so `+tag` variants share one allowance.
pub(super) fn limit_key(sender: &str) -> String {
    let address = normalise(sender);
    match address.rsplit_once('@') {
        Some((local, domain)) => match local.split_once('+') {
            Some((base, _)) if !base.is_empty() => format!("{base}@{domain}"),
            _ => address,
        },
        None => address,
    }
}

/// Make room for one more sender: forget those with no reply in the last hour, then the least
/// recently seen.
pub(super) fn evict(
    seen: &mut HashMap<String, VecDeque<SystemTime>>,
    max_entries: usize,
    now: SystemTime,
) {
    seen.retain(|_, times| {
        prune(times, now);
        !times.is_empty()
    });
    if seen.len() >= max_entries {
        let oldest = seen
            .iter()
            .min_by_key(|(_, times)| times.back().copied())
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            seen.remove(&k);
        }
    }
}

/// Drop times more than an hour before `now`. Times in the future (clock stepped back) are kept:
/// forgetting them would let a clock change reset every limit.
pub(super) fn prune(times: &mut VecDeque<SystemTime>, now: SystemTime) {
    while let Some(first) = times.front() {
        match now.duration_since(*first) {
            Ok(age) if age >= HOUR => {
                times.pop_front();
            }
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn rate_limiter_rolls_over_the_hour_and_stays_bounded() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let limiter = RateLimiter::new(2, 1000);
        assert!(limiter.allow(&["a@x.example"], t0).is_ok());
        assert!(limiter
            .allow(&["<A@X.example>"], t0 + Duration::from_secs(60))
            .is_ok());
        assert!(limiter
            .allow(&["a@x.example"], t0 + Duration::from_secs(120))
            .is_err());
        assert!(limiter
            .allow(&["b@x.example"], t0 + Duration::from_secs(120))
            .is_ok());
        // The first reply leaves the window after an hour, the second a minute later.
        assert!(limiter.allow(&["a@x.example"], t0 + HOUR).is_ok());
        assert!(limiter.allow(&["a@x.example"], t0 + HOUR).is_err());
        assert!(limiter
            .allow(&["a@x.example"], t0 + HOUR + Duration::from_secs(60))
            .is_ok());
        // Released slots are given back.
        let now = t0 + 3 * HOUR;
        let limiter = RateLimiter::new(1, 1000);
        let allowance = limiter.allow(&["c@x.example"], now).unwrap();
        limiter.release(&allowance);
        assert!(limiter.allow(&["c@x.example"], now).is_ok());

        let limiter = RateLimiter::with_capacity(1, 1000, 3);
        for (i, who) in ["1@x.example", "2@x.example", "3@x.example"]
            .iter()
            .enumerate()
        {
            assert!(limiter
                .allow(&[*who], t0 + Duration::from_secs(i as u64))
                .is_ok());
        }
        // Full: the least recently seen sender is evicted.
        assert!(limiter
            .allow(&["4@x.example"], t0 + Duration::from_secs(10))
            .is_ok());
        assert_eq!(limiter.tracked(), 3);
        assert!(limiter
            .allow(&["1@x.example"], t0 + Duration::from_secs(11))
            .is_ok());
        assert!(limiter
            .allow(&["3@x.example"], t0 + Duration::from_secs(12))
            .is_err());
        // Expired entries are swept first.
        assert!(limiter.allow(&["5@x.example"], t0 + 2 * HOUR).is_ok());
        assert_eq!(limiter.tracked(), 1);
        // Sub-addresses share their base address's allowance; one request with both counts once.
        let limiter = RateLimiter::new(1, 1000);
        assert!(limiter
            .allow(&["bob+one@x.example", "bob@x.example"], t0)
            .is_ok());
        assert!(limiter.allow(&["Bob+two@X.example"], t0).is_err());
        assert!(limiter.allow(&["+x@x.example"], t0).is_ok());
        // A global limit across all senders; a refused request takes no slot.
        let limiter = RateLimiter::new(5, 3);
        for who in ["1@a.example", "2@b.example", "3@c.example"] {
            assert!(limiter.allow(&[who], t0).is_ok());
        }
        let err = limiter.allow(&["4@d.example"], t0).unwrap_err();
        assert_eq!(err, RateLimited::Global { per_hour: 3 });
        assert!(limiter.allow(&["4@d.example"], t0 + HOUR).is_ok());
        let limiter = RateLimiter::new(1, 5);
        assert!(limiter.allow(&["1@a.example"], t0).is_ok());
        assert!(limiter.allow(&["2@a.example", "1@a.example"], t0).is_err());
        assert!(limiter.allow(&["2@a.example"], t0).is_ok());
        // Zero allows nothing.
        assert!(RateLimiter::new(0, 1000)
            .allow(&["a@x.example"], t0)
            .is_err());
    }
}
