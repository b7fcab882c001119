use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::RevocationFetcher;

/// Serves `body` to exactly `max` requests on loopback (then stops), counting them.
fn serve(body: Vec<u8>, max: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ca.crl", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            counted.fetch_add(1, Ordering::SeqCst);
            let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (url, count)
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn background_refresh_fetches_only_crls_near_their_next_update() {
    let fetcher = RevocationFetcher::default();
    // nextUpdate 2010: due. nextUpdate 2045: not due.
    let (stale, stale_count) = serve(read("../../shared/pkits/crls/OldCRLnextUpdateCACRL.crl"), 2);
    let (fresh, fresh_count) = serve(read("../fixtures/ca/partner-intermediate.crl"), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    assert_eq!(
        fetcher
            .crls(&[stale.clone(), fresh.clone()], deadline)
            .len(),
        2
    );
    assert_eq!(stale_count.load(Ordering::SeqCst), 1);
    assert_eq!(fresh_count.load(Ordering::SeqCst), 1);

    assert_eq!(fetcher.refresh_due(Duration::from_secs(600)), 1);
    assert_eq!(stale_count.load(Ordering::SeqCst), 2);
    assert_eq!(fresh_count.load(Ordering::SeqCst), 1);
}

#[test]
fn oversized_and_non_http_sources_are_refused() {
    let deadline = Instant::now() + Duration::from_secs(10);
    let (url, _) = serve(vec![0u8; super::MAX_RESPONSE_BYTES + 1], 1);
    let e = super::http(&url, None, deadline).unwrap_err();
    assert!(e.contains("larger"), "{e}");
    assert!(super::http("https://127.0.0.1/x", None, deadline).is_err());
    assert!(super::http("http://user@127.0.0.1/x", None, deadline).is_err());
}
