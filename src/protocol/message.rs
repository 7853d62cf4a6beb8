//! A received (or cloned) message: type code, request id and payload; and
//! [`MessageBatch`], the messages of one read sharing one allocation.

use super::frame::HEADER_SIZE;

/// One message as delivered to the application.
///
/// The payload is stored followed by one NUL byte that is not part of it, so
/// a text payload can be handed to C as a NUL-terminated string without a
/// second copy.
pub struct Message {
    type_code: u16,
    request_id: u16,
    /// The allocation holding the payload: its own, or the block of its
    /// batch while the message is lent (see [`MessageBatch::lend_each`]).
    block: Vec<u8>,
    /// Where the payload plus its NUL lies in `block`.
    start: usize,
    end: usize,
}

impl Message {
    /// A message owning a copy of `payload` (the one copy on receive).
    pub fn new(type_code: u16, request_id: u16, payload: &[u8]) -> Self {
        let mut block = Vec::with_capacity(payload.len() + 1);
        block.extend_from_slice(payload);
        block.push(0);
        Message {
            type_code,
            request_id,
            end: block.len(),
            block,
            start: 0,
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
        &self.block[self.start..self.end - 1]
    }

    /// The payload followed by its NUL terminator.
    pub fn payload_with_nul(&self) -> &[u8] {
        &self.block[self.start..self.end]
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

/// The messages of one read, their payloads copied into one block: a read
/// of many small frames costs one allocation, not one per message, and a
/// block can be emptied and used again for a later read. Its messages are
/// lent one at a time ([`MessageBatch::lend_each`]); a clone copies its
/// payload out.
#[derive(Default)]
pub struct MessageBatch {
    /// Every payload followed by its NUL, back to back.
    bytes: Vec<u8>,
    /// The first message, inline: a read of one frame needs no list.
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
    /// The most room reserved for one read's payloads before they arrive
    /// (a larger frame's payload gets exactly its size).
    pub const MOST_RESERVED: usize = 64 * 1024;

    /// An empty batch for the frames of a read that left `received` bytes
    /// buffered: at its first message it makes room for all of them at
    /// once (up to [`MessageBatch::MOST_RESERVED`]) in `block`, an emptied
    /// block of an earlier batch or a new `Vec`. A batch that stays empty
    /// allocates nothing.
    pub fn for_read(received: usize, block: Vec<u8>) -> Self {
        const MOST_MESSAGES: usize = 256;
        debug_assert!(block.is_empty());
        let frames = received / HEADER_SIZE;
        MessageBatch {
            bytes: block,
            expected: (received.min(Self::MOST_RESERVED), frames.min(MOST_MESSAGES)),
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

    /// Gives back room reserved and not used when it is more than the
    /// bytes used, so a batch that waits holds at most twice its payloads.
    pub fn give_back_unused_room(&mut self) {
        if self.bytes.capacity() - self.bytes.len() > self.bytes.len() {
            self.bytes.shrink_to_fit();
        }
    }

    /// Lends its messages to `lend`, in the order they were pushed, while
    /// `lend` returns true; then returns the block, emptied, for a later
    /// batch. No message is allocated: each holds the block while it is
    /// lent.
    pub fn lend_each(self, mut lend: impl FnMut(&Message) -> bool) -> Vec<u8> {
        let mut message = Message {
            type_code: 0,
            request_id: 0,
            block: self.bytes,
            start: 0,
            end: 0,
        };
        for entry in self.first.into_iter().chain(self.rest) {
            message.type_code = entry.type_code;
            message.request_id = entry.request_id;
            message.start = message.end;
            message.end = entry.end;
            if !lend(&message) {
                break;
            }
        }
        let mut block = message.block;
        block.clear();
        block
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

    /// The messages a batch lends, each copied out.
    fn lent(batch: MessageBatch) -> Vec<Message> {
        let mut messages = Vec::new();
        batch.lend_each(|m| {
            messages.push(m.clone());
            true
        });
        messages
    }

    #[test]
    fn a_batch_lends_its_messages_in_order_each_nul_terminated() {
        let mut batch = MessageBatch::default();
        batch.push(200, 1, b"one");
        batch.push(201, 2, b"");
        batch.push(202, 3, b"three");
        assert_eq!((batch.len(), batch.payload_bytes()), (3, 8));
        let mut with_nul = Vec::new();
        let block = batch.lend_each(|m| {
            with_nul.push(m.payload_with_nul().to_vec());
            true
        });
        assert_eq!(with_nul, [&b"one\0"[..], b"\0", b"three\0"]);
        assert!(block.is_empty());
        let mut batch = MessageBatch::default();
        batch.push(200, 1, b"one");
        batch.push(201, 2, b"");
        assert_eq!(
            lent(batch),
            [Message::new(200, 1, b"one"), Message::new(201, 2, b"")]
        );
    }

    #[test]
    fn lent_messages_share_the_block_which_comes_back_and_a_clone_owns_its_payload() {
        let mut batch = MessageBatch::for_read(100, Vec::with_capacity(4096));
        batch.push(200, 1, b"a");
        batch.push(200, 2, b"b");
        let mut addresses = Vec::new();
        let mut kept = None;
        let block = batch.lend_each(|m| {
            addresses.push(m.payload().as_ptr() as usize);
            kept = Some(m.clone());
            true
        });
        assert_eq!(
            addresses[1] - addresses[0],
            2,
            "one block, payloads back to back"
        );
        assert_eq!(
            block.capacity(),
            4096,
            "the block given is the block returned"
        );
        assert!(block.is_empty());
        let kept = kept.unwrap();
        assert_eq!(kept, Message::new(200, 2, b"b"));
        assert_eq!(kept.block.capacity(), 2, "a clone holds its payload only");
    }

    #[test]
    fn lending_stops_when_asked() {
        let mut batch = MessageBatch::default();
        for id in 0..5 {
            batch.push(200, id, b"x");
        }
        let mut seen = Vec::new();
        batch.lend_each(|m| {
            seen.push(m.request_id());
            m.request_id() < 2
        });
        assert_eq!(seen, [0, 1, 2]);
    }

    #[test]
    fn room_reserved_and_not_used_is_given_back() {
        let mut batch = MessageBatch::for_read(64 * 1024, Vec::new());
        batch.push(7, 8, b"small");
        batch.give_back_unused_room();
        assert!(batch.bytes.capacity() < 64, "{}", batch.bytes.capacity());
        assert_eq!(lent(batch), [Message::new(7, 8, b"small")]);
    }
}
