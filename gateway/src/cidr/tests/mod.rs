use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

#[test]
fn networks_contain_their_addresses_only() {
    let lo: Cidr = "127.0.0.0/8".parse().unwrap();
    assert!(lo.contains(ip("127.0.0.1")));
    assert!(lo.contains(ip("127.255.0.9")));
    assert!(lo.contains(ip("::ffff:127.0.0.1")));
    assert!(!lo.contains(ip("128.0.0.1")));
    assert!(!lo.contains(ip("::1")));
    let odd: Cidr = "10.1.2.128/25".parse().unwrap();
    assert!(odd.contains(ip("10.1.2.200")));
    assert!(!odd.contains(ip("10.1.2.127")));
    let host: Cidr = "::1".parse().unwrap();
    assert_eq!(host.to_string(), "::1/128");
    assert!(host.contains(ip("::1")));
    assert!(!host.contains(ip("::2")));
    let all: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains(ip("192.0.2.1")));
    for bad in [
        "",
        "127.0.0.1/33",
        "::1/129",
        "localhost",
        "10.0.0.0/",
        "10.0.0.0/-1",
    ] {
        assert!(bad.parse::<Cidr>().is_err(), "{bad}");
    }
}
