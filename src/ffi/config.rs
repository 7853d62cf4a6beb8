//! `veltix_client_config_t` and its conversion to [`ClientConfig`].

use std::ffi::c_char;
use std::time::Duration;

use super::boundary::{non_null_mut, utf8, with_status};
use super::extensible::{self, field_ends, Extensible};
use super::liveness::veltix_liveness_t;
use super::status::veltix_status_t;
use crate::client::ClientConfig;
use crate::error::Result;
use crate::liveness::optional_ms;

/// How a client connects. Fill it with
/// `veltix_client_config_init(&config, sizeof config)`, then change the
/// fields you need. `veltix_client_new()` copies everything, so the struct
/// (and the `server_addr` string) may be released after it.
///
/// Later versions of the library only append fields; `struct_size` tells
/// the library which fields a program has, so a program built against
/// this header keeps working with a newer library (the newer fields take
/// their defaults).
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct veltix_client_config_t {
    /// `sizeof(veltix_client_config_t)` as the program was compiled; set by
    /// `veltix_client_config_init()`. Never change it.
    pub struct_size: u32,
    /// Host name or IPv4/IPv6 literal of the server, NUL-terminated UTF-8;
    /// copied. NULL means the default, "127.0.0.1".
    pub server_addr: *const c_char,
    /// Server port (1-65535). Default 8080.
    pub port: u16,
    /// Bytes asked of the socket per receive call (1 to 64 MiB). Default 8192.
    pub buffer_size: u32,
    /// Largest frame, 15-byte header plus payload, sent or accepted (at
    /// least 15). Default 10 MiB, as the reference. Larger sends fail with
    /// `VELTIX_ERR_MESSAGE_TOO_LARGE`; larger incoming frames are dropped
    /// (logged) and the connection goes on.
    pub max_message_size: u32,
    /// Bound on the TCP connect plus the whole handshake, in milliseconds
    /// (at least 1). Default 5000.
    pub handshake_timeout_ms: u32,
    /// Callback threads (1 to 256). Default 4. With 1, callbacks run one at
    /// a time in arrival order. 0 is dispatch mode: no callback threads;
    /// callbacks run on your thread inside `veltix_client_dispatch()`.
    pub max_workers: u32,
    /// Reconnection attempts, on a failed `veltix_client_connect()` and on a
    /// lost connection. Default 0 = no reconnection.
    pub retry: u32,
    /// Pause between reconnection attempts in milliseconds. Default 1000.
    pub retry_delay_ms: u32,
    /// Bound of one blocking write, in milliseconds (at least 1), for a
    /// server that stopped reading: a send that cannot finish writing its
    /// frame within it fails with `VELTIX_ERR_TIMEOUT` and, since a
    /// half-written frame cannot be taken back, closes the connection
    /// (reported through `on_disconnect`, reason ERROR). The timeouts of
    /// `veltix_client_send_and_wait()` and `veltix_client_ping()` cover
    /// their write too. It also bounds each write of the connection's
    /// writer thread (which then closes the connection the same way), and
    /// how long `veltix_client_disconnect()` and `veltix_client_free()`
    /// wait to write frames already sent. Default 10000.
    pub send_timeout_ms: u32,
    /// Back-pressure: received messages waiting for (or running in)
    /// callbacks, past which the reader thread stops reading the socket until
    /// they drain to half, so TCP slows the server down. Default 4096.
    /// While the reader waits, PINGs and `send_and_wait` replies behind the
    /// unread bytes wait too.
    pub max_queued_messages: u32,
    /// Back-pressure: the payload bytes of those messages, as
    /// `max_queued_messages` (at least 1). Default 16 MiB.
    pub max_queued_bytes: u32,
    /// Heartbeats and TCP keepalive (see `veltix_liveness_t`); off by
    /// default.
    pub liveness: veltix_liveness_t,
    /// Reconnection backoff: 0 (the default) keeps the reference's fixed
    /// `retry_delay_ms`; otherwise the delay doubles after each failed
    /// attempt, from `retry_delay_ms` up to this many milliseconds (at
    /// least `retry_delay_ms`).
    pub retry_delay_max_ms: u32,
    /// Reconnection jitter ("full jitter"): each delay is drawn uniformly
    /// from 0 to its value, so many clients cut off at once do not all
    /// come back in the same millisecond. Default false.
    pub retry_jitter: bool,
    /// Keeps the fields after it out of the tail padding of the struct as
    /// it was before them (an older program's `sizeof`). Never read.
    pub reserved0: [u8; 7],
    /// How long a thread blocked in `veltix_client_send_and_wait()` or
    /// `veltix_client_ping()` spins for its reply before it sleeps, in
    /// microseconds, when it cannot read the reply itself. Such a thread
    /// usually reads its reply from the socket itself (it then never
    /// spins); it cannot while the reader thread is in a read (a server
    /// streaming messages at the client) or the callbacks lag behind
    /// `max_queued_messages`. A spin saves the waiter's wake-up, which
    /// costs tens of microseconds on a virtual machine's idle CPU, but
    /// takes a core, so a waiter spins only while a core is idle: on Linux
    /// it does not spin while the system runs as many threads as it has
    /// cores. Elsewhere this setting alone decides. 0 never spins, for
    /// programs that keep every core busy off Linux; raise it (up to
    /// 1000) when round trips to a remote server run on an otherwise idle
    /// machine. Default 50.
    pub reply_spin_us: u32,
}

/// Fills `config` with the defaults and sets `config->struct_size`; pass
/// `sizeof *config`. Call it before changing any field.
///
/// Returns `VELTIX_ERR_NULL_POINTER` for a NULL `config`, and
/// `VELTIX_ERR_INVALID_ARGUMENT` (writing nothing) for a `struct_size`
/// under 4 or larger than this library's struct (a header newer than the
/// library).
///
/// # Safety
/// A non-NULL `config` must be writable for `struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn veltix_client_config_init(
    config: *mut veltix_client_config_t,
    struct_size: usize,
) -> veltix_status_t {
    with_status(|| {
        let config = non_null_mut(config, "config")?;
        // SAFETY: the caller gives struct_size writable bytes.
        unsafe { extensible::init(config, struct_size) }
    })
}

// SAFETY: repr(C), struct_size: u32 first, plain data, every field listed.
unsafe impl Extensible for veltix_client_config_t {
    const NAME: &'static str = "veltix_client_config_t";

    fn defaults() -> Self {
        let defaults = ClientConfig::default();
        veltix_client_config_t {
            struct_size: std::mem::size_of::<Self>() as u32,
            server_addr: c"127.0.0.1".as_ptr(),
            port: defaults.port,
            buffer_size: defaults.buffer_size,
            max_message_size: defaults.max_message_size,
            handshake_timeout_ms: millis(defaults.handshake_timeout),
            max_workers: defaults.max_workers,
            retry: defaults.retry,
            retry_delay_ms: millis(defaults.retry_delay),
            send_timeout_ms: millis(defaults.send_timeout),
            max_queued_messages: defaults.max_queued_messages,
            max_queued_bytes: defaults.max_queued_bytes,
            liveness: veltix_liveness_t::default(),
            retry_delay_max_ms: 0,
            retry_jitter: false,
            reserved0: [0; 7],
            reply_spin_us: micros(defaults.reply_spin),
        }
    }

    fn field_ends() -> Vec<usize> {
        field_ends!(
            veltix_client_config_t,
            Self::defaults(),
            [
                struct_size,
                server_addr,
                port,
                buffer_size,
                max_message_size,
                handshake_timeout_ms,
                max_workers,
                retry,
                retry_delay_ms,
                send_timeout_ms,
                max_queued_messages,
                max_queued_bytes,
                liveness,
                retry_delay_max_ms,
                retry_jitter,
                reserved0,
                reply_spin_us,
            ]
        )
    }
}

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

pub(super) fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

impl veltix_client_config_t {
    /// The Rust configuration, validated.
    ///
    /// # Safety
    /// A non-NULL `server_addr` must be a NUL-terminated string.
    pub(crate) unsafe fn to_config(&self) -> Result<ClientConfig> {
        let server_addr = if self.server_addr.is_null() {
            ClientConfig::default().server_addr
        } else {
            utf8(self.server_addr, "config.server_addr")?.to_owned()
        };
        let config = ClientConfig {
            server_addr,
            port: self.port,
            buffer_size: self.buffer_size,
            max_message_size: self.max_message_size,
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms.into()),
            max_workers: self.max_workers,
            retry: self.retry,
            retry_delay: Duration::from_millis(self.retry_delay_ms.into()),
            send_timeout: Duration::from_millis(self.send_timeout_ms.into()),
            max_queued_messages: self.max_queued_messages,
            max_queued_bytes: self.max_queued_bytes,
            liveness: self.liveness.to_liveness(),
            retry_delay_max: optional_ms(self.retry_delay_max_ms),
            retry_jitter: self.retry_jitter,
            reply_spin: Duration::from_micros(self.reply_spin_us.into()),
        };
        config.validate()?;
        Ok(config)
    }
}
