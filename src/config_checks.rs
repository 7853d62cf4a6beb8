//! Checks of the configuration fields the client and the server share, so
//! both name a bad field and its fix the same way.

use std::time::Duration;

use crate::backlog::BacklogLimits;
use crate::error::{Error, Result};
use crate::protocol::frame::{DEFAULT_MAX_MESSAGE_SIZE, HEADER_SIZE};

/// Default bound of the messages of one connection waiting for callbacks.
pub const DEFAULT_MAX_QUEUED_MESSAGES: u32 = 4096;
/// Default bound of their payload bytes (16 MiB).
pub const DEFAULT_MAX_QUEUED_BYTES: u32 = 16 * 1024 * 1024;

/// Most callback threads a client or server may ask for.
pub const MAX_WORKERS: u32 = 256;
/// Largest receive buffer a client or server may ask for (64 MiB).
pub const MAX_BUFFER_SIZE: u32 = 64 * 1024 * 1024;

/// Checks `buffer_size`, `max_message_size`, `handshake_timeout_ms` and
/// `max_workers` (1 keeps a client's callbacks in arrival order; 0 is
/// dispatch mode: no worker threads, the host runs callbacks).
pub(crate) fn check_shared_fields(
    buffer_size: u32,
    max_message_size: u32,
    handshake_timeout: Duration,
    max_workers: u32,
) -> Result<()> {
    let invalid = |message: String| Err(Error::InvalidArgument(message));
    if buffer_size == 0 || buffer_size > MAX_BUFFER_SIZE {
        return invalid(format!(
            "config.buffer_size is {buffer_size}. Fix: use 1 to {MAX_BUFFER_SIZE} bytes (the default is 8192)"
        ));
    }
    if (max_message_size as usize) < HEADER_SIZE {
        return invalid(format!(
            "config.max_message_size is {max_message_size}, smaller than the {HEADER_SIZE}-byte frame header. Fix: use at least {HEADER_SIZE} (the default is {DEFAULT_MAX_MESSAGE_SIZE})"
        ));
    }
    if handshake_timeout.is_zero() {
        return invalid("config.handshake_timeout_ms is 0. Fix: use a positive number of milliseconds (the default is 5000)".into());
    }
    if max_workers > MAX_WORKERS {
        return invalid(format!(
            "config.max_workers is {max_workers}. Fix: use 1 to {MAX_WORKERS} worker threads (the default is 4), or 0 to run callbacks on your own thread with dispatch"
        ));
    }
    Ok(())
}

/// Checks `reply_spin_us`.
pub(crate) fn check_reply_spin(reply_spin: Duration) -> Result<()> {
    use crate::reply_spin::{DEFAULT_REPLY_SPIN, MAX_REPLY_SPIN};
    if reply_spin > MAX_REPLY_SPIN {
        return Err(Error::InvalidArgument(format!(
            "config.reply_spin_us is {}. Fix: use 0 (never spin) to {} microseconds (the default is {}): a longer spin only burns a core",
            reply_spin.as_micros(),
            MAX_REPLY_SPIN.as_micros(),
            DEFAULT_REPLY_SPIN.as_micros()
        )));
    }
    Ok(())
}

/// Checks `max_queued_messages` and `max_queued_bytes`, and gives the
/// bounds of a connection's callback backlog.
pub(crate) fn backlog_limits(
    max_queued_messages: u32,
    max_queued_bytes: u32,
) -> Result<BacklogLimits> {
    if max_queued_messages == 0 {
        return Err(Error::InvalidArgument(format!(
            "config.max_queued_messages is 0. Fix: use at least 1 (the default is {DEFAULT_MAX_QUEUED_MESSAGES})"
        )));
    }
    if max_queued_bytes == 0 {
        return Err(Error::InvalidArgument(format!(
            "config.max_queued_bytes is 0. Fix: use at least 1 (the default is {DEFAULT_MAX_QUEUED_BYTES})"
        )));
    }
    Ok(BacklogLimits {
        messages: max_queued_messages as usize,
        bytes: max_queued_bytes as usize,
    })
}
