//! `veltix_stats_t`: per-connection statistics for C.

use super::extensible::{self, field_ends, Extensible};
use crate::error::Result;
use crate::stats::StatsSnapshot;

/// Writes `snapshot` to the caller's `out`, within its `struct_size`.
///
/// # Safety
/// `out` must be writable for `out->struct_size` bytes.
pub(crate) unsafe fn write_stats(snapshot: StatsSnapshot, out: &mut veltix_stats_t) -> Result<()> {
    // SAFETY: the caller set out->struct_size and gives that much.
    unsafe { extensible::write_out(&veltix_stats_t::from(snapshot), out) }
}

/// Statistics of one connection, counted from the end of its handshake:
/// for `veltix_client_stats()` and `veltix_server_peer_stats()`. Set
/// `struct_size` to `sizeof(veltix_stats_t)` before the call; the library
/// writes the fields within it (so the struct can grow, as the configs do).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct veltix_stats_t {
    /// `sizeof(veltix_stats_t)` as the program was compiled; set by the
    /// caller.
    pub struct_size: u32,
    /// Bytes received (read from the socket).
    pub bytes_in: u64,
    /// Bytes sent (written to the socket, or queued to be when it is full).
    pub bytes_out: u64,
    /// Frames received, PINGs and PONGs included.
    pub frames_in: u64,
    /// Frames sent, PINGs and PONGs included.
    pub frames_out: u64,
    /// The last round trip measured, by a heartbeat or a ping, in
    /// milliseconds; -1 when none was measured yet.
    pub last_rtt_ms: f64,
    /// Milliseconds since the last frame arrived (since the handshake, if
    /// none did).
    pub ms_since_last_frame: u64,
}

impl From<StatsSnapshot> for veltix_stats_t {
    fn from(snapshot: StatsSnapshot) -> Self {
        veltix_stats_t {
            struct_size: std::mem::size_of::<Self>() as u32,
            bytes_in: snapshot.bytes_in,
            bytes_out: snapshot.bytes_out,
            frames_in: snapshot.frames_in,
            frames_out: snapshot.frames_out,
            last_rtt_ms: snapshot
                .last_rtt
                .map_or(-1.0, |rtt| rtt.as_secs_f64() * 1000.0),
            ms_since_last_frame: snapshot.since_last_frame.as_millis() as u64,
        }
    }
}

// SAFETY: repr(C), struct_size: u32 first, plain data, every field listed.
unsafe impl Extensible for veltix_stats_t {
    const NAME: &'static str = "veltix_stats_t";

    fn defaults() -> Self {
        veltix_stats_t {
            struct_size: std::mem::size_of::<Self>() as u32,
            bytes_in: 0,
            bytes_out: 0,
            frames_in: 0,
            frames_out: 0,
            last_rtt_ms: -1.0,
            ms_since_last_frame: 0,
        }
    }

    fn field_ends() -> Vec<usize> {
        field_ends!(
            veltix_stats_t,
            Self::defaults(),
            [
                struct_size,
                bytes_in,
                bytes_out,
                frames_in,
                frames_out,
                last_rtt_ms,
                ms_since_last_frame,
            ]
        )
    }
}
