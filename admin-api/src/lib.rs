//! Admin REST API over the certstore: an axum [`Router`] the `smime-gateway serve` process
//! mounts on its admin listener (loopback by default).
//!
//! - Every route but `/healthz` and the proxy-CA download (`/api/v1/proxy/ca`) needs
//!   `Authorization: Bearer <token>` ([`auth`]); the token comes from
//!   [`load_or_create_token`].
//! - Errors are RFC 9457 `application/problem+json` ([`problem::Problem`]).
//! - The OpenAPI 3 document is generated from the handlers' annotations and served at
//!   `/api/v1/openapi.json` ([`openapi`]).
//! - Certstore calls run in `tokio::task::spawn_blocking`: reads are fast, but writes fsync
//!   and issuing a proxy certificate generates an RSA key, which would stall the runtime.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{middleware, Router};

mod auth;
mod extract;
pub mod openapi;
pub mod problem;
mod routes;
mod token;
pub mod validate;

/// The API's response shapes, for clients (the `smime-gateway` CLI prints them).
pub mod views {
    pub use crate::routes::domains::{Domain, Policy};
    pub use crate::routes::partners::{
        Certificate, ImportOutcome, ImportReport, ImportRequest as PartnerImportRequest, Partner,
        PartnerList, PartnerSummary, Validation, ValidationState,
    };
    pub use crate::routes::proxy::{
        ImportRequest, ProxyAddress, ProxyAddressDetail, ProxyAddressList, ProxyCertificate,
    };
}

pub use problem::Problem;
pub use token::load_or_create_token;
/// Re-exported so callers can build [`ApiState::token`] without depending on `zeroize`.
pub use zeroize::Zeroizing;

/// Largest request body accepted (the only bodies are small JSON objects).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What `/metrics` serves. The gateway owns its counters (the mail flow must not depend on
/// this HTTP crate to count); this crate only asks for the text when scraped.
pub trait MetricsSource: Send + Sync {
    /// OpenMetrics text, with figures read from `store` now (called on a blocking thread).
    fn render(&self, store: &certstore::Store) -> String;
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: certstore::Store,
    /// The admin bearer token (wiped from memory when the last clone is dropped).
    pub token: Zeroizing<String>,
    pub metrics: Arc<dyn MetricsSource>,
    /// Set by the SMTP listener while it accepts connections; reported by `/healthz`.
    pub smtp_up: Arc<AtomicBool>,
    /// The only addresses proxy certificates may be issued for (the gateway's
    /// `internal_domains` / `internal_addresses`).
    pub internal: certstore::InternalAddresses,
}

impl std::fmt::Debug for ApiState {
    // The token must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The admin API. Paths are absolute (`/healthz`, `/metrics`, `/api/v1/...`): mount it at
/// the root of the admin listener.
pub fn router(state: ApiState) -> Router {
    use routes::{audit, domains, health, partners, proxy};
    let protected = Router::new()
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/domains", get(domains::list))
        .route(
            "/api/v1/domains/{domain}",
            get(domains::get_one)
                .put(domains::approve)
                .delete(domains::remove),
        )
        .route("/api/v1/partners", get(partners::list))
        .route(
            "/api/v1/partners/import",
            post(partners::import).layer(DefaultBodyLimit::max(partners::MAX_IMPORT_BODY_BYTES)),
        )
        .route("/api/v1/partners/{address}", get(partners::get_one))
        .route(
            "/api/v1/certificates/{fingerprint}",
            get(partners::certificate),
        )
        .route(
            "/api/v1/certificates/{fingerprint}/pin",
            put(partners::pin).delete(partners::unpin),
        )
        .route(
            "/api/v1/certificates/{fingerprint}/block",
            put(partners::block).delete(partners::unblock),
        )
        .route("/api/v1/proxy/addresses", get(proxy::list))
        .route("/api/v1/proxy/addresses/{address}", get(proxy::get_one))
        .route(
            "/api/v1/proxy/addresses/{address}/certificate",
            post(proxy::issue),
        )
        .route(
            "/api/v1/proxy/addresses/{address}/import",
            post(proxy::import).layer(DefaultBodyLimit::max(proxy::MAX_IMPORT_BODY_BYTES)),
        )
        .route("/api/v1/audit", get(audit::list))
        // route_layer: the check runs only for matched routes, so unknown paths and methods
        // get their 404/405 (which reveal nothing) rather than a 401.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let public = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/api/v1/proxy/ca", get(proxy::ca_certificate));
    public
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

async fn not_found() -> Problem {
    Problem::not_found(
        "no_such_route",
        "there is no such route; see /api/v1/openapi.json",
    )
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not support the request method; see /api/v1/openapi.json",
    )
}

/// Responses carry certificate data and audit records: never cache them, never sniff them.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response.into_response()
}

/// Run store work on the blocking pool (see the crate docs for why).
pub(crate) async fn blocking<T, F>(store: &certstore::Store, f: F) -> Result<T, Problem>
where
    T: Send + 'static,
    F: FnOnce(&certstore::Store) -> Result<T, Problem> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| Problem::internal(format!("store task failed: {e}")))?
}
