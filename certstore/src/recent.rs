//! Captures of a certificate that was just validated and recorded, remembered for a short
//! time. Every signed message from a partner captures its signer's certificate; validating the
//! same path again for each message (path building, signatures, CRLs) and rewriting the same
//! record was most of an inbound message's cost after the private-key operation.
//!
//! An entry says: this certificate, offered with exactly this chain, for this address and
//! purpose, was found valid at `validated_at` and its record written. A later capture of the
//! same four uses it while validating again would give the same answer:
//! - the revocation epoch is the same (a newly fetched CRL starts a new one);
//! - the capture's time is in `[validated_at, until)`, `until` being at most [`TTL`] later and
//!   never after the earliest notAfter in the validated path (OCSP answers and CRLs that go
//!   stale are re-read after at most [`TTL`], as for the current-certificate cache);
//! - nothing about the address's records changed since (a capture that changed them, pin,
//!   block, capabilities: [`RecentCaptures::invalidate`]), and no domain approval changed
//!   ([`RecentCaptures::clear`]);
//! - the capture advertises no capabilities other than those recorded.
//!
//! Trust anchors and CRL files are read when the store opens, so a change to them is a new
//! store with an empty cache. Only valid certificates are remembered: a refused one costs a
//! validation each time, as it did, and cannot push out the entries of real partners faster
//! than valid certificates can.
//!
//! What a hit does not write: the record's last-seen time and Message-ID move only when the
//! certificate is validated again, so they lag by at most [`TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::validate::KeyPurpose;

/// Captures remembered at most; when full, expired entries go, then all.
pub const MAX_ENTRIES: usize = 4096;
/// The longest a validation is reused.
pub const TTL: Duration = Duration::from_secs(60);

/// What identifies a capture: the address, the certificate's fingerprint, the purpose and a
/// digest of the certificates the message offered (another chain may validate otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CaptureKey {
    address: String,
    fingerprint: String,
    purpose: KeyPurpose,
    offered: [u8; 32],
}

impl CaptureKey {
    pub(crate) fn new<'a>(
        address: &str,
        fingerprint: &str,
        purpose: KeyPurpose,
        offered: impl IntoIterator<Item = &'a [u8]>,
    ) -> Self {
        let mut digest = Sha256::new();
        for certificate in offered {
            // Length-prefixed, so the split between certificates is part of the digest.
            digest.update((certificate.len() as u64).to_be_bytes());
            digest.update(certificate);
        }
        Self {
            address: address.to_string(),
            fingerprint: fingerprint.to_string(),
            purpose,
            offered: digest.finalize().into(),
        }
    }
}

/// What a hit answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remembered {
    /// The record is blocked by the operator (validation still passed).
    pub blocked: bool,
}

struct Entry {
    validated_at: SystemTime,
    until: SystemTime,
    revocation_epoch: u64,
    blocked: bool,
    capabilities: Vec<String>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<CaptureKey, Entry>,
    /// Bumped by every invalidation: a capture that began before one does not store its
    /// (possibly stale) result.
    generation: u64,
}

#[derive(Default)]
pub(crate) struct RecentCaptures {
    entries: Mutex<Entries>,
}

/// A validation to remember, as [`RecentCaptures::insert`] takes it.
pub(crate) struct Validated<'a> {
    pub seen_at: SystemTime,
    /// The earliest notAfter in the validated path.
    pub path_expires: SystemTime,
    pub revocation_epoch: u64,
    pub blocked: bool,
    pub capabilities: &'a [String],
}

impl RecentCaptures {
    /// The generation to pass to [`RecentCaptures::insert`], read before validating.
    pub(crate) fn generation(&self) -> u64 {
        self.entries.lock().map_or(0, |e| e.generation)
    }

    /// The remembered capture, when it still holds for a capture at `seen_at` advertising
    /// `capabilities` (empty: keeps what was recorded).
    pub(crate) fn get(
        &self,
        key: &CaptureKey,
        seen_at: SystemTime,
        revocation_epoch: u64,
        capabilities: &[String],
    ) -> Option<Remembered> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.map.get(key)?;
        let holds = entry.validated_at <= seen_at
            && seen_at < entry.until
            && entry.revocation_epoch == revocation_epoch
            && (capabilities.is_empty() || capabilities == entry.capabilities.as_slice());
        holds.then_some(Remembered {
            blocked: entry.blocked,
        })
    }

    /// Remembers a capture found valid and recorded, unless an invalidation happened since
    /// `generation` was read.
    pub(crate) fn insert(&self, key: CaptureKey, validated: &Validated<'_>, generation: u64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.generation != generation {
            return;
        }
        let until = validated.path_expires.min(validated.seen_at + TTL);
        if until <= validated.seen_at {
            return;
        }
        if entries.map.len() >= MAX_ENTRIES && !entries.map.contains_key(&key) {
            let now = validated.seen_at;
            entries.map.retain(|_, e| now < e.until);
            if entries.map.len() >= MAX_ENTRIES {
                entries.map.clear();
            }
        }
        entries.map.insert(
            key,
            Entry {
                validated_at: validated.seen_at,
                until,
                revocation_epoch: validated.revocation_epoch,
                blocked: validated.blocked,
                capabilities: validated.capabilities.to_vec(),
            },
        );
    }

    /// Forgets the captures of these addresses.
    pub(crate) fn invalidate<'a>(&self, addresses: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.generation = entries.generation.wrapping_add(1);
            for address in addresses {
                entries.map.retain(|k, _| k.address != address);
            }
        }
    }

    /// Forgets every capture (a domain approval changed: whether a capture is recorded at all
    /// depends on it).
    pub(crate) fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.generation = entries.generation.wrapping_add(1);
            entries.map.clear();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice@partner.example";

    fn key(address: &str, offered: &[&[u8]]) -> CaptureKey {
        CaptureKey::new(address, "ab", KeyPurpose::Any, offered.iter().copied())
    }

    fn validated(seen_at: SystemTime, path_expires: SystemTime) -> Validated<'static> {
        Validated {
            seen_at,
            path_expires,
            revocation_epoch: 0,
            blocked: false,
            capabilities: &[],
        }
    }

    #[test]
    fn a_capture_is_reused_within_its_ttl_and_path_validity_only() {
        let cache = RecentCaptures::default();
        let now = SystemTime::now();
        let k = key(ALICE, &[b"intermediate"]);
        cache.insert(
            k.clone(),
            &validated(now, now + Duration::from_secs(3600)),
            cache.generation(),
        );
        assert!(cache.get(&k, now, 0, &[]).is_some());
        assert!(cache
            .get(&k, now + TTL - Duration::from_secs(1), 0, &[])
            .is_some());
        assert!(cache.get(&k, now + TTL, 0, &[]).is_none());
        // Earlier than the validation: validate again.
        assert!(cache
            .get(&k, now - Duration::from_secs(1), 0, &[])
            .is_none());
        // A new CRL.
        assert!(cache.get(&k, now, 1, &[]).is_none());

        // A path that expires before the TTL ends the entry with it.
        let short = key(ALICE, &[b"short-lived intermediate"]);
        cache.insert(
            short.clone(),
            &validated(now, now + Duration::from_secs(5)),
            cache.generation(),
        );
        assert!(cache
            .get(&short, now + Duration::from_secs(4), 0, &[])
            .is_some());
        assert!(cache
            .get(&short, now + Duration::from_secs(5), 0, &[])
            .is_none());
    }

    #[test]
    fn another_chain_purpose_or_address_is_another_capture() {
        let cache = RecentCaptures::default();
        let now = SystemTime::now();
        let later = now + Duration::from_secs(3600);
        cache.insert(
            key(ALICE, &[b"ab", b"c"]),
            &validated(now, later),
            cache.generation(),
        );
        assert!(cache
            .get(&key(ALICE, &[b"ab", b"c"]), now, 0, &[])
            .is_some());
        // The same bytes split differently are not the same chain.
        assert!(cache
            .get(&key(ALICE, &[b"a", b"bc"]), now, 0, &[])
            .is_none());
        assert!(cache.get(&key(ALICE, &[]), now, 0, &[]).is_none());
        assert!(cache
            .get(&key("bob@partner.example", &[b"ab", b"c"]), now, 0, &[])
            .is_none());
        let encrypt = CaptureKey::new(ALICE, "ab", KeyPurpose::Encrypt, [&b"ab"[..], b"c"]);
        assert!(cache.get(&encrypt, now, 0, &[]).is_none());
    }

    #[test]
    fn new_capabilities_are_not_a_hit() {
        let cache = RecentCaptures::default();
        let now = SystemTime::now();
        let k = key(ALICE, &[]);
        let recorded = vec!["2.16.840.1.101.3.4.1.42".to_string()];
        cache.insert(
            k.clone(),
            &Validated {
                capabilities: &recorded,
                ..validated(now, now + TTL)
            },
            cache.generation(),
        );
        assert!(cache.get(&k, now, 0, &[]).is_some());
        assert!(cache.get(&k, now, 0, &recorded).is_some());
        let other = vec!["2.16.840.1.101.3.4.1.46".to_string()];
        assert!(cache.get(&k, now, 0, &other).is_none());
    }

    #[test]
    fn an_invalidation_forgets_the_address_and_refuses_older_results() {
        let cache = RecentCaptures::default();
        let now = SystemTime::now();
        let later = now + Duration::from_secs(3600);
        let alice = key(ALICE, &[]);
        let bob = key("bob@partner.example", &[]);
        cache.insert(alice.clone(), &validated(now, later), cache.generation());
        cache.insert(bob.clone(), &validated(now, later), cache.generation());

        let before = cache.generation();
        cache.invalidate([ALICE]);
        assert!(cache.get(&alice, now, 0, &[]).is_none());
        assert!(cache.get(&bob, now, 0, &[]).is_some());
        // Validated before the invalidation: not stored.
        cache.insert(alice.clone(), &validated(now, later), before);
        assert!(cache.get(&alice, now, 0, &[]).is_none());

        cache.clear();
        assert!(cache.get(&bob, now, 0, &[]).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = RecentCaptures::default();
        let now = SystemTime::now();
        for i in 0..MAX_ENTRIES + 10 {
            let k = key(&format!("p{i}@partner.example"), &[]);
            cache.insert(k, &validated(now, now + TTL), cache.generation());
        }
        assert!(cache.len() <= MAX_ENTRIES);
    }
}
