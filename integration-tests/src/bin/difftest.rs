//! `make difftest`: differential testing of the S/MIME engine against `openssl cms`.
//!
//! Valid signed and encrypted messages (made by OpenSSL from the fixtures) are mutated (MIME
//! header fields and structure, CMS fields and encodings, random bit flips) and each mutant is
//! read by the engine and by `openssl cms -verify -noverify` / `-decrypt`. The two readings
//! must agree: both refuse, or both accept with the same content. A disagreement is allowed
//! only when `integration-tests/difftest-known.tsv` lists it with its reason (the engine's
//! reason names the documented case); any other is a failure, and the message is kept under
//! `target/difftest/` to become a regression test.
//!
//! `DIFF_SECONDS` (default 60) bounds the run; `DIFF_SEED` picks the mutation sequence.
//! `DIFF_EXHAUSTIVE=<seed>` instead tries every single-bit flip of that seed's CMS text
//! (`detached`, `opaque`, `aes256-cbc`, `aes256-gcm`).

#![allow(clippy::indexing_slicing)] // a test tool over our own fixtures: a bad index is a failed run, not a stalled gateway

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use gateway::mime::open_message;
use gateway::smime::crypto::{CryptoProvider, PrivateKey};
use gateway::smime::decrypt::DecryptionKey;
use integration_tests::gateway::fixture;

/// What one reader made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reading {
    /// Accepted (signature valid, or decrypted), with the content it vouches for.
    Accepted(Vec<u8>),
    /// Refused, with the reason given.
    Refused(String),
}

struct Known {
    id: String,
    /// Text that appears in the engine's reason when this documented case applies.
    engine_reason: String,
    /// "engine-refuses" (OpenSSL accepts) or "engine-accepts" (OpenSSL refuses).
    direction: String,
}

struct Seed {
    name: &'static str,
    message: Vec<u8>,
    encrypted: bool,
}

/// xorshift64*: deterministic, so a failing mutation can be replayed with its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("DIFF_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234);
    let known = load_known()?;
    let seeds = make_seeds()?;
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/difftest");
    std::fs::create_dir_all(&out_dir)?;
    let key_pem = std::fs::read(fixture("proxy/user.key"))?;
    let key = crypto().load_private_key(&key_pem).context("proxy key")?;
    let cert = gateway::smime::certs::parse_certificate(&std::fs::read(fixture("proxy/user.pem"))?)
        .context("proxy certificate")?;

    // The seeds themselves must read the same way, or the harness is wrong.
    for s in &seeds {
        let ours = engine_reading(&s.message, s.encrypted, &cert, &key);
        let theirs = openssl_reading(&s.message, s.encrypted)?;
        if !agree(&ours, &theirs) {
            bail!(
                "seed {} disagrees before any mutation: engine {ours:?}, openssl {theirs:?}",
                s.name
            );
        }
    }

    let nss = Nss::new()?;
    if nss.is_none() {
        println!(
            "cmsutil not found: disagreements are not tie-broken by NSS (make deps installs it)"
        );
    }

    let mut tally = Tally {
        known: &known,
        nss: nss.as_ref(),
        cert: &cert,
        key: &key,
        out_dir: &out_dir,
        counts: Counts::default(),
    };
    match std::env::var("DIFF_EXHAUSTIVE") {
        // Every single-bit flip of the named seed's CMS text (its base64 lines): a class
        // checked completely rather than sampled.
        Ok(name) => {
            let s = seeds
                .iter()
                .find(|s| s.name == name)
                .with_context(|| format!("DIFF_EXHAUSTIVE: no seed named {name}"))?;
            let (first, end) = cms_text_range(&s.message)
                .with_context(|| format!("no base64 CMS text in seed {name}"))?;
            for at in first..end {
                for bit in 0..8 {
                    let mut mutant = s.message.clone();
                    mutant[at] ^= 1 << bit;
                    tally.judge(s, "bitflip", &mutant)?;
                }
            }
        }
        Err(_) => {
            let mut rng = Rng(seed | 1);
            let deadline = Instant::now() + Duration::from_secs(seconds);
            while Instant::now() < deadline {
                let s = &seeds[rng.below(seeds.len())];
                let (mutation, mutant) = mutate(&s.message, &mut rng);
                tally.judge(s, mutation, &mutant)?;
            }
        }
    }
    let Counts {
        cases,
        agreed,
        documented,
        nss_sides_with_engine,
        undocumented,
        slowest,
        by_known,
    } = tally.counts;
    println!(
        "difftest: {cases} cases, {agreed} agreed, {documented} documented differences, {nss_sides_with_engine} settled by NSS (reads as the engine), {undocumented} undocumented; slowest engine reading {} ms",
        slowest.as_millis()
    );
    for (id, n) in &by_known {
        println!("  documented {id}: {n}");
    }
    if undocumented > 0 {
        bail!("{undocumented} undocumented disagreements (messages under target/difftest/)");
    }
    Ok(())
}

/// What a run needs to judge a mutant, and its counts so far.
struct Tally<'a> {
    known: &'a [Known],
    nss: Option<&'a Nss>,
    cert: &'a x509_cert::Certificate,
    key: &'a PrivateKey,
    out_dir: &'a std::path::Path,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    cases: usize,
    agreed: usize,
    documented: usize,
    nss_sides_with_engine: usize,
    undocumented: usize,
    slowest: Duration,
    by_known: std::collections::BTreeMap<String, usize>,
}

impl Tally<'_> {
    /// Reads `mutant` (made from `seed` by `mutation`) with the engine and OpenSSL (and NSS
    /// when they disagree) and counts the outcome; an unexplained disagreement is kept on disk.
    fn judge(&mut self, seed: &Seed, mutation: &str, mutant: &[u8]) -> anyhow::Result<()> {
        let c = &mut self.counts;
        c.cases += 1;
        let started = Instant::now();
        let ours = engine_reading(mutant, seed.encrypted, self.cert, self.key);
        c.slowest = c.slowest.max(started.elapsed());
        let theirs = openssl_reading(mutant, seed.encrypted)?;
        if agree(&ours, &theirs) {
            c.agreed += 1;
            return Ok(());
        }
        if let Some(k) = documented_case(self.known, mutation, &ours, &theirs) {
            c.documented += 1;
            *c.by_known.entry(k.id.clone()).or_default() += 1;
            return Ok(());
        }
        // The tie-breaker: NSS (Thunderbird's engine) reads the same CMS; when it reads it
        // as the engine does, OpenSSL is the odd one out.
        let third = match self.nss {
            Some(nss) => nss.reading(mutant, seed.encrypted)?,
            None => None,
        };
        if third.as_ref().is_some_and(|n| agree(n, &ours)) {
            c.nss_sides_with_engine += 1;
            return Ok(());
        }
        c.undocumented += 1;
        let path = self
            .out_dir
            .join(format!("{}-{}-{mutation}.eml", seed.name, c.cases));
        std::fs::write(&path, mutant)?;
        println!(
            "DISAGREE {} ({mutation}): engine {}, openssl {}, nss {}",
            path.display(),
            short(&ours),
            short(&theirs),
            third.as_ref().map_or("cannot judge".into(), short)
        );
        Ok(())
    }
}

fn short(r: &Reading) -> String {
    match r {
        Reading::Accepted(c) => format!("accepted ({} bytes)", c.len()),
        Reading::Refused(why) => format!("refused: {}", why.lines().next().unwrap_or("")),
    }
}

fn load_known() -> anyhow::Result<Vec<Known>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("difftest-known.tsv");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut cols = l.split('\t');
            Some(Known {
                id: cols.next()?.to_string(),
                direction: cols.next()?.to_string(),
                engine_reason: cols.next()?.to_string(),
            })
        })
        .collect())
}

/// The documented difference this disagreement is, if any. An engine refusal is matched by
/// its reason; an engine acceptance (the dangerous direction) only by the exact mutation or
/// OpenSSL error that the entry names, and only when the engine vouched for the unmutated
/// content.
fn documented_case<'k>(
    known: &'k [Known],
    mutation: &str,
    ours: &Reading,
    theirs: &Reading,
) -> Option<&'k Known> {
    known.iter().find(|k| match (ours, theirs) {
        (Reading::Refused(why), Reading::Accepted(_)) => {
            k.direction == "engine-refuses" && why.contains(&k.engine_reason)
        }
        (Reading::Accepted(content), Reading::Refused(openssl_error)) => {
            let (named, same_content_required) = match k.engine_reason.split_once(':') {
                Some(("mutation", m)) => (m == mutation, true),
                Some(("openssl", text)) => (openssl_error.contains(text), true),
                // Decryption only (no signature claim): the content may differ.
                Some(("openssl-decrypt", text)) => (openssl_error.contains(text), false),
                _ => (false, true),
            };
            k.direction == "engine-accepts"
                && named
                && (!same_content_required || normalise(content) == normalise(BODY))
        }
        _ => false,
    })
}

/// Same verdict, and when accepted, the same content (line ends and trailing space aside).
fn agree(a: &Reading, b: &Reading) -> bool {
    match (a, b) {
        (Reading::Refused(_), Reading::Refused(_)) => true,
        (Reading::Accepted(x), Reading::Accepted(y)) => normalise(x) == normalise(y),
        _ => false,
    }
}

fn normalise(content: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = content.iter().copied().filter(|b| *b != b'\r').collect();
    let end = text
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    text[..end].to_vec()
}

fn engine_reading(
    message: &[u8],
    encrypted: bool,
    cert: &x509_cert::Certificate,
    key: &PrivateKey,
) -> Reading {
    let keys = [DecryptionKey {
        certificate: cert,
        key,
    }];
    let opened = open_message(crypto(), message, if encrypted { &keys } else { &[] });
    if let Some(e) = &opened.stopped {
        return Reading::Refused(e.to_string());
    }
    if encrypted {
        if !opened.decrypted() {
            return Reading::Refused("not decrypted".into());
        }
        return Reading::Accepted(opened.content);
    }
    match opened.signature() {
        None => Reading::Refused("not signed".into()),
        Some(s) if !s.outcome.is_valid() => Reading::Refused(s.outcome.describe()),
        Some(_) => Reading::Accepted(opened.content),
    }
}

fn openssl_reading(message: &[u8], encrypted: bool) -> anyhow::Result<Reading> {
    let user = fixture("proxy/user.pem");
    let key = fixture("proxy/user.key");
    let args: Vec<&str> = if encrypted {
        vec!["cms", "-decrypt", "-recip", &user, "-inkey", &key]
    } else {
        vec!["cms", "-verify", "-noverify"]
    };
    let mut child = Command::new("openssl")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running openssl")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let input = message.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output()?;
    let _ = writer.join();
    Ok(if out.status.success() {
        Reading::Accepted(out.stdout)
    } else {
        Reading::Refused(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

/// NSS `cmsutil` with a database holding the proxy user's key and trusting the partner root.
struct Nss {
    dir: tempfile::TempDir,
}

impl Nss {
    /// None when `cmsutil` is not installed.
    fn new() -> anyhow::Result<Option<Nss>> {
        if Command::new("cmsutil").arg("-H").output().is_err() {
            return Ok(None);
        }
        let nss = Nss {
            dir: tempfile::tempdir()?,
        };
        let db = nss.db();
        let pw = nss.file("pw");
        std::fs::write(&pw, "\n")?;
        let p12 = nss.file("user.p12");
        openssl_ok(
            &[
                "pkcs12",
                "-export",
                "-in",
                &fixture("proxy/user.pem"),
                "-inkey",
                &fixture("proxy/user.key"),
                "-out",
                &p12,
                "-passout",
                "pass:x",
                "-name",
                "user",
            ],
            b"",
        )?;
        run_ok("certutil", &["-N", "-d", &db, "-f", &pw])?;
        run_ok("pk12util", &["-i", &p12, "-d", &db, "-W", "x", "-k", &pw])?;
        let root = fixture("ca/partner-root.pem");
        run_ok(
            "certutil",
            &["-A", "-d", &db, "-n", "root", "-t", "C,C,C", "-i", &root],
        )?;
        Ok(Some(nss))
    }

    fn db(&self) -> String {
        format!("sql:{}", self.dir.path().display())
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// NSS's reading of the CMS the engine's MIME reader finds in `message` (NSS itself has no
    /// MIME reader); None when there is no CMS to give it.
    fn reading(&self, message: &[u8], encrypted: bool) -> anyhow::Result<Option<Reading>> {
        use gateway::mime::classify::{classify, Classified};
        let (cms, detached) = match classify(message) {
            Ok(Classified::Encrypted(cms) | Classified::SignedOpaque(cms)) => (cms, None),
            Ok(Classified::SignedDetached { signed, signature }) => (
                signature,
                Some(gateway::smime::canonical::to_crlf(signed).into_owned()),
            ),
            _ => return Ok(None),
        };
        let (input, content, output) =
            (self.file("in.cms"), self.file("content"), self.file("out"));
        std::fs::write(&input, &cms)?;
        let _ = std::fs::remove_file(&output);
        let (db, pw) = (self.db(), self.file("pw"));
        let mut args = vec!["-D", "-i", &input, "-d", &db, "-f", &pw, "-o", &output];
        if let Some(signed) = &detached {
            std::fs::write(&content, signed)?;
            args.extend(["-c", &content]);
        }
        let out = Command::new("cmsutil").args(&args).output()?;
        if !out.status.success() {
            return Ok(Some(Reading::Refused(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )));
        }
        let decoded = std::fs::read(&output).unwrap_or_default();
        if encrypted {
            return Ok(Some(Reading::Accepted(decoded)));
        }
        // The signers' results, as headers (-h) in a second run without the content (-n).
        args.extend(["-n", "-h", "8"]);
        let _ = Command::new("cmsutil").args(&args).output()?;
        let info =
            String::from_utf8_lossy(&std::fs::read(&output).unwrap_or_default()).into_owned();
        let statuses: Vec<&str> = info
            .split(';')
            .filter_map(|field| field.trim().split_once(".status="))
            .map(|(_, status)| status)
            .collect();
        if statuses.is_empty() || statuses.iter().any(|s| *s != "GoodSignature") {
            return Ok(Some(Reading::Refused(format!("signers: {statuses:?}"))));
        }
        Ok(Some(Reading::Accepted(detached.unwrap_or(decoded))))
    }
}

fn run_ok(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(cmd).args(args).output()?;
    if !out.status.success() {
        bail!("{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn openssl_ok(args: &[&str], input: &[u8]) -> anyhow::Result<Vec<u8>> {
    integration_tests::openssl::ok(args, input)
}

const BODY: &[u8] = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nHello from the partner.\r\nSecond line.\r\n";
const HEADERS: &[u8] =
    b"From: alice@partner.example\r\nTo: user@agency.example\r\nSubject: difftest\r\n";

fn crlf(bytes: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 40);
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(*b);
    }
    out
}

fn make_seeds() -> anyhow::Result<Vec<Seed>> {
    let alice = fixture("partner/alice.pem");
    let alice_key = fixture("partner/alice.key");
    let chain = fixture("ca/partner-chain.pem");
    let user = fixture("proxy/user.pem");
    let sign = |extra: &[&str]| -> anyhow::Result<Vec<u8>> {
        let mut args = vec![
            "cms",
            "-sign",
            "-signer",
            &alice,
            "-inkey",
            &alice_key,
            "-certfile",
            &chain,
        ];
        args.extend_from_slice(extra);
        let mut m = HEADERS.to_vec();
        m.extend_from_slice(&crlf(openssl_ok(&args, BODY)?));
        Ok(m)
    };
    let encrypt = |cipher: &str| -> anyhow::Result<Vec<u8>> {
        let mut m = HEADERS.to_vec();
        m.extend_from_slice(&crlf(openssl_ok(
            &["cms", "-encrypt", cipher, "-recip", &user],
            BODY,
        )?));
        Ok(m)
    };
    Ok(vec![
        Seed {
            name: "detached",
            message: sign(&[])?,
            encrypted: false,
        },
        Seed {
            name: "opaque",
            message: sign(&["-nodetach"])?,
            encrypted: false,
        },
        Seed {
            name: "aes256-cbc",
            message: encrypt("-aes256")?,
            encrypted: true,
        },
        Seed {
            name: "aes256-gcm",
            message: encrypt("-aes-256-gcm")?,
            encrypted: true,
        },
    ])
}

/// One mutation of `message`, named for the report.
fn mutate(message: &[u8], rng: &mut Rng) -> (&'static str, Vec<u8>) {
    match rng.below(10) {
        0 => ("bitflip", bit_flips(message, rng)),
        1 => ("dup-header", duplicate_header(message, rng)),
        2 => ("drop-line", drop_line(message, rng)),
        3 => ("junk-line", junk_line(message, rng)),
        4 => ("extra-part", extra_part(message)),
        5 => ("case", change_case(message, rng)),
        _ => mutate_cms(message, rng),
    }
}

fn lines(message: &[u8]) -> Vec<Vec<u8>> {
    message
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn header_lines(ls: &[Vec<u8>]) -> Vec<usize> {
    ls.iter()
        .enumerate()
        .filter(|(_, l)| {
            l.iter()
                .take_while(|b| **b != b':')
                .all(|b| b.is_ascii_graphic())
                && l.contains(&b':')
                && !l.starts_with(b" ")
        })
        .map(|(i, _)| i)
        .collect()
}

fn bit_flips(message: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = message.to_vec();
    for _ in 0..1 + rng.below(3) {
        let i = rng.below(m.len());
        m[i] ^= 1 << rng.below(8);
    }
    m
}

fn duplicate_header(message: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut ls = lines(message);
    let hs = header_lines(&ls);
    if hs.is_empty() {
        return message.to_vec();
    }
    let i = hs[rng.below(hs.len())];
    let copy = ls[i].clone();
    ls.insert(if rng.below(2) == 0 { i } else { i + 1 }, copy);
    ls.concat()
}

fn drop_line(message: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut ls = lines(message);
    if ls.len() > 1 {
        ls.remove(rng.below(ls.len()));
    }
    ls.concat()
}

fn junk_line(message: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut ls = lines(message);
    let hs = header_lines(&ls);
    let at = hs.get(rng.below(hs.len())).copied().unwrap_or(0);
    ls.insert(at, b"a line without a colon\r\n".to_vec());
    ls.concat()
}

fn extra_part(message: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(message).into_owned();
    let Some(boundary) = text
        .split("boundary=\"")
        .nth(1)
        .and_then(|b| b.split('"').next())
    else {
        return message.to_vec();
    };
    let closing = format!("--{boundary}--");
    text.replacen(
        &closing,
        &format!("--{boundary}\r\nContent-Type: text/plain\r\n\r\nextra\r\n\r\n{closing}"),
        1,
    )
    .into_bytes()
}

fn change_case(message: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut ls = lines(message);
    let hs = header_lines(&ls);
    if let Some(&i) = hs.get(rng.below(hs.len())) {
        ls[i] = ls[i].to_ascii_uppercase();
    }
    ls.concat()
}

/// Decode the (last) base64 body, mutate its DER, and put it back.
/// The byte range of the message's CMS text: its last run of base64 lines (the signature
/// part, or the whole body), line ends included.
fn cms_text_range(message: &[u8]) -> Option<(usize, usize)> {
    let is_b64_line = |l: &[u8]| {
        let l = l.strip_suffix(b"\r\n").unwrap_or(l);
        !l.is_empty()
            && l.len() <= 80
            && l.iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b))
    };
    let mut ranges = Vec::new();
    let mut offset = 0;
    let mut run: Option<(usize, usize)> = None;
    for line in message.split_inclusive(|b| *b == b'\n') {
        if is_b64_line(line) && line.len() >= 40 || (run.is_some() && is_b64_line(line)) {
            let start = run.map_or(offset, |(s, _)| s);
            run = Some((start, offset + line.len()));
        } else if let Some(r) = run.take() {
            ranges.push(r);
        }
        offset += line.len();
    }
    ranges.extend(run);
    ranges.pop()
}

fn mutate_cms(message: &[u8], rng: &mut Rng) -> (&'static str, Vec<u8>) {
    let text = String::from_utf8_lossy(message).into_owned();
    // The last run of base64 lines is the CMS object (signature part or whole body).
    let ls: Vec<&str> = text.split("\r\n").collect();
    let is_b64 = |l: &str| {
        l.len() >= 40
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
    };
    let Some(last) = ls.iter().rposition(|l| is_b64(l)) else {
        return ("bitflip", bit_flips(message, rng));
    };
    let mut first = last;
    while first > 0
        && (is_b64(ls[first - 1])
            || (!ls[first - 1].is_empty()
                && ls[first - 1].len() < 80
                && ls[first - 1]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))))
    {
        first -= 1;
    }
    let b64: String = ls[first..=last].concat();
    let engine = base64::engine::general_purpose::STANDARD;
    let Ok(mut der) = engine.decode(b64.as_bytes()) else {
        return ("bitflip", bit_flips(message, rng));
    };
    let mut name = "cms";
    match rng.below(5) {
        0 => {
            let i = rng.below(der.len());
            der[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = rng.below(der.len());
            der[i] = rng.below(256) as u8;
        }
        2 => {
            let keep = rng.below(der.len());
            der.truncate(keep);
        }
        3 => {
            // Change a length-ish byte just after a tag.
            let i = rng.below(der.len().saturating_sub(1)) + 1;
            der[i] = der[i].wrapping_add(1 + rng.below(3) as u8);
        }
        _ => {
            der.extend_from_slice(&[0u8; 4]);
            name = "cms-trailing";
        }
    }
    let encoded = engine.encode(&der);
    let new_lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    let mut out: Vec<&str> = ls[..first].to_vec();
    out.extend(new_lines);
    out.extend_from_slice(&ls[last + 1..]);
    (name, out.join("\r\n").into_bytes())
}

/// The engine's backend for this run: the build's default.
fn crypto() -> &'static CryptoProvider {
    gateway::smime::crypto::default_provider()
}
