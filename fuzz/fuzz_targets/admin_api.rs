//! The admin API's inputs: request line (method, path with parameters, query) and JSON body,
//! through the real router over a temporary store, authenticated. Input format: the first
//! line is `METHOD /path?query`, the rest is the body. No answer may be a 5xx.
#![no_main]

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use admin_api::{router, ApiState, Zeroizing};
use axum::body::Body;
use axum::http::{header, Method, Request};
use certstore::{Store, StoreConfig};
use gateway::telemetry::Metrics;
use libfuzzer_sys::fuzz_target;
use smime_gateway_fuzz::{fixture_path, within_cpu_budget};
use tower::ServiceExt;

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Env {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

static ENV: OnceLock<Env> = OnceLock::new();

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        trust_anchor_files: vec![fixture_path("ca/partner-root.pem")],
        use_system_trust: false,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config).unwrap();
    let state = ApiState {
        store,
        token: Zeroizing::new(TOKEN.to_string()),
        metrics: Metrics::new(),
        smtp_up: Arc::new(AtomicBool::new(true)),
        internal: certstore::InternalAddresses::new(&["agency.example".to_string()], None),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Env {
        runtime,
        router: router(state),
        _dir: dir,
    }
}

fuzz_target!(|data: &[u8]| {
    let env = ENV.get_or_init(env);
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let line = String::from_utf8_lossy(line);
    let (method, uri) = line.split_once(' ').unwrap_or(("GET", &line));
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let Ok(request) = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let status = within_cpu_budget("admin_api", data.len(), || {
        env.runtime
            .block_on(env.router.clone().oneshot(request))
            .unwrap()
            .status()
    });
    assert!(
        !status.is_server_error(),
        "{status} for {line:?} with body {:?}",
        String::from_utf8_lossy(body)
    );
});
