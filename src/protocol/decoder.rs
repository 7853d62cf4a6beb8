//! Streaming frame decoder: turns the bytes of a TCP stream into messages.
//!
//! It owns the receive buffer, so bytes are read from the socket straight into
//! it ([`FrameDecoder::fill_with`]) and copied once, into the [`Message`] (or
//! the [`super::MessageBatch`] of its read).
//! What a peer *declares* costs nothing: the buffer grows with the bytes that
//! actually arrived (at most doubling per read), never to a declared frame
//! size. Bad input costs only the bad bytes, and every received byte is
//! checked at most once:
//! - garbage: dropped, then the decoder resynchronises on the next `VX`,
//!   starting one byte in (as the reference does);
//! - a frame with a bad CRC: skipped whole, by its declared length. The
//!   reference resynchronises one byte in instead, which lets a stream of
//!   overlapping headers make it checksum a whole declared frame again for
//!   every 15 bytes received;
//! - a frame over the size limit: skipped by its declared length, never
//!   scanned, so a frame hidden in its payload cannot be smuggled in.

use super::frame::{crc32, FrameHeader, HEADER_SIZE, MAGIC};
use super::message::Message;

/// What the decoder produced from the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A complete, valid frame.
    Frame(Message),
    /// Bytes that were dropped, and why.
    Dropped(DropReason),
}

/// What the decoder produced, a frame's payload still in its buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Borrowed<'a> {
    /// A complete, valid frame.
    Frame(FrameRef<'a>),
    /// Bytes that were dropped, and why.
    Dropped(DropReason),
}

/// A valid frame whose payload is borrowed from the decoder.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// The frame's type code.
    pub type_code: u16,
    /// The frame's request id.
    pub request_id: u16,
    /// The payload.
    pub payload: &'a [u8],
}

impl FrameRef<'_> {
    /// The frame as a message owning a copy of its payload.
    pub fn to_message(&self) -> Message {
        Message::new(self.type_code, self.request_id, self.payload)
    }
}

/// Why bytes were dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// Bytes that do not start a frame; `skipped` of them were discarded.
    Garbage {
        /// Number of bytes discarded.
        skipped: usize,
    },
    /// A frame whose payload does not match its CRC; skipped whole.
    BadCrc {
        /// The frame's type code.
        type_code: u16,
        /// The frame's request id.
        request_id: u16,
    },
    /// A frame larger than the configured maximum; skipped whole.
    Oversized {
        /// Declared header plus payload size.
        frame_len: u64,
        /// The configured maximum.
        max: u64,
    },
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DropReason::Garbage { skipped } => {
                write!(f, "discarded {skipped} byte(s) that do not start a frame")
            }
            DropReason::BadCrc {
                type_code,
                request_id,
            } => write!(
                f,
                "dropped a frame with a bad CRC (type {type_code}, request id {request_id})"
            ),
            DropReason::Oversized { frame_len, max } => write!(
                f,
                "skipped a frame of {frame_len} bytes, over max_message_size {max}"
            ),
        }
    }
}

/// Incremental decoder for one connection's inbound byte stream.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Receive buffer; valid data is `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of an oversized frame still to be discarded.
    skip: u64,
    max_frame_len: u64,
    read_size: usize,
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max_frame_len` bytes (header
    /// plus payload), reading `read_size` bytes per read call.
    pub fn new(max_frame_len: u32, read_size: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            end: 0,
            skip: 0,
            max_frame_len: u64::from(max_frame_len),
            read_size: read_size.max(1),
        }
    }

    /// Calls `read` once with free space at the end of the buffer and keeps
    /// the bytes it reports. The space is `read_size`, or more while a large
    /// frame arrives: up to the rest of the frame, but never more than the
    /// bytes already buffered, so memory follows what was received (the
    /// buffer at most doubles per read) and a large frame still arrives in
    /// few reads.
    pub fn fill_with<E>(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let received = self.end - self.start;
        let want = self.read_size.max(self.missing_frame_bytes().min(received));
        self.make_room(want);
        let n = read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Appends bytes that were received elsewhere.
    pub fn push(&mut self, data: &[u8]) {
        self.make_room(data.len());
        self.buf[self.end..self.end + data.len()].copy_from_slice(data);
        self.end += data.len();
    }

    /// Hands the decoder `buffer` to receive into if it holds no bytes, and
    /// gives back the buffer it does not need (its own, or `buffer` when it
    /// holds bytes). With [`FrameDecoder::reclaim_buffer`], a server lends
    /// one buffer to each connection for a read turn, so an idle connection
    /// holds no receive buffer at all.
    pub fn lend_buffer(&mut self, buffer: Vec<u8>) -> Vec<u8> {
        if self.start != self.end {
            return buffer;
        }
        self.start = 0;
        self.end = 0;
        std::mem::replace(&mut self.buf, buffer)
    }

    /// Takes the receive buffer back if no byte is buffered; an empty
    /// `Vec` otherwise (the bytes stay with the decoder).
    pub fn reclaim_buffer(&mut self) -> Vec<u8> {
        if self.start != self.end {
            return Vec::new();
        }
        self.start = 0;
        self.end = 0;
        std::mem::take(&mut self.buf)
    }

    /// Drops the bytes buffered and the buffer: the connection closed, and
    /// what it held must not wait for the decoder's last owner to go.
    pub fn discard(&mut self) {
        self.start = 0;
        self.end = 0;
        self.buf = Vec::new();
    }

    /// Bytes of memory the decoder's buffer holds (for memory accounting).
    pub fn held_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The bytes received and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks the first `n` buffered bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        assert!(
            n <= self.end - self.start,
            "consume past the buffered bytes"
        );
        self.start += n;
    }

    /// The next frame or drop event, or `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Decoded> {
        Some(match self.next_borrowed()? {
            Borrowed::Frame(frame) => Decoded::Frame(frame.to_message()),
            Borrowed::Dropped(reason) => Decoded::Dropped(reason),
        })
    }

    /// As [`FrameDecoder::next_frame`], with the frame's payload borrowed
    /// from the receive buffer: the caller copies it where it wants it
    /// (into a [`super::MessageBatch`], say).
    pub fn next_borrowed(&mut self) -> Option<Borrowed<'_>> {
        if self.skip > 0 {
            let n = self.skip.min((self.end - self.start) as u64);
            self.start += n as usize;
            self.skip -= n;
            if self.skip > 0 {
                return None;
            }
        }
        let data = self.buffered();
        if data.is_empty() {
            return None;
        }
        let magic_len = data.len().min(MAGIC.len());
        if data[..magic_len] != MAGIC[..magic_len] {
            return Some(self.resync());
        }
        let header_bytes: &[u8; HEADER_SIZE] = data.get(..HEADER_SIZE)?.try_into().ok()?;
        let header = FrameHeader::decode(header_bytes)?;
        let frame_len = header.frame_len();
        if frame_len > self.max_frame_len {
            let available = data.len() as u64;
            let now = frame_len.min(available);
            self.start += now as usize;
            self.skip = frame_len - now;
            return Some(Borrowed::Dropped(DropReason::Oversized {
                frame_len,
                max: self.max_frame_len,
            }));
        }
        let frame_len = frame_len as usize;
        if data.len() < frame_len {
            return None;
        }
        if crc32(&data[HEADER_SIZE..frame_len]) != header.crc {
            self.start += frame_len;
            return Some(Borrowed::Dropped(DropReason::BadCrc {
                type_code: header.type_code,
                request_id: header.request_id,
            }));
        }
        let payload = self.start + HEADER_SIZE..self.start + frame_len;
        self.start += frame_len;
        Some(Borrowed::Frame(FrameRef {
            type_code: header.type_code,
            request_id: header.request_id,
            payload: &self.buf[payload],
        }))
    }

    /// Bytes still missing to complete the frame at the front of the buffer.
    fn missing_frame_bytes(&self) -> usize {
        let data = self.buffered();
        match data.get(..HEADER_SIZE).and_then(|h| {
            let header: &[u8; HEADER_SIZE] = h.try_into().ok()?;
            FrameHeader::decode(header)
        }) {
            Some(header) if header.frame_len() <= self.max_frame_len => {
                (header.frame_len() as usize).saturating_sub(data.len())
            }
            _ => 0,
        }
    }

    /// Ensures `want` free bytes after `end`, compacting before growing.
    fn make_room(&mut self, want: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // Give back the memory of a past large frame.
            if self.buf.len() > 4 * self.read_size.max(want) {
                self.buf = Vec::new();
            }
        }
        if self.buf.len() - self.end >= want {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < want {
            self.buf.resize(self.end + want, 0);
        }
    }

    /// Drops the bytes before the next `VX` found from one byte in.
    fn resync(&mut self) -> Borrowed<'static> {
        let before = self.start;
        self.skip_to_next_magic();
        Borrowed::Dropped(DropReason::Garbage {
            skipped: self.start - before,
        })
    }

    fn skip_to_next_magic(&mut self) {
        let data = self.buffered();
        let found = data
            .windows(MAGIC.len())
            .skip(1)
            .position(|w| w == MAGIC)
            .map(|i| i + 1);
        self.start += match found {
            Some(offset) => offset,
            // Keep a trailing 'V': it may be the start of a magic split
            // across two reads.
            None if data.len() > 1 && data[data.len() - 1] == MAGIC[0] => data.len() - 1,
            None => data.len(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{encode_frame, FrameHeader};
    use proptest::prelude::*;

    fn decode_all(decoder: &mut FrameDecoder) -> Vec<Decoded> {
        std::iter::from_fn(|| decoder.next_frame()).collect()
    }

    fn frames(events: &[Decoded]) -> Vec<&Message> {
        events
            .iter()
            .filter_map(|e| match e {
                Decoded::Frame(m) => Some(m),
                Decoded::Dropped(_) => None,
            })
            .collect()
    }

    #[test]
    fn decodes_the_protocol_test_vector() {
        let mut decoder = FrameDecoder::new(1024, 64);
        decoder.push(&[
            0x56, 0x58, 0x00, 0x00, 0xc8, 0x00, 0x00, 0x00, 0x05, 0x36, 0x10, 0xa6, 0x86, 0x12,
            0x34, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
        ]);
        assert_eq!(
            decode_all(&mut decoder),
            vec![Decoded::Frame(Message::new(200, 0x1234, b"hello"))]
        );
        assert!(decoder.buffered().is_empty());
    }

    #[test]
    fn a_lent_buffer_is_kept_while_a_frame_is_partial_and_reclaimed_after() {
        let wire = encode_frame(300, 5, b"split across reads");
        let mut decoder = FrameDecoder::new(1024, 64);
        let own = decoder.lend_buffer(vec![0u8; 64]);
        assert!(own.is_empty(), "a fresh decoder has no buffer");
        decoder.push(&wire[..10]);
        assert_eq!(decoder.next_frame(), None);
        assert!(decoder.reclaim_buffer().is_empty(), "partial bytes stay");
        let refused = decoder.lend_buffer(vec![0u8; 64]);
        assert_eq!(refused.len(), 64, "a busy decoder gives the loan back");
        assert_eq!(decoder.buffered(), &wire[..10]);
        decoder.push(&wire[10..]);
        let got = decode_all(&mut decoder);
        assert_eq!(
            got,
            vec![Decoded::Frame(Message::new(300, 5, b"split across reads"))]
        );
        assert!(
            decoder.reclaim_buffer().len() >= 64,
            "the buffer comes back"
        );
        assert!(
            decoder.reclaim_buffer().is_empty(),
            "and the decoder holds none"
        );
    }

    #[test]
    fn partial_reads_byte_by_byte() {
        let wire = encode_frame(300, 5, b"partial payload");
        let mut decoder = FrameDecoder::new(1024, 1);
        for (i, byte) in wire.iter().enumerate() {
            assert_eq!(
                decoder.next_frame(),
                None,
                "frame complete too early at {i}"
            );
            decoder
                .fill_with(|space| -> Result<usize, ()> {
                    space[0] = *byte;
                    Ok(1)
                })
                .unwrap();
        }
        assert_eq!(
            decoder.next_frame(),
            Some(Decoded::Frame(Message::new(300, 5, b"partial payload")))
        );
    }

    #[test]
    fn concatenated_frames_in_one_read() {
        let mut wire = encode_frame(200, 1, b"one");
        wire.extend(encode_frame(201, 2, b""));
        wire.extend(encode_frame(202, 3, b"three"));
        let mut decoder = FrameDecoder::new(1024, 8);
        decoder.push(&wire);
        let events = decode_all(&mut decoder);
        assert_eq!(
            frames(&events),
            vec![
                &Message::new(200, 1, b"one"),
                &Message::new(201, 2, b""),
                &Message::new(202, 3, b"three")
            ]
        );
    }

    #[test]
    fn resyncs_after_garbage_and_bad_crc() {
        let mut wire = b"garbage!".to_vec();
        let mut corrupt = encode_frame(200, 1, b"corrupt");
        corrupt[HEADER_SIZE] ^= 0xff;
        wire.extend(&corrupt);
        wire.extend(encode_frame(200, 2, b"good"));
        let mut decoder = FrameDecoder::new(1024, 8);
        decoder.push(&wire);
        let events = decode_all(&mut decoder);
        assert_eq!(
            events[0],
            Decoded::Dropped(DropReason::Garbage { skipped: 8 })
        );
        assert_eq!(
            events[1],
            Decoded::Dropped(DropReason::BadCrc {
                type_code: 200,
                request_id: 1
            })
        );
        assert_eq!(frames(&events), vec![&Message::new(200, 2, b"good")]);
    }

    #[test]
    fn oversized_frame_is_skipped_whole_not_scanned() {
        // A valid frame smuggled inside the payload of an oversized one must
        // not be delivered.
        let hidden = encode_frame(200, 9, b"smuggled");
        let mut payload = vec![0u8; 40];
        payload.extend(&hidden);
        let oversized = encode_frame(200, 1, &payload);
        let mut decoder = FrameDecoder::new(64, 16);
        // Deliver in pieces so the skip spans several reads.
        for chunk in oversized.chunks(7) {
            decoder.push(chunk);
            while let Some(event) = decoder.next_frame() {
                assert!(
                    matches!(event, Decoded::Dropped(DropReason::Oversized { .. })),
                    "{event:?}"
                );
            }
        }
        decoder.push(&encode_frame(200, 2, b"after"));
        assert_eq!(
            decode_all(&mut decoder),
            vec![Decoded::Frame(Message::new(200, 2, b"after"))]
        );
    }

    #[test]
    fn frame_of_exactly_the_limit_is_accepted() {
        let payload = vec![7u8; 49];
        let mut decoder = FrameDecoder::new((HEADER_SIZE + 49) as u32, 8);
        decoder.push(&encode_frame(200, 1, &payload));
        decoder.push(&encode_frame(200, 2, &[7u8; 50]));
        let events = decode_all(&mut decoder);
        assert_eq!(events[0], Decoded::Frame(Message::new(200, 1, &payload)));
        assert!(matches!(
            events[1],
            Decoded::Dropped(DropReason::Oversized { frame_len: 65, .. })
        ));
    }

    #[test]
    fn magic_split_across_reads_survives_resync() {
        let mut decoder = FrameDecoder::new(1024, 8);
        let frame = encode_frame(200, 3, b"x");
        decoder.push(b"zzV");
        assert_eq!(
            decoder.next_frame(),
            Some(Decoded::Dropped(DropReason::Garbage { skipped: 2 }))
        );
        decoder.push(&frame[1..]);
        assert_eq!(
            decoder.next_frame(),
            Some(Decoded::Frame(Message::new(200, 3, b"x")))
        );
    }

    #[test]
    fn a_large_frame_grows_the_buffer_with_the_bytes_received() {
        let payload: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let wire = encode_frame(200, 1, &payload);
        let mut decoder = FrameDecoder::new(1 << 21, 4096);
        let mut fed = 0;
        let mut reads = 0;
        while fed < wire.len() {
            decoder
                .fill_with(|space| -> Result<usize, ()> {
                    let n = space.len().min(wire.len() - fed);
                    space[..n].copy_from_slice(&wire[fed..fed + n]);
                    Ok(n)
                })
                .unwrap();
            fed = decoder.buffered().len();
            reads += 1;
            assert!(
                decoder.held_bytes() <= 2 * fed + 4096,
                "{} bytes held for {fed} received",
                decoder.held_bytes()
            );
        }
        assert!(reads < 12, "a 1 MB frame took {reads} reads");
        assert_eq!(
            decoder.next_frame(),
            Some(Decoded::Frame(Message::new(200, 1, &payload)))
        );
    }

    #[test]
    fn a_declared_size_reserves_nothing() {
        let mut decoder = FrameDecoder::new(10 << 20, 8192);
        let header =
            FrameHeader::for_payload(200, 1, &vec![0u8; (10 << 20) - HEADER_SIZE]).encode();
        decoder.push(&header);
        assert_eq!(decoder.next_frame(), None);
        decoder
            .fill_with(|space| -> Result<usize, ()> {
                assert_eq!(space.len(), 8192, "only read_size is offered");
                Ok(0)
            })
            .unwrap();
        assert!(decoder.held_bytes() <= 8192 + HEADER_SIZE);
    }

    #[test]
    fn a_bad_crc_frame_is_skipped_whole_so_overlapping_headers_cost_one_check_each() {
        // Back-to-back headers that each declare a 1 KiB frame with a bad
        // CRC: each 1 KiB is checked once, not once per 15-byte header.
        let header = FrameHeader {
            type_code: 200,
            payload_len: 1024 - HEADER_SIZE as u32,
            crc: 0xdead_beef,
            request_id: 1,
        }
        .encode();
        let stream: Vec<u8> = header.iter().copied().cycle().take(1024 * 64).collect();
        let mut decoder = FrameDecoder::new(4096, 4096);
        decoder.push(&stream);
        let events = decode_all(&mut decoder);
        let checked = events
            .iter()
            .filter(|e| matches!(e, Decoded::Dropped(DropReason::BadCrc { .. })))
            .count();
        // 64 KiB hold 4369 headers but only 64 declared frames.
        assert!((60..=64).contains(&checked), "{checked} CRC checks");
        // A valid frame hidden in a bad-CRC frame is not delivered either.
        let hidden = encode_frame(200, 9, b"smuggled");
        let mut corrupt = encode_frame(200, 1, &[&[0u8; 8][..], &hidden].concat());
        corrupt[HEADER_SIZE] ^= 0xff;
        let mut decoder = FrameDecoder::new(4096, 4096);
        decoder.push(&corrupt);
        decoder.push(&encode_frame(200, 2, b"after"));
        let events = decode_all(&mut decoder);
        assert_eq!(frames(&events), vec![&Message::new(200, 2, b"after")]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..64), 0..32)) {
            let mut decoder = FrameDecoder::new(128, 8);
            for chunk in &chunks {
                decoder.push(chunk);
                while decoder.next_frame().is_some() {}
            }
        }

        #[test]
        fn valid_frames_survive_any_split(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8),
            split in 1usize..50,
        ) {
            let wire: Vec<u8> = payloads.iter().enumerate()
                .flat_map(|(i, p)| encode_frame(200, i as u16, p)).collect();
            let mut decoder = FrameDecoder::new(1024, 4);
            let mut got = Vec::new();
            for chunk in wire.chunks(split) {
                decoder.push(chunk);
                while let Some(event) = decoder.next_frame() {
                    match event {
                        Decoded::Frame(m) => got.push(m.payload().to_vec()),
                        Decoded::Dropped(r) => prop_assert!(false, "dropped {r}"),
                    }
                }
            }
            prop_assert_eq!(got, payloads);
        }
    }
}
