//! What `on_disconnect` receives.

use std::time::Duration;

use crate::error::Error;

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

/// The state passed to `on_disconnect`, as in the reference's
/// `DisconnectState`, with the error behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectState {
    /// True when the client has given up: no reconnection attempt follows.
    pub permanent: bool,
    /// 0 for the disconnection itself, then the number of the failed
    /// reconnection attempt (1..=retry_max).
    pub attempt: u32,
    /// Attempts of the reconnection loop.
    pub retry_max: u32,
    /// Why the connection ended.
    pub reason: DisconnectReason,
    /// What ended the connection or failed the attempt; `None` for a
    /// manual disconnection.
    pub error: Option<Error>,
    /// The delay before the next reconnection attempt; `None` when none
    /// follows.
    pub next_delay: Option<Duration>,
}
