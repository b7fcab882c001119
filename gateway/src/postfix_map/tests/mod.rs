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
