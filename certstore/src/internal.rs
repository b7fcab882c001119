//! Which addresses may hold a proxy identity: only the organisation's own. Every way of
//! issuing one (mail flow, cert-query, admin API, CLI) asks [`InternalAddresses::check`], so a
//! proxy certificate is never issued for a partner's or an invented address.

/// The organisation's domains and, optionally, the complete list of its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalAddresses {
    domains: Vec<String>,
    addresses: Option<Vec<String>>,
}

/// Why an address may not hold a proxy identity. `Display` is a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotInternal {
    #[error("{address} is not in the organisation's domains ({domains})")]
    OutsideDomains { address: String, domains: String },
    #[error("{address} is not one of the organisation's addresses (internal_addresses)")]
    Unlisted { address: String },
}

impl InternalAddresses {
    /// `domains` and `addresses` are compared case-insensitively. With `addresses`, only
    /// those (and only inside `domains`) are internal; without, any address in `domains` is.
    pub fn new(domains: &[String], addresses: Option<&[String]>) -> Self {
        let lower = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect()
        };
        InternalAddresses {
            domains: lower(domains),
            addresses: addresses.map(lower),
        }
    }

    /// `Ok` when `address` may hold a proxy identity.
    pub fn check(&self, address: &str) -> Result<(), NotInternal> {
        let address = address.trim().to_ascii_lowercase();
        let domain = address
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.'))
            .unwrap_or("");
        if !self.domains.iter().any(|d| d == domain) {
            return Err(NotInternal::OutsideDomains {
                address,
                domains: self.domains.join(", "),
            });
        }
        match &self.addresses {
            Some(list) if !list.contains(&address) => Err(NotInternal::Unlisted { address }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
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
}
