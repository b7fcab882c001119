//! Revocation data from the network, as partners' CAs publish it: CRLs from the certificates'
//! distribution points and OCSP (RFC 6960) from their AIA. `http://` only (RFC 5280 §4.2.1.13
//! and RFC 6960 use plain HTTP; the data is signed). Every fetch is bounded in size and time,
//! and answers are cached: CRLs until their nextUpdate, OCSP answers until theirs, failures for
//! [`RETRY_AFTER_FAILURE`] so an unreachable source does not delay every message. A background
//! thread fetches each cached CRL's successor shortly before its nextUpdate.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use foreign_types::ForeignTypeRef;
use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::hash::MessageDigest;
use openssl::ocsp::{
    OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse, OcspResponseStatus,
};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Crl, X509Ref, X509};
use openssl_sys as sys;

/// Largest CRL or OCSP response accepted.
pub const MAX_RESPONSE_BYTES: usize = 10 << 20;
/// Connect + send + receive, per request.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// All fetches for one validation together.
pub const VALIDATION_FETCH_BUDGET: Duration = Duration::from_secs(10);
/// Distinct CRL URLs looked at per validation.
const MAX_URLS_PER_VALIDATION: usize = 8;
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(300);
/// An OCSP answer without nextUpdate is reused this long.
const OCSP_DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
const MAX_CACHE_ENTRIES: usize = 10_000;
/// How often the background refresher looks at the cache, and how long before a CRL's
/// nextUpdate it fetches the next one (so no message waits for it).
const REFRESH_INTERVAL: Duration = Duration::from_secs(60);
const REFRESH_AHEAD: Duration = Duration::from_secs(600);
/// Clock skew tolerated on OCSP thisUpdate/nextUpdate.
const OCSP_LEEWAY_SECS: u32 = 300;

extern "C" {
    fn OCSP_request_add1_nonce(req: *mut sys::OCSP_REQUEST, val: *mut u8, len: i32) -> i32;
    fn OCSP_check_nonce(req: *mut sys::OCSP_REQUEST, bs: *mut sys::OCSP_BASICRESP) -> i32;
}

#[derive(Debug, Clone)]
pub(crate) enum OcspAnswer {
    Good,
    Revoked,
    /// No answer that counts; the reason.
    Unknown(String),
}

struct CrlEntry {
    crl: Option<Arc<X509Crl>>,
    fresh_until: SystemTime,
    retry_at: SystemTime,
}

struct OcspEntry {
    answer: OcspAnswer,
    until: SystemTime,
}

#[derive(Default)]
pub(crate) struct RevocationFetcher {
    crls: Mutex<HashMap<String, CrlEntry>>,
    ocsp: Mutex<HashMap<Vec<u8>, OcspEntry>>,
    /// Counts the CRLs fetched: see [`RevocationFetcher::crl_epoch`].
    crl_epoch: std::sync::atomic::AtomicU64,
}

/// The http:// CRL distribution point URLs of `certs`, at most [`MAX_URLS_PER_VALIDATION`].
pub(crate) fn crl_urls<'a>(certs: impl Iterator<Item = &'a X509Ref>) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for cert in certs {
        let Some(points) = cert.crl_distribution_points() else {
            continue;
        };
        for name in points
            .iter()
            .filter_map(|p| p.distpoint())
            .filter_map(|d| d.fullname())
            .flat_map(|names| names.iter())
        {
            if let Some(uri) = name.uri() {
                if uri.starts_with("http://") && !urls.iter().any(|u| u == uri) {
                    urls.push(uri.to_string());
                }
            }
            if urls.len() >= MAX_URLS_PER_VALIDATION {
                return urls;
            }
        }
    }
    urls
}

/// The first http:// OCSP responder of `cert`.
pub(crate) fn ocsp_url(cert: &X509Ref) -> Option<String> {
    let responders = cert.ocsp_responders().ok()?;
    let url = responders
        .iter()
        .map(|s| s.to_string())
        .find(|u| u.starts_with("http://"));
    url
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// When `t` is, as a wall-clock time.
fn system_time(t: &Asn1TimeRef) -> Option<SystemTime> {
    let now = Asn1Time::days_from_now(0).ok()?;
    let diff = now.diff(t).ok()?;
    let secs = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
    let base = SystemTime::now();
    if secs >= 0 {
        base.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        base.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

impl RevocationFetcher {
    /// CRLs for `urls`: cached ones still fresh, the others fetched now. A CRL whose refresh
    /// fails is still returned (OpenSSL then reports it expired).
    pub fn crls(&self, urls: &[String], deadline: Instant) -> Vec<Arc<X509Crl>> {
        let now = SystemTime::now();
        let mut out = Vec::new();
        for url in urls {
            let (cached, due) = match lock(&self.crls).get(url) {
                Some(e) => (
                    e.crl.clone(),
                    (e.crl.is_none() || now >= e.fresh_until) && now >= e.retry_at,
                ),
                None => (None, true),
            };
            let crl = if due && Instant::now() < deadline {
                self.refresh_crl(url, cached, deadline)
            } else {
                cached
            };
            out.extend(crl);
        }
        out
    }

    fn refresh_crl(
        &self,
        url: &str,
        old: Option<Arc<X509Crl>>,
        deadline: Instant,
    ) -> Option<Arc<X509Crl>> {
        let now = SystemTime::now();
        let fetched = http(url, None, deadline).and_then(|body| {
            X509Crl::from_der(&body)
                .or_else(|_| X509Crl::from_pem(&body))
                .map_err(FetchError::NotACrl)
        });
        let fetched_new = fetched.is_ok();
        let entry = match fetched {
            Ok(crl) => {
                let fresh_until = crl
                    .next_update()
                    .and_then(system_time)
                    .unwrap_or(now + RETRY_AFTER_FAILURE);
                CrlEntry {
                    crl: Some(Arc::new(crl)),
                    fresh_until,
                    retry_at: now,
                }
            }
            Err(e) => {
                tracing::warn!(url, "CRL fetch failed: {e}");
                CrlEntry {
                    crl: old,
                    fresh_until: now,
                    retry_at: now + RETRY_AFTER_FAILURE,
                }
            }
        };
        let crl = entry.crl.clone();
        if fetched_new {
            self.crl_epoch
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let mut cache = lock(&self.crls);
        if cache.len() >= MAX_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(url.to_string(), entry);
        crl
    }

    /// Changes whenever a CRL was fetched (a revocation may have appeared).
    pub fn crl_epoch(&self) -> u64 {
        self.crl_epoch.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Fetches again the cached CRLs whose nextUpdate is less than `ahead` away (or past),
    /// failures waiting out their retry time. Returns how many were fetched.
    pub fn refresh_due(&self, ahead: Duration) -> usize {
        let now = SystemTime::now();
        let due: Vec<(String, Option<Arc<X509Crl>>)> = lock(&self.crls)
            .iter()
            .filter(|(_, e)| e.crl.is_some() && e.fresh_until <= now + ahead && now >= e.retry_at)
            .map(|(url, e)| (url.clone(), e.crl.clone()))
            .collect();
        for (url, old) in &due {
            self.refresh_crl(url, old.clone(), Instant::now() + FETCH_TIMEOUT);
        }
        due.len()
    }

    /// Refreshes cached CRLs every [`REFRESH_INTERVAL`] until the fetcher is dropped.
    pub fn start_background_refresh(fetcher: &Arc<RevocationFetcher>) {
        let weak = Arc::downgrade(fetcher);
        let spawned = std::thread::Builder::new()
            .name("crl-refresh".into())
            .spawn(move || loop {
                std::thread::sleep(REFRESH_INTERVAL);
                let Some(fetcher) = weak.upgrade() else {
                    return;
                };
                fetcher.refresh_due(REFRESH_AHEAD);
            });
        if let Err(e) = spawned {
            tracing::warn!("no background CRL refresh: {e}");
        }
    }

    /// The OCSP status of `cert` (issued by `issuer`) from `url`, cached.
    pub fn ocsp(
        &self,
        cert: &X509Ref,
        issuer: &X509Ref,
        url: &str,
        deadline: Instant,
    ) -> OcspAnswer {
        let now = SystemTime::now();
        let key = match cert.digest(MessageDigest::sha256()) {
            Ok(d) => d.to_vec(),
            Err(e) => return OcspAnswer::Unknown(e.to_string()),
        };
        if let Some(e) = lock(&self.ocsp).get(&key) {
            if now < e.until {
                return e.answer.clone();
            }
        }
        if Instant::now() >= deadline {
            return OcspAnswer::Unknown("time for revocation look-ups used up".into());
        }
        let (answer, until) = match query_ocsp(cert, issuer, url, deadline) {
            Ok((answer, next_update)) => {
                (answer, next_update.unwrap_or(now + OCSP_DEFAULT_LIFETIME))
            }
            Err(e) => (
                OcspAnswer::Unknown(format!("OCSP {url}: {e}")),
                now + RETRY_AFTER_FAILURE,
            ),
        };
        let mut cache = lock(&self.ocsp);
        if cache.len() >= MAX_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(
            key,
            OcspEntry {
                answer: answer.clone(),
                until,
            },
        );
        answer
    }
}

/// Why a CRL or OCSP answer could not be had; it ends up as a logged reason or an
/// `OcspAnswer::Unknown`, never as a verdict.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("not an http:// URL")]
    NotHttp,
    #[error("bad host")]
    BadHost,
    #[error("bad port")]
    BadPort,
    #[error("host has no address")]
    NoAddress,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    TimedOut,
    #[error("response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("no HTTP header")]
    NoHeader,
    #[error("HTTP status {0:?}")]
    HttpStatus(String),
    #[error("not a CRL: {0}")]
    NotACrl(openssl::error::ErrorStack),
    #[error(transparent)]
    Ocsp(#[from] openssl::error::ErrorStack),
    #[error("could not add a nonce")]
    Nonce,
    #[error("responder status {0}")]
    ResponderStatus(i32),
    #[error("nonce mismatch")]
    NonceMismatch,
    #[error("response signature: {0}")]
    ResponseSignature(openssl::error::ErrorStack),
    #[error("no status for the certificate")]
    NoStatus,
    #[error("stale response: {0}")]
    Stale(openssl::error::ErrorStack),
}

fn query_ocsp(
    cert: &X509Ref,
    issuer: &X509Ref,
    url: &str,
    deadline: Instant,
) -> Result<(OcspAnswer, Option<SystemTime>), FetchError> {
    let id = || OcspCertId::from_cert(MessageDigest::sha1(), cert, issuer);
    let mut request = OcspRequest::new()?;
    request.add_id(id()?)?;
    // SAFETY: valid request; NULL value = a random nonce of the default length.
    if unsafe { OCSP_request_add1_nonce(request.as_ptr(), std::ptr::null_mut(), -1) } != 1 {
        return Err(FetchError::Nonce);
    }
    let body = http(url, Some(&request.to_der()?), deadline)?;
    let response = OcspResponse::from_der(&body)?;
    if response.status() != OcspResponseStatus::SUCCESSFUL {
        return Err(FetchError::ResponderStatus(response.status().as_raw()));
    }
    let basic = response.basic()?;
    // SAFETY: both valid. 1 = nonces match, 2 = neither has one, -1 = the responder does not
    // echo nonces (allowed: "where the responder supports it"); 0 or 3 = mismatch/injected.
    let nonce = unsafe { OCSP_check_nonce(request.as_ptr(), basic.as_ptr()) };
    if !matches!(nonce, 1 | 2 | -1) {
        return Err(FetchError::NonceMismatch);
    }
    // The responder is the issuing CA or a responder it delegated (checked by OpenSSL).
    let mut store = X509StoreBuilder::new()?;
    store.add_cert(issuer.to_owned())?;
    store.set_flags(X509VerifyFlags::PARTIAL_CHAIN)?;
    let store = store.build();
    let mut certs: Stack<X509> = Stack::new()?;
    certs.push(issuer.to_owned())?;
    basic
        .verify(&certs, &store, OcspFlag::empty())
        .map_err(FetchError::ResponseSignature)?;
    let id = id()?;
    let status = basic.find_status(&id).ok_or(FetchError::NoStatus)?;
    status
        .check_validity(OCSP_LEEWAY_SECS, None)
        .map_err(FetchError::Stale)?;
    // SAFETY: ASN1_GENERALIZEDTIME and ASN1_TIME are the same OpenSSL type (asn1_string_st).
    let next_update = status
        .next_update()
        .and_then(|t| system_time(unsafe { Asn1TimeRef::from_ptr(t.as_ptr().cast()) }));
    let answer = match status.status {
        OcspCertStatus::GOOD => OcspAnswer::Good,
        OcspCertStatus::REVOKED => OcspAnswer::Revoked,
        _ => OcspAnswer::Unknown("the responder does not know the certificate".into()),
    };
    Ok((answer, next_update))
}

/// GET `url`, or POST `body` as an OCSP request, over HTTP/1.0; the 200 response's body.
fn http(url: &str, post: Option<&[u8]>, deadline: Instant) -> Result<Vec<u8>, FetchError> {
    let deadline = deadline.min(Instant::now() + FETCH_TIMEOUT);
    let rest = url.strip_prefix("http://").ok_or(FetchError::NotHttp)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(FetchError::BadHost)?;
        match after.strip_prefix(':') {
            Some(p) => (h, p.parse::<u16>().map_err(|_| FetchError::BadPort)?),
            None if after.is_empty() => (h, 80),
            None => return Err(FetchError::BadHost),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| FetchError::BadPort)?),
            None => (authority, 80),
        }
    };
    if host.is_empty() || authority.contains('@') {
        return Err(FetchError::BadHost);
    }
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or(FetchError::NoAddress)?;
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let mut stream = TcpStream::connect_timeout(&addr, remaining())?;
    let mut request = match post {
        None => format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
            .into_bytes(),
        Some(body) => format!(
            "POST {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: application/ocsp-request\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes(),
    };
    request.extend_from_slice(post.unwrap_or_default());
    stream.set_write_timeout(Some(remaining().max(Duration::from_millis(1))))?;
    stream.write_all(&request)?;
    const MAX_HEADER: usize = 16 << 10;
    let mut received = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let left = remaining();
        if left.is_zero() {
            return Err(FetchError::TimedOut);
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        received.extend_from_slice(buf.get(..n).unwrap_or_default());
        if received.len() > MAX_RESPONSE_BYTES + MAX_HEADER {
            return Err(FetchError::TooLarge);
        }
    }
    let end = smime_pki::header_end(&received).ok_or(FetchError::NoHeader)?;
    let header =
        String::from_utf8_lossy(received.get(..end.fields).unwrap_or_default()).to_string();
    let status = header.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(FetchError::HttpStatus(status.chars().take(16).collect()));
    }
    let body = received.get(end.body..).unwrap_or_default();
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(FetchError::TooLarge);
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
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
    fn every_fetched_crl_moves_the_epoch() {
        // Cached validation results (the current partner certificate) compare epochs.
        let fetcher = RevocationFetcher::default();
        assert_eq!(fetcher.crl_epoch(), 0);
        let (stale, _) = serve(read("../../shared/pkits/crls/OldCRLnextUpdateCACRL.crl"), 2);
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(
            fetcher.crls(std::slice::from_ref(&stale), deadline).len(),
            1
        );
        assert_eq!(fetcher.crl_epoch(), 1);
        assert_eq!(fetcher.refresh_due(Duration::from_secs(600)), 1);
        assert_eq!(fetcher.crl_epoch(), 2);
        // A failed fetch changes nothing (the server served its two answers).
        fetcher.refresh_due(Duration::from_secs(600));
        assert_eq!(fetcher.crl_epoch(), 2);
    }

    #[test]
    fn background_refresh_fetches_only_crls_near_their_next_update() {
        let fetcher = RevocationFetcher::default();
        // nextUpdate 2010: due. nextUpdate 2045: not due.
        let (stale, stale_count) =
            serve(read("../../shared/pkits/crls/OldCRLnextUpdateCACRL.crl"), 2);
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
        assert!(matches!(e, super::FetchError::TooLarge), "{e}");
        assert!(matches!(
            super::http("https://127.0.0.1/x", None, deadline),
            Err(super::FetchError::NotHttp)
        ));
        assert!(matches!(
            super::http("http://user@127.0.0.1/x", None, deadline),
            Err(super::FetchError::BadHost)
        ));
    }
}
