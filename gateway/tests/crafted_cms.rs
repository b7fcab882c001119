#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code: a failed step fails the test
//! Issue 11: crafted CMS that used to cost far more than an ordinary message of its size.

mod common;
mod crafted;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use crafted::{fake_recipients, real_message, recipients_of_other_issuers, tlv};
use der::Encode;
use gateway::smime::algorithms::KeyTransport;
use gateway::smime::ber::{self, BerError};
use gateway::smime::crypto::{KeyError, PrivateKey, PrivateKeyOps, RsaSignature, UnwrappedKey};
use gateway::smime::decrypt::{
    decrypt, key_transport_operations, DecryptionKey, RecipientId, MAX_ATTEMPTS_PER_KEY,
};
use gateway::smime::{certs, SmimeError};

#[test]
fn eight_thousand_recipient_infos_are_refused_in_milliseconds() {
    let real = real_message("-aes256", BODY);
    let msg = real.with_recipients(&fake_recipients(&real.recipient, 8_000));
    let started = Instant::now();
    let err = ber::normalise(&msg).unwrap_err();
    assert!(
        matches!(err, BerError::TooManyInSet { limit, .. } if limit == ber::MAX_RECIPIENT_INFOS),
        "{err}"
    );
    let (c, k) = (cert("proxy/user.pem"), key("proxy/user.key"));
    let keys = [DecryptionKey {
        certificate: &c,
        key: &k,
    }];
    let err = decrypt(crypto(), &msg, &keys).unwrap_err();
    assert!(matches!(
        err,
        SmimeError::Ber(BerError::TooManyInSet { .. })
    ));
    // Debug build on a shared machine: still three orders of magnitude below the old cost.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn recipients_under_other_issuers_are_each_reported_and_never_tried() {
    let real = real_message("-aes256", BODY);
    let mut recipients = recipients_of_other_issuers(&real.recipient, 999);
    recipients.push(real.recipient.to_der().unwrap());
    let msg = real.with_recipients(&recipients);
    let (c, k) = (cert("proxy/user.pem"), key("proxy/user.key"));
    let before = key_transport_operations();
    let opened = decrypt(
        crypto(),
        &msg,
        &[DecryptionKey {
            certificate: &c,
            key: &k,
        }],
    )
    .unwrap();
    assert_eq!(opened.content, BODY);
    // Same serial number, other issuer: not ours, so no private-key operation is spent on it.
    assert_eq!(key_transport_operations() - before, 1);
    let issuers: Vec<String> = opened
        .envelope
        .recipients
        .iter()
        .map(|r| match &r.id {
            RecipientId::IssuerAndSerial { issuer, .. } => issuer.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(issuers.len(), 1_000);
    assert_eq!(issuers[0], "CN=Issuer 0,O=Elsewhere");
    assert_eq!(issuers[998], "CN=Issuer 998,O=Elsewhere");
    assert_eq!(issuers[999], c.tbs_certificate.issuer.to_string());
}

#[test]
fn a_thousand_unsorted_recipient_infos_are_read_without_sorting() {
    let real = real_message("-aes256", BODY);
    let mut recipients = fake_recipients(&real.recipient, ber::MAX_RECIPIENT_INFOS - 1);
    recipients.insert(0, real.recipient.to_der().unwrap());
    let msg = real.with_recipients(&recipients);
    let (c, k) = (cert("proxy/user.pem"), key("proxy/user.key"));
    let started = Instant::now();
    // Listed first, the real recipient is found first (nothing reorders the list).
    let opened = decrypt(
        crypto(),
        &msg,
        &[DecryptionKey {
            certificate: &c,
            key: &k,
        }],
    )
    .unwrap();
    assert_eq!(opened.content, BODY);
    assert_eq!(opened.envelope.recipients.len(), ber::MAX_RECIPIENT_INFOS);
    // Sorted by `der`, this took about 45 s in a debug build.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn other_sets_are_bounded_per_field() {
    let oid = tlv(0x06, gateway::smime::algorithms::OID_SIGNED_DATA.as_bytes());
    let signed = |certificates: usize, signers: usize| {
        let small = tlv(0x30, &[0x02, 0x01, 0x01]);
        let sd = tlv(
            0x30,
            &[
                tlv(0x02, &[1]),
                tlv(0x31, &[]),
                tlv(0x30, &tlv(0x06, &[0x2a])),
                tlv(0xa0, &small.repeat(certificates)),
                tlv(0x31, &tlv(0x30, &[]).repeat(signers)),
            ]
            .concat(),
        );
        tlv(0x30, &[oid.clone(), tlv(0xa0, &sd)].concat())
    };
    assert!(ber::normalise(&signed(ber::MAX_CERTIFICATES, ber::MAX_SIGNER_INFOS)).is_ok());
    for (input, limit) in [
        (signed(ber::MAX_CERTIFICATES + 1, 1), ber::MAX_CERTIFICATES),
        (signed(1, ber::MAX_SIGNER_INFOS + 1), ber::MAX_SIGNER_INFOS),
    ] {
        let err = ber::normalise(&input).unwrap_err();
        assert!(
            matches!(err, BerError::TooManyInSet { limit: l, .. } if l == limit),
            "{err}"
        );
    }

    // A certificate (DER, not through any CMS parser) with one name component of many
    // attributes: refused before `der` sorts it.
    let attribute = |i: u8| {
        tlv(
            0x30,
            &[tlv(0x06, &[0x55, 0x04, 0x03]), tlv(0x0c, &[i])].concat(),
        )
    };
    let rdn: Vec<u8> = (0..=ber::MAX_SET_ELEMENTS as u8)
        .rev()
        .flat_map(attribute)
        .collect();
    let name = tlv(0x30, &tlv(0x31, &rdn));
    let cert = tlv(0x30, &tlv(0x30, &name));
    let err = certs::parse_certificate(&cert).unwrap_err();
    assert!(
        matches!(err, SmimeError::Ber(BerError::TooManyInSet { .. })),
        "{err}"
    );
}

/// Counts private-key operations.
struct CountingKey {
    inner: PrivateKey,
    operations: AtomicUsize,
}

impl PrivateKeyOps for CountingKey {
    fn bits(&self) -> usize {
        self.inner.bits()
    }
    fn public_key_spki_der(&self) -> Result<Vec<u8>, KeyError> {
        self.inner.public_key_spki_der()
    }
    fn unwrap_key(
        &self,
        transport: KeyTransport,
        encrypted_key: &[u8],
        key_len: usize,
    ) -> UnwrappedKey {
        self.operations.fetch_add(1, Ordering::SeqCst);
        self.inner.unwrap_key(transport, encrypted_key, key_len)
    }
    fn sign(&self, scheme: RsaSignature, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.inner.sign(scheme, message)
    }
}

#[test]
fn recipient_infos_naming_our_key_cost_a_bounded_number_of_rsa_operations() {
    let c = cert("proxy/user.pem");
    for cipher in ["-aes256", "-aes-128-gcm"] {
        let real = real_message(cipher, BODY);
        let counting = CountingKey {
            inner: key("proxy/user.key"),
            operations: AtomicUsize::new(0),
        };
        let keys = [DecryptionKey {
            certificate: &c,
            key: &counting,
        }];
        // 50 bogus copies of our recipient, sorted before the real one: only the first
        // MAX_ATTEMPTS_PER_KEY are unwrapped, so the real one is never reached. Both bogus
        // unwraps are synthetic (implicit rejection); AES-CBC has no integrity, so about one
        // message in 256 opens with garbage — but the synthetic key is derived from our key
        // and the ciphertext, so the same message always gets the same answer.
        let mut recipients = fake_recipients(&real.recipient, 50);
        recipients.push(real.recipient.to_der().unwrap());
        let forged = real.with_recipients(&recipients);
        let first = decrypt(crypto(), &forged, &keys).map(|d| d.content);
        match &first {
            Err(err) => assert!(matches!(err, SmimeError::DecryptionFailed), "{err}"),
            Ok(garbage) => assert!(cipher == "-aes256" && garbage != BODY),
        }
        assert_eq!(
            counting.operations.load(Ordering::SeqCst),
            MAX_ATTEMPTS_PER_KEY
        );
        for _ in 0..3 {
            let again = decrypt(crypto(), &forged, &keys).map(|d| d.content);
            assert_eq!(format!("{again:?}"), format!("{first:?}"), "deterministic");
        }

        // A bogus copy next to the real one, in either order: the real content, every time.
        // The bogus copy's key is synthetic and the real copy unwraps genuinely for the same
        // private key, so the synthetic one is never tried (the rule in smime::decrypt).
        let bogus = fake_recipients(&real.recipient, 1).remove(0);
        let genuine = real.recipient.to_der().unwrap();
        for recipients in [[bogus.clone(), genuine.clone()], [genuine, bogus]] {
            counting.operations.store(0, Ordering::SeqCst);
            let opened = decrypt(crypto(), &real.with_recipients(&recipients), &keys).unwrap();
            assert_eq!(opened.content, BODY, "{cipher}");
            assert_eq!(counting.operations.load(Ordering::SeqCst), 2);
        }
    }
}

/// The candidate rule, checked where CBC would let garbage through: many bogus copies of our
/// recipient, each in a message of its own beside the real one, never yield anything but the
/// real content (before the rule, one in 256 did).
#[test]
fn a_synthetic_key_never_wins_over_a_genuine_unwrap() {
    let c = cert("proxy/user.pem");
    let k = key("proxy/user.key");
    let keys = [DecryptionKey {
        certificate: &c,
        key: &k,
    }];
    let real = real_message("-aes256", BODY);
    let genuine = real.recipient.to_der().unwrap();
    for bogus in fake_recipients(&real.recipient, 600) {
        let opened = decrypt(
            crypto(),
            &real.with_recipients(&[bogus, genuine.clone()]),
            &keys,
        )
        .unwrap();
        assert_eq!(opened.content, BODY);
    }
}

/// Issue 16: a RecipientInfo repeated byte for byte is not a DER error (NSS and gpgsm decrypt
/// such messages; a strict SET OF would refuse the duplicate).
#[test]
fn a_duplicated_recipient_info_still_decrypts() {
    let real = real_message("-aes256", BODY);
    let ri = real.recipient.to_der().unwrap();
    let msg = real.with_recipients(&[ri.clone(), ri]);
    let (c, k) = (cert("proxy/user.pem"), key("proxy/user.key"));
    let keys = [DecryptionKey {
        certificate: &c,
        key: &k,
    }];
    let decrypted = decrypt(crypto(), &msg, &keys).unwrap();
    assert_eq!(decrypted.content, BODY);
}
