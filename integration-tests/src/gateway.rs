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

/// The `smime-gateway` binary next to this test executable (cargo builds every workspace
/// binary before it runs any test).
pub fn binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no parent")?;
    let bin = dir.join("smime-gateway");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "gateway", "--bin", "smime-gateway"])
            .status()?;
        if !status.success() {
            bail!("cannot build smime-gateway");
        }
    }
    Ok(bin)
}

pub struct GatewayProcess {
    child: Child,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub smtp: String,
    pub admin: String,
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
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("gateway.toml");
        let text = format!(
            r#"data_dir = "{data}"
hostname = "gw.agency.example"
internal_domains = ["agency.example"]
cert_query_address = "cert-query@agency.example"
{extra_top}

[smtp]
listen = "127.0.0.1:0"
idle_timeout_secs = 30
command_timeout_secs = 30

[inbound]
next_hop = "{inbound_hop}"
tls = "none"
timeout_secs = 5

[outbound]
next_hop = "{outbound_hop}"
tls = "none"
timeout_secs = 5

[trust]
anchor_files = ["{root}"]
use_system_store = false

[admin]
listen = "127.0.0.1:0"
"#,
            data = dir.path().join("data").display(),
            root = fixture("ca/partner-root.pem"),
        );
        std::fs::write(&config, text)?;
        let bin = binary()?;
        let config_arg = config.to_string_lossy().into_owned();
        let out = Command::new(&bin)
            .args(["init", "--config", &config_arg])
            .output()?;
        if !out.status.success() {
            bail!("init failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        for args in setup {
            let mut full: Vec<&str> = args.to_vec();
            full.extend_from_slice(&["--config", &config_arg]);
            let out = Command::new(&bin).args(&full).output()?;
            if !out.status.success() {
                bail!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        let mut child = Command::new(&bin)
            .args(["serve", "--config", &config_arg])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining after start-up so the gateway never writes into a closed pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut smtp, mut admin) = (None, None);
        while smtp.is_none() || admin.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .context("gateway did not start")?;
            if let Some(a) = line.strip_prefix("SMTP listening on ") {
                smtp = Some(a.trim().to_string());
            } else if let Some(a) = line.strip_prefix("admin API listening on http://") {
                admin = Some(a.trim().to_string());
            }
        }
        Ok(Self {
            child,
            dir,
            config,
            smtp: smtp.unwrap_or_default(),
            admin: admin.unwrap_or_default(),
        })
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

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        // SIGTERM first so the store is flushed, then make sure.
        #[cfg(unix)]
        unsafe_free_terminate(self.child.id());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(unix)]
fn unsafe_free_terminate(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}
