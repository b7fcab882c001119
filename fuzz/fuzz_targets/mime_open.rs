//! A whole inbound message: MIME classification, then every S/MIME layer opened (decrypt with
//! the fixture proxy keys, verify) and the result written back as a message.
#![no_main]

use std::sync::OnceLock;

use gateway::mime::classify::{classify, contains_signed_part, wrapped_message};
use gateway::mime::{open_message_with, OpenMode};
use libfuzzer_sys::fuzz_target;
use smime_gateway_fuzz::{crypto, within_cpu_budget, Keys};

static KEYS: OnceLock<Keys> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let keys = KEYS.get_or_init(Keys::load).decryption_keys();
    within_cpu_budget("mime_open", data.len(), || {
        let _ = classify(data);
        let _ = contains_signed_part(data);
        let _ = wrapped_message(data);
        for mode in [OpenMode::All, OpenMode::DecryptOnly] {
            let opened = open_message_with(crypto(), data, &keys, mode);
            let _ = opened.to_message(&["X-Fuzz: 1".to_string()]);
            let _ = opened.has_signed_part_inside();
        }
    });
});
