//! Operator commands over the store: export the proxy CA, partner certificates, proxy
//! certificates, approved domains. With the gateway stopped they open the store directly;
//! while it runs (sled's lock is held) they go through its admin API and print the same.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use admin_api::views;
use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};

use certstore::{DomainPolicy, StoreError};
use gateway::config::Config;

use super::admin_client::{encode, problem_detail, AdminClient};
use super::service::{load_config, open_store, proxy_ca_name, write_proxy_ca_pem};

#[derive(Args)]
pub struct StoreArgs {
    #[arg(long)]
    config: PathBuf,
}

#[derive(Args)]
pub struct ExportCaArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// DER instead of PEM.
    #[arg(long)]
    der: bool,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Export the private key too (PEM). Only for moving the CA to another gateway; the
    /// `--out` file is then created with mode 0600.
    #[arg(long)]
    with_private_key: bool,
    /// Retired proxy CAs too (PEM, current first): what verifies mail signed before a rotation.
    #[arg(long, conflicts_with_all = ["der", "with_private_key"])]
    all: bool,
}

#[derive(Subcommand)]
pub enum ProxyCaCommand {
    /// Replace the proxy CA by a new one constrained to `internal_domains`. The old CA and all
    /// proxy keys stay for old mail; proxy certificates are issued under the new CA on next use.
    /// Run it while the gateway is stopped, then give partners the new CA (export-ca).
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The current and retired proxy CAs.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
pub enum PartnersCommand {
    /// Addresses with a current certificate.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        domain: Option<String>,
    },
    /// Every certificate ever seen for an address, current one marked.
    History {
        #[command(flatten)]
        store: StoreArgs,
        address: String,
    },
    /// Import partner certificates (a PEM bundle, or a directory of PEM/DER files), validated
    /// like captured ones; one report line per certificate. Their domains must be approved.
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// A PEM bundle, a DER certificate, or a directory of them.
        path: PathBuf,
    },
}

#[derive(Args)]
pub struct CertificateOutput {
    /// Print the certificate (PEM) after the summary line.
    #[arg(long)]
    pem: bool,
    /// Write the certificate (PEM) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum ProxyCommand {
    /// Issue the proxy certificate of an internal address (returns the current one if valid).
    Issue {
        #[command(flatten)]
        store: StoreArgs,
        address: String,
        #[command(flatten)]
        output: CertificateOutput,
    },
    /// Issue a new key and certificate; earlier keys are kept for old mail.
    Renew {
        #[command(flatten)]
        store: StoreArgs,
        address: String,
        #[command(flatten)]
        output: CertificateOutput,
    },
    /// The current proxy certificate of an address, to hand to someone.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        address: String,
        #[command(flatten)]
        output: CertificateOutput,
    },
    /// Internal addresses with proxy certificates.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Import a key pair from another gateway: `--pkcs12 FILE` or `--key KEY.pem --cert
    /// CERT.pem`. Current unless `--old` (then it only decrypts old mail).
    Import {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, conflicts_with_all = ["key", "cert"], required_unless_present = "key")]
        pkcs12: Option<PathBuf>,
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// File holding the PKCS#12 or private key password (first line).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The address to file it under, when the certificate names several.
        #[arg(long)]
        address: Option<String>,
        /// Keep it as an old, decrypt-only key.
        #[arg(long)]
        old: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    Smime,
    Tls,
}

#[derive(Subcommand)]
pub enum DomainsCommand {
    /// Approve a partner domain (idempotent).
    Add {
        #[command(flatten)]
        store: StoreArgs,
        domain: String,
        #[arg(long, value_enum, default_value = "smime")]
        policy: PolicyArg,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long, default_value = "cli")]
        approved_by: String,
    },
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        domain: String,
    },
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where an operator command works: the store itself, or, while a running gateway holds
/// it, that gateway's admin API. Both print the same thing.
enum Backend {
    Local(certstore::Store, Box<Config>),
    Remote(AdminClient),
}

fn backend(args: &StoreArgs) -> anyhow::Result<Backend> {
    let config = load_config(&args.config)?;
    match open_store(&config) {
        Ok(store) => Ok(Backend::Local(store, Box::new(config))),
        Err(e) if matches!(e.downcast_ref(), Some(StoreError::Locked(_))) => {
            let client = AdminClient::for_config(&config)?;
            eprintln!(
                "the gateway is running: using its admin API at {}",
                client.addr()
            );
            Ok(Backend::Remote(client))
        }
        Err(e) => Err(e),
    }
}

/// Commands that need the store itself (private keys, rotation).
fn open_local(args: &StoreArgs) -> anyhow::Result<certstore::Store> {
    open_store(&load_config(&args.config)?)
}

/// `address` may hold a proxy identity under the configuration.
fn check_internal(config: &Config, address: &str) -> anyhow::Result<()> {
    config
        .proxy_identity_addresses()
        .check(address)
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}; proxy certificates are issued only for the organisation's own addresses"
            )
        })
}

pub fn export_ca(args: ExportCaArgs) -> anyhow::Result<ExitCode> {
    let bytes = match backend(&args.store)? {
        Backend::Local(store, _) => {
            let mut bytes = if args.der {
                store.proxy_ca_certificate_der()?
            } else if args.all {
                store.all_proxy_ca_certificates_pem()?.into_bytes()
            } else {
                store.proxy_ca_certificate_pem()?.into_bytes()
            };
            if args.with_private_key {
                bytes.extend_from_slice(store.export_proxy_ca_key_pem()?.as_bytes());
            }
            bytes
        }
        Backend::Remote(client) => {
            if args.with_private_key || args.all {
                bail!(
                    "--with-private-key and --all read the store itself, which the running \
                     gateway holds: stop it first (the admin API never hands out keys)"
                );
            }
            let format = if args.der { "der" } else { "pem" };
            client
                .ok("GET", &format!("/api/v1/proxy/ca?format={format}"), None)?
                .body
        }
    };
    match &args.out {
        Some(path) if args.with_private_key => write_private(path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?,
        Some(path) => std::fs::write(path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => super::write_output(&bytes)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Write a file that holds a private key: owner-only from its creation (an existing file is
/// narrowed before anything is written to it).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        write_all_synced(file, bytes)
    }
    #[cfg(not(unix))]
    {
        write_all_synced(options.open(path)?, bytes)
    }
}

fn write_all_synced(mut file: std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    file.write_all(bytes)?;
    file.sync_all()
}

pub fn proxy_ca(command: ProxyCaCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProxyCaCommand::Rotate { store } => {
            let config = load_config(&store.config)?;
            let store = open_store(&config)?;
            let generation = store.proxy_cas()?.len() + 1;
            let name = proxy_ca_name(&config, &format!(" G{generation}"));
            let ca = store
                .rotate_proxy_ca(&name, &config.internal_domains)
                .context("rotating the proxy CA")?;
            write_proxy_ca_pem(&config, &store)?;
            println!(
                "new proxy CA {} (fingerprint {}), for mail of {} only; the previous CA and \
                 all proxy keys are kept for old mail. Proxy certificates are issued under the \
                 new CA on their next use. Give partners the new CA: {}",
                ca.subject,
                ca.fingerprint_sha256,
                config.internal_domains.join(", "),
                config.data_dir.join("proxy-ca.pem").display()
            );
        }
        ProxyCaCommand::List { store } => {
            for ca in open_local(&store)?.proxy_cas()? {
                println!("{}", serde_json::to_string(&ca)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Page size for listing through the admin API (its maximum).
const PAGE: u32 = 500;

pub fn partners(command: PartnersCommand) -> anyhow::Result<ExitCode> {
    match command {
        PartnersCommand::List { store, domain } => match backend(&store)? {
            Backend::Local(store, _) => {
                for address in store.partner_addresses(domain.as_deref(), 0, usize::MAX)? {
                    if store.current_partner_certificate(&address)?.is_some() {
                        println!("{address}");
                    }
                }
            }
            Backend::Remote(client) => {
                let filter = domain
                    .map(|d| format!("&domain={}", encode(&d)))
                    .unwrap_or_default();
                let mut offset = Some(0);
                while let Some(at) = offset {
                    let page: views::PartnerList = client.get_json(&format!(
                        "/api/v1/partners?limit={PAGE}&offset={at}{filter}"
                    ))?;
                    for item in page.items {
                        println!("{}", item.address);
                    }
                    offset = page.next_offset;
                }
            }
        },
        PartnersCommand::History { store, address } => {
            let history = match backend(&store)? {
                Backend::Local(store, _) => {
                    let current = store
                        .current_partner_certificate(&address)?
                        .map(|c| c.fingerprint_sha256);
                    store
                        .partner_history(&address)?
                        .iter()
                        .map(|c| views::Certificate::new(c, current.as_deref()))
                        .collect()
                }
                Backend::Remote(client) => {
                    let path = format!("/api/v1/partners/{}", encode(&address));
                    let response = client.call("GET", &path, None)?;
                    match response.status {
                        404 => Vec::new(),
                        200 => {
                            serde_json::from_slice::<views::Partner>(&response.body)
                                .context("the admin API answered unexpected JSON")?
                                .history
                        }
                        _ => bail!("{}", problem_detail(&response)),
                    }
                }
            };
            if history.is_empty() {
                println!("no certificates seen for {address}");
            }
            for cert in history {
                println!("{}", serde_json::to_string(&cert)?);
                if cert.in_use {
                    println!("  ^ current (used for encryption)");
                }
            }
        }
        PartnersCommand::Import { store, path } => return import_partners(&store, &path),
    }
    Ok(ExitCode::SUCCESS)
}

/// Files in a partner import: the file itself, or a directory's regular files (not
/// recursive), sorted; bounded in number.
const MAX_IMPORT_FILES: usize = 10_000;

fn import_partners(store: &StoreArgs, path: &Path) -> anyhow::Result<ExitCode> {
    let files = if path.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path)
            .with_context(|| format!("cannot read the directory {}", path.display()))?
        {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.push(entry.path());
            }
            if files.len() > MAX_IMPORT_FILES {
                bail!(
                    "{} holds more than {MAX_IMPORT_FILES} files",
                    path.display()
                );
            }
        }
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut imported = 0usize;
    let mut refused = 0usize;
    // All files at once: a CA certificate in one serves as the intermediate of the others.
    let mut certs = Vec::new();
    let mut source = Vec::new();
    for file in &files {
        let bytes = read_bounded(file, certstore::MAX_IMPORT_BYTES)?;
        match certstore::parse_certificate_input(&bytes) {
            Ok(found) if !found.is_empty() => {
                source.extend(std::iter::repeat_n(file, found.len()));
                certs.extend(found);
            }
            Ok(_) => {
                println!("{}: no certificate", file.display());
                refused += 1;
            }
            Err(e) => {
                println!("{}: {e}", file.display());
                refused += 1;
            }
        }
    }
    // (index into `certs`, imported, the report line)
    let outcomes: Vec<(usize, bool, String)> = match backend(store)? {
        Backend::Local(store, _) => store
            .import_partner_certificates(&certs)?
            .iter()
            .map(|o| (o.index, o.imported(), o.to_string()))
            .collect(),
        Backend::Remote(client) => {
            use base64::Engine as _;
            let request = views::PartnerImportRequest {
                certificates: certs
                    .iter()
                    .map(|der| base64::engine::general_purpose::STANDARD.encode(der))
                    .collect(),
            };
            let body = serde_json::to_vec(&request)?;
            let response = client.ok("POST", "/api/v1/partners/import", Some(&body))?;
            serde_json::from_slice::<views::ImportReport>(&response.body)
                .context("the admin API answered unexpected JSON")?
                .items
                .into_iter()
                .map(|o| (o.index as usize, o.imported, o.detail))
                .collect()
        }
    };
    for (index, ok, line) in outcomes {
        let file = source.get(index).map_or(path, |f| f.as_path());
        println!("{}: {line}", file.display());
        if ok {
            imported += 1;
        } else {
            refused += 1;
        }
    }
    println!("{imported} imported, {refused} refused");
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn read_bounded(path: &Path, limit: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > limit {
        bail!("{} is larger than {limit} bytes", path.display());
    }
    Ok(bytes)
}

/// The summary line, then the certificate where asked.
fn print_certificate(
    verb: &str,
    cert: &views::ProxyCertificate,
    output: &CertificateOutput,
) -> anyhow::Result<()> {
    println!(
        "{verb}{} serial {} fingerprint {}",
        cert.address, cert.serial_hex, cert.fingerprint_sha256
    );
    if output.pem {
        print!("{}", cert.certificate_pem);
    }
    if let Some(path) = &output.out {
        std::fs::write(path, &cert.certificate_pem)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("certificate written to {}", path.display());
    }
    Ok(())
}

fn local_view(id: &certstore::ProxyIdentity) -> views::ProxyCertificate {
    views::ProxyCertificate::new(id, Some(&id.fingerprint_sha256))
}

/// `POST .../certificate` through the admin API: `renew` false returns a still-valid one.
fn remote_issue(
    client: &AdminClient,
    address: &str,
    renew: bool,
) -> anyhow::Result<views::ProxyCertificate> {
    let response = client.ok(
        "POST",
        &format!(
            "/api/v1/proxy/addresses/{}/certificate?renew={renew}",
            encode(address)
        ),
        None,
    )?;
    serde_json::from_slice(&response.body).context("the admin API answered unexpected JSON")
}

/// `proxy issue` (the current certificate while it stays valid) or `proxy renew` (always a
/// new key).
fn issue(
    store: &StoreArgs,
    address: &str,
    output: &CertificateOutput,
    renew: bool,
) -> anyhow::Result<()> {
    let cert = match backend(store)? {
        Backend::Local(store, config) => {
            check_internal(&config, address)?;
            let id = if renew {
                store.renew_proxy_identity(address)?
            } else {
                store.ensure_proxy_identity(address)?
            };
            local_view(&id)
        }
        Backend::Remote(client) => remote_issue(&client, address, renew)?,
    };
    print_certificate(if renew { "renewed " } else { "" }, &cert, output)
}

pub fn proxy(command: ProxyCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProxyCommand::Issue {
            store,
            address,
            output,
        } => issue(&store, &address, &output, false)?,
        ProxyCommand::Renew {
            store,
            address,
            output,
        } => issue(&store, &address, &output, true)?,
        ProxyCommand::Show {
            store,
            address,
            output,
        } => {
            let cert = match backend(&store)? {
                Backend::Local(store, _) => store
                    .current_proxy_identity(&address)?
                    .map(|id| local_view(&id)),
                Backend::Remote(client) => {
                    let path = format!("/api/v1/proxy/addresses/{}", encode(&address));
                    let response = client.call("GET", &path, None)?;
                    match response.status {
                        404 => None,
                        200 => serde_json::from_slice::<views::ProxyAddressDetail>(&response.body)
                            .context("the admin API answered unexpected JSON")?
                            .certificates
                            .into_iter()
                            .find(|c| c.current),
                        _ => bail!("{}", problem_detail(&response)),
                    }
                }
            };
            let Some(cert) = cert else {
                bail!("{address} has no current proxy certificate (issue one: smime-gateway proxy issue {address})");
            };
            print_certificate("", &cert, &output)?;
        }
        ProxyCommand::List { store } => match backend(&store)? {
            Backend::Local(store, _) => {
                for summary in store.proxy_addresses()? {
                    println!(
                        "{}",
                        serde_json::to_string(&views::ProxyAddress::from(summary))?
                    );
                }
            }
            Backend::Remote(client) => {
                let mut offset = Some(0);
                while let Some(at) = offset {
                    let page: views::ProxyAddressList = client
                        .get_json(&format!("/api/v1/proxy/addresses?limit={PAGE}&offset={at}"))?;
                    for item in page.items {
                        println!("{}", serde_json::to_string(&item)?);
                    }
                    offset = page.next_offset;
                }
            }
        },
        ProxyCommand::Import {
            store,
            pkcs12,
            key,
            cert,
            password_file,
            address,
            old,
        } => {
            let password = password_file.as_deref().map(read_password).transpose()?;
            let request = match (&pkcs12, &key, &cert) {
                (Some(p12), _, _) => {
                    use base64::Engine as _;
                    views::ImportRequest {
                        pkcs12_base64: Some(
                            base64::engine::general_purpose::STANDARD
                                .encode(read_bounded(p12, certstore::MAX_IMPORT_BYTES)?),
                        ),
                        password: password.as_ref().map(|p| p.to_string()),
                        private_key_pem: None,
                        certificate_pem: None,
                        old,
                    }
                }
                (None, Some(key), Some(cert)) => views::ImportRequest {
                    pkcs12_base64: None,
                    password: password.as_ref().map(|p| p.to_string()),
                    private_key_pem: Some(read_text(key)?),
                    certificate_pem: Some(read_text(cert)?),
                    old,
                },
                _ => bail!("give --pkcs12 FILE, or --key KEY.pem with --cert CERT.pem"),
            };
            let imported = parse_import(&request)?;
            let address = imported.address(address.as_deref())?;
            let view = match backend(&store)? {
                Backend::Local(store, config) => {
                    check_internal(&config, &address)?;
                    let id = store.import_proxy_identity(&address, &imported, old)?;
                    views::ProxyCertificate::new(
                        &id,
                        (!old).then_some(id.fingerprint_sha256.as_str()),
                    )
                }
                Backend::Remote(client) => {
                    let body = admin_api::Zeroizing::new(serde_json::to_vec(&request)?);
                    let response = client.ok(
                        "POST",
                        &format!("/api/v1/proxy/addresses/{}/import", encode(&address)),
                        Some(&body),
                    )?;
                    serde_json::from_slice(&response.body)
                        .context("the admin API answered unexpected JSON")?
                }
            };
            let kind = if old {
                "as an old key (decrypts old mail only)"
            } else {
                "as the current key"
            };
            println!(
                "imported {} {kind}: serial {} fingerprint {}",
                view.address, view.serial_hex, view.fingerprint_sha256
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The key pair of an import request, checked before anything is stored or sent.
fn parse_import(request: &views::ImportRequest) -> anyhow::Result<certstore::ImportedIdentity> {
    let password = request.password.as_deref();
    Ok(
        match (
            &request.pkcs12_base64,
            &request.private_key_pem,
            &request.certificate_pem,
        ) {
            (Some(p12), _, _) => {
                use base64::Engine as _;
                let der = admin_api::Zeroizing::new(
                    base64::engine::general_purpose::STANDARD.decode(p12)?,
                );
                certstore::ImportedIdentity::from_pkcs12(&der, password.unwrap_or(""))?
            }
            (None, Some(key), Some(cert)) => {
                certstore::ImportedIdentity::from_pem(key.as_bytes(), cert.as_bytes(), password)?
            }
            _ => bail!("give --pkcs12 FILE, or --key KEY.pem with --cert CERT.pem"),
        },
    )
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    String::from_utf8(read_bounded(path, certstore::MAX_IMPORT_BYTES)?)
        .with_context(|| format!("{} is not PEM text", path.display()))
}

/// The first line of a password file.
fn read_password(path: &Path) -> anyhow::Result<admin_api::Zeroizing<String>> {
    let text = admin_api::Zeroizing::new(read_text(path)?);
    Ok(admin_api::Zeroizing::new(
        text.lines().next().unwrap_or("").to_string(),
    ))
}

pub fn domains(command: DomainsCommand) -> anyhow::Result<ExitCode> {
    match command {
        DomainsCommand::Add {
            store,
            domain,
            policy,
            note,
            approved_by,
        } => {
            let approved: views::Domain = match backend(&store)? {
                Backend::Local(store, _) => {
                    let policy = match policy {
                        PolicyArg::Smime => DomainPolicy::Smime,
                        PolicyArg::Tls => DomainPolicy::Tls,
                    };
                    store
                        .approve_domain(&domain, policy, &approved_by, &note)?
                        .into()
                }
                Backend::Remote(client) => {
                    let policy = match policy {
                        PolicyArg::Smime => views::Policy::Smime,
                        PolicyArg::Tls => views::Policy::Tls,
                    };
                    let body = serde_json::to_vec(&serde_json::json!({
                        "policy": policy,
                        "note": note,
                    }))?;
                    let path = format!("/api/v1/domains/{}", encode(domain.trim_end_matches('.')));
                    serde_json::from_slice(&client.ok("PUT", &path, Some(&body))?.body)
                        .context("the admin API answered unexpected JSON")?
                }
            };
            println!(
                "approved {} ({})",
                approved.domain,
                serde_json::to_string(&approved.policy)?.trim_matches('"')
            );
        }
        DomainsCommand::Remove { store, domain } => {
            let removed = match backend(&store)? {
                Backend::Local(store, _) => store.remove_domain(&domain)?,
                Backend::Remote(client) => {
                    let path = format!("/api/v1/domains/{}", encode(domain.trim_end_matches('.')));
                    let response = client.call("DELETE", &path, None)?;
                    match response.status {
                        204 => true,
                        404 => false,
                        _ => bail!("{}", problem_detail(&response)),
                    }
                }
            };
            if removed {
                println!("removed {domain}");
            } else {
                println!("{domain} was not approved");
            }
        }
        DomainsCommand::List { store } => {
            let domains: Vec<views::Domain> = match backend(&store)? {
                Backend::Local(store, _) => store.domains()?.into_iter().map(Into::into).collect(),
                Backend::Remote(client) => client.get_json("/api/v1/domains")?,
            };
            for d in domains {
                println!("{}", serde_json::to_string(&d)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
