//! A received (or cloned) message: type code, request id and payload; and
//! [`MessageBatch`], the messages of one read sharing one allocation.

use std::sync::Arc;

use super::frame::HEADER_SIZE;

/// One message as delivered to the application.
///
/// The payload is stored followed by one NUL byte that is not part of it, so
/// a text payload can be handed to C as a NUL-terminated string without a
/// second copy.
pub struct Message {
    type_code: u16,
    request_id: u16,
    /// Payload bytes plus the trailing NUL.
    bytes: Storage,
}

/// Where a message's payload (and its NUL) lives.
enum Storage {
    /// In an allocation of its own.
    Own(Vec<u8>),
    /// At `start..end` of a block shared with the other messages of its
    /// batch (see [`MessageBatch`]).
    Shared {
        block: Arc<Vec<u8>>,
        start: usize,
        end: usize,
    },
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
            bytes: Storage::Own(bytes),
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
        let with_nul = self.payload_with_nul();
        &with_nul[..with_nul.len() - 1]
    }

    /// The payload followed by its NUL terminator.
    pub fn payload_with_nul(&self) -> &[u8] {
        match &self.bytes {
            Storage::Own(bytes) => bytes,
            Storage::Shared { block, start, end } => &block[*start..*end],
        }
    }
}

/// A clone owns its payload: a message kept past its callback never holds
/// on to the rest of its batch.
impl Clone for Message {
    fn clone(&self) -> Self {
        Message::new(self.type_code, self.request_id, self.payload())
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.type_code == other.type_code
            && self.request_id == other.request_id
            && self.payload() == other.payload()
    }
}

impl Eq for Message {}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("type_code", &self.type_code)
            .field("request_id", &self.request_id)
            .field("payload", &self.payload())
            .finish()
    }
}

/// The messages of one read, their payloads copied into one allocation:
/// a read of many small frames costs two allocations, not one per
/// message. The messages it gives out share that block until the last of
/// them is dropped; a clone copies its payload out.
#[derive(Default)]
pub struct MessageBatch {
    /// Every payload followed by its NUL, back to back.
    bytes: Vec<u8>,
    /// The first message, inline: a read of one frame allocates only its
    /// payload.
    first: Option<BatchEntry>,
    /// The messages after the first.
    rest: Vec<BatchEntry>,
    /// Room to reserve at the first message: (bytes, messages).
    expected: (usize, usize),
}

/// A message of a batch: where its payload (with its NUL) ends.
struct BatchEntry {
    type_code: u16,
    request_id: u16,
    end: usize,
}

impl MessageBatch {
    /// An empty batch for the frames of a read that left `received` bytes
    /// buffered: at its first message it makes room for all of them at
    /// once (up to 64 KiB; a larger frame's payload gets exactly its
    /// size). A batch that stays empty allocates nothing.
    pub fn for_read(received: usize) -> Self {
        const MOST_RESERVED: usize = 64 * 1024;
        const MOST_MESSAGES: usize = 256;
        let frames = received / HEADER_SIZE;
        MessageBatch {
            expected: (received.min(MOST_RESERVED), frames.min(MOST_MESSAGES)),
            ..MessageBatch::default()
        }
    }

    /// Adds a message with a copy of `payload`.
    pub fn push(&mut self, type_code: u16, request_id: u16, payload: &[u8]) {
        let (bytes, messages) = self.expected;
        if self.first.is_none() {
            self.bytes.reserve(bytes.max(payload.len() + 1));
        } else if self.rest.is_empty() {
            self.rest.reserve(messages.saturating_sub(1));
        }
        self.bytes.extend_from_slice(payload);
        self.bytes.push(0);
        let entry = BatchEntry {
            type_code,
            request_id,
            end: self.bytes.len(),
        };
        match self.first {
            None => self.first = Some(entry),
            Some(_) => self.rest.push(entry),
        }
    }

    /// The number of messages.
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Whether the batch holds no message.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// The payload bytes of all its messages (NULs not counted).
    pub fn payload_bytes(&self) -> usize {
        self.bytes.len() - self.len()
    }

    /// The messages in the order they were pushed, each made as it is
    /// taken. A lone message owns its payload; several share one block.
    /// Room reserved and not used is given back when it is more than the
    /// bytes used, so the block never holds more than twice its payloads.
    pub fn into_messages(mut self) -> impl Iterator<Item = Message> {
        if self.bytes.capacity() - self.bytes.len() > self.bytes.len() {
            self.bytes.shrink_to_fit();
        }
        let mut lone = None;
        let mut block = None;
        match self.len() {
            1 => lone = Some(self.bytes),
            _ => block = Some(Arc::new(self.bytes)),
        }
        let mut start = 0;
        self.first.into_iter().chain(self.rest).map(move |entry| {
            let bytes = match (lone.take(), &block) {
                (Some(bytes), _) => Storage::Own(bytes),
                (None, Some(block)) => Storage::Shared {
                    block: block.clone(),
                    start,
                    end: entry.end,
                },
                (None, None) => unreachable!("a batch has its bytes"),
            };
            start = entry.end;
            Message {
                type_code: entry.type_code,
                request_id: entry.request_id,
                bytes,
            }
        })
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

    #[test]
    fn a_batch_gives_back_its_messages_in_order_each_nul_terminated() {
        let mut batch = MessageBatch::default();
        batch.push(200, 1, b"one");
        batch.push(201, 2, b"");
        batch.push(202, 3, b"three");
        assert_eq!((batch.len(), batch.payload_bytes()), (3, 8));
        let messages: Vec<Message> = batch.into_messages().collect();
        assert_eq!(
            messages,
            [
                Message::new(200, 1, b"one"),
                Message::new(201, 2, b""),
                Message::new(202, 3, b"three"),
            ]
        );
        assert_eq!(messages[1].payload_with_nul(), b"\0");
        assert_eq!(messages[2].payload_with_nul(), b"three\0");
    }

    #[test]
    fn batch_messages_share_one_block_and_a_clone_owns_its_payload() {
        let mut batch = MessageBatch::default();
        batch.push(200, 1, b"a");
        batch.push(200, 2, b"b");
        let messages: Vec<Message> = batch.into_messages().collect();
        let block = |m: &Message| match &m.bytes {
            Storage::Shared { block, .. } => Some(block.clone()),
            Storage::Own(_) => None,
        };
        let shared = block(&messages[0]).expect("several messages share a block");
        assert!(Arc::ptr_eq(&shared, &block(&messages[1]).unwrap()));
        let kept = messages[1].clone();
        assert!(block(&kept).is_none(), "a clone must not pin the block");
        assert_eq!(kept, messages[1]);
        drop(messages);
        assert_eq!(Arc::strong_count(&shared), 1);
    }

    #[test]
    fn room_reserved_and_not_used_is_given_back() {
        let mut batch = MessageBatch::for_read(64 * 1024);
        batch.push(7, 8, b"small");
        let message = batch.into_messages().next().unwrap();
        match &message.bytes {
            Storage::Own(bytes) => assert!(bytes.capacity() < 64, "{}", bytes.capacity()),
            Storage::Shared { .. } => panic!("a lone message owns its payload"),
        }
    }

    #[test]
    fn a_lone_message_of_a_batch_owns_its_payload() {
        let mut batch = MessageBatch::default();
        batch.push(7, 8, b"only");
        let message = batch.into_messages().next().unwrap();
        assert!(matches!(message.bytes, Storage::Own(_)));
        assert_eq!(message.payload_with_nul(), b"only\0");
    }
}
