//! The audit journal, newest first.

use axum::extract::State;
use axum::Json;
use certstore::AuditKind;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::rfc3339;
use crate::extract::ApiQuery;
use crate::problem::Problem;
use crate::{blocking, validate, ApiState};

/// What an entry records. Mirrors `certstore::AuditKind`; the exhaustive matches below stop
/// the build if the two drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ProxyCaCreated,
    ProxyCaImported,
    ProxyCaKeyExported,
    ProxyCaRotated,
    ProxyIssued,
    ProxyRenewed,
    ProxyImported,
    PartnerCaptured,
    PartnerRefused,
    PartnerPinned,
    PartnerUnpinned,
    PartnerBlocked,
    PartnerUnblocked,
    DomainApproved,
    DomainRemoved,
    DomainRefused,
}

impl From<AuditKind> for Kind {
    fn from(k: AuditKind) -> Kind {
        match k {
            AuditKind::ProxyCaCreated => Kind::ProxyCaCreated,
            AuditKind::ProxyCaImported => Kind::ProxyCaImported,
            AuditKind::ProxyCaKeyExported => Kind::ProxyCaKeyExported,
            AuditKind::ProxyCaRotated => Kind::ProxyCaRotated,
            AuditKind::ProxyIssued => Kind::ProxyIssued,
            AuditKind::ProxyRenewed => Kind::ProxyRenewed,
            AuditKind::ProxyImported => Kind::ProxyImported,
            AuditKind::PartnerCaptured => Kind::PartnerCaptured,
            AuditKind::PartnerRefused => Kind::PartnerRefused,
            AuditKind::PartnerPinned => Kind::PartnerPinned,
            AuditKind::PartnerUnpinned => Kind::PartnerUnpinned,
            AuditKind::PartnerBlocked => Kind::PartnerBlocked,
            AuditKind::PartnerUnblocked => Kind::PartnerUnblocked,
            AuditKind::DomainApproved => Kind::DomainApproved,
            AuditKind::DomainRemoved => Kind::DomainRemoved,
            AuditKind::DomainRefused => Kind::DomainRefused,
        }
    }
}

impl From<Kind> for AuditKind {
    fn from(k: Kind) -> AuditKind {
        match k {
            Kind::ProxyCaCreated => AuditKind::ProxyCaCreated,
            Kind::ProxyCaImported => AuditKind::ProxyCaImported,
            Kind::ProxyCaKeyExported => AuditKind::ProxyCaKeyExported,
            Kind::ProxyCaRotated => AuditKind::ProxyCaRotated,
            Kind::ProxyIssued => AuditKind::ProxyIssued,
            Kind::ProxyRenewed => AuditKind::ProxyRenewed,
            Kind::ProxyImported => AuditKind::ProxyImported,
            Kind::PartnerCaptured => AuditKind::PartnerCaptured,
            Kind::PartnerRefused => AuditKind::PartnerRefused,
            Kind::PartnerPinned => AuditKind::PartnerPinned,
            Kind::PartnerUnpinned => AuditKind::PartnerUnpinned,
            Kind::PartnerBlocked => AuditKind::PartnerBlocked,
            Kind::PartnerUnblocked => AuditKind::PartnerUnblocked,
            Kind::DomainApproved => AuditKind::DomainApproved,
            Kind::DomainRemoved => AuditKind::DomainRemoved,
            Kind::DomainRefused => AuditKind::DomainRefused,
        }
    }
}

/// One journal entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: u64,
    #[schema(format = DateTime)]
    pub time: String,
    pub kind: Kind,
    /// The address, domain or fingerprint concerned.
    pub subject: Option<String>,
    /// What happened and why.
    pub detail: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Most entries to return (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Only entries of this kind.
    pub kind: Option<Kind>,
}

/// Journal entries, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "Journal entries, newest first", body = [AuditEntry])))]
pub async fn list(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, Problem> {
    let (_, limit) = validate::page(None, q.limit)?;
    let kind = q.kind.map(AuditKind::from);
    let entries = blocking(&s.store, move |st| Ok(st.audit(limit, kind)?)).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| AuditEntry {
                id: e.id,
                time: rfc3339(e.time),
                kind: e.kind.into(),
                subject: e.subject,
                detail: e.detail,
            })
            .collect(),
    ))
}
