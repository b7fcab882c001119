//! Crafted CMS for issue 11, shared by `tests/crafted_cms.rs` and `benches/hostile.rs`.
#![allow(dead_code)]

use cms::content_info::ContentInfo;
use cms::enveloped_data::EnvelopedData;
use cms::enveloped_data::{KeyTransRecipientInfo, RecipientInfo};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use gateway::smime::algorithms::OID_ENVELOPED_DATA;
use gateway::smime::asn1::{AuthEnvelopedData, RecipientInfoList};

use crate::common::{f, openssl_ok};

pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A real message to `proxy/user.pem` (`content` encrypted by `openssl cms -encrypt`), cut
/// around its RecipientInfos SET.
pub struct Real {
    pub recipient: KeyTransRecipientInfo,
    content_type: ObjectIdentifier,
    /// The fields of the (Auth)EnvelopedData before and after the RecipientInfos.
    before: Vec<u8>,
    after: Vec<u8>,
}

pub fn real_message(cipher: &str, content: &[u8]) -> Real {
    let der = openssl_ok(
        &[
            "cms",
            "-encrypt",
            cipher,
            "-outform",
            "DER",
            &f("proxy/user.pem"),
        ],
        content,
    );
    let info = ContentInfo::from_der(&der).unwrap();
    let recipients = if info.content_type == OID_ENVELOPED_DATA {
        info.content
            .decode_as::<EnvelopedData>()
            .unwrap()
            .recip_infos
            .0
            .into_vec()
    } else {
        info.content
            .decode_as::<AuthEnvelopedData>()
            .unwrap()
            .recip_infos
            .0
    };
    let RecipientInfo::Ktri(recipient) = recipients[0].clone() else {
        panic!("openssl wrote a key-transport recipient");
    };
    let fields = info.content.value();
    let set = RecipientInfoList(recipients).to_der().unwrap();
    let at = fields.windows(set.len()).position(|w| w == set).unwrap();
    Real {
        recipient,
        content_type: info.content_type,
        before: fields[..at].to_vec(),
        after: fields[at + set.len()..].to_vec(),
    }
}

impl Real {
    /// The same message with these recipients, in the order given.
    pub fn with_recipients(&self, recipients: &[Vec<u8>]) -> Vec<u8> {
        let set = tlv(0x31, &recipients.concat());
        let env = tlv(0x30, &[&self.before[..], &set, &self.after].concat());
        let oid = tlv(0x06, self.content_type.as_bytes());
        tlv(0x30, &[oid, tlv(0xa0, &env)].concat())
    }
}

/// The real recipient with a bogus encrypted key that sorts before any real one, in
/// descending DER order (the worst case for an insertion sort).
pub fn fake_recipients(real: &KeyTransRecipientInfo, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .rev()
        .map(|i| {
            let mut fake = real.clone();
            let mut key = vec![0u8; 256];
            key[252..].copy_from_slice(&(i as u32).to_be_bytes());
            fake.enc_key = OctetString::new(key).unwrap();
            fake.to_der().unwrap()
        })
        .collect()
}

/// The real recipient's serial number under `count` other issuers, each a different name
/// (`CN=Issuer <i>,O=Elsewhere`): every one must be decoded and compared, none matches.
pub fn recipients_of_other_issuers(real: &KeyTransRecipientInfo, count: usize) -> Vec<Vec<u8>> {
    use cms::enveloped_data::RecipientIdentifier;
    use std::str::FromStr;
    (0..count)
        .map(|i| {
            let mut fake = real.clone();
            let RecipientIdentifier::IssuerAndSerialNumber(ias) = &mut fake.rid else {
                panic!("openssl names the recipient by issuer and serial");
            };
            ias.issuer =
                x509_cert::name::Name::from_str(&format!("CN=Issuer {i},O=Elsewhere")).unwrap();
            fake.to_der().unwrap()
        })
        .collect()
}
