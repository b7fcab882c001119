//! Partner certificates: capture with history, selection for encryption, pin and block.
//!
//! History is an audit record: every distinct certificate ever captured for an address is
//! kept with first/last seen time and Message-ID, refused ones included. Nothing here
//! deletes history.
//!
//! What an outside sender can write is bounded: only senders in approved domains are recorded
//! at all (others are validated and forgotten), certificates are size-capped, at most
//! [`MAX_CHAIN_KEPT`] chain certificates and [`MAX_REFUSED_PER_ADDRESS`] refused certificates
//! per address are kept.

use std::cmp::Reverse;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use crate::audit::{AuditDraft, AuditKind};
use crate::certinfo::{public_key_alg, ParsedCert};
use crate::codec::{self, decode_record, encode_record, hexbytes};
use crate::domains::normalise_address;
use crate::error::{StoreError, ValidationError};
use crate::recent::{CaptureKey, Validated};
use crate::store::Store;
use crate::validate::{self, KeyPurpose, ValidatedCertificate};
use smime_pki::cert::fingerprint_sha256;

/// Captured certificates larger than this are refused outright (real ones are 1 to 4 KB);
/// larger chain certificates are ignored.
pub const MAX_CERTIFICATE_BYTES: usize = 16 * 1024;
/// At most this many extra certificates from a message are kept for re-validation.
pub const MAX_CHAIN_KEPT: usize = 10;
/// At most this many certificates from a message are offered to path validation.
pub const MAX_CHAIN_OFFERED: usize = 32;
/// Refused certificates recorded per address; further new refused ones are not recorded.
pub const MAX_REFUSED_PER_ADDRESS: usize = 16;

/// A certificate seen in a verified signature, to be recorded.
#[derive(Debug, Clone)]
pub struct PartnerCapture {
    pub address: String,
    pub certificate_der: Vec<u8>,
    /// Other certificates carried in the message (candidate intermediates).
    pub chain_der: Vec<Vec<u8>>,
    pub message_id: Option<String>,
    pub seen_at: SystemTime,
    /// The SMIMECapabilities OIDs the signature advertised (RFC 8551 §2.5.2), so outbound mail
    /// picks a cipher the partner's client reads. Empty when the signature carried none: what
    /// was recorded before is kept.
    pub capabilities: Vec<String>,
}

/// Result of validation as recorded in history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValidationStatus {
    Valid,
    Refused(ValidationError),
}

impl ValidationStatus {
    pub fn is_valid(&self) -> bool {
        matches!(self, ValidationStatus::Valid)
    }
}

/// What a capture did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureOutcome {
    /// Validated, and recorded in history when `recorded`; `new` if never seen for this
    /// address before. Not recorded: the sender's domain is not approved, or the address has
    /// [`MAX_REFUSED_PER_ADDRESS`] refused certificates already.
    Stored {
        fingerprint: String,
        new: bool,
        status: ValidationStatus,
        recorded: bool,
    },
    /// Recorded (last seen updated), but an operator blocked this certificate.
    Blocked { fingerprint: String },
}

/// See [`Store::partner_counts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartnerCounts {
    pub addresses: usize,
    pub certificates: usize,
}

/// A certificate in an address's history.
#[derive(Debug, Clone, Serialize)]
pub struct PartnerCertificate {
    pub address: String,
    pub fingerprint_sha256: String,
    #[serde(skip)]
    pub certificate_der: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    pub serial_hex: String,
    #[serde(with = "codec::rfc3339")]
    pub not_before: SystemTime,
    #[serde(with = "codec::rfc3339")]
    pub not_after: SystemTime,
    pub key_bits: usize,
    pub signature_algorithm: String,
    #[serde(with = "codec::rfc3339")]
    pub first_seen: SystemTime,
    #[serde(with = "codec::rfc3339")]
    pub last_seen: SystemTime,
    pub first_message_id: Option<String>,
    pub last_message_id: Option<String>,
    /// Status when last seen (re-checked by [`Store::current_partner_certificate`]).
    pub status: ValidationStatus,
    pub pinned: bool,
    pub blocked: bool,
    /// SMIMECapabilities OIDs the partner's client last advertised with this certificate,
    /// most preferred first: outbound encryption picks AES-GCM only when it is listed.
    pub capabilities: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone)]
struct PartnerRecord {
    v: u32,
    address: String,
    fingerprint: String,
    #[serde(with = "hexbytes")]
    cert: Vec<u8>,
    chain: Vec<String>,
    subject: String,
    issuer: String,
    serial_hex: String,
    not_before: u64,
    not_after: u64,
    key_bits: usize,
    signature_algorithm: String,
    first_seen: u64,
    last_seen: u64,
    first_message_id: Option<String>,
    last_message_id: Option<String>,
    status: ValidationStatus,
    pinned: bool,
    blocked: bool,
    /// SMIMECapabilities OIDs the partner's client last advertised (most preferred first).
    #[serde(default)]
    capabilities: Vec<String>,
}

impl PartnerRecord {
    fn to_public(&self) -> PartnerCertificate {
        PartnerCertificate {
            address: self.address.clone(),
            fingerprint_sha256: self.fingerprint.clone(),
            certificate_der: self.cert.clone(),
            subject: self.subject.clone(),
            issuer: self.issuer.clone(),
            serial_hex: self.serial_hex.clone(),
            not_before: codec::from_unix(self.not_before),
            not_after: codec::from_unix(self.not_after),
            key_bits: self.key_bits,
            signature_algorithm: self.signature_algorithm.clone(),
            first_seen: codec::from_unix(self.first_seen),
            last_seen: codec::from_unix(self.last_seen),
            first_message_id: self.first_message_id.clone(),
            last_message_id: self.last_message_id.clone(),
            status: self.status.clone(),
            pinned: self.pinned,
            blocked: self.blocked,
            capabilities: self.capabilities.clone(),
        }
    }

    fn chain_der(&self) -> Vec<Vec<u8>> {
        self.chain
            .iter()
            .filter_map(|h| hex::decode(h).ok())
            .collect()
    }
}

fn partner_key(address: &str, fp: &str) -> Vec<u8> {
    let mut k = address.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(fp.as_bytes());
    k
}

fn fp_key(fp: &str, address: &str) -> Vec<u8> {
    let mut k = fp.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(address.as_bytes());
    k
}

/// `partner_addrs` key: domain first so one domain's addresses are one prefix.
fn domain_key(address: &str) -> Vec<u8> {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    let mut k = domain.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(local.as_bytes());
    k
}

fn normalise_fingerprint(fp: &str) -> Result<String, StoreError> {
    let cleaned: String = fp
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if cleaned.len() != 64 || !cleaned.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::InvalidFingerprint(fp.to_string()));
    }
    Ok(cleaned)
}

/// Descriptive fields of a certificate, as far as it parses.
struct Described {
    subject: String,
    issuer: String,
    serial_hex: String,
    not_before: u64,
    not_after: u64,
    key_bits: usize,
    signature_algorithm: String,
}

/// The earliest notAfter of a validated path (the certificate and its chain, DER).
fn earliest_not_after(chain: &[Vec<u8>]) -> Option<SystemTime> {
    chain
        .iter()
        .map(|c| ParsedCert::parse(c).map(|c| c.not_after()).ok())
        .try_fold(None, |earliest: Option<SystemTime>, not_after| {
            let not_after = not_after?;
            Some(Some(earliest.map_or(not_after, |e| e.min(not_after))))
        })
        .flatten()
}

fn describe(der: &[u8]) -> Described {
    match ParsedCert::parse(der) {
        Ok(c) => Described {
            subject: c.subject(),
            issuer: c.issuer(),
            serial_hex: c.serial_hex(),
            not_before: codec::to_unix(c.not_before()),
            not_after: codec::to_unix(c.not_after()),
            key_bits: public_key_alg(c.spki()).map(|k| k.bits()).unwrap_or(0),
            signature_algorithm: crate::certinfo::classify_signature(c.signature_algorithm())
                .name(),
        },
        Err(_) => Described {
            subject: String::new(),
            issuer: String::new(),
            serial_hex: String::new(),
            not_before: 0,
            not_after: 0,
            key_bits: 0,
            signature_algorithm: String::new(),
        },
    }
}

impl Store {
    /// Validate a partner certificate against the configured trust anchors and CRLs.
    /// See [`crate::validate`] for the checks and their order.
    pub fn validate_partner_certificate(
        &self,
        cert_der: &[u8],
        intermediates: &[Vec<u8>],
        address: Option<&str>,
        now: SystemTime,
    ) -> Result<ValidatedCertificate, ValidationError> {
        self.validate_partner_certificate_for(
            cert_der,
            intermediates,
            address,
            KeyPurpose::Any,
            now,
        )
    }

    /// As [`Self::validate_partner_certificate`], with keyUsage checked for `purpose`.
    pub fn validate_partner_certificate_for(
        &self,
        cert_der: &[u8],
        intermediates: &[Vec<u8>],
        address: Option<&str>,
        purpose: KeyPurpose,
        now: SystemTime,
    ) -> Result<ValidatedCertificate, ValidationError> {
        validate::validate(
            &self.inner.trust,
            cert_der,
            intermediates,
            address,
            purpose,
            now,
        )
    }

    /// Validate and record a certificate seen in a verified signature. Refused certificates
    /// are recorded too (status `Refused`). Audited: new certificates, and refusals when the
    /// certificate is new or its status changed. Durable when it returns.
    pub fn capture_partner_certificate(
        &self,
        capture: &PartnerCapture,
    ) -> Result<CaptureOutcome, StoreError> {
        self.capture_for(capture, KeyPurpose::Any)
    }

    /// As [`Self::capture_partner_certificate`], for a certificate the signer named as its
    /// encryption certificate (RFC 8551 SMIMEEncryptionKeyPreference): validated for
    /// [`KeyPurpose::Encrypt`], and recorded only when valid (the signer did not sign with it,
    /// so a refusal is no part of that signature's history).
    pub fn capture_partner_encryption_certificate(
        &self,
        capture: &PartnerCapture,
    ) -> Result<CaptureOutcome, StoreError> {
        self.capture_for(capture, KeyPurpose::Encrypt)
    }

    fn capture_for(
        &self,
        capture: &PartnerCapture,
        purpose: KeyPurpose,
    ) -> Result<CaptureOutcome, StoreError> {
        let address = normalise_address(&capture.address)?;
        if capture.certificate_der.len() > MAX_CERTIFICATE_BYTES {
            return Err(StoreError::BadEncoding(format!(
                "certificate of {} bytes exceeds the {MAX_CERTIFICATE_BYTES}-byte limit",
                capture.certificate_der.len()
            )));
        }
        let fp = fingerprint_sha256(&capture.certificate_der);
        let offered: Vec<&Vec<u8>> = capture
            .chain_der
            .iter()
            .filter(|c| c.len() <= MAX_CERTIFICATE_BYTES)
            .take(MAX_CHAIN_OFFERED)
            .collect();
        let capabilities = bounded_capabilities(&capture.capabilities);
        let key = CaptureKey::new(&address, &fp, purpose, offered.iter().map(|c| c.as_slice()));
        let epoch = self.inner.trust.revocation_epoch();
        if let Some(hit) = self
            .inner
            .recent
            .get(&key, capture.seen_at, epoch, &capabilities)
        {
            return Ok(if hit.blocked {
                CaptureOutcome::Blocked { fingerprint: fp }
            } else {
                CaptureOutcome::Stored {
                    fingerprint: fp,
                    new: false,
                    status: ValidationStatus::Valid,
                    recorded: true,
                }
            });
        }
        let generation = self.inner.recent.generation();
        let offered: Vec<Vec<u8>> = offered.into_iter().cloned().collect();
        let validation = self.validate_partner_certificate_for(
            &capture.certificate_der,
            &offered,
            Some(&address),
            purpose,
            capture.seen_at,
        );
        let mut path_expires = None;
        let (status, chain) = match validation {
            Ok(v) => {
                // Soft-fail: accepted; the operator learns what could not be checked.
                if !v.revocation_unknown.is_empty() {
                    tracing::warn!(
                        %address,
                        unknown = %v.revocation_unknown.join("; "),
                        "partner certificate accepted with revocation status unknown"
                    );
                }
                path_expires = earliest_not_after(&v.chain_der);
                (
                    ValidationStatus::Valid,
                    v.chain_der
                        .into_iter()
                        .skip(1)
                        .take(MAX_CHAIN_KEPT)
                        .collect(),
                )
            }
            Err(e) => (
                ValidationStatus::Refused(e),
                offered.into_iter().take(MAX_CHAIN_KEPT).collect::<Vec<_>>(),
            ),
        };
        let refused_encryption = purpose == KeyPurpose::Encrypt && !status.is_valid();
        if refused_encryption || !self.records_partner(&address, &fp, &status)? {
            return Ok(CaptureOutcome::Stored {
                fingerprint: fp,
                new: false,
                status,
                recorded: false,
            });
        }
        let chain: Vec<String> = chain.iter().map(hex::encode).collect();
        let seen = codec::to_unix(capture.seen_at);
        let described = describe(&capture.certificate_der);
        let fresh = PartnerRecord {
            v: codec::SCHEMA_VERSION,
            address: address.clone(),
            fingerprint: fp.clone(),
            cert: capture.certificate_der.clone(),
            chain,
            subject: described.subject,
            issuer: described.issuer,
            serial_hex: described.serial_hex,
            not_before: described.not_before,
            not_after: described.not_after,
            key_bits: described.key_bits,
            signature_algorithm: described.signature_algorithm,
            first_seen: seen,
            last_seen: seen,
            first_message_id: capture.message_id.clone(),
            last_message_id: capture.message_id.clone(),
            status: status.clone(),
            pinned: false,
            blocked: false,
            capabilities,
        };
        let pkey = partner_key(&address, &fp);
        let fkey = fp_key(&fp, &address);
        let dkey = domain_key(&address);
        let audit_id = self.inner.db.generate_id()?;
        let inner = &self.inner;
        let (is_new, blocked, changed, recorded_capabilities) = (
            &inner.partner,
            &inner.partner_by_fp,
            &inner.partner_addrs,
            &inner.audit,
        )
            .transaction(|(partner, by_fp, addrs, audit)| {
                let abort = ConflictableTransactionError::Abort;
                let (record, is_new, status_changed, changed) = match partner.get(&pkey)? {
                    Some(old) => {
                        let mut r: PartnerRecord = decode_record(&old).map_err(abort)?;
                        let status_changed = r.status != fresh.status;
                        let mut changed = status_changed || r.chain != fresh.chain;
                        if seen >= r.last_seen {
                            r.last_seen = seen;
                            r.last_message_id = fresh.last_message_id.clone();
                            r.status = fresh.status.clone();
                            r.chain = fresh.chain.clone();
                            // The latest advertisement replaces the earlier one.
                            if !fresh.capabilities.is_empty()
                                && r.capabilities != fresh.capabilities
                            {
                                r.capabilities = fresh.capabilities.clone();
                                changed = true;
                            }
                        }
                        if seen < r.first_seen {
                            r.first_seen = seen;
                            r.first_message_id = fresh.first_message_id.clone();
                        }
                        (r, false, status_changed, changed)
                    }
                    None => (fresh.clone(), true, true, true),
                };
                partner.insert(pkey.as_slice(), encode_record(&record).map_err(abort)?)?;
                by_fp.insert(fkey.as_slice(), &[])?;
                addrs.insert(dkey.as_slice(), &[])?;
                let draft = match (&record.status, is_new, status_changed) {
                    (ValidationStatus::Valid, true, _) => Some(AuditDraft::new(
                        AuditKind::PartnerCaptured,
                        Some(address.clone()),
                        format!("certificate {fp} captured ({})", record.subject),
                    )),
                    (ValidationStatus::Refused(e), _, true) => Some(AuditDraft::new(
                        AuditKind::PartnerRefused,
                        Some(address.clone()),
                        format!("certificate {fp} refused: {e}"),
                    )),
                    _ => None,
                };
                if let Some(d) = draft {
                    crate::audit::append_in_tx(audit, audit_id, &d).map_err(abort)?;
                }
                Ok((is_new, record.blocked, changed, record.capabilities))
            })
            .map_err(StoreError::from)?;
        // A new certificate, a changed status or new capabilities are flushed before we answer.
        // A repeat sighting only moves last-seen and its Message-ID: that reaches disk with
        // sled's periodic flush (within half a second), which spares every inbound message an
        // fsync.
        if is_new || changed {
            self.forget_cached([address.as_str()]);
            self.audit_appended()?;
            self.flush()?;
        }
        if let (ValidationStatus::Valid, Some(path_expires)) = (&status, path_expires) {
            self.inner.recent.insert(
                key,
                &Validated {
                    seen_at: capture.seen_at,
                    path_expires,
                    revocation_epoch: epoch,
                    blocked,
                    capabilities: &recorded_capabilities,
                },
                generation,
            );
        }
        if blocked {
            return Ok(CaptureOutcome::Blocked { fingerprint: fp });
        }
        Ok(CaptureOutcome::Stored {
            fingerprint: fp,
            new: is_new,
            status,
            recorded: true,
        })
    }

    /// Forgets what the caches hold for these addresses: their records changed.
    fn forget_cached<'a>(&self, addresses: impl IntoIterator<Item = &'a str> + Clone) {
        self.inner.current.invalidate(addresses.clone());
        self.inner.recent.invalidate(addresses);
    }

    /// Whether a capture of `fp` for `address` is written to the store: only for approved
    /// domains, and refused certificates only up to [`MAX_REFUSED_PER_ADDRESS`] per address
    /// (a certificate already recorded is always updated).
    fn records_partner(
        &self,
        address: &str,
        fp: &str,
        status: &ValidationStatus,
    ) -> Result<bool, StoreError> {
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        if self.domain(domain)?.is_none() {
            return Ok(false);
        }
        if status.is_valid() || self.inner.partner.contains_key(partner_key(address, fp))? {
            return Ok(true);
        }
        let refused = self
            .partner_records(address)?
            .iter()
            .filter(|r| !r.status.is_valid())
            .count();
        Ok(refused < MAX_REFUSED_PER_ADDRESS)
    }

    fn partner_records(&self, address: &str) -> Result<Vec<PartnerRecord>, StoreError> {
        let mut prefix = address.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.inner.partner.scan_prefix(prefix) {
            let (_, v) = item?;
            out.push(decode_record::<PartnerRecord>(&v)?);
        }
        Ok(out)
    }

    /// The certificate to encrypt to: among certificates not blocked, a pinned one wins,
    /// else the newest (latest notBefore) one. Candidates are re-validated (validity window,
    /// chain, CRLs) against the chain stored at capture; the result is cached until something
    /// that decides it changes (see [`crate::current`]).
    pub fn current_partner_certificate(
        &self,
        address: &str,
    ) -> Result<Option<PartnerCertificate>, StoreError> {
        let address = normalise_address(address)?;
        let now = SystemTime::now();
        let epoch = self.inner.trust.revocation_epoch();
        if let Some(cached) = self.inner.current.get(&address, now, epoch) {
            return Ok(Some(cached));
        }
        let generation = self.inner.current.generation();
        let nowu = codec::to_unix(now);
        let records = self.partner_records(&address)?;
        // A certificate that becomes valid later may become the current one then.
        let next_start = records
            .iter()
            .filter(|r| !r.blocked && r.not_before > nowu)
            .map(|r| r.not_before)
            .min();
        let mut candidates: Vec<PartnerRecord> = records
            .into_iter()
            .filter(|r| {
                !r.blocked
                    && r.not_before <= nowu
                    && nowu <= r.not_after
                    && matches!(
                        r.status,
                        ValidationStatus::Valid
                            | ValidationStatus::Refused(ValidationError::NotYetValid)
                    )
            })
            .collect();
        candidates.sort_by_key(|r| Reverse((r.pinned, r.not_before, r.first_seen)));
        for r in candidates {
            // The current certificate is the one mail is encrypted to.
            let checked = self.validate_partner_certificate_for(
                &r.cert,
                &r.chain_der(),
                Some(&address),
                KeyPurpose::Encrypt,
                now,
            );
            match checked {
                Ok(_) => {
                    let mut c = r.to_public();
                    c.status = ValidationStatus::Valid;
                    let until =
                        next_start.map_or(c.not_after, |s| codec::from_unix(s).min(c.not_after));
                    self.inner
                        .current
                        .insert(&address, &c, now, until, generation, epoch);
                    return Ok(Some(c));
                }
                Err(e) => tracing::debug!(fingerprint = %r.fingerprint, "no longer usable: {e}"),
            }
        }
        Ok(None)
    }

    /// How many addresses have their current certificate cached (for diagnostics and tests).
    pub fn cached_current_certificates(&self) -> usize {
        self.inner.current.len()
    }

    /// Every certificate ever captured for `address`, most recently first seen first.
    pub fn partner_history(&self, address: &str) -> Result<Vec<PartnerCertificate>, StoreError> {
        let address = normalise_address(address)?;
        let mut records = self.partner_records(&address)?;
        records.sort_by_key(|r| Reverse((r.first_seen, r.not_before)));
        Ok(records.iter().map(PartnerRecord::to_public).collect())
    }

    fn records_by_fingerprint(&self, fp: &str) -> Result<Vec<PartnerRecord>, StoreError> {
        let mut prefix = fp.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.inner.partner_by_fp.scan_prefix(prefix) {
            let (k, _) = item?;
            let address = k
                .get(fp.len() + 1..)
                .and_then(|a| std::str::from_utf8(a).ok())
                .ok_or_else(|| StoreError::CorruptRecord("partner fingerprint index key".into()))?;
            if let Some(v) = self.inner.partner.get(partner_key(address, fp))? {
                out.push(decode_record(&v)?);
            }
        }
        Ok(out)
    }

    /// A captured certificate by SHA-256 fingerprint (hex, colons allowed). If several
    /// addresses captured it, the first address in sort order is returned.
    pub fn partner_certificate_by_fingerprint(
        &self,
        sha256_hex: &str,
    ) -> Result<Option<PartnerCertificate>, StoreError> {
        let fp = normalise_fingerprint(sha256_hex)?;
        Ok(self
            .records_by_fingerprint(&fp)?
            .first()
            .map(PartnerRecord::to_public))
    }

    /// How many partner addresses and recorded certificates (history included) there are,
    /// counted on the indexes' keys: nothing is decoded, for `/metrics` on every scrape.
    pub fn partner_counts(&self) -> PartnerCounts {
        PartnerCounts {
            addresses: self.inner.partner_addrs.len(),
            certificates: self.inner.partner.len(),
        }
    }

    /// Partner addresses with captured certificates, sorted by domain then local part;
    /// optionally of one domain only; paged by `offset`/`limit`.
    pub fn partner_addresses(
        &self,
        domain: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let prefix = match domain {
            Some(d) => {
                let mut p = crate::domains::normalise_domain(d)?.into_bytes();
                p.push(0);
                p
            }
            None => Vec::new(),
        };
        let mut out = Vec::new();
        for item in self
            .inner
            .partner_addrs
            .scan_prefix(prefix)
            .skip(offset)
            .take(limit)
        {
            let (k, _) = item?;
            let mut parts = k.splitn(2, |b| *b == 0);
            let (Some(d), Some(l)) = (parts.next(), parts.next()) else {
                return Err(StoreError::CorruptRecord(
                    "partner address index key".into(),
                ));
            };
            out.push(format!(
                "{}@{}",
                String::from_utf8_lossy(l),
                String::from_utf8_lossy(d)
            ));
        }
        Ok(out)
    }

    /// Record the SMIMECapabilities a partner advertised in a signature made with the
    /// certificate `fp` (the latest advertisement replaces the earlier one). Durable when it
    /// returns. At most 64 entries of at most 64 characters are kept.
    pub fn set_partner_capabilities(
        &self,
        address: &str,
        fp: &str,
        capabilities: &[String],
    ) -> Result<(), StoreError> {
        let address = normalise_address(address)?;
        let fp = normalise_fingerprint(fp)?;
        let capabilities = bounded_capabilities(capabilities);
        let key = partner_key(&address, &fp);
        let updated = self
            .inner
            .partner
            .transaction(|partner| {
                let abort = ConflictableTransactionError::Abort;
                let Some(v) = partner.get(&key)? else {
                    return Ok(false);
                };
                let mut r: PartnerRecord = decode_record(&v).map_err(abort)?;
                if r.capabilities == capabilities {
                    return Ok(true);
                }
                r.capabilities = capabilities.clone();
                partner.insert(key.as_slice(), encode_record(&r).map_err(abort)?)?;
                Ok(true)
            })
            .map_err(StoreError::from)?;
        if !updated {
            return Err(StoreError::UnknownCertificate(fp));
        }
        self.forget_cached([address.as_str()]);
        self.flush()
    }

    /// Prefer this certificate for its address(es) while it stays usable. Refused
    /// certificates cannot be pinned (the operator cannot override trust policy this way).
    pub fn pin_partner_certificate(&self, fp: &str) -> Result<PartnerCertificate, StoreError> {
        let fp = normalise_fingerprint(fp)?;
        let records = self.records_by_fingerprint(&fp)?;
        if let Some(r) = records.iter().find(|r| !r.status.is_valid()) {
            return Err(StoreError::CannotPinRefused(r.fingerprint.clone()));
        }
        self.set_flags(&fp, AuditKind::PartnerPinned, |r| {
            r.pinned = true;
        })
    }

    pub fn unpin_partner_certificate(&self, fp: &str) -> Result<PartnerCertificate, StoreError> {
        let fp = normalise_fingerprint(fp)?;
        self.set_flags(&fp, AuditKind::PartnerUnpinned, |r| r.pinned = false)
    }

    /// Never use this certificate for encryption (history keeps it).
    pub fn block_partner_certificate(&self, fp: &str) -> Result<PartnerCertificate, StoreError> {
        let fp = normalise_fingerprint(fp)?;
        self.set_flags(&fp, AuditKind::PartnerBlocked, |r| {
            r.blocked = true;
            r.pinned = false;
        })
    }

    pub fn unblock_partner_certificate(&self, fp: &str) -> Result<PartnerCertificate, StoreError> {
        let fp = normalise_fingerprint(fp)?;
        self.set_flags(&fp, AuditKind::PartnerUnblocked, |r| r.blocked = false)
    }

    /// Apply `change` to every record of `fp`; pinning one certificate unpins the address's
    /// others so at most one is pinned per address.
    fn set_flags(
        &self,
        fp: &str,
        kind: AuditKind,
        change: impl Fn(&mut PartnerRecord),
    ) -> Result<PartnerCertificate, StoreError> {
        let addresses: Vec<String> = self
            .records_by_fingerprint(fp)?
            .into_iter()
            .map(|r| r.address)
            .collect();
        let Some(first_address) = addresses.first().cloned() else {
            return Err(StoreError::UnknownCertificate(fp.to_string()));
        };
        let mut siblings: Vec<Vec<u8>> = Vec::new();
        if kind == AuditKind::PartnerPinned {
            for a in &addresses {
                for r in self.partner_records(a)? {
                    if r.fingerprint != fp && r.pinned {
                        siblings.push(partner_key(a, &r.fingerprint));
                    }
                }
            }
        }
        let audit_id = self.inner.db.generate_id()?;
        let draft = AuditDraft::new(
            kind,
            Some(fp.to_string()),
            format!("{kind:?} for {}", addresses.join(", ")),
        );
        let updated = (&self.inner.partner, &self.inner.audit)
            .transaction(|(partner, audit)| {
                let abort = ConflictableTransactionError::Abort;
                let mut first = None;
                for a in &addresses {
                    let key = partner_key(a, fp);
                    let Some(v) = partner.get(&key)? else {
                        continue;
                    };
                    let mut r: PartnerRecord = decode_record(&v).map_err(abort)?;
                    change(&mut r);
                    partner.insert(key, encode_record(&r).map_err(abort)?)?;
                    if *a == first_address {
                        first = Some(r.to_public());
                    }
                }
                for key in &siblings {
                    if let Some(v) = partner.get(key)? {
                        let mut r: PartnerRecord = decode_record(&v).map_err(abort)?;
                        r.pinned = false;
                        partner.insert(key.as_slice(), encode_record(&r).map_err(abort)?)?;
                    }
                }
                crate::audit::append_in_tx(audit, audit_id, &draft).map_err(abort)?;
                first.ok_or_else(|| abort(StoreError::UnknownCertificate(fp.to_string())))
            })
            .map_err(StoreError::from)?;
        self.forget_cached(addresses.iter().map(String::as_str));
        self.audit_appended()?;
        self.flush()?;
        Ok(updated)
    }
}

/// What the store keeps of an advertisement: at most 64 entries of at most 64 characters.
fn bounded_capabilities(capabilities: &[String]) -> Vec<String> {
    capabilities
        .iter()
        .filter(|c| c.len() <= 64)
        .take(64)
        .cloned()
        .collect()
}
