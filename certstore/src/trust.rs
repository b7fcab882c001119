//! Trust anchors and CRLs, loaded once when the store opens, with the path-validation
//! settings of `[trust]`. Validation itself is in [`crate::path`] (RFC 5280) and
//! [`crate::validate`] (the S/MIME profile).
//!
//! Revocation: configured CRL files are honoured (OpenSSL checks each CRL's signature, scope
//! and freshness); see [`RevocationMode`] for what happens when no CRL applies.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use openssl::x509::{X509Crl, X509};

use crate::certinfo::{pem_blocks, CertError, ParsedCert};
use crate::error::{StoreError, ValidationError};
use crate::fetch::RevocationFetcher;
use crate::path::{self, ParsedCache, PathSettings, RevocationMode, ValidatedPath};
use crate::store::StoreConfig;

const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const SYSTEM_DIR: &str = "/etc/ssl/certs";

#[derive(Default)]
pub(crate) struct TrustStore {
    /// Without duplicates; parsed once, shared by reference count with each verification.
    anchors: Vec<X509>,
    anchor_fingerprints: HashSet<String>,
    /// Untrusted CA certificates from the configuration (path material, not anchors).
    intermediates: Vec<X509>,
    crls: Vec<X509Crl>,
    revocation: RevocationMode,
    required_policies: Vec<String>,
    fetcher: Option<Arc<RevocationFetcher>>,
    parsed: ParsedCache,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl TrustStore {
    pub fn load(config: &StoreConfig) -> Result<TrustStore, StoreError> {
        let mut store = TrustStore {
            revocation: config.revocation,
            required_policies: config.required_policies.clone(),
            fetcher: (config.fetch_revocation && config.revocation != RevocationMode::Off).then(
                || {
                    let fetcher = Arc::new(RevocationFetcher::default());
                    RevocationFetcher::start_background_refresh(&fetcher);
                    fetcher
                },
            ),
            ..TrustStore::default()
        };
        for oid in &store.required_policies {
            if const_oid::ObjectIdentifier::new(oid).is_err() {
                return Err(StoreError::BadEncoding(format!(
                    "required policy {oid:?} is not a dotted object identifier"
                )));
            }
        }
        for path in &config.trust_anchor_files {
            // Configured files must be right: a typo must not silently trust nothing.
            let certs = read_certificates(path)?;
            if certs.is_empty() {
                return Err(io_err(path, "no certificates found"));
            }
            for c in certs {
                store.add_anchor(c);
            }
        }
        if config.use_system_trust {
            tracing::warn!(
                "trusting the operating system's CA bundle for partner certificates: it holds \
                 roots trusted for TLS servers, not for e-mail"
            );
            store.load_system();
        }
        for path in &config.intermediate_files {
            for c in read_certificates(path)? {
                let x = X509::from_der(&c.der).map_err(|e| io_err(path, e))?;
                store.intermediates.push(x);
            }
        }
        for path in &config.crl_files {
            store.crls.extend(read_crls(path)?);
        }
        Ok(store)
    }

    #[cfg(test)]
    pub(crate) fn anchor_count(&self) -> usize {
        self.anchors.len()
    }

    fn add_anchor(&mut self, cert: ParsedCert) {
        if !self.anchor_fingerprints.insert(cert.fingerprint.clone()) {
            return;
        }
        match X509::from_der(&cert.der) {
            Ok(x) => self.anchors.push(x),
            Err(e) => tracing::warn!(subject = %cert.subject(), "trust anchor skipped: {e}"),
        }
    }

    /// System certificates are best effort: unreadable entries are skipped, not fatal.
    fn load_system(&mut self) {
        let bundle = Path::new(SYSTEM_BUNDLE);
        if bundle.exists() {
            match read_certificates(bundle) {
                Ok(certs) => certs.into_iter().for_each(|c| self.add_anchor(c)),
                Err(e) => tracing::warn!("system trust bundle skipped: {e}"),
            }
            return;
        }
        let Ok(entries) = std::fs::read_dir(SYSTEM_DIR) else {
            tracing::warn!("no system trust store at {SYSTEM_DIR}");
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_pem = path.extension().is_some_and(|e| e == "pem" || e == "crt");
            if is_pem {
                if let Ok(certs) = read_certificates(&path) {
                    certs.into_iter().for_each(|c| self.add_anchor(c));
                }
            }
        }
    }

    /// Changes whenever a fetched CRL is replaced: cached validation results older than the
    /// current value are stale.
    pub(crate) fn revocation_epoch(&self) -> u64 {
        self.fetcher.as_ref().map_or(0, |f| f.crl_epoch())
    }

    /// RFC 5280 validation of `cert_der` against the configured anchors, CRLs and policies.
    pub fn validate_path(
        &self,
        cert_der: &[u8],
        offered: &[Vec<u8>],
        now: SystemTime,
    ) -> Result<ValidatedPath, ValidationError> {
        let settings = PathSettings {
            anchors: &self.anchors,
            intermediates: &self.intermediates,
            crls: &self.crls,
            revocation: self.revocation,
            fetcher: self.fetcher.as_deref(),
            parsed: &self.parsed,
            required_policies: &self.required_policies,
            now,
        };
        path::validate_path(cert_der, offered, &settings)
    }
}

/// Certificates from a PEM file (several allowed) or a single DER certificate.
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<ParsedCert>, StoreError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    parse_certificates(&bytes).map_err(|e| io_err(path, e))
}

pub(crate) fn parse_certificates(bytes: &[u8]) -> Result<Vec<ParsedCert>, CertError> {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN ") => pem_blocks(text)?
            .into_iter()
            .filter(|b| b.label == "CERTIFICATE")
            .map(|b| ParsedCert::parse(&b.der))
            .collect(),
        _ => Ok(vec![ParsedCert::parse(bytes)?]),
    }
}

fn read_crls(path: &Path) -> Result<Vec<X509Crl>, StoreError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let ders: Vec<Vec<u8>> = match std::str::from_utf8(&bytes) {
        Ok(text) if text.contains("-----BEGIN ") => pem_blocks(text)
            .map_err(|e| io_err(path, e))?
            .into_iter()
            .filter(|b| b.label == "X509 CRL")
            .map(|b| b.der)
            .collect(),
        _ => vec![bytes],
    };
    if ders.is_empty() {
        return Err(io_err(path, "no CRL found"));
    }
    ders.iter()
        .map(|der| X509Crl::from_der(der).map_err(|e| io_err(path, format!("bad CRL: {e}"))))
        .collect()
}
