#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Revocation as partners' CAs publish it, against servers on loopback: an HTTP server serving
//! the CA's CRL (distribution point), `openssl ocsp -port` as the OCSP responder, and ports
//! nobody listens on (unreachable). The PKI is made with the openssl CLI in a temporary
//! directory.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use certstore::{KeyPurpose, RevocationMode, TrustAnchors, ValidationError};
use common::pki::Pki;

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
    let pki = Pki::new(&[]);
    let crl_server = CrlServer::start(pki.path("ca.crl"));
    let ocsp_port = free_port();
    let (dead_crl, dead_ocsp) = (free_port(), free_port());
    let crl_dp = |port: u16| format!("crlDistributionPoints = URI:http://127.0.0.1:{port}/ca.crl");
    let aia = |port: u16| format!("authorityInfoAccess = OCSP;URI:http://127.0.0.1:{port}/");
    let issue = |name: &str, pointers: String| {
        let san = format!("subjectAltName = email:{name}@partner.example\n{pointers}");
        pki.issue(name, &format!("/CN={name}"), &san);
    };
    issue("crlgood", crl_dp(crl_server.port));
    issue("crlrevoked", crl_dp(crl_server.port));
    issue("ocspgood", aia(ocsp_port));
    issue("ocsprevoked", aia(ocsp_port));
    issue("crldead", crl_dp(dead_crl));
    issue("ocspdead", aia(dead_ocsp));
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
