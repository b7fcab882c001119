#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Shared helpers for the engine's interoperability tests: fixtures and the `openssl` CLI.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use gateway::smime::certs;
use gateway::smime::crypto::{CryptoProvider, PrivateKey, PrivateKeyOps};
use x509_cert::Certificate;

pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(path)
}

pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(fixture(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

pub fn cert(path: &str) -> Certificate {
    certs::parse_certificate(&read(path)).unwrap()
}

/// The backend the tests run on: the build's default (`--no-default-features --features
/// rust-crypto` runs them on RustCrypto).
pub fn crypto() -> &'static CryptoProvider {
    gateway::smime::crypto::default_provider()
}

pub fn key(path: &str) -> PrivateKey {
    crypto().load_private_key(&read(path)).unwrap()
}

pub fn boxed_key(path: &str) -> Box<dyn PrivateKeyOps> {
    Box::new(key(path))
}

pub struct Output {
    pub ok: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Run `openssl` with `args`, feeding `input` on stdin.
pub fn openssl(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl CLI is installed");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Output {
        ok: out.status.success(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn openssl_ok(args: &[&str], input: &[u8]) -> Vec<u8> {
    let out = openssl(args, input);
    assert!(out.ok, "openssl {args:?} failed: {}", out.stderr);
    out.stdout
}

pub fn f(path: &str) -> String {
    fixture(path).to_string_lossy().into_owned()
}

/// A small text entity, as the content OpenSSL signs or encrypts.
pub const BODY: &[u8] = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nHello from the partner.\r\nSecond line.\r\n";

/// Headers for a whole message around OpenSSL output.
pub fn with_headers(cms_mime: &[u8]) -> Vec<u8> {
    let mut m = b"From: alice@partner.example\r\nTo: user@agency.example\r\nSubject: test\r\nMessage-ID: <t1@partner.example>\r\n".to_vec();
    m.extend_from_slice(cms_mime);
    m
}
