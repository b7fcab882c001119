//! RFC 5280 certification path validation, delegated to OpenSSL's `X509_verify_cert`
//! (see `certstore/NOTES.md` for why). Certificates and CRLs cross this boundary as DER;
//! nothing OpenSSL-typed leaves this module.
//!
//! What OpenSSL does here: path building (bounded: one issuer chosen per level, depth capped),
//! signatures, validity, name chaining by RFC 5280 comparison rules, basic constraints,
//! key usage of CAs, unknown critical extensions, name constraints (directoryName, rfc822Name,
//! the subject emailAddress attribute, DNS, URI), certificate policies (initial policy set,
//! explicit policy, mapping, inhibitAnyPolicy) and CRLs (distribution points, indirect CRLs,
//! reason partitions, delta CRLs). CRLs from distribution points and OCSP answers come from
//! [`crate::fetch`]. The S/MIME profile on top is in [`crate::validate`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::raw::c_int;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use foreign_types::ForeignTypeRef;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509Crl, X509StoreContext, X509StoreContextRef, X509};
use openssl_sys as sys;
use sha2::{Digest, Sha256};

use crate::error::ValidationError;
use crate::fetch::{self, OcspAnswer, RevocationFetcher};
use crate::validate::MAX_CHAIN;

/// Most certificates a message may offer for path building (issue 11: real messages carry a
/// handful; more is an attack on the path search).
pub const MAX_OFFERED_CERTIFICATES: usize = 200;

const ANY_POLICY: &str = "2.5.29.32.0";

/// How revocation is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationMode {
    /// Every certificate in the path needs a current CRL (or OCSP answer); none is a refusal.
    HardFail,
    /// A certificate whose revocation status cannot be found is accepted and the verdict says
    /// so; a certificate found revoked is always refused.
    #[default]
    SoftFail,
    /// Revocation is not checked.
    Off,
}

/// The RFC 5280 inputs besides certificates: CRLs, the policy settings and the time.
pub(crate) struct PathSettings<'a> {
    pub anchors: &'a [X509],
    /// Configured untrusted CA certificates, offered besides the message's.
    pub intermediates: &'a [X509],
    pub crls: &'a [X509Crl],
    pub revocation: RevocationMode,
    /// Parsed certificates kept between verifications.
    pub parsed: &'a ParsedCache,
    /// CRL distribution points and OCSP; `None`: configured CRLs only.
    pub fetcher: Option<&'a RevocationFetcher>,
    /// Dotted OIDs; empty means any policy (and no explicit policy required).
    pub required_policies: &'a [String],
    pub now: SystemTime,
}

/// Certificates parsed by OpenSSL, by SHA-256 of their DER. OpenSSL 3 decodes a public key
/// slowly (about 1 ms) and only once per parsed object, so partners' intermediates and leaves,
/// validated again and again, are kept parsed. Emptied when full.
#[derive(Default)]
pub(crate) struct ParsedCache(Mutex<HashMap<[u8; 32], X509>>);

const PARSED_CACHE_MAX: usize = 4096;

impl ParsedCache {
    fn get(&self, der: &[u8]) -> Result<X509, openssl::error::ErrorStack> {
        let key: [u8; 32] = Sha256::digest(der).into();
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(x) = map.get(&key) {
            return Ok(x.clone());
        }
        let x = X509::from_der(der)?;
        if map.len() >= PARSED_CACHE_MAX {
            map.clear();
        }
        map.insert(key, x.clone());
        Ok(x)
    }
}

/// A validated path: DER, the certificate first and the trust anchor last, and what could not
/// be established about revocation (soft-fail only).
#[derive(Debug, Clone)]
pub struct ValidatedPath {
    pub chain_der: Vec<Vec<u8>>,
    pub revocation_unknown: Vec<String>,
}

// Not bound by openssl-sys; part of libcrypto's stable API since 0.9.8/1.0.
extern "C" {
    fn X509_STORE_CTX_set0_crls(ctx: *mut sys::X509_STORE_CTX, crls: *mut sys::stack_st_X509_CRL);
    fn X509_STORE_set_verify_cb(
        store: *mut sys::X509_STORE,
        cb: Option<extern "C" fn(c_int, *mut sys::X509_STORE_CTX) -> c_int>,
    );
    fn X509_VERIFY_PARAM_add0_policy(
        param: *mut sys::X509_VERIFY_PARAM,
        policy: *mut sys::ASN1_OBJECT,
    ) -> c_int;
}

thread_local! {
    /// Revocation errors the soft-fail callback let pass during the current verification
    /// (X509_verify_cert runs on the calling thread): (depth, OpenSSL reason).
    static SOFT_FAILED: RefCell<Vec<(u32, &'static str)>> = const { RefCell::new(Vec::new()) };
    /// Depths of certificates without a usable CRL but with an OCSP responder, to be asked
    /// once the path is built (OCSP needs the issuer).
    static NEEDS_OCSP: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static OCSP_ENABLED: Cell<bool> = const { Cell::new(false) };
}

/// Errors meaning "no usable revocation information", as opposed to "revoked" or a bad CRL.
fn is_revocation_unavailable(code: c_int) -> bool {
    matches!(
        code,
        sys::X509_V_ERR_UNABLE_TO_GET_CRL
            | sys::X509_V_ERR_CRL_NOT_YET_VALID
            | sys::X509_V_ERR_CRL_HAS_EXPIRED
            | sys::X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER
    )
}

/// Whether OpenSSL's verdict stands. Revocation data for the trust anchor itself is never
/// required (an anchor is trusted by configuration, not by its issuer's CRL).
fn revocation_callback(ok: c_int, ctx: *mut sys::X509_STORE_CTX, soft_fail: bool) -> c_int {
    if ok != 0 || ctx.is_null() {
        return ok;
    }
    // SAFETY: OpenSSL passes the live context of the verification in progress.
    let ctx = unsafe { X509StoreContextRef::from_ptr_mut(ctx) };
    let error = ctx.error();
    if !is_revocation_unavailable(error.as_raw()) {
        return ok;
    }
    let depth = ctx.error_depth();
    let chain_len = ctx.chain().map_or(0, |c| c.len());
    if depth as usize + 1 == chain_len {
        return 1;
    }
    let has_ocsp =
        OCSP_ENABLED.with(Cell::get) && ctx.current_cert().and_then(fetch::ocsp_url).is_some();
    if has_ocsp {
        NEEDS_OCSP.with(|n| {
            let mut n = n.borrow_mut();
            if !n.contains(&depth) && n.len() < MAX_CHAIN {
                n.push(depth);
            }
        });
        return 1;
    }
    if !soft_fail {
        return ok;
    }
    SOFT_FAILED.with(|s| {
        let mut s = s.borrow_mut();
        // Bounded by the chain depth times the few CRL errors per certificate.
        if s.len() < 64 {
            s.push((depth, error.error_string()));
        }
    });
    1
}

extern "C" fn soft_fail_callback(ok: c_int, ctx: *mut sys::X509_STORE_CTX) -> c_int {
    revocation_callback(ok, ctx, true)
}

extern "C" fn hard_fail_callback(ok: c_int, ctx: *mut sys::X509_STORE_CTX) -> c_int {
    revocation_callback(ok, ctx, false)
}

fn chain_error(e: impl std::fmt::Display) -> ValidationError {
    ValidationError::PathInvalid {
        reason: e.to_string(),
    }
}

fn build_store(
    settings: &PathSettings<'_>,
) -> Result<openssl::x509::store::X509Store, ValidationError> {
    let mut builder = X509StoreBuilder::new().map_err(chain_error)?;
    for anchor in settings.anchors {
        builder.add_cert(anchor.clone()).map_err(chain_error)?;
    }
    let callback = match settings.revocation {
        RevocationMode::SoftFail => Some(soft_fail_callback as _),
        RevocationMode::HardFail => Some(hard_fail_callback as _),
        RevocationMode::Off => None,
    };
    // SAFETY: the store is valid and the callback is a plain function.
    unsafe { X509_STORE_set_verify_cb(builder.as_ptr(), callback) };
    let mut param = X509VerifyParam::new().map_err(chain_error)?;
    // Configured anchors may be intermediates (an operator trusting one partner CA).
    let mut flags = X509VerifyFlags::POLICY_CHECK | X509VerifyFlags::PARTIAL_CHAIN;
    if settings.revocation != RevocationMode::Off {
        flags |= X509VerifyFlags::CRL_CHECK
            | X509VerifyFlags::CRL_CHECK_ALL
            | X509VerifyFlags::EXTENDED_CRL_SUPPORT
            | X509VerifyFlags::USE_DELTAS;
    }
    if settings.required_policies.is_empty() {
        // The RFC 5280 default initial-policy-set; without it OpenSSL's policy check
        // refuses paths whose policies were mapped or reached through anyPolicy.
        add_policy(&mut param, ANY_POLICY)?;
    } else {
        flags |= X509VerifyFlags::EXPLICIT_POLICY;
        for oid in settings.required_policies {
            add_policy(&mut param, oid)?;
        }
    }
    param.set_flags(flags).map_err(chain_error)?;
    // Neither the certificate nor the anchor counts against OpenSSL's depth.
    param.set_depth((MAX_CHAIN - 2) as c_int);
    let secs = settings
        .now
        .duration_since(UNIX_EPOCH)
        .map_err(chain_error)?
        .as_secs();
    param.set_time(secs.try_into().map_err(chain_error)?);
    builder.set_param(&param).map_err(chain_error)?;
    Ok(builder.build())
}

/// The CRLs handed to one verification. They are given to the context rather than added to
/// the store because OpenSSL looks CRLs up in the store by the certificate's issuer name only,
/// which misses indirect CRLs.
struct CrlStack(*mut sys::OPENSSL_STACK);

impl CrlStack {
    fn new(
        settings: &PathSettings<'_>,
        fetched: &[Arc<X509Crl>],
    ) -> Result<CrlStack, ValidationError> {
        // SAFETY: plain allocation; checked for NULL.
        let stack = CrlStack(unsafe { sys::OPENSSL_sk_new_null() });
        if stack.0.is_null() {
            return Err(chain_error("out of memory"));
        }
        if settings.revocation != RevocationMode::Off {
            let pointers = settings
                .crls
                .iter()
                .map(|c| c.as_ptr())
                .chain(fetched.iter().map(|c| c.as_ptr()));
            for crl in pointers {
                // SAFETY: the stack is valid; it borrows the CRL, kept alive by the caller.
                if unsafe { sys::OPENSSL_sk_push(stack.0, crl.cast()) } <= 0 {
                    return Err(chain_error("out of memory"));
                }
            }
        }
        Ok(stack)
    }
}

impl Drop for CrlStack {
    fn drop(&mut self) {
        // SAFETY: frees the stack only, not the CRLs it borrows.
        unsafe { sys::OPENSSL_sk_free(self.0) };
    }
}

fn add_policy(param: &mut X509VerifyParam, oid: &str) -> Result<(), ValidationError> {
    let text = CString::new(oid).map_err(chain_error)?;
    // SAFETY: a NUL-terminated string; 1 = dotted form only (no name look-up).
    let obj = unsafe { sys::OBJ_txt2obj(text.as_ptr(), 1) };
    if obj.is_null() {
        return Err(chain_error(format!("{oid:?} is not an object identifier")));
    }
    // SAFETY: add0 takes ownership of obj on success; on failure we free it.
    let ok = unsafe { X509_VERIFY_PARAM_add0_policy(param.as_ptr(), obj) };
    if ok != 1 {
        unsafe { sys::ASN1_OBJECT_free(obj) };
        return Err(chain_error("the policy could not be set"));
    }
    Ok(())
}

/// Validates `leaf_der` to one of the anchors through `offered` (the message's certificates).
pub(crate) fn validate_path(
    leaf_der: &[u8],
    offered: &[Vec<u8>],
    settings: &PathSettings<'_>,
) -> Result<ValidatedPath, ValidationError> {
    if offered.len() > MAX_OFFERED_CERTIFICATES {
        return Err(ValidationError::TooManyCertificates {
            max: MAX_OFFERED_CERTIFICATES,
        });
    }
    let leaf = settings
        .parsed
        .get(leaf_der)
        .map_err(|e| ValidationError::Malformed(e.to_string()))?;
    let mut untrusted = Stack::new().map_err(chain_error)?;
    // Certificates from the message that do not parse are ignored: they may be unrelated.
    for der in offered {
        if let Ok(c) = settings.parsed.get(der) {
            untrusted.push(c).map_err(chain_error)?;
        }
    }
    for c in settings.intermediates {
        untrusted.push(c.clone()).map_err(chain_error)?;
    }
    let fetcher = settings
        .fetcher
        .filter(|_| settings.revocation != RevocationMode::Off);
    let fetch_deadline = std::time::Instant::now() + fetch::VALIDATION_FETCH_BUDGET;
    let fetched = match fetcher {
        Some(f) => f.crls(
            &fetch::crl_urls(std::iter::once(leaf.as_ref()).chain(untrusted.iter())),
            fetch_deadline,
        ),
        None => Vec::new(),
    };
    let store = build_store(settings)?;
    let crls = CrlStack::new(settings, &fetched)?;
    let mut ctx = X509StoreContext::new().map_err(chain_error)?;
    SOFT_FAILED.with(|s| s.borrow_mut().clear());
    NEEDS_OCSP.with(|n| n.borrow_mut().clear());
    OCSP_ENABLED.with(|o| o.set(fetcher.is_some()));
    let outcome = ctx
        .init(&store, &leaf, &untrusted, |c| {
            // SAFETY: `crls` and the CRLs it points to outlive the verification (set0: the
            // context neither copies nor frees them).
            unsafe { X509_STORE_CTX_set0_crls(c.as_ptr(), crls.0.cast()) };
            let ok = c.verify_cert()?;
            let chain = c
                .chain()
                .map(|s| s.iter().map(|x| x.to_owned()).collect::<Vec<X509>>())
                .unwrap_or_default();
            let failing = c.current_cert().map(subject_text).unwrap_or_default();
            Ok((ok, c.error(), c.error_depth(), chain, failing))
        })
        .map_err(chain_error)?;
    let soft_failed = SOFT_FAILED.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let needs_ocsp = NEEDS_OCSP.with(|n| std::mem::take(&mut *n.borrow_mut()));
    let (ok, error, depth, chain, failing) = outcome;
    if !ok {
        return Err(map_error(
            error.as_raw(),
            error.error_string(),
            depth,
            failing,
        ));
    }
    let who = |d: u32| {
        chain
            .get(d as usize)
            .map(|x| subject_text(x))
            .unwrap_or_else(|| format!("certificate {d} in the path"))
    };
    let mut revocation_unknown: Vec<String> = soft_failed
        .iter()
        .map(|(d, why)| format!("{}: {why}", who(*d)))
        .collect();
    if let Some(fetcher) = fetcher {
        for d in needs_ocsp {
            let answer = match (chain.get(d as usize), chain.get(d as usize + 1)) {
                (Some(cert), Some(issuer)) => match fetch::ocsp_url(cert) {
                    Some(url) => fetcher.ocsp(cert, issuer, &url, fetch_deadline),
                    None => OcspAnswer::Unknown("no OCSP responder".into()),
                },
                _ => OcspAnswer::Unknown("no issuer in the path".into()),
            };
            match answer {
                OcspAnswer::Good => {}
                OcspAnswer::Revoked => return Err(ValidationError::Revoked),
                OcspAnswer::Unknown(why) => {
                    let reason = format!("{}: no CRL, {why}", who(d));
                    if settings.revocation == RevocationMode::HardFail {
                        return Err(ValidationError::RevocationUnknown { reason });
                    }
                    revocation_unknown.push(reason);
                }
            }
        }
    }
    let chain_der = chain
        .iter()
        .map(|x| x.to_der().map_err(chain_error))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ValidatedPath {
        chain_der,
        revocation_unknown,
    })
}

fn subject_text(cert: &openssl::x509::X509Ref) -> String {
    cert.subject_name()
        .entries()
        .filter_map(|e| {
            let value = e.data().to_string().ok()?;
            Some(format!(
                "{}={}",
                e.object().nid().short_name().unwrap_or("?"),
                value
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// OpenSSL's verdict as the store's reason.
fn map_error(code: c_int, text: &str, depth: u32, subject: String) -> ValidationError {
    use sys::*;
    match code {
        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
        | X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
        | X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        | X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN => ValidationError::Untrusted,
        X509_V_ERR_CERT_SIGNATURE_FAILURE
        | X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE
        | X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY => {
            ValidationError::BadSignature { subject }
        }
        X509_V_ERR_INVALID_CA | X509_V_ERR_KEYUSAGE_NO_CERTSIGN => {
            ValidationError::IssuerNotCa { subject }
        }
        X509_V_ERR_CERT_NOT_YET_VALID if depth == 0 => ValidationError::NotYetValid,
        X509_V_ERR_CERT_HAS_EXPIRED if depth == 0 => ValidationError::Expired,
        X509_V_ERR_CERT_NOT_YET_VALID | X509_V_ERR_CERT_HAS_EXPIRED => {
            ValidationError::IssuerNotValid { subject }
        }
        X509_V_ERR_PATH_LENGTH_EXCEEDED => ValidationError::PathLengthExceeded { subject },
        X509_V_ERR_CERT_CHAIN_TOO_LONG => ValidationError::ChainTooLong { max: MAX_CHAIN },
        X509_V_ERR_CERT_REVOKED => ValidationError::Revoked,
        X509_V_ERR_PERMITTED_VIOLATION
        | X509_V_ERR_EXCLUDED_VIOLATION
        | X509_V_ERR_SUBTREE_MINMAX
        | X509_V_ERR_UNSUPPORTED_CONSTRAINT_TYPE
        | X509_V_ERR_UNSUPPORTED_CONSTRAINT_SYNTAX
        | X509_V_ERR_UNSUPPORTED_NAME_SYNTAX => {
            ValidationError::NameConstraintViolation { subject }
        }
        X509_V_ERR_NO_EXPLICIT_POLICY | X509_V_ERR_INVALID_POLICY_EXTENSION => {
            ValidationError::PolicyNotAcceptable
        }
        X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION | X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION => {
            ValidationError::UnknownCriticalExtension { subject }
        }
        c if is_revocation_unavailable(c) => ValidationError::RevocationUnknown {
            reason: format!("{subject}: {text}"),
        },
        _ => ValidationError::PathInvalid {
            reason: format!("{subject}: {text}"),
        },
    }
}
