#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! The admin API through the router (`tower::ServiceExt::oneshot`), over a temporary store
//! with fixture certificates.

mod common;

use std::future::IntoFuture;
use std::sync::atomic::Ordering;

use axum::http::{header, Method, StatusCode};
use common::*;
use serde_json::{json, Value};

const ALICE: &str = "alice@partner.example";
const FP_ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Every route, with a request that would succeed (or at least pass validation).
fn protected_routes(fp: &str) -> Vec<(Method, String, Option<Value>)> {
    let approve = Some(json!({"policy": "smime", "note": "test"}));
    vec![
        (Method::GET, "/api/v1/openapi.json".into(), None),
        (Method::GET, "/metrics".into(), None),
        (Method::GET, "/api/v1/domains".into(), None),
        (Method::GET, "/api/v1/domains/partner.example".into(), None),
        (
            Method::PUT,
            "/api/v1/domains/partner.example".into(),
            approve,
        ),
        (Method::DELETE, "/api/v1/domains/other.example".into(), None),
        (Method::GET, "/api/v1/partners".into(), None),
        (Method::GET, format!("/api/v1/partners/{ALICE}"), None),
        (Method::GET, format!("/api/v1/certificates/{fp}"), None),
        (Method::PUT, format!("/api/v1/certificates/{fp}/pin"), None),
        (
            Method::DELETE,
            format!("/api/v1/certificates/{fp}/pin"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/certificates/{fp}/block"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/certificates/{fp}/block"),
            None,
        ),
        (Method::GET, "/api/v1/proxy/addresses".into(), None),
        (
            Method::GET,
            "/api/v1/proxy/addresses/user@agency.example".into(),
            None,
        ),
        (
            Method::POST,
            "/api/v1/proxy/addresses/user@agency.example/certificate".into(),
            None,
        ),
        (
            Method::POST,
            "/api/v1/proxy/addresses/user@agency.example/import".into(),
            Some(json!({
                "certificate_pem": std::fs::read_to_string(fixtures().join("proxy/user.pem")).unwrap(),
                "private_key_pem": std::fs::read_to_string(fixtures().join("proxy/user.key")).unwrap(),
                "old": true,
            })),
        ),
        (Method::GET, "/api/v1/audit".into(), None),
    ]
}

#[tokio::test]
async fn every_protected_route_refuses_missing_or_wrong_tokens() {
    let env = Env::with_ca();
    let fp = env.capture(ALICE, "partner/alice.pem");
    let wrong = format!("{}0", &TOKEN[..63]);
    for (method, uri, body) in protected_routes(&fp) {
        for token in [None, Some(wrong.as_str()), Some(""), Some(&TOKEN[..32])] {
            let r = send(env.router(), method.clone(), &uri, token, body.clone(), &[]).await;
            let detail = r.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            assert!(!detail.contains(TOKEN) && !detail.contains(&wrong));
            assert!(r.headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer"));
        }
        // Other schemes do not count either.
        let r = send(
            env.router(),
            method.clone(),
            &uri,
            None,
            body.clone(),
            &[("authorization", &format!("Basic {TOKEN}"))],
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    // Nothing changed without the token (partner.example was approved for the capture).
    assert_eq!(env.store().domains().unwrap().len(), 1);
    assert!(env.store().proxy_addresses().unwrap().is_empty());
}

#[tokio::test]
async fn every_protected_route_works_with_the_token() {
    let env = Env::with_ca();
    let fp = env.capture(ALICE, "partner/alice.pem");
    env.store()
        .ensure_proxy_identity("user@agency.example")
        .unwrap();
    for (method, uri, body) in protected_routes(&fp) {
        let r = env.call(method.clone(), &uri, body).await;
        assert!(
            r.status.is_success() || r.status == StatusCode::NOT_FOUND,
            "{method} {uri}: {} {}",
            r.status,
            r.text()
        );
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
        // No route ever returns key material.
        assert!(!r.text().contains("PRIVATE KEY"), "{method} {uri}");
    }
    // The scheme name is case-insensitive (RFC 9110).
    let r = send(
        env.router(),
        Method::GET,
        "/api/v1/domains",
        None,
        None,
        &[("authorization", &format!("bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn health_and_ca_download_are_public() {
    let env = Env::with_ca();
    let r = send(env.router(), Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"status": "ok", "store_readable": true, "smtp_listener_up": true, "proxy_ca_initialised": true})
    );
    env.state.smtp_up.store(false, Ordering::Relaxed);
    let r = send(env.router(), Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["status"], "unavailable");
    assert_eq!(r.json()["smtp_listener_up"], false);

    let r = send(
        env.router(),
        Method::GET,
        "/api/v1/proxy/ca",
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type(), "application/x-pem-file");
}

#[tokio::test]
async fn proxy_ca_downloads_parse_with_openssl() {
    let env = Env::with_ca();
    let pem = send(
        env.router(),
        Method::GET,
        "/api/v1/proxy/ca",
        None,
        None,
        &[],
    )
    .await;
    let subject = openssl_x509(&pem.body, &["-noout", "-subject"]);
    assert!(subject.contains("Test Proxy CA"), "{subject}");
    assert_eq!(
        pem.body,
        env.store().proxy_ca_certificate_pem().unwrap().as_bytes()
    );

    for (uri, accept) in [
        ("/api/v1/proxy/ca?format=der", None),
        ("/api/v1/proxy/ca", Some("application/pkix-cert")),
    ] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("accept", *a)).collect();
        let der = send(env.router(), Method::GET, uri, None, None, &headers).await;
        assert_eq!(der.status, StatusCode::OK);
        assert_eq!(der.content_type(), "application/pkix-cert");
        assert_eq!(der.body, env.store().proxy_ca_certificate_der().unwrap());
        openssl_x509(&der.body, &["-noout", "-inform", "DER"]);
    }
    let r = send(
        env.router(),
        Method::GET,
        "/api/v1/proxy/ca?format=p12",
        None,
        None,
        &[],
    )
    .await;
    r.problem(StatusCode::BAD_REQUEST, "invalid_query");

    // Before init there is nothing to download.
    let bare = Env::new();
    let r = send(
        bare.router(),
        Method::GET,
        "/api/v1/proxy/ca",
        None,
        None,
        &[],
    )
    .await;
    r.problem(StatusCode::NOT_FOUND, "no_proxy_ca");
}

#[tokio::test]
async fn approving_domains_is_idempotent_and_normalises() {
    let env = Env::new();
    let body = json!({"policy": "smime", "note": "contract 42"});
    let first = env
        .call(
            Method::PUT,
            "/api/v1/domains/Partner.Example",
            Some(body.clone()),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(first.json()["domain"], "partner.example");
    assert_eq!(first.json()["policy"], "smime");
    assert_eq!(first.json()["note"], "contract 42");
    let again = env
        .call(Method::PUT, "/api/v1/domains/partner.example", Some(body))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json(), first.json(), "same approval, unchanged");
    assert_eq!(env.store().domains().unwrap().len(), 1);

    let r = env.get("/api/v1/domains/partner.example").await;
    assert_eq!(r.json(), first.json());
    let r = env.get("/api/v1/domains").await;
    assert_eq!(r.json(), json!([first.json()]));

    // A different policy replaces the approval.
    let tls = env
        .call(
            Method::PUT,
            "/api/v1/domains/partner.example",
            Some(json!({"policy": "tls"})),
        )
        .await;
    assert_eq!(tls.status, StatusCode::OK);
    assert_eq!(tls.json()["policy"], "tls");

    let r = env
        .call(Method::DELETE, "/api/v1/domains/partner.example", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    env.get("/api/v1/domains/partner.example")
        .await
        .problem(StatusCode::NOT_FOUND, "unknown_domain");
    env.call(Method::DELETE, "/api/v1/domains/partner.example", None)
        .await
        .problem(StatusCode::NOT_FOUND, "unknown_domain");
}

#[tokio::test]
async fn free_mail_domains_are_refused_with_the_reason() {
    let env = Env::new();
    for d in ["gmail.com", "yahoo.co.uk", "mail.yahoo.com", "comcast.net"] {
        let r = env
            .call(
                Method::PUT,
                &format!("/api/v1/domains/{d}"),
                Some(json!({"policy": "smime"})),
            )
            .await;
        let detail = r.problem(StatusCode::UNPROCESSABLE_ENTITY, "freemail_domain");
        assert!(detail.contains("free-mail"), "{detail}");
    }
    assert!(env.store().domains().unwrap().is_empty());
    let audit = env.get("/api/v1/audit?kind=domain_refused").await.json();
    assert_eq!(audit.as_array().unwrap().len(), 4);
}

/// Request, expected status and problem code, and words the detail must contain.
type BadInput = (
    Method,
    String,
    Option<Value>,
    StatusCode,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn invalid_input_is_a_problem_that_says_what_was_wrong() {
    let env = Env::new();
    let cases: Vec<BadInput> = vec![
        (
            Method::GET,
            "/api/v1/domains/localhost".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_domain",
            "not a valid domain",
        ),
        (
            Method::GET,
            "/api/v1/domains/10.0.0.1".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_domain",
            "not a valid domain",
        ),
        (
            Method::GET,
            "/api/v1/domains/b%C3%BCcher.example".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_domain",
            "xn--bcher-kva.example",
        ),
        (
            Method::PUT,
            "/api/v1/domains/partner.example".into(),
            Some(json!({"policy": "pgp"})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "unknown variant",
        ),
        (
            Method::PUT,
            "/api/v1/domains/partner.example".into(),
            Some(json!({})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "missing field `policy`",
        ),
        (
            Method::PUT,
            "/api/v1/domains/partner.example".into(),
            Some(json!({"policy": "smime", "extra": 1})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "unknown field `extra`",
        ),
        (
            Method::PUT,
            "/api/v1/domains/partner.example".into(),
            Some(json!({"policy": "smime", "note": "a\nb"})),
            StatusCode::BAD_REQUEST,
            "invalid_note",
            "control characters",
        ),
        (
            Method::PUT,
            "/api/v1/domains/partner.example".into(),
            Some(json!({"policy": "smime", "note": "x".repeat(1025)})),
            StatusCode::BAD_REQUEST,
            "invalid_note",
            "longer than 1024",
        ),
        (
            Method::GET,
            "/api/v1/partners?limit=0".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            "1 to 500",
        ),
        (
            Method::GET,
            "/api/v1/partners?limit=501".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            "1 to 500",
        ),
        (
            Method::GET,
            "/api/v1/partners?offset=-1".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "offset",
        ),
        (
            Method::GET,
            "/api/v1/partners?offset=1000001".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_offset",
            "at most",
        ),
        (
            Method::GET,
            "/api/v1/partners?domain=".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_domain",
            "not a valid domain",
        ),
        (
            Method::GET,
            "/api/v1/partners/alice".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_address",
            "no @",
        ),
        (
            Method::GET,
            "/api/v1/partners/a%20b@partner.example".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_address",
            "local part",
        ),
        (
            Method::GET,
            "/api/v1/partners/alice@localhost".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_address",
            "not a valid domain",
        ),
        (
            Method::GET,
            "/api/v1/certificates/abc".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_fingerprint",
            "64 hexadecimal",
        ),
        (
            Method::PUT,
            format!("/api/v1/certificates/{}/pin", "g".repeat(64)),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_fingerprint",
            "64 hexadecimal",
        ),
        (
            Method::GET,
            "/api/v1/certificates/".to_string() + FP_ZERO + "?format=der",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "format",
        ),
        (
            Method::GET,
            "/api/v1/audit?kind=everything".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "kind",
        ),
        (
            Method::GET,
            "/api/v1/audit?limit=100000".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            "1 to 500",
        ),
        (
            Method::POST,
            "/api/v1/proxy/addresses/nobody/certificate".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_address",
            "no @",
        ),
        (
            Method::GET,
            "/api/v1/proxy/addresses?limit=abc".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "limit",
        ),
    ];
    for (method, uri, body, status, code, needle) in cases {
        let r = env.call(method.clone(), &uri, body).await;
        let detail = r.problem(status, code);
        assert!(
            detail.contains(needle),
            "{method} {uri}: {detail:?} lacks {needle:?}"
        );
    }
}

#[tokio::test]
async fn bodies_are_json_and_bounded() {
    let env = Env::new();
    let uri = "/api/v1/domains/partner.example";
    let r = send(
        env.router(),
        Method::PUT,
        uri,
        Some(TOKEN),
        None,
        &[("content-type", "text/plain")],
    )
    .await;
    r.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let huge = json!({"policy": "smime", "note": "x".repeat(admin_api::MAX_BODY_BYTES)});
    env.call(Method::PUT, uri, Some(huge))
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    // Malformed JSON.
    let req = axum::http::Request::builder()
        .method(Method::PUT)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"policy\": "))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(env.router(), req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(env.store().domains().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let env = Env::new();
    env.get("/api/v1/nothing")
        .await
        .problem(StatusCode::NOT_FOUND, "no_such_route");
    let r = env.call(Method::POST, "/api/v1/domains", None).await;
    r.problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert!(r.headers.get(header::ALLOW).is_some(), "{:?}", r.headers);
}

#[tokio::test]
async fn partner_listing_history_and_certificate_downloads() {
    let env = Env::new();
    let fp_old = env.capture(ALICE, "partner/alice.pem");
    let fp_new = env.capture(ALICE, "partner/alice-renewed.pem");
    let fp_bob = env.capture("bob@partner.example", "partner/bob.pem");
    env.capture("mallory@other.example", "partner/other.pem");
    // Captured but refused (expired): listed in history, never current.
    let fp_expired = env.capture("dave@partner.example", "partner/expired.pem");
    assert_eq!(fp_old, openssl_fingerprint("partner/alice.pem"));

    let list = env.get("/api/v1/partners").await.json();
    let addresses: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        addresses,
        ["mallory@other.example", ALICE, "bob@partner.example"],
        "sorted by domain then local part; dave has no usable certificate"
    );
    assert_eq!(list["items"][1]["current"]["fingerprint_sha256"], fp_new);
    assert_eq!(list["items"][2]["current"]["fingerprint_sha256"], fp_bob);
    assert_eq!(list["next_offset"], Value::Null);

    let page = env
        .get("/api/v1/partners?domain=Partner.Example&limit=1")
        .await
        .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["address"], ALICE);
    assert_eq!(page["next_offset"], 1);
    let page2 = env
        .get("/api/v1/partners?domain=partner.example&limit=1&offset=1")
        .await
        .json();
    assert_eq!(page2["items"][0]["address"], "bob@partner.example");
    assert_eq!(page2["next_offset"], Value::Null);
    let none = env
        .get("/api/v1/partners?domain=nobody.example")
        .await
        .json();
    assert_eq!(none["items"], json!([]));

    let alice = env
        .get(&format!("/api/v1/partners/{}", ALICE.to_uppercase()))
        .await;
    assert_eq!(alice.status, StatusCode::OK, "{}", alice.text());
    let alice = alice.json();
    assert_eq!(alice["address"], ALICE);
    assert_eq!(alice["current"]["fingerprint_sha256"], fp_new);
    let history = alice["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    let old = history
        .iter()
        .find(|c| c["fingerprint_sha256"] == fp_old)
        .unwrap();
    assert_eq!(old["in_use"], false);
    assert_eq!(
        old["validation"],
        json!({"status": "valid", "reason": null, "reason_code": null})
    );
    assert_eq!(old["key_bits"], 2048);
    assert_eq!(old["first_message_id"], "<partner/alice.pem@test>");
    assert!(old["subject"].as_str().unwrap().contains("alice"));
    assert!(old["issuer"].as_str().unwrap().contains("Intermediate"));
    assert!(old["not_after"]
        .as_str()
        .unwrap()
        .starts_with("2045-01-01T00:00:00"));
    for field in [
        "serial_hex",
        "signature_algorithm",
        "first_seen",
        "last_seen",
    ] {
        assert!(old[field].is_string(), "{field}");
    }

    let dave = env
        .get("/api/v1/partners/dave@partner.example")
        .await
        .json();
    assert_eq!(dave["current"], Value::Null);
    assert_eq!(dave["history"][0]["validation"]["status"], "refused");
    assert_eq!(dave["history"][0]["validation"]["reason_code"], "expired");
    assert!(dave["history"][0]["validation"]["reason"]
        .as_str()
        .unwrap()
        .contains("expired"));

    env.get("/api/v1/partners/nobody@partner.example")
        .await
        .problem(StatusCode::NOT_FOUND, "unknown_address");

    // One certificate: JSON, PEM by query, PEM by Accept; fingerprints in either case.
    let json_cert = env
        .get(&format!(
            "/api/v1/certificates/{}",
            fp_expired.to_uppercase()
        ))
        .await;
    assert_eq!(json_cert.status, StatusCode::OK);
    assert_eq!(json_cert.json()["address"], "dave@partner.example");
    let pem = env
        .get(&format!("/api/v1/certificates/{fp_old}?format=pem"))
        .await;
    assert_eq!(pem.status, StatusCode::OK);
    assert_eq!(pem.content_type(), "application/x-pem-file");
    let out = openssl_x509(&pem.body, &["-noout", "-fingerprint", "-sha256"]);
    assert_eq!(
        out.trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase(),
        fp_old
    );
    assert_eq!(
        pem.body,
        std::fs::read(fixtures().join("partner/alice.pem")).unwrap(),
        "the same PEM as the fixture"
    );
    let by_accept = send(
        env.router(),
        Method::GET,
        &format!("/api/v1/certificates/{fp_old}"),
        Some(TOKEN),
        None,
        &[("accept", "application/x-pem-file")],
    )
    .await;
    assert_eq!(by_accept.body, pem.body);
    let forced_json = send(
        env.router(),
        Method::GET,
        &format!("/api/v1/certificates/{fp_old}?format=json"),
        Some(TOKEN),
        None,
        &[("accept", "application/x-pem-file")],
    )
    .await;
    assert_eq!(forced_json.json()["fingerprint_sha256"], fp_old);
    env.get(&format!("/api/v1/certificates/{FP_ZERO}"))
        .await
        .problem(StatusCode::NOT_FOUND, "unknown_certificate");
}

fn current_fp(env: &Env) -> Option<String> {
    env.store()
        .current_partner_certificate(ALICE)
        .unwrap()
        .map(|c| c.fingerprint_sha256)
}

#[tokio::test]
async fn pin_and_block_change_the_certificate_outbound_mail_uses() {
    let env = Env::new();
    let fp_old = env.capture(ALICE, "partner/alice.pem");
    let fp_new = env.capture(ALICE, "partner/alice-renewed.pem");
    assert_eq!(current_fp(&env), Some(fp_new.clone()), "newest by default");

    let r = env
        .call(
            Method::PUT,
            &format!("/api/v1/certificates/{fp_old}/pin"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["pinned"], true);
    assert_eq!(r.json()["in_use"], true);
    assert_eq!(current_fp(&env), Some(fp_old.clone()), "pinned wins");
    // Pinning again is harmless.
    let r = env
        .call(
            Method::PUT,
            &format!("/api/v1/certificates/{fp_old}/pin"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let r = env
        .call(
            Method::DELETE,
            &format!("/api/v1/certificates/{fp_old}/pin"),
            None,
        )
        .await;
    assert_eq!(r.json()["pinned"], false);
    assert_eq!(current_fp(&env), Some(fp_new.clone()));

    let r = env
        .call(
            Method::PUT,
            &format!("/api/v1/certificates/{fp_new}/block"),
            None,
        )
        .await;
    assert_eq!(r.json()["blocked"], true);
    assert_eq!(r.json()["in_use"], false);
    assert_eq!(
        current_fp(&env),
        Some(fp_old.clone()),
        "blocked is never used"
    );
    env.call(
        Method::PUT,
        &format!("/api/v1/certificates/{fp_new}/pin"),
        None,
    )
    .await
    .problem(StatusCode::CONFLICT, "certificate_blocked");

    env.call(
        Method::PUT,
        &format!("/api/v1/certificates/{fp_old}/block"),
        None,
    )
    .await;
    assert_eq!(
        current_fp(&env),
        None,
        "both blocked: no certificate, mail is refused"
    );
    let alice = env.get(&format!("/api/v1/partners/{ALICE}")).await.json();
    assert_eq!(alice["current"], Value::Null);
    let list = env.get("/api/v1/partners").await.json();
    assert_eq!(list["items"], json!([]));

    env.call(
        Method::DELETE,
        &format!("/api/v1/certificates/{fp_new}/block"),
        None,
    )
    .await;
    assert_eq!(current_fp(&env), Some(fp_new.clone()));

    // A certificate refused at validation cannot be pinned.
    let fp_expired = env.capture("dave@partner.example", "partner/expired.pem");
    env.call(
        Method::PUT,
        &format!("/api/v1/certificates/{fp_expired}/pin"),
        None,
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "certificate_refused");
    for path in ["pin", "block"] {
        for method in [Method::PUT, Method::DELETE] {
            env.call(
                method,
                &format!("/api/v1/certificates/{FP_ZERO}/{path}"),
                None,
            )
            .await
            .problem(StatusCode::NOT_FOUND, "unknown_certificate");
        }
    }
    let kinds: Vec<String> = env
        .get("/api/v1/audit?limit=500")
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    for k in [
        "partner_pinned",
        "partner_unpinned",
        "partner_blocked",
        "partner_unblocked",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
}

#[tokio::test]
async fn proxy_certificates_are_issued_renewed_and_listed_without_keys() {
    let env = Env::with_ca();
    let uri = "/api/v1/proxy/addresses/User@agency.example/certificate";
    let first = env.call(Method::POST, uri, None).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    let first = first.json();
    assert_eq!(first["address"], "user@agency.example");
    assert_eq!(first["current"], true);
    let pem = first["certificate_pem"].as_str().unwrap();
    let subject = openssl_x509(pem.as_bytes(), &["-noout", "-subject"]);
    assert!(subject.contains("user@agency.example"), "{subject}");

    let second = env.call(Method::POST, uri, None).await.json();
    assert_ne!(second["fingerprint_sha256"], first["fingerprint_sha256"]);

    let detail = env.get("/api/v1/proxy/addresses/user@agency.example").await;
    assert!(!detail.text().contains("PRIVATE"));
    let detail = detail.json();
    let certs = detail["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2, "old keys are kept");
    assert_eq!(certs.iter().filter(|c| c["current"] == true).count(), 1);
    assert_eq!(
        env.store()
            .proxy_identities("user@agency.example")
            .unwrap()
            .len(),
        2
    );

    let list = env.get("/api/v1/proxy/addresses").await.json();
    assert_eq!(list["items"][0]["address"], "user@agency.example");
    assert_eq!(list["items"][0]["key_count"], 2);
    assert_eq!(
        list["items"][0]["current_fingerprint"],
        second["fingerprint_sha256"]
    );

    env.get("/api/v1/proxy/addresses/nobody@agency.example")
        .await
        .problem(StatusCode::NOT_FOUND, "unknown_address");

    // Partner addresses are not internal.
    env.call(
        Method::PUT,
        "/api/v1/domains/partner.example",
        Some(json!({"policy": "smime"})),
    )
    .await;
    env.call(
        Method::POST,
        &format!("/api/v1/proxy/addresses/{ALICE}/certificate"),
        None,
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "partner_address");
    // Nor is anything outside the organisation's domains, or off its address list.
    env.call(
        Method::POST,
        "/api/v1/proxy/addresses/ceo@bigbank.example/certificate",
        None,
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "not_internal");
    assert!(env
        .store()
        .proxy_identities("ceo@bigbank.example")
        .unwrap()
        .is_empty());
    let mut listed = env.state.clone();
    listed.internal = certstore::InternalAddresses::new(
        &["agency.example".to_string()],
        Some(&["user@agency.example".to_string()]),
    );
    send(
        admin_api::router(listed),
        Method::POST,
        "/api/v1/proxy/addresses/invented@agency.example/certificate",
        Some(TOKEN),
        None,
        &[],
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "not_internal");

    let long = format!(
        "/api/v1/proxy/addresses/{}@agency.example/certificate",
        "a".repeat(60)
    );
    env.call(Method::POST, &long, None).await.problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "address_too_long_for_certificate",
    );

    // Without a proxy CA there is nothing to issue with.
    let bare = Env::new();
    bare.call(Method::POST, uri, None)
        .await
        .problem(StatusCode::CONFLICT, "not_initialised");
}

#[tokio::test]
async fn audit_is_newest_first_with_limit_and_kind() {
    let env = Env::new();
    for d in ["a.example", "b.example", "c.example"] {
        env.call(
            Method::PUT,
            &format!("/api/v1/domains/{d}"),
            Some(json!({"policy": "smime"})),
        )
        .await;
    }
    env.call(Method::DELETE, "/api/v1/domains/b.example", None)
        .await;
    let all = env.get("/api/v1/audit").await.json();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0]["kind"], "domain_removed");
    assert_eq!(all[0]["subject"], "b.example");
    let ids: Vec<u64> = all.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    let approved = env
        .get("/api/v1/audit?kind=domain_approved&limit=2")
        .await
        .json();
    let subjects: Vec<&str> = approved
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["c.example", "b.example"]);
}

#[tokio::test]
async fn metrics_are_read_from_the_source_on_each_scrape() {
    let env = Env::with_ca();
    let r = env.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .content_type()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    assert!(r.text().lines().any(|l| l == "test_partner_certificates 0"));
    env.capture(ALICE, "partner/alice.pem");
    env.capture(ALICE, "partner/alice-renewed.pem");
    let text = env.get("/metrics").await.text();
    assert!(
        text.lines().any(|l| l == "test_partner_certificates 2"),
        "{text}"
    );
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let env = Env::new();
    let doc = env.get("/api/v1/openapi.json").await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (method, uri, _) in protected_routes("{fingerprint}") {
        if uri == "/api/v1/openapi.json" {
            continue;
        }
        let templated = uri
            .replace(ALICE, "{address}")
            .replace("user@agency.example", "{address}")
            .replace("partner.example", "{domain}")
            .replace("other.example", "{domain}");
        let op = &paths[&templated][method.as_str().to_lowercase()];
        assert!(op.is_object(), "{method} {templated} is not documented");
        assert!(op["responses"]["401"].is_object(), "{method} {templated}");
    }
    assert!(paths["/healthz"]["get"].is_object());
    assert!(paths["/api/v1/proxy/ca"]["get"].is_object());
}

#[tokio::test]
async fn serves_over_tcp_on_loopback() {
    let env = Env::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, env.router())
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    let raw = |request: String| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let denied =
        raw("GET /api/v1/domains HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into()).await;
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let ok = raw(format!(
        "GET /api/v1/domains HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    ))
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn token_file_is_created_once_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/admin-token");
    let (token, created) = admin_api::load_or_create_token(&path).unwrap();
    assert!(created);
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (again, created) = admin_api::load_or_create_token(&path).unwrap();
    assert!(!created);
    assert_eq!(*again, *token);
    let (other, _) = admin_api::load_or_create_token(&dir.path().join("t2")).unwrap();
    assert_ne!(*other, *token, "random");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = admin_api::load_or_create_token(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(
        !err.to_string().contains(token.as_str()),
        "the token is not in the error"
    );

    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        admin_api::load_or_create_token(&short).unwrap_err().kind(),
        std::io::ErrorKind::InvalidData
    );
}

/// Migration: a key pair from another gateway, as PEM or PKCS#12, current or old.
#[tokio::test]
async fn proxy_identities_are_imported_as_current_or_old() {
    let env = Env::new();
    let read = |p: &str| std::fs::read_to_string(fixtures().join(p)).unwrap();
    env.store()
        .import_proxy_ca(&read("proxy/proxy-ca.pem"), &read("proxy/proxy-ca.key"))
        .unwrap();
    let uri = "/api/v1/proxy/addresses/user@agency.example/import";
    let current = env
        .call(
            Method::POST,
            uri,
            Some(json!({
                "certificate_pem": read("proxy/user.pem"),
                "private_key_pem": read("proxy/user.key"),
            })),
        )
        .await;
    assert_eq!(current.status, StatusCode::CREATED, "{}", current.text());
    assert_eq!(current.json()["current"], true);
    assert!(!current.text().contains("PRIVATE"));

    // PKCS#12 made by openssl, kept as an old key.
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("old.p12");
    let out = std::process::Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:pw", "-inkey"])
        .arg(fixtures().join("proxy/user-old.key"))
        .arg("-in")
        .arg(fixtures().join("proxy/user-old.pem"))
        .arg("-out")
        .arg(&p12)
        .output()
        .unwrap();
    assert!(out.status.success());
    use base64::Engine as _;
    let p12 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&p12).unwrap());
    let body = json!({"pkcs12_base64": p12, "password": "pw", "old": true});
    let old = env.call(Method::POST, uri, Some(body.clone())).await;
    assert_eq!(old.status, StatusCode::CREATED, "{}", old.text());
    assert_eq!(old.json()["current"], false);
    env.call(Method::POST, uri, Some(body))
        .await
        .problem(StatusCode::CONFLICT, "identity_exists");
    let detail = env
        .get("/api/v1/proxy/addresses/user@agency.example")
        .await
        .json();
    let certs = detail["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs.iter().filter(|c| c["current"] == true).count(), 1);

    // Wrong address for the certificate, neither form given, a wrong password.
    env.call(
        Method::POST,
        "/api/v1/proxy/addresses/other@agency.example/import",
        Some(json!({
            "certificate_pem": read("proxy/user.pem"),
            "private_key_pem": read("proxy/user.key"),
            "old": true,
        })),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "unusable_certificate");
    env.call(Method::POST, uri, Some(json!({"old": true})))
        .await
        .problem(StatusCode::BAD_REQUEST, "bad_import_request");
    env.call(
        Method::POST,
        uri,
        Some(json!({"pkcs12_base64": "AAAA", "password": "x"})),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "bad_encoding");
}
