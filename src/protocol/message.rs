//! A received (or cloned) message: type code, request id and payload.

/// One message as delivered to the application.
///
/// The payload is stored followed by one NUL byte that is not part of it, so
/// a text payload can be handed to C as a NUL-terminated string without a
/// second copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    type_code: u16,
    request_id: u16,
    /// Payload bytes plus the trailing NUL.
    bytes: Vec<u8>,
}

impl Message {
    /// A message owning a copy of `payload` (the one copy on receive).
    pub fn new(type_code: u16, request_id: u16, payload: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(payload.len() + 1);
        bytes.extend_from_slice(payload);
        bytes.push(0);
        Message {
            type_code,
            request_id,
            bytes,
        }
    }

    /// The message type code.
    pub fn type_code(&self) -> u16 {
        self.type_code
    }

    /// The request id; a reply to this message must carry the same id.
    pub fn request_id(&self) -> u16 {
        self.request_id
    }

    /// The payload, without the trailing NUL.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[..self.bytes.len() - 1]
    }

    /// The payload followed by its NUL terminator.
    pub fn payload_with_nul(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_nul_terminated_but_not_counted() {
        let message = Message::new(200, 9, b"hi");
        assert_eq!(message.payload(), b"hi");
        assert_eq!(message.payload_with_nul(), b"hi\0");
        assert_eq!(Message::new(0, 0, b"").payload_with_nul(), b"\0");
    }
}
