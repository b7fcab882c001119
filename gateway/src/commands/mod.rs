//! Command-line interface. Engine commands work on files, the way `openssl cms` does but
//! mail-aware; gateway commands operate the running service and its store.

mod admin_client;
mod engine;
mod operate;
mod sd_notify;
mod service;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `--version`: the crate version and the crypto backend this build runs on (as
/// `crypto_provider::default_provider` picks it), so a benchmark or an operator can tell.
const VERSION: &str = if cfg!(feature = "aws-lc-rs") {
    concat!(env!("CARGO_PKG_VERSION"), " (crypto: aws-lc-rs)")
} else {
    concat!(env!("CARGO_PKG_VERSION"), " (crypto: rust-crypto)")
};

#[derive(Parser)]
#[command(
    name = "smime-gateway",
    version = VERSION,
    about = "S/MIME proxy gateway: sign, encrypt, decrypt and verify mail at the organisation's boundary"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a message's S/MIME layers, algorithms, recipients, certificates and verification.
    Inspect(engine::InspectArgs),
    /// Decrypt a message with one or more key pairs; writes the decrypted message.
    Decrypt(engine::DecryptArgs),
    /// Verify a signed message; exit status 0 only when valid and trusted.
    Verify(engine::VerifyArgs),
    /// Sign a message (multipart/signed by default).
    Sign(engine::SignArgs),
    /// Encrypt a message to one or more recipient certificates.
    Encrypt(engine::EncryptArgs),
    /// Create the data directory, the store, the proxy CA (or import one) and the admin token.
    Init(service::InitArgs),
    /// Run the gateway (initialising first if needed).
    Serve(service::ServeArgs),
    /// Run with the built-in local configuration (what `make run` does).
    RunDefault(service::RunDefaultArgs),
    /// Export the proxy CA certificate (PEM or DER).
    ExportCa(operate::ExportCaArgs),
    /// Partner certificates and their history.
    #[command(subcommand)]
    Partners(operate::PartnersCommand),
    /// The proxy CA: rotate it, list current and retired ones.
    #[command(subcommand, name = "proxy-ca")]
    ProxyCa(operate::ProxyCaCommand),
    /// Proxy certificates of internal addresses.
    #[command(subcommand)]
    Proxy(operate::ProxyCommand),
    /// Approved partner domains.
    #[command(subcommand)]
    Domains(operate::DomainsCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Inspect(a) => engine::inspect(a),
        Command::Decrypt(a) => engine::decrypt(a),
        Command::Verify(a) => engine::verify(a),
        Command::Sign(a) => engine::sign(a),
        Command::Encrypt(a) => engine::encrypt(a),
        Command::Init(a) => service::init(a),
        Command::Serve(a) => service::serve(a),
        Command::RunDefault(a) => service::run_default(a),
        Command::ExportCa(a) => operate::export_ca(a),
        Command::Partners(c) => operate::partners(c),
        Command::Proxy(c) => operate::proxy(c),
        Command::ProxyCa(c) => operate::proxy_ca(c),
        Command::Domains(c) => operate::domains(c),
    }
}

/// Read the message from a file, or from standard input when no file (or `-`) is given.
pub fn read_input(path: &Option<PathBuf>) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use std::io::Read;
    match path {
        Some(p) if p.as_os_str() != "-" => {
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
        }
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read standard input")?;
            Ok(buf)
        }
    }
}

pub fn write_output(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}
