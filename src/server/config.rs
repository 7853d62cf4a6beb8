//! Server configuration and its validation.

use std::time::Duration;

use crate::backlog::BacklogLimits;
use crate::cluster::ClusterConfig;
use crate::config_checks::{
    backlog_limits, check_reply_spin, check_shared_fields, DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_QUEUED_MESSAGES,
};
use crate::error::{Error, Result};
use crate::liveness::{Liveness, MIN_HEARTBEAT};
use crate::protocol::frame::DEFAULT_MAX_MESSAGE_SIZE;
use crate::reply_spin::DEFAULT_REPLY_SPIN;

use super::proxy::TrustedProxies;

/// Default bound of a peer's queued outbound bytes (32 MiB).
pub const DEFAULT_MAX_OUTBOUND_BYTES: u32 = 32 * 1024 * 1024;
/// Most I/O threads one server may run.
pub const MAX_IO_THREADS: u32 = 256;
/// Default bound of the memory held on behalf of all peers (512 MiB).
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 512 * 1024 * 1024;

/// How a server listens and behaves. Field meanings follow the reference's
/// `ServerConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address to listen on: a host name or IPv4/IPv6 literal.
    pub host: String,
    /// Port to listen on; 0 picks a free port.
    pub port: u16,
    /// Bytes asked of a socket per receive call.
    pub buffer_size: u32,
    /// Most connections at once, handshakes included; `None` = unlimited.
    pub max_connection: Option<u32>,
    /// Largest frame (header plus payload) sent or accepted.
    pub max_message_size: u32,
    /// Bound on a client's whole handshake, from its TCP accept.
    pub handshake_timeout: Duration,
    /// Callback threads.
    pub max_workers: u32,
    /// Most bytes queued for a peer that does not read; past it the peer is
    /// disconnected.
    pub max_outbound_bytes: u32,
    /// Messages of one peer waiting for (or in) callbacks past which the
    /// server stops reading that peer.
    pub max_queued_messages: u32,
    /// Their payload bytes past which the server stops reading that peer.
    pub max_queued_bytes: u32,
    /// Bound of the memory held on behalf of all peers (partial inbound
    /// frames, messages queued for callbacks, queued outbound bytes); past
    /// it the peers holding the most are disconnected.
    pub max_memory_bytes: u64,
    /// Heartbeats and TCP keepalive (off by default).
    pub liveness: Liveness,
    /// Close a peer that sent no message for this long (PINGs and PONGs do
    /// not count); `None`: never (the default).
    pub idle_timeout: Option<Duration>,
    /// Run routes, `on_recv`, `on_connect` and `on_disconnect` on the I/O
    /// thread, with no hand-off to a worker, for callbacks that are short
    /// and never block; `send_and_wait` and `ping` inside them fail. Off by
    /// default.
    pub callbacks_on_io_thread: bool,
    /// How long a thread blocked in `send_and_wait` or `ping` spins for
    /// its reply before it sleeps, when the I/O thread reads it (the
    /// waiter reads it itself while the I/O thread is not reading that
    /// peer, for up to 100 ms); zero never spins. Only while a core is
    /// idle (on Linux).
    pub reply_spin: Duration,
    /// The load balancers whose connections start with a PROXY protocol
    /// header (v1 or v2) naming the real client, which `peer_address`
    /// then reports. A connection from one of them without a valid
    /// header, or a header from any other address, is closed. `None` (the
    /// default): the server never looks for one (never guessed: a
    /// header then fails the handshake as any other bytes would).
    pub proxy_protocol: Option<TrustedProxies>,
    /// Cluster mode: the bus, the cluster's name and this node's id (see
    /// [`crate::cluster`]). `None` (the default): a server alone.
    pub cluster: Option<ClusterConfig>,
    /// I/O threads, each an event loop over its share of the connections
    /// (the first also accepts and shares them out); 0 is one per core.
    /// Default 1.
    pub io_threads: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "0.0.0.0".into(),
            port: 8080,
            buffer_size: 8192,
            max_connection: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            handshake_timeout: Duration::from_millis(5000),
            max_workers: 4,
            max_outbound_bytes: DEFAULT_MAX_OUTBOUND_BYTES,
            max_queued_messages: DEFAULT_MAX_QUEUED_MESSAGES,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            liveness: Liveness::default(),
            idle_timeout: None,
            callbacks_on_io_thread: false,
            reply_spin: DEFAULT_REPLY_SPIN,
            proxy_protocol: None,
            cluster: None,
            io_threads: 1,
        }
    }
}

impl ServerConfig {
    /// Checks every field, naming the first bad one and the fix.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::InvalidArgument(message));
        if self.host.trim().is_empty() {
            return invalid("config.host is empty. Fix: use \"0.0.0.0\" (all IPv4 interfaces), \"::\" (all IPv6), or a local address".into());
        }
        if let Some(0) = self.max_connection {
            return invalid("config.max_connection is 0 or negative. Fix: use -1 (unlimited, the default) or at least 1".into());
        }
        check_shared_fields(
            self.buffer_size,
            self.max_message_size,
            self.handshake_timeout,
            self.max_workers,
        )?;
        if self.max_outbound_bytes < self.max_message_size {
            return invalid(format!(
                "config.max_outbound_bytes ({}) is smaller than max_message_size ({}). Fix: use at least max_message_size (the default is {DEFAULT_MAX_OUTBOUND_BYTES})",
                self.max_outbound_bytes, self.max_message_size
            ));
        }
        // One peer's queue, and a message in every running callback, must
        // fit: cutting peers can free neither of those at once.
        let running = self.max_workers.max(1);
        let in_callbacks = u64::from(running) * u64::from(self.max_message_size);
        let least = in_callbacks.max(u64::from(self.max_outbound_bytes));
        if self.max_memory_bytes < least {
            return invalid(format!(
                "config.max_memory_bytes ({}) is smaller than max_outbound_bytes ({}) or max_workers x max_message_size ({in_callbacks}). Fix: use at least {least} (the default is {DEFAULT_MAX_MEMORY_BYTES})",
                self.max_memory_bytes, self.max_outbound_bytes
            ));
        }
        if self.idle_timeout.is_some_and(|idle| idle < MIN_HEARTBEAT) {
            return invalid(format!(
                "config.idle_timeout_ms is under {} ms. Fix: use at least that, or 0 to turn it off",
                MIN_HEARTBEAT.as_millis()
            ));
        }
        self.liveness.validate()?;
        check_reply_spin(self.reply_spin)?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        if self.io_threads > MAX_IO_THREADS {
            return invalid(format!(
                "config.io_threads ({}) is over {MAX_IO_THREADS}. Fix: use 1 (the default) to the number of cores, or 0 for one per core",
                self.io_threads
            ));
        }
        self.backlog_limits().map(|_| ())
    }

    /// How many event loops to run: `io_threads`, or one per core for 0.
    pub(crate) fn loop_count(&self) -> usize {
        match self.io_threads {
            0 => std::thread::available_parallelism().map_or(1, |cores| cores.get()),
            n => n as usize,
        }
    }

    /// The bounds of each peer's callback backlog (checked).
    pub(crate) fn backlog_limits(&self) -> Result<BacklogLimits> {
        backlog_limits(self.max_queued_messages, self.max_queued_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_fields_are_named() {
        assert_eq!(ServerConfig::default().validate(), Ok(()));
        type Breaker = fn(&mut ServerConfig);
        let cases: [(&str, Breaker); 11] = [
            ("config.io_threads", |c| c.io_threads = MAX_IO_THREADS + 1),
            ("config.max_memory_bytes", |c| c.max_memory_bytes = 1000),
            ("config.max_queued_messages", |c| c.max_queued_messages = 0),
            ("config.max_queued_bytes", |c| c.max_queued_bytes = 0),
            ("config.max_connection", |c| c.max_connection = Some(0)),
            ("config.host", |c| c.host = String::new()),
            ("config.buffer_size", |c| c.buffer_size = 0),
            ("config.max_message_size", |c| c.max_message_size = 3),
            ("config.handshake_timeout_ms", |c| {
                c.handshake_timeout = Duration::ZERO
            }),
            ("config.max_workers", |c| c.max_workers = 257),
            ("config.max_outbound_bytes", |c| c.max_outbound_bytes = 100),
        ];
        for (field, break_it) in cases {
            let mut config = ServerConfig::default();
            break_it(&mut config);
            match config.validate() {
                Err(Error::InvalidArgument(message)) => {
                    assert!(message.starts_with(field), "{message}");
                    assert!(message.contains("Fix:"), "{message}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
