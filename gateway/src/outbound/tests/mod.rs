use std::collections::BTreeMap;

use certstore::StoreConfig;

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    config: Config,
    keys: KeyCache,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("store"),
        StoreConfig {
            use_system_trust: false,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    for domain in ["listed-approved.example", "approved.example"] {
        store
            .approve_domain(domain, DomainPolicy::Smime, "test", "")
            .unwrap();
    }
    let mut config = Config::default_for_run(dir.path());
    config.internal_domains = vec!["agency.example".into()];
    config.outbound.plaintext_domains =
        vec!["listed.example".into(), "listed-approved.example".into()];
    Fixture {
        _dir: dir,
        store,
        config,
        keys: KeyCache::new(crate::smime::crypto::default_provider()),
    }
}

impl Fixture {
    fn outbound(&self) -> Outbound<'_> {
        Outbound {
            config: &self.config,
            store: &self.store,
            keys: &self.keys,
        }
    }
}

/// Every combination: policy × domain listed in plaintext_domains or not × approved for
/// S/MIME without a certificate on file, or not approved.
#[test]
fn clear_text_only_under_plaintext_to_listed_domains() {
    let mut f = fixture();
    for policy in [
        PolicyWithoutCertificate::Plaintext,
        PolicyWithoutCertificate::Refuse,
    ] {
        f.config.outbound.policy_without_certificate = policy;
        for (domain, listed) in [
            ("listed.example", true),
            ("listed-approved.example", true),
            ("approved.example", false),
            ("other.example", false),
        ] {
            let decision = f.outbound().decide(&format!("bob@{domain}"));
            let clear = policy == PolicyWithoutCertificate::Plaintext && listed;
            match decision {
                Decision::Plaintext => assert!(clear, "{policy:?} {domain}"),
                Decision::Refuse { reason } => {
                    assert!(!clear, "{policy:?} {domain}: {reason}");
                    assert!(reason.contains(&format!("bob@{domain}")), "{reason}");
                }
                other => panic!("{policy:?} {domain}: {other:?}"),
            }
        }
    }
}

#[test]
fn a_damaged_store_is_temporary_not_a_refusal() {
    let f = fixture();
    f.store
        .damage_domain_record_for_tests("approved.example")
        .unwrap();
    assert!(matches!(
        f.outbound().decide("bob@approved.example"),
        Decision::Temporary { .. }
    ));
    // The other domains are unaffected.
    assert!(matches!(
        f.outbound().decide("bob@other.example"),
        Decision::Refuse { .. }
    ));
}

#[test]
fn the_signing_address_is_the_submitter_or_allowed_by_send_as() {
    let mut f = fixture();
    f.config.outbound.send_as = BTreeMap::from([(
        "assistant@agency.example".to_string(),
        vec!["boss@agency.example".to_string()],
    )]);
    let sign_as = |f: &Fixture, submitter: &str, from: &str| {
        let msg = format!("{from}Subject: s\r\n\r\nbody\r\n");
        f.outbound().signing_address(submitter, msg.as_bytes())
    };
    assert_eq!(
        sign_as(&f, "<User@Agency.Example>", "From: USER@agency.example\r\n").as_deref(),
        Ok("user@agency.example")
    );
    assert_eq!(
        sign_as(
            &f,
            "assistant@agency.example",
            "From: Boss <boss@agency.example>\r\n"
        )
        .as_deref(),
        Ok("boss@agency.example")
    );
    let refused = sign_as(&f, "user@agency.example", "From: boss@agency.example\r\n").unwrap_err();
    assert!(
        refused.starts_with(
            "you submitted as user@agency.example but the message says From: boss@agency.example"
        ),
        "{refused}"
    );
    assert!(refused.contains("send_as"), "{refused}");
    assert!(sign_as(
        &f,
        "boss@agency.example",
        "From: assistant@agency.example\r\n"
    )
    .is_err());
    for ambiguous in [
        "From: user@agency.example\r\nFrom: boss@agency.example\r\n",
        "From: user@agency.example, boss@agency.example\r\n",
        "",
    ] {
        let refused = sign_as(&f, "user@agency.example", ambiguous).unwrap_err();
        assert!(refused.contains("exactly one From: address"), "{refused}");
    }
    // Inside the domain but not a known address.
    f.config.internal_addresses = Some(vec!["boss@agency.example".into()]);
    let refused = sign_as(&f, "user@agency.example", "From: user@agency.example\r\n").unwrap_err();
    assert!(refused.contains("internal_addresses"), "{refused}");
}

#[test]
fn no_key_is_made_for_an_address_that_is_not_internal() {
    let f = fixture();
    f.store
        .init_proxy_ca("Test Proxy CA", &["agency.example".to_string()])
        .unwrap();
    assert!(matches!(
        f.outbound().signing_identity("ceo@bigbank.example"),
        Err(SignError::Refused(_))
    ));
    assert!(f
        .store
        .proxy_identities("ceo@bigbank.example")
        .unwrap()
        .is_empty());
    let identity = f
        .outbound()
        .signing_identity("user@agency.example")
        .unwrap();
    assert_eq!(identity.address, "user@agency.example");
    // A damaged key record may pass (restore from backup): temporary, not a refusal.
    let other = fixture();
    other
        .store
        .init_proxy_ca("Test Proxy CA", &["agency.example".to_string()])
        .unwrap();
    other
        .store
        .ensure_proxy_identity("user@agency.example")
        .unwrap();
    other
        .store
        .damage_proxy_identities_for_tests("user@agency.example")
        .unwrap();
    assert!(matches!(
        other.outbound().signing_identity("user@agency.example"),
        Err(SignError::Temporary(_))
    ));
}
