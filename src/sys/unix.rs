//! POSIX: Linux, Apple's systems and the BSDs.

use super::Readiness;
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use socket2::{SockRef, Socket};

pub(crate) use std::os::fd::AsFd as AsSocket;

/// The handle a dispatch-mode host polls: a file descriptor.
pub type PollHandle = std::ffi::c_int;

/// epoll and kqueue (edge-triggered in mio) report bytes that arrive after
/// a read, so a read that took less than its room may end a read turn.
pub(crate) const SHORT_READ_REARMS: bool = true;

/// The error of a socket option the system does not have.
pub(super) const NO_SUCH_OPTION: i32 = libc::ENOPROTOOPT;

#[cfg(not(target_vendor = "apple"))]
pub(super) const SEND_FLAGS: i32 = libc::MSG_NOSIGNAL;
/// Apple's systems have no `MSG_NOSIGNAL`: [`prepare_stream`] sets
/// `SO_NOSIGPIPE` instead.
#[cfg(target_vendor = "apple")]
pub(super) const SEND_FLAGS: i32 = 0;
pub(super) const SEND_NOWAIT_FLAGS: i32 = SEND_FLAGS | libc::MSG_DONTWAIT;

pub(super) fn handle_of(socket: &impl AsSocket) -> PollHandle {
    socket.as_fd().as_raw_fd()
}

/// `poll` on one descriptor for up to `timeout`; whether it is ready (an
/// error or hang-up counts: the next call reports it).
pub(super) fn poll_one(fd: RawFd, readiness: Readiness, timeout: Duration) -> io::Result<bool> {
    let events = match readiness {
        Readiness::Readable => libc::POLLIN,
        Readiness::Writable => libc::POLLOUT,
    };
    let mut pollfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let millis = super::wait_millis(timeout);
    // SAFETY: one valid pollfd for the duration of the call.
    readiness_of(unsafe { libc::poll(&mut pollfd, 1, millis) })
}

/// What a `poll` or `epoll_wait` for one descriptor returned: whether it is
/// ready (an interrupted wait is not).
fn readiness_of(result: libc::c_int) -> io::Result<bool> {
    match result {
        ready if ready > 0 => Ok(true),
        0 => Ok(false),
        _ => {
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::Interrupted => Ok(false),
                _ => Err(error),
            }
        }
    }
}

#[cfg(target_vendor = "apple")]
pub(super) fn prepare_stream(socket: &SockRef<'_>) -> io::Result<()> {
    socket.set_nosigpipe(true)
}

#[cfg(not(target_vendor = "apple"))]
pub(super) fn prepare_stream(_socket: &SockRef<'_>) -> io::Result<()> {
    Ok(())
}

/// A restarted server binds again while its old connections linger in
/// `TIME_WAIT` (mio's own listeners do the same).
pub(super) fn before_bind(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_address(true)
}

/// A server's connection blocks (see `prepare_server_stream`): mio does
/// not mind, since every call of the I/O thread passes `MSG_DONTWAIT`.
pub(super) fn server_reads_wait(socket: &SockRef<'_>) -> io::Result<()> {
    socket.set_nonblocking(false)
}

/// POSIX has a per-call `MSG_DONTWAIT`, and a shutdown wakes a blocked
/// read: the socket stays blocking.
pub(crate) fn bound_waits(_stream: &TcpStream) -> io::Result<()> {
    Ok(())
}

/// A read of a blocking socket, within its read timeout (`WouldBlock`
/// when it runs out).
pub(crate) fn read(stream: &impl AsSocket, buf: &mut [u8]) -> io::Result<usize> {
    io::Read::read(&mut &*SockRef::from(stream), buf)
}

/// A read that never waits, whatever the socket's mode: `WouldBlock` when
/// no byte is there.
pub(crate) fn read_nowait(stream: &impl AsSocket, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
        let n = unsafe {
            libc::recv(
                stream.as_fd().as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Linux: threads running or ready to run on the whole system now (the
/// fourth field of `/proc/loadavg`, the caller included); `None` if it
/// cannot be read.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn running_threads() -> Option<u32> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    let (running, _total) = loadavg.split_whitespace().nth(3)?.split_once('/')?;
    running.parse().ok()
}

/// Apple's systems and the BSDs: not known.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn running_threads() -> Option<u32> {
    None
}

/// A shutdown from another thread wakes a `poll` on the socket: waits for
/// bytes need no slices.
pub(super) const WAIT_SLICE: Option<Duration> = None;

/// Apple's systems and the BSDs: the reader thread polls, and a thread
/// reading in its place leaves it be (it may wake, find the read side
/// taken, and wait again).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) type ByteWatch = super::PollByteWatch;

/// Linux: the reader thread's wait for bytes, through an epoll instance
/// of its own, so that a thread reading the socket in its place can pause
/// the wait (two `epoll_ctl` calls) instead of waking it with every byte.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) struct ByteWatch {
    epoll: std::os::fd::OwnedFd,
    socket: RawFd,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl ByteWatch {
    pub(crate) fn new(stream: &TcpStream) -> io::Result<ByteWatch> {
        use std::os::fd::FromRawFd;
        // SAFETY: epoll_create1 takes no pointers; a valid result is a new fd.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor owned by nobody else.
        let epoll = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let watch = ByteWatch {
            epoll,
            socket: stream.as_raw_fd(),
        };
        watch.control(libc::EPOLL_CTL_ADD, libc::EPOLLIN)?;
        Ok(watch)
    }

    fn control(&self, op: i32, events: i32) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: events as u32,
            u64: 0,
        };
        // SAFETY: both descriptors are live; the event is read during the call.
        match unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, self.socket, &mut event) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// Waits up to `timeout` for bytes, an end or an error; whether one
    /// came (never while paused, but for an error or a hang-up).
    pub(crate) fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        let millis = super::wait_millis(timeout);
        // SAFETY: room for one event, live for the duration of the call.
        readiness_of(unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), &mut event, 1, millis) })
    }

    /// Stops reporting bytes until [`ByteWatch::resume`]. Only fails on a
    /// closed descriptor, when the waiter wakes anyway.
    pub(crate) fn pause(&self) {
        let _ = self.control(libc::EPOLL_CTL_MOD, 0);
    }

    /// Reports bytes again, those already there included.
    pub(crate) fn resume(&self) {
        let _ = self.control(libc::EPOLL_CTL_MOD, libc::EPOLLIN);
    }
}

/// Linux: how the server's I/O thread's epoll instance watches one
/// connection, which other threads change: a thread that reads the socket
/// itself (waiting for its reply) pauses it, so the reply does not wake
/// the I/O thread too; and writability is watched only while bytes wait
/// for it. Watched always, a socket is writable again each time an
/// acknowledgement frees send buffer, and every such edge would wake the
/// I/O thread, as would resuming a paused watch.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) struct PollWatch {
    /// The poll's registry, shared by its connections: its descriptor
    /// stays open while any of them may change its watch.
    registry: std::sync::Arc<mio::Registry>,
    socket: RawFd,
    token: mio::Token,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl PollWatch {
    /// Registers `stream` with `registry` under `token`, watched for bytes
    /// only, and returns its watch.
    pub(crate) fn register(
        registry: &std::sync::Arc<mio::Registry>,
        stream: &mut mio::net::TcpStream,
        token: mio::Token,
    ) -> io::Result<Option<PollWatch>> {
        registry.register(stream, token, mio::Interest::READABLE)?;
        Ok(Some(PollWatch {
            registry: registry.clone(),
            socket: stream.as_raw_fd(),
            token,
        }))
    }

    /// Reports nothing until [`PollWatch::watch`] (but an error or a
    /// hang-up, which epoll always reports).
    pub(crate) fn pause(&self) {
        // mio has no empty interest: the registration is changed as mio
        // would, with none of its events.
        let mut event = libc::epoll_event {
            events: 0,
            u64: usize::from(self.token) as u64,
        };
        // SAFETY: both descriptors are live (the registry is kept, the
        // socket's owner holds this watch); the event is read in the call.
        // Only fails on a socket no longer registered, which reports nothing.
        unsafe {
            libc::epoll_ctl(
                self.registry.as_raw_fd(),
                libc::EPOLL_CTL_MOD,
                self.socket,
                &mut event,
            )
        };
    }

    /// Watches for bytes, and for writability if `writable`: what is
    /// already there is reported at once.
    pub(crate) fn watch(&self, writable: bool) {
        let interest = match writable {
            true => mio::Interest::READABLE | mio::Interest::WRITABLE,
            false => mio::Interest::READABLE,
        };
        let mut source = mio::unix::SourceFd(&self.socket);
        // Only fails on a socket no longer registered: nothing to report.
        let _ = self.registry.reregister(&mut source, self.token, interest);
    }
}

/// Linux: an eventfd, which a host may also read as a counter.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) struct Notifier {
    event: std::os::fd::OwnedFd,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Notifier {
    pub(crate) fn new() -> io::Result<Notifier> {
        use std::os::fd::FromRawFd;
        // SAFETY: eventfd takes no pointers; a valid result is a new fd.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor owned by nobody else.
        let event = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        Ok(Notifier { event })
    }

    pub(crate) fn raise(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.event.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub(crate) fn clear(&self) {
        let mut count = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from our non-blocking eventfd.
        unsafe { libc::read(self.event.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
    }

    pub(crate) fn handle(&self) -> PollHandle {
        self.event.as_raw_fd()
    }
}

/// Apple's systems and the BSDs (FreeBSD has eventfd only from 13): a
/// socket pair.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) type Notifier = super::socket_pair::SocketPairNotifier<std::os::unix::net::UnixStream>;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl super::socket_pair::ConnectedPair for std::os::unix::net::UnixStream {
    fn connected_pair() -> io::Result<(Self, Self)> {
        std::os::unix::net::UnixStream::pair()
    }
}
