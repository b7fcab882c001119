//! Trust evaluation without a store, for operator commands (`smime-gateway verify --ca ...`):
//! the same policy as partner-certificate capture, with anchors and CRLs given as files.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::error::{StoreError, ValidationError};
use crate::path::ValidatedPath;
use crate::store::StoreConfig;
use crate::trust::TrustStore;
use crate::validate::{self, KeyPurpose, ValidatedCertificate};

pub struct TrustAnchors {
    trust: TrustStore,
}

impl TrustAnchors {
    /// Anchors from PEM files (each may hold several certificates), CRLs from PEM/DER files.
    /// The system trust store is not consulted: an operator names what they trust.
    pub fn from_files(anchor_files: &[PathBuf], crl_files: &[PathBuf]) -> Result<Self, StoreError> {
        Self::from_config(&StoreConfig {
            trust_anchor_files: anchor_files.to_vec(),
            use_system_trust: false,
            crl_files: crl_files.to_vec(),
            ..StoreConfig::default()
        })
    }

    /// The trust settings of `config` (anchors, CRLs, revocation mode, required policies).
    pub fn from_config(config: &StoreConfig) -> Result<Self, StoreError> {
        Ok(Self {
            trust: TrustStore::load(config)?,
        })
    }

    /// Validate `cert_der` (intermediates may come from the message) under the certstore's
    /// partner-certificate policy; `address`, when given, must be named by the certificate.
    /// keyUsage is checked for either purpose; see [`Self::validate_for`].
    pub fn validate(
        &self,
        cert_der: &[u8],
        intermediates: &[Vec<u8>],
        address: Option<&str>,
        now: SystemTime,
    ) -> Result<ValidatedCertificate, ValidationError> {
        self.validate_for(cert_der, intermediates, address, KeyPurpose::Any, now)
    }

    /// As [`Self::validate`], with keyUsage checked for `purpose`.
    pub fn validate_for(
        &self,
        cert_der: &[u8],
        intermediates: &[Vec<u8>],
        address: Option<&str>,
        purpose: KeyPurpose,
        now: SystemTime,
    ) -> Result<ValidatedCertificate, ValidationError> {
        validate::validate(&self.trust, cert_der, intermediates, address, purpose, now)
    }

    /// Only the RFC 5280 path validation that [`Self::validate`] ends with, without the
    /// S/MIME profile (key size, usage, address): what the NIST PKITS suite exercises.
    pub fn validate_path(
        &self,
        cert_der: &[u8],
        intermediates: &[Vec<u8>],
        now: SystemTime,
    ) -> Result<ValidatedPath, ValidationError> {
        self.trust.validate_path(cert_der, intermediates, now)
    }
}
