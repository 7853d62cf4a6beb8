//! What `on_disconnect` receives.

use std::time::Duration;

pub use crate::disconnect::DisconnectReason;
use crate::error::Error;

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
