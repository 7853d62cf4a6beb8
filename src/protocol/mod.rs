//! The Veltix wire protocol with no I/O: frames, the streaming decoder, the
//! handshake messages, request id allocation, what cluster nodes publish
//! to each other, and the PROXY protocol
//! header a load balancer may put first. The client and the server are
//! built on it.

pub mod bus;
pub mod decoder;
pub mod frame;
pub mod handshake;
pub mod ids;
pub mod message;
pub mod proxy;

pub use decoder::{Borrowed, Decoded, DropReason, FrameDecoder, FrameRef};
pub use frame::{encode_frame, FrameHeader, HEADER_SIZE, PING, PONG};
pub use message::{Message, MessageBatch};
