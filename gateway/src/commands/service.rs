//! Running the gateway: `init`, `serve`, and `run-default` (what `make run` uses).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

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
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Args)]
pub struct RunDefaultArgs {
    /// Data directory (created on first start).
    #[arg(long, default_value = "./run-data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Args)]
pub struct LogArgs {
    /// `text` for people, `json` (one object per line) for log shippers. Levels: RUST_LOG.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
        proxy_key_type: config.store.proxy_key_type,
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
    if let (Some((cert, _)), true) = (import, store.is_initialised()) {
        anyhow::bail!(
            "{} is already initialised with a proxy CA; refusing to import {} over it \
             (to move to that CA, use a new data directory)",
            config.data_dir.display(),
            cert.display()
        );
    }
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
    let config = load_config(&args.config)?;
    run(config, Some(args.config), args.log.log_format)
}

pub fn run_default(args: RunDefaultArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::default_for_run(&args.data_dir)?;
    // `make run` is a local try-out: trust the system store and nothing else.
    config.admin.token_file = args.data_dir.join("admin.token");
    run(config, None, args.log.log_format)
}

fn run(
    config: Config,
    config_path: Option<PathBuf>,
    log_format: LogFormat,
) -> anyhow::Result<ExitCode> {
    init_tracing(log_format);
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
    runtime.block_on(serve_until_stopped(config, config_path, store))?;
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        // The spans (session, message with its queue id) come with every line.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

async fn serve_until_stopped(
    config: Config,
    config_path: Option<PathBuf>,
    store: Store,
) -> anyhow::Result<()> {
    let metrics = gateway::telemetry::Metrics::new();
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
    let socketmap_listener =
        bind_optional(config.postfix.tls_policy_socketmap, "the Postfix socketmap").await?;
    let lmtp_listener = bind_optional(config.lmtp.listen, "LMTP").await?;
    let smtp_addr: SocketAddr = smtp_listener.local_addr()?;
    let admin_addr: SocketAddr = admin_listener.local_addr()?;
    // Operator commands find the admin API here while we hold the store.
    let address_file = super::admin_client::record_address(&config, admin_addr)
        .context("cannot record the admin API address in the data directory")?;

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
    if let Some(listener) = &lmtp_listener {
        announce(&format!("LMTP listening on {}", listener.local_addr()?));
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
    let handler = Arc::new(Reloadable {
        current: RwLock::new(Arc::new(Gateway::new(
            config.clone(),
            store.clone(),
            metrics.clone(),
        ))),
    });
    smtp_up.store(true, Ordering::SeqCst);
    // The same service spoken as LMTP: same handler, limits, trusted clients and TLS.
    let lmtp = lmtp_listener.map(|listener| {
        let mut stop = stop_rx.clone();
        let mut lmtp_config = server_config.clone();
        lmtp_config.protocol = gateway::receive::Protocol::Lmtp;
        tokio::spawn(gateway::receive::serve(
            listener,
            Arc::new(lmtp_config),
            Arc::clone(&handler),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ))
    });
    let smtp = {
        let mut stop = stop_rx.clone();
        tokio::spawn(gateway::receive::serve(
            smtp_listener,
            Arc::new(server_config),
            handler.clone(),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ))
    };
    super::sd_notify::notify("READY=1");
    let mut running = config;
    while wait_for_signal().await == Signal::Reload {
        match &config_path {
            Some(path) => reload(path, &mut running, &handler, &store, &metrics),
            None => tracing::warn!("SIGHUP: no configuration file to reload (run-default)"),
        }
    }
    super::sd_notify::notify("STOPPING=1");
    tracing::info!("shutting down: finishing sessions in progress");
    let _ = stop_tx.send(true);
    let smtp_result = smtp.await;
    if let Some(task) = lmtp {
        if let Ok(Err(e)) = task.await {
            tracing::error!(error = %e, "LMTP server failed");
        }
    }
    smtp_up.store(false, Ordering::SeqCst);
    let _ = admin.await;
    if let Some(task) = socketmap {
        let _ = task.await;
    }
    store.flush()?;
    let _ = std::fs::remove_file(&address_file);
    match smtp_result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(anyhow::anyhow!("SMTP server task failed: {e}")),
    }
}

/// A listener for an optional service, when its address is configured.
async fn bind_optional(
    addr: Option<SocketAddr>,
    what: &str,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    match addr {
        Some(addr) => Ok(Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for {what} on {addr}"))?,
        )),
        None => Ok(None),
    }
}

/// Print a status line; a closed stdout (the reader went away) must not stop the gateway.
fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[derive(PartialEq, Eq)]
enum Signal {
    Stop,
    Reload,
}

/// SIGTERM or Ctrl-C stop; SIGHUP reloads the configuration.
async fn wait_for_signal() -> Signal {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(mut term), Ok(mut hup)) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => Signal::Stop,
                    _ = term.recv() => Signal::Stop,
                    _ = hup.recv() => Signal::Reload,
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                Signal::Stop
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Stop
    }
}

/// The mail handler, replaced as a whole on reload: each message is handled with the
/// configuration current when its DATA ended, so sessions and messages in progress are not
/// disturbed.
struct Reloadable {
    current: RwLock<Arc<Gateway>>,
}

impl gateway::receive::MessageHandler for Reloadable {
    async fn handle(
        &self,
        envelope: gateway::receive::Envelope,
        message: Vec<u8>,
    ) -> gateway::receive::Reply {
        let gateway = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        gateway.handle(envelope, message).await
    }

    // LMTP: one answer per recipient from the gateway itself (the default would repeat one).
    async fn handle_each(
        &self,
        envelope: gateway::receive::Envelope,
        message: Vec<u8>,
    ) -> Vec<gateway::receive::Reply> {
        let gateway = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        gateway.handle_each(envelope, message).await
    }
}

/// Settings read only at start: the listeners, the admin API, the store and what it loaded
/// (trust anchors, CRLs), and the internal addresses the admin API checks. Everything else
/// (next hops and their TLS, outbound policy, send-as, cert-query address and limits,
/// hostname, authserv-id, postmaster) is reloadable.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("data_dir", old.data_dir != new.data_dir);
    check(
        "internal_domains",
        old.internal_domains != new.internal_domains,
    );
    check(
        "internal_addresses",
        old.internal_addresses != new.internal_addresses,
    );
    check("[smtp]", old.smtp != new.smtp);
    check("[admin]", old.admin != new.admin);
    check("[trust]", old.trust != new.trust);
    check("[store]", old.store != new.store);
    check("[postfix]", old.postfix != new.postfix);
    changed
}

/// SIGHUP: read the configuration again and apply it when only reloadable settings changed;
/// otherwise keep running with the current one and say what needs a restart.
fn reload(
    path: &Path,
    running: &mut Config,
    handler: &Reloadable,
    store: &Store,
    metrics: &Arc<gateway::telemetry::Metrics>,
) {
    let new = match load_config(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: configuration not reloaded, the running one stays");
            return;
        }
    };
    let restart_only = restart_only_changes(running, &new);
    if !restart_only.is_empty() {
        tracing::error!(
            settings = %restart_only.join(", "),
            "SIGHUP: configuration not reloaded: these settings change only with a restart"
        );
        return;
    }
    let gateway = Arc::new(Gateway::new(new.clone(), store.clone(), metrics.clone()));
    *handler
        .current
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = gateway;
    tracing::info!(
        inbound_next_hop = %new.inbound.next_hop,
        outbound_next_hop = %new.outbound.hop.next_hop,
        "configuration reloaded"
    );
    *running = new;
}
