//! Status codes: what every `veltix_status_t` function returns.

use std::ffi::c_char;

use crate::error::Error;

/// A status code: `VELTIX_OK` (0) or one of the negative `VELTIX_ERR_*`
/// codes. The values are stable across releases. Read as a plain integer;
/// `veltix_status_str()` describes any value, known or not.
#[allow(non_camel_case_types)]
pub type veltix_status_t = i32;

/// Success.
pub const VELTIX_OK: veltix_status_t = 0;
/// A required pointer argument was NULL.
pub const VELTIX_ERR_NULL_POINTER: veltix_status_t = -1;
/// An argument or configuration field is out of range; `veltix_last_error()`
/// names it and the fix.
pub const VELTIX_ERR_INVALID_ARGUMENT: veltix_status_t = -2;
/// The call needs a connection and the client has none, or the server has
/// no connected peer with that id.
pub const VELTIX_ERR_NOT_CONNECTED: veltix_status_t = -3;
/// `veltix_client_connect()` (or `_retry()`) while connected, connecting or
/// reconnecting.
pub const VELTIX_ERR_ALREADY_CONNECTED: veltix_status_t = -4;
/// The TCP connection could not be made (refused, unreachable, unresolved).
pub const VELTIX_ERR_CONNECT_FAILED: veltix_status_t = -5;
/// The handshake failed: the server closed, or sent something unexpected.
pub const VELTIX_ERR_HANDSHAKE_FAILED: veltix_status_t = -6;
/// The server speaks an incompatible protocol version.
pub const VELTIX_ERR_VERSION_MISMATCH: veltix_status_t = -7;
/// The server refused the connection because it is full.
pub const VELTIX_ERR_SERVER_FULL: veltix_status_t = -8;
/// A wait ran out of time (reply, ping, handshake, wait_until_closed).
pub const VELTIX_ERR_TIMEOUT: veltix_status_t = -9;
/// The message (15-byte header plus payload) exceeds `max_message_size`;
/// nothing was sent.
pub const VELTIX_ERR_MESSAGE_TOO_LARGE: veltix_status_t = -10;
/// A socket error on an established connection; the connection is closed.
pub const VELTIX_ERR_IO: veltix_status_t = -11;
/// The connection closed, or the client was disconnected or freed, while
/// the call was in progress.
pub const VELTIX_ERR_CLOSED: veltix_status_t = -12;
/// All request ids are waiting for replies.
pub const VELTIX_ERR_IDS_EXHAUSTED: veltix_status_t = -13;
/// Already registered (a route for this type).
pub const VELTIX_ERR_ALREADY_EXISTS: veltix_status_t = -14;
/// Not registered (no route for this type).
pub const VELTIX_ERR_NOT_FOUND: veltix_status_t = -15;
/// An internal error (a caught panic). Please report it.
pub const VELTIX_ERR_PANIC: veltix_status_t = -16;
/// The server could not listen: address in use, not permitted, or a host
/// that does not resolve to a local address.
pub const VELTIX_ERR_BIND_FAILED: veltix_status_t = -17;
/// An output buffer is too small; `veltix_last_error()` gives the size
/// needed.
pub const VELTIX_ERR_BUFFER_TOO_SMALL: veltix_status_t = -18;
/// `veltix_server_start()` on a server that is already running.
pub const VELTIX_ERR_ALREADY_RUNNING: veltix_status_t = -19;

/// The status code of an error.
pub(crate) fn status_of(error: &Error) -> veltix_status_t {
    match error {
        Error::NullPointer(_) => VELTIX_ERR_NULL_POINTER,
        Error::InvalidArgument(_) => VELTIX_ERR_INVALID_ARGUMENT,
        Error::NotConnected | Error::PeerNotConnected(_) => VELTIX_ERR_NOT_CONNECTED,
        Error::AlreadyConnected(_) => VELTIX_ERR_ALREADY_CONNECTED,
        Error::ConnectFailed(_) => VELTIX_ERR_CONNECT_FAILED,
        Error::HandshakeFailed(_) => VELTIX_ERR_HANDSHAKE_FAILED,
        Error::VersionMismatch(_) => VELTIX_ERR_VERSION_MISMATCH,
        Error::ServerFull => VELTIX_ERR_SERVER_FULL,
        Error::Timeout(_) => VELTIX_ERR_TIMEOUT,
        Error::MessageTooLarge { .. } => VELTIX_ERR_MESSAGE_TOO_LARGE,
        Error::Io(_) => VELTIX_ERR_IO,
        Error::Closed(_) => VELTIX_ERR_CLOSED,
        Error::IdsExhausted => VELTIX_ERR_IDS_EXHAUSTED,
        Error::AlreadyExists(_) => VELTIX_ERR_ALREADY_EXISTS,
        Error::NotFound(_) => VELTIX_ERR_NOT_FOUND,
        Error::Panic(_) => VELTIX_ERR_PANIC,
        Error::BindFailed(_) => VELTIX_ERR_BIND_FAILED,
        Error::BufferTooSmall(_) => VELTIX_ERR_BUFFER_TOO_SMALL,
        Error::AlreadyRunning => VELTIX_ERR_ALREADY_RUNNING,
    }
}

/// A static, human-readable name for `status`; never NULL. An unknown code
/// gives `"unknown status"`. The string must not be freed.
#[no_mangle]
pub extern "C" fn veltix_status_str(status: veltix_status_t) -> *const c_char {
    super::boundary::with_fallback(c"unknown status".as_ptr(), || {
        Ok(status_text(status).as_ptr())
    })
}

fn status_text(status: veltix_status_t) -> &'static std::ffi::CStr {
    match status {
        VELTIX_OK => c"ok",
        VELTIX_ERR_NULL_POINTER => c"null pointer argument",
        VELTIX_ERR_INVALID_ARGUMENT => c"invalid argument",
        VELTIX_ERR_NOT_CONNECTED => c"not connected",
        VELTIX_ERR_ALREADY_CONNECTED => c"already connected",
        VELTIX_ERR_CONNECT_FAILED => c"connection failed",
        VELTIX_ERR_HANDSHAKE_FAILED => c"handshake failed",
        VELTIX_ERR_VERSION_MISMATCH => c"protocol version mismatch",
        VELTIX_ERR_SERVER_FULL => c"server full",
        VELTIX_ERR_TIMEOUT => c"timed out",
        VELTIX_ERR_MESSAGE_TOO_LARGE => c"message too large",
        VELTIX_ERR_IO => c"I/O error",
        VELTIX_ERR_CLOSED => c"closed",
        VELTIX_ERR_IDS_EXHAUSTED => c"request ids exhausted",
        VELTIX_ERR_ALREADY_EXISTS => c"already exists",
        VELTIX_ERR_NOT_FOUND => c"not found",
        VELTIX_ERR_PANIC => c"internal error (panic)",
        VELTIX_ERR_BIND_FAILED => c"could not listen",
        VELTIX_ERR_BUFFER_TOO_SMALL => c"buffer too small",
        VELTIX_ERR_ALREADY_RUNNING => c"already running",
        _ => c"unknown status",
    }
}
