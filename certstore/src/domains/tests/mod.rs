use super::*;

#[test]
fn normalises() {
    assert_eq!(
        normalise_domain("Partner.Example.").unwrap(),
        "partner.example"
    );
    assert_eq!(
        normalise_domain(" bücher.example ").unwrap(),
        "xn--bcher-kva.example"
    );
    assert_eq!(normalise_domain(""), Err(DomainError::Empty));
    assert!(normalise_domain("localhost").is_err());
    assert!(normalise_domain("a..b").is_err());
    assert!(normalise_domain("-a.example").is_err());
    assert!(normalise_domain("a b.example").is_err());
    assert!(normalise_domain("user@x.example").is_err());
    assert!(normalise_domain("10.0.0.1").is_err());
    assert!(normalise_domain(&format!("{}.example", "a".repeat(64))).is_err());
}

#[test]
fn freemail() {
    for d in [
        "gmail.com",
        "GMAIL.COM.",
        "yahoo.co.uk",
        "yahoo.fr",
        "mail.yahoo.com",
        "gmx.de",
        "comcast.net",
        "icloud.com",
        "hotmail.co.uk",
    ] {
        assert!(is_freemail(d), "{d}");
    }
    for d in [
        "partner.example",
        "notgmail.com",
        "yahoo.partner.example.org",
    ] {
        assert!(!is_freemail(d), "{d}");
    }
    assert!(is_freemail_with("isp.example", &["isp.example".into()]));
}

#[test]
fn addresses() {
    assert_eq!(
        normalise_address("Alice@Partner.Example").unwrap(),
        "alice@partner.example"
    );
    assert!(normalise_address("alice").is_err());
    assert!(normalise_address("@partner.example").is_err());
    assert!(normalise_address("a b@partner.example").is_err());
}
