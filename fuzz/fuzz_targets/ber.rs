//! The BER normaliser alone: bounded, and its DER output is a fixed point (normalising it
//! again changes nothing), so no second reading of a message can differ from the first.
#![no_main]

use gateway::smime::ber::normalise;
use libfuzzer_sys::fuzz_target;
use smime_gateway_fuzz::within_cpu_budget;

fuzz_target!(|data: &[u8]| {
    within_cpu_budget("ber", data.len(), || {
        if let Ok(der) = normalise(data) {
            let again = normalise(&der).expect("normalised output normalises again");
            assert_eq!(&*again, &*der, "normalised output is not a fixed point");
        }
    });
});
