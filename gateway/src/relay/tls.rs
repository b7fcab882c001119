//! STARTTLS for the relay client: the rustls client configuration per hop and the handshake.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader as StdBufReader;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::{NextHop, Stream, TlsMode};

/// Why TLS towards the next hop did not come up.
pub(super) enum TlsError {
    /// Our side cannot set TLS up (CA file, server name): retrying in clear would not help.
    Setup(String),
    /// The handshake with the hop failed or timed out.
    Handshake(String),
}

/// Runs the TLS handshake over `stream` (after the hop's `220` to STARTTLS).
pub(super) async fn handshake(
    hop: &NextHop,
    host: &str,
    stream: Stream,
) -> Result<Stream, TlsError> {
    let config = client_tls_config(hop)?;
    let server_name = ServerName::try_from(host.to_string()).map_err(|_| {
        TlsError::Setup(format!(
            "next hop host {host:?} is not a valid TLS server name"
        ))
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(hop.timeout, connector.connect(server_name, stream)).await {
        Ok(Ok(s)) => Ok(Box::new(s)),
        Ok(Err(e)) => Err(TlsError::Handshake(format!("TLS handshake failed: {e}"))),
        Err(_) => Err(TlsError::Handshake("TLS handshake timed out".to_string())),
    }
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Client configurations are cached per (verify, CA file): building the webpki root store
/// for every message would be wasted work.
fn client_tls_config(hop: &NextHop) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let setup = TlsError::Setup;
    type Cache = Mutex<HashMap<(bool, Option<PathBuf>), Arc<rustls::ClientConfig>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let verify = matches!(hop.tls, TlsMode::Required { verify: true });
    let key = (verify, if verify { hop.ca_file.clone() } else { None });
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(map) = cache.lock() {
        if let Some(c) = map.get(&key) {
            return Ok(Arc::clone(c));
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(format!("TLS setup failed: {e}")))?;
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match &hop.ca_file {
            Some(path) => {
                let file = File::open(path)
                    .map_err(|e| setup(format!("cannot read CA file {}: {e}", path.display())))?;
                for cert in rustls_pemfile::certs(&mut StdBufReader::new(file)) {
                    let cert = cert.map_err(|e| {
                        setup(format!("cannot read CA file {}: {e}", path.display()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        setup(format!("bad CA certificate in {}: {e}", path.display()))
                    })?;
                }
                if roots.is_empty() {
                    return Err(setup(format!(
                        "no certificates in CA file {}",
                        path.display()
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(ring())))
            .with_no_client_auth()
    };
    let config = Arc::new(config);
    if let Ok(mut map) = cache.lock() {
        map.insert(key, Arc::clone(&config));
    }
    Ok(config)
}

/// Encryption without authentication, for opportunistic and `verify: false` hops. The
/// handshake signature is still checked so the session keys belong to the presented key.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
