#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
#![allow(dead_code)]

pub mod pki;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use certstore::{PartnerCapture, Store, StoreConfig, StoreError};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(fixtures().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// DER of the first certificate in a fixture PEM file.
pub fn der(rel: &str) -> Vec<u8> {
    certstore::parse_certificate_input(read(rel).as_bytes())
        .unwrap()
        .remove(0)
}

pub fn intermediate() -> Vec<u8> {
    der("ca/partner-intermediate.pem")
}

/// Trusts the partner root only (intermediates come from "the message"), with the CRL.
pub fn config() -> StoreConfig {
    StoreConfig {
        trust_anchor_files: vec![fixtures().join("ca/partner-root.pem")],
        use_system_trust: false,
        crl_files: vec![fixtures().join("ca/partner-intermediate.crl")],
        ..StoreConfig::default()
    }
}

/// Opens the store in `dir` again after this process dropped its handle. sled lets go of its
/// file lock only when its background I/O threads do, which on a loaded machine can be a
/// moment after the drop (a real reopen is a new process, whose exit releases the lock).
pub fn reopen(dir: &Path, config: StoreConfig) -> Store {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open(dir, config.clone()) {
            Err(StoreError::Locked(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => return other.unwrap(),
        }
    }
}

pub fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), config()).unwrap();
    (dir, store)
}

/// A store with `partner.example` approved (only approved domains' certificates are recorded).
pub fn open_approved() -> (tempfile::TempDir, Store) {
    let (dir, store) = open();
    approve_partner(&store);
    (dir, store)
}

pub fn approve_partner(store: &Store) {
    store
        .approve_domain(
            "partner.example",
            certstore::DomainPolicy::Smime,
            "test",
            "",
        )
        .unwrap();
}

pub fn capture(address: &str, rel: &str, msg: &str) -> PartnerCapture {
    PartnerCapture {
        address: address.into(),
        certificate_der: der(rel),
        chain_der: vec![intermediate()],
        message_id: Some(msg.into()),
        seen_at: SystemTime::now(),
        capabilities: Vec::new(),
    }
}

pub mod build {
    //! Certificates made in the tests, for chain shapes the fixtures do not cover.
    use std::str::FromStr;
    use std::time::SystemTime;

    use der::{Decode, Encode};
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    use rsa::RsaPrivateKey;
    use sha2::Sha256;
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::der::asn1::Ia5String;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::{Time, Validity};
    use x509_cert::Certificate;

    pub fn key(rel: &str) -> RsaPrivateKey {
        RsaPrivateKey::from_pkcs8_pem(&super::read(rel)).unwrap()
    }

    pub fn subject_of(der: &[u8]) -> Name {
        Certificate::from_der(der).unwrap().tbs_certificate.subject
    }

    pub fn spki(key: &RsaPrivateKey) -> SubjectPublicKeyInfoOwned {
        let der = key.to_public_key().to_public_key_der().unwrap();
        SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).unwrap()
    }

    pub fn validity(from: SystemTime, to: SystemTime) -> Validity {
        Validity {
            not_before: Time::try_from(from).unwrap(),
            not_after: Time::try_from(to).unwrap(),
        }
    }

    pub fn default_validity() -> Validity {
        let y = std::time::Duration::from_secs(365 * 86_400);
        validity(SystemTime::now() - y, SystemTime::now() + y)
    }

    /// An S/MIME leaf for `email` with public key `spki`, signed PKCS#1 v1.5 SHA-256.
    pub fn leaf(
        serial: u64,
        email: &str,
        issuer: &Name,
        issuer_key: &RsaPrivateKey,
        spki: SubjectPublicKeyInfoOwned,
    ) -> Vec<u8> {
        leaf_with_usage(serial, email, issuer, issuer_key, spki, true)
    }

    /// As [`leaf`]; without keyEncipherment the keyUsage allows signing only.
    pub fn leaf_with_usage(
        serial: u64,
        email: &str,
        issuer: &Name,
        issuer_key: &RsaPrivateKey,
        spki: SubjectPublicKeyInfoOwned,
        key_encipherment: bool,
    ) -> Vec<u8> {
        leaf_valid(
            serial,
            email,
            issuer,
            issuer_key,
            spki,
            key_encipherment,
            default_validity(),
        )
    }

    /// As [`leaf_with_usage`], valid for `validity`.
    pub fn leaf_valid(
        serial: u64,
        email: &str,
        issuer: &Name,
        issuer_key: &RsaPrivateKey,
        spki: SubjectPublicKeyInfoOwned,
        key_encipherment: bool,
        validity: Validity,
    ) -> Vec<u8> {
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(issuer_key.clone());
        let mut b = CertificateBuilder::new(
            Profile::Leaf {
                issuer: issuer.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: key_encipherment,
            },
            SerialNumber::from(serial),
            validity,
            Name::from_str(&format!("CN={email}")).unwrap(),
            spki,
            &signer,
        )
        .unwrap();
        b.add_extension(&SubjectAltName(vec![GeneralName::Rfc822Name(
            Ia5String::new(email).unwrap(),
        )]))
        .unwrap();
        b.add_extension(&ExtendedKeyUsage(vec![
            const_oid::db::rfc5280::ID_KP_EMAIL_PROTECTION,
        ]))
        .unwrap();
        b.build::<rsa::pkcs1v15::Signature>()
            .unwrap()
            .to_der()
            .unwrap()
    }

    /// The same leaf profile, signed with RSA-PSS SHA-256.
    pub fn leaf_pss(
        serial: u64,
        email: &str,
        issuer: &Name,
        issuer_key: &RsaPrivateKey,
        spki: SubjectPublicKeyInfoOwned,
    ) -> Vec<u8> {
        let signer = rsa::pss::SigningKey::<Sha256>::new(issuer_key.clone());
        let mut b = CertificateBuilder::new(
            Profile::Leaf {
                issuer: issuer.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: true,
            },
            SerialNumber::from(serial),
            default_validity(),
            Name::from_str(&format!("CN={email}")).unwrap(),
            spki,
            &signer,
        )
        .unwrap();
        b.add_extension(&SubjectAltName(vec![GeneralName::Rfc822Name(
            Ia5String::new(email).unwrap(),
        )]))
        .unwrap();
        b.build_with_rng::<rsa::pss::Signature>(&mut rand::rngs::OsRng)
            .unwrap()
            .to_der()
            .unwrap()
    }

    pub fn sub_ca(
        serial: u64,
        cn: &str,
        issuer: &Name,
        issuer_key: &RsaPrivateKey,
        spki: SubjectPublicKeyInfoOwned,
        validity: Validity,
        path_len: Option<u8>,
    ) -> Vec<u8> {
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(issuer_key.clone());
        let b = CertificateBuilder::new(
            Profile::SubCA {
                issuer: issuer.clone(),
                path_len_constraint: path_len,
            },
            SerialNumber::from(serial),
            validity,
            Name::from_str(&format!("CN={cn}")).unwrap(),
            spki,
            &signer,
        )
        .unwrap();
        b.build::<rsa::pkcs1v15::Signature>()
            .unwrap()
            .to_der()
            .unwrap()
    }
}
