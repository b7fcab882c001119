//! The admin token file: 256 random bits as hex, owner-only (0600).

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::Path;

use rand::RngCore;
use zeroize::Zeroizing;

/// Shortest token accepted from an existing file (a hand-written one included).
const MIN_TOKEN_CHARS: usize = 32;

/// Read the token at `path`, or create one there. Returns the token and whether it was
/// created now (the caller prints it once in that case). Refuses a file that others can
/// read or that does not hold a plausible token.
pub fn load_or_create_token(path: &Path) -> io::Result<(Zeroizing<String>, bool)> {
    match read_token(path) {
        Ok(t) => return Ok((t, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    let token = Zeroizing::new(hex::encode(bytes.as_ref()));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut f) => {
            f.write_all(token.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            Ok((token, true))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok((read_token(path)?, false)),
        Err(e) => Err(e),
    }
}

fn read_token(path: &Path) -> io::Result<Zeroizing<String>> {
    let file = std::fs::File::open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "admin token file {} is accessible to other users (mode {:o}); run chmod 600 on it",
                    path.display(),
                    mode & 0o777
                ),
            ));
        }
    }
    let mut raw = Zeroizing::new(String::new());
    file.take(4096).read_to_string(&mut raw)?;
    let token = Zeroizing::new(raw.trim().to_string());
    if token.len() < MIN_TOKEN_CHARS || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "admin token file {} must hold one token of at least {MIN_TOKEN_CHARS} visible ASCII characters",
                path.display()
            ),
        ));
    }
    Ok(token)
}
