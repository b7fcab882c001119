//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the response types, so it cannot drift from the routes. Responses every route shares
//! (400, 401, 413, 415, 500) are added by [`CommonResponses`] from what each operation has.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::problem::{Problem, PROBLEM_JSON};
use crate::routes::{audit, domains, health, partners, proxy};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "S/MIME gateway admin API",
        description = "Approve partner domains, inspect partner certificates and their history, \
                       manage proxy certificates, read the audit journal. Every route except \
                       /healthz and /api/v1/proxy/ca needs `Authorization: Bearer <admin token>`. \
                       Errors are RFC 9457 problem details (application/problem+json)."
    ),
    paths(
        health::healthz,
        health::metrics,
        domains::list,
        domains::get_one,
        domains::approve,
        domains::remove,
        partners::list,
        partners::get_one,
        partners::import,
        partners::certificate,
        partners::pin,
        partners::unpin,
        partners::block,
        partners::unblock,
        proxy::ca_certificate,
        proxy::list,
        proxy::get_one,
        proxy::issue,
        proxy::import,
        audit::list,
    ),
    components(schemas(
        Problem,
        partners::CertFormat,
        proxy::CaFormat,
        audit::Kind,
    )),
    modifiers(&BearerAuth, &CommonResponses),
    security(("bearer" = [])),
    tags(
        (name = "domains", description = "Approved partner domains"),
        (name = "partners", description = "Captured partner certificates"),
        (name = "proxy", description = "Proxy CA and proxy certificates of internal addresses"),
        (name = "audit", description = "Audit journal"),
        (name = "health", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

/// The document, as served.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Json<Document> {
    Json(document())
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The admin token created by `smime-gateway init`"))
                    .build(),
            ),
        );
    }
}

struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut Document) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
            ];
            for op in ops.into_iter().flatten() {
                // Public operations carry an empty requirement (`security: [{}]`).
                let public = op.security.as_ref().is_some_and(|reqs| {
                    reqs.iter()
                        .any(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
                });
                let has_input = op.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || op.request_body.is_some();
                let mut add = |status: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| problem(description));
                };
                if has_input {
                    add("400", "Invalid input (the detail says which)");
                }
                if !public {
                    add("401", "Missing or invalid bearer token");
                }
                if op.request_body.is_some() {
                    add("413", "Request body too large");
                    add("415", "Request body is not application/json");
                }
                if path != "/healthz" {
                    add("500", "Internal failure of the server or its store");
                }
            }
        }
    }
}

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{ADDRESS_PATTERN, DOMAIN_PATTERN, FINGERPRINT_PATTERN};

    /// The patterns written into the handlers' annotations (string literals, as utoipa
    /// requires) are the ones the validators implement.
    #[test]
    fn parameter_patterns_match_the_validators() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap();
                    let pattern = p["schema"]["pattern"].as_str();
                    let expected = match name {
                        "domain" => Some(DOMAIN_PATTERN),
                        "address" => Some(ADDRESS_PATTERN),
                        "fingerprint" => Some(FINGERPRINT_PATTERN),
                        _ => None,
                    };
                    if expected.is_some() {
                        seen += 1;
                        assert_eq!(pattern, expected, "{path} {name}");
                    }
                }
            }
        }
        assert!(seen >= 12, "only {seen} patterned parameters");
    }

    #[test]
    fn public_routes_are_marked_public() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(
            doc["paths"]["/healthz"]["get"]["security"],
            serde_json::json!([{}])
        );
        assert_eq!(
            doc["paths"]["/api/v1/proxy/ca"]["get"]["security"],
            serde_json::json!([{}])
        );
        assert!(doc["paths"]["/api/v1/proxy/ca"]["get"]["responses"]["401"].is_null());
        assert!(doc["paths"]["/metrics"]["get"]["responses"]["401"].is_object());
        assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    }
}
