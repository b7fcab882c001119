//! Fault injection for tests (feature `fault-injection`): damage chosen records so that
//! later reads fail the way a damaged disk would, and callers can show that a store failure
//! is answered as temporary. Never enabled in a release build of the gateway.

use crate::domains::{normalise_address, normalise_domain};
use crate::error::StoreError;
use crate::identity::addr_prefix;
use crate::store::Store;

/// Bytes no record decodes from.
const DAMAGED: &[u8] = b"\xff damaged on purpose by a test";

impl Store {
    /// Overwrites the approval record of `domain` (which must be approved): every later
    /// look-up of the domain fails with [`StoreError::CorruptRecord`].
    pub fn damage_domain_record_for_tests(&self, domain: &str) -> Result<(), StoreError> {
        let domain = normalise_domain(domain)?;
        if self.inner.domains.get(domain.as_bytes())?.is_none() {
            return Err(StoreError::Database(format!("{domain} is not approved")));
        }
        self.inner.domains.insert(domain.as_bytes(), DAMAGED)?;
        self.flush()
    }

    /// Overwrites every proxy identity record of `address`: loading, renewing or using its
    /// keys fails with [`StoreError::CorruptRecord`]. Returns how many were damaged.
    pub fn damage_proxy_identities_for_tests(&self, address: &str) -> Result<usize, StoreError> {
        let address = normalise_address(address)?;
        let mut damaged = 0;
        for item in self.inner.proxy_by_addr.scan_prefix(addr_prefix(&address)) {
            let (_, fingerprint) = item?;
            self.inner.proxy_certs.insert(fingerprint, DAMAGED)?;
            damaged += 1;
        }
        self.flush()?;
        Ok(damaged)
    }
}
