use super::*;

fn list(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn only_listed_addresses_inside_the_domains() {
    let domains = list(&["Agency.Example"]);
    let any = InternalAddresses::new(&domains, None);
    assert_eq!(any.check("Someone@agency.example"), Ok(()));
    assert!(matches!(
        any.check("ceo@bigbank.example"),
        Err(NotInternal::OutsideDomains { .. })
    ));
    assert!(any
        .check("ceo@bigbank.example")
        .unwrap_err()
        .to_string()
        .contains("not in the organisation's domains (agency.example)"));
    assert!(any.check("no-at-sign").is_err());
    // A look-alike subdomain is not ours.
    assert!(any.check("x@evil.agency.example").is_err());

    let staff = list(&["boss@agency.example", "User@Agency.Example"]);
    let listed = InternalAddresses::new(&domains, Some(&staff));
    assert_eq!(listed.check("user@agency.example"), Ok(()));
    assert_eq!(listed.check("BOSS@agency.example"), Ok(()));
    assert!(matches!(
        listed.check("invented@agency.example"),
        Err(NotInternal::Unlisted { .. })
    ));
    assert!(listed.check("user@bigbank.example").is_err());
}
