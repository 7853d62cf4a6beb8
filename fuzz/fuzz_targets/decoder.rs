//! The frame decoder on arbitrary bytes, split into arbitrary reads: it
//! never panics, every frame it delivers is intact (its CRC matches), and
//! the memory it holds follows the bytes received, never a declared size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veltix::protocol::frame::encode_frame;
use veltix::protocol::{Decoded, FrameDecoder};

const MAX_FRAME: u32 = 4096;
const READ_SIZE: usize = 64;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read sizes; the rest is the stream.
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let split = usize::from(split % 97) + 1;
    let mut decoder = FrameDecoder::new(MAX_FRAME, READ_SIZE);
    let mut offset = 0;
    // The most bytes ever buffered at once: the buffer may keep room for
    // them, but never grows past twice that (plus one read).
    let mut peak = 0;
    while offset < stream.len() {
        let n = decoder
            .fill_with(|space| -> Result<usize, ()> {
                let n = space.len().min(split).min(stream.len() - offset);
                space[..n].copy_from_slice(&stream[offset..offset + n]);
                Ok(n)
            })
            .unwrap();
        offset += n;
        peak = peak.max(decoder.buffered().len());
        assert!(
            decoder.held_bytes() <= 2 * peak + READ_SIZE,
            "{} bytes held, and never more than {peak} buffered",
            decoder.held_bytes()
        );
        while let Some(decoded) = decoder.next_frame() {
            if let Decoded::Frame(message) = decoded {
                let frame = encode_frame(message.type_code(), message.request_id(), message.payload());
                assert!(frame.len() as u32 <= MAX_FRAME, "an oversized frame was delivered");
                assert!(appears_in(stream, &frame), "a frame that was never sent");
            }
        }
    }
});

/// Whether `frame` occurs in `stream`, whatever its flags byte (ignored on
/// receive).
fn appears_in(stream: &[u8], frame: &[u8]) -> bool {
    stream.windows(frame.len()).any(|window| {
        window[..2] == frame[..2] && window[3..] == frame[3..]
    })
}
