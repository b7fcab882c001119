//! Approved partner domains, domain normalisation and the free-mail refusal list.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sled::Transactional;
use smime_pki::{Address, Domain, DomainKind};

use crate::audit::{AuditDraft, AuditKind};
use crate::codec::{self, decode_record, encode_record};
use crate::error::{DomainError, StoreError};
use crate::store::Store;

/// What an approval allows for a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainPolicy {
    /// S/MIME is required for mail to and from the domain.
    Smime,
    /// The domain is approved for SMTP over (required) TLS instead of S/MIME.
    Tls,
}

impl std::fmt::Display for DomainPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DomainPolicy::Smime => "smime",
            DomainPolicy::Tls => "tls",
        })
    }
}

/// An approved partner domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovedDomain {
    pub domain: String,
    pub policy: DomainPolicy,
    pub approved_by: String,
    #[serde(with = "codec::rfc3339")]
    pub approved_at: SystemTime,
    pub note: String,
}

#[derive(Serialize, Deserialize)]
struct DomainRecord {
    v: u32,
    domain: String,
    policy: DomainPolicy,
    approved_by: String,
    approved_at: u64,
    note: String,
}

impl DomainRecord {
    fn to_public(&self) -> ApprovedDomain {
        ApprovedDomain {
            domain: self.domain.clone(),
            policy: self.policy,
            approved_by: self.approved_by.clone(),
            approved_at: codec::from_unix(self.approved_at),
            note: self.note.clone(),
        }
    }
}

/// Built-in free-mail and ISP domains. `name.*` matches that name under any public suffix
/// of one or two labels (yahoo.com, yahoo.co.uk). Subdomains of listed domains match too.
const FREEMAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.*",
    "ymail.com",
    "rocketmail.com",
    "hotmail.*",
    "outlook.*",
    "live.*",
    "msn.com",
    "passport.com",
    "aol.*",
    "aim.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "comcast.net",
    "verizon.net",
    "earthlink.net",
    "att.net",
    "sbcglobal.net",
    "bellsouth.net",
    "cox.net",
    "charter.net",
    "optonline.net",
    "frontier.com",
    "gmx.*",
    "web.de",
    "t-online.de",
    "freenet.de",
    "mail.ru",
    "inbox.ru",
    "list.ru",
    "bk.ru",
    "yandex.*",
    "ya.ru",
    "protonmail.com",
    "protonmail.ch",
    "proton.me",
    "pm.me",
    "tutanota.com",
    "tuta.io",
    "zoho.com",
    "zohomail.com",
    "mail.com",
    "fastmail.com",
    "fastmail.fm",
    "hushmail.com",
    "gmx.net",
    "orange.fr",
    "wanadoo.fr",
    "free.fr",
    "laposte.net",
    "sfr.fr",
    "libero.it",
    "virgilio.it",
    "tiscali.it",
    "btinternet.com",
    "sky.com",
    "virginmedia.com",
    "talktalk.net",
    "ntlworld.com",
    "bigpond.com",
    "optusnet.com.au",
    "shaw.ca",
    "rogers.com",
    "sympatico.ca",
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
    "naver.com",
    "daum.net",
    "rediffmail.com",
    "seznam.cz",
    "wp.pl",
    "o2.pl",
    "interia.pl",
    "onet.pl",
    "bluewin.ch",
    "telenet.be",
    "skynet.be",
    "ziggo.nl",
    "kpnmail.nl",
    "planet.nl",
    "xs4all.nl",
    "hetnet.nl",
];

/// A partner domain in the form the store keys it (the shared rules of
/// [`smime_pki::name`], at least two labels).
pub fn normalise_domain(s: &str) -> Result<String, DomainError> {
    Ok(Domain::parse(s, DomainKind::Registered)?.into_string())
}

/// Whether a (normalised) domain is a built-in free-mail or ISP domain.
pub fn is_freemail(domain: &str) -> bool {
    is_freemail_with(domain, &[])
}

pub(crate) fn is_freemail_with(domain: &str, extra: &[String]) -> bool {
    let domain = match normalise_domain(domain) {
        Ok(d) => d,
        Err(_) => domain.trim().trim_end_matches('.').to_ascii_lowercase(),
    };
    FREEMAIL
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .any(|pattern| matches_pattern(&domain, pattern))
}

fn matches_pattern(domain: &str, pattern: &str) -> bool {
    let pattern = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
    if let Some(name) = pattern.strip_suffix(".*") {
        // "name.*": find the label `name` followed by a short public suffix.
        let labels: Vec<&str> = domain.split('.').collect();
        labels.iter().enumerate().any(|(i, l)| {
            if *l != name {
                return false;
            }
            let rest = labels.get(i + 1..).unwrap_or(&[]);
            match rest {
                [_tld] => true,
                [sld, _tld] => sld.len() <= 3,
                _ => false,
            }
        })
    } else {
        domain == pattern || domain.ends_with(&format!(".{pattern}"))
    }
}

/// An e-mail address in the form the store keys it: `local@ascii-domain`, lower-cased.
pub(crate) fn normalise_address(address: &str) -> Result<String, StoreError> {
    Address::parse(address, DomainKind::Registered)
        .map(Address::into_string)
        .map_err(|_| StoreError::InvalidAddress(address.to_string()))
}

impl Store {
    /// Approve a partner domain. Idempotent: approving again with the same policy returns the
    /// existing approval unchanged; a different policy replaces it (and is audited).
    pub fn approve_domain(
        &self,
        domain: &str,
        policy: DomainPolicy,
        approved_by: &str,
        note: &str,
    ) -> Result<ApprovedDomain, StoreError> {
        let domain = normalise_domain(domain)?;
        if is_freemail_with(&domain, &self.inner.config.extra_freemail_domains) {
            self.audit_now(AuditDraft::new(
                AuditKind::DomainRefused,
                Some(domain.clone()),
                format!("approval by {approved_by} refused: free-mail or ISP domain"),
            ))?;
            return Err(DomainError::Freemail(domain).into());
        }
        let record = DomainRecord {
            v: codec::SCHEMA_VERSION,
            domain: domain.clone(),
            policy,
            approved_by: approved_by.to_string(),
            approved_at: codec::to_unix(SystemTime::now()),
            note: note.to_string(),
        };
        let bytes = encode_record(&record)?;
        let audit_id = self.inner.db.generate_id()?;
        let tree = &self.inner.domains;
        let audit = &self.inner.audit;
        let result = (tree, audit).transaction(|(t, a)| {
            if let Some(old) = t.get(domain.as_bytes())? {
                let old: DomainRecord = decode_record(&old)
                    .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                if old.policy == policy {
                    return Ok(old.to_public());
                }
            }
            t.insert(domain.as_bytes(), bytes.as_slice())?;
            let entry = AuditDraft::new(
                AuditKind::DomainApproved,
                Some(domain.clone()),
                format!("approved for {policy} by {approved_by}: {note}"),
            );
            crate::audit::append_in_tx(a, audit_id, &entry)
                .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
            Ok(record.to_public())
        });
        let approved = result.map_err(StoreError::from)?;
        self.inner.recent.clear();
        self.flush()?;
        Ok(approved)
    }

    /// Remove an approval. Returns whether the domain was approved.
    pub fn remove_domain(&self, domain: &str) -> Result<bool, StoreError> {
        let domain = normalise_domain(domain)?;
        let audit_id = self.inner.db.generate_id()?;
        let tree = &self.inner.domains;
        let audit = &self.inner.audit;
        let removed = (tree, audit)
            .transaction(|(t, a)| {
                if t.remove(domain.as_bytes())?.is_none() {
                    return Ok(false);
                }
                let entry = AuditDraft::new(
                    AuditKind::DomainRemoved,
                    Some(domain.clone()),
                    "approval removed".to_string(),
                );
                crate::audit::append_in_tx(a, audit_id, &entry)
                    .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                Ok(true)
            })
            .map_err(StoreError::from)?;
        if removed {
            self.inner.recent.clear();
            self.flush()?;
        }
        Ok(removed)
    }

    /// The approval for a domain, if any. Invalid names are an error, not `None`.
    pub fn domain(&self, domain: &str) -> Result<Option<ApprovedDomain>, StoreError> {
        let domain = normalise_domain(domain)?;
        match self.inner.domains.get(domain.as_bytes())? {
            Some(v) => Ok(Some(decode_record::<DomainRecord>(&v)?.to_public())),
            None => Ok(None),
        }
    }

    /// All approved domains, sorted by name.
    pub fn domains(&self) -> Result<Vec<ApprovedDomain>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.domains.iter() {
            let (_, v) = item?;
            out.push(decode_record::<DomainRecord>(&v)?.to_public());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(
            normalise_domain(""),
            Err(DomainError::Name(smime_pki::DomainError::Empty))
        );
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
}
