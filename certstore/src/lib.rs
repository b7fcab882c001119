//! The gateway's persistent state, in one sled database under the data directory: the proxy
//! CA, proxy identities (every key ever issued), partner certificates with history, approved
//! partner domains and an audit journal. Nothing else opens the database.
//!
//! Durability: every state-changing method flushes before returning `Ok` (see [`store`]).

mod anchors;
mod audit;
mod certinfo;
mod codec;
mod current;
mod current_proxy;
mod domains;
mod error;
#[cfg(feature = "fault-injection")]
mod fault;
mod fetch;
mod identity;
mod import;
mod internal;
mod issue;
mod partner;
mod path;
mod proxy_ca;
mod recent;
pub mod store;
pub mod trust;
pub mod validate;

pub use anchors::TrustAnchors;
pub use audit::MAX_AUDIT_ENTRIES;
pub use audit::{AuditEntry, AuditKind};
pub use codec::SCHEMA_VERSION;
pub use current::{MAX_ENTRIES as MAX_CACHED_CURRENT, TTL as CURRENT_CACHE_TTL};
pub use domains::{is_freemail, normalise_domain, ApprovedDomain, DomainPolicy};
pub use error::{DomainError, StoreError, ValidationError};
pub use identity::{ProxyAddressSummary, ProxyIdentity, RENEW_BEFORE};
pub use import::{ImportedIdentity, PartnerImport, PartnerImportResult, MAX_IMPORT_BYTES};
pub use internal::{InternalAddresses, NotInternal};
pub use partner::{
    CaptureOutcome, PartnerCapture, PartnerCertificate, PartnerCounts, ValidationStatus,
    MAX_CERTIFICATE_BYTES, MAX_CHAIN_KEPT, MAX_CHAIN_OFFERED, MAX_REFUSED_PER_ADDRESS,
};
pub use path::{RevocationMode, ValidatedPath, MAX_OFFERED_CERTIFICATES};
pub use proxy_ca::{parse_certificate_input, ProxyCaInfo};
pub use recent::TTL as CAPTURE_CACHE_TTL;
pub use smime_pki::cert::san_email_addresses;
pub use store::{ProxyKeyType, Store, StoreConfig};
pub use validate::{KeyPurpose, ValidatedCertificate, MAX_CHAIN, MIN_RSA_BITS};
