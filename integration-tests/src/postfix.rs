//! A real Postfix in front of the gateway, configured by `docs/postfix.md` itself.
//!
//! The `main.cf` and `master.cf` blocks of the doc are read at run time and used verbatim;
//! the harness adds only what a test machine needs: its own config and queue directories, the
//! loopback ports (the doc's 10024–10027 and the front door's 25 become ephemeral ones),
//! and where finished mail goes (staff mailboxes and the Internet are two SMTP sinks). The
//! doc's `gateway.toml` block is given to the gateway the same way ([`gateway_settings`]).
//!
//! Postfix runs as root with `postfix -c DIR start`; no system service is needed. It logs to a
//! file in DIR (`log()`), which is what to read when a test fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub struct Postfix {
    pub dir: tempfile::TempDir,
    /// The front door (the doc's `:25`): where partners and staff hand in mail.
    pub front: String,
    /// The re-injection ports the gateway delivers to (the doc's 10026 and 10027).
    pub inbound_reinject: u16,
    pub outbound_reinject: u16,
}

/// The ports a Postfix-fronted gateway needs, chosen before either starts.
pub struct Ports {
    pub front: u16,
    /// The gateway's LMTP listener (the doc's 10024).
    pub lmtp: u16,
    pub gateway: u16,
    pub inbound_reinject: u16,
    pub outbound_reinject: u16,
}

impl Ports {
    /// The doc's ports in `text` replaced by these.
    fn apply(&self, text: &str) -> String {
        text.replace("10024", &self.lmtp.to_string())
            .replace("10025", &self.gateway.to_string())
            .replace("10026", &self.inbound_reinject.to_string())
            .replace("10027", &self.outbound_reinject.to_string())
    }

    /// Five distinct free ports: every listener is held until all are picked, so one pick
    /// never hands out the same port twice. Another process may still take one before Postfix
    /// or the gateway binds it; callers retry with a fresh pick ([`Postfix::start`] says so).
    pub fn pick() -> anyhow::Result<Self> {
        let listeners = (0..5)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()?;
        let ports = listeners
            .iter()
            .map(|l| Ok(l.local_addr()?.port()))
            .collect::<anyhow::Result<Vec<u16>>>()?;
        Ok(Self {
            front: ports[0],
            lmtp: ports[1],
            gateway: ports[2],
            inbound_reinject: ports[3],
            outbound_reinject: ports[4],
        })
    }
}

/// Whether Postfix is installed (`make deps` installs it).
pub fn available() -> bool {
    Path::new("/usr/sbin/postfix").exists()
}

fn read_doc() -> anyhow::Result<String> {
    let doc_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/postfix.md");
    Ok(std::fs::read_to_string(&doc_path)?)
}

/// The doc's `gateway.toml` block with the test's ports, to append to the gateway's
/// configuration.
pub fn gateway_settings(ports: &Ports) -> anyhow::Result<String> {
    Ok(ports.apply(&doc_block(&read_doc()?, "gateway.toml")?))
}

/// The fenced block that follows the line naming `file` in the doc.
pub fn doc_block(doc: &str, file: &str) -> anyhow::Result<String> {
    let marker = format!("`{file}`:");
    let after = doc
        .split_once(&marker)
        .with_context(|| format!("docs/postfix.md has no {marker} block"))?
        .1;
    let start = after.find("```").context("no code block")? + 3;
    let body = &after[start..];
    let body = &body[body.find('\n').context("empty block")? + 1..];
    let end = body.find("```").context("unterminated code block")?;
    Ok(body[..end].to_string())
}

/// The standard Postfix services, unchrooted (the test's queue is a temporary directory).
const BASE_MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

impl Postfix {
    /// Configure and start Postfix: the doc's blocks plus paths and ports. Mail for
    /// `internal_domain` ends at `mailboxes` (an SMTP sink address), everything else at
    /// `internet`.
    pub fn start(
        ports: &Ports,
        internal_domain: &str,
        mailboxes: &str,
        internet: &str,
    ) -> anyhow::Result<Self> {
        let doc = read_doc()?;
        let doc_main = ports.apply(&doc_block(&doc, "/etc/postfix/main.cf")?);
        let doc_master = ports.apply(&doc_block(&doc, "/etc/postfix/master.cf")?);

        let dir = tempfile::Builder::new().prefix("postfix-").tempdir()?;
        let root = dir.path();
        set_mode(root, 0o755)?;
        let queue = root.join("queue");
        let data = root.join("data");
        std::fs::create_dir_all(&queue)?;
        std::fs::create_dir_all(&data)?;
        set_mode(&queue, 0o755)?;
        run("chown", &["postfix:postfix", &data.to_string_lossy()])?;

        // Test machine only: directories, loopback, where finished mail goes, no DNS.
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
maillog_file = {log}
maillog_file_prefixes = {root}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.{internal_domain}
mydomain = {internal_domain}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = {internal_domain}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
transport_maps = inline:{{ {internal_domain}=smtp:[{mailboxes_host}]:{mailboxes_port} }}
relayhost = [{internet_host}]:{internet_port}
smtp_dns_support_level = disabled
alias_maps =
alias_database =
biff = no
smtpd_banner = $myhostname ESMTP
{doc_main}",
            queue = queue.display(),
            data = data.display(),
            log = root.join("postfix.log").display(),
            root = root.display(),
            mailboxes_host = mailboxes.rsplit_once(':').map_or(mailboxes, |(h, _)| h),
            mailboxes_port = mailboxes.rsplit_once(':').map_or("25", |(_, p)| p),
            internet_host = internet.rsplit_once(':').map_or(internet, |(h, _)| h),
            internet_port = internet.rsplit_once(':').map_or("25", |(_, p)| p),
        );
        let master_cf = format!(
            "127.0.0.1:{front} inet n - n - - smtpd\n{BASE_MASTER_CF}\n{doc_master}",
            front = ports.front
        );
        std::fs::write(root.join("main.cf"), main_cf)?;
        std::fs::write(root.join("master.cf"), master_cf)?;
        allow_config_directory(root)?;
        let config = root.to_string_lossy().into_owned();
        let front = format!("127.0.0.1:{}", ports.front);
        let postfix_instance = Self {
            dir,
            front,
            inbound_reinject: ports.inbound_reinject,
            outbound_reinject: ports.outbound_reinject,
        };
        // On failure the instance is dropped (stopped, directory forgotten) and the error
        // carries Postfix's own log: a port taken between pick and bind shows up there.
        let started = postfix(&["-c", &config, "check"])
            .and_then(|()| postfix(&["-c", &config, "start"]))
            .and_then(|()| wait_for_port(&postfix_instance.front, Duration::from_secs(20)));
        match started {
            Ok(()) => Ok(postfix_instance),
            Err(e) => bail!("{e:#}\n--- Postfix log ---\n{}", postfix_instance.log()),
        }
    }

    fn config(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    /// Postfix's own log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postfix.log")).unwrap_or_default()
    }

    /// Ask the queue manager to retry deferred mail now.
    pub fn flush(&self) -> anyhow::Result<()> {
        let out = Command::new("/usr/sbin/postqueue")
            .args(["-c", &self.config(), "-f"])
            .output()?;
        if !out.status.success() {
            bail!("postqueue -f: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Messages still in the queue (`postqueue -j`, one JSON object per message).
    pub fn queued(&self) -> anyhow::Result<usize> {
        let out = Command::new("/usr/sbin/postqueue")
            .args(["-c", &self.config(), "-j"])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('{'))
            .count())
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let config = self.config();
        let _ = postfix(&["-c", &config, "stop"]);
        // `stop` returns before every daemon has gone: wait for master to remove its pid.
        let pid = self.dir.path().join("queue/pid/master.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = forget_config_directory(self.dir.path());
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn run(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(cmd).args(args).output()?;
    if !out.status.success() {
        bail!(
            "{cmd} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `postfix` logs its complaints to syslog, which a test machine may not have: run it under a
/// pseudo-terminal so they reach the output.
fn postfix(args: &[&str]) -> anyhow::Result<()> {
    let command = format!("/usr/sbin/postfix {}", args.join(" "));
    run("script", &["-qec", &command, "/dev/null"])
}

/// The default configuration must name an alternate config directory before `postfix -c`
/// accepts it. Serialised across test processes with a lock file.
fn allow_config_directory(dir: &Path) -> anyhow::Result<()> {
    edit_alternates(|list| list.push(dir.to_string_lossy().into_owned()))
}

fn forget_config_directory(dir: &Path) -> anyhow::Result<()> {
    let dir = dir.to_string_lossy().into_owned();
    edit_alternates(|list| list.retain(|d| *d != dir))
}

fn edit_alternates(edit: impl FnOnce(&mut Vec<String>)) -> anyhow::Result<()> {
    let _lock = DirLock::acquire(Path::new("/tmp/smime-gateway-postfix.lock"))?;
    let out = Command::new("/usr/sbin/postconf")
        .args(["-h", "alternate_config_directories"])
        .output()?;
    let mut list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split([',', ' ', '\n'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    edit(&mut list);
    run(
        "/usr/sbin/postconf",
        &[
            "-e",
            &format!("alternate_config_directories = {}", list.join(" ")),
        ],
    )
}

/// A lock between processes: creating a directory is atomic.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path) -> anyhow::Result<Self> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => return Ok(Self(path.to_path_buf())),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => bail!("cannot lock {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn wait_for_port(addr: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("Postfix did not start listening on {addr}")
}
