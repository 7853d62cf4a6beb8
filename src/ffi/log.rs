//! `veltix_set_logger`: where the library's log lines go.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::boundary::{registration, veltix_free_fn, with_fallback, CallbackData};
use crate::log::{set_logger, LogLevel};

/// Severity of a log line (a fixed-width integer, not a C enum, so any value
/// received from C is checked).
#[allow(non_camel_case_types)]
pub type veltix_log_level_t = i32;
/// Something failed.
pub const VELTIX_LOG_ERROR: veltix_log_level_t = 0;
/// Something was dropped, refused or retried.
pub const VELTIX_LOG_WARN: veltix_log_level_t = 1;
/// Connection lifecycle.
pub const VELTIX_LOG_INFO: veltix_log_level_t = 2;
/// Details for debugging.
pub const VELTIX_LOG_DEBUG: veltix_log_level_t = 3;

/// Receives a log line. `message` is NUL-terminated and borrowed for the
/// call only. Called on whichever thread logs (the caller's, a reader,
/// worker or retry thread), possibly from several threads at once, with no
/// library lock held. It may call any library function, but should return
/// quickly: a reader thread waits for it.
/// A C++ exception must not escape it: the library cannot catch foreign
/// exceptions, so one that unwinds into it aborts the process. Catch
/// everything inside (a C++ wrapper does it in its trampoline).
#[allow(non_camel_case_types)]
pub type veltix_log_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, level: veltix_log_level_t, message: *const c_char),
>;

/// Sends the library's log lines up to `max_level` to `fn` (process-wide).
/// A NULL `fn` restores the default: silent, unless the environment variable
/// `VELTIX_LOG` is `error`, `warn`, `info` or `debug`, which prints to
/// stderr. An out-of-range `max_level` is clamped to the nearest level.
/// Safe to call from any thread at any time.
///
/// `free_user_data` (nullable) is called exactly once with `user_data`
/// when this logger can never run again: after a later `veltix_set_logger`
/// replaced it and its last running call returned (on the thread that
/// replaced it, or on the logging thread that finished last). It is never
/// called when `fn` is NULL. A logger still installed when the process
/// exits is not released.
///
/// # Safety
/// `fn` must be safe to call from any thread with `user_data`, and
/// `free_user_data` with `user_data` from any thread.
#[no_mangle]
pub unsafe extern "C" fn veltix_set_logger(
    r#fn: veltix_log_fn,
    user_data: *mut c_void,
    max_level: veltix_log_level_t,
    free_user_data: veltix_free_fn,
) {
    with_fallback((), || {
        let max_level = LogLevel::from_i32(max_level.clamp(VELTIX_LOG_ERROR, VELTIX_LOG_DEBUG))
            .unwrap_or(LogLevel::Debug);
        let data = CallbackData::new(user_data, free_user_data);
        let sink = registration(r#fn, &data, |callback, data| {
            Arc::new(move |level: LogLevel, message: &str| {
                let text = CString::new(message.replace('\0', "?")).unwrap_or_default();
                // SAFETY: the caller registered a callback valid on any thread.
                unsafe { callback(data.get(), level as veltix_log_level_t, text.as_ptr()) }
            }) as crate::log::LogSink
        });
        set_logger(sink, max_level);
        Ok(())
    })
}
