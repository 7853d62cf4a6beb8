//! Why a connection ended: vocabulary the client and the server share
//! (each reports it to `on_disconnect`).

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The server closed the connection cleanly (or the reconnection that
    /// followed it failed).
    ServerClosed,
    /// A network error: reset, refused, timed out, rejected.
    Error,
    /// `disconnect()` was called; on a server, `close_client()` or `close()`.
    Manual,
    /// (Server side) the client closed the connection cleanly.
    PeerClosed,
}
