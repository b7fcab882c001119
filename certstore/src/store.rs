//! The sled database: opening, schema version, the trees, flushing.
//!
//! All sled use stays inside this crate so the engine can be replaced.
//!
//! Durability guarantee: every method that changes state flushes the database (fsync) before
//! it returns `Ok`, so a change the caller was told succeeded survives a crash or SIGKILL.
//! Multi-record changes are sled transactions, so a crash never leaves half a change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::codec::SCHEMA_VERSION;
use crate::error::StoreError;
use crate::trust::TrustStore;

/// How the store validates partner certificates and issues proxy certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// PEM files of trusted CA certificates (each may hold several certificates).
    pub trust_anchor_files: Vec<PathBuf>,
    /// Also trust the system store under `/etc/ssl/certs` (opt-in: it holds roots trusted for
    /// TLS servers, not for e-mail).
    pub use_system_trust: bool,
    /// PEM files of untrusted CA certificates to build paths through, besides those a
    /// message carries (for partners whose mail omits its intermediates, or CRL issuers).
    pub intermediate_files: Vec<PathBuf>,
    /// CRL files (PEM or DER) to honour.
    pub crl_files: Vec<PathBuf>,
    /// What happens when a certificate's revocation status cannot be established.
    pub revocation: crate::path::RevocationMode,
    /// Fetch CRLs from the certificates' distribution points and ask their OCSP responders
    /// (http:// only, bounded, cached). Off: only `crl_files` count.
    pub fetch_revocation: bool,
    /// Certificate policies (dotted OIDs) a partner certificate must be issued under;
    /// empty = any policy.
    pub required_policies: Vec<String>,
    /// Extra free-mail/ISP domains that can never be approved (`name.*` wildcards allowed).
    pub extra_freemail_domains: Vec<String>,
    /// Validity of issued proxy certificates, in days.
    pub proxy_cert_validity_days: u32,
    /// Key type of newly issued proxy identities (existing ones keep theirs).
    pub proxy_key_type: ProxyKeyType,
    /// Every private-key operation of the store (key generation, proxy CA signing) runs on
    /// this provider. Not read from configuration files: the binary chooses it.
    #[serde(skip, default = "crypto_provider::default_provider")]
    pub crypto: &'static crypto_provider::CryptoProvider,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            trust_anchor_files: Vec::new(),
            use_system_trust: false,
            intermediate_files: Vec::new(),
            crl_files: Vec::new(),
            revocation: crate::path::RevocationMode::default(),
            fetch_revocation: true,
            required_policies: Vec::new(),
            extra_freemail_domains: Vec::new(),
            proxy_cert_validity_days: 365,
            proxy_key_type: ProxyKeyType::default(),
            crypto: crypto_provider::default_provider(),
        }
    }
}

/// `[store] proxy_key_type`: the key of a newly issued proxy identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ProxyKeyType {
    /// RSA-2048: what every S/MIME client, Outlook included, reads.
    #[default]
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// EC P-256: ECDSA-SHA256 signatures, ECDH key agreement (RFC 5753).
    #[serde(rename = "p-256")]
    P256,
}

/// Handle to the store. Cheap to clone; safe to share between threads and tokio tasks.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: sled::Db,
    pub(crate) config: StoreConfig,
    pub(crate) trust: TrustStore,
    /// "proxy_ca" -> {cert, key}
    pub(crate) proxy_ca: sled::Tree,
    /// fingerprint -> ProxyRecord
    pub(crate) proxy_certs: sled::Tree,
    /// address \0 issued-at (u64 BE) \0 fingerprint -> ()
    pub(crate) proxy_by_addr: sled::Tree,
    /// len(issuer) u32 BE ++ issuer DER ++ serial -> fingerprint
    pub(crate) proxy_by_issuer_serial: sled::Tree,
    /// subjectKeyIdentifier -> fingerprint
    pub(crate) proxy_by_ski: sled::Tree,
    /// address \0 fingerprint -> PartnerRecord
    pub(crate) partner: sled::Tree,
    /// fingerprint \0 address -> ()
    pub(crate) partner_by_fp: sled::Tree,
    /// domain \0 local part -> () (partner addresses by domain)
    pub(crate) partner_addrs: sled::Tree,
    /// domain -> DomainRecord
    pub(crate) domains: sled::Tree,
    /// id (u64 BE) -> AuditRecord
    pub(crate) audit: sled::Tree,
    /// Audit entries appended since the store was opened (paces the journal's trimming).
    pub(crate) audit_appends: std::sync::atomic::AtomicUsize,
    /// Serialises proxy issuance so two sessions never issue twice for one address.
    pub(crate) issue_lock: Mutex<()>,
    /// The validated current partner certificate per address (see [`crate::current`]).
    pub(crate) current: crate::current::CurrentCache,
    /// The current proxy identity per address (see [`crate::current_proxy`]).
    pub(crate) current_proxies: crate::current_proxy::CurrentProxies,
    /// Captures just validated and recorded (see [`crate::recent`]).
    pub(crate) recent: crate::recent::RecentCaptures,
}

/// The database holds private keys unencrypted: keep it owner-only.
#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| StoreError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

#[cfg(not(unix))]
fn restrict_permissions(_: &Path) -> Result<(), StoreError> {
    Ok(())
}

const META_SCHEMA_KEY: &[u8] = b"schema_version";
const DB_DIR: &str = "certstore.sled";

impl Store {
    /// Open (creating if missing) the store under `data_dir`. Refuses a database written by a
    /// newer schema version. Trust anchors and CRLs are loaded from `config` now.
    pub fn open(data_dir: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Io {
            path: data_dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let trust = TrustStore::load(&config)?;
        let db_path = data_dir.join(DB_DIR);
        restrict_permissions(&db_path)?;
        let db = sled::Config::new().path(&db_path).open().map_err(|e| {
            // sled's only signal that another process holds the database is this message.
            if e.to_string().contains("could not acquire lock") {
                StoreError::Locked(data_dir.display().to_string())
            } else {
                StoreError::Database(format!("cannot open {}: {e}", data_dir.display()))
            }
        })?;
        let meta = db.open_tree("meta")?;
        match meta.get(META_SCHEMA_KEY)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::CorruptRecord("schema version record".into()))?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::UnsupportedSchemaVersion {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                // Older versions would be migrated here; version 1 is the first.
            }
            None => {
                meta.insert(META_SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
        }
        let inner = Inner {
            proxy_ca: db.open_tree("proxy_ca")?,
            proxy_certs: db.open_tree("proxy_certs")?,
            proxy_by_addr: db.open_tree("proxy_by_addr")?,
            proxy_by_issuer_serial: db.open_tree("proxy_by_issuer_serial")?,
            proxy_by_ski: db.open_tree("proxy_by_ski")?,
            partner: db.open_tree("partner")?,
            partner_by_fp: db.open_tree("partner_by_fp")?,
            partner_addrs: db.open_tree("partner_addrs")?,
            domains: db.open_tree("domains")?,
            audit: db.open_tree("audit")?,
            audit_appends: std::sync::atomic::AtomicUsize::new(0),
            db,
            config,
            trust,
            issue_lock: Mutex::new(()),
            current: crate::current::CurrentCache::default(),
            recent: crate::recent::RecentCaptures::default(),
            current_proxies: crate::current_proxy::CurrentProxies::default(),
        };
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> u32 {
        SCHEMA_VERSION
    }

    /// Force everything written so far to disk. State-changing methods already do this.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The crypto provider the store was opened with (see [`StoreConfig::crypto`]).
    pub fn crypto(&self) -> &'static crypto_provider::CryptoProvider {
        self.inner.config.crypto
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_trust() -> StoreConfig {
        StoreConfig {
            use_system_trust: false,
            ..StoreConfig::default()
        }
    }

    #[test]
    fn creates_reopens_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), no_trust()).unwrap();
        assert_eq!(store.schema_version(), SCHEMA_VERSION);
        store
            .approve_domain("partner.example", crate::DomainPolicy::Smime, "t", "")
            .unwrap();
        drop(store);
        let store = Store::open(dir.path(), no_trust()).unwrap();
        assert!(store.domain("partner.example").unwrap().is_some());
        set_schema_version(&store, SCHEMA_VERSION + 1);
        drop(store);
        // sled releases its file lock from a background thread: on a loaded machine the first
        // re-open can still find it held.
        let mut err = Store::open(dir.path(), no_trust()).err().unwrap();
        for _ in 0..50 {
            if matches!(err, StoreError::UnsupportedSchemaVersion { .. }) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            err = Store::open(dir.path(), no_trust()).err().unwrap();
        }
        assert!(matches!(
            err,
            StoreError::UnsupportedSchemaVersion { found, supported }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
        ));
        assert!(err.to_string().contains("newer version"), "{err}");
    }

    #[test]
    fn bad_trust_configuration_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = StoreConfig {
            trust_anchor_files: vec![dir.path().join("nope.pem")],
            ..no_trust()
        };
        assert!(matches!(
            Store::open(dir.path(), missing),
            Err(StoreError::Io { .. })
        ));
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello").unwrap();
        let bad = StoreConfig {
            trust_anchor_files: vec![garbage.clone()],
            ..no_trust()
        };
        assert!(matches!(
            Store::open(dir.path(), bad),
            Err(StoreError::Io { .. })
        ));
        let bad_crl = StoreConfig {
            crl_files: vec![garbage],
            ..no_trust()
        };
        assert!(matches!(
            Store::open(dir.path(), bad_crl),
            Err(StoreError::Io { .. })
        ));
    }

    #[test]
    fn system_trust_is_opt_in() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(
            store.inner.trust.anchor_count(),
            0,
            "explicit anchors only by default"
        );
        drop(store);
        let config = StoreConfig {
            use_system_trust: true,
            ..StoreConfig::default()
        };
        let store = Store::open(dir.path(), config).unwrap();
        if std::path::Path::new("/etc/ssl/certs").exists() {
            assert!(store.inner.trust.anchor_count() > 10);
        }
    }

    fn set_schema_version(store: &Store, v: u32) {
        let meta = store.inner.db.open_tree("meta").unwrap();
        meta.insert(META_SCHEMA_KEY, &v.to_be_bytes()).unwrap();
        store.flush().unwrap();
    }
}
