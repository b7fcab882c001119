//! The `openssl` command line as the independent party, for the demo and the benchmark.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use crate::gateway::fixture;

/// Runs `openssl args…` with `input` on standard input; returns whether it succeeded, its
/// standard output and its standard error.
pub fn run(args: &[&str], input: &[u8]) -> anyhow::Result<(bool, Vec<u8>, String)> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running openssl (is it installed? `make deps`)")?;
    let mut stdin = child.stdin.take().context("openssl stdin")?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().context("waiting for openssl")?;
    let _ = writer.join();
    Ok((
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Like [`run`], but an error (with openssl's message) unless it succeeded.
pub fn ok(args: &[&str], input: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (success, out, err) = run(args, input)?;
    if !success {
        bail!("openssl {}: {}", args.join(" "), err.trim());
    }
    Ok(out)
}

/// A partner's message with a `text/plain` body, signed (detached, chain included) by
/// `fixtures/partner/<signer>` unless `signer` is `None`.
pub fn partner_message(
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
    signer: Option<&str>,
) -> anyhow::Result<Vec<u8>> {
    let entity = format!("Content-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n");
    let headers = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{}.{}@partner.example>\r\n",
        subject.len() * 7919 + body.len(),
        std::process::id()
    );
    let content = match signer {
        Some(name) => ok(
            &[
                "cms",
                "-sign",
                "-signer",
                &fixture(&format!("partner/{name}.pem")),
                "-inkey",
                &fixture(&format!("partner/{name}.key")),
                "-certfile",
                &fixture("ca/partner-chain.pem"),
            ],
            entity.as_bytes(),
        )?,
        None => entity.into_bytes(),
    };
    let mut msg = headers.into_bytes();
    msg.extend_from_slice(&content);
    Ok(msg)
}

/// Encrypts the MIME entity of `message` (from its `MIME-Version:` line on, as `openssl cms
/// -sign` writes it) with AES-256-CBC to the certificate in `recipient_pem` (a path), keeping
/// the headers before it.
pub fn encrypt_entity(message: &[u8], recipient_pem: &str) -> anyhow::Result<Vec<u8>> {
    let start = message
        .windows(13)
        .position(|x| x == b"MIME-Version:")
        .context("message has no MIME-Version line to encrypt from")?;
    let body = ok(
        &["cms", "-encrypt", "-aes256", "-recip", recipient_pem],
        &message[start..],
    )?;
    let mut out = message[..start].to_vec();
    out.extend_from_slice(&body);
    Ok(out)
}

/// The signer certificate (PEM) of the S/MIME message `signed` if its signature verifies with
/// the certificates in `ca_file` as the only trust anchors; `scratch` is a directory for
/// openssl's output file.
pub fn verified_signer(
    ca_file: &std::path::Path,
    signed: &[u8],
    scratch: &std::path::Path,
) -> anyhow::Result<Option<String>> {
    let signer = scratch.join("verified-signer.pem");
    let _ = std::fs::remove_file(&signer);
    let (ca, out) = (
        ca_file.to_string_lossy().into_owned(),
        signer.to_string_lossy().into_owned(),
    );
    let (success, _, _) = run(
        &[
            "cms",
            "-verify",
            "-CAfile",
            &ca,
            "-signer",
            &out,
            "-out",
            "/dev/null",
        ],
        signed,
    )?;
    if !success {
        return Ok(None);
    }
    Ok(Some(std::fs::read_to_string(&signer)?))
}

/// `message` (S/MIME encrypted) decrypted with the key of `fixtures/partner/<name>`.
pub fn decrypt_as_partner(message: &[u8], name: &str) -> anyhow::Result<Vec<u8>> {
    ok(
        &[
            "cms",
            "-decrypt",
            "-recip",
            &fixture(&format!("partner/{name}.pem")),
            "-inkey",
            &fixture(&format!("partner/{name}.key")),
        ],
        message,
    )
}

/// What a partner reads from our outbound mail: `message` decrypted with
/// `fixtures/partner/<recipient>`, its signature verified against the CA certificate file
/// `ca_file`. Returns the signed content and the signer certificate (PEM), which is written
/// to `signer_pem` (a path) on the way.
pub fn open_as_partner(
    message: &[u8],
    recipient: &str,
    ca_file: &str,
    signer_pem: &std::path::Path,
) -> anyhow::Result<(Vec<u8>, String)> {
    let inner = decrypt_as_partner(message, recipient)?;
    let signer_arg = signer_pem.to_string_lossy().into_owned();
    let content = ok(
        &["cms", "-verify", "-CAfile", ca_file, "-signer", &signer_arg],
        &inner,
    )?;
    let pem = std::fs::read_to_string(signer_pem)
        .with_context(|| format!("reading {}", signer_pem.display()))?;
    Ok((content, pem))
}

/// `dir/name.key` of `algorithm` (`Ed25519`, `X25519`, `RSA`) and `dir/name.pem` certifying it
/// for `email` with `key_usage` (e.g. `keyAgreement`), issued for 30 days by the fixture
/// partner intermediate. A key that cannot sign a request (X25519) is certified through a
/// throwaway Ed25519 request key (`x509 -force_pubkey`). Returns the certificate's path.
pub fn issue_partner_certificate(
    dir: &std::path::Path,
    name: &str,
    algorithm: &str,
    email: &str,
    key_usage: &str,
    serial: u32,
) -> anyhow::Result<std::path::PathBuf> {
    let p = |file: String| dir.join(file).to_string_lossy().into_owned();
    let key = p(format!("{name}.key"));
    let mut gen = vec!["genpkey", "-algorithm", algorithm, "-out", &key];
    if algorithm == "RSA" {
        gen.extend(["-pkeyopt", "rsa_keygen_bits:2048"]);
    }
    ok(&gen, b"")?;
    let public = p(format!("{name}.pub"));
    ok(&["pkey", "-in", &key, "-pubout", "-out", &public], b"")?;
    let csr_key = if algorithm == "X25519" {
        let k = p(format!("{name}-csr.key"));
        ok(&["genpkey", "-algorithm", "Ed25519", "-out", &k], b"")?;
        k
    } else {
        key.clone()
    };
    let csr = p(format!("{name}.csr"));
    let subject = format!("/O=Partner Example/CN={name}/emailAddress={email}");
    ok(
        &[
            "req", "-new", "-key", &csr_key, "-out", &csr, "-subj", &subject,
        ],
        b"",
    )?;
    let ext = p(format!("{name}.ext"));
    std::fs::write(
        &ext,
        format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,{key_usage}\n\
             extendedKeyUsage=emailProtection\nsubjectKeyIdentifier=hash\n\
             authorityKeyIdentifier=keyid:always\nsubjectAltName=email:{email}\n"
        ),
    )?;
    let serial = format!("0x{serial:X}");
    let certificate = dir.join(format!("{name}.pem"));
    ok(
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &fixture("ca/partner-intermediate.pem"),
            "-CAkey",
            &fixture("ca/partner-intermediate.key"),
            "-set_serial",
            &serial,
            "-days",
            "30",
            "-sha256",
            "-force_pubkey",
            &public,
            "-extfile",
            &ext,
            "-out",
            &certificate.to_string_lossy(),
        ],
        b"",
    )?;
    Ok(certificate)
}
