//! `veltix_server_config_t` and its conversion to [`ServerConfig`].

use std::ffi::c_char;
use std::time::Duration;

use super::boundary::{non_null_mut, utf8, with_status};
use super::config::micros;
use super::extensible::{self, field_ends, Extensible};
use super::liveness::veltix_liveness_t;
use super::status::veltix_status_t;
use crate::cluster::{ClusterConfig, DEFAULT_CLUSTER_NAME};
use crate::error::Result;
use crate::liveness::optional_ms;
use crate::server::{ServerConfig, TrustedProxies};

/// How a server listens. Fill it with
/// `veltix_server_config_init(&config, sizeof config)`, then change the
/// fields you need. `veltix_server_new()` copies everything, so the struct
/// (and the `host` string) may be released after it. It grows as
/// `veltix_client_config_t` does (see `struct_size`).
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct veltix_server_config_t {
    /// `sizeof(veltix_server_config_t)` as the program was compiled; set by
    /// `veltix_server_config_init()`. Never change it.
    pub struct_size: u32,
    /// Address to listen on, NUL-terminated: an IPv4 or IPv6 literal
    /// (`"0.0.0.0"` all IPv4 interfaces, `"::"` all IPv6, `"127.0.0.1"`
    /// local only) or a host name; copied. NULL means the default,
    /// "0.0.0.0".
    pub host: *const c_char,
    /// Port to listen on. Default 8080; 0 picks a free port, read it with
    /// `veltix_server_port()`.
    pub port: u16,
    /// Bytes asked of a socket per receive call (1 to 64 MiB). Default 8192.
    pub buffer_size: u32,
    /// Most connections at once, handshakes in progress included; past it a
    /// client is refused with `{"error": "server_full"}`. -1 (the default)
    /// is unlimited; 0 and other negative values are
    /// `VELTIX_ERR_INVALID_ARGUMENT`.
    pub max_connection: i32,
    /// Largest frame, 15-byte header plus payload, sent or accepted (at
    /// least 15). Default 10 MiB, as the reference. Larger sends fail with
    /// `VELTIX_ERR_MESSAGE_TOO_LARGE`; larger incoming frames are skipped by
    /// their declared length (logged) and the connection goes on.
    pub max_message_size: u32,
    /// Time a client has, from its TCP accept, to complete the handshake, in
    /// milliseconds (at least 1); then it is closed. Default 5000.
    pub handshake_timeout_ms: u32,
    /// Callback threads (1 to 256). Default 4. 0 is dispatch mode: no
    /// callback threads; callbacks run on your thread inside
    /// `veltix_server_dispatch()`.
    pub max_workers: u32,
    /// Most bytes queued for one peer whose socket is full because it does
    /// not read (at least `max_message_size`). A send that would queue more
    /// disconnects the peer (logged) and fails with `VELTIX_ERR_CLOSED`.
    /// Default 32 MiB.
    pub max_outbound_bytes: u32,
    /// Back-pressure: messages of one peer waiting for (or running in)
    /// callbacks, past which the I/O thread stops reading that peer until
    /// they drain to half, so TCP slows that peer down; other peers are
    /// unaffected. Default 4096 (at least 1). While a peer is not read, its
    /// PINGs and its replies to `veltix_server_send_and_wait()` behind the
    /// unread bytes wait too.
    pub max_queued_messages: u32,
    /// Back-pressure: the payload bytes of those messages, as
    /// `max_queued_messages` (at least 1). Default 16 MiB.
    pub max_queued_bytes: u32,
    /// Server-wide memory budget, in bytes (at least `max_outbound_bytes`
    /// and `max_workers` x `max_message_size`):
    /// what the server holds on behalf of all peers together, that is
    /// partial inbound frames (counted by the bytes that arrived, never by
    /// a declared size), messages queued for callbacks and bytes queued for
    /// peers that do not read. Past it, the I/O thread disconnects the peer
    /// that holds the most (logged as a warning, `on_disconnect` with
    /// `VELTIX_DISCONNECT_ERROR`, its message callbacks not yet started
    /// dropped), then the next, until the server is back under the budget;
    /// and a send that would queue bytes past it disconnects its slow
    /// recipient (as `max_outbound_bytes` does). Cutting the largest holder
    /// rather than pausing everyone keeps the other peers served, and a
    /// peer that holds memory without finishing its frames (a slow-loris
    /// sender) is the one that goes. Reads check the budget before each
    /// read, so it is passed by at most one frame. Default 512 MiB.
    pub max_memory_bytes: u64,
    /// Heartbeats and TCP keepalive (see `veltix_liveness_t`); off by
    /// default.
    pub liveness: veltix_liveness_t,
    /// Close a peer that sent no message for this many milliseconds
    /// (reason `VELTIX_DISCONNECT_ERROR`); PINGs and PONGs do not count, so
    /// a connected but silent client is closed even with heartbeats on.
    /// 0 (the default) is off, as in the reference; at least 10 otherwise.
    pub idle_timeout_ms: u32,
    /// Callbacks on the I/O thread (default false). When true, routes,
    /// `on_recv`, `on_connect` and `on_disconnect` run on the server's I/O
    /// thread as their messages are read, with no hand-off to a worker: the
    /// design of a hand-written event loop, for callbacks that are short
    /// and never block. While one runs, no other peer is read or written,
    /// so a slow callback delays every peer. Inside them,
    /// `veltix_server_send_and_wait()` and `veltix_server_ping_client()` fail
    /// with `VELTIX_ERR_INVALID_ARGUMENT` (their reply could never be
    /// read); use `veltix_server_request()`, whose reply callback runs on a
    /// worker (`max_workers`) or inside `veltix_server_dispatch()`. Sends,
    /// replies and broadcasts made by a read's callbacks go out in one
    /// write per receiver when they return. `veltix_server_close()` and
    /// `veltix_server_free()` may be called inside them (they do not wait
    /// for the I/O thread then). Back-pressure (`max_queued_messages`) has
    /// nothing to hold: a message's callback has run before the next read.
    pub callbacks_on_io_thread: bool,
    /// Keeps the fields after it out of the tail padding of the struct as
    /// it was before them (an older program's `sizeof`). Never read.
    pub reserved0: [u8; 7],
    /// How long a thread blocked in `veltix_server_send_and_wait()` or
    /// `veltix_server_ping_client()` spins for its reply before it sleeps,
    /// in microseconds, when the I/O thread reads the reply and wakes it
    /// (the waiting thread reads the peer's socket itself while the I/O
    /// thread is not reading it, for up to 100 ms, and needs no spin). A
    /// spin saves the waiter's wake-up, which
    /// costs tens of microseconds on a virtual machine's idle CPU, but
    /// takes a core, so a waiter spins only while a core is idle: on Linux
    /// it does not spin while the system runs as many threads as it has
    /// cores. Elsewhere this setting alone decides. 0 never spins, for
    /// programs that keep every core busy off Linux; raise it (up to
    /// 1000) when round trips to a remote server run on an otherwise idle
    /// machine. Default 50.
    pub reply_spin_us: u32,
    /// Keeps the fields after it out of the tail padding of the struct as
    /// it was before them (on 32-bit systems). Never read.
    pub reserved1: u32,
    /// The PROXY protocol: the load balancers whose connections start with
    /// a PROXY header (version 1 or 2, as HAProxy's `send-proxy` and
    /// `send-proxy-v2` write it) naming the real client, as a
    /// NUL-terminated, comma-separated list of IP addresses and networks
    /// (`"10.0.0.5, 192.168.0.0/16, ::1"`); copied. With it,
    /// `veltix_server_peer_address()` reports the client, and
    /// `on_connect` runs once the header and the handshake are read. A
    /// connection from a listed address without a valid header, and one
    /// from any other address that sends a header, are closed (logged)
    /// before their handshake: nothing else is affected. NULL (the
    /// default): no header is looked for; the server never guesses, since
    /// a client could otherwise claim any address.
    pub proxy_protocol_from: *const c_char,
    /// Keeps the fields after it out of the tail padding of the struct as
    /// it was before them (on 32-bit ARM). Never read.
    pub reserved2: u32,
    /// Cluster mode: the Redis (or Valkey) server that links this
    /// server's process with the other nodes of its cluster, as a
    /// NUL-terminated `"redis://[user:password@]host[:port][/db]"`;
    /// copied. Broadcasts, sends to a tag (`veltix_server_send_to_tag()`)
    /// and sends and replies to another node's peer then reach every node,
    /// and peer ids are cluster-wide. Each node delivers to its own peers
    /// first and never waits for the bus; what crosses nodes is delivered
    /// at most once and is dropped (and counted) while the bus is down.
    /// `rediss://` is refused: this build has no TLS for the bus. See the
    /// cluster guide. NULL (the default): a server alone.
    pub cluster_bus: *const c_char,
    /// The cluster's name, NUL-terminated (1 to 100 bytes, no spaces);
    /// copied. Nodes with the same bus and name are one service; the name
    /// prefixes every Redis channel and key the cluster uses. NULL is
    /// `"veltix"`.
    pub cluster_name: *const c_char,
    /// This node's id in its cluster, 1 to 65,535, unique among the
    /// cluster's running processes: it is the top bits of every peer id
    /// this node hands out (`id >> 37`), which is how a send finds the
    /// node that holds a peer. 0 (the default) draws one at random,
    /// which two of a few nodes may draw alike (a clash is logged as an
    /// error); set it for any real deployment.
    pub cluster_node_id: u16,
    /// Keeps the fields after it out of the tail padding of the struct as
    /// it was before them (on 64-bit systems). Never read.
    pub reserved3: [u8; 6],
    /// I/O threads: event loops that each read, write and time their
    /// share of the connections (0 to 256). The first also accepts, and
    /// hands each new connection to the loop holding the fewest, where it
    /// stays for its life. Default 1: one loop, which is enough until it
    /// keeps a core busy (see the performance guide's "Several I/O
    /// threads"). 0 is one per core. Everything else behaves the same
    /// with any number: per-peer order, back-pressure, one memory budget
    /// and one `max_connection` for the whole server, peer ids. With
    /// `callbacks_on_io_thread`, a peer's callbacks run on its own loop,
    /// so several of them run at once.
    pub io_threads: u32,
}

/// Fills `config` with the defaults and sets `config->struct_size`; pass
/// `sizeof *config`. Call it before changing any field. Statuses as
/// `veltix_client_config_init()`.
///
/// # Safety
/// A non-NULL `config` must be writable for `struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_config_init(
    config: *mut veltix_server_config_t,
    struct_size: usize,
) -> veltix_status_t {
    with_status(|| {
        let config = non_null_mut(config, "config")?;
        // SAFETY: the caller gives struct_size writable bytes.
        unsafe { extensible::init(config, struct_size) }
    })
}

// SAFETY: repr(C), struct_size: u32 first, plain data, every field listed.
unsafe impl Extensible for veltix_server_config_t {
    const NAME: &'static str = "veltix_server_config_t";

    fn defaults() -> Self {
        let defaults = ServerConfig::default();
        veltix_server_config_t {
            struct_size: std::mem::size_of::<Self>() as u32,
            host: c"0.0.0.0".as_ptr(),
            port: defaults.port,
            buffer_size: defaults.buffer_size,
            max_connection: -1,
            max_message_size: defaults.max_message_size,
            handshake_timeout_ms: u32::try_from(defaults.handshake_timeout.as_millis())
                .unwrap_or(u32::MAX),
            max_workers: defaults.max_workers,
            max_outbound_bytes: defaults.max_outbound_bytes,
            max_queued_messages: defaults.max_queued_messages,
            max_queued_bytes: defaults.max_queued_bytes,
            max_memory_bytes: defaults.max_memory_bytes,
            liveness: veltix_liveness_t::default(),
            idle_timeout_ms: 0,
            callbacks_on_io_thread: defaults.callbacks_on_io_thread,
            reserved0: [0; 7],
            reply_spin_us: micros(defaults.reply_spin),
            reserved1: 0,
            proxy_protocol_from: std::ptr::null(),
            reserved2: 0,
            cluster_bus: std::ptr::null(),
            cluster_name: std::ptr::null(),
            cluster_node_id: 0,
            reserved3: [0; 6],
            io_threads: defaults.io_threads,
        }
    }

    fn field_ends() -> Vec<usize> {
        field_ends!(
            veltix_server_config_t,
            Self::defaults(),
            [
                struct_size,
                host,
                port,
                buffer_size,
                max_connection,
                max_message_size,
                handshake_timeout_ms,
                max_workers,
                max_outbound_bytes,
                max_queued_messages,
                max_queued_bytes,
                max_memory_bytes,
                liveness,
                idle_timeout_ms,
                callbacks_on_io_thread,
                reserved0,
                reply_spin_us,
                reserved1,
                proxy_protocol_from,
                reserved2,
                cluster_bus,
                cluster_name,
                cluster_node_id,
                reserved3,
                io_threads,
            ]
        )
    }
}

impl veltix_server_config_t {
    /// The Rust configuration, validated.
    ///
    /// # Safety
    /// A non-NULL `host`, `proxy_protocol_from`, `cluster_bus` or
    /// `cluster_name` must be a NUL-terminated string.
    pub(crate) unsafe fn to_config(&self) -> Result<ServerConfig> {
        let host = if self.host.is_null() {
            ServerConfig::default().host
        } else {
            utf8(self.host, "config.host")?.to_owned()
        };
        let config = ServerConfig {
            host,
            port: self.port,
            buffer_size: self.buffer_size,
            max_connection: match self.max_connection {
                -1 => None,
                n => Some(u32::try_from(n).unwrap_or(0)),
            },
            max_message_size: self.max_message_size,
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms.into()),
            max_workers: self.max_workers,
            max_outbound_bytes: self.max_outbound_bytes,
            max_queued_messages: self.max_queued_messages,
            max_queued_bytes: self.max_queued_bytes,
            max_memory_bytes: self.max_memory_bytes,
            liveness: self.liveness.to_liveness(),
            idle_timeout: optional_ms(self.idle_timeout_ms),
            callbacks_on_io_thread: self.callbacks_on_io_thread,
            reply_spin: Duration::from_micros(self.reply_spin_us.into()),
            proxy_protocol: match self.proxy_protocol_from.is_null() {
                true => None,
                false => Some(TrustedProxies::parse(utf8(
                    self.proxy_protocol_from,
                    "config.proxy_protocol_from",
                )?)?),
            },
            cluster: match self.cluster_bus.is_null() {
                true => None,
                false => Some(ClusterConfig {
                    bus: utf8(self.cluster_bus, "config.cluster_bus")?.to_owned(),
                    name: match self.cluster_name.is_null() {
                        true => DEFAULT_CLUSTER_NAME.to_owned(),
                        false => utf8(self.cluster_name, "config.cluster_name")?.to_owned(),
                    },
                    node_id: self.cluster_node_id,
                }),
            },
            io_threads: self.io_threads,
        };
        config.validate()?;
        Ok(config)
    }
}
