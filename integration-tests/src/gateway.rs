//! Start the real `smime-gateway` binary with a temporary data directory and a configuration
//! that points its next hops at test sinks; stop it when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

pub fn fixture(p: &str) -> String {
    fixtures().join(p).to_string_lossy().into_owned()
}

/// Environment variable naming the `smime-gateway` binary to run (overrides the lookup).
pub const BINARY_ENV: &str = "SMIME_GATEWAY_BIN";

/// The `smime-gateway` binary to run: `$SMIME_GATEWAY_BIN` if set; else the one cargo built
/// beside the current executable, which is in the profile directory itself for a binary
/// (`target/release/demo` → `target/release/smime-gateway`) and one level up for a test
/// (`target/debug/deps/mail_flow-…` → `target/debug/smime-gateway`). Cargo builds every
/// workspace binary before it runs any test; if it is missing anyway, it is built with the
/// profile of the directory it belongs in.
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(BINARY_ENV) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("{BINARY_ENV}={} is not a file", p.display());
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("locating the current executable")?;
    let exe_dir = exe.parent().context("executable has no parent directory")?;
    // Binaries live in the profile directory, tests and examples one level below it.
    let profile_dir = match exe_dir.file_name().and_then(|n| n.to_str()) {
        Some("deps" | "examples") => exe_dir
            .parent()
            .context("test executable has no profile directory")?,
        _ => exe_dir,
    };
    let bin = profile_dir.join("smime-gateway");
    if !bin.exists() {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "gateway", "--bin", "smime-gateway"]);
        if profile_dir.file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().context("running cargo build")?;
        if !status.success() || !bin.exists() {
            bail!(
                "cannot build smime-gateway (expected at {}; set {BINARY_ENV} to use another)",
                bin.display()
            );
        }
    }
    Ok(bin)
}

/// The line (followed by the address) the gateway prints once its Postfix TLS policy
/// socketmap listens; printed before the SMTP line.
pub const SOCKETMAP_ANNOUNCEMENT: &str = "Postfix TLS policy socketmap listening on ";

/// The line (followed by the address) the gateway prints once its LMTP listener (`[lmtp]`)
/// is up; printed before the SMTP line.
pub const LMTP_ANNOUNCEMENT: &str = "LMTP listening on ";

pub struct GatewayProcess {
    child: Child,
    bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub smtp: String,
    pub admin: String,
    /// The Postfix TLS policy socketmap listener, when configured.
    pub socketmap: Option<String>,
    /// The LMTP listener, when `[lmtp] listen` is configured.
    pub lmtp: Option<String>,
    log: Option<PathBuf>,
}

/// Work on the data directory before the gateway serves (see [`Options::before_serve`]).
pub type BeforeServe = dyn Fn(&Path) -> anyhow::Result<()>;

/// How a test gateway differs from the default one [`GatewayProcess::start`] makes.
#[derive(Default)]
pub struct Options<'a> {
    /// TOML appended to the top-level keys.
    pub top: &'a str,
    /// TOML appended to the `[smtp]` section.
    pub smtp: &'a str,
    /// TOML appended to the `[outbound]` section.
    pub outbound: &'a str,
    /// Further sections (`[postfix]`...) appended at the end.
    pub sections: &'a str,
    /// Operator commands run before serving (e.g. approve domains).
    pub setup: &'a [&'a [&'a str]],
    /// Called with the data directory after `setup`, before serving (no process holds the
    /// store then): e.g. to damage records on purpose.
    pub before_serve: Option<&'a BeforeServe>,
    /// Log at `info` into a file ([`GatewayProcess::log`]) instead of `warn` to stderr.
    pub capture_log: bool,
    /// The SMTP port (0: any free port); fixed for an MTA in front that must find the gateway
    /// again after [`GatewayProcess::restart`].
    pub smtp_port: u16,
}

impl GatewayProcess {
    /// Write a configuration (with `extra` TOML appended to the top-level keys), initialise,
    /// run `setup` commands (e.g. approve domains) and start serving.
    pub fn start(
        inbound_hop: &str,
        outbound_hop: &str,
        extra_top: &str,
        setup: &[&[&str]],
    ) -> anyhow::Result<Self> {
        Self::start_with(
            inbound_hop,
            outbound_hop,
            Options {
                top: extra_top,
                setup,
                ..Options::default()
            },
        )
    }

    /// [`GatewayProcess::start`] with every [`Options`] knob.
    pub fn start_with(
        inbound_hop: &str,
        outbound_hop: &str,
        options: Options<'_>,
    ) -> anyhow::Result<Self> {
        let Options {
            top: extra_top,
            smtp: extra_smtp,
            outbound: extra_outbound,
            sections,
            setup,
            before_serve,
            capture_log,
            smtp_port,
        } = options;
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("gateway.toml");
        let text = format!(
            r#"data_dir = "{data}"
hostname = "gw.agency.example"
internal_domains = ["agency.example"]
cert_query_address = "cert-query@agency.example"
{extra_top}

[smtp]
listen = "127.0.0.1:{smtp_port}"
idle_timeout_secs = 30
command_timeout_secs = 30
{extra_smtp}

[inbound]
next_hop = "{inbound_hop}"
tls = "none"
timeout_secs = 5

[outbound]
next_hop = "{outbound_hop}"
tls = "none"
timeout_secs = 5
{extra_outbound}

[trust]
anchor_files = ["{root}"]
use_system_store = false

[admin]
listen = "127.0.0.1:0"

{sections}
"#,
            data = dir.path().join("data").display(),
            root = fixture("ca/partner-root.pem"),
        );
        std::fs::write(&config, text)?;
        let bin = binary()?;
        let config_arg = config.to_string_lossy().into_owned();
        let out = Command::new(&bin)
            .args(["init", "--config", &config_arg])
            .output()
            .with_context(|| format!("running {} init", bin.display()))?;
        if !out.status.success() {
            bail!("init failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        for args in setup {
            let mut full: Vec<&str> = args.to_vec();
            full.extend_from_slice(&["--config", &config_arg]);
            let out = Command::new(&bin)
                .args(&full)
                .output()
                .with_context(|| format!("running {} {args:?}", bin.display()))?;
            if !out.status.success() {
                bail!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        if let Some(f) = before_serve {
            f(&dir.path().join("data"))?;
        }
        let log = capture_log.then(|| dir.path().join("gateway.log"));
        let (child, smtp, admin, socketmap, lmtp) = serve(&bin, &config, log.as_deref())?;
        Ok(Self {
            child,
            bin,
            dir,
            config,
            smtp,
            admin,
            socketmap,
            lmtp,
            log,
        })
    }

    /// Stop the serving gateway (SIGTERM, as an operator would).
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }

    /// Start serving again with the same configuration and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        terminate(&mut self.child);
        let (child, smtp, admin, socketmap, lmtp) =
            serve(&self.bin, &self.config, self.log.as_deref())?;
        self.child = child;
        self.smtp = smtp;
        self.admin = admin;
        self.socketmap = socketmap;
        self.lmtp = lmtp;
        Ok(())
    }

    /// What the gateway logged so far (with [`Options::capture_log`]; empty otherwise).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// A gateway relaying to the two sinks, with `partner.example` approved for S/MIME.
    pub fn start_with_partner(
        inbound: &crate::SmtpSink,
        outbound: &crate::SmtpSink,
    ) -> anyhow::Result<Self> {
        Self::start(
            &inbound.address(),
            &outbound.address(),
            "",
            &[&["domains", "add", "partner.example", "--policy", "smime"]],
        )
    }

    /// `requester`'s cert-query for `wanted` (signed with `fixtures/partner/<signer>`, which
    /// also registers the requester's certificate); returns the reply as it reached
    /// `outbound`, which held `replies_before` messages before.
    pub fn cert_query(
        &self,
        outbound: &crate::SmtpSink,
        (requester, signer): (&str, &str),
        wanted: &str,
        replies_before: usize,
    ) -> anyhow::Result<Vec<u8>> {
        let request = crate::openssl::partner_message(
            requester,
            "cert-query@agency.example",
            wanted,
            "Please send your certificate.",
            Some(signer),
        )?;
        let (code, text) = crate::send_mail(
            &self.smtp,
            requester,
            &["cert-query@agency.example"],
            &request,
        )?;
        if code != 250 {
            bail!("cert-query answered {code} {text}");
        }
        let replies = outbound.wait_for_messages(replies_before + 1, Duration::from_secs(20))?;
        Ok(replies[replies_before].data.clone())
    }

    /// Runs an operator command (`args`, then `--config <this gateway's config>`) and returns
    /// its standard output; an error if it fails.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .with_context(|| format!("running {} {args:?}", self.bin.display()))?;
        if !out.status.success() {
            bail!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `GET path` on the admin API with the admin token; returns the status and the body.
    pub fn admin_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        self.admin_call("GET", path)
    }

    /// `method path` (no body) on the admin API with the admin token; returns the status
    /// and the body.
    pub fn admin_call(&self, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
        use std::io::{Read, Write};
        let token_file = self.data_dir().join("admin.token");
        let token = std::fs::read_to_string(&token_file)
            .with_context(|| format!("reading {}", token_file.display()))?;
        let mut s = std::net::TcpStream::connect(&self.admin)
            .with_context(|| format!("connecting to the admin API at {}", self.admin))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.admin,
            token.trim()
        )?;
        let mut response = Vec::new();
        s.read_to_end(&mut response)
            .context("reading the admin API response")?;
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("malformed HTTP response: {head}"))?;
        Ok((status, body.to_string()))
    }

    /// Process id of the serving gateway (for /proc/<pid>/status and the like).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The binary this gateway runs.
    pub fn binary(&self) -> &Path {
        &self.bin
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn proxy_ca_pem(&self) -> String {
        self.data_dir()
            .join("proxy-ca.pem")
            .to_string_lossy()
            .into_owned()
    }
}

type Started = (Child, String, String, Option<String>, Option<String>);

/// Start `serve` and wait until it says where it listens: the child, the SMTP and admin
/// addresses, and the socketmap's and LMTP listener's when configured.
fn serve(bin: &Path, config: &Path, log: Option<&Path>) -> anyhow::Result<Started> {
    let config_arg = config.to_string_lossy().into_owned();
    let stderr = match log {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None => Stdio::inherit(),
    };
    let mut child = Command::new(bin)
        .args(["serve", "--config", &config_arg])
        .env("RUST_LOG", if log.is_some() { "info" } else { "warn" })
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {} serve", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining after start-up so the gateway never writes into a closed pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut smtp, mut admin, mut socketmap, mut lmtp) = (None, None, None, None);
    while smtp.is_none() || admin.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .context("gateway did not start")?;
        if let Some(a) = line.strip_prefix(SOCKETMAP_ANNOUNCEMENT) {
            socketmap = Some(a.trim().to_string());
        } else if let Some(a) = line.strip_prefix(LMTP_ANNOUNCEMENT) {
            lmtp = Some(a.trim().to_string());
        } else if let Some(a) = line.strip_prefix("SMTP listening on ") {
            smtp = Some(a.trim().to_string());
        } else if let Some(a) = line.strip_prefix("admin API listening on http://") {
            admin = Some(a.trim().to_string());
        }
    }
    Ok((
        child,
        smtp.unwrap_or_default(),
        admin.unwrap_or_default(),
        socketmap,
        lmtp,
    ))
}

/// SIGTERM first so the store is flushed, then make sure.
fn terminate(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    #[cfg(unix)]
    unsafe_free_terminate(child.id());
    for _ in 0..50 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

#[cfg(unix)]
fn unsafe_free_terminate(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}
