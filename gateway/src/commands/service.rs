//! Running the gateway: `init`, `serve`, and `run-default` (what `make run` uses).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use certstore::{Store, StoreConfig};
use gateway::config::Config;
use gateway::dispatch::Gateway;

#[derive(Args)]
pub struct InitArgs {
    /// Configuration file (TOML; see gateway.example.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// Import an existing proxy CA certificate (PEM) instead of creating one.
    #[arg(long, requires = "import_ca_key")]
    pub import_ca_cert: Option<PathBuf>,
    /// The private key (PEM) of the imported proxy CA.
    #[arg(long)]
    pub import_ca_key: Option<PathBuf>,
}

#[derive(Args)]
pub struct ServeArgs {
    #[arg(long)]
    pub config: PathBuf,
}

#[derive(Args)]
pub struct RunDefaultArgs {
    /// Data directory (created on first start).
    #[arg(long, default_value = "./run-data")]
    pub data_dir: PathBuf,
}

pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

/// The binary's crypto backend: the build's default (cargo feature `aws-lc-rs`, else
/// `rust-crypto`). Chosen here, once, and passed down through the store and the key cache.
pub fn crypto_provider() -> &'static gateway::smime::crypto::CryptoProvider {
    gateway::smime::crypto::default_provider()
}

pub fn store_config(config: &Config) -> StoreConfig {
    StoreConfig {
        trust_anchor_files: config.trust.anchor_files.clone(),
        use_system_trust: config.trust.use_system_store,
        intermediate_files: config.trust.intermediate_files.clone(),
        crl_files: config.trust.crl_files.clone(),
        revocation: config.trust.revocation,
        fetch_revocation: true,
        required_policies: config.trust.required_policies.clone(),
        extra_freemail_domains: config.store.extra_freemail_domains.clone(),
        proxy_cert_validity_days: config.store.proxy_cert_validity_days,
        crypto: crypto_provider(),
    }
}

pub fn open_store(config: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    restrict_permissions(&config.data_dir);
    Store::open(&config.data_dir.join("store"), store_config(config)).with_context(|| {
        format!(
            "cannot open the store in {} (is the gateway already running? then use the admin API)",
            config.data_dir.display()
        )
    })
}

#[cfg(unix)]
fn restrict_permissions(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}
#[cfg(not(unix))]
fn restrict_permissions(_: &Path) {}

/// Create what a first start needs: store, proxy CA, admin token. Idempotent.
fn initialise(config: &Config, import: Option<(&Path, &Path)>) -> anyhow::Result<Store> {
    let store = open_store(config)?;
    if !store.is_initialised() {
        match import {
            Some((cert, key)) => {
                let cert_pem = std::fs::read_to_string(cert)
                    .with_context(|| format!("cannot read {}", cert.display()))?;
                let key_pem = std::fs::read_to_string(key)
                    .with_context(|| format!("cannot read {}", key.display()))?;
                store
                    .import_proxy_ca(&cert_pem, &key_pem)
                    .context("importing the proxy CA")?;
                println!("imported the proxy CA from {}", cert.display());
            }
            None => {
                let name = proxy_ca_name(config, "");
                store
                    .init_proxy_ca(&name, &config.internal_domains)
                    .context("creating the proxy CA")?;
                println!(
                    "created the proxy CA \"{name}\" (for mail of {} only)",
                    config.internal_domains.join(", ")
                );
            }
        }
    }
    warn_if_unconstrained(&store)?;
    write_proxy_ca_pem(config, &store)?;
    let (token, created) = admin_api::load_or_create_token(&config.admin.token_file)
        .with_context(|| format!("admin token file {}", config.admin.token_file.display()))?;
    if created {
        // Printed once, at creation; never logged.
        println!(
            "admin API token (also in {}, mode 0600): {}",
            config.admin.token_file.display(),
            token.as_str()
        );
    }
    Ok(store)
}

/// "<first internal domain> S/MIME Proxy CA<suffix>".
pub fn proxy_ca_name(config: &Config, suffix: &str) -> String {
    format!(
        "{} S/MIME Proxy CA{suffix}",
        config
            .internal_domains
            .first()
            .map(String::as_str)
            .unwrap_or("Gateway")
    )
}

/// `proxy-ca.pem` in the data directory: the current CA, what partners are given.
pub fn write_proxy_ca_pem(config: &Config, store: &Store) -> anyhow::Result<()> {
    let ca_path = config.data_dir.join("proxy-ca.pem");
    std::fs::write(&ca_path, store.proxy_ca_certificate_pem()?)
        .with_context(|| format!("cannot write {}", ca_path.display()))
}

/// A CA from before name constraints (or an imported one without them) still works, but
/// partners who trust it trust it for everything: say so at every start.
fn warn_if_unconstrained(store: &Store) -> anyhow::Result<()> {
    let current = store.proxy_cas()?.into_iter().find(|ca| ca.current);
    if let Some(ca) = current.filter(|ca| !ca.name_constrained) {
        eprintln!(
            "warning: the proxy CA \"{}\" has no name constraints: partners who install it trust \
             it for any address and any purpose; run `smime-gateway proxy-ca rotate` to replace it",
            ca.subject
        );
    }
    Ok(())
}

pub fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let import = match (&args.import_ca_cert, &args.import_ca_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => None,
    };
    let store = initialise(&config, import)?;
    store.flush()?;
    println!(
        "initialised {}; proxy CA certificate: {}",
        config.data_dir.display(),
        config.data_dir.join("proxy-ca.pem").display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    run(load_config(&args.config)?)
}

pub fn run_default(args: RunDefaultArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::default_for_run(&args.data_dir);
    // `make run` is a local try-out: trust the system store and nothing else.
    config.admin.token_file = args.data_dir.join("admin.token");
    run(config)
}

fn run(config: Config) -> anyhow::Result<ExitCode> {
    init_tracing();
    if config.outbound.policy_without_certificate
        == gateway::config::PolicyWithoutCertificate::Refuse
        && !config.outbound.plaintext_domains.is_empty()
    {
        tracing::warn!(
            domains = ?config.outbound.plaintext_domains,
            "outbound.plaintext_domains is ignored under policy_without_certificate = \"refuse\": nothing is sent in clear"
        );
    }
    let store = initialise(&config, None)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve_until_stopped(config, store))?;
    Ok(ExitCode::SUCCESS)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn serve_until_stopped(config: Config, store: Store) -> anyhow::Result<()> {
    let metrics = admin_api::Metrics::new();
    let smtp_up = Arc::new(AtomicBool::new(false));
    let (token, _) = admin_api::load_or_create_token(&config.admin.token_file)?;

    let mut server_config = config.server_config();
    if let Some((cert, key)) = &config.smtp.tls {
        server_config.tls = Some(
            gateway::receive::load_server_tls(cert, key)
                .context("loading the SMTP TLS certificate")?,
        );
    }
    let smtp_listener = tokio::net::TcpListener::bind(config.smtp.listen)
        .await
        .with_context(|| format!("cannot listen for SMTP on {}", config.smtp.listen))?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("cannot listen for the admin API on {}", config.admin.listen))?;
    let socketmap_listener = match config.postfix.tls_policy_socketmap {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for the Postfix socketmap on {addr}"))?,
        ),
        None => None,
    };
    let smtp_addr: SocketAddr = smtp_listener.local_addr()?;
    let admin_addr: SocketAddr = admin_listener.local_addr()?;

    let router = admin_api::router(admin_api::ApiState {
        store: store.clone(),
        token,
        metrics: metrics.clone(),
        smtp_up: smtp_up.clone(),
        internal: config.proxy_identity_addresses(),
    });
    // One line each, machine-readable too: tests and `make run` read them (the socketmap
    // line comes first: readers stop once they have the SMTP and admin lines).
    if let Some(listener) = &socketmap_listener {
        announce(&format!(
            "Postfix TLS policy socketmap listening on {}",
            listener.local_addr()?
        ));
    }
    announce(&format!("SMTP listening on {smtp_addr}"));
    announce(&format!("admin API listening on http://{admin_addr}"));
    announce(&format!(
        "proxy CA certificate: {}",
        config.data_dir.join("proxy-ca.pem").display()
    ));
    announce(&format!(
        "inbound next hop: {}; outbound next hop: {}",
        config.inbound.next_hop, config.outbound.hop.next_hop
    ));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let admin = {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            axum::serve(admin_listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        })
    };
    let socketmap = socketmap_listener.map(|listener| {
        let mut stop = stop_rx.clone();
        tokio::spawn(gateway::postfix_map::serve(
            listener,
            store.clone(),
            config.smtp.trusted_clients.clone(),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ))
    });
    tracing::info!(backend = store.crypto().name, "crypto provider");
    let handler = Arc::new(Gateway::new(config.clone(), store.clone(), metrics));
    smtp_up.store(true, Ordering::SeqCst);
    let smtp = {
        let mut stop = stop_rx.clone();
        tokio::spawn(gateway::receive::serve(
            smtp_listener,
            Arc::new(server_config),
            handler,
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ))
    };
    wait_for_signal().await;
    tracing::info!("shutting down: finishing sessions in progress");
    let _ = stop_tx.send(true);
    let smtp_result = smtp.await;
    smtp_up.store(false, Ordering::SeqCst);
    let _ = admin.await;
    if let Some(task) = socketmap {
        let _ = task.await;
    }
    store.flush()?;
    match smtp_result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(anyhow::anyhow!("SMTP server task failed: {e}")),
    }
}

/// Print a status line; a closed stdout (the reader went away) must not stop the gateway.
fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
