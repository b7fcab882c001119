//! IP networks in CIDR notation (`127.0.0.0/8`, `::1`, `10.1.2.3/32`), for the list of
//! clients allowed to submit mail.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or network like \"127.0.0.0/8\" or \"::1\"")]
pub struct CidrError(String);

impl Cidr {
    /// Whether `addr` is inside the network. IPv4 clients seen on an IPv6 socket
    /// (`::ffff:127.0.0.1`) count as the IPv4 address they are.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                prefix_matches(&net.octets(), &a.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                prefix_matches(&net.octets(), &a.octets(), self.prefix)
            }
            _ => false,
        }
    }

    /// Whether any of `networks` contains `addr`.
    pub fn any_contains(networks: &[Cidr], addr: IpAddr) -> bool {
        networks.iter().any(|n| n.contains(addr))
    }
}

fn prefix_matches(net: &[u8], addr: &[u8], prefix: u8) -> bool {
    let mut remaining = u32::from(prefix); // prefix bits not yet compared
    net.iter().zip(addr).all(|(n, a)| {
        let bits = remaining.min(8);
        remaining -= bits;
        // The byte's top `bits` bits; none once past the prefix.
        let mask = u8::MAX.checked_shl(8 - bits).unwrap_or(0);
        (n & mask) == (a & mask)
    })
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError(s.to_string());
        let (ip, prefix) = match s.trim().split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s.trim(), None),
        };
        let network: IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr {
            network: network.to_canonical(),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
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
}
