#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Engine benchmark: decrypt+verify and sign+encrypt of a 10 KB and a 10 MB message, against
//! `openssl cms` doing the same work on the same files in the same run.
//!
//! Run with `make bench` (or `cargo bench -p gateway --bench engine`). Prints a Markdown report
//! and writes it to `bench/engine-<backend>.md`, which `bench/run.sh` folds into `bench/RESULTS.md`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use gateway::mime::{encrypt_message, open_message, sign_message, SignFormat};
use gateway::smime::certs;
use gateway::smime::crypto::{
    CryptoProvider, KeyError, PrivateKey, PrivateKeyOps, RsaSignature, UnwrappedKey,
};
use gateway::smime::decrypt::DecryptionKey;
use gateway::smime::encrypt::EncryptOptions;
use gateway::smime::sign::Signer;
use gateway::smime::{DigestAlg, KeyTransport};

/// Counts live heap bytes and the peak, so memory is measured, not guessed.
struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size > layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Wraps a key and adds up the time spent in its private-key operations, so the share of RSA
/// in a run is measured inside that same run (separate timings drift with CPU frequency).
struct TimedKey<'a> {
    inner: &'a PrivateKey,
    nanos: std::sync::atomic::AtomicU64,
}

impl TimedKey<'_> {
    fn take(&self) -> Duration {
        Duration::from_nanos(self.nanos.swap(0, Ordering::Relaxed))
    }
    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
}

impl PrivateKeyOps for TimedKey<'_> {
    fn bits(&self) -> usize {
        self.inner.bits()
    }
    fn public_key_spki_der(&self) -> Result<Vec<u8>, KeyError> {
        self.inner.public_key_spki_der()
    }
    fn unwrap_key(&self, t: KeyTransport, k: &[u8], key_len: usize) -> UnwrappedKey {
        self.timed(|| self.inner.unwrap_key(t, k, key_len))
    }
    fn sign(&self, scheme: RsaSignature, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.timed(|| self.inner.sign(scheme, message))
    }
}

/// The backend this benchmark was built with (`make bench` runs it once per backend).
fn crypto() -> &'static CryptoProvider {
    gateway::smime::crypto::default_provider()
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn fx(p: &str) -> String {
    fixtures().join(p).to_string_lossy().into_owned()
}

fn sh(script: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .expect("sh");
    assert!(status.success(), "failed: {script}");
}

/// Median wall time of `script` run `n` times, and the largest peak RSS (KiB) of its processes.
fn time_shell(script: &str, n: usize) -> (Duration, u64) {
    let mut times = Vec::new();
    let mut peak_kib = 0;
    for _ in 0..n {
        let rss_file = std::env::temp_dir().join("bench-rss");
        let _ = std::fs::remove_file(&rss_file);
        // Each stage of the pipeline runs under GNU time, appending its max RSS.
        let timed = script.replace(
            "openssl ",
            &format!("/usr/bin/time -a -o {} -f %M openssl ", rss_file.display()),
        );
        let start = Instant::now();
        sh(&timed);
        times.push(start.elapsed());
        if let Ok(text) = std::fs::read_to_string(&rss_file) {
            for line in text.lines() {
                if let Ok(k) = line.trim().parse::<u64>() {
                    peak_kib = peak_kib.max(k);
                }
            }
        }
    }
    times.sort();
    (times[times.len() / 2], peak_kib)
}

/// Median wall time of `f` over `n` runs and its peak heap growth in bytes. `after_warm_up`
/// runs once between the warm-up call and the measured ones.
fn time_fn(n: usize, f: impl FnMut()) -> (Duration, usize) {
    let (median, peak, _) = time_fn_total(n, f, || {});
    (median, peak)
}

/// [`time_fn`], also returning the summed time of the measured runs.
fn time_fn_total(
    n: usize,
    mut f: impl FnMut(),
    after_warm_up: impl FnOnce(),
) -> (Duration, usize, Duration) {
    f(); // warm-up
    after_warm_up();
    let mut times = Vec::new();
    let mut peak = 0;
    for _ in 0..n {
        let base = CURRENT.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let start = Instant::now();
        f();
        times.push(start.elapsed());
        peak = peak.max(PEAK.load(Ordering::Relaxed).saturating_sub(base));
    }
    let total = times.iter().sum();
    times.sort();
    (times[times.len() / 2], peak, total)
}

fn make_plain(size: usize) -> Vec<u8> {
    let mut m = b"From: user@agency.example\r\nTo: alice@partner.example\r\nSubject: bench\r\nMessage-ID: <bench@agency.example>\r\nContent-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nPlease find the report attached.\r\n--mix\r\nContent-Type: application/octet-stream; name=report.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    let raw_len = size.saturating_sub(m.len() + 64) * 3 / 4 * 76 / 78;
    let payload: Vec<u8> = (0..raw_len).map(|i| (i * 7 + i / 13) as u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
    for line in b64.as_bytes().chunks(76) {
        m.extend_from_slice(line);
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b"--mix--\r\n");
    m
}

/// One RSA-2048 private-key operation of `openssl speed` (sign), single process.
fn openssl_rsa2048_sign() -> Duration {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "2", "rsa2048"])
        .output()
        .expect("openssl speed");
    let text = String::from_utf8_lossy(&out.stdout);
    // The summary line: "rsa 2048 bits 0.000262s 0.000008s 3816.1 125000.0" (sign, verify, ...).
    let line = text
        .lines()
        .find(|l| {
            l.trim_start().starts_with("rsa 2048 bits")
                || l.trim_start().starts_with("rsa  2048 bits")
        })
        .expect("openssl speed summary line");
    let seconds: f64 = line
        .split_whitespace()
        .find_map(|w| w.strip_suffix('s').and_then(|n| n.parse().ok()))
        .expect("sign time");
    Duration::from_secs_f64(seconds)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it,
    // and a test run must not spend minutes benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "engine benchmark: run it with `make bench` (cargo bench -p gateway --bench engine)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |name: &str| dir.path().join(name).to_string_lossy().into_owned();

    let user_cert =
        certs::parse_certificate(&std::fs::read(fx("proxy/user.pem")).unwrap()).unwrap();
    let user_key = crypto()
        .load_private_key(&std::fs::read(fx("proxy/user.key")).unwrap())
        .unwrap();
    let proxy_ca =
        certs::parse_certificate(&std::fs::read(fx("proxy/proxy-ca.pem")).unwrap()).unwrap();
    let alice = certs::parse_certificate(&std::fs::read(fx("partner/alice.pem")).unwrap()).unwrap();
    let anchors =
        certstore::TrustAnchors::from_files(&[fixtures().join("ca/partner-root.pem")], &[])
            .unwrap();

    // RSA private-key operations alone, for the "time beyond RSA" figure.
    let user_spki = user_key.public_key_spki_der().unwrap();
    let wrapped = crypto()
        .public_keys
        .encrypt(&user_spki, KeyTransport::RsaPkcs1v15, &[7u8; 32])
        .unwrap();
    let (rsa_decrypt, _) = time_fn(200, || {
        assert!(
            user_key
                .unwrap_key(KeyTransport::RsaPkcs1v15, &wrapped, 32)
                .genuine
        );
    });
    let sha256 = RsaSignature::Pkcs1v15(DigestAlg::Sha256);
    let (rsa_sign, _) = time_fn(200, || {
        user_key.sign_digest(sha256, &[1u8; 32]).unwrap();
    });

    // One RSA public-key operation (signature verification), for the breakdown.
    let alice_key = crypto()
        .load_private_key(&std::fs::read(fx("partner/alice.key")).unwrap())
        .unwrap();
    let alice_spki = alice_key.public_key_spki_der().unwrap();
    let digest = [3u8; 32];
    let sig = alice_key.sign_digest(sha256, &digest).unwrap();
    let (rsa_public, _) = time_fn(200, || {
        crypto()
            .public_keys
            .verify(&alice_spki, sha256, &digest, &sig)
            .unwrap();
    });
    // OpenSSL's own RSA-2048 private operation on this machine, in this run: the bound.
    let openssl_sign = openssl_rsa2048_sign();

    let mut report = String::new();
    report.push_str(&format!(
        "Backend `{}`. RSA-2048: private-key decrypt {:.3} ms, private-key sign {:.3} ms, public-key verify {:.3} ms; `openssl speed rsa2048` sign {:.3} ms in the same run.\n\n",
        crypto().name,
        ms(rsa_decrypt),
        ms(rsa_sign),
        ms(rsa_public),
        ms(openssl_sign),
    ));
    println!("engine benchmark on the {} backend", crypto().name);
    report.push_str("| workload | size | ours (median) | openssl cms (median) | ours / openssl | ours beyond RSA | our peak heap | peak heap / size | openssl peak RSS |\n|---|---|---|---|---|---|---|---|---|\n");

    for (label, size, n_ours, n_ssl) in [
        ("10 KB", 10 * 1024, 200, 20),
        ("10 MB", 10 * 1024 * 1024, 5, 5),
    ] {
        let plain = make_plain(size);
        let plain_path = d(&format!("plain-{size}.eml"));
        std::fs::write(&plain_path, &plain).unwrap();
        let body_path = d(&format!("body-{size}.eml"));
        // The inbound message as a partner's OpenSSL would send it: signed, then encrypted.
        let split = plain.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let headers = &plain[..split + 2];
        let ct_pos = plain
            .windows(13)
            .position(|w| w == b"Content-Type:")
            .unwrap();
        std::fs::write(&body_path, &plain[ct_pos..]).unwrap();
        let inbound_path = d(&format!("inbound-{size}.eml"));
        sh(&format!(
            "openssl cms -sign -binary -signer {} -inkey {} -certfile {} -in {body_path} | openssl cms -encrypt -binary -aes256 -recip {} > {inbound_path}.p7",
            fx("partner/alice.pem"), fx("partner/alice.key"), fx("ca/partner-chain.pem"), fx("proxy/user.pem")
        ));
        let mut inbound = headers[..headers.len() - 2].to_vec();
        inbound.retain(|_| true);
        let ct = headers
            .windows(13)
            .position(|w| w == b"Content-Type:")
            .unwrap();
        let mut msg = headers[..ct].to_vec();
        msg.extend_from_slice(&std::fs::read(format!("{inbound_path}.p7")).unwrap());
        std::fs::write(&inbound_path, &msg).unwrap();
        let msg_len = msg.len();

        // decrypt + verify (+ chain validation, as `openssl cms -verify` does)
        let timed = TimedKey {
            inner: &user_key,
            nanos: Default::default(),
        };
        let (ours, heap, total) = time_fn_total(
            n_ours,
            || {
                let keys = [DecryptionKey {
                    certificate: &user_cert,
                    key: &timed,
                }];
                let opened = open_message(crypto(), &msg, &keys);
                let sig = opened.signature().expect("signed");
                assert!(sig.outcome.is_valid(), "{:?}", sig.outcome);
                let signer = sig.signer_certificate.as_deref().unwrap();
                anchors
                    .validate(signer, &sig.certificates, None, SystemTime::now())
                    .unwrap();
                std::hint::black_box(opened.to_message(&[]));
            },
            || {
                timed.take();
            },
        );
        let rsa_share: f64 = timed.take().as_secs_f64() / total.as_secs_f64();
        let (ssl, rss) = time_shell(
            &format!(
                "openssl cms -decrypt -recip {} -inkey {} -in {inbound_path} | openssl cms -verify -CAfile {} -out /dev/null 2>/dev/null",
                fx("proxy/user.pem"), fx("proxy/user.key"), fx("ca/partner-root.pem")
            ),
            n_ssl,
        );
        report.push_str(&format!(
            "| decrypt+verify | {label} ({:.1} MB on the wire) | {:.2} ms | {:.2} ms | {:.2} | {:.0} % | {:.1} MB | {:.2}× | {:.1} MB |\n",
            msg_len as f64 / 1e6, ms(ours), ms(ssl), ours.as_secs_f64() / ssl.as_secs_f64(),
            100.0 * (1.0 - rsa_share).max(0.0),
            heap as f64 / 1e6, heap as f64 / msg_len as f64, rss as f64 / 1024.0
        ));

        // sign + encrypt
        let chain = [proxy_ca.clone()];
        let timed = TimedKey {
            inner: &user_key,
            nanos: Default::default(),
        };
        let (ours, heap, total) = time_fn_total(
            n_ours,
            || {
                let signer = Signer {
                    certificate: &user_cert,
                    chain: &chain,
                    key: &timed,
                };
                let signed = sign_message(
                    crypto(),
                    &plain,
                    &signer,
                    SignFormat::Detached,
                    SystemTime::now(),
                )
                .unwrap();
                std::hint::black_box(
                    encrypt_message(crypto(), &signed, &[&alice], EncryptOptions::default())
                        .unwrap(),
                );
            },
            || {
                timed.take();
            },
        );
        let rsa_share: f64 = timed.take().as_secs_f64() / total.as_secs_f64();
        let (ssl, rss) = time_shell(
            &format!(
                "openssl cms -sign -binary -signer {} -inkey {} -certfile {} -in {body_path} | openssl cms -encrypt -binary -aes256 -recip {} -out /dev/null",
                fx("proxy/user.pem"), fx("proxy/user.key"), fx("proxy/proxy-ca.pem"), fx("partner/alice.pem")
            ),
            n_ssl,
        );
        report.push_str(&format!(
            "| sign+encrypt | {label} | {:.2} ms | {:.2} ms | {:.2} | {:.0} % | {:.1} MB | {:.2}× | {:.1} MB |\n",
            ms(ours), ms(ssl), ours.as_secs_f64() / ssl.as_secs_f64(),
            100.0 * (1.0 - rsa_share).max(0.0),
            heap as f64 / 1e6, heap as f64 / plain.len() as f64, rss as f64 / 1024.0
        ));
    }
    println!("{report}");
    let out =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../bench/engine-{}.md", crypto().name));
    std::fs::write(&out, &report).expect("write bench/engine-<backend>.md");
    println!("written to {}", out.display());
}
