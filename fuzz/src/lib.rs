//! What the fuzz targets share: the fixture keys and anchors, and the per-input time bound.
//!
//! A slow input is a finding like a crash: every target runs its work inside
//! [`within_cpu_budget`], which panics (so libFuzzer saves the input as a crash) when one input
//! costs more CPU than [`cpu_budget`]. CPU time, not wall time, so that a loaded machine does
//! not produce false findings.

use std::path::PathBuf;
use std::time::Duration;

use crypto_provider::{default_provider, CryptoProvider, PrivateKey};
use gateway::smime::certs;
use gateway::smime::decrypt::DecryptionKey;
use x509_cert::Certificate;

/// Default CPU budget for one input; `FUZZ_INPUT_CPU_MS` overrides it. Generous next to what a
/// 64 KiB input costs (a few ms, an RSA-2048 decryption about 2 ms): a quadratic or exponential
/// path blows far past it, ordinary variance does not.
pub const DEFAULT_CPU_BUDGET_MS: u64 = 1_000;

pub fn cpu_budget() -> Duration {
    let ms = std::env::var("FUZZ_INPUT_CPU_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CPU_BUDGET_MS);
    Duration::from_millis(ms)
}

/// CPU time used by the whole process (every thread: the admin API runs store calls on
/// blocking threads).
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `work` and panics when it used more CPU than the budget.
pub fn within_cpu_budget<T>(what: &str, input_len: usize, work: impl FnOnce() -> T) -> T {
    let start = process_cpu_time();
    let out = work();
    let used = process_cpu_time().saturating_sub(start);
    let budget = cpu_budget();
    assert!(
        used <= budget,
        "slow input: {what} took {used:?} of CPU for {input_len} bytes (budget {budget:?})"
    );
    out
}

pub fn fixture_path(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(path)
}

pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(fixture_path(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// The provider every target runs on: the default backend, as the gateway does.
pub fn crypto() -> &'static CryptoProvider {
    default_provider()
}

/// The proxy user's certificates and keys (the fixture messages are encrypted to them).
pub struct Keys {
    certs: Vec<Certificate>,
    keys: Vec<PrivateKey>,
}

impl Keys {
    pub fn load() -> Keys {
        let names = ["proxy/user", "proxy/user-old"];
        Keys {
            certs: names
                .iter()
                .map(|n| certs::parse_certificate(&fixture(&format!("{n}.pem"))).unwrap())
                .collect(),
            keys: names
                .iter()
                .map(|n| {
                    default_provider()
                        .load_private_key(&fixture(&format!("{n}.key")))
                        .unwrap()
                })
                .collect(),
        }
    }

    pub fn decryption_keys(&self) -> Vec<DecryptionKey<'_>> {
        self.certs
            .iter()
            .zip(&self.keys)
            .map(|(certificate, key)| DecryptionKey { certificate, key })
            .collect()
    }
}

/// Splits `data` into its top-level DER/BER elements (definite lengths only); what does not
/// parse as one element ends the list and is returned whole, so every byte reaches a parser.
pub fn split_elements(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !data.is_empty() && out.len() < 64 {
        match element_len(data) {
            Some(n) if n <= data.len() => {
                out.push(&data[..n]);
                data = &data[n..];
            }
            _ => {
                out.push(data);
                break;
            }
        }
    }
    out
}

/// Length of the element at the start of `data` (one-byte tag, definite length).
fn element_len(data: &[u8]) -> Option<usize> {
    let first = *data.get(1)?;
    if first < 0x80 {
        return Some(2 + first as usize);
    }
    let count = (first & 0x7f) as usize;
    if count == 0 || count > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..count {
        len = (len << 8) | *data.get(2 + i)? as usize;
    }
    Some(2 + count + len)
}
