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
