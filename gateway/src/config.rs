//! The gateway's TOML configuration: parsing (unknown keys are errors), defaults, and
//! validation. Every error names the key it is about, so a typo is a clear startup error
//! rather than a silently ignored setting.
//!
//! Relative paths are resolved against the directory of the configuration file, so the
//! meaning of the file does not depend on the directory the gateway is started from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use smime_pki::{Address, Domain, DomainKind};

use crate::cidr::Cidr;
use crate::receive::{ServerConfig, SessionLimits};
use crate::relay::{NextHop, TlsMode};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Syntax errors, unknown keys, wrong types (the message names the key and the line).
    #[error("configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// What to do with an outbound recipient for whom no usable certificate exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyWithoutCertificate {
    /// Secure-only (the default): refuse the recipient with a reason.
    Refuse,
    /// Send in clear to domains listed in `plaintext_domains`; refuse the others.
    Plaintext,
}

/// STARTTLS towards a next hop, as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsSetting {
    None,
    Opportunistic,
    Required,
    RequiredVerify,
}

impl TlsSetting {
    pub fn mode(self) -> TlsMode {
        match self {
            TlsSetting::None => TlsMode::Disabled,
            TlsSetting::Opportunistic => TlsMode::Opportunistic,
            TlsSetting::Required => TlsMode::Required { verify: false },
            TlsSetting::RequiredVerify => TlsMode::Required { verify: true },
        }
    }
}

/// A size in bytes: an integer, or a string such as `"50 MiB"`, `"10M"`, `"512k"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(i64),
    Text(String),
}

impl Size {
    fn bytes(&self, key: &str) -> Result<usize, ConfigError> {
        let n: u64 = match self {
            Size::Bytes(n) => u64::try_from(*n).map_err(|_| invalid(key, "must be positive"))?,
            Size::Text(s) => {
                let s = s.trim();
                let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
                let (num, unit) = s.split_at(split);
                let num: u64 = num
                    .parse()
                    .map_err(|_| invalid(key, format!("{s:?} is not a size like \"50 MiB\"")))?;
                let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
                    "" | "b" => 1,
                    "k" | "kb" | "kib" => 1 << 10,
                    "m" | "mb" | "mib" => 1 << 20,
                    "g" | "gb" | "gib" => 1 << 30,
                    other => return Err(invalid(key, format!("unknown size unit {other:?}"))),
                };
                num.checked_mul(mult)
                    .ok_or_else(|| invalid(key, "size too large"))?
            }
        };
        if n == 0 {
            return Err(invalid(key, "must be greater than 0"));
        }
        usize::try_from(n).map_err(|_| invalid(key, "size too large"))
    }
}

// ---- the file as written -------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: PathBuf,
    hostname: Option<String>,
    internal_domains: Vec<String>,
    internal_addresses: Option<Vec<String>>,
    cert_query_address: Option<String>,
    authserv_id: Option<String>,
    postmaster_address: Option<String>,
    #[serde(default)]
    smtp: RawSmtp,
    #[serde(default)]
    inbound: RawInbound,
    #[serde(default)]
    outbound: RawOutbound,
    #[serde(default)]
    trust: RawTrust,
    #[serde(default)]
    cert_query: RawCertQuery,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    postfix: RawPostfix,
    #[serde(default)]
    lmtp: RawLmtp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    listen: Option<String>,
    max_message_size: Option<Size>,
    idle_timeout_secs: Option<u64>,
    command_timeout_secs: Option<u64>,
    max_sessions: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    trusted_clients: Option<Vec<String>>,
    max_session_secs: Option<u64>,
    min_data_rate: Option<u64>,
    max_commands_per_message: Option<usize>,
    max_recipients: Option<usize>,
    max_sessions_per_client: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHop {
    next_hop: Option<String>,
    tls: Option<TlsSetting>,
    ca_file: Option<PathBuf>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInbound {
    next_hop: Option<String>,
    tls: Option<TlsSetting>,
    ca_file: Option<PathBuf>,
    timeout_secs: Option<u64>,
    allow_next_hop_without_dsn: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbound {
    next_hop: Option<String>,
    tls: Option<TlsSetting>,
    ca_file: Option<PathBuf>,
    timeout_secs: Option<u64>,
    policy_without_certificate: Option<PolicyWithoutCertificate>,
    plaintext_domains: Option<Vec<String>>,
    send_as: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    anchor_files: Option<Vec<PathBuf>>,
    use_system_store: Option<bool>,
    intermediate_files: Option<Vec<PathBuf>>,
    crl_files: Option<Vec<PathBuf>>,
    revocation: Option<certstore::RevocationMode>,
    required_policies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertQuery {
    rate_limit_per_hour: Option<u32>,
    global_rate_limit_per_hour: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostfix {
    tls_policy_socketmap: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLmtp {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    proxy_cert_validity_days: Option<u32>,
    extra_freemail_domains: Option<Vec<String>>,
    proxy_key_type: Option<certstore::ProxyKeyType>,
}

// ---- the validated configuration -----------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Our host name: SMTP greeting, EHLO to next hops, `Reporting-MTA`.
    pub hostname: String,
    /// Lower-case domains of the organisation.
    pub internal_domains: Vec<String>,
    /// When set, only these (lower-case) addresses are known internal addresses.
    pub internal_addresses: Option<Vec<String>>,
    pub cert_query_address: String,
    /// authserv-id of our `Authentication-Results` headers.
    pub authserv_id: String,
    /// `From:` of delivery status notifications.
    pub postmaster_address: String,
    pub smtp: SmtpSettings,
    pub inbound: HopSettings,
    /// `[inbound] allow_next_hop_without_dsn`: relay decrypted mail to a next hop that cannot
    /// be asked for headers-only bounces (default false: such mail is deferred with 4xx).
    pub inbound_allow_next_hop_without_dsn: bool,
    pub outbound: OutboundSettings,
    pub trust: TrustSettings,
    pub cert_query: CertQuerySettings,
    pub admin: AdminSettings,
    pub store: StoreSettings,
    pub postfix: PostfixSettings,
    pub lmtp: LmtpSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub listen: SocketAddr,
    pub max_message_size: usize,
    pub idle_timeout: Duration,
    pub command_timeout: Duration,
    pub max_sessions: usize,
    /// Certificate chain and key (PEM) for STARTTLS; both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The only clients that may submit mail (the organisation's MTA).
    pub trusted_clients: Vec<Cidr>,
    /// Session lifetime, DATA rate, commands, recipients and sessions per client.
    pub limits: SessionLimits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopSettings {
    /// `host:port`.
    pub next_hop: String,
    pub tls: TlsSetting,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSettings {
    pub hop: HopSettings,
    pub policy_without_certificate: PolicyWithoutCertificate,
    /// Lower-case domains allowed in clear under the `plaintext` policy (ignored under
    /// `refuse`).
    pub plaintext_domains: Vec<String>,
    /// Envelope sender → the other `From:` addresses it may send (and be signed) as; all
    /// lower-case internal addresses.
    pub send_as: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustSettings {
    pub anchor_files: Vec<PathBuf>,
    /// Opt-in: the system bundle holds roots trusted for TLS servers, not for e-mail.
    pub use_system_store: bool,
    pub intermediate_files: Vec<PathBuf>,
    pub crl_files: Vec<PathBuf>,
    pub revocation: certstore::RevocationMode,
    /// Dotted OIDs; empty = any policy.
    pub required_policies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertQuerySettings {
    /// Replies per sender address per hour.
    pub rate_limit_per_hour: u32,
    /// Replies per hour to all senders together.
    pub global_rate_limit_per_hour: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    pub token_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostfixSettings {
    /// Where to serve Postfix's socketmap protocol for `smtp_tls_policy_maps`.
    pub tls_policy_socketmap: Option<SocketAddr>,
}

/// `[lmtp]`: the same service as `[smtp]` (limits, trusted clients, TLS) spoken as LMTP
/// (RFC 2033), which answers each recipient on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmtpSettings {
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    pub proxy_cert_validity_days: u32,
    pub extra_freemail_domains: Vec<String>,
    /// Key type of newly issued proxy identities (default RSA-2048, for Outlook).
    pub proxy_key_type: certstore::ProxyKeyType,
}

pub const DEFAULT_SMTP_LISTEN: &str = "127.0.0.1:10025";
pub const DEFAULT_INBOUND_NEXT_HOP: &str = "127.0.0.1:10026";
pub const DEFAULT_OUTBOUND_NEXT_HOP: &str = "127.0.0.1:10027";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8025";
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 50 * 1024 * 1024;
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;
pub const DEFAULT_COMMAND_TIMEOUT_SECS: u64 = 120;
pub const DEFAULT_MAX_SESSIONS: usize = 100;
const DEFAULT_HOP_TIMEOUT_SECS: u64 = 60;
const DEFAULT_RATE_LIMIT_PER_HOUR: u32 = 5;
const DEFAULT_GLOBAL_RATE_LIMIT_PER_HOUR: u32 = 200;
const DEFAULT_PROXY_CERT_VALIDITY_DAYS: u32 = 365;
/// Loopback only: the MTA that hands us mail runs on this host.
pub const DEFAULT_TRUSTED_CLIENTS: [&str; 2] = ["127.0.0.0/8", "::1"];

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::from_toml(&text, base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates `text`; relative paths are taken relative to `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<string>"),
            message: e.to_string(),
        })?;
        resolve(raw, base)
    }

    /// The configuration `make run` uses: everything on localhost, data under `data_dir`.
    /// Built as a file with only the required keys would be, so it gets the same defaults.
    pub fn default_for_run(data_dir: &Path) -> Result<Config, ConfigError> {
        let raw = RawConfig {
            data_dir: data_dir.to_path_buf(),
            hostname: Some("localhost".into()),
            internal_domains: vec!["agency.example".into()],
            ..RawConfig::default()
        };
        resolve(raw, Path::new("."))
    }

    /// Settings for [`crate::receive::serve`] (TLS is loaded by the caller from `smtp.tls`).
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            protocol: crate::receive::Protocol::Smtp,
            hostname: self.hostname.clone(),
            max_message_size: self.smtp.max_message_size,
            idle_timeout: self.smtp.idle_timeout,
            command_timeout: self.smtp.command_timeout,
            tls: None,
            max_sessions: self.smtp.max_sessions,
            trusted_clients: self.smtp.trusted_clients.clone(),
            limits: self.smtp.limits.clone(),
        }
    }

    pub fn inbound_hop(&self) -> NextHop {
        self.hop(&self.inbound)
    }

    pub fn outbound_hop(&self) -> NextHop {
        self.hop(&self.outbound.hop)
    }

    fn hop(&self, h: &HopSettings) -> NextHop {
        NextHop {
            address: h.next_hop.clone(),
            helo_name: self.hostname.clone(),
            tls: h.tls.mode(),
            timeout: h.timeout,
            ca_file: h.ca_file.clone(),
        }
    }

    /// The addresses that may hold a proxy identity: `internal_addresses` (plus the
    /// cert-query address, which signs its refusals) when set, else any in `internal_domains`.
    pub fn proxy_identity_addresses(&self) -> certstore::InternalAddresses {
        let listed = self.internal_addresses.as_ref().map(|list| {
            let mut list = list.clone();
            list.push(self.cert_query_address.clone());
            list
        });
        certstore::InternalAddresses::new(&self.internal_domains, listed.as_deref())
    }

    /// Whether `domain` (any case) is one of ours.
    pub fn is_internal_domain(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        self.internal_domains.contains(&d)
    }
}

pub fn default_trusted_clients() -> Vec<Cidr> {
    DEFAULT_TRUSTED_CLIENTS
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect()
}

// ---- validation ----------------------------------------------------------------------

fn resolve(raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
    let abs = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    if raw.data_dir.as_os_str().is_empty() {
        return Err(invalid("data_dir", "must not be empty"));
    }
    let data_dir = abs(&raw.data_dir);

    let hostname = match raw.hostname {
        Some(h) => h,
        None => system_hostname(),
    };
    let hostname = domain("hostname", &hostname)?;

    let internal_domains = raw
        .internal_domains
        .iter()
        .map(|d| domain("internal_domains", d))
        .collect::<Result<Vec<_>, _>>()?;
    let [first_domain, ..] = internal_domains.as_slice() else {
        return Err(invalid("internal_domains", "must list at least one domain"));
    };
    let in_internal = |key: &str, addr: &str| -> Result<String, ConfigError> {
        let a = address(key, addr)?;
        let d = a.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if internal_domains.iter().any(|i| i == d) {
            Ok(a)
        } else {
            Err(invalid(
                key,
                format!("{addr:?} is not in one of the internal_domains"),
            ))
        }
    };
    let internal_addresses = match raw.internal_addresses {
        Some(list) => Some(
            list.iter()
                .map(|a| in_internal("internal_addresses", a))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let cert_query_address = match raw.cert_query_address {
        Some(a) => in_internal("cert_query_address", &a)?,
        None => format!("cert-query@{first_domain}"),
    };
    let authserv_id = raw.authserv_id.unwrap_or_else(|| hostname.clone());
    if authserv_id.is_empty()
        || !authserv_id
            .chars()
            .all(|c| c.is_ascii_graphic() && !"();\"\\".contains(c))
    {
        return Err(invalid(
            "authserv_id",
            "must be a non-empty token without spaces, quotes, parentheses or ';'",
        ));
    }
    let postmaster_address = match raw.postmaster_address {
        Some(a) => address("postmaster_address", &a)?,
        None => format!("MAILER-DAEMON@{hostname}"),
    };

    // [smtp]
    let s = raw.smtp;
    let default_limits = SessionLimits::default();
    let positive = |key: &str, value: Option<usize>, default: usize| match value {
        Some(0) => Err(invalid(key, "must be greater than 0")),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    let limits = SessionLimits {
        max_session_time: secs(
            "smtp.max_session_secs",
            s.max_session_secs
                .unwrap_or(default_limits.max_session_time.as_secs()),
        )?,
        min_data_rate: match s.min_data_rate {
            Some(0) => return Err(invalid("smtp.min_data_rate", "must be greater than 0")),
            Some(n) => n,
            None => default_limits.min_data_rate,
        },
        max_commands_per_message: positive(
            "smtp.max_commands_per_message",
            s.max_commands_per_message,
            default_limits.max_commands_per_message,
        )?,
        max_recipients: positive(
            "smtp.max_recipients",
            s.max_recipients,
            default_limits.max_recipients,
        )?,
        max_sessions_per_client: positive(
            "smtp.max_sessions_per_client",
            s.max_sessions_per_client,
            default_limits.max_sessions_per_client,
        )?,
    };
    let smtp = SmtpSettings {
        listen: socket(
            "smtp.listen",
            s.listen.as_deref().unwrap_or(DEFAULT_SMTP_LISTEN),
        )?,
        max_message_size: match s.max_message_size {
            Some(size) => size.bytes("smtp.max_message_size")?,
            None => DEFAULT_MAX_MESSAGE_SIZE,
        },
        idle_timeout: secs(
            "smtp.idle_timeout_secs",
            s.idle_timeout_secs.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS),
        )?,
        command_timeout: secs(
            "smtp.command_timeout_secs",
            s.command_timeout_secs
                .unwrap_or(DEFAULT_COMMAND_TIMEOUT_SECS),
        )?,
        max_sessions: match s.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS) {
            0 => return Err(invalid("smtp.max_sessions", "must be greater than 0")),
            n => n,
        },
        tls: match (s.tls_cert, s.tls_key) {
            (None, None) => None,
            (Some(c), Some(k)) => Some((
                existing_file("smtp.tls_cert", &abs(&c))?,
                existing_file("smtp.tls_key", &abs(&k))?,
            )),
            (Some(_), None) => {
                return Err(invalid(
                    "smtp.tls_key",
                    "tls_cert is set but tls_key is not",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "smtp.tls_cert",
                    "tls_key is set but tls_cert is not",
                ))
            }
        },
        trusted_clients: match s.trusted_clients {
            Some(list) => list
                .iter()
                .map(|c| {
                    c.parse::<Cidr>()
                        .map_err(|e| invalid("smtp.trusted_clients", e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => default_trusted_clients(),
        },
        limits,
    };
    if smtp.trusted_clients.is_empty() {
        return Err(invalid(
            "smtp.trusted_clients",
            "must list at least one network (the MTA that hands us mail)",
        ));
    }
    if smtp.max_message_size > (1 << 30) {
        return Err(invalid("smtp.max_message_size", "must be at most 1 GiB"));
    }

    let hop = |section: &str, h: RawHop, default: &str| -> Result<HopSettings, ConfigError> {
        let key = |k: &str| format!("{section}.{k}");
        Ok(HopSettings {
            next_hop: host_port(&key("next_hop"), h.next_hop.as_deref().unwrap_or(default))?,
            tls: h.tls.unwrap_or(TlsSetting::Opportunistic),
            ca_file: match h.ca_file {
                Some(p) => Some(existing_file(&key("ca_file"), &abs(&p))?),
                None => None,
            },
            timeout: secs(
                &key("timeout_secs"),
                h.timeout_secs.unwrap_or(DEFAULT_HOP_TIMEOUT_SECS),
            )?,
        })
    };
    let i = raw.inbound;
    let inbound_allow_next_hop_without_dsn = i.allow_next_hop_without_dsn.unwrap_or(false);
    let inbound = hop(
        "inbound",
        RawHop {
            next_hop: i.next_hop,
            tls: i.tls,
            ca_file: i.ca_file,
            timeout_secs: i.timeout_secs,
        },
        DEFAULT_INBOUND_NEXT_HOP,
    )?;
    let o = raw.outbound;
    let outbound = OutboundSettings {
        hop: hop(
            "outbound",
            RawHop {
                next_hop: o.next_hop,
                tls: o.tls,
                ca_file: o.ca_file,
                timeout_secs: o.timeout_secs,
            },
            DEFAULT_OUTBOUND_NEXT_HOP,
        )?,
        policy_without_certificate: o
            .policy_without_certificate
            .unwrap_or(PolicyWithoutCertificate::Refuse),
        plaintext_domains: o
            .plaintext_domains
            .unwrap_or_default()
            .iter()
            .map(|d| domain("outbound.plaintext_domains", d))
            .collect::<Result<Vec<_>, _>>()?,
        send_as: {
            let mut map = BTreeMap::new();
            for (submitter, allowed) in o.send_as.unwrap_or_default() {
                let submitter = in_internal("outbound.send_as", &submitter)?;
                let allowed = allowed
                    .iter()
                    .map(|a| in_internal("outbound.send_as", a))
                    .collect::<Result<Vec<_>, _>>()?;
                map.entry(submitter)
                    .or_insert_with(Vec::new)
                    .extend(allowed);
            }
            map
        },
    };

    let t = raw.trust;
    let files = |key: &str, list: Option<Vec<PathBuf>>| -> Result<Vec<PathBuf>, ConfigError> {
        list.unwrap_or_default()
            .iter()
            .map(|p| existing_file(key, &abs(p)))
            .collect()
    };
    let trust = TrustSettings {
        anchor_files: files("trust.anchor_files", t.anchor_files)?,
        use_system_store: t.use_system_store.unwrap_or(false),
        intermediate_files: files("trust.intermediate_files", t.intermediate_files)?,
        crl_files: files("trust.crl_files", t.crl_files)?,
        revocation: t.revocation.unwrap_or_default(),
        required_policies: t
            .required_policies
            .unwrap_or_default()
            .into_iter()
            .map(|oid| {
                let dotted = !oid.is_empty()
                    && oid.split('.').count() >= 2
                    && oid
                        .split('.')
                        .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
                if dotted {
                    Ok(oid)
                } else {
                    Err(invalid(
                        "trust.required_policies",
                        format!("{oid:?} is not a dotted object identifier"),
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
    };

    let cert_query = CertQuerySettings {
        rate_limit_per_hour: match raw
            .cert_query
            .rate_limit_per_hour
            .unwrap_or(DEFAULT_RATE_LIMIT_PER_HOUR)
        {
            0 => {
                return Err(invalid(
                    "cert_query.rate_limit_per_hour",
                    "must be greater than 0",
                ))
            }
            n => n,
        },
        global_rate_limit_per_hour: match raw
            .cert_query
            .global_rate_limit_per_hour
            .unwrap_or(DEFAULT_GLOBAL_RATE_LIMIT_PER_HOUR)
        {
            0 => {
                return Err(invalid(
                    "cert_query.global_rate_limit_per_hour",
                    "must be greater than 0",
                ))
            }
            n => n,
        },
    };

    let admin = AdminSettings {
        listen: socket(
            "admin.listen",
            raw.admin.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN),
        )?,
        token_file: match raw.admin.token_file {
            Some(p) if p.as_os_str().is_empty() => {
                return Err(invalid("admin.token_file", "must not be empty"))
            }
            Some(p) => abs(&p),
            None => data_dir.join("admin.token"),
        },
    };

    let store = StoreSettings {
        proxy_cert_validity_days: match raw
            .store
            .proxy_cert_validity_days
            .unwrap_or(DEFAULT_PROXY_CERT_VALIDITY_DAYS)
        {
            n @ 1..=3650 => n,
            _ => {
                return Err(invalid(
                    "store.proxy_cert_validity_days",
                    "must be between 1 and 3650",
                ))
            }
        },
        extra_freemail_domains: raw
            .store
            .extra_freemail_domains
            .unwrap_or_default()
            .iter()
            .map(|d| domain("store.extra_freemail_domains", d))
            .collect::<Result<Vec<_>, _>>()?,
        proxy_key_type: raw.store.proxy_key_type.unwrap_or_default(),
    };

    let postfix = PostfixSettings {
        tls_policy_socketmap: match raw.postfix.tls_policy_socketmap {
            Some(s) => Some(socket("postfix.tls_policy_socketmap", &s)?),
            None => None,
        },
    };

    let lmtp = LmtpSettings {
        listen: match raw.lmtp.listen {
            Some(s) => Some(socket("lmtp.listen", &s)?),
            None => None,
        },
    };

    Ok(Config {
        data_dir,
        hostname,
        internal_domains,
        internal_addresses,
        cert_query_address,
        authserv_id,
        postmaster_address,
        smtp,
        inbound,
        inbound_allow_next_hop_without_dsn,
        outbound,
        trust,
        cert_query,
        admin,
        store,
        postfix,
        lmtp,
    })
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| Domain::parse(s, DomainKind::Host).is_ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// A domain name in its ASCII form (lower-case, A-labels).
fn domain(key: &str, d: &str) -> Result<String, ConfigError> {
    Domain::parse(d, DomainKind::Host)
        .map(Domain::into_string)
        .map_err(|e| invalid(key, e.to_string()))
}

/// An address in its compared form. ASCII only: we write these addresses into envelopes and
/// headers, which must not need SMTPUTF8.
fn address(key: &str, a: &str) -> Result<String, ConfigError> {
    match Address::parse(a, DomainKind::Host) {
        Ok(parsed) if a.is_ascii() => Ok(parsed.into_string()),
        Ok(_) => Err(invalid(key, format!("{a:?} is not an ASCII mail address"))),
        Err(e) => Err(invalid(key, e.to_string())),
    }
}

fn socket(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse()
        .map_err(|_| invalid(key, format!("{s:?} is not an IP:port address")))
}

fn host_port(key: &str, s: &str) -> Result<String, ConfigError> {
    let bad = || invalid(key, format!("{s:?} is not host:port"));
    if s.parse::<SocketAddr>().is_ok() {
        return Ok(s.to_string());
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(bad()),
    }
    if Domain::parse(host, DomainKind::Host).is_ok() {
        Ok(s.to_string())
    } else {
        Err(bad())
    }
}

fn secs(key: &str, n: u64) -> Result<Duration, ConfigError> {
    if n == 0 || n > 86_400 {
        Err(invalid(key, "must be between 1 and 86400 seconds"))
    } else {
        Ok(Duration::from_secs(n))
    }
}

fn existing_file(key: &str, p: &Path) -> Result<PathBuf, ConfigError> {
    if p.is_file() {
        Ok(p.to_path_buf())
    } else {
        Err(invalid(
            key,
            format!("{} does not exist or is not a file", p.display()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "data_dir = \"data\"\nhostname = \"gw.agency.example\"\ninternal_domains = [\"Agency.Example\"]\n";

    fn load(extra: &str) -> Result<Config, ConfigError> {
        Config::from_toml(&format!("{MINIMAL}{extra}"), Path::new("/etc/gw"))
    }

    fn err(extra: &str) -> String {
        load(extra).unwrap_err().to_string()
    }

    #[test]
    fn proxy_key_type_is_read_and_checked() {
        let c = load("[store]\nproxy_key_type = \"p-256\"\n").unwrap();
        assert_eq!(c.store.proxy_key_type, certstore::ProxyKeyType::P256);
        let c = load("[store]\nproxy_key_type = \"rsa-3072\"\n").unwrap();
        assert_eq!(c.store.proxy_key_type, certstore::ProxyKeyType::Rsa3072);
        let e = err("[store]\nproxy_key_type = \"p-192\"\n");
        assert!(e.contains("rsa-2048"), "{e}");
    }

    #[test]
    fn minimal_file_gets_safe_defaults() {
        let c = load("").unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/etc/gw/data"));
        assert_eq!(c.internal_domains, vec!["agency.example"]);
        assert_eq!(c.cert_query_address, "cert-query@agency.example");
        assert_eq!(c.authserv_id, "gw.agency.example");
        assert_eq!(c.postmaster_address, "MAILER-DAEMON@gw.agency.example");
        assert_eq!(c.smtp.listen.to_string(), "127.0.0.1:10025");
        assert_eq!(c.smtp.max_message_size, 50 << 20);
        assert_eq!(c.smtp.tls, None);
        assert_eq!(c.inbound.next_hop, "127.0.0.1:10026");
        assert_eq!(c.outbound.hop.next_hop, "127.0.0.1:10027");
        assert_eq!(
            c.outbound.policy_without_certificate,
            PolicyWithoutCertificate::Refuse
        );
        assert!(
            !c.trust.use_system_store,
            "explicit anchors only by default"
        );
        assert_eq!(c.trust.revocation, certstore::RevocationMode::SoftFail);
        assert!(c.trust.required_policies.is_empty());
        assert_eq!(c.cert_query.rate_limit_per_hour, 5);
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:8025");
        assert_eq!(
            c.admin.token_file,
            PathBuf::from("/etc/gw/data/admin.token")
        );
        assert_eq!(c.store.proxy_cert_validity_days, 365);
        assert_eq!(c.store.proxy_key_type, certstore::ProxyKeyType::Rsa2048);
        assert_eq!(c.inbound_hop().tls, TlsMode::Opportunistic);
        assert!(c.is_internal_domain("AGENCY.example"));
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        assert!(err("colour = 1\n").contains("colour"));
        assert!(err("[smtp]\nlisten_addr = \"127.0.0.1:25\"\n").contains("listen_addr"));
        assert!(err("[outbound]\npolicy = \"refuse\"\n").contains("policy"));
        assert!(err("[nonsense]\n").contains("nonsense"));
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (extra, key) in [
            ("[smtp]\nlisten = \"localhost\"\n", "smtp.listen"),
            ("[smtp]\nmax_message_size = 0\n", "smtp.max_message_size"),
            (
                "[smtp]\nmax_message_size = \"12 parsecs\"\n",
                "smtp.max_message_size",
            ),
            ("[smtp]\nidle_timeout_secs = 0\n", "smtp.idle_timeout_secs"),
            ("[smtp]\nmax_sessions = 0\n", "smtp.max_sessions"),
            (
                "[smtp]\ntls_cert = \"/nonexistent.pem\"\ntls_key = \"/nonexistent.key\"\n",
                "smtp.tls_cert",
            ),
            ("[smtp]\ntls_cert = \"/etc/hostname\"\n", "smtp.tls_key"),
            (
                "[inbound]\nnext_hop = \"mail.internal\"\n",
                "inbound.next_hop",
            ),
            ("[outbound]\nnext_hop = \"mx:0\"\n", "outbound.next_hop"),
            (
                "[outbound]\nplaintext_domains = [\"bad domain\"]\n",
                "outbound.plaintext_domains",
            ),
            (
                "[trust]\nanchor_files = [\"missing.pem\"]\n",
                "trust.anchor_files",
            ),
            (
                "[cert_query]\nrate_limit_per_hour = 0\n",
                "cert_query.rate_limit_per_hour",
            ),
            ("[admin]\nlisten = \"nope\"\n", "admin.listen"),
            (
                "[store]\nproxy_cert_validity_days = 0\n",
                "store.proxy_cert_validity_days",
            ),
            (
                "internal_addresses = [\"x@other.example\"]\n",
                "internal_addresses",
            ),
        ] {
            let e = err(extra);
            assert!(e.contains(&format!("`{key}`")), "{extra:?} gave {e}");
        }
        for (text, key) in [
        ("data_dir = \"d\"\nhostname = \"bad host\"\ninternal_domains = [\"a.example\"]\n", "hostname"),
        ("data_dir = \"d\"\nhostname = \"h.example\"\ninternal_domains = []\n", "internal_domains"),
        ("data_dir = \"d\"\nhostname = \"h.example\"\ninternal_domains = [\"a.example\"]\ncert_query_address = \"cq@b.example\"\n", "cert_query_address"),
        ("data_dir = \"d\"\nhostname = \"h.example\"\ninternal_domains = [\"a.example\"]\nauthserv_id = \"a b\"\n", "authserv_id"),
    ] {
        let e = Config::from_toml(text, Path::new(".")).unwrap_err().to_string();
        assert!(e.contains(&format!("`{key}`")), "{text:?} gave {e}");
    }
        // Wrong types and enum values are parse errors that name the key.
        assert!(err("[outbound]\npolicy_without_certificate = \"yolo\"\n")
            .contains("policy_without_certificate"));
        assert!(err("[smtp]\nmax_sessions = \"many\"\n").contains("max_sessions"));
        // Required keys.
        let e = Config::from_toml("hostname = \"h.example\"\n", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("data_dir"), "{e}");
    }

    #[test]
    fn sizes_and_modes() {
        let c = load("[smtp]\nmax_message_size = \"10 MiB\"\n[outbound]\ntls = \"required-verify\"\npolicy_without_certificate = \"plaintext\"\nplaintext_domains = [\"Partner.Example\"]\n").unwrap();
        assert_eq!(c.smtp.max_message_size, 10 << 20);
        assert_eq!(c.outbound_hop().tls, TlsMode::Required { verify: true });
        assert_eq!(c.outbound.plaintext_domains, vec!["partner.example"]);
        assert_eq!(
            load("[smtp]\nmax_message_size = 1000\n")
                .unwrap()
                .smtp
                .max_message_size,
            1000
        );
    }

    #[test]
    fn default_for_run_uses_localhost_ports() {
        let c = Config::default_for_run(Path::new("/tmp/run-data")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/run-data"));
        assert_eq!(c.smtp.listen.to_string(), "127.0.0.1:10025");
        assert_eq!(c.inbound.next_hop, "127.0.0.1:10026");
        assert_eq!(c.outbound.hop.next_hop, "127.0.0.1:10027");
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:8025");
        assert_eq!(c.hostname, "localhost");
        assert_eq!(c.internal_domains, vec!["agency.example"]);
        assert_eq!(c.cert_query_address, "cert-query@agency.example");
        assert_eq!(
            c.admin.token_file,
            PathBuf::from("/tmp/run-data/admin.token")
        );
        // The same defaults as a file that sets only the required keys.
        let file = Config::from_toml(
            "data_dir = \"/tmp/run-data\"\nhostname = \"localhost\"\ninternal_domains = [\"agency.example\"]\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c, file);
        // The SMTP server's own defaults are the file's.
        let (ours, server) = (c.server_config(), ServerConfig::new("localhost"));
        assert_eq!(
            (
                ours.max_message_size,
                ours.idle_timeout,
                ours.command_timeout
            ),
            (
                server.max_message_size,
                server.idle_timeout,
                server.command_timeout
            )
        );
        assert_eq!(
            (ours.max_sessions, &ours.trusted_clients, &ours.limits),
            (server.max_sessions, &server.trusted_clients, &server.limits)
        );
    }

    #[test]
    fn example_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway.example.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(
            c.outbound.policy_without_certificate,
            PolicyWithoutCertificate::Refuse
        );
        assert_eq!(c.smtp.max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
        assert_eq!(
            c.lmtp.listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:10024")
        );
    }

    #[test]
    fn lmtp_is_off_unless_a_listener_is_set() {
        assert_eq!(load("").unwrap().lmtp.listen, None);
        let e = load("[lmtp]\nlisten = \"nowhere\"").unwrap_err();
        assert!(e.to_string().contains("lmtp.listen"), "{e}");
        assert!(load("[lmtp]\nport = 1").is_err());
    }

    #[test]
    fn load_reports_the_file() {
        let e = Config::load(Path::new("/nonexistent/gw.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/gw.toml"));
    }

    #[test]
    fn trust_settings_default_to_loopback_and_name_their_keys() {
        let c = load("").unwrap();
        let shown: Vec<String> = c
            .smtp
            .trusted_clients
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(shown, ["127.0.0.0/8", "::1/128"]);
        assert_eq!(c.server_config().trusted_clients, c.smtp.trusted_clients);
        assert!(c.outbound.send_as.is_empty());
        assert_eq!(c.postfix.tls_policy_socketmap, None);

        let c = load(
            "[smtp]\ntrusted_clients = [\"10.0.0.0/8\", \"192.0.2.25\"]\n\
         [outbound]\nsend_as = { \"Assistant@agency.example\" = [\"Boss@Agency.Example\"] }\n\
         [postfix]\ntls_policy_socketmap = \"127.0.0.1:10028\"\n",
        )
        .unwrap();
        assert_eq!(c.smtp.trusted_clients.len(), 2);
        assert_eq!(
            c.outbound.send_as.get("assistant@agency.example"),
            Some(&vec!["boss@agency.example".to_string()])
        );
        assert_eq!(
            c.postfix
                .tls_policy_socketmap
                .map(|a| a.to_string())
                .as_deref(),
            Some("127.0.0.1:10028")
        );

        for (extra, key) in [
            (
                "[smtp]\ntrusted_clients = [\"localhost\"]\n",
                "smtp.trusted_clients",
            ),
            (
                "[smtp]\ntrusted_clients = [\"10.0.0.0/33\"]\n",
                "smtp.trusted_clients",
            ),
            ("[smtp]\ntrusted_clients = []\n", "smtp.trusted_clients"),
            (
                "[outbound]\nsend_as = { \"a@agency.example\" = [\"ceo@bigbank.example\"] }\n",
                "outbound.send_as",
            ),
            (
                "[outbound]\nsend_as = { \"a@elsewhere.example\" = [\"b@agency.example\"] }\n",
                "outbound.send_as",
            ),
            (
                "[postfix]\ntls_policy_socketmap = \"somewhere\"\n",
                "postfix.tls_policy_socketmap",
            ),
        ] {
            let e = err(extra);
            assert!(e.contains(&format!("`{key}`")), "{extra:?} gave {e}");
        }
    }

    #[test]
    fn proxy_identities_follow_internal_addresses() {
        let open = load("").unwrap().proxy_identity_addresses();
        assert!(open.check("anyone@agency.example").is_ok());
        assert!(open.check("ceo@bigbank.example").is_err());
        let listed = load("internal_addresses = [\"staff@agency.example\"]\n")
            .unwrap()
            .proxy_identity_addresses();
        assert!(listed.check("staff@agency.example").is_ok());
        // The cert-query address signs its refusals.
        assert!(listed.check("cert-query@agency.example").is_ok());
        assert!(listed.check("anyone@agency.example").is_err());
    }

    #[test]
    fn decrypted_mail_needs_a_dsn_capable_next_hop_unless_allowed() {
        assert!(!load("").unwrap().inbound_allow_next_hop_without_dsn);
        let c = load("[inbound]\nnext_hop = \"10.0.0.5:25\"\nallow_next_hop_without_dsn = true\n")
            .unwrap();
        assert!(c.inbound_allow_next_hop_without_dsn);
        assert_eq!(c.inbound.next_hop, "10.0.0.5:25");
        assert!(err("[outbound]\nallow_next_hop_without_dsn = true\n")
            .contains("allow_next_hop_without_dsn"));
    }

    #[test]
    fn abuse_limits_have_safe_defaults_and_refuse_zero() {
        let c = load("").unwrap();
        assert_eq!(c.smtp.limits, SessionLimits::default());
        assert_eq!(c.cert_query.global_rate_limit_per_hour, 200);
        let c = load(
            "[smtp]\nmax_session_secs = 60\nmin_data_rate = 10\nmax_commands_per_message = 7\n\
         max_recipients = 3\nmax_sessions_per_client = 2\n\
         [cert_query]\nglobal_rate_limit_per_hour = 9\n",
        )
        .unwrap();
        let limits = c.server_config().limits;
        assert_eq!(limits.max_session_time, Duration::from_secs(60));
        assert_eq!(
            (
                limits.min_data_rate,
                limits.max_commands_per_message,
                limits.max_recipients,
                limits.max_sessions_per_client
            ),
            (10, 7, 3, 2)
        );
        assert_eq!(c.cert_query.global_rate_limit_per_hour, 9);
        for key in [
            "max_session_secs",
            "min_data_rate",
            "max_commands_per_message",
            "max_recipients",
            "max_sessions_per_client",
        ] {
            let e = err(&format!("[smtp]\n{key} = 0\n"));
            assert!(e.contains(&format!("`smtp.{key}`")), "{e}");
        }
        let e = err("[cert_query]\nglobal_rate_limit_per_hour = 0\n");
        assert!(e.contains("`cert_query.global_rate_limit_per_hour`"), "{e}");
    }
}
