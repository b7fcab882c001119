//! Engine commands over files: inspect, decrypt, verify, sign, encrypt.
//!
//! The `--json` output of `inspect` and `verify` is a stable shape documented in
//! `docs/cli-json.md`; add fields, never rename or remove them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde::Serialize;
use x509_cert::Certificate;

use gateway::mime::{self, Layer, OpenMode, Opened, SignFormat};
use gateway::smime::certs;
use gateway::smime::crypto::{PrivateKey, PrivateKeyOps};
use gateway::smime::decrypt::DecryptionKey;
use gateway::smime::encrypt::EncryptOptions;
use gateway::smime::sign::Signer;
use gateway::smime::verify::SignatureReport;
use gateway::smime::{ContentCipher, KeyTransport};

use super::service::crypto_provider;
use super::{read_input, write_output};

#[derive(Args)]
pub struct InspectArgs {
    /// Message file (standard input when absent or `-`).
    message: Option<PathBuf>,
    /// Trust anchor (PEM) to evaluate the signer against; repeatable.
    #[arg(long = "ca")]
    ca: Vec<PathBuf>,
    /// Key pairs to open encrypted layers with (as for `decrypt`).
    #[arg(long = "key")]
    keys: Vec<PathBuf>,
    #[arg(long = "cert")]
    certs: Vec<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct DecryptArgs {
    message: Option<PathBuf>,
    /// Private key (PEM); pair each `--key` with a `--cert`, in order.
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
    /// Certificate (PEM) of the key at the same position.
    #[arg(long = "cert", required = true)]
    certs: Vec<PathBuf>,
}

#[derive(Args)]
pub struct VerifyArgs {
    message: Option<PathBuf>,
    /// Trust anchor (PEM, may hold several certificates); repeatable.
    #[arg(long = "ca")]
    ca: Vec<PathBuf>,
    /// Extra intermediate certificates (PEM).
    #[arg(long)]
    untrusted: Vec<PathBuf>,
    /// CRL (PEM or DER) to check revocation against; repeatable.
    #[arg(long)]
    crl: Vec<PathBuf>,
    /// Also check the signer certificate names this address (e.g. the From address).
    #[arg(long)]
    address: Option<String>,
    /// soft-fail (unknown status accepted and reported), hard-fail, or off.
    #[arg(long, default_value = "soft-fail", value_parser = parse_revocation)]
    revocation: certstore::RevocationMode,
    #[arg(long)]
    json: bool,
}

fn parse_revocation(text: &str) -> Result<certstore::RevocationMode, String> {
    match text {
        "soft-fail" => Ok(certstore::RevocationMode::SoftFail),
        "hard-fail" => Ok(certstore::RevocationMode::HardFail),
        "off" => Ok(certstore::RevocationMode::Off),
        _ => Err("expected soft-fail, hard-fail or off".into()),
    }
}

#[derive(Args)]
pub struct SignArgs {
    message: Option<PathBuf>,
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    cert: PathBuf,
    /// Intermediate and root certificates to include (PEM).
    #[arg(long)]
    chain: Option<PathBuf>,
    /// Opaque signed-data instead of multipart/signed.
    #[arg(long)]
    opaque: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum CipherArg {
    #[value(name = "aes128-cbc")]
    Aes128Cbc,
    #[value(name = "aes256-cbc")]
    Aes256Cbc,
    #[value(name = "aes256-gcm")]
    Aes256Gcm,
}

#[derive(Args)]
pub struct EncryptArgs {
    message: Option<PathBuf>,
    /// Recipient certificate (PEM); repeatable.
    #[arg(long = "recipient", required = true)]
    recipients: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "aes256-cbc")]
    cipher: CipherArg,
    /// RSAES-OAEP (SHA-256) key transport instead of PKCS#1 v1.5.
    #[arg(long)]
    oaep: bool,
}

fn load_certificates(path: &PathBuf) -> anyhow::Result<Vec<Certificate>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    certs::parse_certificates(&bytes).with_context(|| format!("{}", path.display()))
}

fn load_certificate(path: &PathBuf) -> anyhow::Result<Certificate> {
    load_certificates(path)?
        .into_iter()
        .next()
        .with_context(|| format!("{}: no certificate", path.display()))
}

fn load_key(path: &PathBuf) -> anyhow::Result<PrivateKey> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    crypto_provider()
        .load_private_key(&bytes)
        .with_context(|| format!("{}", path.display()))
}

fn load_key_pairs(
    keys: &[PathBuf],
    certs: &[PathBuf],
) -> anyhow::Result<Vec<(Certificate, PrivateKey)>> {
    if keys.len() != certs.len() {
        bail!(
            "give one --cert for each --key ({} keys, {} certificates)",
            keys.len(),
            certs.len()
        );
    }
    keys.iter()
        .zip(certs)
        .map(|(k, c)| Ok((load_certificate(c)?, load_key(k)?)))
        .collect()
}

fn open(message: &[u8], pairs: &[(Certificate, PrivateKey)], mode: OpenMode) -> Opened {
    let keys: Vec<DecryptionKey<'_>> = pairs
        .iter()
        .map(|(c, k)| DecryptionKey {
            certificate: c,
            key: k as &dyn PrivateKeyOps,
        })
        .collect();
    mime::open_message_with(crypto_provider(), message, &keys, mode)
}

/// A certificate as reports show it.
#[derive(Serialize)]
struct CertView {
    subject: String,
    issuer: String,
    serial: String,
    fingerprint_sha256: String,
    not_before: u64,
    not_after: u64,
    emails: Vec<String>,
}

fn cert_view(der: &[u8]) -> Option<CertView> {
    let cert = certs::parse_certificate(der).ok()?;
    let validity = &cert.tbs_certificate.validity;
    Some(CertView {
        subject: smime_pki::cert::distinguished_name(&cert.tbs_certificate.subject),
        issuer: smime_pki::cert::distinguished_name(&cert.tbs_certificate.issuer),
        serial: hex::encode(cert.tbs_certificate.serial_number.as_bytes()),
        fingerprint_sha256: certs::fingerprint_sha256(der),
        not_before: validity.not_before.to_unix_duration().as_secs(),
        not_after: validity.not_after.to_unix_duration().as_secs(),
        emails: certs::email_addresses(&cert),
    })
}

#[derive(Serialize)]
struct SignatureView<'a> {
    #[serde(flatten)]
    report: &'a SignatureReport,
    reason: String,
    signer: Option<CertView>,
    carried_certificates: Vec<CertView>,
}

#[derive(Serialize)]
struct TrustView {
    trusted: bool,
    reason: String,
}

#[derive(Serialize)]
struct Report<'a> {
    layers: Vec<serde_json::Value>,
    /// Why opening stopped early (e.g. no key for an encrypted layer); null when complete.
    stopped: Option<String>,
    signature: Option<SignatureView<'a>>,
    trust: Option<TrustView>,
}

fn report<'a>(opened: &'a Opened, trust: Option<TrustView>) -> Report<'a> {
    let layers = opened
        .layers
        .iter()
        .map(|l| match l {
            Layer::Signed { detached, report } => serde_json::json!({
                "layer": "signed",
                "detached": detached,
                "signature": signature_view(report),
            }),
            other => serde_json::to_value(other).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Report {
        layers,
        stopped: opened.stopped.as_ref().map(|e| e.to_string()),
        signature: opened.signature().map(signature_view),
        trust,
    }
}

fn signature_view(report: &SignatureReport) -> SignatureView<'_> {
    SignatureView {
        report,
        reason: report.outcome.describe(),
        signer: report.signer_certificate.as_deref().and_then(cert_view),
        carried_certificates: report
            .certificates
            .iter()
            .filter_map(|d| cert_view(d))
            .collect(),
    }
}

fn print_text(r: &Report<'_>) {
    if r.layers.is_empty() {
        println!("not an S/MIME message (no signed or encrypted layer)");
    }
    for (i, layer) in r.layers.iter().enumerate() {
        println!(
            "layer {}: {}",
            i + 1,
            serde_json::to_string_pretty(layer).unwrap_or_default()
        );
    }
    if let Some(s) = &r.stopped {
        println!("stopped: {s}");
    }
    if let Some(sig) = &r.signature {
        println!("signature: {}", sig.reason);
        if let Some(signer) = &sig.signer {
            println!(
                "  signer: {} <{}>",
                signer.subject,
                signer.emails.join(", ")
            );
        }
        if let Some(d) = sig.report.digest {
            println!(
                "  digest: {}{}",
                d.name(),
                if sig.report.weak_digest {
                    " (weak)"
                } else {
                    ""
                }
            );
        }
    }
    if let Some(t) = &r.trust {
        println!("trust: {}", t.reason);
    }
}

fn emit(r: &Report<'_>, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        print_text(r);
    }
    Ok(())
}

pub fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let message = read_input(&args.message)?;
    let pairs = load_key_pairs(&args.keys, &args.certs)?;
    let opened = open(&message, &pairs, OpenMode::All);
    let trust = if args.ca.is_empty() {
        None
    } else {
        Some(evaluate_trust(
            &opened,
            &args.ca,
            &[],
            &[],
            certstore::RevocationMode::default(),
            None,
        )?)
    };
    emit(&report(&opened, trust), args.json)?;
    Ok(ExitCode::SUCCESS)
}

pub fn decrypt(args: DecryptArgs) -> anyhow::Result<ExitCode> {
    let message = read_input(&args.message)?;
    let pairs = load_key_pairs(&args.keys, &args.certs)?;
    let opened = open(&message, &pairs, OpenMode::DecryptOnly);
    // Layers go to standard error: standard output is the decrypted message.
    for (i, layer) in opened.layers.iter().enumerate() {
        eprintln!("layer {}: {}", i + 1, describe_layer(layer));
    }
    if !opened.was_encrypted() {
        bail!("the message is not encrypted");
    }
    if let Some(e) = &opened.stopped {
        bail!("{e}");
    }
    write_output(&opened.to_message(&[]))?;
    Ok(ExitCode::SUCCESS)
}

/// One line per layer for `decrypt`: what it was and what became of it.
fn describe_layer(layer: &Layer) -> String {
    match layer {
        Layer::Signed { detached, report } => format!(
            "signed ({}), outside the encryption: removed; signature: {}{}",
            if *detached {
                "multipart/signed"
            } else {
                "opaque signed-data"
            },
            report.outcome.describe(),
            report
                .signer_emails
                .first()
                .map(|a| format!(" (signer {a})"))
                .unwrap_or_default()
        ),
        Layer::Encrypted {
            cipher: Some(cipher),
            key_transport,
            ..
        } => format!(
            "encrypted ({}{}): decrypted",
            cipher.name(),
            key_transport
                .map(|k| format!(", {}", k.name()))
                .unwrap_or_default()
        ),
        Layer::Encrypted { envelope, .. } => format!(
            "encrypted ({}): not decrypted",
            envelope
                .as_ref()
                .map_or("unreadable envelope", |e| e.cipher.as_str())
        ),
    }
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let message = read_input(&args.message)?;
    let opened = open(&message, &[], OpenMode::All);
    let trust = match opened.signature() {
        Some(sig) if sig.outcome.is_valid() => Some(evaluate_trust(
            &opened,
            &args.ca,
            &args.untrusted,
            &args.crl,
            args.revocation,
            args.address.as_deref(),
        )?),
        _ => None,
    };
    let valid = opened.signature().is_some_and(|s| s.outcome.is_valid());
    let trusted = trust.as_ref().is_some_and(|t| t.trusted);
    let r = report(&opened, trust);
    if args.json {
        emit(&r, true)?;
    }
    let reason = match (&r.signature, &r.trust) {
        (None, _) => opened
            .stopped
            .as_ref()
            .map(|e| format!("cannot verify: {e}"))
            .unwrap_or_else(|| "the message is not signed".into()),
        (Some(sig), _) if !valid => sig.reason.clone(),
        (_, Some(t)) => t.reason.clone(),
        _ => "no trust decision".into(),
    };
    if valid && trusted {
        if !args.json {
            println!("Verification successful: {reason}");
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("Verification failure: {reason}");
        Ok(ExitCode::from(1))
    }
}

/// Chain the signer to one of `ca` through the message's certificates and `untrusted`, then
/// apply the certstore's certificate policy (validity, key size, algorithms, usage, CRLs).
fn evaluate_trust(
    opened: &Opened,
    ca: &[PathBuf],
    untrusted: &[PathBuf],
    crl: &[PathBuf],
    revocation: certstore::RevocationMode,
    address: Option<&str>,
) -> anyhow::Result<TrustView> {
    let Some(sig) = opened.signature() else {
        return Ok(TrustView {
            trusted: false,
            reason: "not signed".into(),
        });
    };
    let Some(signer) = &sig.signer_certificate else {
        return Ok(TrustView {
            trusted: false,
            reason: "no signer certificate".into(),
        });
    };
    if ca.is_empty() {
        return Ok(TrustView {
            trusted: false,
            reason: "untrusted: no trust anchor given (--ca)".into(),
        });
    }
    let mut intermediates = sig.certificates.clone();
    for path in untrusted {
        for c in load_certificates(path)? {
            intermediates.push(certs::to_der(&c)?);
        }
    }
    let anchors = certstore::TrustAnchors::from_config(&certstore::StoreConfig {
        trust_anchor_files: ca.to_vec(),
        crl_files: crl.to_vec(),
        revocation,
        ..certstore::StoreConfig::default()
    })
    .context("loading trust anchors")?;
    Ok(
        match anchors.validate_for(
            signer,
            &intermediates,
            address,
            certstore::KeyPurpose::Sign,
            SystemTime::now(),
        ) {
            Ok(v) => TrustView {
                trusted: true,
                reason: format!(
                    "trusted: {} ({} certificates in the path){}",
                    v.subject,
                    v.chain_der.len(),
                    revocation_note(&v.revocation_unknown)
                ),
            },
            Err(e) => TrustView {
                trusted: false,
                reason: e.to_string(),
            },
        },
    )
}

/// Soft-fail revocation says what it could not establish.
fn revocation_note(unknown: &[String]) -> String {
    if unknown.is_empty() {
        String::new()
    } else {
        format!("; revocation status unknown: {}", unknown.join("; "))
    }
}

pub fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let message = read_input(&args.message)?;
    let cert = load_certificate(&args.cert)?;
    let key = load_key(&args.key)?;
    let chain = match &args.chain {
        Some(p) => load_certificates(p)?,
        None => Vec::new(),
    };
    let signer = Signer {
        certificate: &cert,
        chain: &chain,
        key: &key,
    };
    let format = if args.opaque {
        SignFormat::Opaque
    } else {
        SignFormat::Detached
    };
    let signed = mime::sign_message(
        crypto_provider(),
        &message,
        &signer,
        format,
        SystemTime::now(),
    )?;
    write_output(&signed)?;
    Ok(ExitCode::SUCCESS)
}

pub fn encrypt(args: EncryptArgs) -> anyhow::Result<ExitCode> {
    let message = read_input(&args.message)?;
    let recipients = args
        .recipients
        .iter()
        .map(load_certificate)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let refs: Vec<&Certificate> = recipients.iter().collect();
    let options = EncryptOptions {
        cipher: match args.cipher {
            CipherArg::Aes128Cbc => ContentCipher::Aes128Cbc,
            CipherArg::Aes256Cbc => ContentCipher::Aes256Cbc,
            CipherArg::Aes256Gcm => ContentCipher::Aes256Gcm,
        },
        key_transport: if args.oaep {
            KeyTransport::RsaOaepSha256
        } else {
            KeyTransport::RsaPkcs1v15
        },
    };
    write_output(&mime::encrypt_message(
        crypto_provider(),
        &message,
        &refs,
        options,
    )?)?;
    Ok(ExitCode::SUCCESS)
}
