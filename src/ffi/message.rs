//! `veltix_message_t`: read access to received messages.

use super::boundary::{non_null, with_fallback};
use crate::protocol::Message;

/// A received message (opaque). A message passed to a callback is borrowed
/// for the duration of the call only: clone it with
/// `veltix_message_clone()` to keep it. A message returned by
/// `veltix_client_send_and_wait()` or `veltix_message_clone()` is yours and
/// is released with `veltix_message_free()`. Reading a message is safe from
/// any thread.
#[allow(non_camel_case_types)]
pub struct veltix_message_t {
    _private: [u8; 0],
}

/// Casts the C handle to the message it stands for.
pub(crate) fn as_message<'a>(message: *const veltix_message_t) -> crate::Result<&'a Message> {
    // SAFETY: every veltix_message_t pointer handed out is a Message.
    unsafe { non_null(message.cast::<Message>(), "message") }
}

/// The C handle of a message.
pub(crate) fn message_handle(message: &Message) -> *const veltix_message_t {
    (message as *const Message).cast()
}

/// The message's type code (0 if `message` is NULL).
///
/// # Safety
/// `message` must be NULL or a valid message.
#[no_mangle]
pub unsafe extern "C" fn veltix_message_type(message: *const veltix_message_t) -> u16 {
    with_fallback(0, || Ok(as_message(message)?.type_code()))
}

/// The message's request id (0 if `message` is NULL). A reply must carry
/// it: use `veltix_client_reply()`.
///
/// # Safety
/// `message` must be NULL or a valid message.
#[no_mangle]
pub unsafe extern "C" fn veltix_message_request_id(message: *const veltix_message_t) -> u16 {
    with_fallback(0, || Ok(as_message(message)?.request_id()))
}

/// The payload bytes, valid as long as the message. They are followed by a
/// NUL byte that is not counted in the length, so a text payload can be
/// used as a C string. Writes the length to `len_out` if it is not NULL.
/// Returns NULL (and writes nothing) if `message` is NULL.
///
/// # Safety
/// `message` must be NULL or a valid message; `len_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn veltix_message_content(
    message: *const veltix_message_t,
    len_out: *mut usize,
) -> *const u8 {
    with_fallback(std::ptr::null(), || {
        let message = as_message(message)?;
        if let Some(len_out) = len_out.as_mut() {
            *len_out = message.payload().len();
        }
        Ok(message.payload_with_nul().as_ptr())
    })
}

/// A copy of `message` that you own (free it with `veltix_message_free()`),
/// e.g. to keep a message received in a callback. NULL if `message` is NULL.
///
/// # Safety
/// `message` must be NULL or a valid message.
#[no_mangle]
pub unsafe extern "C" fn veltix_message_clone(
    message: *const veltix_message_t,
) -> *mut veltix_message_t {
    with_fallback(std::ptr::null_mut(), || {
        let copy = Box::new(as_message(message)?.clone());
        Ok(Box::into_raw(copy).cast())
    })
}

/// Releases a message you own (from `veltix_client_send_and_wait()` or
/// `veltix_message_clone()`). NULL is a no-op. Never free a message passed
/// to a callback.
///
/// # Safety
/// `message` must be NULL or a message you own, freed once.
#[no_mangle]
pub unsafe extern "C" fn veltix_message_free(message: *mut veltix_message_t) {
    if message.is_null() {
        return;
    }
    with_fallback((), || {
        drop(Box::from_raw(message.cast::<Message>()));
        Ok(())
    })
}

/// Hands an owned message to C.
pub(crate) fn into_handle(message: Message) -> *mut veltix_message_t {
    Box::into_raw(Box::new(message)).cast()
}
