use super::*;
use crate::mime::headers;
use std::path::{Path, PathBuf};
use std::process::Command;

use certstore::{Store, StoreConfig};

use crate::config::Config;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(path)
}

fn crlf(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes).replace("\r\n", "\n");
    text.replace('\n', "\r\n").into_bytes()
}

/// A request signed with `partner/<who>` by the openssl CLI, as gen.sh makes them.
fn signed_request(dir: &Path, who: &str, from: &str, subject: &str, id: &str) -> Vec<u8> {
    let body = dir.join("body.mime");
    std::fs::write(
        &body,
        "Content-Type: text/plain; charset=us-ascii\r\n\r\nPlease send me the certificate.\r\n",
    )
    .unwrap();
    let out = dir.join(format!("{id}.eml"));
    let status = Command::new("openssl")
        .args(["cms", "-sign", "-md", "sha256", "-in"])
        .arg(&body)
        .arg("-signer")
        .arg(fixture(&format!("partner/{who}.pem")))
        .arg("-inkey")
        .arg(fixture(&format!("partner/{who}.key")))
        .arg("-certfile")
        .arg(fixture("ca/partner-chain.pem"))
        .args(["-from", from, "-to", "cert-query@agency.example"])
        .args(["-subject", subject, "-out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "openssl cms -sign failed");
    let mut message =
        format!("Date: Wed, 01 Oct 2025 10:00:00 +0000\r\nMessage-ID: <{id}@partner.example>\r\n")
            .into_bytes();
    message.extend(crlf(&std::fs::read(&out).unwrap()));
    message
}

struct Fixture {
    _dir: tempfile::TempDir,
    work: PathBuf,
    store: Store,
    config: Config,
    keys: KeyCache,
}

fn fixture_store() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let store = Store::open(
        &dir.path().join("store"),
        StoreConfig {
            trust_anchor_files: vec![fixture("ca/partner-root.pem")],
            use_system_trust: false,
            ..Default::default()
        },
    )
    .unwrap();
    store
        .init_proxy_ca("Test Proxy CA", &["agency.example".to_string()])
        .unwrap();
    store
        .approve_domain("partner.example", DomainPolicy::Smime, "test", "")
        .unwrap();
    let mut config = Config::default_for_run(dir.path()).unwrap();
    config.internal_domains = vec!["agency.example".into()];
    config.cert_query_address = "cert-query@agency.example".into();
    Fixture {
        _dir: dir,
        work,
        store,
        config,
        keys: KeyCache::new(crate::smime::crypto::default_provider()),
    }
}

impl Fixture {
    fn handle_with(
        &self,
        config: &Config,
        limiter: &RateLimiter,
        sender: &str,
        message: &[u8],
    ) -> CertQueryOutcome {
        CertQuery {
            config,
            store: &self.store,
            keys: &self.keys,
            limiter,
        }
        .handle(sender, message, SystemTime::now())
    }

    fn handle(&self, sender: &str, message: &[u8]) -> CertQueryOutcome {
        // A fresh limiter per request: these tests are not about rate limits.
        self.handle_with(&self.config, &RateLimiter::new(100, 1000), sender, message)
    }

    fn request(&self, who: &str, from: &str, subject: &str, id: &str) -> Vec<u8> {
        signed_request(&self.work, who, from, subject, id)
    }

    /// `openssl cms -verify` with the store's proxy CA; returns the signer certificate text.
    fn openssl_verify(&self, message: &[u8]) -> String {
        let ca = self.work.join("proxy-ca.pem");
        std::fs::write(&ca, self.store.proxy_ca_certificate_pem().unwrap()).unwrap();
        let msg = self.work.join("reply.eml");
        std::fs::write(&msg, message).unwrap();
        let signer = self.work.join("signer.pem");
        let out = Command::new("openssl")
            .args(["cms", "-verify", "-CAfile"])
            .arg(&ca)
            .arg("-in")
            .arg(&msg)
            .arg("-signer")
            .arg(&signer)
            .args(["-out", "/dev/null"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl cms -verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-subject",
                "-ext",
                "subjectAltName",
                "-in",
            ])
            .arg(&signer)
            .output()
            .unwrap();
        String::from_utf8_lossy(&text.stdout).into_owned()
    }
}

fn header(message: &[u8], name: &str) -> Option<String> {
    headers::split(message).get(name).map(|h| h.value())
}

/// The reply's fields, asserting it is a reply of `kind`.
fn reply(outcome: CertQueryOutcome, kind: ReplyKind) -> (String, String, Vec<u8>, Option<String>) {
    match outcome {
        CertQueryOutcome::Reply {
            mail_from,
            rcpt_to,
            message,
            kind: k,
            reason,
            ..
        } => {
            assert_eq!(k, kind, "reason: {reason:?}");
            (mail_from, rcpt_to, message, reason)
        }
        other => panic!("expected a {kind:?} reply, got {other:?}"),
    }
}

/// Asserts a refusal whose reason contains `needle`, sent the bounce way.
fn assert_refused(outcome: CertQueryOutcome, envelope: &str, needle: &str) -> Vec<u8> {
    let (mail_from, rcpt_to, message, reason) = reply(outcome, ReplyKind::Refusal);
    let reason = reason.unwrap_or_default();
    assert!(
        reason.contains(needle),
        "reason {reason:?} lacks {needle:?}"
    );
    assert_eq!(mail_from, "");
    assert_eq!(rcpt_to, envelope);
    // Unfolded: the text is wrapped, possibly quoted-printable.
    let text = String::from_utf8_lossy(&message)
        .replace("=\r\n", "")
        .replace("\r\n", " ");
    assert!(
        text.contains(needle),
        "refusal text lacks {needle:?}:\n{text}"
    );
    assert_eq!(
        header(&message, "From").as_deref(),
        Some("\"Certificate query service\" <cert-query@agency.example>")
    );
    assert_eq!(
        header(&message, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert!(header(&message, "In-Reply-To").is_some());
    message
}

#[test]
fn certificate_reply_and_refusals() {
    let f = fixture_store();

    // Success: the ready-made fixture request from alice for user@agency.example.
    let request = std::fs::read(fixture("messages/cert-query.eml")).unwrap();
    let (mail_from, rcpt_to, message, reason) = reply(
        f.handle("alice@partner.example", &request),
        ReplyKind::Certificate,
    );
    assert_eq!(reason, None);
    assert_eq!(mail_from, "cert-query@agency.example");
    assert_eq!(rcpt_to, "alice@partner.example");
    assert_eq!(
        header(&message, "From").as_deref(),
        Some("<user@agency.example>")
    );
    assert_eq!(
        header(&message, "Sender").as_deref(),
        Some("<cert-query@agency.example>")
    );
    assert_eq!(
        header(&message, "To").as_deref(),
        Some("<alice@partner.example>")
    );
    assert_eq!(
        header(&message, "Subject").as_deref(),
        Some("Certificate for user@agency.example")
    );
    assert_eq!(
        header(&message, "In-Reply-To").as_deref(),
        Some("<cert-query.0001@partner.example>")
    );
    assert_eq!(
        header(&message, "References").as_deref(),
        Some("<cert-query.0001@partner.example>")
    );
    assert_eq!(
        header(&message, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert!(header(&message, "Message-ID")
        .unwrap()
        .ends_with("@localhost>"));
    assert!(header(&message, "Date").is_some());
    let text = String::from_utf8_lossy(&message);
    assert!(text.contains("multipart/signed"));
    assert!(text.contains("multipart/mixed"));
    assert!(text.contains("application/pkix-cert"));
    assert!(text.contains("user@agency.example.cer"));
    assert!(text.contains("proxy-ca.cer"));
    // Trust instructions: e-mail only, in each client, never as a general root.
    for want in [
        "for e-mail only",
        "addresses at agency.example;",
        "do not trust it for websites",
        "tick \"Secure Email\" only",
        "tick only \"Trust this CA to",
        "\"Secure Mail (S/MIME)\" to",
    ] {
        assert!(text.contains(want), "missing {want:?}:\n{text}");
    }
    assert!(
        !text.contains("under Trust choose \"Always Trust\""),
        "{text}"
    );
    let ca_fp = fingerprint(&f.store.proxy_ca_certificate_der().unwrap());
    assert!(
        text.contains(&ca_fp[..47]),
        "CA fingerprint missing:\n{text}"
    );
    let signer = f.openssl_verify(&message);
    assert!(signer.contains("user@agency.example"), "{signer}");
    // Our own engine reads it too, with both certificates in the signature.
    let opened = open_message(crate::smime::crypto::default_provider(), &message, &[]);
    let report = opened.signature().unwrap();
    assert!(report.outcome.is_valid());
    assert_eq!(report.signer_emails, vec!["user@agency.example"]);
    assert_eq!(report.certificates.len(), 2);
    // The partner's certificate was captured.
    assert!(f
        .store
        .current_partner_certificate("alice@partner.example")
        .unwrap()
        .is_some());

    // Angle brackets, case, Re: prefix: the same identity answers.
    let request = f.request(
        "alice",
        "alice@partner.example",
        "Re: <USER@Agency.Example>",
        "brackets",
    );
    let (_, _, message, _) = reply(
        f.handle("alice@partner.example", &request),
        ReplyKind::Certificate,
    );
    assert_eq!(
        header(&message, "From").as_deref(),
        Some("<user@agency.example>")
    );
    assert!(f.openssl_verify(&message).contains("user@agency.example"));

    // Unsigned.
    let plain = std::fs::read(fixture("messages/plain.eml")).unwrap();
    let refusal = assert_refused(
        f.handle("alice@partner.example", &plain),
        "alice@partner.example",
        "not signed",
    );
    // Refusals are signed by the cert-query address, verifiable with the proxy CA.
    assert!(f
        .openssl_verify(&refusal)
        .contains("cert-query@agency.example"));

    // Domain not approved: mallory's certificate is valid, but other.example is not approved.
    let request = f.request(
        "other",
        "mallory@other.example",
        "user@agency.example",
        "other",
    );
    // No refusal either: the envelope sender's domain is not a partner (no backscatter).
    match f.handle("mallory@other.example", &request) {
        CertQueryOutcome::NoReply { reason } => {
            assert!(reason.contains("not approved"), "{reason}");
            assert!(reason.contains("no refusal sent"), "{reason}");
        }
        other => panic!("expected NoReply, got {other:?}"),
    }
    assert!(f
        .store
        .current_partner_certificate("mallory@other.example")
        .unwrap()
        .is_none());

    // Self-signed and expired certificates: the validation reason is named.
    let request = f.request(
        "selfsigned",
        "eve@partner.example",
        "user@agency.example",
        "selfsigned",
    );
    assert_refused(
        f.handle("eve@partner.example", &request),
        "eve@partner.example",
        "self-signed",
    );
    let request = f.request(
        "expired",
        "dave@partner.example",
        "user@agency.example",
        "expired",
    );
    assert_refused(
        f.handle("dave@partner.example", &request),
        "dave@partner.example",
        "expired",
    );

    // Address mismatch: alice's certificate on a request from bob.
    let request = f.request(
        "alice",
        "bob@partner.example",
        "user@agency.example",
        "mismatch",
    );
    assert_refused(
        f.handle("bob@partner.example", &request),
        "bob@partner.example",
        "not for the sender",
    );

    // Content changed after signing (a footer appended by a server).
    let mut altered = std::fs::read(fixture("messages/cert-query.eml")).unwrap();
    let pos = String::from_utf8_lossy(&altered).find("Alice\r\n").unwrap();
    altered.splice(pos..pos, b"Disclaimer\r\n".iter().copied());
    assert_refused(
        f.handle("alice@partner.example", &altered),
        "alice@partner.example",
        "content changed",
    );

    // Subject not an internal address; no address at all.
    let request = f.request(
        "alice",
        "alice@partner.example",
        "bob@partner.example",
        "external",
    );
    assert_refused(
        f.handle("alice@partner.example", &request),
        "alice@partner.example",
        "not an agency address",
    );
    let request = f.request(
        "alice",
        "alice@partner.example",
        "certificate please",
        "none",
    );
    assert_refused(
        f.handle("alice@partner.example", &request),
        "alice@partner.example",
        "does not name an agency address",
    );

    // Unknown address when a list of internal addresses is configured.
    let mut listed = f.config.clone();
    listed.internal_addresses = Some(vec!["user@agency.example".into()]);
    let request = f.request(
        "alice",
        "alice@partner.example",
        "nobody@agency.example",
        "unknown",
    );
    assert_refused(
        f.handle_with(
            &listed,
            &RateLimiter::new(10, 1000),
            "alice@partner.example",
            &request,
        ),
        "alice@partner.example",
        "unknown address nobody@agency.example",
    );
    // The listed address is still answered under that configuration.
    let request = std::fs::read(fixture("messages/cert-query.eml")).unwrap();
    reply(
        f.handle_with(
            &listed,
            &RateLimiter::new(10, 1000),
            "alice@partner.example",
            &request,
        ),
        ReplyKind::Certificate,
    );

    // Rate limit: with 1 per hour the second request gets nothing.
    let limiter = RateLimiter::new(1, 1000);
    reply(
        f.handle_with(&f.config, &limiter, "alice@partner.example", &request),
        ReplyKind::Certificate,
    );
    match f.handle_with(&f.config, &limiter, "alice@partner.example", &request) {
        CertQueryOutcome::NoReply { reason } => assert!(reason.contains("rate limit")),
        other => panic!("expected NoReply, got {other:?}"),
    }
    // Refusals count too (they are replies to the same person).
    let limiter = RateLimiter::new(1, 1000);
    reply(
        f.handle_with(&f.config, &limiter, "alice@partner.example", &plain),
        ReplyKind::Refusal,
    );
    assert!(matches!(
        f.handle_with(&f.config, &limiter, "alice@partner.example", &plain),
        CertQueryOutcome::NoReply { .. }
    ));
}

#[test]
fn loops_get_no_reply() {
    // No proxy CA needed: none of these gets as far as the store.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), StoreConfig::default()).unwrap();
    let mut config = Config::default_for_run(dir.path()).unwrap();
    config.cert_query_address = "cert-query@agency.example".into();
    let keys = KeyCache::new(crate::smime::crypto::default_provider());
    let limiter = RateLimiter::new(100, 1000);
    let cq = CertQuery {
        config: &config,
        store: &store,
        keys: &keys,
        limiter: &limiter,
    };
    let request = std::fs::read(fixture("messages/cert-query.eml")).unwrap();
    let with = |field: &str| {
        let mut m = field.as_bytes().to_vec();
        m.extend_from_slice(&request);
        m
    };
    let now = SystemTime::now();
    for (sender, message, why) in [
        ("", request.clone(), "null envelope sender"),
        ("<>", request.clone(), "null envelope sender"),
        (
            "alice@partner.example",
            with("Auto-Submitted: auto-replied\r\n"),
            "Auto-Submitted",
        ),
        (
            "alice@partner.example",
            with("auto-submitted: Auto-Generated; x=y\r\n"),
            "Auto-Submitted",
        ),
        (
            "alice@partner.example",
            with("Precedence: bulk\r\n"),
            "Precedence",
        ),
        (
            "alice@partner.example",
            with("Precedence: LIST\r\n"),
            "Precedence",
        ),
        (
            "alice@partner.example",
            with("Precedence: junk\r\n"),
            "Precedence",
        ),
        ("cert-query@agency.example", request.clone(), "loop"),
        (
            "MAILER-DAEMON@partner.example",
            request.clone(),
            "mail system",
        ),
    ] {
        match cq.handle(sender, &message, now) {
            CertQueryOutcome::NoReply { reason } => {
                assert!(reason.contains(why), "{sender:?}: {reason}")
            }
            other => panic!("{sender:?} {why}: expected NoReply, got {other:?}"),
        }
    }
    // Auto-Submitted: no is an ordinary message: it gets past the loop checks (and is refused
    // here, silently, because nothing is approved in this store).
    let message = with("Auto-Submitted: no\r\n");
    match cq.handle("alice@partner.example", &message, now) {
        CertQueryOutcome::NoReply { reason } => {
            assert!(reason.contains("no refusal sent"), "{reason}")
        }
        other => panic!("expected NoReply, got {other:?}"),
    }
}

#[test]
fn internal_failures_are_temporary_and_do_not_use_the_allowance() {
    // An approved domain but no proxy CA: the store cannot issue a certificate.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("store"),
        StoreConfig {
            trust_anchor_files: vec![fixture("ca/partner-root.pem")],
            use_system_trust: false,
            ..Default::default()
        },
    )
    .unwrap();
    store
        .approve_domain("partner.example", DomainPolicy::Smime, "test", "")
        .unwrap();
    let config = Config::default_for_run(dir.path()).unwrap();
    let keys = KeyCache::new(crate::smime::crypto::default_provider());
    let limiter = RateLimiter::new(1, 1000);
    let cq = CertQuery {
        config: &config,
        store: &store,
        keys: &keys,
        limiter: &limiter,
    };
    let request = std::fs::read(fixture("messages/cert-query.eml")).unwrap();
    for _ in 0..3 {
        match cq.handle("alice@partner.example", &request, SystemTime::now()) {
            CertQueryOutcome::TemporaryFailure { reason } => {
                assert!(reason.contains("proxy"), "{reason}")
            }
            other => panic!("expected TemporaryFailure, got {other:?}"),
        }
    }
}

#[test]
fn garbage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), StoreConfig::default()).unwrap();
    store
        .approve_domain("partner.example", DomainPolicy::Smime, "test", "")
        .unwrap();
    let config = Config::default_for_run(dir.path()).unwrap();
    let keys = KeyCache::new(crate::smime::crypto::default_provider());
    let limiter = RateLimiter::new(1000, 1000);
    let cq = CertQuery {
        config: &config,
        store: &store,
        keys: &keys,
        limiter: &limiter,
    };
    let request = std::fs::read(fixture("messages/cert-query.eml")).unwrap();
    let now = SystemTime::now();
    for input in [
        &b""[..],
        b"\r\n\r\n",
        b"From: <>\r\n\r\n",
        b"From: a@exa_mple.example\r\n\r\n",
        b"From: alice@partner.example\r\nContent-Type: multipart/signed; boundary=x\r\n\r\n--x\r\n",
        b"From: alice@partner.example\r\nContent-Type: application/pkcs7-mime\r\n\r\nAAAA\r\n",
        &request[..request.len() / 2],
        &[0xff; 64],
    ] {
        // Every outcome is fine except a panic; a refusal must never go to a null sender.
        if let CertQueryOutcome::Reply { rcpt_to, .. } =
            cq.handle("alice@partner.example", input, now)
        {
            assert_eq!(rcpt_to, "alice@partner.example");
        }
    }
}
