//! RFC 9457 problem details: every error the API returns is one of these, as
//! `application/problem+json`, with a `detail` sentence that says what was wrong.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use certstore::{DomainError, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error response (RFC 9457 problem details).
#[derive(Debug, Clone, Serialize, ToSchema, thiserror::Error)]
#[error("{status} {code}: {detail}")]
pub struct Problem {
    /// URI naming the kind of problem (`urn:smime-gateway:problem:<code>`).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What was wrong with this request, for a person.
    pub detail: String,
    /// Machine-readable kind of problem (the last part of `type`).
    pub code: String,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("urn:smime-gateway:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
        }
    }

    pub fn bad_request(code: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(code: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn conflict(code: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn unprocessable(code: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// A failure of the server itself. The detail is logged, not returned: it may name
    /// paths or database internals.
    pub fn internal(detail: impl std::fmt::Display) -> Problem {
        tracing::error!("admin API internal error: {detail}");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not complete the request; see the gateway log",
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"smime-gateway-admin\""),
            );
        }
        response
    }
}

/// Map store errors to statuses: caller mistakes are 4xx, only genuine failures of the
/// store or the machine are 500.
impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match e {
            StoreError::Domain(d) => d.into(),
            StoreError::InvalidAddress(_) => Problem::bad_request("invalid_address", e.to_string()),
            StoreError::InvalidFingerprint(_) => {
                Problem::bad_request("invalid_fingerprint", e.to_string())
            }
            StoreError::InvalidSubject(_) => Problem::bad_request("invalid_subject", e.to_string()),
            StoreError::BadEncoding(_) => Problem::bad_request("bad_encoding", e.to_string()),
            StoreError::UnknownCertificate(_) => {
                Problem::not_found("unknown_certificate", e.to_string())
            }
            StoreError::CannotPinRefused(_) => {
                Problem::unprocessable("certificate_refused", e.to_string())
            }
            StoreError::NotInitialised => Problem::conflict("not_initialised", e.to_string()),
            StoreError::AlreadyInitialised => {
                Problem::conflict("already_initialised", e.to_string())
            }
            StoreError::IdentityExists(_) => Problem::conflict("identity_exists", e.to_string()),
            StoreError::UnusableCertificate(_) => {
                Problem::unprocessable("unusable_certificate", e.to_string())
            }
            StoreError::UnsupportedKey(_)
            | StoreError::KeyMismatch
            | StoreError::NotACa(_)
            | StoreError::WeakKey { .. } => Problem::unprocessable("unusable_key", e.to_string()),
            StoreError::Database(_)
            | StoreError::UnsupportedSchemaVersion { .. }
            | StoreError::CorruptRecord(_)
            | StoreError::Io { .. }
            | StoreError::Locked(_)
            | StoreError::Crypto(_)
            | StoreError::Build(_)
            | StoreError::Time(_) => Problem::internal(e),
        }
    }
}

impl From<DomainError> for Problem {
    fn from(e: DomainError) -> Problem {
        match e {
            DomainError::Name(_) => Problem::bad_request("invalid_domain", e.to_string()),
            DomainError::Freemail(_) => Problem::unprocessable("freemail_domain", e.to_string()),
        }
    }
}
