//! The handshake parser on arbitrary bytes: whatever arrives before and
//! between the hellos (length-prefixed JSON, data frames, garbage), reading
//! items never panics, a message is taken only once its declared length
//! (at most the limit) has arrived, and checking any message as a hello or
//! an ack never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veltix::protocol::handshake::{self, HandshakeItem, MAX_HANDSHAKE_MESSAGE};
use veltix::protocol::FrameDecoder;

fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::new(4096, 64);
    for chunk in data.chunks(7) {
        decoder.push(chunk);
        loop {
            let before = decoder.buffered().to_vec();
            let Some(item) = handshake::next_item(&mut decoder) else {
                break;
            };
            match item {
                Ok(HandshakeItem::Message(message)) => {
                    let len = usize::from(u16::from_be_bytes([before[0], before[1]]));
                    assert!(len <= MAX_HANDSHAKE_MESSAGE);
                    assert_eq!(decoder.buffered(), &before[2 + len..]);
                    let _ = handshake::check_hello(&message);
                    let _ = handshake::check_ack(&message);
                }
                Ok(HandshakeItem::Frame(_)) => {}
                // A malformed message ends a real handshake.
                Err(_) => return,
            }
        }
    }
});
