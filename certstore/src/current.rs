//! The validated current certificate per partner address, cached for outbound mail: picking
//! it re-validates the path (chain, CRLs) on every message otherwise.
//!
//! An entry is dropped when anything that decides the choice may have changed: a capture that
//! changed the address's records, capabilities, pin/block, a newly fetched CRL (the fetcher's
//! epoch), the certificate's expiry or another candidate's start of validity, and at the
//! latest after [`TTL`] (OCSP answers, intermediates' expiry). Trust anchors and CRL files
//! are read when the store opens, so a change to them is a new store with an empty cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::partner::PartnerCertificate;

/// Addresses cached at most; when full, expired entries go, then all (a simple bound: a
/// full cache is refilled at the cost of one validation per address).
pub const MAX_ENTRIES: usize = 4096;
/// The longest an entry is used without validating again.
pub const TTL: Duration = Duration::from_secs(60);

struct Entry {
    certificate: PartnerCertificate,
    until: SystemTime,
    revocation_epoch: u64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    /// Bumped by every invalidation: a look-up that began before one does not store its
    /// (possibly stale) result.
    generation: u64,
}

#[derive(Default)]
pub(crate) struct CurrentCache {
    entries: Mutex<Entries>,
}

impl CurrentCache {
    /// The generation to pass to [`CurrentCache::insert`], read before the records are.
    pub(crate) fn generation(&self) -> u64 {
        self.entries.lock().map_or(0, |e| e.generation)
    }

    pub(crate) fn get(
        &self,
        address: &str,
        now: SystemTime,
        revocation_epoch: u64,
    ) -> Option<PartnerCertificate> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.map.get(address)?;
        (now < entry.until && entry.revocation_epoch == revocation_epoch)
            .then(|| entry.certificate.clone())
    }

    /// Caches `certificate` for `address` until `until` (capped at now + [`TTL`]), unless
    /// an invalidation happened since `generation` was read.
    pub(crate) fn insert(
        &self,
        address: &str,
        certificate: &PartnerCertificate,
        now: SystemTime,
        until: SystemTime,
        generation: u64,
        revocation_epoch: u64,
    ) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.generation != generation {
            return;
        }
        if entries.map.len() >= MAX_ENTRIES && !entries.map.contains_key(address) {
            entries.map.retain(|_, e| now < e.until);
            if entries.map.len() >= MAX_ENTRIES {
                entries.map.clear();
            }
        }
        entries.map.insert(
            address.to_string(),
            Entry {
                certificate: certificate.clone(),
                until: until.min(now + TTL),
                revocation_epoch,
            },
        );
    }

    /// Forgets what is cached for these addresses.
    pub(crate) fn invalidate<'a>(&self, addresses: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.generation = entries.generation.wrapping_add(1);
            for a in addresses {
                entries.map.remove(a);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partner::ValidationStatus;

    fn certificate(fingerprint: &str) -> PartnerCertificate {
        let now = SystemTime::now();
        PartnerCertificate {
            address: "alice@partner.example".into(),
            fingerprint_sha256: fingerprint.into(),
            certificate_der: Vec::new(),
            subject: String::new(),
            issuer: String::new(),
            serial_hex: String::new(),
            not_before: now,
            not_after: now + Duration::from_secs(3600),
            key_bits: 2048,
            signature_algorithm: String::new(),
            first_seen: now,
            last_seen: now,
            first_message_id: None,
            last_message_id: None,
            status: ValidationStatus::Valid,
            pinned: false,
            blocked: false,
            capabilities: Vec::new(),
        }
    }

    const ALICE: &str = "alice@partner.example";

    #[test]
    fn an_entry_lives_until_its_end_its_ttl_or_a_new_crl() {
        let cache = CurrentCache::default();
        let now = SystemTime::now();
        let in_10s = now + Duration::from_secs(10);
        cache.insert(ALICE, &certificate("a"), now, in_10s, cache.generation(), 7);
        let hit = cache.get(ALICE, now, 7).unwrap();
        assert_eq!(hit.fingerprint_sha256, "a");
        // The certificate's expiry (or a newer candidate's start): gone from then on.
        assert!(cache.get(ALICE, in_10s, 7).is_none());
        // A CRL fetched since: validated again.
        assert!(cache.get(ALICE, now, 8).is_none());
        // Never longer than the TTL, however late the certificate expires.
        let far = now + Duration::from_secs(86_400);
        cache.insert(ALICE, &certificate("a"), now, far, cache.generation(), 7);
        assert!(cache
            .get(ALICE, now + TTL - Duration::from_secs(1), 7)
            .is_some());
        assert!(cache.get(ALICE, now + TTL, 7).is_none());
    }

    #[test]
    fn invalidation_wins_over_a_look_up_in_flight() {
        let cache = CurrentCache::default();
        let now = SystemTime::now();
        let until = now + Duration::from_secs(30);
        cache.insert(
            ALICE,
            &certificate("old"),
            now,
            until,
            cache.generation(),
            0,
        );
        // A look-up reads the records (generation noted), then a capture changes them.
        let generation = cache.generation();
        cache.invalidate([ALICE]);
        assert!(cache.get(ALICE, now, 0).is_none());
        // The look-up's (stale) result is not stored.
        cache.insert(ALICE, &certificate("old"), now, until, generation, 0);
        assert!(cache.get(ALICE, now, 0).is_none());
        cache.insert(
            ALICE,
            &certificate("new"),
            now,
            until,
            cache.generation(),
            0,
        );
        assert_eq!(cache.get(ALICE, now, 0).unwrap().fingerprint_sha256, "new");
        // Other addresses are untouched by an invalidation of one.
        cache.insert(
            "bob@p.example",
            &certificate("b"),
            now,
            until,
            cache.generation(),
            0,
        );
        cache.invalidate([ALICE]);
        assert!(cache.get("bob@p.example", now, 0).is_some());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = CurrentCache::default();
        let now = SystemTime::now();
        let until = now + Duration::from_secs(30);
        for i in 0..MAX_ENTRIES + 10 {
            let address = format!("user{i}@p.example");
            cache.insert(
                &address,
                &certificate("x"),
                now,
                until,
                cache.generation(),
                0,
            );
            assert!(cache.len() <= MAX_ENTRIES);
        }
        assert!(cache
            .get(&format!("user{}@p.example", MAX_ENTRIES + 9), now, 0)
            .is_some());
    }
}
