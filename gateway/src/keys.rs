//! Proxy identities from the certstore, turned into what the engine needs: parsed certificates
//! and private keys behind [`PrivateKeyOps`]. Parsing an RSA key costs more than using it for
//! small messages, so parsed identities are cached by certificate fingerprint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use certstore::{InternalAddresses, ProxyIdentity, Store};
use x509_cert::Certificate;

use crate::smime::certs;
use crate::smime::crypto::{CryptoProvider, PrivateKeyOps};
use crate::smime::decrypt::DecryptionKey;
use crate::smime::sign::Signer;

/// An identity ready for the engine.
pub struct LoadedIdentity {
    pub address: String,
    pub certificate: Certificate,
    pub key: Box<dyn PrivateKeyOps>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    #[error("store: {0}")]
    Store(#[from] certstore::StoreError),
    #[error("stored proxy identity unusable: {0}")]
    Unusable(String),
    /// Permanent: the address may not hold a proxy identity at all.
    #[error(transparent)]
    NotInternal(#[from] certstore::NotInternal),
}

/// Cache of parsed identities; bounded so a flood of addresses cannot grow it without limit.
pub struct KeyCache {
    /// Loads the keys, and is what the engine calls run on.
    crypto: &'static CryptoProvider,
    parsed: ByFingerprint<LoadedIdentity>,
    /// The proxy CA certificate, parsed once: it does not change while the gateway runs.
    ca_chain: Mutex<Option<Arc<Vec<Certificate>>>>,
    /// Partners' certificates by fingerprint: outbound mail would parse the recipient's
    /// current certificate for every message otherwise.
    partners: ByFingerprint<Certificate>,
}

/// Parsed values by certificate fingerprint, bounded by [`CACHE_LIMIT`] (when full, all are
/// forgotten: a flood of addresses cannot grow it). A certificate never changes under its
/// fingerprint, so an entry never goes stale.
struct ByFingerprint<T>(Mutex<HashMap<String, Arc<T>>>);

impl<T> Default for ByFingerprint<T> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<T> ByFingerprint<T> {
    fn get(&self, fingerprint: &str) -> Option<Arc<T>> {
        self.0.lock().ok()?.get(fingerprint).cloned()
    }

    fn insert(&self, fingerprint: &str, value: Arc<T>) {
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(fingerprint.to_string(), value);
        }
    }
}

const CACHE_LIMIT: usize = 4096;

impl KeyCache {
    pub fn new(crypto: &'static CryptoProvider) -> Self {
        Self {
            crypto,
            parsed: ByFingerprint::default(),
            ca_chain: Mutex::default(),
            partners: ByFingerprint::default(),
        }
    }

    pub fn crypto(&self) -> &'static CryptoProvider {
        self.crypto
    }

    pub fn load(&self, identity: &ProxyIdentity) -> Result<Arc<LoadedIdentity>, KeyLoadError> {
        if let Some(hit) = self.parsed.get(&identity.fingerprint_sha256) {
            return Ok(hit);
        }
        let certificate = certs::parse_certificate(&identity.certificate_der)
            .map_err(|e| KeyLoadError::Unusable(e.to_string()))?;
        let key = self
            .crypto
            .load_private_key(&identity.private_key_pkcs8_der)
            .map_err(|e| KeyLoadError::Unusable(e.to_string()))?;
        let loaded = Arc::new(LoadedIdentity {
            address: identity.address.clone(),
            certificate,
            key: Box::new(key),
        });
        self.parsed
            .insert(&identity.fingerprint_sha256, loaded.clone());
        Ok(loaded)
    }

    /// The identity with this fingerprint: parsed already, or read from the store and parsed;
    /// `None` when the store has no such record.
    fn by_fingerprint(
        &self,
        store: &Store,
        fingerprint: &str,
    ) -> Result<Option<Arc<LoadedIdentity>>, KeyLoadError> {
        if let Some(hit) = self.parsed.get(fingerprint) {
            return Ok(Some(hit));
        }
        store
            .proxy_identity_by_fingerprint(fingerprint)?
            .map(|identity| self.load(&identity))
            .transpose()
    }

    /// Every key ever issued to `address` (newest first): old mail must stay readable. Only
    /// the store's index is read for identities already parsed (an identity record never
    /// changes once written).
    pub fn decryption_identities(
        &self,
        store: &Store,
        address: &str,
    ) -> Result<Vec<Arc<LoadedIdentity>>, KeyLoadError> {
        store
            .proxy_fingerprints(address)?
            .iter()
            // Listed by the index but gone: skipped, as a full read would skip it.
            .filter_map(|fingerprint| self.by_fingerprint(store, fingerprint).transpose())
            .collect()
    }

    /// The current identity of `address`, issued on first use, only when `allowed` permits
    /// the address (no key is ever made for an invented or external address).
    pub fn signing_identity(
        &self,
        store: &Store,
        allowed: &InternalAddresses,
        address: &str,
    ) -> Result<Arc<LoadedIdentity>, KeyLoadError> {
        allowed.check(address)?;
        let fingerprint = store.ensure_proxy_fingerprint(address)?;
        match self.by_fingerprint(store, &fingerprint)? {
            Some(identity) => Ok(identity),
            // Gone between the two reads (only a store fault does this): the long way.
            None => self.load(&store.ensure_proxy_identity(address)?),
        }
    }
}

/// Borrow identities as decryption keys.
pub fn decryption_keys(identities: &[Arc<LoadedIdentity>]) -> Vec<DecryptionKey<'_>> {
    identities
        .iter()
        .map(|i| DecryptionKey {
            certificate: &i.certificate,
            key: i.key.as_ref(),
        })
        .collect()
}

/// A signer for `identity`, carrying the proxy CA certificate as its chain.
pub fn signer<'a>(identity: &'a LoadedIdentity, chain: &'a [Certificate]) -> Signer<'a> {
    Signer {
        certificate: &identity.certificate,
        chain,
        key: identity.key.as_ref(),
    }
}

impl KeyCache {
    /// A partner certificate (as the store holds it: DER and its SHA-256 fingerprint),
    /// parsed once. A certificate never changes under its fingerprint.
    pub fn partner_certificate(
        &self,
        fingerprint: &str,
        der: &[u8],
    ) -> Result<Arc<Certificate>, crate::smime::SmimeError> {
        if let Some(hit) = self.partners.get(fingerprint) {
            return Ok(hit);
        }
        let certificate = Arc::new(certs::parse_certificate(der)?);
        self.partners.insert(fingerprint, certificate.clone());
        Ok(certificate)
    }

    /// The proxy CA certificate as a signing chain (signatures carry it: clients do not fetch
    /// it), read from the store on first use.
    pub fn proxy_ca_chain(&self, store: &Store) -> Result<Arc<Vec<Certificate>>, KeyLoadError> {
        if let Ok(cached) = self.ca_chain.lock() {
            if let Some(chain) = cached.as_ref() {
                return Ok(chain.clone());
            }
        }
        let der = store.proxy_ca_certificate_der()?;
        let certificate =
            certs::parse_certificate(&der).map_err(|e| KeyLoadError::Unusable(e.to_string()))?;
        let chain = Arc::new(vec![certificate]);
        if let Ok(mut cached) = self.ca_chain.lock() {
            *cached = Some(chain.clone());
        }
        Ok(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice_der() -> Vec<u8> {
        let pem = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/partner/alice.pem"
        ))
        .unwrap();
        certs::to_der(&certs::parse_certificate(&pem).unwrap()).unwrap()
    }

    #[test]
    fn a_partner_certificate_is_parsed_once_per_fingerprint() {
        let keys = KeyCache::new(crate::smime::crypto::default_provider());
        let der = alice_der();
        let fp = certs::fingerprint_sha256(&der);
        let first = keys.partner_certificate(&fp, &der).unwrap();
        let again = keys.partner_certificate(&fp, &der).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(*first, certs::parse_certificate(&der).unwrap());
        // What does not parse is an error, and is not remembered.
        assert!(keys
            .partner_certificate("other", b"not a certificate")
            .is_err());
        assert!(keys.partner_certificate("other", &der).is_ok());
    }

    #[test]
    fn the_fingerprint_cache_is_bounded() {
        let cache = ByFingerprint::default();
        for i in 0..CACHE_LIMIT + 10 {
            cache.insert(&format!("fp{i}"), Arc::new(i));
        }
        assert!(cache.0.lock().unwrap().len() <= CACHE_LIMIT);
        assert_eq!(
            cache.get(&format!("fp{}", CACHE_LIMIT + 9)).as_deref(),
            Some(&(CACHE_LIMIT + 9))
        );
    }
}
