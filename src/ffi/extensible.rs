//! Config structs that can grow without breaking programs built against an
//! older header (the README's ABI policy).
//!
//! Each config struct starts with `uint32_t struct_size`, the size of the
//! struct as the *program* was compiled: `veltix_*_config_init(config,
//! sizeof *config)` writes the defaults of the fields that fit in it and
//! records it, and `veltix_*_new()` reads only those fields, taking the
//! defaults for fields added later. Fields are only ever appended, each
//! starting at or after the previous release's `sizeof` (never in its tail
//! padding), so a field is either wholly inside an older struct or wholly
//! outside it.

use std::mem::size_of;
use std::ptr;

use crate::error::{Error, Result};

/// A `#[repr(C)]` config struct whose first field is `struct_size: u32`.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, start with a `u32` at offset 0, hold
/// only plain data (integers and raw pointers), and list in
/// [`Extensible::field_ends`] the end offset of every field, in order.
pub(crate) unsafe trait Extensible: Sized {
    /// The C name of the struct, for error messages.
    const NAME: &'static str;
    /// The struct with every field at its default; `struct_size` is the
    /// full size.
    fn defaults() -> Self;
    /// The offset just past each field, in declaration order.
    fn field_ends() -> Vec<usize>;
}

/// Bytes of a `struct_size`-byte prefix that hold whole fields.
fn whole_fields<T: Extensible>(struct_size: usize) -> Result<usize> {
    if struct_size < size_of::<u32>() || struct_size > size_of::<T>() {
        return Err(Error::InvalidArgument(format!(
            "{}.struct_size is {struct_size}, this library knows 4 to {} bytes. Fix: fill the \
             struct with its _config_init(config, sizeof *config) before changing fields, and \
             run with a libveltix at least as new as the header you compiled with",
            T::NAME,
            size_of::<T>()
        )));
    }
    Ok(T::field_ends()
        .into_iter()
        .filter(|end| *end <= struct_size)
        .max()
        .unwrap_or(size_of::<u32>()))
}

/// Writes the defaults of the fields within `struct_size` bytes at `dst`,
/// and `struct_size` itself; nothing past them.
///
/// # Safety
/// `dst` must be valid for writes of `struct_size` bytes.
pub(crate) unsafe fn init<T: Extensible>(dst: *mut T, struct_size: usize) -> Result<()> {
    // SAFETY: as the caller promises.
    unsafe { write_prefix(&T::defaults(), dst, struct_size) }
}

/// Writes the fields of `value` that fit in the struct at `dst`, whose
/// `struct_size` the caller set; nothing past them.
///
/// # Safety
/// `dst` must point to a struct whose first `u32` is its `struct_size`,
/// writable for that many bytes.
pub(crate) unsafe fn write_out<T: Extensible>(value: &T, dst: *mut T) -> Result<()> {
    // SAFETY: every such struct starts with the u32 struct_size.
    let struct_size = unsafe { ptr::read_unaligned(dst.cast::<u32>()) } as usize;
    // SAFETY: as the caller promises.
    unsafe { write_prefix(value, dst, struct_size) }
}

/// Copies the whole fields of `value` within `struct_size` bytes to `dst`,
/// then `struct_size` itself.
///
/// # Safety
/// `dst` must be valid for writes of `struct_size` bytes.
unsafe fn write_prefix<T: Extensible>(value: &T, dst: *mut T, struct_size: usize) -> Result<()> {
    let whole = whole_fields::<T>(struct_size)?;
    // SAFETY: whole <= struct_size bytes, which the caller lets us write;
    // the source is a whole T.
    unsafe {
        ptr::copy_nonoverlapping((value as *const T).cast::<u8>(), dst.cast::<u8>(), whole);
        ptr::write_unaligned(dst.cast::<u32>(), struct_size as u32);
    }
    Ok(())
}

/// The struct at `src` as this library knows it: the fields within its
/// `struct_size`, and the defaults for the fields it does not have.
///
/// # Safety
/// `src` must point to a config whose first `u32` is `struct_size`, valid
/// for reads of that many bytes.
pub(crate) unsafe fn read<T: Extensible>(src: *const T) -> Result<T> {
    // SAFETY: every config starts with the u32 struct_size.
    let struct_size = unsafe { ptr::read_unaligned(src.cast::<u32>()) } as usize;
    let whole = whole_fields::<T>(struct_size)?;
    let mut config = T::defaults();
    // SAFETY: whole <= struct_size readable bytes; T is plain data.
    unsafe {
        ptr::copy_nonoverlapping(
            src.cast::<u8>(),
            (&mut config as *mut T).cast::<u8>(),
            whole,
        );
    }
    Ok(config)
}

/// The end offsets of `$field`s of `$type`, for [`Extensible::field_ends`].
macro_rules! field_ends {
    ($type:ty, $value:expr, [$($field:ident),+ $(,)?]) => {{
        let value = $value;
        vec![$(std::mem::offset_of!($type, $field) + std::mem::size_of_val(&value.$field)),+]
    }};
}
pub(crate) use field_ends;

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;
    use crate::ffi::config::veltix_client_config_t;

    type Config = veltix_client_config_t;

    #[test]
    fn a_prefix_keeps_its_fields_and_takes_the_defaults_for_the_rest() {
        // A program whose struct ends just after `retry`, filled with 0xEE
        // past it to show those bytes are never read.
        let cut = offset_of!(Config, retry) + 4;
        let mut bytes = vec![0xEE_u8; size_of::<Config>()];
        let mut full = Config::defaults();
        full.retry = 7;
        full.struct_size = cut as u32;
        // SAFETY: both buffers hold at least `cut` bytes.
        unsafe {
            ptr::copy_nonoverlapping(
                (&full as *const Config).cast::<u8>(),
                bytes.as_mut_ptr(),
                cut,
            )
        };
        let read = unsafe { read(bytes.as_ptr().cast::<Config>()) }.unwrap();
        assert_eq!(read.retry, 7, "a field within struct_size");
        let defaults = Config::defaults();
        assert_eq!(read.retry_delay_ms, defaults.retry_delay_ms, "past it");
        assert_eq!(read.max_queued_bytes, defaults.max_queued_bytes);
    }

    #[test]
    fn a_size_inside_a_field_leaves_that_field_out() {
        let start = offset_of!(Config, max_queued_bytes);
        assert_eq!(whole_fields::<Config>(start + 2).unwrap(), start);
        assert_eq!(whole_fields::<Config>(start + 4).unwrap(), start + 4);
        let last_end = *Config::field_ends().last().unwrap();
        assert_eq!(
            whole_fields::<Config>(size_of::<Config>()).unwrap(),
            last_end,
            "the whole struct: every field"
        );
    }

    #[test]
    fn init_writes_nothing_past_struct_size() {
        let cut = offset_of!(Config, port) + 2;
        let mut bytes = vec![0xEE_u8; size_of::<Config>()];
        unsafe { init(bytes.as_mut_ptr().cast::<Config>(), cut) }.unwrap();
        assert!(bytes[cut..].iter().all(|b| *b == 0xEE));
        assert_eq!(
            u32::from_ne_bytes(bytes[..4].try_into().unwrap()),
            cut as u32
        );
    }

    /// `veltix_client_config_t` as released before `reply_spin_us`.
    #[repr(C)]
    struct ClientBeforeReplySpin {
        struct_size: u32,
        server_addr: *const std::ffi::c_char,
        port: u16,
        fields_u32: [u32; 9],
        liveness: crate::ffi::liveness::veltix_liveness_t,
        retry_delay_max_ms: u32,
        retry_jitter: bool,
    }

    /// `veltix_server_config_t` as released before `reply_spin_us`.
    #[repr(C)]
    struct ServerBeforeReplySpin {
        struct_size: u32,
        host: *const std::ffi::c_char,
        port: u16,
        fields_u32: [u32; 8],
        max_memory_bytes: u64,
        liveness: crate::ffi::liveness::veltix_liveness_t,
        idle_timeout_ms: u32,
        callbacks_on_io_thread: bool,
    }

    #[test]
    fn appended_fields_start_past_the_previous_release_s_struct() {
        use crate::ffi::server_config::veltix_server_config_t as Server;
        // The mirrors are those releases: their last fields sit where the
        // current structs have them.
        assert_eq!(
            offset_of!(ClientBeforeReplySpin, retry_jitter),
            offset_of!(Config, retry_jitter)
        );
        assert_eq!(
            offset_of!(ServerBeforeReplySpin, callbacks_on_io_thread),
            offset_of!(Server, callbacks_on_io_thread)
        );
        assert!(offset_of!(Config, reply_spin_us) >= size_of::<ClientBeforeReplySpin>());
        assert!(offset_of!(Server, reply_spin_us) >= size_of::<ServerBeforeReplySpin>());
        // A program of that release gets the default spin.
        let old = size_of::<ClientBeforeReplySpin>();
        let mut bytes = vec![0u8; size_of::<Config>()];
        unsafe { init(bytes.as_mut_ptr().cast::<Config>(), old) }.unwrap();
        let read = unsafe { read(bytes.as_ptr().cast::<Config>()) }.unwrap();
        assert_eq!(read.reply_spin_us, Config::defaults().reply_spin_us);
        assert_eq!(read.reply_spin_us, 50);
    }

    #[test]
    fn io_threads_starts_past_the_struct_that_ended_with_cluster_node_id() {
        use crate::ffi::server_config::veltix_server_config_t as Server;
        // That release's struct had this one's alignment (its widest
        // fields are still there) and ended in `cluster_node_id`.
        let old_end = offset_of!(Server, cluster_node_id) + size_of::<u16>();
        let old_size = old_end.next_multiple_of(std::mem::align_of::<Server>());
        assert!(offset_of!(Server, io_threads) >= old_size);
        let mut bytes = vec![0u8; size_of::<Server>()];
        unsafe { init(bytes.as_mut_ptr().cast::<Server>(), old_size) }.unwrap();
        let read = unsafe { read(bytes.as_ptr().cast::<Server>()) }.unwrap();
        assert_eq!(
            read.io_threads, 1,
            "a program of that release gets one loop"
        );
    }

    #[test]
    fn sizes_outside_the_known_range_are_refused() {
        for size in [0, 3, size_of::<Config>() + 1] {
            let error = whole_fields::<Config>(size).unwrap_err();
            assert!(error.to_string().contains("struct_size"), "{error}");
        }
    }
}
