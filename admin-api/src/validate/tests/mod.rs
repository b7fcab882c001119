use super::*;

#[test]
fn addresses() {
    assert_eq!(
        address("Alice@Partner.Example").unwrap(),
        "alice@partner.example"
    );
    assert_eq!(
        address("a.b+tag@xn--bcher-kva.example").unwrap(),
        "a.b+tag@xn--bcher-kva.example"
    );
    assert!(address(&format!("{}@partner.example", "a".repeat(65))).is_err());
    for bad in [
        "alice",
        "@partner.example",
        "a b@partner.example",
        "a@bücher.example",
        "a@partner.example.",
        ".a@partner.example",
        "a@localhost",
        "a@partner.example extra",
        "a<b>@partner.example",
    ] {
        assert!(address(bad).is_err(), "{bad}");
    }
}

#[test]
fn domains() {
    assert_eq!(domain("Partner.Example").unwrap(), "partner.example");
    assert_eq!(domain("0.a").unwrap(), "0.a");
    for bad in [
        "",
        "partner",
        "partner.example.",
        " partner.example",
        "10.0.0.1",
        "a..b",
        "-a.example",
        "a.-b",
        "bücher.example",
        "a_b.example",
    ] {
        assert!(domain(bad).is_err(), "{bad}");
    }
    let idn = domain("bücher.example").unwrap_err();
    assert!(
        idn.detail.contains("xn--bcher-kva.example"),
        "{}",
        idn.detail
    );
    let long = format!("{}.example", ["a".repeat(63).as_str(); 4].join("."));
    assert!(domain(&long).is_err());
}

#[test]
fn fingerprints_and_pages() {
    let fp = "AB".repeat(32);
    assert_eq!(fingerprint(&fp).unwrap(), "ab".repeat(32));
    assert!(fingerprint("ab").is_err());
    assert!(fingerprint(&"zz".repeat(32)).is_err());
    assert_eq!(page(None, None).unwrap(), (0, 50));
    assert!(page(None, Some(0)).is_err());
    assert!(page(None, Some(MAX_LIMIT + 1)).is_err());
    assert!(page(Some(MAX_OFFSET + 1), None).is_err());
}

#[test]
fn notes() {
    assert!(note("partner since 2025\tok").is_ok());
    assert!(note("line\nbreak").is_err());
    assert!(note(&"x".repeat(MAX_NOTE_CHARS + 1)).is_err());
}
