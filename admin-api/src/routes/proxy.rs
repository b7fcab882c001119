//! The proxy side: the proxy CA certificate (public download), internal addresses with proxy
//! certificates, and issuing or renewing an address's proxy certificate. Private keys are
//! never part of any response.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use certstore::{ProxyAddressSummary, ProxyIdentity, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::partners::{pem_encode, pem_response};
use super::rfc3339;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::problem::Problem;
use crate::{blocking, validate, ApiState};

/// Proxy certificates carry the address as their common name, limited to 64 characters
/// (X.520 ub-common-name; certstore enforces it).
const MAX_PROXY_ADDRESS_CHARS: usize = 64;

/// DER certificate media type (RFC 2585).
const DER_MEDIA_TYPE: &str = "application/pkix-cert";

/// Encoding of the CA certificate download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CaFormat {
    Pem,
    Der,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaQuery {
    /// `pem` (default) or `der`; without it, `Accept: application/pkix-cert` selects DER.
    pub format: Option<CaFormat>,
}

/// The proxy CA certificate, for partners to import. Public: no token needed.
#[utoipa::path(get, path = "/api/v1/proxy/ca", tag = "proxy", params(CaQuery),
    security(()),
    responses(
        (status = 200, description = "The proxy CA certificate", content(
            (String = "application/x-pem-file"),
            (Vec<u8> = "application/pkix-cert"),
        )),
        (status = 404, description = "The store has no proxy CA yet", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ca_certificate(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<CaQuery>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let der_wanted = match q.format {
        Some(f) => f == CaFormat::Der,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains(DER_MEDIA_TYPE)),
    };
    let der = blocking(&s.store, |st| match st.proxy_ca_certificate_der() {
        Ok(der) => Ok(der),
        Err(StoreError::NotInitialised) => Err(Problem::not_found(
            "no_proxy_ca",
            "the store has no proxy CA yet; run the init command first",
        )),
        Err(e) => Err(e.into()),
    })
    .await?;
    if !der_wanted {
        return Ok(pem_response(&der, "proxy-ca.pem"));
    }
    let mut response = der.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(DER_MEDIA_TYPE),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"proxy-ca.cer\""),
    );
    Ok(response)
}

/// An internal address with proxy certificates.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProxyAddress {
    pub address: String,
    /// Keys ever issued for the address (all kept so old mail stays readable).
    pub key_count: u64,
    /// Fingerprint of the certificate valid now, if any.
    pub current_fingerprint: Option<String>,
    #[schema(format = DateTime)]
    pub current_not_after: Option<String>,
}

impl From<ProxyAddressSummary> for ProxyAddress {
    fn from(p: ProxyAddressSummary) -> ProxyAddress {
        ProxyAddress {
            address: p.address,
            key_count: p.key_count as u64,
            current_fingerprint: p.current_fingerprint,
            current_not_after: p.current_not_after.map(rfc3339),
        }
    }
}

/// One page of internal addresses.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProxyAddressList {
    pub items: Vec<ProxyAddress>,
    pub offset: u32,
    pub limit: u32,
    pub next_offset: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Entries to skip.
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: Option<u32>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// A proxy certificate (the key stays in the store).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProxyCertificate {
    pub address: String,
    pub fingerprint_sha256: String,
    pub serial_hex: String,
    #[schema(format = DateTime)]
    pub not_before: String,
    #[schema(format = DateTime)]
    pub not_after: String,
    /// The certificate partners encrypt to now.
    pub current: bool,
    /// The certificate, PEM.
    pub certificate_pem: String,
}

impl ProxyCertificate {
    /// `id` as the API shows it; `current_fp` is the fingerprint of the current identity.
    pub fn new(id: &ProxyIdentity, current_fp: Option<&str>) -> ProxyCertificate {
        ProxyCertificate {
            address: id.address.clone(),
            fingerprint_sha256: id.fingerprint_sha256.clone(),
            serial_hex: id.serial_hex.clone(),
            not_before: rfc3339(id.not_before),
            not_after: rfc3339(id.not_after),
            current: current_fp == Some(id.fingerprint_sha256.as_str()),
            certificate_pem: pem_encode(&id.certificate_der),
        }
    }
}

/// An internal address and every proxy certificate issued for it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProxyAddressDetail {
    pub address: String,
    /// Newest first.
    pub certificates: Vec<ProxyCertificate>,
}

/// Internal addresses with proxy certificates, sorted.
#[utoipa::path(get, path = "/api/v1/proxy/addresses", tag = "proxy", params(PageQuery),
    responses((status = 200, description = "One page of internal addresses", body = ProxyAddressList)))]
pub async fn list(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<ProxyAddressList>, Problem> {
    let (offset, limit) = validate::page(q.offset, q.limit)?;
    let all = blocking(&s.store, |st| Ok(st.proxy_addresses()?)).await?;
    let more = all.len() > offset.saturating_add(limit);
    let items = all
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(ProxyAddress::from)
        .collect();
    let offset = u32::try_from(offset).unwrap_or(u32::MAX);
    let limit = u32::try_from(limit).unwrap_or(u32::MAX);
    Ok(Json(ProxyAddressList {
        items,
        offset,
        limit,
        next_offset: more.then(|| offset.saturating_add(limit)),
    }))
}

/// One internal address: every proxy certificate issued for it.
#[utoipa::path(get, path = "/api/v1/proxy/addresses/{address}", tag = "proxy",
    params(("address" = String, Path, description = "Internal e-mail address", pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-](?:[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{0,62}[A-Za-z0-9!#$%&'*+/=?^_`{|}~-])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", max_length = 254)),
    responses(
        (status = 200, description = "The address's proxy certificates", body = ProxyAddressDetail),
        (status = 404, description = "No proxy certificate was issued for the address", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_one(
    State(s): State<ApiState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<ProxyAddressDetail>, Problem> {
    let address = validate::address(&raw)?;
    let (ids, current) = blocking(&s.store, {
        let address = address.clone();
        move |st| {
            Ok((
                st.proxy_identities(&address)?,
                st.current_proxy_identity(&address)?,
            ))
        }
    })
    .await?;
    if ids.is_empty() {
        return Err(Problem::not_found(
            "unknown_address",
            format!("no proxy certificate has been issued for {address}"),
        ));
    }
    let current_fp = current.as_ref().map(|c| c.fingerprint_sha256.as_str());
    Ok(Json(ProxyAddressDetail {
        certificates: ids
            .iter()
            .map(|id| ProxyCertificate::new(id, current_fp))
            .collect(),
        address,
    }))
}

/// Issue a proxy certificate for an internal address, or renew it: a new key and
/// certificate every time; earlier keys are kept so mail encrypted to them stays readable.
/// Refused (422): addresses in approved partner domains, addresses outside the organisation's
/// internal domains or not in its configured address list, and addresses longer than 64
/// characters (the certificate's common name holds the address).
#[utoipa::path(post, path = "/api/v1/proxy/addresses/{address}/certificate", tag = "proxy",
    params(IssueQuery, ("address" = String, Path, description = "Internal e-mail address", pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-](?:[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{0,62}[A-Za-z0-9!#$%&'*+/=?^_`{|}~-])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", max_length = 254)),
    responses(
        (status = 200, description = "The current certificate, still valid (renew=false)", body = ProxyCertificate),
        (status = 201, description = "Issued", body = ProxyCertificate),
        (status = 409, description = "The store has no proxy CA yet", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The address is not internal (partner domain, outside the internal domains, not in the internal address list), or too long for a certificate", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn issue(
    State(s): State<ApiState>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<IssueQuery>,
) -> Result<(StatusCode, Json<ProxyCertificate>), Problem> {
    let address = internal_address(&raw)?;
    let internal = s.internal.clone();
    let renew = q.renew.unwrap_or(true);
    let (id, issued) = blocking(&s.store, move |st| {
        check_internal(st, &internal, &address)?;
        if renew {
            return Ok((st.renew_proxy_identity(&address)?, true));
        }
        let before = st.current_proxy_identity(&address)?;
        let id = st.ensure_proxy_identity(&address)?;
        let issued = before.is_none_or(|b| b.fingerprint_sha256 != id.fingerprint_sha256);
        Ok((id, issued))
    })
    .await?;
    let fp = id.fingerprint_sha256.clone();
    let status = if issued {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ProxyCertificate::new(&id, Some(&fp)))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IssueQuery {
    /// `true` (default): always a new key and certificate. `false`: return the current
    /// certificate while it stays valid for more than 7 days, else issue one.
    pub renew: Option<bool>,
}

/// A validated address short enough for a certificate's common name.
fn internal_address(raw: &str) -> Result<String, Problem> {
    let address = validate::address(raw)?;
    if address.len() > MAX_PROXY_ADDRESS_CHARS {
        return Err(Problem::unprocessable(
            "address_too_long_for_certificate",
            format!(
                "{address} is longer than {MAX_PROXY_ADDRESS_CHARS} characters, the limit of a certificate's common name, which carries the address"
            ),
        ));
    }
    Ok(address)
}

/// Proxy identities are only for the organisation's own addresses.
fn check_internal(
    st: &certstore::Store,
    internal: &certstore::InternalAddresses,
    address: &str,
) -> Result<(), Problem> {
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
    if st.domain(domain)?.is_some() {
        return Err(Problem::unprocessable(
            "partner_address",
            format!(
                "{address} is in the approved partner domain {domain}; proxy certificates are for internal addresses"
            ),
        ));
    }
    internal.check(address).map_err(|e| {
        Problem::unprocessable(
            "not_internal",
            format!("{e}; proxy certificates are issued only for the organisation's own addresses"),
        )
    })
}

/// Largest import request: a PKCS#12 file (base64) or PEM key and certificate.
pub const MAX_IMPORT_BODY_BYTES: usize = 4 * certstore::MAX_IMPORT_BYTES / 3 + 16 * 1024;

/// A key pair from another gateway: `pkcs12_base64`, or `private_key_pem` with
/// `certificate_pem`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// A PKCS#12 file, base64 (standard alphabet).
    pub pkcs12_base64: Option<String>,
    /// The PKCS#12 password, or the password of an encrypted PEM private key.
    pub password: Option<String>,
    /// The private key, PEM (PKCS#8, PKCS#1 or encrypted PKCS#8).
    pub private_key_pem: Option<String>,
    /// The certificate, PEM.
    pub certificate_pem: Option<String>,
    /// Keep it as an old key that only decrypts old mail (never current, never signs).
    #[serde(default)]
    pub old: bool,
}

impl std::fmt::Debug for ImportRequest {
    // Key material and passwords never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRequest")
            .field("old", &self.old)
            .finish_non_exhaustive()
    }
}

/// Import a proxy identity from another gateway (migration). The certificate must name the
/// address, match the key (RSA, 2048 to 16384 bits) and permit S/MIME signing and
/// encryption. As current (`old` false) it must be valid now and issued by the current proxy
/// CA; as old it only decrypts mail encrypted to it. Refused (422): as for issuing, and
/// unusable keys or certificates.
#[utoipa::path(post, path = "/api/v1/proxy/addresses/{address}/import", tag = "proxy",
    params(("address" = String, Path, description = "Internal e-mail address", pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-](?:[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{0,62}[A-Za-z0-9!#$%&'*+/=?^_`{|}~-])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", max_length = 254)),
    request_body = ImportRequest,
    responses(
        (status = 201, description = "Imported", body = ProxyCertificate),
        (status = 409, description = "Already imported, or the store has no proxy CA yet", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The address is not internal, or the key or certificate cannot be used", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn import(
    State(s): State<ApiState>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<ImportRequest>,
) -> Result<(StatusCode, Json<ProxyCertificate>), Problem> {
    let address = internal_address(&raw)?;
    let password = req.password.as_deref().unwrap_or("");
    let imported = match (
        &req.pkcs12_base64,
        &req.private_key_pem,
        &req.certificate_pem,
    ) {
        (Some(p12), None, None) => {
            use base64::Engine as _;
            let der = base64::engine::general_purpose::STANDARD
                .decode(p12.trim())
                .map_err(|e| Problem::bad_request("bad_encoding", format!("pkcs12_base64: {e}")))?;
            certstore::ImportedIdentity::from_pkcs12(&der, password)?
        }
        (None, Some(key), Some(cert)) => certstore::ImportedIdentity::from_pem(
            key.as_bytes(),
            cert.as_bytes(),
            req.password.as_deref(),
        )?,
        _ => {
            return Err(Problem::bad_request(
                "bad_import_request",
                "give pkcs12_base64, or private_key_pem with certificate_pem",
            ))
        }
    };
    let address = imported.address(Some(&address))?;
    let internal = s.internal.clone();
    let old = req.old;
    let id = blocking(&s.store, move |st| {
        check_internal(st, &internal, &address)?;
        Ok(st.import_proxy_identity(&address, &imported, old)?)
    })
    .await?;
    let current = (!old).then_some(id.fingerprint_sha256.as_str());
    Ok((
        StatusCode::CREATED,
        Json(ProxyCertificate::new(&id, current)),
    ))
}
