//! Proxy identities: the key pair and certificate the gateway holds for an internal address.
//!
//! Every key ever issued is kept (inbound mail encrypted to an old certificate must still
//! decrypt). Indexes: by address (issue order), by issuer+serial, by subjectKeyIdentifier.

use std::sync::PoisonError;
use std::time::{Duration, SystemTime};

use const_oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER;
use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use x509_cert::ext::pkix::AuthorityKeyIdentifier;
use zeroize::Zeroizing;

use crate::audit::{AuditDraft, AuditKind};
use crate::certinfo::ParsedCert;
use crate::codec::{self, decode_record, encode_record, hexbytes};
use crate::domains::normalise_address;
use crate::error::StoreError;
use crate::issue;
use crate::store::Store;

/// `ensure_proxy_identity` issues a fresh certificate when the current one expires sooner.
pub const RENEW_BEFORE: Duration = Duration::from_secs(7 * 86_400);

/// A proxy key pair and certificate.
#[derive(Clone)]
pub struct ProxyIdentity {
    pub address: String,
    pub certificate_der: Vec<u8>,
    pub private_key_pkcs8_der: Zeroizing<Vec<u8>>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub serial_hex: String,
    pub fingerprint_sha256: String,
}

impl std::fmt::Debug for ProxyIdentity {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyIdentity")
            .field("address", &self.address)
            .field("serial_hex", &self.serial_hex)
            .field("fingerprint_sha256", &self.fingerprint_sha256)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// One line of the proxy address list.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyAddressSummary {
    pub address: String,
    /// Keys ever issued for the address.
    pub key_count: usize,
    pub current_fingerprint: Option<String>,
    #[serde(serialize_with = "ser_opt_time")]
    pub current_not_after: Option<SystemTime>,
}

fn ser_opt_time<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => codec::rfc3339::serialize(t, s),
        None => s.serialize_none(),
    }
}

#[derive(Serialize, Deserialize)]
struct ProxyRecord {
    v: u32,
    address: String,
    #[serde(with = "hexbytes")]
    cert: Vec<u8>,
    #[serde(with = "hexbytes")]
    key_pkcs8: Vec<u8>,
    not_before: u64,
    not_after: u64,
    serial_hex: String,
    fingerprint: String,
    issued_at: u64,
    /// Imported as an old key (`--old`): decrypts old mail, never signs or becomes current.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    decrypt_only: bool,
}

impl ProxyRecord {
    fn into_identity(self) -> ProxyIdentity {
        ProxyIdentity {
            address: self.address,
            certificate_der: self.cert,
            private_key_pkcs8_der: Zeroizing::new(self.key_pkcs8),
            not_before: codec::from_unix(self.not_before),
            not_after: codec::from_unix(self.not_after),
            serial_hex: self.serial_hex,
            fingerprint_sha256: self.fingerprint,
        }
    }

    fn usable_at(&self, now: SystemTime) -> bool {
        !self.decrypt_only
            && codec::from_unix(self.not_before) <= now + issue_skew()
            && now < codec::from_unix(self.not_after)
    }
}

/// Our certificates are backdated by an hour; allow that much in "valid now".
fn issue_skew() -> Duration {
    Duration::from_secs(3600)
}

pub(crate) fn addr_prefix(address: &str) -> Vec<u8> {
    let mut k = address.as_bytes().to_vec();
    k.push(0);
    k
}

/// Leading zero bytes carry no value in a positive serial; callers may or may not keep them.
fn trim_serial(serial: &[u8]) -> &[u8] {
    let first = serial
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(serial.len().saturating_sub(1));
    serial.get(first..).unwrap_or(serial)
}

fn issuer_serial_key(issuer_der: &[u8], serial: &[u8]) -> Vec<u8> {
    let serial = trim_serial(serial);
    let mut k = Vec::with_capacity(4 + issuer_der.len() + serial.len());
    k.extend_from_slice(&(issuer_der.len() as u32).to_be_bytes());
    k.extend_from_slice(issuer_der);
    k.extend_from_slice(serial);
    k
}

impl Store {
    /// The current proxy identity of `address`, issuing one if there is none or it expires
    /// within [`RENEW_BEFORE`].
    pub fn ensure_proxy_identity(&self, address: &str) -> Result<ProxyIdentity, StoreError> {
        let address = normalise_address(address)?;
        let now = SystemTime::now();
        let ca = self.ca_certificate()?;
        if let Some(id) = self.current_record(&address, now + RENEW_BEFORE, &ca)? {
            return Ok(id.into_identity());
        }
        // Key generation happens outside the lock; a racing session may win, then ours is
        // dropped and theirs returned.
        let fresh = self.prepare_identity(&address)?;
        let _guard = self
            .inner
            .issue_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A rotation may have happened while the key was generated: then issue again.
        let ca = self.ca_certificate()?;
        if let Some(id) = self.current_record(&address, now + RENEW_BEFORE, &ca)? {
            return Ok(id.into_identity());
        }
        let fresh = if issued_by(&fresh.cert, &ca)? {
            fresh
        } else {
            self.prepare_identity(&address)?
        };
        self.store_identity(fresh, AuditKind::ProxyIssued, false)
    }

    /// The SHA-256 fingerprint of [`Store::ensure_proxy_identity`]'s identity, remembered
    /// per address (see [`crate::current_proxy`]): a caller that keeps parsed keys by
    /// fingerprint then reads no record at all for an address it signed for recently.
    pub fn ensure_proxy_fingerprint(&self, address: &str) -> Result<String, StoreError> {
        let address = normalise_address(address)?;
        let now = SystemTime::now();
        if let Some(fingerprint) = self.inner.current_proxies.get(&address, now) {
            return Ok(fingerprint);
        }
        let generation = self.inner.current_proxies.generation();
        let identity = self.ensure_proxy_identity(&address)?;
        // Due for renewal RENEW_BEFORE its end: ensure_proxy_identity issues anew then.
        let renew_at = identity.not_after.checked_sub(RENEW_BEFORE).unwrap_or(now);
        self.inner.current_proxies.insert(
            &address,
            &identity.fingerprint_sha256,
            now,
            renew_at,
            generation,
        );
        Ok(identity.fingerprint_sha256)
    }

    /// Issue a new key and certificate for `address`; earlier keys are kept.
    pub fn renew_proxy_identity(&self, address: &str) -> Result<ProxyIdentity, StoreError> {
        let address = normalise_address(address)?;
        let fresh = self.prepare_identity(&address)?;
        let _guard = self
            .inner
            .issue_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let kind = if self.proxy_records(&address)?.is_empty() {
            AuditKind::ProxyIssued
        } else {
            AuditKind::ProxyRenewed
        };
        self.store_identity(fresh, kind, false)
    }

    /// Store a key pair brought from another gateway for `address` (checked by the caller to
    /// be internal). `decrypt_only`: an old key, kept for old mail only. Otherwise it becomes
    /// the current identity, so its certificate must be valid now and issued by the current
    /// proxy CA (import the old gateway's CA at `init` first).
    pub fn import_proxy_identity(
        &self,
        address: &str,
        imported: &crate::import::ImportedIdentity,
        decrypt_only: bool,
    ) -> Result<ProxyIdentity, StoreError> {
        let address = normalise_address(address)?;
        let ca = self.ca_certificate()?;
        if !decrypt_only {
            if !imported.valid_at(SystemTime::now()) {
                return Err(StoreError::UnusableCertificate(
                    "it is expired or not yet valid; import it as an old key (--old) to keep \
                     decrypting old mail"
                        .into(),
                ));
            }
            if !issued_by(&imported.cert.der, &ca)? {
                return Err(StoreError::UnusableCertificate(format!(
                    "it is issued by {}, not by the current proxy CA {}; import it as an old key \
                     (--old), or initialise with that CA (init --import-ca-cert)",
                    imported.cert.issuer(),
                    ca.subject()
                )));
            }
        }
        let _guard = self
            .inner
            .issue_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self
            .inner
            .proxy_certs
            .contains_key(imported.cert.fingerprint.as_bytes())?
        {
            return Err(StoreError::IdentityExists(
                imported.cert.fingerprint.clone(),
            ));
        }
        let prepared = Prepared {
            address,
            cert: imported.cert.der.clone(),
            key_pkcs8: imported.key_pkcs8.clone(),
        };
        self.store_identity(prepared, AuditKind::ProxyImported, decrypt_only)
    }

    /// The newest proxy identity of `address` that is valid now, without issuing.
    pub fn current_proxy_identity(
        &self,
        address: &str,
    ) -> Result<Option<ProxyIdentity>, StoreError> {
        let address = normalise_address(address)?;
        if !self.is_initialised() {
            return Ok(None);
        }
        let ca = self.ca_certificate()?;
        Ok(self
            .current_record(&address, SystemTime::now(), &ca)?
            .map(ProxyRecord::into_identity))
    }

    /// Every identity ever issued for `address`, newest first (for decryption).
    pub fn proxy_identities(&self, address: &str) -> Result<Vec<ProxyIdentity>, StoreError> {
        let address = normalise_address(address)?;
        Ok(self
            .proxy_records(&address)?
            .into_iter()
            .map(ProxyRecord::into_identity)
            .collect())
    }

    /// The SHA-256 fingerprints of every identity ever issued for `address`, newest first,
    /// read from the index alone: a caller that keeps parsed identities by fingerprint
    /// decodes a record (and its key) only for one it has not seen.
    pub fn proxy_fingerprints(&self, address: &str) -> Result<Vec<String>, StoreError> {
        let address = normalise_address(address)?;
        self.inner
            .proxy_by_addr
            .scan_prefix(addr_prefix(&address))
            .rev()
            .map(|item| {
                let (_, fp) = item?;
                String::from_utf8(fp.to_vec()).map_err(StoreError::corrupt_record)
            })
            .collect()
    }

    /// The identity whose certificate has this SHA-256 fingerprint (as
    /// [`ProxyIdentity::fingerprint_sha256`] writes it).
    pub fn proxy_identity_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<ProxyIdentity>, StoreError> {
        Ok(self
            .proxy_record_by_fp(fingerprint.as_bytes())?
            .map(ProxyRecord::into_identity))
    }

    /// The identity whose certificate has this issuer (Name DER) and serial (INTEGER
    /// content bytes; leading zeros ignored), as named by CMS IssuerAndSerialNumber.
    pub fn proxy_identity_by_issuer_serial(
        &self,
        issuer_der: &[u8],
        serial: &[u8],
    ) -> Result<Option<ProxyIdentity>, StoreError> {
        let key = issuer_serial_key(issuer_der, serial);
        match self.inner.proxy_by_issuer_serial.get(key)? {
            Some(fp) => self
                .proxy_record_by_fp(&fp)
                .map(|r| r.map(ProxyRecord::into_identity)),
            None => Ok(None),
        }
    }

    /// The identity whose certificate has this subjectKeyIdentifier.
    pub fn proxy_identity_by_ski(&self, ski: &[u8]) -> Result<Option<ProxyIdentity>, StoreError> {
        match self.inner.proxy_by_ski.get(ski)? {
            Some(fp) => self
                .proxy_record_by_fp(&fp)
                .map(|r| r.map(ProxyRecord::into_identity)),
            None => Ok(None),
        }
    }

    /// Every internal address with a proxy identity, sorted.
    pub fn proxy_addresses(&self) -> Result<Vec<ProxyAddressSummary>, StoreError> {
        let now = SystemTime::now();
        // Without a CA there are no identities to list.
        let ca = match self.ca_certificate() {
            Ok(ca) => ca,
            Err(StoreError::NotInitialised) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out: Vec<ProxyAddressSummary> = Vec::new();
        for item in self.inner.proxy_by_addr.iter() {
            let (k, fp) = item?;
            let address = k
                .split(|b| *b == 0)
                .next()
                .and_then(|a| std::str::from_utf8(a).ok())
                .ok_or_else(|| StoreError::CorruptRecord("proxy address index key".into()))?
                .to_string();
            let record = self.proxy_record_by_fp(&fp)?.ok_or_else(|| {
                StoreError::CorruptRecord(format!("proxy index of {address} dangles"))
            })?;
            let summary = match out.last_mut() {
                Some(s) if s.address == address => s,
                _ => {
                    out.push(ProxyAddressSummary {
                        address,
                        key_count: 0,
                        current_fingerprint: None,
                        current_not_after: None,
                    });
                    out.last_mut()
                        .ok_or_else(|| StoreError::CorruptRecord("unreachable".into()))?
                }
            };
            summary.key_count += 1;
            // Index order is issue order, so a later usable record replaces an earlier one.
            if record.usable_at(now) && issued_by(&record.cert, &ca)? {
                summary.current_fingerprint = Some(record.fingerprint.clone());
                summary.current_not_after = Some(codec::from_unix(record.not_after));
            }
        }
        Ok(out)
    }

    fn proxy_record_by_fp(&self, fp: &[u8]) -> Result<Option<ProxyRecord>, StoreError> {
        match self.inner.proxy_certs.get(fp)? {
            Some(v) => Ok(Some(decode_record(&v)?)),
            None => Ok(None),
        }
    }

    /// Records of `address`, newest first.
    fn proxy_records(&self, address: &str) -> Result<Vec<ProxyRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .inner
            .proxy_by_addr
            .scan_prefix(addr_prefix(address))
            .rev()
        {
            let (_, fp) = item?;
            if let Some(r) = self.proxy_record_by_fp(&fp)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Newest record usable at `at` (pass a later time to demand remaining validity) and
    /// issued by `ca` (after a rotation, certificates of the old CA are only for old mail).
    fn current_record(
        &self,
        address: &str,
        at: SystemTime,
        ca: &ParsedCert,
    ) -> Result<Option<ProxyRecord>, StoreError> {
        for item in self
            .inner
            .proxy_by_addr
            .scan_prefix(addr_prefix(address))
            .rev()
        {
            let (_, fp) = item?;
            if let Some(r) = self.proxy_record_by_fp(&fp)? {
                if r.usable_at(at) && issued_by(&r.cert, ca)? {
                    return Ok(Some(r));
                }
            }
        }
        Ok(None)
    }

    fn prepare_identity(&self, address: &str) -> Result<Prepared, StoreError> {
        let ca = self.ca_material()?;
        let key = issue::generate_proxy_key(self.crypto(), self.inner.config.proxy_key_type)?;
        let cert = issue::build_proxy(
            address,
            &key.key,
            ca.subject(),
            &ca.key,
            ca.cert.not_after(),
            self.inner.config.proxy_cert_validity_days,
        )?;
        Ok(Prepared {
            address: address.to_string(),
            cert,
            key_pkcs8: key.pkcs8,
        })
    }

    fn store_identity(
        &self,
        p: Prepared,
        kind: AuditKind,
        decrypt_only: bool,
    ) -> Result<ProxyIdentity, StoreError> {
        let parsed = ParsedCert::parse(&p.cert).map_err(StoreError::build)?;
        let ski = parsed.subject_key_identifier().map_err(StoreError::build)?;
        // Ours always carry one; an imported certificate without it is found by issuer and
        // serial only (which is then what senders use).
        if ski.is_none() && kind != AuditKind::ProxyImported {
            return Err(StoreError::Build(
                "issued certificate lacks a key identifier".into(),
            ));
        }
        let record = ProxyRecord {
            v: codec::SCHEMA_VERSION,
            address: p.address.clone(),
            cert: p.cert.clone(),
            key_pkcs8: p.key_pkcs8.to_vec(),
            not_before: codec::to_unix(parsed.not_before()),
            not_after: codec::to_unix(parsed.not_after()),
            serial_hex: parsed.serial_hex(),
            fingerprint: parsed.fingerprint.clone(),
            issued_at: codec::to_unix(SystemTime::now()),
            decrypt_only,
        };
        let bytes = Zeroizing::new(encode_record(&record)?);
        let seq = self.inner.db.generate_id()?;
        let audit_id = self.inner.db.generate_id()?;
        let mut addr_key = addr_prefix(&p.address);
        addr_key.extend_from_slice(&seq.to_be_bytes());
        let is_key = issuer_serial_key(&parsed.issuer_der, parsed.serial_bytes());
        let fp = parsed.fingerprint.as_bytes();
        let verb = match kind {
            AuditKind::ProxyRenewed => "renewed",
            AuditKind::ProxyImported if decrypt_only => "imported as an old (decrypt-only) key",
            AuditKind::ProxyImported => "imported",
            _ => "issued",
        };
        let draft = AuditDraft::new(
            kind,
            Some(p.address.clone()),
            format!(
                "proxy certificate {verb}: serial {}, fingerprint {}",
                record.serial_hex, record.fingerprint
            ),
        );
        let inner = &self.inner;
        (
            &inner.proxy_certs,
            &inner.proxy_by_addr,
            &inner.proxy_by_issuer_serial,
            &inner.proxy_by_ski,
            &inner.audit,
        )
            .transaction(|(certs, by_addr, by_is, by_ski, audit)| {
                certs.insert(fp, bytes.as_slice())?;
                by_addr.insert(addr_key.as_slice(), fp)?;
                by_is.insert(is_key.as_slice(), fp)?;
                if let Some(ski) = &ski {
                    by_ski.insert(ski.as_slice(), fp)?;
                }
                crate::audit::append_in_tx(audit, audit_id, &draft)
                    .map_err(ConflictableTransactionError::Abort)?;
                Ok(())
            })
            .map_err(StoreError::from)?;
        self.inner.current_proxies.clear();
        self.flush()?;
        Ok(record.into_identity())
    }
}

/// Whether `cert_der` names `ca` as its issuer (subject name, and key identifier when both
/// carry one: a rotated CA may reuse the name).
fn issued_by(cert_der: &[u8], ca: &ParsedCert) -> Result<bool, StoreError> {
    let cert = ParsedCert::parse(cert_der).map_err(StoreError::corrupt_record)?;
    if cert.issuer_der != ca.subject_der {
        return Ok(false);
    }
    let aki = cert
        .extension::<AuthorityKeyIdentifier>(ID_CE_AUTHORITY_KEY_IDENTIFIER)
        .map_err(StoreError::corrupt_record)?
        .and_then(|aki| aki.key_identifier);
    let ski = ca
        .subject_key_identifier()
        .map_err(StoreError::corrupt_record)?;
    Ok(match (aki, ski) {
        (Some(aki), Some(ski)) => aki.as_bytes() == ski.as_slice(),
        _ => true,
    })
}

struct Prepared {
    address: String,
    cert: Vec<u8>,
    key_pkcs8: Zeroizing<Vec<u8>>,
}
