//! `veltix_liveness_t`: the heartbeat and TCP keepalive settings, one
//! struct inside both configs.

use crate::liveness::{optional_ms, Heartbeat, Liveness, TcpKeepalive};

/// Heartbeats and TCP keepalive, the same for a client
/// (`veltix_client_config_t.liveness`) and a server
/// (`veltix_server_config_t.liveness`). All 0 by default: off, as in the
/// reference, which has neither. Both run on the library's I/O threads
/// (the client's reader, the server's I/O thread), also in dispatch mode.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct veltix_liveness_t {
    /// Heartbeats: after this many milliseconds with nothing received, send
    /// a PING, then one per interval while the silence lasts (any frame
    /// received counts as life, so a busy connection sends none; the PONGs
    /// never reach a callback). 0 is off; at least 10 otherwise.
    pub heartbeat_interval_ms: u32,
    /// Heartbeats: after this many milliseconds with nothing received at
    /// all, the connection is dead and is closed with reason
    /// `VELTIX_DISCONNECT_ERROR` (`veltix_last_error()` in `on_disconnect`
    /// says so); its pending requests fail with `VELTIX_ERR_CLOSED` at
    /// once, and a client's retry loop takes over if `retry > 0`. 0 is off;
    /// above `heartbeat_interval_ms` when both are set.
    pub heartbeat_timeout_ms: u32,
    /// TCP keepalive (`SO_KEEPALIVE`): seconds of idleness before the first
    /// probe (`TCP_KEEPIDLE`). 0 leaves keepalive off (the two fields below
    /// are then ignored).
    pub keepalive_idle_s: u32,
    /// Seconds between keepalive probes (`TCP_KEEPINTVL`), at least 1 when
    /// keepalive is on.
    pub keepalive_interval_s: u32,
    /// Unanswered probes before the kernel drops the connection
    /// (`TCP_KEEPCNT`), at least 1 when keepalive is on.
    pub keepalive_count: u32,
}

impl veltix_liveness_t {
    /// The Rust settings (checked later, with the rest of the config).
    pub(crate) fn to_liveness(self) -> Liveness {
        Liveness {
            heartbeat: Heartbeat {
                interval: optional_ms(self.heartbeat_interval_ms),
                timeout: optional_ms(self.heartbeat_timeout_ms),
            },
            tcp_keepalive: (self.keepalive_idle_s != 0).then(|| TcpKeepalive {
                idle: std::time::Duration::from_secs(self.keepalive_idle_s.into()),
                interval: std::time::Duration::from_secs(self.keepalive_interval_s.into()),
                count: self.keepalive_count,
            }),
        }
    }
}
