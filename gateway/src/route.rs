//! Which way each recipient of a message goes, decided from the envelope alone.

use crate::address::{domain_of, normalise};
use crate::config::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// External sender → internal recipient: decrypt, verify, deliver to the internal system.
    Inbound,
    /// Internal sender → external recipient: sign, encrypt, deliver outward.
    Outbound,
    /// To the cert-query address: answered by the auto-responder.
    CertQuery,
    /// Internal → internal: crosses no boundary, passed to the internal system unchanged.
    Internal,
    /// External → external: we are not an open relay.
    Relay,
}

/// Route one recipient. The null sender (bounces) counts as external.
pub fn route(config: &Config, mail_from: &str, recipient: &str) -> Route {
    let recipient = normalise(recipient);
    if recipient == normalise(&config.cert_query_address) {
        return Route::CertQuery;
    }
    let internal =
        |address: &str| domain_of(address).is_some_and(|d| config.is_internal_domain(&d));
    match (internal(mail_from), internal(&recipient)) {
        (false, true) => Route::Inbound,
        (true, false) => Route::Outbound,
        (true, true) => Route::Internal,
        (false, false) => Route::Relay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_envelope() {
        let mut config = Config::default_for_run(std::path::Path::new("/tmp/x")).unwrap();
        config.internal_domains = vec!["agency.example".into()];
        config.cert_query_address = "cert-query@agency.example".into();
        assert_eq!(
            route(&config, "alice@partner.example", "User@Agency.Example"),
            Route::Inbound
        );
        assert_eq!(route(&config, "", "user@agency.example"), Route::Inbound);
        assert_eq!(
            route(&config, "user@agency.example", "alice@partner.example"),
            Route::Outbound
        );
        assert_eq!(
            route(
                &config,
                "alice@partner.example",
                "<Cert-Query@agency.example>"
            ),
            Route::CertQuery
        );
        assert_eq!(
            route(&config, "user@agency.example", "boss@agency.example"),
            Route::Internal
        );
        assert_eq!(route(&config, "a@x.example", "b@y.example"), Route::Relay);
    }
}
