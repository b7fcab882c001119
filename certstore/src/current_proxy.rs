//! The current proxy identity's fingerprint per internal address, for outbound mail: finding
//! it otherwise decodes the proxy CA's record and every record of the address on each message
//! (a tenth of an outbound message's CPU time, measured).
//!
//! An entry holds until the identity is due for renewal, at most [`TTL`], and until any
//! identity or the proxy CA changes: issuing, renewing, importing, rotating or importing a
//! CA clears every entry ([`CurrentProxies::clear`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The longest an entry is used before the records are read again.
pub const TTL: Duration = Duration::from_secs(60);
/// Addresses remembered at most; when full, all are forgotten.
pub const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
struct Entries {
    map: HashMap<String, (String, SystemTime)>,
    /// Bumped by every clear: a look-up that began before one does not store its result.
    generation: u64,
}

#[derive(Default)]
pub(crate) struct CurrentProxies {
    entries: Mutex<Entries>,
}

impl CurrentProxies {
    /// The generation to pass to [`CurrentProxies::insert`], read before the records are.
    pub(crate) fn generation(&self) -> u64 {
        self.entries.lock().map_or(0, |e| e.generation)
    }

    pub(crate) fn get(&self, address: &str, now: SystemTime) -> Option<String> {
        let entries = self.entries.lock().ok()?;
        let (fingerprint, until) = entries.map.get(address)?;
        (now < *until).then(|| fingerprint.clone())
    }

    /// Remembers `fingerprint` as `address`'s current identity until `renew_at` (at most
    /// [`TTL`] from `now`), unless something changed since `generation` was read.
    pub(crate) fn insert(
        &self,
        address: &str,
        fingerprint: &str,
        now: SystemTime,
        renew_at: SystemTime,
        generation: u64,
    ) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.generation != generation {
            return;
        }
        if entries.map.len() >= MAX_ENTRIES && !entries.map.contains_key(address) {
            entries.map.clear();
        }
        let until = renew_at.min(now + TTL);
        entries
            .map
            .insert(address.to_string(), (fingerprint.to_string(), until));
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.generation = entries.generation.wrapping_add(1);
            entries.map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_holds_until_renewal_or_ttl_and_a_clear_refuses_older_results() {
        let cache = CurrentProxies::default();
        let now = SystemTime::now();
        let soon = now + Duration::from_secs(5);
        cache.insert("a@x", "fp1", now, soon, cache.generation());
        assert_eq!(cache.get("a@x", now).as_deref(), Some("fp1"));
        assert_eq!(cache.get("a@x", soon), None);
        let far = now + Duration::from_secs(86_400);
        cache.insert("b@x", "fp2", now, far, cache.generation());
        assert!(cache
            .get("b@x", now + TTL - Duration::from_secs(1))
            .is_some());
        assert_eq!(cache.get("b@x", now + TTL), None);

        let before = cache.generation();
        cache.clear();
        assert_eq!(cache.get("b@x", now), None);
        cache.insert("b@x", "fp2", now, far, before);
        assert_eq!(cache.get("b@x", now), None);
    }
}
