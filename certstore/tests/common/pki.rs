//! A small CA made with the openssl CLI in a temporary directory, for certificate shapes the
//! fixtures do not have (revocation pointers, name constraints).

use std::path::{Path, PathBuf};
use std::process::Command;

use certstore::{RevocationMode, StoreConfig, TrustAnchors};

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    /// A root CA (`root.pem`, with `root_extensions` added, e.g. name constraints) and one
    /// leaf key request (`leaf.csr`) that every issued certificate certifies.
    pub fn new(root_extensions: &[&str]) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("new")).unwrap();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), "1000\n").unwrap();
        std::fs::write(d.join("crlnumber"), "1000\n").unwrap();
        std::fs::write(
            d.join("ca.cnf"),
            "[ca]\ndefault_ca = ca_default\n[ca_default]\ndir = .\ndatabase = ./index.txt\n\
             new_certs_dir = ./new\ncertificate = ./root.pem\nprivate_key = ./root.key\n\
             serial = ./serial\ncrlnumber = ./crlnumber\ndefault_md = sha256\ndefault_days = 30\n\
             default_crl_days = 7\npolicy = any\nunique_subject = no\n\
             [any]\ncommonName = supplied\nemailAddress = optional\n",
        )
        .unwrap();
        let mut args = vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-subj",
            "/CN=Test Root",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ];
        for e in root_extensions {
            args.extend(["-addext", e]);
        }
        openssl(d, &args);
        openssl(
            d,
            &[
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out",
                "leaf.csr", "-subj", "/CN=leaf",
            ],
        );
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn der(&self, name: &str) -> Vec<u8> {
        let pem = std::fs::read(self.path(name)).unwrap();
        openssl::x509::X509::from_pem(&pem)
            .unwrap()
            .to_der()
            .unwrap()
    }

    /// An e-mail certificate `name.pem` with subject `subject` (e.g. `/CN=x`) and the
    /// extension lines `extensions` (subjectAltName and any others) added to the S/MIME ones.
    pub fn issue(&self, name: &str, subject: &str, extensions: &str) {
        let ext = format!(
            "[leaf]\nbasicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature, keyEncipherment\n\
             extendedKeyUsage = emailProtection\n{extensions}\n"
        );
        let ext_file = format!("{name}.ext");
        std::fs::write(self.path(&ext_file), ext).unwrap();
        let out = format!("{name}.pem");
        openssl(
            self.dir.path(),
            &[
                "ca",
                "-config",
                "ca.cnf",
                "-batch",
                "-notext",
                "-in",
                "leaf.csr",
                "-subj",
                subject,
                "-extfile",
                &ext_file,
                "-extensions",
                "leaf",
                "-out",
                &out,
            ],
        );
    }

    pub fn revoke(&self, name: &str) {
        let cert = format!("{name}.pem");
        openssl(
            self.dir.path(),
            &["ca", "-config", "ca.cnf", "-batch", "-revoke", &cert],
        );
    }

    /// `ca.crl` (DER).
    pub fn publish_crl(&self) {
        let d = self.dir.path();
        openssl(
            d,
            &[
                "ca",
                "-config",
                "ca.cnf",
                "-batch",
                "-gencrl",
                "-out",
                "ca.crl.pem",
            ],
        );
        openssl(
            d,
            &[
                "crl",
                "-in",
                "ca.crl.pem",
                "-outform",
                "DER",
                "-out",
                "ca.crl",
            ],
        );
    }

    pub fn anchors(&self, revocation: RevocationMode) -> TrustAnchors {
        TrustAnchors::from_config(&StoreConfig {
            trust_anchor_files: vec![self.path("root.pem")],
            revocation,
            fetch_revocation: true,
            ..StoreConfig::default()
        })
        .unwrap()
    }
}
