//! The C ABI (`include/veltix.h`, generated from this module by cbindgen).
//!
//! A thin layer: it checks pointers, converts C types, runs every body
//! inside the panic boundary ([`boundary`]) and maps errors to status
//! codes. All behaviour lives in [`crate::client`], [`crate::server`] and
//! [`crate::protocol`].

mod boundary;
pub mod client;
pub mod cluster;
pub mod config;
mod extensible;
pub mod liveness;
pub mod log;
pub mod message;
pub mod server;
pub mod server_config;
pub mod stats;
pub mod status;

use std::ffi::c_char;

/// The handle a dispatch-mode host polls (`veltix_*_event_fd()`): `int` on
/// POSIX, `SOCKET` (pointer-sized) on Windows. The header declares it
/// itself, by platform (build.rs), so cbindgen leaves it out.
#[allow(non_camel_case_types)]
pub type veltix_socket_t = crate::sys::PollHandle;

pub use client::*;
pub use cluster::*;
pub use config::*;
pub use liveness::*;
pub use log::*;
pub use message::*;
pub use server::*;
pub use server_config::*;
pub use stats::*;
pub use status::*;

/// Detail of the last failing call on the calling thread: what failed and
/// how to fix it; `""` if no call has failed on this thread. A successful
/// call does not clear it. The string belongs to the library and stays valid
/// until the next failing call on this thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn veltix_last_error() -> *const c_char {
    boundary::with_fallback(c"".as_ptr(), || Ok(boundary::last_error()))
}

/// The library version, e.g. `"0.1.0"` (static; the same as the
/// `VELTIX_VERSION_*` macros of the header it was built with).
#[no_mangle]
pub extern "C" fn veltix_version() -> *const c_char {
    static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    let version = VERSION.as_ptr().cast();
    boundary::with_fallback(version, || Ok(version))
}
