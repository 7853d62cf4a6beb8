//! The Veltix data frame: a 15-byte header followed by the payload.
//!
//! ```text
//! offset size field
//! 0      2    magic "VX"
//! 2      1    flags (0 on send, ignored on receive)
//! 3      2    type code, u16 big-endian
//! 5      4    payload size, u32 big-endian (header excluded)
//! 9      4    CRC-32 (IEEE, as zlib.crc32) of the payload
//! 13     2    request id, u16 big-endian
//! 15     ...  payload
//! ```

use std::sync::OnceLock;

/// The two bytes every frame starts with.
pub const MAGIC: [u8; 2] = *b"VX";
/// Size of the fixed frame header in bytes.
pub const HEADER_SIZE: usize = 15;
/// Type code of a PING; the peer answers with a [`PONG`] carrying the same id.
pub const PING: u16 = 0;
/// Type code of the automatic answer to a [`PING`].
pub const PONG: u16 = 1;
/// Default bound on header plus payload, as in the reference (10 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 10 * 1024 * 1024;

/// The CRC-32 (IEEE) of `bytes`. crc32fast's hardware path, with its CPU
/// feature detection done once: `crc32fast::hash` detects on every call,
/// which cost a third of a small frame's CRC.
pub fn crc32(bytes: &[u8]) -> u32 {
    static DETECTED: OnceLock<crc32fast::Hasher> = OnceLock::new();
    let mut hasher = DETECTED.get_or_init(crc32fast::Hasher::new).clone();
    hasher.update(bytes);
    hasher.finalize()
}

/// The decoded fields of a frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Message type code.
    pub type_code: u16,
    /// Payload size in bytes.
    pub payload_len: u32,
    /// CRC-32 of the payload.
    pub crc: u32,
    /// Request id used to correlate replies.
    pub request_id: u16,
}

impl FrameHeader {
    /// The header for sending `payload`. The caller checks that the payload
    /// fits in a `u32` (the message size limit does).
    pub fn for_payload(type_code: u16, request_id: u16, payload: &[u8]) -> Self {
        FrameHeader {
            type_code,
            payload_len: payload.len() as u32,
            crc: crc32(payload),
            request_id,
        }
    }

    /// The 15 header bytes as they go on the wire.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[0..2].copy_from_slice(&MAGIC);
        out[3..5].copy_from_slice(&self.type_code.to_be_bytes());
        out[5..9].copy_from_slice(&self.payload_len.to_be_bytes());
        out[9..13].copy_from_slice(&self.crc.to_be_bytes());
        out[13..15].copy_from_slice(&self.request_id.to_be_bytes());
        out
    }

    /// Reads a header; `None` when the bytes do not start with [`MAGIC`].
    pub fn decode(bytes: &[u8; HEADER_SIZE]) -> Option<Self> {
        if bytes[0..2] != MAGIC {
            return None;
        }
        Some(FrameHeader {
            type_code: u16::from_be_bytes([bytes[3], bytes[4]]),
            payload_len: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]),
            crc: u32::from_be_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]),
            request_id: u16::from_be_bytes([bytes[13], bytes[14]]),
        })
    }

    /// Header plus payload, in bytes.
    pub fn frame_len(&self) -> u64 {
        HEADER_SIZE as u64 + u64::from(self.payload_len)
    }
}

/// Checks that a frame carrying `payload_len` bytes (plus the header) fits
/// in `max_message_size`, before anything is sent or any memory touched. A
/// length whose frame size overflows (a C caller's `(size_t)-1`) is too
/// large, reported as `u64::MAX` bytes.
pub fn check_frame_size(payload_len: usize, max_message_size: u32) -> crate::Result<()> {
    let size = u64::try_from(payload_len)
        .ok()
        .and_then(|len| len.checked_add(HEADER_SIZE as u64))
        .unwrap_or(u64::MAX);
    if size > u64::from(max_message_size) {
        return Err(crate::Error::MessageTooLarge {
            size,
            max: max_message_size,
        });
    }
    Ok(())
}

/// A whole frame (header and payload) in one buffer. The send path writes
/// header and payload separately to avoid this copy; this is for tests, tools
/// and small control frames.
pub fn encode_frame(type_code: u16, request_id: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_SIZE + payload.len());
    out.extend_from_slice(&FrameHeader::for_payload(type_code, request_id, payload).encode());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs_at_every_length() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..bytes.len() {
            assert_eq!(
                crc32(&bytes[..len]),
                crc32fast::hash(&bytes[..len]),
                "{len}"
            );
        }
    }

    #[test]
    fn encodes_the_protocol_test_vector() {
        let expected = [
            0x56, 0x58, 0x00, 0x00, 0xc8, 0x00, 0x00, 0x00, 0x05, 0x36, 0x10, 0xa6, 0x86, 0x12,
            0x34, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
        ];
        assert_eq!(encode_frame(200, 0x1234, b"hello"), expected);
    }

    #[test]
    fn empty_payload_has_zero_crc() {
        let header = FrameHeader::for_payload(1, 7, b"");
        assert_eq!(header.crc, 0);
        assert_eq!(&header.encode()[9..13], &[0, 0, 0, 0]);
    }

    #[test]
    fn decode_round_trips_and_rejects_bad_magic() {
        let header = FrameHeader::for_payload(65535, 40000, b"abc");
        let bytes = header.encode();
        assert_eq!(FrameHeader::decode(&bytes), Some(header));
        let mut bad = bytes;
        bad[1] = b'Y';
        assert_eq!(FrameHeader::decode(&bad), None);
        assert_eq!(header.frame_len(), 18);
    }
}
