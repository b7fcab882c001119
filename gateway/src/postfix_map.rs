//! Postfix `socketmap` table (socketmap_table(5)) for `smtp_tls_policy_maps`: the
//! organisation's MTA makes the final delivery, so a domain approved for SMTP over TLS must
//! get verified TLS there, not only on our hop to it. Postfix asks `tls_policy <domain>`;
//! we answer `OK secure` for domains approved with policy `tls` and `NOTFOUND ` otherwise
//! (Postfix then applies its default policy).
//!
//! Wire format: each request and reply is a netstring (`<length>:<bytes>,`), several per
//! connection. Only `trusted_clients` may connect; requests are bounded in size and time.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use certstore::{DomainPolicy, Store, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cidr::Cidr;

/// The map name Postfix must use: `socketmap:inet:127.0.0.1:10028:tls_policy`.
pub const MAP_NAME: &str = "tls_policy";
/// What a domain approved `tls` gets: certificate verified against the next-hop domain.
pub const TLS_POLICY: &str = "secure";
/// Longest request accepted (Postfix's own socketmap limit is 100000; a domain is < 256).
const MAX_REQUEST: usize = 1024;
/// Postfix keeps connections open between lookups; an idle one is closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Concurrent connections (Postfix opens about one per delivery agent process).
const MAX_CONNECTIONS: usize = 64;

/// One netstring read from the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Netstring<'a> {
    /// The payload and how many bytes of the buffer it used.
    Complete(&'a [u8], usize),
    /// More bytes are needed.
    Incomplete,
    /// Not a netstring, or longer than allowed: the connection is closed.
    Invalid,
}

/// Parses one netstring of at most `max` payload bytes from the start of `buf`.
pub fn parse_netstring(buf: &[u8], max: usize) -> Netstring<'_> {
    let digits_end = buf.iter().position(|b| !b.is_ascii_digit());
    let Some((digits, rest)) = digits_end.and_then(|end| buf.split_at_checked(end)) else {
        // Only digits so far: a length that already exceeds the limit is invalid now.
        let too_long = !buf.is_empty()
            && std::str::from_utf8(buf)
                .ok()
                .and_then(|d| d.parse::<usize>().ok())
                .is_none_or(|n| n > max);
        return if too_long || buf.len() > 10 {
            Netstring::Invalid
        } else {
            Netstring::Incomplete
        };
    };
    let [b':', payload_on @ ..] = rest else {
        return Netstring::Invalid;
    };
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with(b"0")) {
        return Netstring::Invalid;
    }
    let Some(len) = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<usize>().ok())
        .filter(|n| *n <= max)
    else {
        return Netstring::Invalid;
    };
    match payload_on.split_at_checked(len) {
        None | Some((_, [])) => Netstring::Incomplete,
        Some((payload, [b',', after @ ..])) => {
            Netstring::Complete(payload, buf.len() - after.len())
        }
        Some(_) => Netstring::Invalid,
    }
}

/// `payload` as a netstring.
pub fn netstring(payload: &str) -> Vec<u8> {
    format!("{}:{payload},", payload.len()).into_bytes()
}

/// The reply (not yet a netstring) to one request `name key`.
pub fn answer(store: &Store, request: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(request) else {
        return "PERM the request is not text".into();
    };
    let Some((name, key)) = text.split_once(' ') else {
        return "PERM expected \"name key\"".into();
    };
    if name != MAP_NAME {
        return format!(
            "PERM unknown map {:?}; use socketmap:inet:HOST:PORT:{MAP_NAME}",
            name.chars().take(32).collect::<String>()
        );
    }
    let domain = key.trim().trim_end_matches('.').to_ascii_lowercase();
    // Parent-domain look-ups (".example") and explicit next hops ("[mx]:25") are not
    // approvals: only the recipient domain itself is.
    if domain.is_empty() || domain.starts_with('.') || domain.starts_with('[') {
        return "NOTFOUND ".into();
    }
    match store.domain(&domain) {
        Ok(Some(approved)) if approved.policy == DomainPolicy::Tls => format!("OK {TLS_POLICY}"),
        Ok(_) | Err(StoreError::Domain(_)) => "NOTFOUND ".into(),
        Err(e) => {
            tracing::error!(error = %e, %domain, "TLS policy look-up failed");
            "TEMP the certificate store is unavailable".into()
        }
    }
}

/// Serves the map on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    trusted_clients: Vec<Cidr>,
    shutdown: impl Future<Output = ()>,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "socketmap accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if !Cidr::any_contains(&trusted_clients, client.ip()) {
                    tracing::warn!(%client, "socketmap client is not in smtp.trusted_clients");
                    continue;
                }
                let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                    tracing::warn!(%client, "socketmap connection limit reached");
                    continue;
                };
                let store = store.clone();
                tasks.spawn(async move {
                    connection(stream, client, &store).await;
                    drop(permit);
                });
            }
        }
    }
    tasks.abort_all();
}

async fn connection(mut stream: TcpStream, client: SocketAddr, store: &Store) {
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        // Answer every complete request in the buffer first (Postfix may pipeline).
        loop {
            match parse_netstring(&buf, MAX_REQUEST) {
                Netstring::Complete(request, used) => {
                    let reply = netstring(&answer(store, request));
                    buf.drain(..used);
                    if stream.write_all(&reply).await.is_err() {
                        return;
                    }
                }
                Netstring::Incomplete => break,
                Netstring::Invalid => {
                    tracing::warn!(%client, "socketmap: malformed request, closing");
                    return;
                }
            }
        }
        let read = match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(Ok(n)) => chunk.get(..n),
            Ok(Err(_)) | Err(_) => None,
        };
        match read {
            // End of stream (nothing read), or an error.
            None | Some([]) => return,
            Some(bytes) => buf.extend_from_slice(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use certstore::StoreConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn store(dir: &tempfile::TempDir) -> Store {
        let store = Store::open(
            &dir.path().join("store"),
            StoreConfig {
                use_system_trust: false,
                ..StoreConfig::default()
            },
        )
        .unwrap();
        store
            .approve_domain("tlspartner.example", DomainPolicy::Tls, "test", "")
            .unwrap();
        store
            .approve_domain("partner.example", DomainPolicy::Smime, "test", "")
            .unwrap();
        store
    }

    #[test]
    fn netstrings() {
        assert_eq!(
            parse_netstring(b"5:hello,rest", 10),
            Netstring::Complete(b"hello", 8)
        );
        assert_eq!(parse_netstring(b"0:,", 10), Netstring::Complete(b"", 3));
        for partial in [&b""[..], b"1", b"12", b"5:hel", b"5:hello"] {
            assert_eq!(
                parse_netstring(partial, 100),
                Netstring::Incomplete,
                "{partial:?}"
            );
        }
        for bad in [
            &b":x,"[..],
            b"5:hello;",
            b"x",
            b"05:hello,",
            b"11:hello world,",
            b"99999999999",
        ] {
            assert_eq!(parse_netstring(bad, 10), Netstring::Invalid, "{bad:?}");
        }
        assert_eq!(netstring("OK secure"), b"9:OK secure,");
    }

    #[test]
    fn answers_secure_for_tls_domains_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        assert_eq!(
            answer(&store, b"tls_policy tlspartner.example"),
            "OK secure"
        );
        assert_eq!(
            answer(&store, b"tls_policy TLSPartner.Example."),
            "OK secure"
        );
        for key in [
            "partner.example",
            "other.example",
            ".tlspartner.example",
            "[mx.tlspartner.example]:25",
            "not a domain",
        ] {
            assert_eq!(
                answer(&store, format!("tls_policy {key}").as_bytes()),
                "NOTFOUND ",
                "{key}"
            );
        }
        assert!(answer(&store, b"transport tlspartner.example").starts_with("PERM unknown map"));
        assert!(answer(&store, b"tls_policy").starts_with("PERM"));
        assert!(answer(&store, b"\xff\xfe").starts_with("PERM"));
        store
            .damage_domain_record_for_tests("tlspartner.example")
            .unwrap();
        assert!(answer(&store, b"tls_policy tlspartner.example").starts_with("TEMP "));
    }

    #[tokio::test]
    async fn serves_pipelined_requests_to_trusted_clients() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            store,
            crate::config::default_trusted_clients(),
            async move {
                let _ = stopped.await;
            },
        ));
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut requests = netstring("tls_policy tlspartner.example");
        requests.extend(netstring("tls_policy partner.example"));
        // The second request arrives in two pieces.
        c.write_all(&requests[..requests.len() - 5]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.write_all(&requests[requests.len() - 5..]).await.unwrap();
        let expected = b"9:OK secure,9:NOTFOUND ,";
        let mut got = vec![0u8; expected.len()];
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, expected);
        // A malformed request closes the connection.
        c.write_all(b"x:nonsense,").await.unwrap();
        assert_closed(&mut c).await;
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn untrusted_clients_get_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(
            listener,
            store(&dir),
            vec!["10.0.0.0/8".parse().unwrap()],
            std::future::pending(),
        ));
        let mut c = TcpStream::connect(addr).await.unwrap();
        let _ = c
            .write_all(&netstring("tls_policy tlspartner.example"))
            .await;
        assert_closed(&mut c).await;
        server.abort();
    }

    /// The server closes the connection without answering anything more.
    async fn assert_closed(c: &mut TcpStream) {
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}
