//! Trust anchors and CRLs, loaded once when the store opens.
//!
//! Revocation: only CRLs named in the configuration are honoured. CRL distribution points
//! in certificates are not fetched, and OCSP is not used. A CRL counts only if its signature
//! verifies with the key of the issuer found in the certificate's chain; a CRL past its
//! nextUpdate is still honoured (revocation is permanent), a bad-signature CRL is ignored.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{PoisonError, RwLock};

use der::{Decode, Encode};
use x509_cert::crl::CertificateList;

use crate::certinfo::{pem_blocks, ParsedCert};
use crate::error::StoreError;
use crate::store::StoreConfig;

const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const SYSTEM_DIR: &str = "/etc/ssl/certs";

pub(crate) struct Crl {
    pub issuer_der: Vec<u8>,
    pub tbs_der: Vec<u8>,
    pub list: CertificateList,
    /// Revoked serial numbers (DER integer content bytes).
    pub revoked: std::collections::HashSet<Vec<u8>>,
}

#[derive(Default)]
pub(crate) struct TrustStore {
    pub anchors: Vec<ParsedCert>,
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
    pub crls: Vec<Crl>,
    /// (child fingerprint, issuer fingerprint) pairs whose signature verified. A signature
    /// over fixed bytes cannot stop verifying, and RSA verification dominates look-ups.
    verified: RwLock<HashSet<(String, String)>>,
}

/// Bound on the verified-signature cache; it is simply emptied when full.
const VERIFIED_CACHE_MAX: usize = 100_000;

fn io_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl TrustStore {
    pub fn load(config: &StoreConfig) -> Result<TrustStore, StoreError> {
        let mut store = TrustStore::default();
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
            store.load_system();
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
        if self
            .anchors
            .iter()
            .any(|a| a.fingerprint == cert.fingerprint)
        {
            return;
        }
        self.by_subject
            .entry(cert.subject_der.clone())
            .or_default()
            .push(self.anchors.len());
        self.anchors.push(cert);
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

    pub fn anchors_for(&self, subject_der: &[u8]) -> impl Iterator<Item = &ParsedCert> {
        self.by_subject
            .get(subject_der)
            .into_iter()
            .flatten()
            .filter_map(|i| self.anchors.get(*i))
    }

    pub fn signature_known_good(&self, child_fp: &str, issuer_fp: &str) -> bool {
        self.verified
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&(child_fp.to_string(), issuer_fp.to_string()))
    }

    pub fn remember_good_signature(&self, child_fp: &str, issuer_fp: &str) {
        let mut set = self
            .verified
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if set.len() >= VERIFIED_CACHE_MAX {
            set.clear();
        }
        set.insert((child_fp.to_string(), issuer_fp.to_string()));
    }

    pub fn crls_for<'a>(&'a self, issuer_der: &'a [u8]) -> impl Iterator<Item = &'a Crl> + 'a {
        self.crls.iter().filter(move |c| c.issuer_der == issuer_der)
    }
}

/// Certificates from a PEM file (several allowed) or a single DER certificate.
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<ParsedCert>, StoreError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    parse_certificates(&bytes).map_err(|e| io_err(path, e))
}

pub(crate) fn parse_certificates(bytes: &[u8]) -> Result<Vec<ParsedCert>, String> {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN ") => pem_blocks(text)?
            .into_iter()
            .filter(|b| b.label == "CERTIFICATE")
            .map(|b| ParsedCert::parse(&b.der))
            .collect(),
        _ => Ok(vec![ParsedCert::parse(bytes)?]),
    }
}

fn read_crls(path: &Path) -> Result<Vec<Crl>, StoreError> {
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
        .map(|der| parse_crl(der).map_err(|e| io_err(path, e)))
        .collect()
}

pub(crate) fn parse_crl(der: &[u8]) -> Result<Crl, String> {
    let list = CertificateList::from_der(der).map_err(|e| format!("bad CRL: {e}"))?;
    let tbs_der = list.tbs_cert_list.to_der().map_err(|e| e.to_string())?;
    let issuer_der = list
        .tbs_cert_list
        .issuer
        .to_der()
        .map_err(|e| e.to_string())?;
    let revoked = list
        .tbs_cert_list
        .revoked_certificates
        .iter()
        .flatten()
        .map(|r| r.serial_number.as_bytes().to_vec())
        .collect();
    Ok(Crl {
        issuer_der,
        tbs_der,
        list,
        revoked,
    })
}
