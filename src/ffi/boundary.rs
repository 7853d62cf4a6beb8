//! The panic boundary and the argument checks every exported function uses.

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use super::status::{status_of, veltix_status_t, VELTIX_OK};
use crate::error::{Error, Result};
use crate::protocol::frame::check_frame_size;
use crate::workers::panic_message;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Runs the body of a status-returning function: maps its error to a status
/// code and records the detail for `veltix_last_error()`; a panic becomes
/// `VELTIX_ERR_PANIC` instead of unwinding into C.
pub(crate) fn with_status(body: impl FnOnce() -> Result<()>) -> veltix_status_t {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => VELTIX_OK,
        Ok(Err(error)) => fail(error),
        Err(panic) => fail(Error::Panic(panic_message(&*panic))),
    }
}

/// Runs the body of a function returning a plain value; a panic (or error)
/// gives `fallback`, recorded for `veltix_last_error()`.
pub(crate) fn with_fallback<T>(fallback: T, body: impl FnOnce() -> Result<T>) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => {
            fail(error);
            fallback
        }
        Err(panic) => {
            fail(Error::Panic(panic_message(&*panic)));
            fallback
        }
    }
}

fn fail(error: Error) -> veltix_status_t {
    record_error(Some(&error));
    status_of(&error)
}

/// Makes `error` (or "" for `None`) this thread's `veltix_last_error()`;
/// callbacks use it to hand their cause to the code they call.
pub(crate) fn record_error(error: Option<&Error>) {
    let text = error.map_or_else(CString::default, |error| {
        CString::new(error.to_string().replace('\0', "?")).unwrap_or_default()
    });
    LAST_ERROR.with(|last| *last.borrow_mut() = text);
}

/// The last error recorded on this thread (valid until the next failure on
/// this thread).
pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// The body of `veltix_*_dispatch`: a negative `timeout_ms` waits for
/// ever; how many callbacks ran goes to `out_count` if it is not NULL.
///
/// # Safety
/// `out_count` must be NULL or writable.
pub(crate) unsafe fn dispatch_with(
    timeout_ms: i32,
    out_count: *mut usize,
    dispatch: impl FnOnce(Option<std::time::Duration>) -> Result<usize>,
) -> Result<()> {
    let timeout = u64::try_from(timeout_ms)
        .ok()
        .map(std::time::Duration::from_millis);
    let ran = dispatch(timeout)?;
    // SAFETY: NULL or writable, as the caller promises.
    if let Some(out) = unsafe { out_count.as_mut() } {
        *out = ran;
    }
    Ok(())
}

/// `ptr` as a reference, or `NullPointer` naming the argument.
///
/// # Safety
/// A non-NULL `ptr` must point to a valid `T` for `'a`.
pub(crate) unsafe fn non_null<'a, T>(ptr: *const T, name: &'static str) -> Result<&'a T> {
    ptr.as_ref().ok_or(Error::NullPointer(name))
}

/// `ptr` as a mutable reference, or `NullPointer` naming the argument.
///
/// # Safety
/// A non-NULL `ptr` must point to a valid, writable `T` for `'a`.
pub(crate) unsafe fn non_null_mut<'a, T>(ptr: *mut T, name: &'static str) -> Result<&'a mut T> {
    ptr.as_mut().ok_or(Error::NullPointer(name))
}

/// The `len`-byte payload at `data`. The length is checked first: a frame of
/// 15 + `len` bytes over `max_message_size` is `MessageTooLarge` whatever
/// the pointer, so a wrapped-around length never reaches memory. NULL is
/// allowed only when `len` is 0.
///
/// # Safety
/// A non-NULL `data` must point to `len` readable bytes.
pub(crate) unsafe fn payload_slice<'a>(
    data: *const u8,
    len: usize,
    max_message_size: u32,
) -> Result<&'a [u8]> {
    check_frame_size(len, max_message_size)?;
    if data.is_null() {
        return match len {
            0 => Ok(&[]),
            _ => Err(Error::NullPointer("data (with len > 0)")),
        };
    }
    Ok(std::slice::from_raw_parts(data, len))
}

/// The NUL-terminated UTF-8 string at `ptr`, or an error naming it.
///
/// # Safety
/// A non-NULL `ptr` must be a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn utf8<'a>(ptr: *const c_char, name: &'static str) -> Result<&'a str> {
    let text = std::ffi::CStr::from_ptr(non_null(ptr, name)?);
    text.to_str().map_err(|_| {
        Error::InvalidArgument(format!(
            "{name} is not valid UTF-8. Fix: pass UTF-8 text (ASCII is always fine)"
        ))
    })
}

/// The `user_data` pointer given with a callback. The library only passes it
/// back to the callback; the caller promises it may be used from the
/// library's threads.
#[derive(Clone, Copy)]
pub(crate) struct UserData(*mut c_void);

// SAFETY: the pointer is never dereferenced by the library; the header
// documents that callbacks (and so their user_data) run on library threads.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    pub fn new(ptr: *mut c_void) -> Self {
        UserData(ptr)
    }

    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub fn get(self) -> *mut c_void {
        self.0
    }
}

/// Calls `deliver` with a request's outcome as C sees it: the status, the
/// reply (NULL unless `VELTIX_OK`), and the error's detail ("" on success),
/// all borrowed for the call.
pub(crate) fn with_outcome(
    outcome: &Result<crate::protocol::Message>,
    deliver: impl FnOnce(veltix_status_t, *const super::message::veltix_message_t, *const c_char),
) {
    match outcome {
        Ok(reply) => deliver(
            VELTIX_OK,
            super::message::message_handle(reply),
            c"".as_ptr(),
        ),
        Err(error) => {
            let text = CString::new(error.to_string().replace('\0', "?")).unwrap_or_default();
            deliver(status_of(error), std::ptr::null(), text.as_ptr());
        }
    }
}

/// Releases a callback's `user_data`, given with it when the callback is
/// registered (`free_user_data`, NULL for none). It is called exactly once,
/// with that `user_data`, when the callback can never run again: when it is
/// replaced, cleared or unrouted, or when the handle is freed. Replacing or
/// removing a callback outside a callback waits for its running calls and
/// calls `free_user_data` on the calling thread before returning; inside a
/// callback it does not wait, and `free_user_data` runs on the thread that
/// finishes the old callback's last call. It is not called when the
/// registration fails, nor for a registration with a NULL `fn`.
/// It must not call into the library with the handle being freed.
#[allow(non_camel_case_types)]
pub type veltix_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// A registered callback's `user_data` and the function that releases it
/// (`free_user_data`): called once, with `user_data`, on whichever thread
/// drops the last reference to the registration (the one replacing or
/// removing it, a worker finishing its last call, or the one freeing the
/// handle), unless the registration did not happen ([`CallbackData::keep`]).
pub(crate) struct CallbackData {
    user_data: UserData,
    free: Mutex<veltix_free_fn>,
}

impl CallbackData {
    pub fn new(user_data: *mut c_void, free: veltix_free_fn) -> Arc<Self> {
        Arc::new(CallbackData {
            user_data: UserData::new(user_data),
            free: Mutex::new(free),
        })
    }

    /// The `user_data` pointer.
    pub fn get(&self) -> *mut c_void {
        self.user_data.get()
    }

    /// The registration failed or registered nothing: the caller keeps
    /// `user_data`, and `free_user_data` is never called.
    pub fn keep(&self) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// The handler `make` builds from the C callback `callback`, if it is not
/// NULL; for NULL (clearing a callback) nothing is registered, so `data`'s
/// `free_user_data` is never called.
pub(crate) fn registration<F, H>(
    callback: Option<F>,
    data: &Arc<CallbackData>,
    make: impl FnOnce(F, Arc<CallbackData>) -> H,
) -> Option<H> {
    match callback {
        Some(callback) => Some(make(callback, data.clone())),
        None => {
            data.keep();
            None
        }
    }
}

impl Drop for CallbackData {
    fn drop(&mut self) {
        let free = self.free.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(free) = free {
            // SAFETY: the caller registered `free` to release this pointer;
            // this is the one call.
            unsafe { free(self.user_data.get()) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::status::{VELTIX_ERR_NOT_FOUND, VELTIX_ERR_PANIC};
    use std::ffi::CStr;

    fn last() -> String {
        // SAFETY: last_error() is always a valid C string.
        unsafe { CStr::from_ptr(last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status = with_status(|| panic!("deliberate"));
        assert_eq!(status, VELTIX_ERR_PANIC);
        assert!(last().contains("deliberate"), "{}", last());
        assert_eq!(with_fallback(7, || panic!("again")), 7);
        assert_eq!(with_fallback(7, || Ok(3)), 3);
    }

    #[test]
    fn errors_map_to_their_status_and_detail() {
        let status = with_status(|| Err(Error::NotFound("no route for 9".into())));
        assert_eq!(status, VELTIX_ERR_NOT_FOUND);
        assert_eq!(last(), "no route for 9");
        assert_eq!(with_status(|| Ok(())), VELTIX_OK);
        assert_eq!(last(), "no route for 9", "success does not clear it");
    }

    #[test]
    fn payload_slices_allow_null_only_when_empty_and_check_the_length_first() {
        // SAFETY: NULL with len 0, and lengths refused before any read, are
        // the cases under test.
        unsafe {
            assert_eq!(payload_slice(std::ptr::null(), 0, 100), Ok(&[][..]));
            assert_eq!(
                payload_slice(std::ptr::null(), 1, 100),
                Err(Error::NullPointer("data (with len > 0)"))
            );
            let byte = [0u8];
            for len in [86, usize::MAX, usize::MAX - 14, isize::MAX as usize] {
                assert!(matches!(
                    payload_slice(byte.as_ptr(), len, 100),
                    Err(Error::MessageTooLarge { .. })
                ));
            }
        }
    }
}
