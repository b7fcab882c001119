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
