//! The proxy CA: creation, import, export. Its key leaves the store only through
//! [`Store::export_proxy_ca_key_pem`].

use crypto_provider::{CryptoProvider, KeyError, PrivateKey, PrivateKeyOps};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use x509_cert::name::Name;
use zeroize::Zeroizing;

use crate::audit::{AuditDraft, AuditKind};
use crate::certinfo::{pem_blocks, rsa_public_key, ParsedCert};
use crate::codec::{self, decode_record, encode_record, hexbytes};
use crate::domains::normalise_domain;
use crate::error::StoreError;
use crate::issue;
use crate::store::Store;

const CA_KEY: &[u8] = b"proxy_ca";
/// Prefix of retired CAs (followed by a u64 BE sequence number): kept so mail and
/// certificates from before a rotation can still be explained and exported.
const RETIRED_PREFIX: &[u8] = b"retired/";
/// Smallest CA key accepted on import (new CAs are created with 3072 bits).
const MIN_IMPORT_BITS: usize = 2048;

#[derive(Serialize, Deserialize)]
struct CaRecord {
    v: u32,
    #[serde(with = "hexbytes")]
    cert: Vec<u8>,
    #[serde(with = "hexbytes")]
    key_pkcs8: Vec<u8>,
}

/// The CA certificate and key, loaded for signing.
pub(crate) struct CaMaterial {
    pub cert: ParsedCert,
    pub key: PrivateKey,
}

impl CaMaterial {
    pub fn subject(&self) -> &Name {
        &self.cert.cert.tbs_certificate.subject
    }
}

fn parse_private_key(
    crypto: &'static CryptoProvider,
    key_pem: &str,
) -> Result<issue::KeyPair, StoreError> {
    let blocks = pem_blocks(key_pem).map_err(StoreError::bad_encoding)?;
    let block = blocks
        .iter()
        .find(|b| b.label.ends_with("PRIVATE KEY"))
        .ok_or_else(|| StoreError::BadEncoding("no PRIVATE KEY block found".into()))?;
    match block.label.as_str() {
        "PRIVATE KEY" | "RSA PRIVATE KEY" => {}
        "ENCRYPTED PRIVATE KEY" => {
            return Err(StoreError::UnsupportedKey(
                "encrypted private keys are not supported; decrypt it first".into(),
            ))
        }
        other => {
            return Err(StoreError::UnsupportedKey(format!(
                "{other} (only RSA keys are supported)"
            )))
        }
    }
    let der = Zeroizing::new(block.der.clone());
    let parsed = crypto_provider::keys::parse(&der).map_err(|e| match e {
        KeyError::UnsupportedKeyType => {
            StoreError::UnsupportedKey("only RSA keys are supported".into())
        }
        other => StoreError::BadEncoding(format!("private key: {other}")),
    })?;
    issue::load_key(crypto, parsed.pkcs8_der)
}

impl Store {
    /// Whether a proxy CA is present.
    pub fn is_initialised(&self) -> bool {
        matches!(self.inner.proxy_ca.get(CA_KEY), Ok(Some(_)))
    }

    /// Create the proxy CA for the mail of `internal_domains` (and their subdomains): RSA-3072,
    /// SHA-256, name-constrained to those domains, five years (see `issue::build_ca`).
    pub fn init_proxy_ca(
        &self,
        subject_cn: &str,
        internal_domains: &[String],
    ) -> Result<(), StoreError> {
        if self.is_initialised() {
            return Err(StoreError::AlreadyInitialised);
        }
        let (cert, key, detail) = new_ca(self.crypto(), subject_cn, internal_domains)?;
        self.store_ca(
            cert,
            &key,
            AuditKind::ProxyCaCreated,
            format!("proxy CA created: {detail}"),
        )
    }

    /// Replace the proxy CA with a new constrained one (see [`Store::init_proxy_ca`]). The old
    /// CA is kept as retired, and so are all proxy keys issued under it (old mail still
    /// decrypts); proxy certificates are issued under the new CA on their next use.
    pub fn rotate_proxy_ca(
        &self,
        subject_cn: &str,
        internal_domains: &[String],
    ) -> Result<ProxyCaInfo, StoreError> {
        let old = self.ca_record()?;
        let (cert, key, detail) = new_ca(self.crypto(), subject_cn, internal_domains)?;
        let old_fp = smime_pki::cert::fingerprint_sha256(&old.cert);
        let record = Zeroizing::new(encode_record(&CaRecord {
            v: codec::SCHEMA_VERSION,
            cert: cert.clone(),
            key_pkcs8: key.pkcs8.to_vec(),
        })?);
        let mut retired_key = RETIRED_PREFIX.to_vec();
        retired_key.extend_from_slice(&self.inner.db.generate_id()?.to_be_bytes());
        let audit_id = self.inner.db.generate_id()?;
        let draft = AuditDraft::new(
            AuditKind::ProxyCaRotated,
            None,
            format!("proxy CA rotated: new {detail}; retired {old_fp}"),
        );
        let _guard = self
            .inner
            .issue_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (&self.inner.proxy_ca, &self.inner.audit)
            .transaction(|(ca, audit)| {
                let current = ca
                    .get(CA_KEY)?
                    .ok_or(StoreError::NotInitialised)
                    .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                ca.insert(retired_key.as_slice(), current)?;
                ca.insert(CA_KEY, record.as_slice())?;
                crate::audit::append_in_tx(audit, audit_id, &draft)
                    .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                Ok(())
            })
            .map_err(StoreError::from)?;
        self.inner.current_proxies.clear();
        self.flush()?;
        ca_info(&cert, true)
    }

    /// The current proxy CA, then retired ones (newest first).
    pub fn proxy_cas(&self) -> Result<Vec<ProxyCaInfo>, StoreError> {
        let mut out = vec![ca_info(&self.ca_record()?.cert, true)?];
        for item in self.inner.proxy_ca.scan_prefix(RETIRED_PREFIX).rev() {
            let (_, bytes) = item?;
            let record: CaRecord = decode_record(&bytes)?;
            out.push(ca_info(&record.cert, false)?);
        }
        Ok(out)
    }

    /// Import an existing proxy CA (PEM certificate; PKCS#8 or PKCS#1 PEM RSA key). The
    /// certificate must be a CA and match the key. Refused if a CA is already present.
    pub fn import_proxy_ca(&self, cert_pem: &str, key_pem: &str) -> Result<(), StoreError> {
        if self.is_initialised() {
            return Err(StoreError::AlreadyInitialised);
        }
        let blocks = pem_blocks(cert_pem).map_err(StoreError::bad_encoding)?;
        let cert_block = blocks
            .iter()
            .find(|b| b.label == "CERTIFICATE")
            .ok_or_else(|| StoreError::BadEncoding("no CERTIFICATE block found".into()))?;
        let cert = ParsedCert::parse(&cert_block.der).map_err(StoreError::bad_encoding)?;
        let key = parse_private_key(self.crypto(), key_pem)?;
        let cert_key = rsa_public_key(cert.spki())
            .map_err(|_| StoreError::UnsupportedKey("the certificate's key is not RSA".into()))?;
        let key_spki = key
            .key
            .public_key_spki_der()
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        let own_key = x509_cert::spki::SubjectPublicKeyInfoOwned::try_from(key_spki.as_slice())
            .map_err(|e| StoreError::Crypto(e.to_string()))
            .and_then(|spki| {
                rsa_public_key(&spki).map_err(|_| StoreError::Crypto("own key unreadable".into()))
            })?;
        if cert_key != own_key {
            return Err(StoreError::KeyMismatch);
        }
        let bits = key.key.bits();
        if bits < MIN_IMPORT_BITS {
            return Err(StoreError::WeakKey {
                bits,
                min: MIN_IMPORT_BITS,
            });
        }
        if !cert.is_ca(false).map_err(StoreError::bad_encoding)? {
            return Err(StoreError::NotACa(
                "basicConstraints CA and keyUsage keyCertSign are required".into(),
            ));
        }
        if std::time::SystemTime::now() > cert.not_after() {
            return Err(StoreError::NotACa("the certificate has expired".into()));
        }
        let detail = format!(
            "proxy CA imported: {} ({})",
            cert.subject(),
            cert.fingerprint
        );
        self.store_ca(cert.der.clone(), &key, AuditKind::ProxyCaImported, detail)
    }

    fn store_ca(
        &self,
        cert: Vec<u8>,
        key: &issue::KeyPair,
        kind: AuditKind,
        detail: String,
    ) -> Result<(), StoreError> {
        let record = Zeroizing::new(encode_record(&CaRecord {
            v: codec::SCHEMA_VERSION,
            cert,
            key_pkcs8: key.pkcs8.to_vec(),
        })?);
        let audit_id = self.inner.db.generate_id()?;
        let draft = AuditDraft::new(kind, None, detail);
        (&self.inner.proxy_ca, &self.inner.audit)
            .transaction(|(ca, audit)| {
                // Re-checked inside the transaction: two concurrent inits must not both win.
                if ca.get(CA_KEY)?.is_some() {
                    return sled::transaction::abort(StoreError::AlreadyInitialised);
                }
                ca.insert(CA_KEY, record.as_slice())?;
                crate::audit::append_in_tx(audit, audit_id, &draft)
                    .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                Ok(())
            })
            .map_err(StoreError::from)?;
        self.inner.current_proxies.clear();
        self.flush()
    }

    fn ca_record(&self) -> Result<CaRecord, StoreError> {
        let bytes = self
            .inner
            .proxy_ca
            .get(CA_KEY)?
            .ok_or(StoreError::NotInitialised)?;
        decode_record(&bytes)
    }

    /// The current proxy CA certificate, parsed (no key).
    pub(crate) fn ca_certificate(&self) -> Result<ParsedCert, StoreError> {
        ParsedCert::parse(&self.ca_record()?.cert).map_err(StoreError::corrupt_record)
    }

    pub(crate) fn ca_material(&self) -> Result<CaMaterial, StoreError> {
        let record = self.ca_record()?;
        let key = self
            .crypto()
            .load_private_key(&Zeroizing::new(record.key_pkcs8))
            .map_err(|e| StoreError::CorruptRecord(format!("proxy CA key: {e}")))?;
        let cert = ParsedCert::parse(&record.cert).map_err(StoreError::corrupt_record)?;
        Ok(CaMaterial { cert, key })
    }

    /// The proxy CA certificate, DER.
    pub fn proxy_ca_certificate_der(&self) -> Result<Vec<u8>, StoreError> {
        Ok(self.ca_record()?.cert)
    }

    /// The proxy CA certificate, PEM.
    pub fn proxy_ca_certificate_pem(&self) -> Result<String, StoreError> {
        let der = self.proxy_ca_certificate_der()?;
        to_pem("CERTIFICATE", &der)
    }

    /// The current and retired proxy CA certificates, PEM, current first.
    pub fn all_proxy_ca_certificates_pem(&self) -> Result<String, StoreError> {
        let mut pems = String::new();
        for ca in self.proxy_cas()? {
            pems.push_str(&to_pem("CERTIFICATE", &ca.certificate_der)?);
        }
        Ok(pems)
    }

    /// The proxy CA key as PKCS#8 PEM: the only way it leaves the store. Audited.
    pub fn export_proxy_ca_key_pem(&self) -> Result<Zeroizing<String>, StoreError> {
        let record = self.ca_record()?;
        let key_der = Zeroizing::new(record.key_pkcs8);
        let pem = Zeroizing::new(to_pem("PRIVATE KEY", &key_der)?);
        self.audit_now(AuditDraft::new(
            AuditKind::ProxyCaKeyExported,
            None,
            "proxy CA private key exported".into(),
        ))?;
        Ok(pem)
    }
}

/// A proxy CA as the operator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyCaInfo {
    pub subject: String,
    pub fingerprint_sha256: String,
    #[serde(with = "codec::rfc3339")]
    pub not_before: std::time::SystemTime,
    #[serde(with = "codec::rfc3339")]
    pub not_after: std::time::SystemTime,
    /// Whether it carries name constraints (CAs created before they were introduced do not:
    /// rotate those).
    pub name_constrained: bool,
    /// The CA that signs new proxy certificates (others are retired).
    pub current: bool,
    #[serde(skip)]
    pub certificate_der: Vec<u8>,
}

fn ca_info(der: &[u8], current: bool) -> Result<ProxyCaInfo, StoreError> {
    let cert = ParsedCert::parse(der).map_err(StoreError::corrupt_record)?;
    let name_constrained = cert
        .extension::<x509_cert::ext::pkix::NameConstraints>(
            const_oid::db::rfc5280::ID_CE_NAME_CONSTRAINTS,
        )
        .map_err(StoreError::corrupt_record)?
        .is_some();
    Ok(ProxyCaInfo {
        subject: cert.subject(),
        fingerprint_sha256: cert.fingerprint.clone(),
        not_before: cert.not_before(),
        not_after: cert.not_after(),
        name_constrained,
        current,
        certificate_der: cert.der,
    })
}

/// A new constrained CA: its certificate, key and a description for the audit journal.
fn new_ca(
    crypto: &'static CryptoProvider,
    subject_cn: &str,
    internal_domains: &[String],
) -> Result<(Vec<u8>, issue::KeyPair, String), StoreError> {
    issue::common_name(subject_cn)?;
    let domains = internal_domains
        .iter()
        .map(|d| normalise_domain(d))
        .collect::<Result<Vec<_>, _>>()?;
    let key = issue::generate_key(crypto, issue::CA_KEY_BITS)?;
    let cert = issue::build_ca(subject_cn, &domains, &key.key)?;
    let detail = format!(
        "CN={subject_cn}, RSA-{}, mail of {} only, fingerprint {}",
        issue::CA_KEY_BITS,
        domains.join(", "),
        smime_pki::cert::fingerprint_sha256(&cert)
    );
    Ok((cert, key, detail))
}

pub(crate) fn to_pem(label: &str, der: &[u8]) -> Result<String, StoreError> {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der)
        .map_err(|e| StoreError::BadEncoding(e.to_string()))
}

/// Certificates in PEM or DER input, for callers handing in certificate bytes.
pub fn parse_certificate_input(bytes: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    let certs = crate::trust::parse_certificates(bytes).map_err(StoreError::bad_encoding)?;
    Ok(certs.into_iter().map(|c| c.der).collect())
}
