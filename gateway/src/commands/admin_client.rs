//! A minimal HTTP/1.1 client for the running gateway's own admin API on loopback: what the
//! operator commands use while `serve` holds the store.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use gateway::config::Config;

/// Where `serve` records the address its admin API listens on (the configured port may be 0).
pub const ADDRESS_FILE: &str = "admin-api.addr";

/// Responses larger than this are refused (the largest is a page of 500 certificates).
const MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Issuing a proxy certificate generates an RSA key: allow for a busy machine.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

pub struct AdminClient {
    addr: SocketAddr,
    token: admin_api::Zeroizing<String>,
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl AdminClient {
    /// The admin API of the gateway serving `config`, with its token.
    pub fn for_config(config: &Config) -> anyhow::Result<AdminClient> {
        let recorded = config.data_dir.join(ADDRESS_FILE);
        let addr = match std::fs::read_to_string(&recorded) {
            Ok(text) => text
                .trim()
                .parse()
                .with_context(|| format!("{} holds no address", recorded.display()))?,
            Err(_) => config.admin.listen,
        };
        let token = std::fs::read_to_string(&config.admin.token_file).with_context(|| {
            format!(
                "cannot read the admin token {}",
                config.admin.token_file.display()
            )
        })?;
        Ok(AdminClient {
            addr: reachable(addr),
            token: admin_api::Zeroizing::new(token.trim().to_string()),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `method path` with an optional JSON body; any status is returned.
    pub fn call(&self, method: &str, path: &str, json: Option<&[u8]>) -> anyhow::Result<Response> {
        let mut stream = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT)
            .with_context(|| format!("cannot reach the admin API at {}", self.addr))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        let body = json.unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.addr,
            self.token.as_str(),
            body.len()
        );
        if json.is_some() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes())?;
        stream.write_all(body)?;
        stream.flush()?;
        let mut raw = Vec::new();
        stream
            .take(MAX_RESPONSE_BYTES + 1)
            .read_to_end(&mut raw)
            .context("reading the admin API response")?;
        if raw.len() as u64 > MAX_RESPONSE_BYTES {
            bail!("the admin API response exceeds {MAX_RESPONSE_BYTES} bytes");
        }
        parse_response(&raw)
    }

    /// [`Self::call`], turning anything but 2xx into an error carrying the API's reason.
    pub fn ok(&self, method: &str, path: &str, json: Option<&[u8]>) -> anyhow::Result<Response> {
        let response = self.call(method, path, json)?;
        if !(200..300).contains(&response.status) {
            bail!("{}", problem_detail(&response));
        }
        Ok(response)
    }

    /// `GET path`, decoded from JSON.
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self.ok("GET", path, None)?;
        serde_json::from_slice(&response.body).context("the admin API answered unexpected JSON")
    }
}

/// A wildcard listen address is reached over loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

/// The RFC 9457 `detail` of an error response, or the status and body.
pub fn problem_detail(response: &Response) -> String {
    serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| v.get("detail")?.as_str().map(str::to_string))
        .unwrap_or_else(|| {
            format!(
                "the admin API answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            )
        })
}

fn parse_response(raw: &[u8]) -> anyhow::Result<Response> {
    let end = smime_pki::header_end(raw).context("malformed HTTP response from the admin API")?;
    let head = String::from_utf8_lossy(raw.get(..end.fields).unwrap_or_default());
    let body = raw.get(end.body..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("malformed HTTP status line from the admin API")?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("malformed chunked body")?;
        let size_text = String::from_utf8_lossy(rest.get(..line_end).unwrap_or_default());
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("malformed chunk size")?;
        rest = rest.get(line_end + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(rest.get(..size).context("truncated chunk")?);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

/// Percent-encode a path segment or query value (everything but RFC 3986 unreserved).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Record where the admin API listens, for [`AdminClient::for_config`].
pub fn record_address(config: &Config, addr: SocketAddr) -> std::io::Result<PathBuf> {
    let path = config.data_dir.join(ADDRESS_FILE);
    std::fs::write(&path, format!("{addr}\n"))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_plain_responses_parse() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"{}".as_slice()));
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, b"abcde".as_slice()));
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nshort"
        )
        .is_err());
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(encode("a.b-c_d~e@x y/z"), "a.b-c_d~e%40x%20y%2Fz");
    }

    #[test]
    fn wildcard_listen_addresses_are_reached_over_loopback() {
        let a: SocketAddr = "0.0.0.0:8025".parse().unwrap();
        assert_eq!(reachable(a).to_string(), "127.0.0.1:8025");
        let a: SocketAddr = "[::]:8025".parse().unwrap();
        assert_eq!(reachable(a).to_string(), "[::1]:8025");
    }
}
