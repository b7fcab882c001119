//! STARTTLS for the server: loading the certificate and key into a rustls configuration.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no PEM certificate found in {0}")]
    NoCertificate(PathBuf),
    #[error("no PEM private key found in {0}")]
    NoKey(PathBuf),
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds a rustls server configuration (ring provider, TLS 1.2 and 1.3) from a PEM
/// certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_server_tls(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsSetupError::Io { path, source }
    };
    let mut reader = BufReader::new(File::open(cert_path).map_err(io_err(cert_path))?);
    let certs = rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err(cert_path))?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate(cert_path.to_path_buf()));
    }
    let mut reader = BufReader::new(File::open(key_path).map_err(io_err(key_path))?);
    let key = rustls_pemfile::private_key(&mut reader)
        .map_err(io_err(key_path))?
        .ok_or_else(|| TlsSetupError::NoKey(key_path.to_path_buf()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}
