//! Approved partner domains: list, get, approve (idempotent), remove.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use certstore::{ApprovedDomain, DomainPolicy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::rfc3339;
use crate::extract::{ApiJson, ApiPath};
use crate::problem::Problem;
use crate::{blocking, validate, ApiState};

/// Who approvals made through the API are recorded as (there is one admin token, no users).
const APPROVED_BY: &str = "admin-api";

/// What an approval allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// S/MIME is required for mail to and from the domain.
    Smime,
    /// SMTP over required TLS instead of S/MIME.
    Tls,
}

impl From<Policy> for DomainPolicy {
    fn from(p: Policy) -> DomainPolicy {
        match p {
            Policy::Smime => DomainPolicy::Smime,
            Policy::Tls => DomainPolicy::Tls,
        }
    }
}

impl From<DomainPolicy> for Policy {
    fn from(p: DomainPolicy) -> Policy {
        match p {
            DomainPolicy::Smime => Policy::Smime,
            DomainPolicy::Tls => Policy::Tls,
        }
    }
}

/// An approved partner domain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Domain {
    /// Normalised (lower-case, IDNA ASCII) domain name.
    #[schema(example = "partner.example")]
    pub domain: String,
    pub policy: Policy,
    pub approved_by: String,
    #[schema(format = DateTime)]
    pub approved_at: String,
    pub note: String,
}

impl From<ApprovedDomain> for Domain {
    fn from(d: ApprovedDomain) -> Domain {
        Domain {
            domain: d.domain,
            policy: d.policy.into(),
            approved_by: d.approved_by,
            approved_at: rfc3339(d.approved_at),
            note: d.note,
        }
    }
}

/// The body of an approval.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    pub policy: Policy,
    /// Why the domain is approved (free text, no control characters except tab).
    #[serde(default)]
    #[schema(
        max_length = 1024,
        pattern = r"^[^\u0000-\u0008\u000A-\u001F\u007F-\u009F]*$"
    )]
    pub note: Option<String>,
}

/// The approved domains, sorted by name.
#[utoipa::path(get, path = "/api/v1/domains", tag = "domains",
    responses((status = 200, description = "Approved domains", body = [Domain])))]
pub async fn list(State(s): State<ApiState>) -> Result<Json<Vec<Domain>>, Problem> {
    let domains = blocking(&s.store, |st| Ok(st.domains()?)).await?;
    Ok(Json(domains.into_iter().map(Domain::from).collect()))
}

/// One approved domain.
#[utoipa::path(get, path = "/api/v1/domains/{domain}", tag = "domains",
    params(("domain" = String, Path, description = "Domain name (ASCII; internationalised names in their xn-- form; case-insensitive)", pattern = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", max_length = 253)),
    responses(
        (status = 200, description = "The approval", body = Domain),
        (status = 404, description = "The domain is not approved", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_one(
    State(s): State<ApiState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Domain>, Problem> {
    let domain = validate::domain(&raw)?;
    let found = blocking(&s.store, {
        let domain = domain.clone();
        move |st| Ok(st.domain(&domain)?)
    })
    .await?;
    found
        .map(|d| Json(d.into()))
        .ok_or_else(|| not_approved(&domain))
}

/// Approve a domain. Idempotent: the same policy again changes nothing (200); a new
/// approval is 201; a different policy replaces the old one (200). Free-mail and ISP domains
/// are refused with 422.
#[utoipa::path(put, path = "/api/v1/domains/{domain}", tag = "domains",
    params(("domain" = String, Path, description = "Domain name (ASCII; internationalised names in their xn-- form; case-insensitive)", pattern = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", max_length = 253)),
    request_body = ApproveRequest,
    responses(
        (status = 200, description = "Already approved (with this policy now)", body = Domain),
        (status = 201, description = "Approved", body = Domain),
        (status = 422, description = "Free-mail or ISP domain: cannot be approved", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn approve(
    State(s): State<ApiState>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<ApproveRequest>,
) -> Result<(StatusCode, Json<Domain>), Problem> {
    let domain = validate::domain(&raw)?;
    let note = validate::note(req.note.as_deref().unwrap_or(""))?;
    let policy: DomainPolicy = req.policy.into();
    let (existed, approved) = blocking(&s.store, move |st| {
        let existed = st.domain(&domain)?.is_some();
        let approved = st.approve_domain(&domain, policy, APPROVED_BY, &note)?;
        Ok((existed, approved))
    })
    .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(approved.into())))
}

/// Remove an approval.
#[utoipa::path(delete, path = "/api/v1/domains/{domain}", tag = "domains",
    params(("domain" = String, Path, description = "Domain name (ASCII; internationalised names in their xn-- form; case-insensitive)", pattern = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", max_length = 253)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "The domain is not approved", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove(
    State(s): State<ApiState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    let domain = validate::domain(&raw)?;
    let removed = blocking(&s.store, {
        let domain = domain.clone();
        move |st| Ok(st.remove_domain(&domain)?)
    })
    .await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_approved(&domain))
    }
}

fn not_approved(domain: &str) -> Problem {
    Problem::not_found(
        "unknown_domain",
        format!("{domain} is not an approved domain"),
    )
}
