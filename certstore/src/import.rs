//! Proxy identities brought from another gateway (migration): a PKCS#12 file, or a PEM key
//! and certificate. Imported as current (the certificate must be issued by the current proxy
//! CA, e.g. one imported at `init`) or as old, decrypt-only keys that keep old mail readable.

use std::time::SystemTime;

use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{Id, PKey, Private};
use openssl::x509::X509;
use zeroize::Zeroizing;

use crate::certinfo::{CertError, ParsedCert, MAX_RSA_BITS};
use crate::domains::normalise_address;
use crate::error::{StoreError, ValidationError};
use crate::validate::{KeyPurpose, MIN_RSA_BITS};

/// PKCS#12 files and PEM inputs larger than this are refused before parsing (a proxy
/// identity is a few kilobytes).
pub const MAX_IMPORT_BYTES: usize = 256 * 1024;

/// A key pair read from an import file, checked to belong together and to be usable for
/// S/MIME; not yet stored.
pub struct ImportedIdentity {
    pub(crate) cert: ParsedCert,
    pub(crate) key_pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ImportedIdentity {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedIdentity")
            .field("fingerprint", &self.cert.fingerprint)
            .finish_non_exhaustive()
    }
}

fn bad(what: &str) -> impl Fn(openssl::error::ErrorStack) -> StoreError + '_ {
    move |e| StoreError::BadEncoding(format!("{what}: {e}"))
}

fn bounded(bytes: &[u8], what: &str) -> Result<(), StoreError> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(StoreError::BadEncoding(format!(
            "{what} of {} bytes exceeds the {MAX_IMPORT_BYTES}-byte limit",
            bytes.len()
        )));
    }
    Ok(())
}

impl ImportedIdentity {
    /// A PKCS#12 file (DER) with its password (empty when it has none).
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Self, StoreError> {
        bounded(der, "the PKCS#12 file")?;
        let parsed = Pkcs12::from_der(der)
            .map_err(bad("PKCS#12"))?
            .parse2(password)
            .map_err(|e| {
                StoreError::BadEncoding(format!(
                    "the PKCS#12 file cannot be opened (wrong password?): {e}"
                ))
            })?;
        let key = parsed.pkey.ok_or_else(|| {
            StoreError::BadEncoding("the PKCS#12 file holds no private key".into())
        })?;
        let cert = parsed.cert.ok_or_else(|| {
            StoreError::BadEncoding("the PKCS#12 file holds no certificate".into())
        })?;
        Self::checked(key, &cert)
    }

    /// A PEM private key (PKCS#8, PKCS#1, or encrypted PKCS#8 with `password`) and a PEM
    /// certificate (the first one in the file).
    pub fn from_pem(
        key_pem: &[u8],
        cert_pem: &[u8],
        password: Option<&str>,
    ) -> Result<Self, StoreError> {
        bounded(key_pem, "the key file")?;
        bounded(cert_pem, "the certificate file")?;
        let key = match password {
            Some(p) => PKey::private_key_from_pem_passphrase(key_pem, p.as_bytes()),
            None => PKey::private_key_from_pem(key_pem),
        }
        .map_err(bad("private key"))?;
        let cert = X509::from_pem(cert_pem).map_err(bad("certificate"))?;
        Self::checked(key, &cert)
    }

    /// Key matches certificate, RSA or EC within policy, certificate fit for S/MIME.
    fn checked(key: PKey<Private>, cert: &X509) -> Result<Self, StoreError> {
        let cert_key = cert.public_key().map_err(bad("certificate key"))?;
        if !key.public_eq(&cert_key) {
            return Err(StoreError::KeyMismatch);
        }
        match key.id() {
            Id::RSA => {
                let bits = usize::try_from(key.bits()).unwrap_or(usize::MAX);
                if bits < MIN_RSA_BITS {
                    return Err(StoreError::WeakKey {
                        bits,
                        min: MIN_RSA_BITS,
                    });
                }
                if bits > MAX_RSA_BITS {
                    return Err(StoreError::UnsupportedKey(format!(
                        "RSA keys above {MAX_RSA_BITS} bits are not accepted ({bits} bits)"
                    )));
                }
            }
            // The curves the engine decrypts and signs with (`[store] proxy_key_type`).
            Id::EC => {
                let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
                if !matches!(
                    curve,
                    Some(Nid::X9_62_PRIME256V1 | Nid::SECP384R1 | Nid::SECP521R1)
                ) {
                    return Err(StoreError::UnsupportedKey(
                        "EC proxy keys must be on P-256, P-384 or P-521".into(),
                    ));
                }
            }
            _ => {
                return Err(StoreError::UnsupportedKey(
                    "proxy keys are RSA or EC (P-256, P-384, P-521)".into(),
                ))
            }
        }
        let der = cert.to_der().map_err(bad("certificate"))?;
        let parsed = ParsedCert::parse(&der).map_err(StoreError::bad_encoding)?;
        let unusable = |why: &str| StoreError::UnusableCertificate(why.to_string());
        if parsed.is_ca(false).map_err(StoreError::bad_encoding)? {
            return Err(unusable(
                "it is a CA certificate, not an e-mail certificate",
            ));
        }
        // A proxy key decrypts what partners send and signs what staff send.
        for purpose in [KeyPurpose::Encrypt, KeyPurpose::Sign] {
            if !parsed
                .permits_email_protection(purpose)
                .map_err(StoreError::bad_encoding)?
            {
                return Err(unusable(
                    "its keyUsage/extendedKeyUsage do not permit S/MIME signing and encryption",
                ));
            }
        }
        if parsed
            .email_addresses()
            .map_err(StoreError::bad_encoding)?
            .is_empty()
        {
            return Err(unusable("it names no e-mail address"));
        }
        let key_pkcs8 = Zeroizing::new(key.private_key_to_pkcs8().map_err(bad("private key"))?);
        Ok(ImportedIdentity {
            cert: parsed,
            key_pkcs8,
        })
    }

    pub fn fingerprint_sha256(&self) -> &str {
        &self.cert.fingerprint
    }

    /// The address to file the identity under: `requested` when the certificate names it,
    /// else the certificate's only address.
    pub fn address(&self, requested: Option<&str>) -> Result<String, StoreError> {
        let named = self
            .cert
            .email_addresses()
            .map_err(StoreError::bad_encoding)?;
        match requested {
            Some(r) => {
                let r = normalise_address(r)?;
                if named.contains(&r) {
                    Ok(r)
                } else {
                    Err(StoreError::UnusableCertificate(format!(
                        "it is for {}, not for {r}",
                        named.join(", ")
                    )))
                }
            }
            None => match named.as_slice() {
                [one] => Ok(one.clone()),
                _ => Err(StoreError::UnusableCertificate(format!(
                    "it names several addresses ({}); say which one to import it for",
                    named.join(", ")
                ))),
            },
        }
    }

    /// Whether the certificate is within its validity period at `now`.
    pub(crate) fn valid_at(&self, now: SystemTime) -> bool {
        self.cert.not_before() <= now && now < self.cert.not_after()
    }
}

/// What became of one certificate of a bulk partner import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerImport {
    /// Index of the certificate in the input.
    pub index: usize,
    pub fingerprint: String,
    /// The address it was recorded for (none: it names none, or is a CA certificate).
    pub address: Option<String>,
    pub result: PartnerImportResult,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartnerImportResult {
    /// Valid and recorded (`new`: never seen for this address before).
    Imported { new: bool },
    /// A CA certificate: offered as an intermediate to the others, not recorded.
    Intermediate,
    /// Recorded as refused, with why.
    Refused(ValidationError),
    /// Not recorded: its domain is not approved, or too many refused certificates already.
    NotRecorded(String),
    /// Recorded, but an operator blocked it.
    Blocked,
    /// It cannot be read or names no address.
    Unusable(String),
}

impl PartnerImport {
    /// Whether the certificate is now usable history (or a useful intermediate).
    pub fn imported(&self) -> bool {
        matches!(
            self.result,
            PartnerImportResult::Imported { .. } | PartnerImportResult::Intermediate
        )
    }
}

impl std::fmt::Display for PartnerImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = self.address.as_deref().unwrap_or("-");
        let fp = &self.fingerprint;
        match &self.result {
            PartnerImportResult::Imported { new: true } => write!(f, "{who} {fp}: imported"),
            PartnerImportResult::Imported { new: false } => {
                write!(f, "{who} {fp}: already known, still valid")
            }
            PartnerImportResult::Intermediate => {
                write!(f, "{fp}: CA certificate, used as an intermediate only")
            }
            PartnerImportResult::Refused(e) => write!(f, "{who} {fp}: refused: {e}"),
            PartnerImportResult::NotRecorded(why) => write!(f, "{who} {fp}: not recorded: {why}"),
            PartnerImportResult::Blocked => write!(f, "{who} {fp}: blocked by an operator"),
            PartnerImportResult::Unusable(why) => write!(f, "{who} {fp}: not imported: {why}"),
        }
    }
}

impl crate::store::Store {
    /// Record partner certificates (`certs`, DER, e.g. a PEM bundle or a directory's files),
    /// validated exactly like captured ones: each for every address it names; CA
    /// certificates among them serve as intermediates for the others.
    pub fn import_partner_certificates(
        &self,
        certs: &[Vec<u8>],
    ) -> Result<Vec<PartnerImport>, StoreError> {
        use crate::partner::{CaptureOutcome, PartnerCapture, ValidationStatus, MAX_CHAIN_OFFERED};
        let parsed: Vec<(Vec<u8>, Result<ParsedCert, CertError>)> = certs
            .iter()
            .map(|der| (der.clone(), ParsedCert::parse(der)))
            .collect();
        let intermediates: Vec<Vec<u8>> = parsed
            .iter()
            .filter(|(_, p)| p.as_ref().is_ok_and(|p| p.is_ca(true).unwrap_or(false)))
            .map(|(der, _)| der.clone())
            .take(MAX_CHAIN_OFFERED)
            .collect();
        let mut out = Vec::new();
        for (index, (der, cert)) in parsed.into_iter().enumerate() {
            let fingerprint = smime_pki::cert::fingerprint_sha256(&der);
            let unusable = |why: String| PartnerImport {
                index,
                fingerprint: fingerprint.clone(),
                address: None,
                result: PartnerImportResult::Unusable(why),
            };
            let cert = match cert {
                Ok(c) => c,
                Err(e) => {
                    out.push(unusable(format!("unreadable certificate: {e}")));
                    continue;
                }
            };
            if intermediates.contains(&der) {
                out.push(PartnerImport {
                    index,
                    fingerprint,
                    address: None,
                    result: PartnerImportResult::Intermediate,
                });
                continue;
            }
            let addresses = cert.email_addresses().unwrap_or_default();
            if addresses.is_empty() {
                out.push(unusable("it names no e-mail address".into()));
                continue;
            }
            for address in addresses {
                let capture = PartnerCapture {
                    address: address.clone(),
                    certificate_der: der.clone(),
                    chain_der: intermediates.clone(),
                    message_id: None,
                    seen_at: SystemTime::now(),
                    // An imported certificate says nothing of what its owner's client reads.
                    capabilities: Vec::new(),
                };
                let result = match self.capture_partner_certificate(&capture) {
                    Ok(CaptureOutcome::Stored {
                        recorded: false,
                        status,
                        ..
                    }) => {
                        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
                        PartnerImportResult::NotRecorded(match status {
                            ValidationStatus::Valid => {
                                format!("the domain {domain} is not approved")
                            }
                            ValidationStatus::Refused(e) => format!(
                                "{e} (and the domain {domain} is not approved, or it has too many refused certificates)"
                            ),
                        })
                    }
                    Ok(CaptureOutcome::Stored {
                        status: ValidationStatus::Valid,
                        new,
                        ..
                    }) => PartnerImportResult::Imported { new },
                    Ok(CaptureOutcome::Stored {
                        status: ValidationStatus::Refused(e),
                        ..
                    }) => PartnerImportResult::Refused(e),
                    Ok(CaptureOutcome::Blocked { .. }) => PartnerImportResult::Blocked,
                    Err(StoreError::InvalidAddress(a)) => {
                        PartnerImportResult::Unusable(format!("invalid address {a:?}"))
                    }
                    Err(e) => return Err(e),
                };
                if matches!(result, PartnerImportResult::Imported { new: true }) {
                    tracing::info!(%address, %fingerprint, "partner certificate imported");
                }
                out.push(PartnerImport {
                    index,
                    fingerprint: fingerprint.clone(),
                    address: Some(address),
                    result,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreConfig};

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../fixtures")
                .join(path),
        )
        .unwrap()
    }

    /// A store whose proxy CA is the fixtures' (which issued `proxy/user*.pem`).
    fn store_with_fixture_ca() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        store
            .import_proxy_ca(
                &String::from_utf8(fixture("proxy/proxy-ca.pem")).unwrap(),
                &String::from_utf8(fixture("proxy/proxy-ca.key")).unwrap(),
            )
            .unwrap();
        (dir, store)
    }

    fn pem_pair(name: &str) -> ImportedIdentity {
        ImportedIdentity::from_pem(
            &fixture(&format!("proxy/{name}.key")),
            &fixture(&format!("proxy/{name}.pem")),
            None,
        )
        .unwrap()
    }

    #[test]
    fn current_and_old_imports_decrypt_but_only_current_signs() {
        let (_dir, store) = store_with_fixture_ca();
        let current = pem_pair("user");
        let address = current.address(None).unwrap();
        assert_eq!(address, "user@agency.example");
        let id = store
            .import_proxy_identity(&address, &current, false)
            .unwrap();
        assert_eq!(
            store
                .current_proxy_identity(&address)
                .unwrap()
                .map(|c| c.fingerprint_sha256),
            Some(id.fingerprint_sha256.clone())
        );
        let old = pem_pair("user-old");
        store.import_proxy_identity(&address, &old, true).unwrap();
        // The old key is kept for decryption but never becomes current.
        assert_eq!(store.proxy_identities(&address).unwrap().len(), 2);
        assert_eq!(
            store
                .current_proxy_identity(&address)
                .unwrap()
                .map(|c| c.fingerprint_sha256),
            Some(id.fingerprint_sha256)
        );
        assert!(matches!(
            store.import_proxy_identity(&address, &old, true),
            Err(StoreError::IdentityExists(_))
        ));
    }

    #[test]
    fn a_foreign_ca_certificate_is_only_an_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        store
            .init_proxy_ca("Other CA", &["agency.example".to_string()])
            .unwrap();
        let imported = pem_pair("user");
        let err = store
            .import_proxy_identity("user@agency.example", &imported, false)
            .unwrap_err();
        assert!(err.to_string().contains("--old"), "{err}");
        store
            .import_proxy_identity("user@agency.example", &imported, true)
            .unwrap();
        assert!(store
            .current_proxy_identity("user@agency.example")
            .unwrap()
            .is_none());
    }

    /// An EC (P-256) identity from another gateway, as a PKCS#12 file made by openssl:
    /// imported as current, and its key loads as the EC key of its certificate.
    #[test]
    fn an_ec_identity_imports_from_pkcs12() {
        let (_dir, store) = store_with_fixture_ca();
        let work = tempfile::tempdir().unwrap();
        let ca = |name: &str| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../fixtures/proxy")
                .join(name)
        };
        std::fs::write(
            work.path().join("ext"),
            "keyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=emailProtection\nsubjectAltName=email:ec@agency.example\n",
        )
        .unwrap();
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(work.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ec.key",
        ]);
        openssl(&[
            "req",
            "-new",
            "-key",
            "ec.key",
            "-subj",
            "/CN=EC User",
            "-out",
            "ec.csr",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "ec.csr",
            "-days",
            "30",
            "-set_serial",
            "77",
            "-CA",
            ca("proxy-ca.pem").to_str().unwrap(),
            "-CAkey",
            ca("proxy-ca.key").to_str().unwrap(),
            "-extfile",
            "ext",
            "-out",
            "ec.pem",
        ]);
        openssl(&[
            "pkcs12", "-export", "-inkey", "ec.key", "-in", "ec.pem", "-passout", "pass:pw",
            "-out", "ec.p12",
        ]);
        let p12 = std::fs::read(work.path().join("ec.p12")).unwrap();
        let imported = ImportedIdentity::from_pkcs12(&p12, "pw").unwrap();
        let address = imported.address(None).unwrap();
        assert_eq!(address, "ec@agency.example");
        store
            .import_proxy_identity(&address, &imported, false)
            .unwrap();
        let identities = store.proxy_identities(&address).unwrap();
        let [identity] = identities.as_slice() else {
            panic!("one identity: {identities:?}");
        };
        let key = crypto_provider::default_provider()
            .load_private_key(&identity.private_key_pkcs8_der)
            .unwrap();
        use crypto_provider::PrivateKeyOps;
        assert_eq!(
            key.algorithm(),
            crypto_provider::PublicKeyAlg::Ec {
                curve: crypto_provider::EcCurve::P256
            }
        );
        // A curve the engine does not use is refused by name.
        openssl(&[
            "ecparam",
            "-name",
            "secp256k1",
            "-genkey",
            "-noout",
            "-out",
            "k1.key",
        ]);
        openssl(&[
            "req", "-new", "-x509", "-key", "k1.key", "-subj", "/CN=k1", "-out", "k1.pem",
        ]);
        let refused = ImportedIdentity::from_pem(
            &std::fs::read(work.path().join("k1.key")).unwrap(),
            &std::fs::read(work.path().join("k1.pem")).unwrap(),
            None,
        );
        assert!(
            matches!(&refused, Err(StoreError::UnsupportedKey(why)) if why.contains("P-256")),
            "{refused:?}"
        );
    }

    #[test]
    fn mismatched_weak_or_unfit_material_is_refused() {
        let mismatch = ImportedIdentity::from_pem(
            &fixture("proxy/user-old.key"),
            &fixture("proxy/user.pem"),
            None,
        );
        assert!(matches!(mismatch, Err(StoreError::KeyMismatch)));
        let ca = ImportedIdentity::from_pem(
            &fixture("proxy/proxy-ca.key"),
            &fixture("proxy/proxy-ca.pem"),
            None,
        );
        assert!(
            matches!(&ca, Err(StoreError::UnusableCertificate(why)) if why.contains("CA")),
            "{ca:?}"
        );
        assert!(matches!(
            ImportedIdentity::from_pkcs12(b"not pkcs12", ""),
            Err(StoreError::BadEncoding(_))
        ));
        assert!(matches!(
            ImportedIdentity::from_pkcs12(&vec![0u8; MAX_IMPORT_BYTES + 1], ""),
            Err(StoreError::BadEncoding(why)) if why.contains("limit")
        ));
        let user = pem_pair("user");
        assert!(user.address(Some("other@agency.example")).is_err());
        assert_eq!(
            user.address(Some("User@Agency.Example")).unwrap(),
            "user@agency.example"
        );
    }

    #[test]
    fn partner_bundles_use_their_ca_certificates_as_intermediates() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            StoreConfig {
                trust_anchor_files: vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../fixtures/ca/partner-root.pem")],
                fetch_revocation: false,
                ..StoreConfig::default()
            },
        )
        .unwrap();
        store
            .approve_domain("partner.example", crate::DomainPolicy::Smime, "test", "")
            .unwrap();
        let mut bundle = fixture("partner/alice.pem");
        bundle.extend(fixture("ca/partner-chain.pem"));
        bundle.extend(fixture("partner/selfsigned.pem"));
        let certs = crate::parse_certificate_input(&bundle).unwrap();
        let report = store.import_partner_certificates(&certs).unwrap();
        assert!(matches!(
            report[0].result,
            PartnerImportResult::Imported { new: true }
        ));
        assert!(report
            .iter()
            .any(|r| r.result == PartnerImportResult::Intermediate));
        assert!(matches!(
            report.last().map(|r| &r.result),
            Some(PartnerImportResult::Refused(ValidationError::SelfSigned))
        ));
        assert!(store
            .current_partner_certificate("alice@partner.example")
            .unwrap()
            .is_some());
    }
}
