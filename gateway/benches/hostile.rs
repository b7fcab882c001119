#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Hostile-input table (issue 11): the time the engine spends on each crafted input, divided by
//! the time for an ordinary message of the same size. Target: every ratio ≤ 5.
//!
//! Run with `make bench` (or `cargo bench -p gateway --bench hostile`). Prints a Markdown table
//! and writes it to `bench/hostile.md`, which `bench/run.sh` folds into `bench/RESULTS.md`.
//! Times are the median CPU time of the benchmark thread over single-threaded runs: CPU, not
//! wall time, so that a busy machine does not change the ratios.

#[path = "../tests/common.rs"]
mod common;
#[path = "../tests/crafted/mod.rs"]
mod crafted;

use std::time::Duration;

use common::{cert, crypto, key};
use crafted::{fake_recipients, real_message, recipients_of_other_issuers};
use der::Encode;
use gateway::smime::decrypt::{decrypt, DecryptionKey};

const RUNS: usize = 5;

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn median(mut f: impl FnMut()) -> Duration {
    let runs = if std::env::args().any(|a| a == "--bench") {
        RUNS
    } else {
        1
    };
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = thread_cpu_time();
            f();
            thread_cpu_time().saturating_sub(t)
        })
        .collect();
    times.sort();
    times[runs / 2]
}

struct Case {
    name: &'static str,
    cipher: &'static str,
    /// Bytes of content in the crafted message.
    content: usize,
    /// Bogus RecipientInfos naming our key (they sort before the real one).
    fakes: usize,
    /// The bogus RecipientInfos name our serial number under other issuers instead, each
    /// a different name (every one decoded, compared and reported).
    other_issuers: bool,
}

fn main() {
    let c = cert("proxy/user.pem");
    let k = key("proxy/user.key");
    let keys = [DecryptionKey {
        certificate: &c,
        key: &k,
    }];
    let cases = [
        Case {
            name: "8,000 RecipientInfos (refused by the SET bound)",
            cipher: "-aes256",
            content: 1_000,
            fakes: 8_000,
            other_issuers: false,
        },
        Case {
            name: "1,000 RecipientInfos in descending order",
            cipher: "-aes256",
            content: 1_000,
            fakes: 999,
            other_issuers: false,
        },
        Case {
            name: "1,000 RecipientInfos, each under another issuer",
            cipher: "-aes256",
            content: 1_000,
            fakes: 999,
            other_issuers: true,
        },
        Case {
            name: "50 RecipientInfos naming our key, AES-CBC, 1 MB",
            cipher: "-aes256",
            content: 1 << 20,
            fakes: 50,
            other_issuers: false,
        },
        Case {
            name: "50 RecipientInfos naming our key, AES-GCM, 1 MB",
            cipher: "-aes-256-gcm",
            content: 1 << 20,
            fakes: 50,
            other_issuers: false,
        },
    ];
    // `cargo test --all-targets` runs this too (without `--bench`): then one unoptimised pass
    // checks that every case still builds and decrypts, and the measured table is left alone.
    let measuring = std::env::args().any(|a| a == "--bench");
    let mut table = String::from(
        "| crafted input | size | crafted ms | ordinary ms | ratio |\n|---|---:|---:|---:|---:|\n",
    );
    for case in cases {
        let real = real_message(case.cipher, &vec![b'x'; case.content]);
        let mut recipients = if case.other_issuers {
            recipients_of_other_issuers(&real.recipient, case.fakes)
        } else {
            fake_recipients(&real.recipient, case.fakes)
        };
        recipients.push(real.recipient.to_der().expect("encode"));
        let crafted = real.with_recipients(&recipients);
        // The ordinary message: one recipient, content filling the same size.
        let padding = crafted.len().saturating_sub(case.content + 600);
        let ordinary = real_message(case.cipher, &vec![b'x'; case.content + padding]);
        let ordinary = ordinary.with_recipients(&[ordinary.recipient.to_der().expect("encode")]);
        let crafted_time = median(|| {
            let _ = decrypt(crypto(), &crafted, &keys);
        });
        let ordinary_time = median(|| {
            let _ = decrypt(crypto(), &ordinary, &keys);
        });
        let ratio = crafted_time.as_secs_f64() / ordinary_time.as_secs_f64().max(1e-9);
        table.push_str(&format!(
            "| {} | {:.1} MB / {:.1} MB | {:.2} | {:.2} | {:.2} |\n",
            case.name,
            crafted.len() as f64 / 1e6,
            ordinary.len() as f64 / 1e6,
            crafted_time.as_secs_f64() * 1e3,
            ordinary_time.as_secs_f64() * 1e3,
            ratio
        ));
    }
    print!("{table}");
    if !measuring {
        return;
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/hostile.md");
    if let Err(e) = std::fs::write(&out, &table) {
        eprintln!("cannot write {}: {e}", out.display());
    }
}
