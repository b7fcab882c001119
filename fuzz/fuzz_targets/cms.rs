//! CMS parsing on a raw (BER or DER) blob: EnvelopedData and AuthEnvelopedData (describe and
//! decrypt with the fixture proxy keys) and SignedData (opaque, and detached over fixed content).
#![no_main]

use std::sync::OnceLock;

use gateway::smime::content_info;
use gateway::smime::decrypt::{decrypt, describe};
use gateway::smime::verify::{verify, Detached};
use libfuzzer_sys::fuzz_target;
use smime_gateway_fuzz::{crypto, within_cpu_budget, Keys};

static KEYS: OnceLock<Keys> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let keys = KEYS.get_or_init(Keys::load).decryption_keys();
    within_cpu_budget("cms", data.len(), || {
        let _ = content_info::peek_content_type(data);
        let _ = describe(data);
        let _ = decrypt(crypto(), data, &keys);
        if let Ok(verified) = verify(crypto(), data, None) {
            let _ = verified
                .report
                .advertises(gateway::smime::ContentCipher::Aes256Gcm);
            let _ = verified.report.signing_time();
        }
        let _ = verify(
            crypto(),
            data,
            Some(Detached::Mime(b"Content-Type: text/plain\r\n\r\nhello\r\n")),
        );
    });
});
