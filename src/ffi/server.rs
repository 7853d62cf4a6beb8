//! `veltix_server_t`: the server handle and its functions.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use super::boundary::{
    dispatch_with, non_null, non_null_mut, payload_slice, registration, utf8, veltix_free_fn,
    with_fallback, with_outcome, with_status, CallbackData, UserData,
};
use super::client::{reason_code, veltix_disconnect_reason_t};
use super::extensible;
use super::message::{as_message, into_handle, message_handle, veltix_message_t};
use super::server_config::veltix_server_config_t;
use super::stats::{veltix_stats_t, write_stats};
use super::status::veltix_status_t;
use crate::disconnect::DisconnectReason;
use crate::error::{Error, Result};
use crate::server::{
    PeerConnectHandler, PeerDisconnectHandler, PeerId, PeerMessageHandler, Server, ServerInner,
};

/// A Veltix server (opaque). Create with `veltix_server_new()`, start with
/// `veltix_server_start()`, release with `veltix_server_free()`. Every
/// function taking it may be called from any thread, concurrently, and from
/// inside its own callbacks.
#[allow(non_camel_case_types)]
pub struct veltix_server_t {
    _private: [u8; 0],
}

/// A connected client of a server, as given to `on_connect`. Ids start at 1
/// and are never reused during the server's life (restarts included), so a
/// stale id fails with `VELTIX_ERR_NOT_CONNECTED` instead of reaching
/// another client. In cluster mode an id is `cluster_node_id << 37 | n`
/// (`n` from 1): unique across the cluster, and below 2^53, so a
/// JavaScript number or a Lua double holds it exactly.
#[allow(non_camel_case_types)]
pub type veltix_peer_id_t = u64;

/// Receives a message from `peer` (a route, or `on_recv`). Runs on a worker
/// thread of the server, with no library lock held. One peer's callbacks
/// run one at a time, in arrival order (`on_connect`, its messages, then
/// `on_disconnect`); different peers' run in parallel on up to
/// `max_workers` threads. `message` is borrowed for the call only (clone it
/// to keep it); never free it. Inside, every library function may be
/// called, including `veltix_server_send_and_wait()` (to this peer too:
/// the waiting thread, or the I/O thread, reads the reply, never one of
/// this peer's callbacks), `veltix_server_close()` and
/// `veltix_server_free()` (neither waits for this thread; do not use the
/// server after free). A slow callback delays only its own peer's later
/// callbacks, and the reading of that peer once its messages waiting for
/// callbacks pass `max_queued_messages` or `max_queued_bytes`
/// (back-pressure: then that peer's replies and pings behind the unread
/// bytes wait too); other peers are never delayed.
/// A C++ exception must not escape it: the library cannot catch foreign
/// exceptions, so one that unwinds into it aborts the process. Catch
/// everything inside (a C++ wrapper does it in its trampoline).
#[allow(non_camel_case_types)]
pub type veltix_server_message_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        server: *mut veltix_server_t,
        peer: veltix_peer_id_t,
        message: *const veltix_message_t,
    ),
>;

/// Called when `peer` completes its handshake, before any of its messages,
/// on a worker thread with no library lock held. Calls allowed as in
/// `veltix_server_message_fn`.
/// A C++ exception must not escape it: the library cannot catch foreign
/// exceptions, so one that unwinds into it aborts the process. Catch
/// everything inside (a C++ wrapper does it in its trampoline).
#[allow(non_camel_case_types)]
pub type veltix_server_connect_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        server: *mut veltix_server_t,
        peer: veltix_peer_id_t,
    ),
>;

/// Called once when a connected peer's connection ends, after its last
/// message callback, on a worker thread with no library lock held. The
/// peer is already gone: calls naming it fail with
/// `VELTIX_ERR_NOT_CONNECTED`. `reason`: `VELTIX_DISCONNECT_PEER_CLOSED`
/// (the client closed, or shut its sending side: then once the callbacks
/// of its messages have run), `VELTIX_DISCONNECT_ERROR` (reset, read
/// error, it stopped reading past `max_outbound_bytes`, or it was cut to
/// keep the server within `max_memory_bytes`), `VELTIX_DISCONNECT_MANUAL`
/// (`veltix_server_close_client()` or `veltix_server_close()`). Clients
/// that never completed the handshake are not reported. Calls allowed as in
/// `veltix_server_message_fn`.
/// A C++ exception must not escape it: the library cannot catch foreign
/// exceptions, so one that unwinds into it aborts the process. Catch
/// everything inside (a C++ wrapper does it in its trampoline).
#[allow(non_camel_case_types)]
pub type veltix_server_disconnect_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        server: *mut veltix_server_t,
        peer: veltix_peer_id_t,
        reason: veltix_disconnect_reason_t,
    ),
>;

/// The `count` peer ids at `ids` (NULL when 0), with the count checked
/// before any memory is read.
///
/// # Safety
/// A non-NULL `ids` must point to `count` readable ids.
unsafe fn peer_list<'a>(ids: *const veltix_peer_id_t, count: usize) -> Result<&'a [PeerId]> {
    if count == 0 {
        return Ok(&[]);
    }
    let fits = count
        .checked_mul(std::mem::size_of::<PeerId>())
        .is_some_and(|bytes| bytes <= isize::MAX as usize);
    if !fits {
        return Err(Error::InvalidArgument(format!(
            "except_count is {count}, more ids than memory can hold. Fix: pass the number of ids in the except array"
        )));
    }
    Ok(std::slice::from_raw_parts(
        non_null(ids, "except (with except_count > 0)")?,
        count,
    ))
}

/// Runs `body` with the server behind `server` (not consuming the handle).
pub(super) fn with_server<T>(
    server: *const veltix_server_t,
    body: impl FnOnce(&Server) -> Result<T>,
) -> Result<T> {
    if server.is_null() {
        return Err(Error::NullPointer("server"));
    }
    // SAFETY: a non-NULL handle comes from veltix_server_new() and is alive
    // when the call starts; the call holds its own reference, so a
    // concurrent veltix_server_free() cannot release the memory under it.
    let server = unsafe { Server::clone_from_ptr(server.cast::<ServerInner>()) };
    body(&server)
}

pub(super) fn handle(server: &Server) -> *mut veltix_server_t {
    server.as_ptr().cast_mut().cast()
}

/// Copies up to `capacity` ids to `out` and writes the total to
/// `out_count` (the list may be longer than `capacity`: call again with a
/// larger array).
///
/// # Safety
/// `out` must hold `capacity` writable ids (may be NULL if 0).
unsafe fn write_ids(
    ids: &[PeerId],
    out: *mut veltix_peer_id_t,
    capacity: usize,
    out_count: *mut usize,
) -> Result<()> {
    write_list(
        ids,
        out,
        "out_peers (with capacity > 0)",
        capacity,
        out_count,
    )
}

/// Copies up to `capacity` of `items` to `out` (named `out_name`) and
/// writes how many there are to `out_count`.
///
/// # Safety
/// `out` must hold `capacity` writable items (may be NULL if 0).
pub(super) unsafe fn write_list<T: Copy>(
    items: &[T],
    out: *mut T,
    out_name: &'static str,
    capacity: usize,
    out_count: *mut usize,
) -> Result<()> {
    let out_count = non_null_mut(out_count, "out_count")?;
    let n = items.len().min(capacity);
    if n > 0 {
        if out.is_null() {
            return Err(Error::NullPointer(out_name));
        }
        std::ptr::copy_nonoverlapping(items.as_ptr(), out, n);
    }
    *out_count = items.len();
    Ok(())
}

/// Copies `text` and a NUL into `buf` of `buf_size` bytes; `BufferTooSmall`
/// (saying the size needed) if it does not fit.
///
/// # Safety
/// `buf` must hold `buf_size` writable bytes.
unsafe fn write_text(text: &str, buf: *mut c_char, buf_size: usize, what: &str) -> Result<()> {
    if buf_size < text.len() + 1 {
        return Err(Error::BufferTooSmall(format!(
            "{what} needs {} bytes with its NUL, the buffer has {buf_size}. Fix: pass a larger buffer",
            text.len() + 1
        )));
    }
    if buf.is_null() {
        return Err(Error::NullPointer("buf"));
    }
    std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), buf, text.len());
    *buf.add(text.len()) = 0;
    Ok(())
}

/// Creates a server from `config` (copied) and writes it to `*out`. It does
/// not listen yet: register callbacks, then call `veltix_server_start()`.
/// Starts `max_workers` threads.
///
/// Returns `VELTIX_ERR_NULL_POINTER` if `config` or `out` is NULL,
/// `VELTIX_ERR_INVALID_ARGUMENT` for an out-of-range field (named, with the
/// fix, by `veltix_last_error()`). `*out` is written only on success.
///
/// # Safety
/// `config` must point to a valid config, `out` to writable storage.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_new(
    config: *const veltix_server_config_t,
    out: *mut *mut veltix_server_t,
) -> veltix_status_t {
    with_status(|| {
        let config = non_null(config, "config")?;
        // SAFETY: a config from the caller, filled by its _config_init().
        let config = unsafe { extensible::read(config) }?.to_config()?;
        let out = non_null_mut(out, "out")?;
        *out = Server::new(config)?.into_raw().cast_mut().cast();
        Ok(())
    })
}

/// Closes the server as `veltix_server_close()` does (so each connected
/// peer's `on_disconnect` still runs), stops the worker threads and
/// releases the server. It returns within the time the running callbacks
/// and those `on_disconnect` calls take, whatever the backlog of message
/// callbacks (they are dropped unstarted). No callback starts after it
/// returns. NULL is a no-op.
///
/// Called from inside one of the server's callbacks it does not wait for
/// the calling thread, and the memory is released when the last callback
/// returns.
///
/// # Safety
/// `server` must be NULL or a live server, freed once; it must not be used
/// after this call.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_free(server: *mut veltix_server_t) {
    if server.is_null() {
        return;
    }
    with_fallback((), || {
        // SAFETY: the handle came from veltix_server_new and is freed once.
        let server = unsafe { Server::from_raw(server.cast::<ServerInner>()) };
        server.shut_down();
        Ok(())
    })
}

/// Binds `config.host:config.port` and starts the I/O thread; returns once
/// the server listens, so clients may connect as soon as it returns
/// `VELTIX_OK`. A closed server may be started again; callbacks, routes
/// and peer ids carry on.
///
/// Returns `VELTIX_ERR_BIND_FAILED` (address in use, not permitted, host
/// not resolved) or `VELTIX_ERR_ALREADY_RUNNING`.
///
/// # Safety
/// `server` must be a live server.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_start(server: *mut veltix_server_t) -> veltix_status_t {
    with_status(|| with_server(server, |server| server.start().map(drop)))
}

/// The port the server listens on (the one picked if `config.port` was
/// 0), or 0 if it is not running or `server` is NULL.
///
/// # Safety
/// `server` must be NULL or a live server.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_port(server: *const veltix_server_t) -> u16 {
    with_fallback(0, || {
        with_server(server, |server| {
            Ok(server.local_addr().map_or(0, |addr| addr.port()))
        })
    })
}

/// Drains `server` for a rolling deploy: it stops listening at once, so a
/// load balancer in front sends new clients to the other nodes, then
/// closes its connections `peers_per_second` at a time (0: all at once),
/// each as `veltix_server_close_client()` does (`on_disconnect` with
/// `VELTIX_DISCONNECT_MANUAL`, after the callbacks already queued for the
/// peer), so that clients with `retry` reconnect through the balancer a
/// few at a time instead of all at once. Returns at once; calling it again
/// changes the rate. `veltix_server_close()` and `veltix_server_free()` end
/// it, and a drained server can be started again after
/// `veltix_server_close()`.
///
/// Returns `VELTIX_ERR_CLOSED` if the server is not running.
///
/// # Safety
/// `server` must be a live server.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_drain(
    server: *mut veltix_server_t,
    peers_per_second: u32,
) -> veltix_status_t {
    with_status(|| with_server(server, |server| server.drain(peers_per_second)))
}

/// Stops listening and closes every connection: `on_disconnect` runs for
/// each connected peer (`VELTIX_DISCONNECT_MANUAL`), pending
/// `send_and_wait` calls fail with `VELTIX_ERR_CLOSED`. Message callbacks
/// not yet started are dropped, whatever their number; queued
/// `on_connect` and `on_disconnect` calls are not: each peer's run, in
/// order, before this returns. Returns after the I/O thread has stopped
/// and, unless called from a callback, after the running callbacks and
/// those `on_connect`/`on_disconnect` calls have returned. `VELTIX_OK` (and
/// nothing done) if the server is not running.
///
/// # Safety
/// `server` must be a live server.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_close(server: *mut veltix_server_t) -> veltix_status_t {
    with_status(|| {
        with_server(server, |server| {
            server.close();
            Ok(())
        })
    })
}

fn message_handler(
    callback: unsafe extern "C" fn(
        *mut c_void,
        *mut veltix_server_t,
        veltix_peer_id_t,
        *const veltix_message_t,
    ),
    data: Arc<CallbackData>,
) -> PeerMessageHandler {
    Arc::new(move |server, peer, message| {
        // SAFETY: the callback and user_data were registered together.
        unsafe { callback(data.get(), handle(server), peer, message_handle(message)) }
    })
}

/// Sets the callback for messages that no route takes (NULL `fn` clears
/// it). Messages with neither are dropped with a log line.
///
/// The previous callback, if any, is never started again once this returns
/// (not even for messages already received), and, when called outside a
/// callback, this returns only when the previous callback is not running,
/// so what its `user_data` points to may then be released. Inside a
/// callback it does not wait (it could be waiting for itself).
/// `free_user_data` (may be NULL) releases `user_data` once this
/// registration can never run again (see `veltix_free_fn`); every
/// registration function takes one.
///
/// # Safety
/// `server` must be a live server; `fn` must be callable from any thread
/// with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_on_recv(
    server: *mut veltix_server_t,
    r#fn: veltix_server_message_fn,
    user_data: *mut c_void,
    free_user_data: veltix_free_fn,
) -> veltix_status_t {
    with_status(|| {
        with_server(server, |server| {
            let data = CallbackData::new(user_data, free_user_data);
            server.on_recv(registration(r#fn, &data, message_handler));
            Ok(())
        })
    })
}

/// Sets `fn`, the callback run when a client of `server` completes its
/// handshake (NULL clears it), with `user_data`, which `free_user_data`
/// (may be NULL) releases once `fn` can never run again. Replacing or
/// clearing it waits as `veltix_server_on_recv()` does.
///
/// # Safety
/// As `veltix_server_on_recv()`.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_on_connect(
    server: *mut veltix_server_t,
    r#fn: veltix_server_connect_fn,
    user_data: *mut c_void,
    free_user_data: veltix_free_fn,
) -> veltix_status_t {
    with_status(|| {
        with_server(server, |server| {
            let data = CallbackData::new(user_data, free_user_data);
            server.on_connect(registration(r#fn, &data, |callback, data| {
                Arc::new(move |server: &Server, peer: PeerId| {
                    // SAFETY: registered together with user_data.
                    unsafe { callback(data.get(), handle(server), peer) }
                }) as PeerConnectHandler
            }));
            Ok(())
        })
    })
}

/// Sets `fn`, the callback run when a connected client of `server`
/// leaves (NULL clears it), with `user_data`, which `free_user_data` (may
/// be NULL) releases once `fn` can never run again. Replacing or clearing
/// it waits as `veltix_server_on_recv()` does.
///
/// # Safety
/// As `veltix_server_on_recv()`.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_on_disconnect(
    server: *mut veltix_server_t,
    r#fn: veltix_server_disconnect_fn,
    user_data: *mut c_void,
    free_user_data: veltix_free_fn,
) -> veltix_status_t {
    with_status(|| {
        with_server(server, |server| {
            let data = CallbackData::new(user_data, free_user_data);
            server.on_disconnect(registration(r#fn, &data, |callback, data| {
                Arc::new(
                    move |server: &Server, peer: PeerId, reason: DisconnectReason| {
                        // SAFETY: registered together with user_data.
                        unsafe { callback(data.get(), handle(server), peer, reason_code(reason)) }
                    },
                ) as PeerDisconnectHandler
            }));
            Ok(())
        })
    })
}

/// Routes the messages of `type_code` that `server` receives to `fn`
/// instead of `on_recv`, with `user_data`, which `free_user_data` (may be
/// NULL) releases once the route can never run again (see
/// `veltix_free_fn`). Replies to `veltix_server_send_and_wait()` and pings
/// never reach routes.
///
/// Returns `VELTIX_ERR_NULL_POINTER` if `fn` is NULL,
/// `VELTIX_ERR_ALREADY_EXISTS` if the type is already routed.
///
/// # Safety
/// As `veltix_server_on_recv()`.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_route(
    server: *mut veltix_server_t,
    type_code: u16,
    r#fn: veltix_server_message_fn,
    user_data: *mut c_void,
    free_user_data: veltix_free_fn,
) -> veltix_status_t {
    with_status(|| {
        with_server(server, |server| {
            let callback = r#fn.ok_or(Error::NullPointer("fn"))?;
            let data = CallbackData::new(user_data, free_user_data);
            let routed = server.route(type_code, message_handler(callback, data.clone()));
            if routed.is_err() {
                data.keep();
            }
            routed
        })
    })
}

/// Removes the route of `type_code`; `VELTIX_ERR_NOT_FOUND` if none.
/// The removed callback is never started again once this returns, and
/// outside a callback this returns only when it is not running, as
/// `veltix_server_on_recv()` describes.
///
/// # Safety
/// `server` must be a live server.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_unroute(
    server: *mut veltix_server_t,
    type_code: u16,
) -> veltix_status_t {
    with_status(|| with_server(server, |server| server.unroute(type_code)))
}

/// Sends `len` bytes at `data` to `peer` as a message of `type_code` (with
/// a fresh server request id, in [32768, 65536)). `data` may be NULL when
/// `len` is 0. The bytes are written to the socket from the calling thread,
/// or copied into the peer's queue if its socket is full; they are not
/// referenced afterwards. Frames from concurrent callers are never
/// interleaved; one caller's frames arrive in order.
///
/// Inside a message callback, sends and replies are held in their peers'
/// queues and written together, one write per peer, when the callback
/// batch ends (the messages of one peer that arrived in one read run as a
/// batch), or once 64 KiB gather for a peer; what goes to the peer whose
/// callbacks run waits further while more of its messages are queued (a
/// pipelining client). So a callback that replies or broadcasts costs one
/// write per receiver per batch, not per message. A batch of one message
/// with no other batch of its peer queued behind it (with
/// `callbacks_on_io_thread`, every batch of one message) writes what it
/// sends to its own peer at once (nothing could join it). What a callback sent is
/// written at the latest when its batch ends, or before it blocks in
/// `veltix_server_send_and_wait()` or `veltix_server_ping()`; a callback
/// that computes for long after a send delays that send as long. Requests
/// (`send_and_wait`, `request`, pings) are never held back, and a send
/// from any other thread is written at once.
///
/// Returns `VELTIX_ERR_MESSAGE_TOO_LARGE` (nothing sent) when 15 + `len`
/// exceeds `max_message_size`; `VELTIX_ERR_NOT_CONNECTED` if `peer` is not
/// connected; `VELTIX_ERR_CLOSED` if the peer stopped reading and its queue
/// would exceed `max_outbound_bytes` (it is then disconnected);
/// `VELTIX_ERR_IO` if its connection failed (it is then closed).
///
/// # Safety
/// `server` must be a live server; `data` must hold `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_send(
    server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
    type_code: u16,
    data: *const u8,
    len: usize,
) -> veltix_status_t {
    with_status(|| {
        with_server(server, |server| {
            let payload = payload_slice(data, len, server.config().max_message_size)?;
            server.send(peer, type_code, payload)
        })
    })
}

/// Sends the NUL-terminated `text` (without its NUL) to `peer` as a message
/// of `type_code`. As `veltix_server_send()`.
///
/// # Safety
/// `server` must be a live server; `text` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_send_text(
    server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
    type_code: u16,
    text: *const c_char,
) -> veltix_status_t {
    with_status(|| {
        let text = std::ffi::CStr::from_ptr(non_null(text, "text")?);
        with_server(server, |server| {
            server.send(peer, type_code, text.to_bytes())
        })
    })
}

/// Replies to `to`, a message received from `peer` (e.g. a client's
/// `send_and_wait` request): sends a message of `type_code` carrying `to`'s
/// request id. As `veltix_server_send()`.
///
/// # Safety
/// `server` must be a live server, `to` a valid message, `data` `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_reply(
    server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
    to: *const veltix_message_t,
    type_code: u16,
    data: *const u8,
    len: usize,
) -> veltix_status_t {
    with_status(|| {
        let to = as_message(to)?;
        with_server(server, |server| {
            let payload = payload_slice(data, len, server.config().max_message_size)?;
            server.reply(peer, to, type_code, payload)
        })
    })
}

/// Sends a request (a message of `type_code`) to `peer` and blocks until
/// the message from that peer carrying its request id arrives (whatever
/// its type), then writes it to `*out_response`; you own it: release it with `veltix_message_free()`.
/// The reply is matched on the I/O thread, never delayed by callbacks, so
/// this may be called from callbacks (the peer's own included) and from
/// many threads at once.
///
/// Completes exactly once: `VELTIX_OK` with the reply, `VELTIX_ERR_TIMEOUT`
/// after `timeout_ms`, or `VELTIX_ERR_CLOSED` as soon as the peer
/// disconnects or the server closes. Also fails as `veltix_server_send()`
/// does, and with `VELTIX_ERR_IDS_EXHAUSTED`. `*out_response` is written
/// only on success.
///
/// Before sleeping, the calling thread spins for up to
/// `config.reply_spin_us` watching for the reply, while a core is idle
/// (one waiting thread at a time; after 8 spins in a row that missed, the
/// next 64 waits sleep at once): a loopback reply then costs no wake-up of
/// the caller.
///
/// # Safety
/// `server` must be a live server; `data` `len` bytes; `out_response`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_send_and_wait(
    server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
    type_code: u16,
    data: *const u8,
    len: usize,
    timeout_ms: u32,
    out_response: *mut *mut veltix_message_t,
) -> veltix_status_t {
    with_status(|| {
        let out_response = non_null_mut(out_response, "out_response")?;
        let timeout = Duration::from_millis(timeout_ms.into());
        let response = with_server(server, |server| {
            let payload = payload_slice(data, len, server.config().max_message_size)?;
            server.send_and_wait(peer, type_code, payload, timeout)
        })?;
        *out_response = into_handle(response);
        Ok(())
    })
}

/// Pings `peer` (PING, answered by PONG) and writes the round trip in
/// milliseconds to `*out_rtt_ms` if it is not NULL. Completes as
/// `veltix_server_send_and_wait()` does, waiting at most `timeout_ms`.
///
/// # Safety
/// `server` must be a live server; `out_rtt_ms` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_ping_client(
    server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
    timeout_ms: u32,
    out_rtt_ms: *mut f64,
) -> veltix_status_t {
    with_status(|| {
        let timeout = Duration::from_millis(timeout_ms.into());
        let rtt = with_server(server, |server| server.ping(peer, timeout))?;
        if let Some(out) = out_rtt_ms.as_mut() {
            *out = rtt;
        }
        Ok(())
    })
}

/// Sends one message of `type_code` (one request id for all) to every
/// connected client except the `except_count` peers at `except` (NULL when
/// 0). Clients still in their handshake are not included. A client whose
/// send fails is skipped (and disconnected if it stopped reading or its
/// connection failed); the others still get the message. Writes the number
/// of clients it was sent to to `*out_sent` if it is not NULL. From inside
/// a message callback the copies are batched as described at
/// `veltix_server_send()`, and broadcasts to everyone (no `except`) that
/// follow one another with no other send between them, while no client
/// connects or leaves, are encoded once and copied to each receiver at the
/// end of the run: their cost does not grow with the number of clients.
/// Such a broadcast counts the clients the first of the run reached (one
/// that fails when the run is copied is disconnected, as above).
///
/// Returns `VELTIX_ERR_MESSAGE_TOO_LARGE` (nothing sent).
///
/// # Safety
/// `server` must be a live server; `data` `len` bytes; `except`
/// `except_count` ids; `out_sent` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_broadcast(
    server: *mut veltix_server_t,
    type_code: u16,
    data: *const u8,
    len: usize,
    except: *const veltix_peer_id_t,
    except_count: usize,
    out_sent: *mut usize,
) -> veltix_status_t {
    with_status(|| {
        let sent = with_server(server, |server| {
            let payload = payload_slice(data, len, server.config().max_message_size)?;
            let except = peer_list(except, except_count)?;
            server.broadcast(type_code, payload, except)
        })?;
        if let Some(out) = out_sent.as_mut() {
            *out = sent;
        }
        Ok(())
    })
}

/// Closes `peer`'s connection: bytes already queued for it are written if
/// its socket takes them at once, then the connection closes (the client
/// sees the server close it) and `on_disconnect` follows with
/// `VELTIX_DISCONNECT_MANUAL`. Sends to it fail from this call on. Returns
/// without waiting for the close; `VELTIX_ERR_NOT_CONNECTED` if `peer` is
/// not connected.
///
/// # Safety
/// `server` must be a live server.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_close_client(
    server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
) -> veltix_status_t {
    with_status(|| with_server(server, |server| server.close_client(peer)))
}

/// How many clients are connected (handshake complete); 0 for NULL.
///
/// # Safety
/// `server` must be NULL or a live server.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_client_count(server: *const veltix_server_t) -> usize {
    with_fallback(0, || {
        with_server(server, |server| Ok(server.client_count()))
    })
}

/// Lists the connected clients: copies up to `capacity` ids, in increasing
/// order, to `out_peers` and writes how many there are to `*out_count`
/// (more than `capacity` means the list was cut: call again with a larger
/// array). `out_peers` may be NULL when `capacity` is 0, to get the count.
///
/// # Safety
/// `server` must be a live server; `out_peers` must hold `capacity` ids;
/// `out_count` writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_peers(
    server: *const veltix_server_t,
    out_peers: *mut veltix_peer_id_t,
    capacity: usize,
    out_count: *mut usize,
) -> veltix_status_t {
    with_status(|| {
        let ids = with_server(server, |server| Ok(server.peer_ids()))?;
        write_ids(&ids, out_peers, capacity, out_count)
    })
}

/// Writes `peer`'s statistics to `*out` (set `out->struct_size =
/// sizeof *out` first): bytes and frames in and out since its handshake,
/// the last round trip (a heartbeat or `veltix_server_ping_client()`), the
/// time since its last frame. Any thread; never blocks.
///
/// Returns `VELTIX_ERR_NOT_CONNECTED` for an unknown peer,
/// `VELTIX_ERR_INVALID_ARGUMENT` for a `struct_size` this library does not
/// know (nothing written).
///
/// # Safety
/// `server` must be a live server; `out` writable for `out->struct_size`
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_peer_stats(
    server: *const veltix_server_t,
    peer: veltix_peer_id_t,
    out: *mut veltix_stats_t,
) -> veltix_status_t {
    with_status(|| {
        let out = non_null_mut(out, "out")?;
        // SAFETY: the caller gives out->struct_size writable bytes.
        with_server(server, |server| unsafe {
            write_stats(server.peer_stats(peer)?, out)
        })
    })
}

/// Writes `peer`'s IP address as text (e.g. `"127.0.0.1"` or `"::1"`), NUL
/// included, to `buf` of `buf_size` bytes, and its port to `*out_port` if
/// that is not NULL. 46 bytes (`INET6_ADDRSTRLEN`) always suffice.
///
/// Returns `VELTIX_ERR_NOT_CONNECTED`, or `VELTIX_ERR_BUFFER_TOO_SMALL`
/// (nothing written).
///
/// # Safety
/// `server` must be a live server; `buf` must hold `buf_size` bytes;
/// `out_port` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_peer_address(
    server: *const veltix_server_t,
    peer: veltix_peer_id_t,
    buf: *mut c_char,
    buf_size: usize,
    out_port: *mut u16,
) -> veltix_status_t {
    with_status(|| {
        let addr = with_server(server, |server| server.peer_addr(peer))?;
        write_text(&addr.ip().to_string(), buf, buf_size, "the address")?;
        if let Some(out) = out_port.as_mut() {
            *out = addr.port();
        }
        Ok(())
    })
}

/// Tags `peer`: sets tag `name` to `value` (NULL means `""`) unless the
/// peer already has that tag, as the reference's `add_tag`. Tags group
/// clients (a room, a role); find them with `veltix_server_peers_with_tag()`.
/// They live as long as the connection.
///
/// Returns `VELTIX_ERR_ALREADY_EXISTS` (value unchanged) if the tag is set,
/// `VELTIX_ERR_NOT_CONNECTED`.
///
/// # Safety
/// `server` must be a live server; `name` (and a non-NULL `value`)
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_add_tag(
    server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
    name: *const c_char,
    value: *const c_char,
) -> veltix_status_t {
    with_status(|| {
        let name = utf8(name, "name")?;
        let value = optional_utf8(value, "value")?.unwrap_or("");
        let added = with_server(server, |server| server.set_tag(peer, name, value, false))?;
        if !added {
            return Err(Error::AlreadyExists(format!(
                "peer {peer} already has tag \"{name}\". Fix: use veltix_server_set_tag() to change its value"
            )));
        }
        Ok(())
    })
}

/// Sets tag `name` of `peer` of `server` to `value` (NULL means `""`),
/// creating or replacing it, as the reference's `set_tag`.
///
/// # Safety
/// As `veltix_server_add_tag()`.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_set_tag(
    server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
    name: *const c_char,
    value: *const c_char,
) -> veltix_status_t {
    with_status(|| {
        let name = utf8(name, "name")?;
        let value = optional_utf8(value, "value")?.unwrap_or("");
        with_server(server, |server| server.set_tag(peer, name, value, true)).map(drop)
    })
}

/// Removes tag `name` of `peer`; `VELTIX_ERR_NOT_FOUND` if it was not set.
///
/// # Safety
/// `server` must be a live server; `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_remove_tag(
    server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
    name: *const c_char,
) -> veltix_status_t {
    with_status(|| {
        let name = utf8(name, "name")?;
        if !with_server(server, |server| server.remove_tag(peer, name))? {
            return Err(Error::NotFound(format!(
                "peer {peer} has no tag \"{name}\". Fix: nothing to remove"
            )));
        }
        Ok(())
    })
}

/// Reads tag `name` of `peer`: writes its value, NUL included, to `buf` of
/// `buf_size` bytes and its length (without the NUL) to `*out_len`. With
/// `buf` NULL and `buf_size` 0, writes only the length, to size a buffer.
///
/// Returns `VELTIX_ERR_NOT_FOUND` if the tag is not set,
/// `VELTIX_ERR_BUFFER_TOO_SMALL` (nothing written), `VELTIX_ERR_NOT_CONNECTED`.
///
/// # Safety
/// `server` must be a live server; `name` a NUL-terminated string; `buf`
/// `buf_size` writable bytes; `out_len` writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_get_tag(
    server: *const veltix_server_t,
    peer: veltix_peer_id_t,
    name: *const c_char,
    buf: *mut c_char,
    buf_size: usize,
    out_len: *mut usize,
) -> veltix_status_t {
    with_status(|| {
        let name = utf8(name, "name")?;
        let out_len = non_null_mut(out_len, "out_len")?;
        let value = with_server(server, |server| server.tag(peer, name))?.ok_or_else(|| {
            Error::NotFound(format!(
                "peer {peer} has no tag \"{name}\". Fix: set it with veltix_server_add_tag() or veltix_server_set_tag()"
            ))
        })?;
        if !(buf.is_null() && buf_size == 0) {
            write_text(&value, buf, buf_size, "the tag value")?;
        }
        *out_len = value.len();
        Ok(())
    })
}

/// Lists the clients of `server` having tag `name`, set to `value` (NULL:
/// any value), as the reference's `get_clients_by_tag`: copies up to
/// `capacity` ids to `out_peers` and writes how many there are to
/// `*out_count`, as `veltix_server_peers()` does.
///
/// # Safety
/// As `veltix_server_peers()`; `name` (and a non-NULL `value`)
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_peers_with_tag(
    server: *const veltix_server_t,
    name: *const c_char,
    value: *const c_char,
    out_peers: *mut veltix_peer_id_t,
    capacity: usize,
    out_count: *mut usize,
) -> veltix_status_t {
    with_status(|| {
        let name = utf8(name, "name")?;
        let value = optional_utf8(value, "value")?;
        let ids = with_server(server, |server| Ok(server.peers_with_tag(name, value)))?;
        write_ids(&ids, out_peers, capacity, out_count)
    })
}

/// `None` for NULL, else the string.
///
/// # Safety
/// A non-NULL `ptr` must be a NUL-terminated string outliving `'a`.
pub(super) unsafe fn optional_utf8<'a>(
    ptr: *const c_char,
    name: &'static str,
) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        return Ok(None);
    }
    utf8(ptr, name).map(Some)
}

/// Dispatch mode (a server created with `config.max_workers = 0`: no
/// callback threads): runs the server's due callbacks on the calling
/// thread. Waits up to `timeout_ms` (0: not at all; negative: until one is
/// due) for a callback to be due, then runs it and every callback due by
/// then (each peer's in arrival order), and writes how many ran to
/// `*out_count` if it is not NULL. Network I/O never waits for it: the I/O
/// thread accepts, answers PINGs and completes
/// `veltix_server_send_and_wait()` while the host is busy; messages wait,
/// within each peer's `max_queued_messages`/`max_queued_bytes`
/// (back-pressure), until the host dispatches.
///
/// Inside dispatched callbacks the same calls are allowed as inside worker
/// callbacks. In dispatch mode `veltix_server_close()` and
/// `veltix_server_free()` run the `on_connect`/`on_disconnect` calls still
/// due (those of the close included) on the calling thread, and drop the
/// messages not dispatched.
///
/// Returns `VELTIX_ERR_INVALID_ARGUMENT` if the server has worker threads,
/// or when called from inside a dispatched callback.
///
/// # Safety
/// `server` must be a live server; `out_count` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_dispatch(
    server: *mut veltix_server_t,
    timeout_ms: i32,
    out_count: *mut usize,
) -> veltix_status_t {
    with_status(|| {
        dispatch_with(timeout_ms, out_count, |timeout| {
            with_server(server, |server| server.dispatch(timeout))
        })
    })
}

/// Dispatch mode: writes to `*out_fd` a handle that is readable while
/// callbacks are due (see `veltix_client_event_fd()`); valid until
/// `veltix_server_free()`.
///
/// Returns `VELTIX_ERR_INVALID_ARGUMENT` if the server has worker threads.
///
/// # Safety
/// `server` must be a live server; `out_fd` writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_event_fd(
    server: *mut veltix_server_t,
    out_fd: *mut super::veltix_socket_t,
) -> veltix_status_t {
    with_status(|| {
        let out_fd = non_null_mut(out_fd, "out_fd")?;
        *out_fd = with_server(server, |server| server.event_handle())?;
        Ok(())
    })
}

/// Receives the outcome of `veltix_server_request()`, exactly once, as a
/// callback (on a worker thread, or inside `veltix_server_dispatch()`):
/// `status` `VELTIX_OK` with `reply`, or `VELTIX_ERR_TIMEOUT` or
/// `VELTIX_ERR_CLOSED` (the peer left or the server closed) with `reply`
/// NULL; `reply` and `error` ("" on success) are borrowed for the call.
/// Calls allowed as in `veltix_server_message_fn`.
/// A C++ exception must not escape it: the library cannot catch foreign
/// exceptions, so one that unwinds into it aborts the process.
#[allow(non_camel_case_types)]
pub type veltix_server_reply_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        server: *mut veltix_server_t,
        peer: veltix_peer_id_t,
        status: veltix_status_t,
        reply: *const veltix_message_t,
        error: *const c_char,
    ),
>;

/// Sends a request (a message of `type_code`) to `peer` and returns
/// without waiting: `on_reply` receives the outcome later, exactly once
/// (the reply, or `VELTIX_ERR_TIMEOUT` after `timeout_ms`, or
/// `VELTIX_ERR_CLOSED`; see `veltix_server_reply_fn`),
/// except that a `veltix_server_free()` from inside a callback drops the
/// outcomes not yet delivered. Returns at once with the error, and
/// `on_reply` is never called, when the request cannot be sent (as
/// `veltix_server_send()` fails, or a NULL `on_reply`).
///
/// # Safety
/// `server` must be a live server; `data` `len` bytes; `on_reply` callable
/// from any thread with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn veltix_server_request(
    server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
    type_code: u16,
    data: *const u8,
    len: usize,
    timeout_ms: u32,
    on_reply: veltix_server_reply_fn,
    user_data: *mut c_void,
) -> veltix_status_t {
    with_status(|| {
        let on_reply = on_reply.ok_or(Error::NullPointer("on_reply"))?;
        let user_data = UserData::new(user_data);
        with_server(server, |server| {
            let payload = payload_slice(data, len, server.config().max_message_size)?;
            let timeout = Duration::from_millis(timeout_ms.into());
            server.request(
                peer,
                type_code,
                payload,
                timeout,
                Box::new(move |server, peer, outcome| {
                    with_outcome(&outcome, |status, reply, error| {
                        // SAFETY: registered together with user_data.
                        unsafe {
                            on_reply(user_data.get(), handle(server), peer, status, reply, error)
                        }
                    })
                }),
            )
        })
    })
}
