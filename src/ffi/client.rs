//! `veltix_client_t`: the client handle and its functions.

use std::ffi::{c_void, CStr};
use std::sync::Arc;
use std::time::Duration;

use super::boundary::{
    dispatch_with, non_null, non_null_mut, payload_slice, record_error, registration,
    veltix_free_fn, with_fallback, with_outcome, with_status, CallbackData, UserData,
};
use super::config::veltix_client_config_t;
use super::extensible;
use super::message::{as_message, into_handle, message_handle, veltix_message_t};
use super::stats::{veltix_stats_t, write_stats};
use super::status::veltix_status_t;
use crate::client::{
    Client, ClientInner, ConnectHandler, DisconnectHandler, DisconnectReason, DisconnectState,
    MessageHandler,
};
use crate::error::{Error, Result};

/// A Veltix client (opaque). Create with `veltix_client_new()`, release with
/// `veltix_client_free()`. Every function taking it may be called from any
/// thread, concurrently, and from inside its own callbacks.
#[allow(non_camel_case_types)]
pub struct veltix_client_t {
    _private: [u8; 0],
}

/// Why a connection ended (a fixed-width integer, see `VELTIX_DISCONNECT_*`).
#[allow(non_camel_case_types)]
pub type veltix_disconnect_reason_t = i32;
/// The server closed the connection (or refused it as full).
pub const VELTIX_DISCONNECT_SERVER_CLOSED: veltix_disconnect_reason_t = 0;
/// A network error: refused, reset, timed out, failed handshake.
pub const VELTIX_DISCONNECT_ERROR: veltix_disconnect_reason_t = 1;
/// `veltix_client_disconnect()` was called; on a server,
/// `veltix_server_close_client()` or `veltix_server_close()`.
pub const VELTIX_DISCONNECT_MANUAL: veltix_disconnect_reason_t = 2;
/// (Server side) the client closed its connection cleanly. A client that
/// only shut its sending side (`shutdown(SHUT_WR)` after its last request)
/// is closed once the callbacks of what it sent have run, so their replies
/// still reach it.
pub const VELTIX_DISCONNECT_PEER_CLOSED: veltix_disconnect_reason_t = 3;

/// The C value of a disconnection reason.
pub(crate) fn reason_code(reason: DisconnectReason) -> veltix_disconnect_reason_t {
    match reason {
        DisconnectReason::ServerClosed => VELTIX_DISCONNECT_SERVER_CLOSED,
        DisconnectReason::Error => VELTIX_DISCONNECT_ERROR,
        DisconnectReason::Manual => VELTIX_DISCONNECT_MANUAL,
        DisconnectReason::PeerClosed => VELTIX_DISCONNECT_PEER_CLOSED,
    }
}

/// What `on_disconnect` receives, as the reference's `DisconnectState`.
///
/// With `retry == 0`, a lost connection gives one call: permanent, attempt
/// 0. With `retry > 0`: a non-permanent call at attempt 0, one non-permanent
/// call per failed reconnection attempt (attempt = 1..retry_max), then a
/// permanent call when the client gives up or `veltix_client_stop_retry()`
/// stops it; a successful attempt calls `on_connect` instead. A failed
/// `veltix_client_connect()` follows the same sequence. `disconnect()` gives
/// one permanent call with reason `VELTIX_DISCONNECT_MANUAL`. The first
/// reconnection attempt comes at once (as in the reference); the next ones
/// after `retry_delay_ms`, or with `retry_delay_max_ms` after a delay that
/// doubles each time, drawn at random below it with `retry_jitter`.
///
/// The library passes this struct to the callback; later versions append
/// fields only, so a program reads the fields its header knows.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct veltix_disconnect_state_t {
    /// True when no reconnection attempt follows.
    pub permanent: bool,
    /// 0 for the disconnection itself, else the failed attempt's number.
    pub attempt: u32,
    /// Attempts of the reconnection loop (`config.retry`, or the count given
    /// to `veltix_client_retry()`).
    pub retry_max: u32,
    /// A `VELTIX_DISCONNECT_*` value.
    pub reason: veltix_disconnect_reason_t,
    /// Milliseconds before the next reconnection attempt (0 when it comes
    /// at once, or when none follows: see `permanent`).
    pub next_delay_ms: u32,
}

/// Receives a message (a route, or `on_recv`). Runs on a worker thread of
/// the client, with no library lock held. `message` is borrowed for the
/// call only (clone it to keep it); never free it. Inside, every library
/// function may be called, including `veltix_client_send_and_wait()`,
/// `veltix_client_disconnect()` and `veltix_client_free()` on this client
/// (free from a callback does not wait for this thread; do not use the
/// client afterwards). A slow callback delays other callbacks on the same
/// worker, not the reception of replies and pings, until the messages
/// waiting for callbacks pass `max_queued_messages` or `max_queued_bytes`:
/// then the reader stops reading (back-pressure), and replies and pings
/// behind the unread bytes wait too, so a `send_and_wait()` inside a
/// callback may then run into its timeout.
/// A C++ exception must not escape it: the library cannot catch foreign
/// exceptions, so one that unwinds into it aborts the process. Catch
/// everything inside (a C++ wrapper does it in its trampoline).
#[allow(non_camel_case_types)]
pub type veltix_message_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        client: *mut veltix_client_t,
        message: *const veltix_message_t,
    ),
>;

/// Called after each successful connection (also after a reconnection), on
/// a worker thread, with no library lock held. Calls allowed as in
/// `veltix_message_fn`.
/// A C++ exception must not escape it: the library cannot catch foreign
/// exceptions, so one that unwinds into it aborts the process. Catch
/// everything inside (a C++ wrapper does it in its trampoline).
#[allow(non_camel_case_types)]
pub type veltix_connect_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, client: *mut veltix_client_t)>;

/// Called at each disconnection step (see `veltix_disconnect_state_t`), on a
/// worker thread (inside `veltix_client_dispatch()` in dispatch mode), one
/// call at a time and in order, with no library lock held. `state` is
/// borrowed for the call only. Inside it, `veltix_last_error()` says what
/// ended the connection or failed the attempt ("" after
/// `veltix_client_disconnect()`). Calls allowed as in `veltix_message_fn`.
/// A C++ exception must not escape it: the library cannot catch foreign
/// exceptions, so one that unwinds into it aborts the process. Catch
/// everything inside (a C++ wrapper does it in its trampoline).
#[allow(non_camel_case_types)]
pub type veltix_disconnect_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        client: *mut veltix_client_t,
        state: *const veltix_disconnect_state_t,
    ),
>;

/// Runs `body` with the client behind `client` (not consuming the handle).
fn with_client<T>(
    client: *const veltix_client_t,
    body: impl FnOnce(&Client) -> Result<T>,
) -> Result<T> {
    if client.is_null() {
        return Err(Error::NullPointer("client"));
    }
    // SAFETY: a non-NULL handle comes from veltix_client_new() and is alive
    // when the call starts. The call holds its own reference, so a
    // concurrent veltix_client_free() (which fails blocked calls with
    // VELTIX_ERR_CLOSED) cannot release the memory under it.
    let client = unsafe { Client::clone_from_ptr(client.cast::<ClientInner>()) };
    body(&client)
}

fn handle(client: &Client) -> *mut veltix_client_t {
    client.as_ptr().cast_mut().cast()
}

fn message_handler(
    callback: unsafe extern "C" fn(*mut c_void, *mut veltix_client_t, *const veltix_message_t),
    data: Arc<CallbackData>,
) -> MessageHandler {
    Arc::new(move |client, message| {
        // SAFETY: the callback and user_data were registered together.
        unsafe { callback(data.get(), handle(client), message_handle(message)) }
    })
}

/// Creates a client from `config` (copied) and writes it to `*out`. The
/// client is not connected: register callbacks, then call
/// `veltix_client_connect()`. Starts `max_workers` threads.
///
/// Returns `VELTIX_ERR_NULL_POINTER` if `config` or `out` is NULL,
/// `VELTIX_ERR_INVALID_ARGUMENT` for an out-of-range field (named, with the
/// fix, by `veltix_last_error()`). `*out` is written only on success.
///
/// # Safety
/// `config` must point to a valid config, `out` to writable storage.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_new(
    config: *const veltix_client_config_t,
    out: *mut *mut veltix_client_t,
) -> veltix_status_t {
    with_status(|| {
        let config = non_null(config, "config")?;
        // SAFETY: a config from the caller, filled by its _config_init().
        let config = unsafe { extensible::read(config) }?.to_config()?;
        let out = non_null_mut(out, "out")?;
        let client = Client::new(config)?;
        *out = client.into_raw().cast_mut().cast();
        Ok(())
    })
}

/// Disconnects (without calling `on_disconnect`), fails pending requests
/// with `VELTIX_ERR_CLOSED`, drops the message callbacks not yet started,
/// runs the `on_connect`/`on_disconnect` calls already queued (so
/// `veltix_client_disconnect()` then `veltix_client_free()` always delivers
/// the `VELTIX_DISCONNECT_MANUAL` call), waits for the library's threads to
/// finish, and releases the client. It returns within the time the running
/// and those queued lifecycle callbacks take, whatever the backlog of
/// messages, plus (as in `veltix_client_disconnect()`) at most
/// `send_timeout_ms` to write frames already sent to a server that stopped
/// reading. No callback of this client starts after it returns. NULL is a
/// no-op.
///
/// Called from inside one of the client's callbacks it does not wait for
/// the calling thread (nor for other callbacks), drops every queued
/// callback, lifecycle ones included, and returns at once; the memory is
/// released when the last callback returns.
///
/// # Safety
/// `client` must be NULL or a live client, freed once; it must not be used
/// after this call.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_free(client: *mut veltix_client_t) {
    if client.is_null() {
        return;
    }
    with_fallback((), || {
        // SAFETY: the handle came from veltix_client_new and is freed once.
        let client = unsafe { Client::from_raw(client.cast::<ClientInner>()) };
        client.close();
        Ok(())
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
/// `client` must be a live client; `fn` must be callable from any thread
/// with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_on_recv(
    client: *mut veltix_client_t,
    r#fn: veltix_message_fn,
    user_data: *mut c_void,
    free_user_data: veltix_free_fn,
) -> veltix_status_t {
    with_status(|| {
        with_client(client, |client| {
            let data = CallbackData::new(user_data, free_user_data);
            client.on_recv(registration(r#fn, &data, message_handler));
            Ok(())
        })
    })
}

/// Sets `fn`, the callback run after each successful connection of
/// `client` (NULL clears it), with `user_data`, which `free_user_data`
/// (may be NULL) releases once `fn` can never run again. Replacing or
/// clearing it waits as `veltix_client_on_recv()` does.
///
/// # Safety
/// As `veltix_client_on_recv()`.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_on_connect(
    client: *mut veltix_client_t,
    r#fn: veltix_connect_fn,
    user_data: *mut c_void,
    free_user_data: veltix_free_fn,
) -> veltix_status_t {
    with_status(|| {
        with_client(client, |client| {
            let data = CallbackData::new(user_data, free_user_data);
            client.on_connect(registration(r#fn, &data, |callback, data| {
                Arc::new(move |client: &Client| {
                    // SAFETY: registered together with user_data.
                    unsafe { callback(data.get(), handle(client)) }
                }) as ConnectHandler
            }));
            Ok(())
        })
    })
}

/// Sets `fn`, the callback run at each disconnection step of `client`
/// (NULL clears it), with `user_data`, which `free_user_data` (may be
/// NULL) releases once `fn` can never run again. Replacing or clearing it
/// waits as `veltix_client_on_recv()` does.
///
/// # Safety
/// As `veltix_client_on_recv()`.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_on_disconnect(
    client: *mut veltix_client_t,
    r#fn: veltix_disconnect_fn,
    user_data: *mut c_void,
    free_user_data: veltix_free_fn,
) -> veltix_status_t {
    with_status(|| {
        with_client(client, |client| {
            let data = CallbackData::new(user_data, free_user_data);
            client.on_disconnect(registration(r#fn, &data, |callback, data| {
                Arc::new(move |client: &Client, state: &DisconnectState| {
                    record_error(state.error.as_ref());
                    let state = veltix_disconnect_state_t {
                        permanent: state.permanent,
                        attempt: state.attempt,
                        retry_max: state.retry_max,
                        reason: reason_code(state.reason),
                        next_delay_ms: state.next_delay.map_or(0, |delay| {
                            u32::try_from(delay.as_millis()).unwrap_or(u32::MAX)
                        }),
                    };
                    // SAFETY: registered together with user_data.
                    unsafe { callback(data.get(), handle(client), &state) }
                }) as DisconnectHandler
            }));
            Ok(())
        })
    })
}

/// Routes the messages of `type_code` that `client` receives to `fn`
/// instead of `on_recv`, with `user_data`, which `free_user_data` (may be
/// NULL) releases once the route can never run again (see
/// `veltix_free_fn`). Routes are kept across reconnections. Replies to `veltix_client_send_and_wait()` and
/// pings never reach routes.
///
/// Returns `VELTIX_ERR_NULL_POINTER` if `fn` is NULL,
/// `VELTIX_ERR_ALREADY_EXISTS` if the type is already routed.
///
/// # Safety
/// As `veltix_client_on_recv()`.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_route(
    client: *mut veltix_client_t,
    type_code: u16,
    r#fn: veltix_message_fn,
    user_data: *mut c_void,
    free_user_data: veltix_free_fn,
) -> veltix_status_t {
    with_status(|| {
        with_client(client, |client| {
            let callback = r#fn.ok_or(Error::NullPointer("fn"))?;
            let data = CallbackData::new(user_data, free_user_data);
            let routed = client.route(type_code, message_handler(callback, data.clone()));
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
/// `veltix_client_on_recv()` describes.
///
/// # Safety
/// `client` must be a live client.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_unroute(
    client: *mut veltix_client_t,
    type_code: u16,
) -> veltix_status_t {
    with_status(|| with_client(client, |client| client.unroute(type_code)))
}

/// Connects to the server and blocks until the handshake is acknowledged,
/// so messages can be sent as soon as it returns `VELTIX_OK`. Then
/// `on_connect` runs on a worker. With `config.retry > 0`, a failure is
/// followed by up to `retry` attempts `retry_delay_ms` apart (reported
/// through `on_disconnect`) before the call returns the last error. A
/// failed call returns after its whole `on_disconnect` sequence has run
/// (when called outside a callback; inside one, the calls are queued).
///
/// Returns `VELTIX_ERR_ALREADY_CONNECTED` when connected, connecting or
/// reconnecting; `VELTIX_ERR_CONNECT_FAILED`, `VELTIX_ERR_TIMEOUT`,
/// `VELTIX_ERR_HANDSHAKE_FAILED`, `VELTIX_ERR_VERSION_MISMATCH` or
/// `VELTIX_ERR_SERVER_FULL` on failure; `VELTIX_ERR_CLOSED` when cancelled
/// by `veltix_client_disconnect()`, `_stop_retry()` or `_free()`.
///
/// # Safety
/// `client` must be a live client.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_connect(client: *mut veltix_client_t) -> veltix_status_t {
    with_status(|| with_client(client, Client::connect))
}

/// Writes the current connection's statistics to `*out` (set
/// `out->struct_size = sizeof *out` first): bytes and frames in and out
/// since the handshake, the last round trip, the time since the last frame.
/// Any thread; never blocks.
///
/// Returns `VELTIX_ERR_NOT_CONNECTED` when there is no connection,
/// `VELTIX_ERR_INVALID_ARGUMENT` for a `struct_size` this library does not
/// know (nothing written).
///
/// # Safety
/// `client` must be a live client; `out` writable for `out->struct_size`
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_stats(
    client: *mut veltix_client_t,
    out: *mut veltix_stats_t,
) -> veltix_status_t {
    with_status(|| {
        let out = non_null_mut(out, "out")?;
        // SAFETY: the caller gives out->struct_size writable bytes.
        with_client(client, |client| unsafe {
            write_stats(client.stats()?, out)
        })
    })
}

/// Starts connecting on a library thread and returns at once: the host's
/// thread never waits for the network. The outcome arrives as callbacks,
/// through the same path as every other callback (a worker thread, or
/// `veltix_client_dispatch()` in dispatch mode): `on_connect` once the
/// handshake is acknowledged (sends work from then on), or the
/// `on_disconnect` sequence that `veltix_client_connect()` would report
/// (with `config.retry > 0`, one call per failed attempt, then the
/// permanent one). Inside those `on_disconnect` calls, `veltix_last_error()`
/// says why the attempt failed. `veltix_client_disconnect()`,
/// `_stop_retry()` and `_free()` cancel it as they cancel a blocking
/// connect.
///
/// Returns `VELTIX_OK` once the attempt has started,
/// `VELTIX_ERR_ALREADY_CONNECTED` when connected, connecting or
/// reconnecting, `VELTIX_ERR_IO` if no thread could be started.
///
/// # Safety
/// `client` must be a live client.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_connect_async(
    client: *mut veltix_client_t,
) -> veltix_status_t {
    with_status(|| with_client(client, Client::connect_async))
}

/// Closes the connection, or cancels a reconnection in progress, and runs
/// `on_disconnect` once with reason `VELTIX_DISCONNECT_MANUAL`, permanent.
/// Pending requests fail at once with `VELTIX_ERR_CLOSED`. Frames already
/// sent and still queued are written first: this waits for the writer
/// thread only while the server does not take them, at most
/// `send_timeout_ms`. It never waits for callbacks; safe inside them.
/// `VELTIX_ERR_NOT_CONNECTED` if there was nothing to close.
///
/// # Safety
/// `client` must be a live client.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_disconnect(client: *mut veltix_client_t) -> veltix_status_t {
    with_status(|| with_client(client, Client::disconnect))
}

/// Sends `len` bytes at `data` as a message of `type_code` (with a fresh
/// request id). `data` may be NULL when `len` is 0. The bytes are not
/// referenced after the call returns. Frames from concurrent callers are
/// never interleaved, and each caller's frames keep their order.
///
/// A lone send is written to the socket by the calling thread before the
/// call returns (one `sendmsg`, no copy). A send that comes within 10 us of
/// the previous one, or while a write is in progress, is copied into the
/// connection's queue (up to 1 MiB; frames over 64 KiB never are) and
/// written by the connection's writer thread, together with whatever else
/// queued meanwhile: a thread sending as fast as it can makes one write per
/// batch, not one per frame. The writer is woken when the first frame is
/// queued and writes as soon as it runs, so the last frame of a burst
/// leaves after one thread wake-up, with no timer. A full queue makes the
/// caller wait for the socket, at most `send_timeout_ms`.
///
/// Returns `VELTIX_ERR_MESSAGE_TOO_LARGE` (nothing sent) when 15 + `len`
/// exceeds `max_message_size`, `VELTIX_ERR_NOT_CONNECTED`, or
/// `VELTIX_ERR_IO` if the connection failed (it is then closed and reported).
///
/// # Safety
/// `client` must be a live client; `data` must hold `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_send(
    client: *mut veltix_client_t,
    type_code: u16,
    data: *const u8,
    len: usize,
) -> veltix_status_t {
    with_status(|| {
        with_client(client, |client| {
            let payload = payload_slice(data, len, client.max_message_size())?;
            client.send(type_code, payload)
        })
    })
}

/// Sends the NUL-terminated `text` (without its NUL) as a message of
/// `type_code`. As `veltix_client_send()`.
///
/// # Safety
/// `client` must be a live client; `text` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_send_text(
    client: *mut veltix_client_t,
    type_code: u16,
    text: *const std::ffi::c_char,
) -> veltix_status_t {
    with_status(|| {
        let text = CStr::from_ptr(non_null(text, "text")?);
        with_client(client, |client| client.send(type_code, text.to_bytes()))
    })
}

/// Replies to `to` (e.g. a server's `send_and_wait` request received in a
/// callback): sends a message of `type_code` carrying `to`'s request id.
/// As `veltix_client_send()`.
///
/// # Safety
/// `client` must be a live client, `to` a valid message, `data` `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_reply(
    client: *mut veltix_client_t,
    to: *const veltix_message_t,
    type_code: u16,
    data: *const u8,
    len: usize,
) -> veltix_status_t {
    with_status(|| {
        let to = as_message(to)?;
        with_client(client, |client| {
            let payload = payload_slice(data, len, client.max_message_size())?;
            client.reply(to, type_code, payload)
        })
    })
}

/// Sends a request (a message of `type_code`) and blocks until the
/// message carrying its request id arrives (whatever its type), then writes it to `*out_response`; you own
/// it: release it with `veltix_message_free()`. Replies may arrive in any
/// order; each is matched by id as it is read, never delayed by
/// callbacks. May be called from callbacks and from many threads at once.
///
/// Completes exactly once: `VELTIX_OK` with the reply, `VELTIX_ERR_TIMEOUT`
/// after `timeout_ms`, or `VELTIX_ERR_CLOSED` as soon as the connection
/// drops or the client is disconnected or freed. Also fails as
/// `veltix_client_send()` does, and with `VELTIX_ERR_IDS_EXHAUSTED`.
/// `*out_response` is written only on success.
///
/// While the reader thread is idle, the calling thread reads the socket
/// itself until its reply comes, doing the reader thread's work for every
/// other frame, in order (PINGs answered, messages queued for their
/// callbacks, which never run on it): the reply then wakes the caller
/// alone. Otherwise it waits for the reader thread, spinning first as
/// `config.reply_spin_us` says.
///
/// # Safety
/// `client` must be a live client; `data` `len` bytes; `out_response`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_send_and_wait(
    client: *mut veltix_client_t,
    type_code: u16,
    data: *const u8,
    len: usize,
    timeout_ms: u32,
    out_response: *mut *mut veltix_message_t,
) -> veltix_status_t {
    with_status(|| {
        let out_response = non_null_mut(out_response, "out_response")?;
        let timeout = Duration::from_millis(timeout_ms.into());
        let response = with_client(client, |client| {
            let payload = payload_slice(data, len, client.max_message_size())?;
            client.send_and_wait(type_code, payload, timeout)
        })?;
        *out_response = into_handle(response);
        Ok(())
    })
}

/// Pings the server (PING, answered by PONG) and writes the round trip in
/// milliseconds to `*out_rtt_ms` if it is not NULL. Completes as
/// `veltix_client_send_and_wait()` does, waiting at most `timeout_ms`.
///
/// # Safety
/// `client` must be a live client; `out_rtt_ms` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_ping(
    client: *mut veltix_client_t,
    timeout_ms: u32,
    out_rtt_ms: *mut f64,
) -> veltix_status_t {
    with_status(|| {
        let timeout = Duration::from_millis(timeout_ms.into());
        let rtt = with_client(client, |client| client.ping(timeout))?;
        if let Some(out) = out_rtt_ms.as_mut() {
            *out = rtt;
        }
        Ok(())
    })
}

/// Starts reconnecting in the background: up to `max_attempts` attempts
/// (`config.retry` when negative), `retry_delay_ms` apart, reported through
/// `on_disconnect`; `on_connect` on success. Returns at once.
///
/// `VELTIX_ERR_ALREADY_CONNECTED` if connected; `VELTIX_OK` without a new
/// loop if a connect or retry is already running;
/// `VELTIX_ERR_INVALID_ARGUMENT` if the attempt count is 0.
///
/// # Safety
/// `client` must be a live client.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_retry(
    client: *mut veltix_client_t,
    max_attempts: i32,
) -> veltix_status_t {
    with_status(|| {
        let max = u32::try_from(max_attempts).ok();
        with_client(client, |client| client.retry(max))
    })
}

/// Cancels a running reconnection loop at once, even during its delay; the
/// loop reports a final permanent `on_disconnect`. No effect (and
/// `VELTIX_OK`) when no loop runs.
///
/// # Safety
/// `client` must be a live client.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_stop_retry(client: *mut veltix_client_t) -> veltix_status_t {
    with_status(|| {
        with_client(client, |client| {
            client.stop_retry();
            Ok(())
        })
    })
}

/// Blocks until the client is closed: neither connected nor reconnecting
/// (after `veltix_client_disconnect()`, a lost connection without retry, or
/// a reconnection loop that gave up), and the `on_disconnect` calls that
/// reported it have run (outside callbacks: inside one, it does not wait
/// for them, which could mean waiting for itself). `timeout_ms < 0` waits forever;
/// `VELTIX_ERR_TIMEOUT` if still open after `timeout_ms`. Returns at once
/// for a client that never connected.
///
/// # Safety
/// `client` must be a live client.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_wait_until_closed(
    client: *mut veltix_client_t,
    timeout_ms: i32,
) -> veltix_status_t {
    with_status(|| {
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        with_client(client, |client| client.wait_until_closed(timeout))
    })
}

/// Whether the client is connected (handshake complete). False for NULL.
///
/// # Safety
/// `client` must be NULL or a live client.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_is_connected(client: *const veltix_client_t) -> bool {
    with_fallback(false, || {
        with_client(client, |client| Ok(client.is_connected()))
    })
}

/// Dispatch mode (a client created with `config.max_workers = 0`: no
/// callback threads): runs the client's due callbacks on the calling
/// thread. Waits up to `timeout_ms` (0: not at all; negative: until one is
/// due) for a callback to be due, then runs it and every callback due by
/// then, in order, and writes how many ran to `*out_count` if it is not
/// NULL. Network I/O never waits for it: the reader thread answers PINGs
/// and completes `veltix_client_send_and_wait()` while the host is busy;
/// messages wait, within `max_queued_messages`/`max_queued_bytes`
/// (back-pressure), until the host dispatches. While it waits with nothing
/// due and the reader thread idle, the calling thread reads the socket
/// itself (doing the reader thread's work, in order) until a callback is
/// due, so the reply to a `veltix_client_request()` wakes it directly
/// rather than through the reader thread and the event handle.
///
/// Inside dispatched callbacks the same calls are allowed as inside worker
/// callbacks (send, reply, `send_and_wait`, disconnect, free). In dispatch
/// mode no call runs callbacks or waits for them, except
/// `veltix_client_free()`: it runs the `on_connect`/`on_disconnect` calls
/// still due on the calling thread and drops the messages not dispatched.
/// So a failed `veltix_client_connect()` returns with its `on_disconnect`
/// calls due, and `veltix_client_wait_until_closed()` does not wait for
/// them.
///
/// Returns `VELTIX_ERR_INVALID_ARGUMENT` if the client has worker threads,
/// or when called from inside a dispatched callback.
///
/// # Safety
/// `client` must be a live client; `out_count` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_dispatch(
    client: *mut veltix_client_t,
    timeout_ms: i32,
    out_count: *mut usize,
) -> veltix_status_t {
    with_status(|| {
        dispatch_with(timeout_ms, out_count, |timeout| {
            with_client(client, |client| client.dispatch(timeout))
        })
    })
}

/// Dispatch mode: writes to `*out_fd` a handle that is readable while
/// callbacks are due, for the host's poll/epoll/select, libuv or GUI loop:
/// when it is readable, call `veltix_client_dispatch(client, 0, NULL)`. It
/// may be readable with nothing due (dispatch then returns 0).
///
/// What it is, by platform:
/// - Linux: an eventfd; Apple's systems and the BSDs: one end of a socket
///   pair. Wait for it with poll, epoll, kqueue, select or `uv_poll`.
/// - Windows: a loopback TCP `SOCKET`. Wait for it with `WSAPoll`,
///   `select`, `WSAEventSelect` or `uv_poll` (not with
///   `WaitForSingleObject`: it is not an event object).
///
/// Only wait for it: do not read, write, close or change its mode. It
/// belongs to the client and is valid until `veltix_client_free()`.
///
/// Returns `VELTIX_ERR_INVALID_ARGUMENT` if the client has worker threads.
///
/// # Safety
/// `client` must be a live client; `out_fd` writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_event_fd(
    client: *mut veltix_client_t,
    out_fd: *mut super::veltix_socket_t,
) -> veltix_status_t {
    with_status(|| {
        let out_fd = non_null_mut(out_fd, "out_fd")?;
        *out_fd = with_client(client, |client| client.event_handle())?;
        Ok(())
    })
}

/// Receives the outcome of `veltix_client_request()`, exactly once, as a
/// callback: on a worker thread, or inside `veltix_client_dispatch()` in
/// dispatch mode. `status` is `VELTIX_OK` with `reply` the reply, or
/// `VELTIX_ERR_TIMEOUT` or `VELTIX_ERR_CLOSED` (the connection ended, or
/// the client was disconnected or freed) with `reply` NULL. `reply` and
/// `error` (the detail, "" on success: this thread's
/// `veltix_last_error()` does not have it) are borrowed for the call.
/// Calls allowed as in `veltix_message_fn`.
/// A C++ exception must not escape it: the library cannot catch foreign
/// exceptions, so one that unwinds into it aborts the process.
#[allow(non_camel_case_types)]
pub type veltix_reply_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        client: *mut veltix_client_t,
        status: veltix_status_t,
        reply: *const veltix_message_t,
        error: *const std::ffi::c_char,
    ),
>;

/// Sends a request (a message of `type_code`) and returns without waiting
/// for the reply: `on_reply` receives the outcome later, exactly once (see `veltix_reply_fn`): the
/// reply, `VELTIX_ERR_TIMEOUT` after `timeout_ms`, or `VELTIX_ERR_CLOSED`.
/// The one exception: a `veltix_client_free()` from inside a callback drops
/// the outcomes not yet delivered. For a host's own thread, use it in
/// dispatch mode: the outcome arrives inside `veltix_client_dispatch()`.
///
/// Returns at once with the error, and `on_reply` is never called, when the
/// request cannot be sent: `VELTIX_ERR_NULL_POINTER` (NULL `on_reply`),
/// `VELTIX_ERR_MESSAGE_TOO_LARGE`, `VELTIX_ERR_NOT_CONNECTED`,
/// `VELTIX_ERR_IDS_EXHAUSTED`, or a failed write.
///
/// # Safety
/// `client` must be a live client; `data` `len` bytes; `on_reply` callable
/// from any thread with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_request(
    client: *mut veltix_client_t,
    type_code: u16,
    data: *const u8,
    len: usize,
    timeout_ms: u32,
    on_reply: veltix_reply_fn,
    user_data: *mut c_void,
) -> veltix_status_t {
    with_status(|| {
        let on_reply = on_reply.ok_or(Error::NullPointer("on_reply"))?;
        let user_data = UserData::new(user_data);
        with_client(client, |client| {
            let payload = payload_slice(data, len, client.max_message_size())?;
            let timeout = Duration::from_millis(timeout_ms.into());
            client.request(
                type_code,
                payload,
                timeout,
                Box::new(move |client, outcome| {
                    with_outcome(&outcome, |status, reply, error| {
                        // SAFETY: registered together with user_data.
                        unsafe { on_reply(user_data.get(), handle(client), status, reply, error) }
                    })
                }),
            )
        })
    })
}
