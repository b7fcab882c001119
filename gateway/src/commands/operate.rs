//! Operator commands over the store: export the proxy CA, partner certificates, proxy
//! certificates, approved domains. They open the store directly, so they work while the
//! gateway is stopped; while it runs, use the admin API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use certstore::DomainPolicy;

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
}

#[derive(Subcommand)]
pub enum ProxyCommand {
    /// Issue the proxy certificate of an internal address (returns the current one if valid).
    Issue {
        #[command(flatten)]
        store: StoreArgs,
        address: String,
    },
    /// Issue a new key and certificate; earlier keys are kept for old mail.
    Renew {
        #[command(flatten)]
        store: StoreArgs,
        address: String,
    },
    /// Internal addresses with proxy certificates.
    List {
        #[command(flatten)]
        store: StoreArgs,
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

fn open(args: &StoreArgs) -> anyhow::Result<certstore::Store> {
    open_store(&load_config(&args.config)?)
}

/// The store, once `address` is known to be one the configuration allows a proxy identity.
fn open_for_proxy(args: &StoreArgs, address: &str) -> anyhow::Result<certstore::Store> {
    let config = load_config(&args.config)?;
    config
        .proxy_identity_addresses()
        .check(address)
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}; proxy certificates are issued only for the organisation's own addresses"
            )
        })?;
    open_store(&config)
}

pub fn export_ca(args: ExportCaArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.store)?;
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
            for ca in open(&store)?.proxy_cas()? {
                println!("{}", serde_json::to_string(&ca)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn partners(command: PartnersCommand) -> anyhow::Result<ExitCode> {
    match command {
        PartnersCommand::List { store, domain } => {
            let store = open(&store)?;
            for address in store.partner_addresses(domain.as_deref(), 0, usize::MAX)? {
                println!("{address}");
            }
        }
        PartnersCommand::History { store, address } => {
            let store = open(&store)?;
            let current = store
                .current_partner_certificate(&address)?
                .map(|c| c.fingerprint_sha256);
            let history = store.partner_history(&address)?;
            if history.is_empty() {
                println!("no certificates seen for {address}");
            }
            for cert in history {
                let mark = if Some(&cert.fingerprint_sha256) == current.as_ref() {
                    "current"
                } else {
                    ""
                };
                println!("{}", serde_json::to_string(&cert)?);
                if !mark.is_empty() {
                    println!("  ^ {mark} (used for encryption)");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn proxy(command: ProxyCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProxyCommand::Issue { store, address } => {
            let identity = open_for_proxy(&store, &address)?.ensure_proxy_identity(&address)?;
            println!(
                "{} serial {} fingerprint {}",
                identity.address, identity.serial_hex, identity.fingerprint_sha256
            );
        }
        ProxyCommand::Renew { store, address } => {
            let identity = open_for_proxy(&store, &address)?.renew_proxy_identity(&address)?;
            println!(
                "renewed {}: serial {} fingerprint {}",
                identity.address, identity.serial_hex, identity.fingerprint_sha256
            );
        }
        ProxyCommand::List { store } => {
            for summary in open(&store)?.proxy_addresses()? {
                println!("{}", serde_json::to_string(&summary)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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
            let policy = match policy {
                PolicyArg::Smime => DomainPolicy::Smime,
                PolicyArg::Tls => DomainPolicy::Tls,
            };
            let approved = open(&store)?.approve_domain(&domain, policy, &approved_by, &note)?;
            println!(
                "approved {} ({})",
                approved.domain,
                serde_json::to_string(&approved.policy)?.trim_matches('"')
            );
        }
        DomainsCommand::Remove { store, domain } => {
            if open(&store)?.remove_domain(&domain)? {
                println!("removed {domain}");
            } else {
                println!("{domain} was not approved");
            }
        }
        DomainsCommand::List { store } => {
            for d in open(&store)?.domains()? {
                println!("{}", serde_json::to_string(&d)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
