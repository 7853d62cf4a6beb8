//! The handshake: length-prefixed JSON hellos and the server's ack.
//!
//! Each handshake message is a 2-byte big-endian length and that many bytes
//! of UTF-8 JSON. The server speaks first (`{"v", "pv", "meta"}`, or
//! `{"error": ...}` when it rejects), the client answers with its own hello,
//! and the server acks with `{"result": "ok"}`. JSON is written the way
//! Python's `json.dumps` writes it, so our bytes match the reference's.

use serde_json::{json, Value};

use super::decoder::{Decoded, FrameDecoder};
use super::frame::MAGIC;

/// Protocol version spoken by this library.
pub const PROTOCOL_VERSION: &str = "1.0";
/// The protocol major version this library is compatible with.
pub const PROTOCOL_MAJOR: u64 = 1;
/// Largest handshake message accepted (the reference closes above 30 KiB).
pub const MAX_HANDSHAKE_MESSAGE: usize = 30 * 1024;

/// Why a handshake failed, as seen by the protocol (no I/O errors here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The peer's `pv` is missing, malformed or of another major version.
    VersionMismatch(String),
    /// The server refused the connection because it is full.
    ServerFull,
    /// The server refused with another reason.
    Rejected(String),
    /// The message is not the JSON object expected at this step.
    Malformed(String),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::VersionMismatch(pv) => write!(
                f,
                "the peer speaks protocol version {pv}, this library speaks {PROTOCOL_VERSION} (major {PROTOCOL_MAJOR} required)"
            ),
            HandshakeError::ServerFull => write!(f, "the server is full (max_connection reached)"),
            HandshakeError::Rejected(reason) => write!(f, "the server rejected the connection: {reason}"),
            HandshakeError::Malformed(what) => write!(f, "malformed handshake message: {what}"),
        }
    }
}

/// One item read while the handshake is in progress.
#[derive(Debug, PartialEq)]
pub enum HandshakeItem {
    /// A handshake JSON message.
    Message(Value),
    /// A data frame (or dropped bytes) that arrived inside the handshake
    /// (protocol.md 1.8: a server broadcast reaches unfinished handshakes).
    Frame(Decoded),
}

/// Our hello, ready to write: `{"v": <library version>, "pv": "1.0", "meta": {}}`.
pub fn hello(library_version: &str) -> Vec<u8> {
    encode(&json!({"v": library_version, "pv": PROTOCOL_VERSION, "meta": {}}))
}

/// The server's ack, ready to write.
pub fn ack() -> Vec<u8> {
    encode(&json!({"result": "ok"}))
}

/// A rejection carrying `reason` (e.g. `"server_full"`), ready to write.
pub fn rejection(reason: &str) -> Vec<u8> {
    encode(&json!({"error": reason}))
}

/// Length prefix plus `value` written as Python's `json.dumps` does
/// (`", "` and `": "` separators, keys in insertion order).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut body = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut body, PythonFormatter);
    serde::Serialize::serialize(value, &mut serializer).expect("JSON values always serialize");
    let len = u16::try_from(body.len()).expect("handshake messages are small");
    let mut out = Vec::with_capacity(2 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Takes the next handshake item from the decoder's buffer, or `None` when
/// more bytes are needed. A message starting with `VX` is a data frame.
pub fn next_item(decoder: &mut FrameDecoder) -> Option<Result<HandshakeItem, HandshakeError>> {
    let data = decoder.buffered();
    if data.len() < 2 {
        return None;
    }
    if data[..2] == MAGIC {
        return decoder.next_frame().map(|d| Ok(HandshakeItem::Frame(d)));
    }
    let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
    if len > MAX_HANDSHAKE_MESSAGE {
        return Some(Err(HandshakeError::Malformed(format!(
            "{len} bytes, over the {MAX_HANDSHAKE_MESSAGE}-byte limit"
        ))));
    }
    let body = data.get(2..2 + len)?;
    let parsed = serde_json::from_slice::<Value>(body)
        .map_err(|e| HandshakeError::Malformed(format!("not JSON ({e})")));
    decoder.consume(2 + len);
    Some(parsed.map(HandshakeItem::Message))
}

/// Checks a hello (the server's, or a client's on the server side): a
/// rejection becomes an error, and `pv` must be `"MAJOR.MINOR"` with
/// integer parts and MAJOR == 1.
pub fn check_hello(message: &Value) -> Result<(), HandshakeError> {
    check_rejection(message)?;
    let pv = message
        .get("pv")
        .ok_or_else(|| HandshakeError::VersionMismatch("(none)".into()))?;
    match pv.as_str() {
        Some(text) if is_compatible(text) => Ok(()),
        _ => Err(HandshakeError::VersionMismatch(pv.to_string())),
    }
}

/// Checks the server's ack `{"result": "ok"}`.
pub fn check_ack(message: &Value) -> Result<(), HandshakeError> {
    check_rejection(message)?;
    match message.get("result").and_then(Value::as_str) {
        Some("ok") => Ok(()),
        _ => Err(HandshakeError::Malformed(format!(
            "expected {{\"result\": \"ok\"}}, got {message}"
        ))),
    }
}

/// Whether a protocol version string is compatible with ours.
pub fn is_compatible(pv: &str) -> bool {
    let Some((major, minor)) = pv.split_once('.') else {
        return false;
    };
    let is_int = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    is_int(major) && is_int(minor) && major.parse::<u64>() == Ok(PROTOCOL_MAJOR)
}

fn check_rejection(message: &Value) -> Result<(), HandshakeError> {
    let object = message.as_object().ok_or_else(|| {
        HandshakeError::Malformed(format!("expected a JSON object, got {message}"))
    })?;
    match object.get("error") {
        None => Ok(()),
        Some(Value::String(reason)) if reason == "server_full" => Err(HandshakeError::ServerFull),
        Some(Value::String(reason)) => Err(HandshakeError::Rejected(reason.clone())),
        Some(other) => Err(HandshakeError::Rejected(other.to_string())),
    }
}

/// `serde_json` formatter with Python's default separators.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        item_separator(writer, first)
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        item_separator(writer, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// Python's `", "` between array items and between object members.
fn item_separator<W: ?Sized + std::io::Write>(writer: &mut W, first: bool) -> std::io::Result<()> {
    if first {
        Ok(())
    } else {
        writer.write_all(b", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::encode_frame;
    use crate::protocol::message::Message;

    #[test]
    fn messages_match_the_reference_bytes() {
        let server_hello = encode(&json!({"v": "3.3.0", "pv": "1.0", "meta": {}}));
        assert_eq!(&server_hello[..2], &[0x00, 0x27]);
        assert_eq!(
            &server_hello[2..],
            br#"{"v": "3.3.0", "pv": "1.0", "meta": {}}"#
        );
        assert_eq!(ack(), b"\x00\x10{\"result\": \"ok\"}");
        assert_eq!(
            rejection("server_full"),
            b"\x00\x18{\"error\": \"server_full\"}"
        );
        assert_eq!(
            &hello("0.1.0")[2..],
            br#"{"v": "0.1.0", "pv": "1.0", "meta": {}}"#
        );
    }

    #[test]
    fn version_check_follows_the_reference() {
        for ok in ["1.0", "1.7", "01.0"] {
            assert!(is_compatible(ok), "{ok}");
        }
        for bad in ["2.0", "1", "", "1.x", "a.0", "1.0.0", " 1.0", "0.9"] {
            assert!(!is_compatible(bad), "{bad}");
        }
        assert_eq!(
            check_hello(&json!({"v": "3.3.0", "pv": "1.0", "meta": {}})),
            Ok(())
        );
        assert!(matches!(
            check_hello(&json!({"v": "2.0.0rc1", "meta": {}})),
            Err(HandshakeError::VersionMismatch(_))
        ));
        assert!(matches!(
            check_hello(&json!({"pv": 1})),
            Err(HandshakeError::VersionMismatch(_))
        ));
        assert!(matches!(
            check_hello(&json!([1])),
            Err(HandshakeError::Malformed(_))
        ));
    }

    #[test]
    fn rejections_are_recognised() {
        assert_eq!(
            check_hello(&json!({"error": "server_full"})),
            Err(HandshakeError::ServerFull)
        );
        assert_eq!(
            check_ack(&json!({"error": "banned"})),
            Err(HandshakeError::Rejected("banned".into()))
        );
        assert_eq!(check_ack(&json!({"result": "ok"})), Ok(()));
        assert!(check_ack(&json!({"result": "no"})).is_err());
    }

    #[test]
    fn frames_inside_the_handshake_are_read_as_frames() {
        let mut decoder = FrameDecoder::new(1024, 64);
        decoder.push(&encode_frame(200, 40000, b"early"));
        decoder.push(&encode(&json!({"v": "3.3.0", "pv": "1.0", "meta": {}})));
        decoder.push(&encode_frame(201, 40001, b"between"));
        decoder.push(&ack());
        let mut items = Vec::new();
        while let Some(item) = next_item(&mut decoder) {
            items.push(item.unwrap());
        }
        assert_eq!(
            items,
            vec![
                HandshakeItem::Frame(Decoded::Frame(Message::new(200, 40000, b"early"))),
                HandshakeItem::Message(json!({"v": "3.3.0", "pv": "1.0", "meta": {}})),
                HandshakeItem::Frame(Decoded::Frame(Message::new(201, 40001, b"between"))),
                HandshakeItem::Message(json!({"result": "ok"})),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_handshake_bytes_never_panic(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), 0..16),
        ) {
            let mut decoder = FrameDecoder::new(256, 16);
            for chunk in &chunks {
                decoder.push(chunk);
                while let Some(item) = next_item(&mut decoder) {
                    if let Ok(HandshakeItem::Message(message)) = item {
                        let _ = (check_hello(&message), check_ack(&message));
                    } else if item.is_err() {
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn incomplete_and_oversized_messages() {
        let mut decoder = FrameDecoder::new(1024, 64);
        let hello = ack();
        decoder.push(&hello[..5]);
        assert_eq!(next_item(&mut decoder), None);
        decoder.push(&hello[5..]);
        assert!(matches!(
            next_item(&mut decoder),
            Some(Ok(HandshakeItem::Message(_)))
        ));
        decoder.push(&[0xff, 0xff]);
        assert!(matches!(
            next_item(&mut decoder),
            Some(Err(HandshakeError::Malformed(_)))
        ));
    }
}
