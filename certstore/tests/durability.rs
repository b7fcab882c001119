#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Crash durability: a child process writes in a loop and prints each acknowledged write;
//! the parent SIGKILLs it, reopens the store and checks every acknowledged write is there
//! and the store is consistent. The child is this test binary re-executed with an env var.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use certstore::{DomainPolicy, PartnerCapture, Store};

const CHILD_ENV: &str = "CERTSTORE_DURABILITY_CHILD_DIR";

/// In a normal test run this returns at once; as the child it writes until killed.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let round: u64 = std::env::var("CERTSTORE_ROUND").unwrap().parse().unwrap();
    let store = Store::open(dir.as_ref(), common::config()).unwrap();
    common::approve_partner(&store);
    let alice = common::der("partner/alice.pem");
    for i in 0u64.. {
        let tag = round * 1_000_000 + i;
        match i % 10 {
            // Key generation is slow; renew now and then to cover the multi-tree transaction.
            9 => {
                let id = store.renew_proxy_identity("user@agency.example").unwrap();
                println!("ACK proxy {}", id.fingerprint_sha256);
            }
            n if n % 2 == 0 => {
                let d = format!("d{tag}.example");
                store
                    .approve_domain(&d, DomainPolicy::Smime, "child", "")
                    .unwrap();
                println!("ACK domain {d}");
            }
            _ => {
                let addr = format!("u{tag}@partner.example");
                store
                    .capture_partner_certificate(&PartnerCapture {
                        address: addr.clone(),
                        certificate_der: alice.clone(),
                        chain_der: vec![common::intermediate()],
                        message_id: Some(format!("<{tag}@p>")),
                        seen_at: SystemTime::now(),
                        capabilities: Vec::new(),
                    })
                    .unwrap();
                println!("ACK capture {addr}");
            }
        }
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), common::config()).unwrap();
        store
            .import_proxy_ca(
                &common::read("proxy/proxy-ca.pem"),
                &common::read("proxy/proxy-ca.key"),
            )
            .unwrap();
    }
    let mut domains = BTreeSet::new();
    let mut captures = BTreeSet::new();
    let mut proxies = BTreeSet::new();
    for round in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("CERTSTORE_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    acks.push(rest.to_string());
                }
            }
            acks
        });
        // Kill at a varying moment, mid-write most likely.
        std::thread::sleep(Duration::from_millis(1500 + 370 * round));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        assert!(
            acks.len() > 5,
            "child acknowledged only {} writes",
            acks.len()
        );
        for a in acks {
            let (kind, key) = a.split_once(' ').unwrap();
            match kind {
                "domain" => domains.insert(key.to_string()),
                "capture" => captures.insert(key.to_string()),
                "proxy" => proxies.insert(key.to_string()),
                _ => panic!("{a}"),
            };
        }

        let start = Instant::now();
        let store = Store::open(dir.path(), common::config()).unwrap();
        eprintln!(
            "round {round}: reopened after SIGKILL in {:?}; {} domains, {} captures, {} proxy keys acknowledged so far",
            start.elapsed(),
            domains.len(),
            captures.len(),
            proxies.len()
        );
        for d in &domains {
            assert!(store.domain(d).unwrap().is_some(), "lost domain {d}");
        }
        for a in &captures {
            let h = store.partner_history(a).unwrap();
            assert_eq!(h.len(), 1, "lost capture {a}");
        }
        // Every proxy index entry resolves to a full record (transactions are atomic).
        let ids = store.proxy_identities("user@agency.example").unwrap();
        let fps: BTreeSet<String> = ids.iter().map(|i| i.fingerprint_sha256.clone()).collect();
        for p in &proxies {
            assert!(fps.contains(p), "lost proxy key {p}");
        }
        for id in &ids {
            let cert = x509_cert::Certificate::from_der(&id.certificate_der).unwrap();
            use der::{Decode, Encode};
            let issuer = cert.tbs_certificate.issuer.to_der().unwrap();
            let found = store
                .proxy_identity_by_issuer_serial(
                    &issuer,
                    cert.tbs_certificate.serial_number.as_bytes(),
                )
                .unwrap()
                .unwrap();
            assert_eq!(found.fingerprint_sha256, id.fingerprint_sha256);
        }
        // The audit journal is readable to the end.
        store.audit(usize::MAX, None).unwrap();
        let listed = store
            .partner_addresses(Some("partner.example"), 0, usize::MAX)
            .unwrap();
        for a in &captures {
            assert!(listed.contains(a), "address index lost {a}");
        }
    }
}
