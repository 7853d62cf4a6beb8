//! The Veltix wire protocol with no I/O: frames, the streaming decoder, the
//! handshake messages and request id allocation. The client and the server
//! are built on it.

pub mod decoder;
pub mod frame;
pub mod handshake;
pub mod ids;
pub mod message;

pub use decoder::{Borrowed, Decoded, DropReason, FrameDecoder, FrameRef};
pub use frame::{encode_frame, FrameHeader, HEADER_SIZE, PING, PONG};
pub use message::{Message, MessageBatch};
