//! libveltix: the Veltix TCP messaging protocol (wire-compatible with the
//! Python `veltix` 3.3.0) as a Rust library and a C-ABI shared library.
//!
//! - [`protocol`]: frames, the streaming decoder, handshake messages and
//!   request ids, with no I/O.
//! - [`client`]: the thread-based client built on it.
//! - [`server`]: the event-driven server built on it.
//! - [`ffi`]: the `extern "C"` layer (`include/veltix.h`), which only
//!   converts, checks pointers, catches panics and maps errors to status
//!   codes.

mod backlog;
mod backoff;
mod budget;
mod callbacks;
pub mod client;
pub mod cluster;
mod config_checks;
pub mod disconnect;
pub mod error;
pub mod ffi;
pub mod liveness;
pub mod log;
mod pending;
pub mod protocol;
mod reply_slot;
mod reply_spin;
pub mod server;
pub mod stats;
pub mod sys;
#[cfg(test)]
mod test_wire;
mod workers;
mod writer;

pub use error::{Error, Result};

/// This library's version, as sent in the handshake's `v` field.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
