//! Revocation as partners' CAs publish it, against servers on loopback: an HTTP server serving
//! the CA's CRL (distribution point), `openssl ocsp -port` as the OCSP responder, and ports
//! nobody listens on (unreachable). The PKI is made with the openssl CLI in a temporary
//! directory.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use certstore::{KeyPurpose, RevocationMode, StoreConfig, TrustAnchors, ValidationError};

fn openssl(dir: &Path, args: &[&str]) {
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Serves `body` to every request until dropped; counts requests.
struct CrlServer {
    port: u16,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CrlServer {
    fn start(body_path: PathBuf) -> CrlServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .unwrap();
                        let mut buf = [0u8; 4096];
                        let _ = stream.read(&mut buf);
                        r.fetch_add(1, Ordering::SeqCst);
                        // Read at request time: the test re-issues the CRL.
                        let body = std::fs::read(&body_path).unwrap_or_default();
                        let head = format!(
                            "HTTP/1.0 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(head.as_bytes());
                        let _ = stream.write_all(&body);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        CrlServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for CrlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `openssl ocsp` as the responder; killed when dropped.
struct OcspResponder(Child);

impl OcspResponder {
    fn start(dir: &Path, port: u16) -> OcspResponder {
        let mut child = Command::new("openssl")
            .args([
                "ocsp",
                "-index",
                "index.txt",
                "-port",
                &port.to_string(),
                "-rsigner",
                "root.pem",
                "-rkey",
                "root.key",
                "-CA",
                "root.pem",
                "-nrequest",
                "50",
            ])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // It prints "ACCEPT ..." once listening. (A probe connection instead would hold the
        // single-threaded responder.)
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(line.starts_with("ACCEPT"), "OCSP responder: {line:?}");
        OcspResponder(child)
    }
}

impl Drop for OcspResponder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn der(&self, name: &str) -> Vec<u8> {
        let pem = std::fs::read(self.path(name)).unwrap();
        openssl::x509::X509::from_pem(&pem)
            .unwrap()
            .to_der()
            .unwrap()
    }

    fn new() -> Pki {
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
             default_crl_days = 7\npolicy = any\nunique_subject = no\n[any]\ncommonName = supplied\n",
        )
        .unwrap();
        openssl(
            d,
            &[
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
                "/CN=Revocation Test Root",
                "-days",
                "30",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            d,
            &[
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out",
                "leaf.csr", "-subj", "/CN=leaf",
            ],
        );
        Pki { dir }
    }

    /// A partner certificate `name.pem` with the given revocation pointers.
    fn issue(&self, name: &str, pointers: &str) {
        let ext = format!(
            "[leaf]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\n\
             extendedKeyUsage = emailProtection\nsubjectAltName = email:{name}@partner.example\n{pointers}\n"
        );
        let ext_file = format!("{name}.ext");
        std::fs::write(self.path(&ext_file), ext).unwrap();
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
                &format!("/CN={name}"),
                "-extfile",
                &ext_file,
                "-extensions",
                "leaf",
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }

    fn revoke(&self, name: &str) {
        openssl(
            self.dir.path(),
            &[
                "ca",
                "-config",
                "ca.cnf",
                "-batch",
                "-revoke",
                &format!("{name}.pem"),
            ],
        );
    }

    fn publish_crl(&self) {
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

    fn anchors(&self, revocation: RevocationMode) -> TrustAnchors {
        TrustAnchors::from_config(&StoreConfig {
            trust_anchor_files: vec![self.path("root.pem")],
            revocation,
            fetch_revocation: true,
            ..StoreConfig::default()
        })
        .unwrap()
    }
}

fn check(
    anchors: &TrustAnchors,
    pki: &Pki,
    name: &str,
) -> Result<certstore::ValidatedCertificate, ValidationError> {
    anchors.validate_for(
        &pki.der(&format!("{name}.pem")),
        &[],
        Some(&format!("{name}@partner.example")),
        KeyPurpose::Encrypt,
        SystemTime::now(),
    )
}

#[test]
fn crl_distribution_points_and_ocsp() {
    let pki = Pki::new();
    let crl_server = CrlServer::start(pki.path("ca.crl"));
    let ocsp_port = free_port();
    let (dead_crl, dead_ocsp) = (free_port(), free_port());
    let crl_dp = |port: u16| format!("crlDistributionPoints = URI:http://127.0.0.1:{port}/ca.crl");
    let aia = |port: u16| format!("authorityInfoAccess = OCSP;URI:http://127.0.0.1:{port}/");
    pki.issue("crlgood", &crl_dp(crl_server.port));
    pki.issue("crlrevoked", &crl_dp(crl_server.port));
    pki.issue("ocspgood", &aia(ocsp_port));
    pki.issue("ocsprevoked", &aia(ocsp_port));
    pki.issue("crldead", &crl_dp(dead_crl));
    pki.issue("ocspdead", &aia(dead_ocsp));
    pki.revoke("crlrevoked");
    pki.revoke("ocsprevoked");
    pki.publish_crl();
    let _responder = OcspResponder::start(pki.dir.path(), ocsp_port);

    let soft = pki.anchors(RevocationMode::SoftFail);
    for good in ["crlgood", "ocspgood"] {
        let v = check(&soft, &pki, good).unwrap();
        assert!(
            v.revocation_unknown.is_empty(),
            "{good}: {:?}",
            v.revocation_unknown
        );
    }
    for revoked in ["crlrevoked", "ocsprevoked"] {
        let r = check(&soft, &pki, revoked);
        assert_eq!(r.unwrap_err(), ValidationError::Revoked, "{revoked}");
    }
    // Unreachable sources: accepted, and the verdict says the status is unknown.
    let v = check(&soft, &pki, "crldead").unwrap();
    assert_eq!(v.revocation_unknown.len(), 1, "{:?}", v.revocation_unknown);
    let v = check(&soft, &pki, "ocspdead").unwrap();
    assert_eq!(v.revocation_unknown.len(), 1, "{:?}", v.revocation_unknown);
    assert!(
        v.revocation_unknown[0].contains("OCSP"),
        "{:?}",
        v.revocation_unknown
    );

    // The CRL was fetched once and is served from the cache until its nextUpdate.
    assert_eq!(crl_server.requests.load(Ordering::SeqCst), 1);
    check(&soft, &pki, "crlgood").unwrap();
    assert_eq!(crl_server.requests.load(Ordering::SeqCst), 1);

    let hard = pki.anchors(RevocationMode::HardFail);
    check(&hard, &pki, "crlgood").unwrap();
    check(&hard, &pki, "ocspgood").unwrap();
    assert_eq!(
        check(&hard, &pki, "ocsprevoked").unwrap_err(),
        ValidationError::Revoked
    );
    for dead in ["crldead", "ocspdead"] {
        let r = check(&hard, &pki, dead);
        assert!(
            matches!(r, Err(ValidationError::RevocationUnknown { .. })),
            "{dead}: {r:?}"
        );
    }

    let off = pki.anchors(RevocationMode::Off);
    check(&off, &pki, "crlrevoked").unwrap();
    check(&off, &pki, "ocsprevoked").unwrap();
}
