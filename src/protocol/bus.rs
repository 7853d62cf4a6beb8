//! What cluster nodes publish to each other over the bus (see
//! `crate::cluster`), with no I/O: one Veltix frame, already encoded, with
//! the node that sent it and which of the receiving node's peers it is for.
//!
//! Layout (integers big-endian):
//!
//! | bytes | field                                              |
//! |-------|----------------------------------------------------|
//! | 1     | format version, [`VERSION`]                        |
//! | 1     | target kind: 1 everyone, 2 one peer, 3 tag         |
//! | 2     | the sending node's id                              |
//! | ...   | the target (below)                                 |
//! | ...   | the frame: its 15-byte header and payload          |
//!
//! Targets: everyone is a u32 count and that many u64 peer ids left out;
//! one peer is its u64 id; a tag is a u16 length and the name, then a u8
//! (1 if a value follows) and a u16 length and the value.

use super::frame::{FrameHeader, HEADER_SIZE};

/// The format version this build writes and reads.
pub const VERSION: u8 = 1;

/// Which peers of a receiving node a bus message is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusTarget<'a> {
    /// Every handshaken peer but those listed.
    Everyone { except: Vec<u64> },
    /// The peer with this cluster-wide id.
    Peer(u64),
    /// The peers with tag `name` (set to `value`, if given).
    Tag {
        name: &'a str,
        value: Option<&'a str>,
    },
}

/// One decoded bus message, borrowing the published bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage<'a> {
    /// The node that published it.
    pub origin: u16,
    /// Who it is for.
    pub target: BusTarget<'a>,
    /// The frame to write to each of them, header included.
    pub frame: &'a [u8],
}

const EVERYONE: u8 = 1;
const PEER: u8 = 2;
const TAG: u8 = 3;

/// Encodes a message from node `origin` for `target`: `frame` is a whole
/// encoded frame, in parts (a header and a payload, copied once, here).
/// `None` when a tag's name or value is
/// longer than 65,535 bytes, or `except` has more than 2^32 - 1 ids.
pub fn encode(origin: u16, target: &BusTarget<'_>, frame: &[&[u8]]) -> Option<Vec<u8>> {
    let frame_len: usize = frame.iter().map(|part| part.len()).sum();
    let mut out = Vec::with_capacity(4 + target_len(target) + frame_len);
    out.push(VERSION);
    match target {
        BusTarget::Everyone { .. } => out.push(EVERYONE),
        BusTarget::Peer(_) => out.push(PEER),
        BusTarget::Tag { .. } => out.push(TAG),
    }
    out.extend_from_slice(&origin.to_be_bytes());
    match target {
        BusTarget::Everyone { except } => {
            out.extend_from_slice(&u32::try_from(except.len()).ok()?.to_be_bytes());
            for id in except {
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
        BusTarget::Peer(id) => out.extend_from_slice(&id.to_be_bytes()),
        BusTarget::Tag { name, value } => {
            put_str(&mut out, name)?;
            match value {
                None => out.push(0),
                Some(value) => {
                    out.push(1);
                    put_str(&mut out, value)?;
                }
            }
        }
    }
    for part in frame {
        out.extend_from_slice(part);
    }
    Some(out)
}

/// Decodes a published message; `None` for anything malformed: another
/// version, an unknown kind, a short field, text that is not UTF-8, or a
/// frame whose header is invalid or does not declare exactly the bytes
/// that follow it.
pub fn decode(bytes: &[u8]) -> Option<BusMessage<'_>> {
    let mut reader = Reader(bytes);
    if reader.u8()? != VERSION {
        return None;
    }
    let kind = reader.u8()?;
    let origin = reader.u16()?;
    let target = match kind {
        EVERYONE => {
            let count = reader.u32()? as usize;
            // Checked against the bytes present before anything is
            // allocated for them.
            if reader.0.len() / 8 < count {
                return None;
            }
            let except = (0..count).map(|_| reader.u64()).collect::<Option<_>>()?;
            BusTarget::Everyone { except }
        }
        PEER => BusTarget::Peer(reader.u64()?),
        TAG => {
            let name = reader.str()?;
            let value = match reader.u8()? {
                0 => None,
                1 => Some(reader.str()?),
                _ => return None,
            };
            BusTarget::Tag { name, value }
        }
        _ => return None,
    };
    let frame = reader.0;
    let header: &[u8; HEADER_SIZE] = frame.get(..HEADER_SIZE)?.try_into().ok()?;
    let header = FrameHeader::decode(header)?;
    if header.payload_len as usize != frame.len() - HEADER_SIZE {
        return None;
    }
    Some(BusMessage {
        origin,
        target,
        frame,
    })
}

/// The bytes `target` takes after the fixed fields.
fn target_len(target: &BusTarget<'_>) -> usize {
    match target {
        BusTarget::Everyone { except } => 4 + 8 * except.len(),
        BusTarget::Peer(_) => 8,
        BusTarget::Tag { name, value } => 3 + name.len() + value.map_or(0, |v| 2 + v.len()),
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) -> Option<()> {
    out.extend_from_slice(&u16::try_from(text.len()).ok()?.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    Some(())
}

/// Reads fields off the front of a message.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[byte]| byte)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = self.u16()? as usize;
        if self.0.len() < len {
            return None;
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode_frame;

    #[test]
    fn every_target_comes_back_as_it_was_sent() {
        let frame = encode_frame(200, 7, b"hello");
        let targets = [
            BusTarget::Everyone { except: vec![] },
            BusTarget::Everyone {
                except: vec![1, u64::MAX, 5 << 37],
            },
            BusTarget::Peer(9 << 37 | 4),
            BusTarget::Tag {
                name: "room",
                value: None,
            },
            BusTarget::Tag {
                name: "room",
                value: Some("lobby é"),
            },
        ];
        for target in targets {
            let bytes = encode(513, &target, &[&frame[..15], &frame[15..]]).unwrap();
            assert_eq!(bytes.len(), 4 + target_len(&target) + frame.len());
            let message = decode(&bytes).unwrap();
            assert_eq!(message.origin, 513);
            assert_eq!(message.target, target);
            assert_eq!(message.frame, &frame[..]);
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        let frame = encode_frame(200, 7, b"hello");
        let good = encode(1, &BusTarget::Peer(3), &[&frame]).unwrap();
        // Every truncation, another version, an unknown kind.
        for len in 0..good.len() {
            assert_eq!(decode(&good[..len]), None, "{len} bytes");
        }
        let mut bad = good.clone();
        bad[0] = 2;
        assert_eq!(decode(&bad), None);
        bad = good.clone();
        bad[1] = 9;
        assert_eq!(decode(&bad), None);
        // A frame followed by a stray byte, a broken frame header.
        bad = good.clone();
        bad.push(0);
        assert_eq!(decode(&bad), None);
        bad = good.clone();
        bad[12] ^= 0xff;
        assert_eq!(decode(&bad), None);
        // A count of left-out peers larger than the bytes present.
        let mut huge = vec![VERSION, EVERYONE, 0, 1];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&huge), None);
        // A tag that is not UTF-8, a bad value flag.
        let mut tag = vec![VERSION, TAG, 0, 1, 0, 1, 0xff, 0];
        tag.extend_from_slice(&frame);
        assert_eq!(decode(&tag), None);
        tag[6] = b'a';
        tag[7] = 7;
        assert_eq!(decode(&tag), None);
    }

    #[test]
    fn oversized_tags_are_not_encoded() {
        let long = "x".repeat(70_000);
        let target = BusTarget::Tag {
            name: &long,
            value: None,
        };
        assert_eq!(encode(1, &target, &[]), None);
    }
}
