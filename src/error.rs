//! The library's error type. Every message says what failed and how to fix
//! it; the C layer maps each variant to a stable status code.

use crate::protocol::handshake::HandshakeError;

/// Everything that can fail in the library.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A required pointer was NULL (C layer only).
    #[error("{0} is NULL. Fix: pass a valid pointer")]
    NullPointer(&'static str),
    /// An argument or configuration field is out of range.
    #[error("{0}")]
    InvalidArgument(String),
    /// The operation needs a connection and there is none.
    #[error("not connected. Fix: call veltix_client_connect() first (or wait for the reconnection to succeed)")]
    NotConnected,
    /// A server call named a peer that is not connected.
    #[error("peer {0} is not connected (it disconnected, never completed the handshake, or the id is wrong). Fix: use ids from on_connect, and forget them in on_disconnect")]
    PeerNotConnected(u64),
    /// `connect` while connected, connecting or retrying.
    #[error("{0}")]
    AlreadyConnected(String),
    /// The TCP connection could not be made.
    #[error("{0}")]
    ConnectFailed(String),
    /// The handshake failed (closed early, malformed, rejected).
    #[error("{0}")]
    HandshakeFailed(String),
    /// The peer speaks an incompatible protocol version.
    #[error("{0}")]
    VersionMismatch(String),
    /// The server is full.
    #[error("the server is full (its max_connection is reached). Fix: try again later, or raise the server's max_connection")]
    ServerFull,
    /// A wait ran out of time.
    #[error("{0}")]
    Timeout(String),
    /// A message exceeds `max_message_size`.
    #[error("message of {size} bytes (header included) exceeds max_message_size {max}. Fix: split the payload, or raise max_message_size on both peers")]
    MessageTooLarge {
        /// Header plus payload size.
        size: u64,
        /// The configured limit.
        max: u32,
    },
    /// A socket error on an established connection.
    #[error("{0}")]
    Io(String),
    /// The connection closed, or the client was disconnected or freed, while
    /// the operation was in progress.
    #[error("{0}")]
    Closed(String),
    /// Every request id is waiting for a reply.
    #[error("all 32767 request ids are waiting for replies. Fix: wait for replies (or timeouts) before sending more requests")]
    IdsExhausted,
    /// Something is already registered.
    #[error("{0}")]
    AlreadyExists(String),
    /// Something is not registered.
    #[error("{0}")]
    NotFound(String),
    /// The server could not listen on its address.
    #[error("{0}")]
    BindFailed(String),
    /// An output buffer is too small for the value.
    #[error("{0}")]
    BufferTooSmall(String),
    /// The server is already running.
    #[error(
        "the server is already running. Fix: call veltix_server_close() before starting it again"
    )]
    AlreadyRunning,
    /// A panic was caught.
    #[error("internal error (a panic was caught: {0}). Please report it; the client may need to be recreated")]
    Panic(String),
}

impl Error {
    /// An I/O error on an established connection.
    pub(crate) fn io(context: &str, error: &std::io::Error) -> Self {
        Error::Io(format!(
            "{context}: {error}. Fix: check the connection; it is being closed"
        ))
    }

    /// A handshake error, mapped to the matching variant.
    pub(crate) fn handshake(error: HandshakeError) -> Self {
        match error {
            HandshakeError::ServerFull => Error::ServerFull,
            HandshakeError::VersionMismatch(_) => Error::VersionMismatch(format!(
                "handshake failed: {error}. Fix: connect to a Veltix 1.x server (veltix >= 3.0)"
            )),
            HandshakeError::Rejected(_) | HandshakeError::Malformed(_) => {
                Error::HandshakeFailed(format!(
                    "handshake failed: {error}. Fix: check that the peer is a Veltix 1.x server"
                ))
            }
        }
    }
}

/// Shorthand for results of this library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
