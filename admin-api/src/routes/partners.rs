//! Partner certificates: addresses with a usable certificate, per-address history, one
//! certificate by fingerprint (JSON or PEM), pin/unpin and block/unblock.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use certstore::{PartnerCertificate, ValidationStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::rfc3339;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::problem::Problem;
use crate::{blocking, validate, ApiState};

/// The PEM media type used for certificate downloads.
pub const PEM_MEDIA_TYPE: &str = "application/x-pem-file";

/// Whether a certificate passed validation when it was last seen.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValidationState {
    Valid,
    Refused,
}

/// Validation result and, for refused certificates, why.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Validation {
    pub status: ValidationState,
    /// Why the certificate was refused, for a person.
    pub reason: Option<String>,
    /// Machine-readable refusal reason (e.g. `expired`, `self_signed`, `untrusted`).
    pub reason_code: Option<String>,
}

impl From<&ValidationStatus> for Validation {
    fn from(s: &ValidationStatus) -> Validation {
        match s {
            ValidationStatus::Valid => Validation {
                status: ValidationState::Valid,
                reason: None,
                reason_code: None,
            },
            ValidationStatus::Refused(e) => Validation {
                status: ValidationState::Refused,
                reason: Some(e.to_string()),
                // ValidationError serialises as {"reason": "<code>", "detail": ...}.
                reason_code: serde_json::to_value(e)
                    .ok()
                    .and_then(|v| v.get("reason")?.as_str().map(str::to_string)),
            },
        }
    }
}

/// A captured partner certificate (public data only).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Certificate {
    /// The address it was captured for.
    pub address: String,
    /// SHA-256 of the DER certificate, 64 lower-case hex digits.
    pub fingerprint_sha256: String,
    pub subject: String,
    pub issuer: String,
    pub serial_hex: String,
    #[schema(format = DateTime)]
    pub not_before: String,
    #[schema(format = DateTime)]
    pub not_after: String,
    pub key_bits: u64,
    pub signature_algorithm: String,
    #[schema(format = DateTime)]
    pub first_seen: String,
    #[schema(format = DateTime)]
    pub last_seen: String,
    /// Message-ID of the message it was first seen in.
    pub first_message_id: Option<String>,
    pub last_message_id: Option<String>,
    pub validation: Validation,
    /// Preferred for its address while it stays usable.
    pub pinned: bool,
    /// Never used for encryption.
    pub blocked: bool,
    /// The certificate outbound mail to this address is encrypted to right now.
    pub in_use: bool,
}

impl Certificate {
    /// `c` as the API shows it; `current_fp` is the fingerprint in use for its address.
    pub fn new(c: &PartnerCertificate, current_fp: Option<&str>) -> Certificate {
        Certificate {
            address: c.address.clone(),
            fingerprint_sha256: c.fingerprint_sha256.clone(),
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            serial_hex: c.serial_hex.clone(),
            not_before: rfc3339(c.not_before),
            not_after: rfc3339(c.not_after),
            key_bits: c.key_bits as u64,
            signature_algorithm: c.signature_algorithm.clone(),
            first_seen: rfc3339(c.first_seen),
            last_seen: rfc3339(c.last_seen),
            first_message_id: c.first_message_id.clone(),
            last_message_id: c.last_message_id.clone(),
            validation: (&c.status).into(),
            pinned: c.pinned,
            blocked: c.blocked,
            in_use: current_fp == Some(c.fingerprint_sha256.as_str()),
        }
    }
}

/// A partner address and the certificate used for it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PartnerSummary {
    pub address: String,
    pub current: Certificate,
}

/// One page of partner addresses.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PartnerList {
    pub items: Vec<PartnerSummary>,
    pub offset: u32,
    pub limit: u32,
    /// Offset of the next page, if there is one.
    pub next_offset: Option<u32>,
}

/// A partner address: its current certificate and its whole history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Partner {
    pub address: String,
    /// The certificate outbound mail is encrypted to (none usable: null).
    pub current: Option<Certificate>,
    /// Every certificate ever captured for the address, most recently first seen first.
    pub history: Vec<Certificate>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PartnerQuery {
    /// Only addresses in this domain.
    #[param(
        pattern = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
        max_length = 253
    )]
    pub domain: Option<String>,
    /// Addresses to skip.
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: Option<u32>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// How to return a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CertFormat {
    Json,
    Pem,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CertificateQuery {
    /// `pem` for the certificate itself; default JSON (or PEM with `Accept: application/x-pem-file`).
    pub format: Option<CertFormat>,
}

/// Store addresses are scanned in chunks of this many while filtering for a current one.
const SCAN_CHUNK: usize = 256;

/// Partner addresses that have a certificate usable for encryption now, sorted by domain
/// then local part, with that certificate.
#[utoipa::path(get, path = "/api/v1/partners", tag = "partners", params(PartnerQuery),
    responses((status = 200, description = "One page of partner addresses", body = PartnerList)))]
pub async fn list(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<PartnerQuery>,
) -> Result<Json<PartnerList>, Problem> {
    let (offset, limit) = validate::page(q.offset, q.limit)?;
    let domain = q.domain.as_deref().map(validate::domain).transpose()?;
    let (items, more) = blocking(&s.store, move |st| {
        // Addresses without a usable certificate are skipped, so the page is filled by
        // scanning; `offset` counts listed addresses, not scanned ones.
        let mut skipped = 0usize;
        let mut items = Vec::new();
        let mut scan_from = 0usize;
        loop {
            let chunk = st.partner_addresses(domain.as_deref(), scan_from, SCAN_CHUNK)?;
            let exhausted = chunk.len() < SCAN_CHUNK;
            scan_from += chunk.len();
            for address in chunk {
                let Some(current) = st.current_partner_certificate(&address)? else {
                    continue;
                };
                if skipped < offset {
                    skipped += 1;
                    continue;
                }
                if items.len() == limit {
                    return Ok((items, true));
                }
                let cert = Certificate::new(&current, Some(&current.fingerprint_sha256));
                items.push(PartnerSummary {
                    address,
                    current: cert,
                });
            }
            if exhausted {
                return Ok((items, false));
            }
        }
    })
    .await?;
    // Both fit in u32: validate::page bounds them.
    let offset = u32::try_from(offset).unwrap_or(u32::MAX);
    let limit = u32::try_from(limit).unwrap_or(u32::MAX);
    Ok(Json(PartnerList {
        items,
        offset,
        limit,
        next_offset: more.then(|| offset.saturating_add(limit)),
    }))
}

/// One partner address: the current certificate and the whole history.
#[utoipa::path(get, path = "/api/v1/partners/{address}", tag = "partners",
    params(("address" = String, Path, description = "Partner e-mail address", pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-](?:[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{0,62}[A-Za-z0-9!#$%&'*+/=?^_`{|}~-])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", max_length = 254)),
    responses(
        (status = 200, description = "The address's certificates", body = Partner),
        (status = 404, description = "No certificate was ever captured for the address", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_one(
    State(s): State<ApiState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Partner>, Problem> {
    let address = validate::address(&raw)?;
    let (history, current) = blocking(&s.store, {
        let address = address.clone();
        move |st| {
            Ok((
                st.partner_history(&address)?,
                st.current_partner_certificate(&address)?,
            ))
        }
    })
    .await?;
    if history.is_empty() {
        return Err(Problem::not_found(
            "unknown_address",
            format!("no certificate has been captured for {address}"),
        ));
    }
    let current_fp = current.as_ref().map(|c| c.fingerprint_sha256.as_str());
    Ok(Json(Partner {
        history: history
            .iter()
            .map(|c| Certificate::new(c, current_fp))
            .collect(),
        current: current.as_ref().map(|c| Certificate::new(c, current_fp)),
        address,
    }))
}

/// One captured certificate by SHA-256 fingerprint, as JSON or as PEM.
#[utoipa::path(get, path = "/api/v1/certificates/{fingerprint}", tag = "partners",
    params(
        ("fingerprint" = String, Path, description = "SHA-256 fingerprint, 64 hex digits", pattern = "^[0-9A-Fa-f]{64}$"),
        CertificateQuery,
    ),
    responses(
        (status = 200, description = "The certificate", content(
            (Certificate = "application/json"),
            (String = "application/x-pem-file"),
        )),
        (status = 404, description = "No such certificate", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn certificate(
    State(s): State<ApiState>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<CertificateQuery>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let fp = validate::fingerprint(&raw)?;
    let wants_pem = match q.format {
        Some(f) => f == CertFormat::Pem,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains(PEM_MEDIA_TYPE)),
    };
    let (cert, current) = blocking(&s.store, {
        let fp = fp.clone();
        move |st| {
            let Some(cert) = st.partner_certificate_by_fingerprint(&fp)? else {
                return Ok((None, None));
            };
            let current = st.current_partner_certificate(&cert.address)?;
            Ok((Some(cert), current))
        }
    })
    .await?;
    let cert = cert.ok_or_else(|| unknown_certificate(&fp))?;
    if wants_pem {
        return Ok(pem_response(
            &cert.certificate_der,
            &format!("{}.pem", cert.fingerprint_sha256),
        ));
    }
    let current_fp = current.as_ref().map(|c| c.fingerprint_sha256.as_str());
    Ok(Json(Certificate::new(&cert, current_fp)).into_response())
}

/// Prefer this certificate for its address while it stays usable (unpins the address's
/// other certificates). Refused certificates cannot be pinned (422); blocked ones must be
/// unblocked first (409).
#[utoipa::path(put, path = "/api/v1/certificates/{fingerprint}/pin", tag = "partners",
    params(("fingerprint" = String, Path, description = "SHA-256 fingerprint, 64 hex digits", pattern = "^[0-9A-Fa-f]{64}$")),
    responses(
        (status = 200, description = "Pinned", body = Certificate),
        (status = 404, description = "No such certificate", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The certificate is blocked", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The certificate was refused at validation", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn pin(s: State<ApiState>, p: ApiPath<String>) -> Result<Json<Certificate>, Problem> {
    change(s, p, Change::Pin).await
}

/// Stop preferring this certificate.
#[utoipa::path(delete, path = "/api/v1/certificates/{fingerprint}/pin", tag = "partners",
    params(("fingerprint" = String, Path, description = "SHA-256 fingerprint, 64 hex digits", pattern = "^[0-9A-Fa-f]{64}$")),
    responses(
        (status = 200, description = "Unpinned", body = Certificate),
        (status = 404, description = "No such certificate", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unpin(s: State<ApiState>, p: ApiPath<String>) -> Result<Json<Certificate>, Problem> {
    change(s, p, Change::Unpin).await
}

/// Never use this certificate for encryption (it stays in the history; unpins it).
#[utoipa::path(put, path = "/api/v1/certificates/{fingerprint}/block", tag = "partners",
    params(("fingerprint" = String, Path, description = "SHA-256 fingerprint, 64 hex digits", pattern = "^[0-9A-Fa-f]{64}$")),
    responses(
        (status = 200, description = "Blocked", body = Certificate),
        (status = 404, description = "No such certificate", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn block(s: State<ApiState>, p: ApiPath<String>) -> Result<Json<Certificate>, Problem> {
    change(s, p, Change::Block).await
}

/// Allow this certificate to be used again.
#[utoipa::path(delete, path = "/api/v1/certificates/{fingerprint}/block", tag = "partners",
    params(("fingerprint" = String, Path, description = "SHA-256 fingerprint, 64 hex digits", pattern = "^[0-9A-Fa-f]{64}$")),
    responses(
        (status = 200, description = "Unblocked", body = Certificate),
        (status = 404, description = "No such certificate", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unblock(s: State<ApiState>, p: ApiPath<String>) -> Result<Json<Certificate>, Problem> {
    change(s, p, Change::Unblock).await
}

#[derive(Clone, Copy)]
enum Change {
    Pin,
    Unpin,
    Block,
    Unblock,
}

async fn change(
    State(s): State<ApiState>,
    ApiPath(raw): ApiPath<String>,
    what: Change,
) -> Result<Json<Certificate>, Problem> {
    let fp = validate::fingerprint(&raw)?;
    let (cert, current) = blocking(&s.store, move |st| {
        let existing = st
            .partner_certificate_by_fingerprint(&fp)?
            .ok_or_else(|| unknown_certificate(&fp))?;
        let cert = match what {
            Change::Pin if existing.blocked => {
                return Err(Problem::conflict(
                    "certificate_blocked",
                    format!("certificate {fp} is blocked; unblock it before pinning it"),
                ))
            }
            Change::Pin => st.pin_partner_certificate(&fp)?,
            Change::Unpin => st.unpin_partner_certificate(&fp)?,
            Change::Block => st.block_partner_certificate(&fp)?,
            Change::Unblock => st.unblock_partner_certificate(&fp)?,
        };
        let current = st.current_partner_certificate(&cert.address)?;
        Ok((cert, current))
    })
    .await?;
    let current_fp = current.as_ref().map(|c| c.fingerprint_sha256.as_str());
    Ok(Json(Certificate::new(&cert, current_fp)))
}

fn unknown_certificate(fp: &str) -> Problem {
    Problem::not_found(
        "unknown_certificate",
        format!("no captured certificate has fingerprint {fp}"),
    )
}

/// A certificate as a PEM download.
pub(crate) fn pem_response(der: &[u8], filename: &str) -> Response {
    let mut response = pem_encode(der).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PEM_MEDIA_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// PEM (RFC 7468): base64 in 64-column lines between CERTIFICATE markers.
pub(crate) fn pem_encode(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Most certificates in one import request.
pub const MAX_IMPORT_CERTIFICATES: usize = 1000;
/// Largest import request body (base64 of up to [`MAX_IMPORT_CERTIFICATES`] certificates).
pub const MAX_IMPORT_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Certificates to import, DER in base64 (standard alphabet); CA certificates among them
/// serve as intermediates for the others.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    #[schema(max_items = 1000)]
    pub certificates: Vec<String>,
}

/// What became of one certificate.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportOutcome {
    /// Position of the certificate in the request.
    pub index: u32,
    pub fingerprint_sha256: String,
    /// The address it was recorded for (none for CA certificates and unusable ones).
    pub address: Option<String>,
    /// Recorded as usable history, or used as an intermediate.
    pub imported: bool,
    /// One line for a person, as the CLI prints it.
    pub detail: String,
}

/// The per-certificate report of an import.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    pub items: Vec<ImportOutcome>,
}

/// Import partner certificates in bulk (e.g. from another gateway), validated exactly like
/// certificates captured from signed mail; each is recorded for every address it names, as
/// long as its domain is approved.
#[utoipa::path(post, path = "/api/v1/partners/import", tag = "partners",
    request_body = ImportRequest,
    responses(
        (status = 200, description = "One outcome per certificate (and address)", body = ImportReport),
    ))]
pub async fn import(
    State(s): State<ApiState>,
    ApiJson(req): ApiJson<ImportRequest>,
) -> Result<Json<ImportReport>, Problem> {
    use base64::Engine as _;
    if req.certificates.len() > MAX_IMPORT_CERTIFICATES {
        return Err(Problem::bad_request(
            "too_many_certificates",
            format!("at most {MAX_IMPORT_CERTIFICATES} certificates per request"),
        ));
    }
    let ders = req
        .certificates
        .iter()
        .enumerate()
        .map(|(i, b64)| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| {
                    Problem::bad_request("bad_encoding", format!("certificates[{i}]: {e}"))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let report = blocking(&s.store, move |st| {
        Ok(st.import_partner_certificates(&ders)?)
    })
    .await?;
    Ok(Json(ImportReport {
        items: report
            .iter()
            .map(|r| ImportOutcome {
                index: u32::try_from(r.index).unwrap_or(u32::MAX),
                fingerprint_sha256: r.fingerprint.clone(),
                address: r.address.clone(),
                imported: r.imported(),
                detail: r.to_string(),
            })
            .collect(),
    }))
}
