//! Cluster mode's C functions: sends to a tag, the bus's state and
//! counters, and every node's count of clients.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::boundary::{
    non_null_mut, payload_slice, registration, utf8, veltix_free_fn, with_status, CallbackData,
};
use super::extensible::{self, field_ends, Extensible};
use super::server::{handle, optional_utf8, veltix_server_t, with_server, write_list};
use super::status::veltix_status_t;
use crate::cluster::{ClusterStats, NodeCount};
use crate::error::{Error, Result};
use crate::server::{ClusterStateHandler, Server};

/// Called when a cluster node's bus (`config.cluster_bus`) is reached
/// (`connected` true: both its connections are up and subscribed) or lost
/// (false: what crosses nodes is dropped until it is back; the node
/// reconnects with backoff). Also called once with false when the first
/// attempt fails. On a worker thread (in dispatch mode, inside
/// `veltix_server_dispatch()`), in the order the changes happened, with no
/// library lock held; calls allowed as in `veltix_server_message_fn`.
/// A C++ exception must not escape it (see `veltix_server_message_fn`).
#[allow(non_camel_case_types)]
pub type veltix_cluster_state_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, server: *mut veltix_server_t, connected: bool),
>;

/// The counters of a cluster node's bus, from `veltix_server_cluster_stats()`,
/// counted since the server was created. Set `struct_size` to
/// `sizeof(veltix_cluster_stats_t)` before the call; the library writes
/// the fields within it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct veltix_cluster_stats_t {
    /// `sizeof(veltix_cluster_stats_t)` as the program was compiled; set by
    /// the caller.
    pub struct_size: u32,
    /// Whether the bus is connected now (both connections up).
    pub connected: bool,
    /// This node's id (the configured one, or the one drawn for 0).
    pub node_id: u16,
    /// Messages handed to Redis for the other nodes.
    pub published: u64,
    /// Messages received from other nodes (its own echoes not counted).
    pub received: u64,
    /// Messages that would have crossed nodes but were dropped: the bus
    /// was down, or its queue (bounded by `max_outbound_bytes`, counted in
    /// `max_memory_bytes`) was full. This node's own peers got them.
    pub dropped: u64,
    /// Messages received that were not in this library's bus format
    /// (another program or version on the same channels); ignored.
    pub malformed: u64,
    /// Times a bus connection was lost.
    pub disconnects: u64,
}

impl veltix_cluster_stats_t {
    fn new(node_id: u16, stats: ClusterStats) -> Self {
        veltix_cluster_stats_t {
            struct_size: std::mem::size_of::<Self>() as u32,
            connected: stats.connected,
            node_id,
            published: stats.published,
            received: stats.received,
            dropped: stats.dropped,
            malformed: stats.malformed,
            disconnects: stats.disconnects,
        }
    }
}

// SAFETY: repr(C), struct_size: u32 first, plain data, every field listed.
unsafe impl Extensible for veltix_cluster_stats_t {
    const NAME: &'static str = "veltix_cluster_stats_t";

    fn defaults() -> Self {
        Self::new(0, ClusterStats::default())
    }

    fn field_ends() -> Vec<usize> {
        field_ends!(
            veltix_cluster_stats_t,
            Self::defaults(),
            [
                struct_size,
                connected,
                node_id,
                published,
                received,
                dropped,
                malformed,
                disconnects,
            ]
        )
    }
}

/// One node of a cluster and its count of connected clients, from
/// `veltix_server_cluster_nodes()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct veltix_cluster_node_t {
    /// The node's id.
    pub node_id: u16,
    /// Its connected clients (handshake complete).
    pub clients: u64,
}

/// The server in cluster mode, or the error that says it is not.
fn cluster_server<T>(
    server: *const veltix_server_t,
    body: impl FnOnce(&Server) -> Option<T>,
) -> Result<T> {
    with_server(server, |server| {
        body(server).ok_or_else(|| {
            Error::InvalidArgument(
                "the server is not in cluster mode. Fix: set config.cluster_bus before veltix_server_new()".into(),
            )
        })
    })
}

/// Sets `fn`, the callback told when `server`'s cluster bus is reached or
/// lost (NULL clears it; see `veltix_cluster_state_fn`), with
/// `user_data`, which `free_user_data` (may be NULL) releases once `fn`
/// can never run again. Replacing or clearing it waits as
/// `veltix_server_on_recv()` does. Allowed on a server without a cluster
/// (it never runs then).
///
/// # Safety
/// `server` must be a live server; `fn` must be callable from any thread
/// with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_on_cluster_state(
    server: *mut veltix_server_t,
    r#fn: veltix_cluster_state_fn,
    user_data: *mut c_void,
    free_user_data: veltix_free_fn,
) -> veltix_status_t {
    with_status(|| {
        with_server(server, |server| {
            let data = CallbackData::new(user_data, free_user_data);
            server.on_cluster_state(registration(r#fn, &data, |callback, data| {
                Arc::new(move |server: &Server, connected: bool| {
                    // SAFETY: registered together with user_data.
                    unsafe { callback(data.get(), handle(server), connected) }
                }) as ClusterStateHandler
            }));
            Ok(())
        })
    })
}

/// Sends one message of `type_code` (`len` bytes at `data`, one request
/// id) to every client having tag `name`, set to `value` (NULL: any
/// value): at once to this server's, and in cluster mode to every other
/// node's through the bus (at most once; a node subscribes to a tag's
/// channel while one of its clients holds the tag, so a tag set a moment
/// before may miss a send from another node). Writes how many of this
/// server's clients it was sent to to `*out_sent` if it is not NULL.
/// A client whose send fails is skipped as in `veltix_server_broadcast()`.
///
/// Returns `VELTIX_ERR_MESSAGE_TOO_LARGE` (nothing sent).
///
/// # Safety
/// `server` must be a live server; `name` (and a non-NULL `value`)
/// NUL-terminated strings; `data` `len` bytes; `out_sent` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_send_to_tag(
    server: *mut veltix_server_t,
    name: *const c_char,
    value: *const c_char,
    type_code: u16,
    data: *const u8,
    len: usize,
    out_sent: *mut usize,
) -> veltix_status_t {
    with_status(|| {
        let name = utf8(name, "name")?;
        let value = optional_utf8(value, "value")?;
        let sent = with_server(server, |server| {
            let payload = payload_slice(data, len, server.config().max_message_size)?;
            server.send_to_tag(name, value, type_code, payload)
        })?;
        if let Some(out) = out_sent.as_mut() {
            *out = sent;
        }
        Ok(())
    })
}

/// Writes the counters of `server`'s cluster bus to `*out` (set
/// `out->struct_size = sizeof *out` first). Any thread; never blocks.
///
/// Returns `VELTIX_ERR_INVALID_ARGUMENT` outside cluster mode or for a
/// `struct_size` this library does not know (nothing written).
///
/// # Safety
/// `server` must be a live server; `out` writable for `out->struct_size`
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_cluster_stats(
    server: *const veltix_server_t,
    out: *mut veltix_cluster_stats_t,
) -> veltix_status_t {
    with_status(|| {
        let out = non_null_mut(out, "out")?;
        let stats = cluster_server(server, |server| {
            Some(veltix_cluster_stats_t::new(
                server.cluster_node_id()?,
                server.cluster_stats()?,
            ))
        })?;
        // SAFETY: the caller set out->struct_size and gives that much.
        unsafe { extensible::write_out(&stats, out) }
    })
}

/// Lists every live node of `server`'s cluster with its count of
/// connected clients, in node order: this node's count now, the others'
/// as each recorded it within the last second or so (a node's record
/// expires 3 s after its last refresh, so a stopped node leaves the list
/// then; the bus down, the others leave it within 3 s). Copies up to
/// `capacity` entries to `out_nodes` and writes how many there are to
/// `*out_count`, and their total of clients to `*out_total` if it is not
/// NULL. `out_nodes` may be NULL when `capacity` is 0. Any thread; never
/// blocks: it reads what the bus thread last fetched.
///
/// Returns `VELTIX_ERR_INVALID_ARGUMENT` outside cluster mode.
///
/// # Safety
/// `server` must be a live server; `out_nodes` must hold `capacity`
/// entries; `out_count` writable; `out_total` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_cluster_nodes(
    server: *const veltix_server_t,
    out_nodes: *mut veltix_cluster_node_t,
    capacity: usize,
    out_count: *mut usize,
    out_total: *mut u64,
) -> veltix_status_t {
    with_status(|| {
        let counts = cluster_server(server, |server| server.cluster_counts())?;
        let nodes: Vec<veltix_cluster_node_t> = counts
            .iter()
            .map(|&NodeCount { node, clients }| veltix_cluster_node_t {
                node_id: node,
                clients,
            })
            .collect();
        let name = "out_nodes (with capacity > 0)";
        write_list(&nodes, out_nodes, name, capacity, out_count)?;
        if let Some(total) = out_total.as_mut() {
            *total = counts.iter().map(|count| count.clients).sum();
        }
        Ok(())
    })
}
