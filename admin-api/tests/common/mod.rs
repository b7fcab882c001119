#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Shared test setup: a temporary store trusting the fixture partner root, the router over
//! it, and a request helper.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

use admin_api::{router, ApiState, MetricsSource, Zeroizing};
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use certstore::{PartnerCapture, Store, StoreConfig};
use serde_json::Value;
use tower::ServiceExt;

pub const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

pub fn certs(path: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(fixtures().join(path)).unwrap();
    certstore::parse_certificate_input(&bytes).unwrap()
}

/// What `/metrics` serves in these tests: the gateway's real counters live in the gateway
/// (`gateway/src/telemetry.rs`, tested there); this source shows the route reads the store
/// on each scrape.
pub struct StoreFigures;

impl MetricsSource for StoreFigures {
    fn render(&self, store: &Store) -> String {
        format!(
            "# TYPE test_partner_certificates gauge\ntest_partner_certificates {}\n# EOF\n",
            store.partner_counts().certificates
        )
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub state: ApiState,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            trust_anchor_files: vec![fixtures().join("ca/partner-root.pem")],
            use_system_trust: false,
            ..StoreConfig::default()
        };
        let store = Store::open(dir.path(), config).unwrap();
        let state = ApiState {
            store,
            token: Zeroizing::new(TOKEN.to_string()),
            metrics: Arc::new(StoreFigures),
            smtp_up: Arc::new(AtomicBool::new(true)),
            internal: certstore::InternalAddresses::new(&["agency.example".to_string()], None),
        };
        Env { dir, state }
    }

    /// With a proxy CA (RSA key generation: a second or so).
    pub fn with_ca() -> Env {
        let env = Env::new();
        env.store()
            .init_proxy_ca("Test Proxy CA", &["agency.example".to_string()])
            .unwrap();
        env
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Capture a fixture certificate for `address` with the partner chain. Returns its
    /// fingerprint.
    pub fn capture(&self, address: &str, file: &str) -> String {
        // Only approved domains' certificates are recorded.
        let domain = address.rsplit_once('@').unwrap().1;
        if self.store().domain(domain).unwrap().is_none() {
            self.store()
                .approve_domain(domain, certstore::DomainPolicy::Smime, "test", "")
                .unwrap();
        }
        let cert = certs(file).remove(0);
        let outcome = self
            .store()
            .capture_partner_certificate(&PartnerCapture {
                address: address.to_string(),
                certificate_der: cert,
                chain_der: certs("ca/partner-chain.pem"),
                message_id: Some(format!("<{file}@test>")),
                seen_at: SystemTime::now(),
                capabilities: Vec::new(),
            })
            .unwrap();
        match outcome {
            certstore::CaptureOutcome::Stored { fingerprint, .. }
            | certstore::CaptureOutcome::Blocked { fingerprint } => fingerprint,
        }
    }

    /// A request with the valid token.
    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Reply {
        send(self.router(), method, uri, Some(TOKEN), body, &[]).await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.call(Method::GET, uri, None).await
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a problem+json error with this status and code; returns the detail.
    pub fn problem(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.content_type(), "application/problem+json");
        let p = self.json();
        assert_eq!(p["status"], status.as_u16());
        assert_eq!(p["code"], code, "{p}");
        assert_eq!(p["type"], format!("urn:smime-gateway:problem:{code}"));
        let detail = p["detail"].as_str().unwrap().to_string();
        assert!(!detail.is_empty());
        detail
    }
}

pub async fn send(
    router: Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&b).unwrap())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let response = router.oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// Runs the openssl CLI on `bytes` written to a file; returns stdout on success.
pub fn openssl_x509(bytes: &[u8], extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cert");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("openssl")
        .arg("x509")
        .args(extra)
        .arg("-in")
        .arg(&path)
        .output()
        .expect("openssl CLI is needed (make deps)");
    assert!(
        out.status.success(),
        "openssl x509 {extra:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// SHA-256 fingerprint of a fixture as lower-case hex, computed by openssl.
pub fn openssl_fingerprint(file: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(fixtures().join(file))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_ascii_lowercase()
}
