//! `/healthz` (public) and `/metrics` (token required: it reveals traffic volumes).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::Problem;
use crate::{blocking, ApiState};

/// Overall state.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

/// What the health check found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the store is readable and the SMTP listener is up.
    pub status: HealthStatus,
    /// The certificate store could be read.
    pub store_readable: bool,
    /// The SMTP listener is accepting connections.
    pub smtp_listener_up: bool,
    /// A proxy CA exists (informational: not part of `status`).
    pub proxy_ca_initialised: bool,
}

/// Health: 200 when the store is readable and the SMTP listener is up, else 503 with the
/// same body. No token needed.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The store or the SMTP listener is not available", body = Health),
    ))]
pub async fn healthz(State(s): State<ApiState>) -> Response {
    let probe = blocking(&s.store, |st| {
        // One journal read exercises the database without touching much of it.
        let readable = st.audit(1, None).is_ok();
        Ok((readable, st.is_initialised()))
    })
    .await;
    let (store_readable, proxy_ca_initialised) = probe.unwrap_or((false, false));
    let smtp_listener_up = s.smtp_up.load(Ordering::Relaxed);
    let healthy = store_readable && smtp_listener_up;
    let body = Health {
        status: if healthy {
            HealthStatus::Ok
        } else {
            HealthStatus::Unavailable
        },
        store_readable,
        smtp_listener_up,
        proxy_ca_initialised,
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// OpenMetrics text format 1.0 (Prometheus reads it).
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Metrics in OpenMetrics text format: messages by direction and outcome, crypto failures by
/// reason, cert-query replies, processing-time histogram, certificates stored.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "OpenMetrics text format", body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(s): State<ApiState>) -> Result<Response, Problem> {
    let metrics = s.metrics.clone();
    let text = blocking(&s.store, move |st| Ok(metrics.render(st))).await?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(OPENMETRICS_TEXT),
    );
    Ok(response)
}
