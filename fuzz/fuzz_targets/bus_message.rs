//! The cluster bus's message decoder on arbitrary bytes (what another
//! program on the same Redis channels could publish): it never panics,
//! and whatever it accepts encodes back to exactly the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veltix::protocol::bus::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Some(message) = decode(data) {
        let again = encode(message.origin, &message.target, &[message.frame]).expect("it was encoded once");
        assert_eq!(again, data, "decode and encode are inverse");
    }
});
