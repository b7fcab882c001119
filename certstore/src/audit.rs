//! Append-only audit journal: issuances, renewals, captures, refusals, domain changes.
//!
//! Keys are sled-generated ids (unique and increasing, also across restarts), so iterating
//! the tree backwards lists entries newest first.
//!
//! Bounded: the journal keeps about the newest [`MAX_AUDIT_ENTRIES`] entries. Every
//! [`TRIM_EVERY`] appends the entries are counted (keys only, nothing decoded) and the oldest
//! beyond the bound are dropped, so the journal exceeds it by at most that many.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::codec::{self, decode_record, encode_record};
use crate::error::StoreError;
use crate::store::Store;

/// Entries the journal keeps (the newest).
pub const MAX_AUDIT_ENTRIES: usize = 100_000;
/// Appends between two counts of the journal.
const TRIM_EVERY: usize = 256;

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    ProxyCaCreated,
    ProxyCaImported,
    ProxyCaKeyExported,
    ProxyCaRotated,
    ProxyIssued,
    ProxyRenewed,
    ProxyImported,
    PartnerCaptured,
    PartnerRefused,
    PartnerPinned,
    PartnerUnpinned,
    PartnerBlocked,
    PartnerUnblocked,
    DomainApproved,
    DomainRemoved,
    DomainRefused,
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: u64,
    #[serde(with = "codec::rfc3339")]
    pub time: SystemTime,
    pub kind: AuditKind,
    /// The address, domain or fingerprint concerned.
    pub subject: Option<String>,
    /// What happened and why, for a person.
    pub detail: String,
}

#[derive(Serialize, Deserialize)]
struct AuditRecord {
    v: u32,
    time: u64,
    kind: AuditKind,
    subject: Option<String>,
    detail: String,
}

/// An entry before it gets its id and time.
pub(crate) struct AuditDraft {
    kind: AuditKind,
    subject: Option<String>,
    detail: String,
}

impl AuditDraft {
    pub(crate) fn new(kind: AuditKind, subject: Option<String>, detail: String) -> Self {
        AuditDraft {
            kind,
            subject,
            detail,
        }
    }

    fn record(&self) -> AuditRecord {
        AuditRecord {
            v: codec::SCHEMA_VERSION,
            time: codec::to_unix(SystemTime::now()),
            kind: self.kind,
            subject: self.subject.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// Append inside a transaction so the entry commits atomically with the change it records.
pub(crate) fn append_in_tx(
    tree: &sled::transaction::TransactionalTree,
    id: u64,
    draft: &AuditDraft,
) -> Result<(), StoreError> {
    let bytes = encode_record(&draft.record())?;
    tree.insert(&id.to_be_bytes(), bytes)
        .map_err(|e| StoreError::Database(format!("{e:?}")))?;
    Ok(())
}

impl Store {
    /// Append an entry on its own (for events with no other state change, e.g. refusals).
    /// Flushed before returning.
    pub(crate) fn audit_now(&self, draft: AuditDraft) -> Result<(), StoreError> {
        let id = self.inner.db.generate_id()?;
        self.inner
            .audit
            .insert(id.to_be_bytes(), encode_record(&draft.record())?)?;
        self.audit_appended()?;
        self.flush()
    }

    /// Call after an entry was appended: now and then, drop the oldest beyond the bound.
    pub(crate) fn audit_appended(&self) -> Result<(), StoreError> {
        let appended = self.inner.audit_appends.fetch_add(1, Ordering::Relaxed);
        if appended.is_multiple_of(TRIM_EVERY) {
            self.trim_audit(MAX_AUDIT_ENTRIES)?;
        }
        Ok(())
    }

    /// Drop the oldest entries until at most `max` are left.
    pub(crate) fn trim_audit(&self, max: usize) -> Result<(), StoreError> {
        let mut len = self.inner.audit.len();
        while len > max {
            if self.inner.audit.pop_min()?.is_none() {
                break;
            }
            len -= 1;
        }
        Ok(())
    }

    /// Journal entries newest first, at most `limit`, optionally of one kind only.
    pub fn audit(
        &self,
        limit: usize,
        kind: Option<AuditKind>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.audit.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let record: AuditRecord = decode_record(&v)?;
            if kind.is_some_and(|want| want != record.kind) {
                continue;
            }
            let id = <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::CorruptRecord("audit key is not 8 bytes".into()))?;
            out.push(AuditEntry {
                id,
                time: codec::from_unix(record.time),
                kind: record.kind,
                subject: record.subject,
                detail: record.detail,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::DomainPolicy;
    use crate::store::StoreConfig;

    #[test]
    fn the_journal_is_trimmed_to_its_newest_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            StoreConfig {
                use_system_trust: false,
                ..Default::default()
            },
        )
        .unwrap();
        for i in 0..30 {
            store
                .approve_domain(&format!("d{i}.example"), DomainPolicy::Smime, "op", "")
                .unwrap();
        }
        assert_eq!(store.audit(usize::MAX, None).unwrap().len(), 30);
        store.trim_audit(10).unwrap();
        let left = store.audit(usize::MAX, None).unwrap();
        assert_eq!(left.len(), 10);
        assert_eq!(left[0].subject.as_deref(), Some("d29.example"));
        assert_eq!(left[9].subject.as_deref(), Some("d20.example"));
        // Appends pace the trimming: the first append of a run counts the journal.
        store.trim_audit(MAX_AUDIT_ENTRIES).unwrap();
        assert_eq!(store.audit(usize::MAX, None).unwrap().len(), 10);
    }
}
