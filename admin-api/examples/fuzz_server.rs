#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Serves the admin API on 127.0.0.1:<port> over a temporary store with some data in it, for
//! the schema-driven fuzz run (`admin-api/fuzz/run.sh`).
//!
//! Usage: `ADMIN_API_FUZZ_TOKEN=<token> cargo run -p admin-api --example fuzz_server -- <port>`
//! Stops on SIGINT/SIGTERM and deletes the store.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

use admin_api::{router, ApiState, MetricsSource, Zeroizing};
use certstore::{DomainPolicy, PartnerCapture, Store, StoreConfig};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn certs(path: &str) -> Result<Vec<Vec<u8>>, BoxError> {
    let bytes = std::fs::read(fixtures().join(path))?;
    Ok(certstore::parse_certificate_input(&bytes)?)
}

/// A proxy CA, an approved domain, alice's two certificates, bob's, one refused
/// certificate and a proxy certificate: every list has something in it.
fn seed(store: &Store) -> Result<(), BoxError> {
    store.init_proxy_ca("Fuzz Proxy CA", &["agency.example".to_string()])?;
    store.approve_domain("partner.example", DomainPolicy::Smime, "fuzz", "seed")?;
    let chain = certs("ca/partner-chain.pem")?;
    for (address, file) in [
        ("alice@partner.example", "partner/alice.pem"),
        ("alice@partner.example", "partner/alice-renewed.pem"),
        ("bob@partner.example", "partner/bob.pem"),
        ("dave@partner.example", "partner/expired.pem"),
    ] {
        let certificate_der = certs(file)?.into_iter().next().ok_or("empty fixture")?;
        store.capture_partner_certificate(&PartnerCapture {
            address: address.to_string(),
            certificate_der,
            chain_der: chain.clone(),
            message_id: Some(format!("<seed-{address}>")),
            seen_at: SystemTime::now(),
            capabilities: Vec::new(),
        })?;
    }
    store.ensure_proxy_identity("user@agency.example")?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let port: u16 = std::env::args()
        .nth(1)
        .ok_or("usage: fuzz_server <port>")?
        .parse()?;
    let token = std::env::var("ADMIN_API_FUZZ_TOKEN")
        .map_err(|_| "set ADMIN_API_FUZZ_TOKEN to the bearer token to accept")?;
    let dir = tempfile::tempdir()?;
    let config = StoreConfig {
        trust_anchor_files: vec![fixtures().join("ca/partner-root.pem")],
        use_system_trust: false,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config)?;
    seed(&store)?;
    let state = ApiState {
        store,
        token: Zeroizing::new(token),
        metrics: Arc::new(NoMetrics),
        smtp_up: Arc::new(AtomicBool::new(true)),
        internal: certstore::InternalAddresses::new(&["agency.example".to_string()], None),
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("fuzz_server: listening on {}", listener.local_addr()?);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown())
        .await?;
    drop(dir);
    Ok(())
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The fuzzed surface is the API's parsing and answers, not the gateway's counters.
struct NoMetrics;

impl MetricsSource for NoMetrics {
    fn render(&self, _store: &Store) -> String {
        "# EOF\n".to_string()
    }
}
