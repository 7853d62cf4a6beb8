//! The platform layer: the only module that knows which operating system it
//! runs on. Everything above it names sockets through std and mio types and
//! the functions here, never a file descriptor or a Winsock call.
//!
//! What it offers the client and the server:
//! - [`send_nowait`]: one vectored send that never waits, and never raises
//!   `SIGPIPE` (`MSG_NOSIGNAL`, or `SO_NOSIGPIPE` set by [`prepare_stream`]
//!   on Apple's systems);
//! - [`wait_writable`] with a deadline, [`read`] within the read timeout,
//!   [`wait_for_bytes`] and [`read_nowait`] (for reading in turns), and
//!   `ByteWatch`, the reader thread's wait, which another thread reading in
//!   its place pauses (an epoll instance on Linux; elsewhere a plain poll
//!   that cannot be paused), and `PollWatch`, what the server's poll
//!   watches a connection for, which other threads change (Linux);
//!   and [`bound_waits`] for the client's blocking socket, so that a send
//!   can give up at its deadline and a shutdown from another thread ends
//!   a waiting read (Windows has neither a per-call `MSG_DONTWAIT` nor
//!   reads that a shutdown wakes: there the socket becomes non-blocking
//!   and [`read`] waits in short slices);
//! - [`listen`] with the system's largest backlog, and [`set_keepalive`]
//!   (falling back to idle and interval where the probe count cannot be
//!   set, as under Wine);
//! - [`running_threads`]: how many threads the whole system runs or could
//!   run now (Linux's `/proc/loadavg`), so a waiter spins only where a
//!   core is idle;
//! - [`Notifier`]: the handle a dispatch-mode host polls (an eventfd on
//!   Linux, a socket pair on the other POSIX systems, a loopback TCP
//!   socket on Windows, as ZeroMQ's `ZMQ_FD` is there).

use std::io::{self, IoSlice};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as os;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as os;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod socket_pair;

pub use os::PollHandle;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use os::PollWatch;
pub(crate) use os::{
    bound_waits, read, read_nowait, running_threads, AsSocket, ByteWatch, Notifier,
    SHORT_READ_REARMS,
};

/// `timeout` as the milliseconds of a `poll`, `epoll_wait` or `WSAPoll`,
/// rounded up so a sub-millisecond remainder still waits.
fn wait_millis(timeout: Duration) -> i32 {
    timeout.as_millis().saturating_add(1).min(i32::MAX as u128) as i32
}

/// What a wait on one socket waits for.
enum Readiness {
    Readable,
    Writable,
}

/// `listen`'s backlog: POSIX kernels cap it at their own maximum
/// (`net.core.somaxconn`, `kern.ipc.somaxconn`), and it is Winsock 2's
/// `SOMAXCONN`, "a reasonable maximum".
const MAX_BACKLOG: i32 = i32::MAX;

/// Most slices one [`send`] takes (the rest waits for the next call).
pub(crate) const MAX_SLICES: usize = 64;

/// One vectored send of up to [`MAX_SLICES`] of `slices` that never waits
/// for room, retried on interrupts: the number of bytes the socket took,
/// `WouldBlock` when it is full. Never raises `SIGPIPE`. A blocking socket
/// must have gone through [`bound_waits`] or [`prepare_server_stream`].
pub(crate) fn send_nowait(socket: &impl AsSocket, slices: &[&[u8]]) -> io::Result<usize> {
    let flags = os::SEND_NOWAIT_FLAGS;
    // A frame (header and payload) is the hot path: a two-entry array,
    // not one sized for a queue's many chunks.
    match slices.len() {
        0..=2 => send_array::<2>(socket, slices, flags),
        _ => send_array::<MAX_SLICES>(socket, slices, flags),
    }
}

/// How a read waits for bytes.
#[derive(Clone, Copy)]
pub(crate) enum ReadWait {
    /// Never: it takes what is there ([`read_nowait`]).
    No,
    /// Within the socket's read timeout ([`read`]): a thread waiting for
    /// its reply, in one system call where a poll and a read are two.
    Blocking,
}

/// One read of `stream`, waiting as `wait` says.
pub(crate) fn read_as(stream: &impl AsSocket, buf: &mut [u8], wait: ReadWait) -> io::Result<usize> {
    match wait {
        ReadWait::No => read_nowait(stream, buf),
        ReadWait::Blocking => read(stream, buf),
    }
}

/// Sets a server's connection up so that a thread waiting for a reply on
/// it can wait in [`read`], for `read_slice` at most per call, while the
/// I/O thread never waits: it reads with [`read_nowait`] and writes with
/// [`send_nowait`]. POSIX: the socket blocks, and those calls pass
/// `MSG_DONTWAIT`. Windows, which has no such flag: the socket stays
/// non-blocking, and [`read`] waits in a poll.
pub(crate) fn prepare_server_stream(
    socket: &impl AsSocket,
    read_slice: Duration,
) -> io::Result<()> {
    let socket = SockRef::from(socket);
    socket.set_read_timeout(Some(read_slice))?;
    os::server_reads_wait(&socket)
}

fn send_array<const N: usize>(
    socket: &impl AsSocket,
    slices: &[&[u8]],
    flags: i32,
) -> io::Result<usize> {
    let mut buffers = [IoSlice::new(&[]); N];
    let count = slices.len().min(N);
    for (buffer, slice) in buffers.iter_mut().zip(slices) {
        *buffer = IoSlice::new(slice);
    }
    let socket = SockRef::from(socket);
    loop {
        match socket.send_vectored_with_flags(&buffers[..count], flags) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Waits until `socket` can take more bytes (or has an error the next send
/// reports); `TimedOut` at `deadline`.
pub(crate) fn wait_writable(socket: &impl AsSocket, deadline: Instant) -> io::Result<()> {
    let handle = os::handle_of(socket);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer did not take the bytes in time",
            ));
        }
        if os::poll_one(handle, Readiness::Writable, left)? {
            return Ok(());
        }
    }
}

/// Waits up to `timeout` until `handle` is readable; whether it is.
pub fn wait_readable(handle: PollHandle, timeout: Duration) -> io::Result<bool> {
    os::poll_one(handle, Readiness::Readable, timeout)
}

/// Waits up to `timeout` until `socket` has bytes, an end of stream or an
/// error for the next read; whether it has. Where a shutdown from another
/// thread may not wake the wait (Windows), it returns within a short slice
/// anyway, so callers wait in a loop that looks at their own state.
pub(crate) fn wait_for_bytes(socket: &impl AsSocket, timeout: Duration) -> io::Result<bool> {
    wait_for_handle(os::handle_of(socket), timeout)
}

fn wait_for_handle(handle: PollHandle, timeout: Duration) -> io::Result<bool> {
    let timeout = os::WAIT_SLICE.map_or(timeout, |slice| timeout.min(slice));
    os::poll_one(handle, Readiness::Readable, timeout)
}

/// Where no wait can be paused from another thread: [`wait_for_bytes`],
/// with a pause and a resume that do nothing.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) struct PollByteWatch {
    handle: PollHandle,
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl PollByteWatch {
    /// A watch of `stream`, which must outlive it.
    pub(crate) fn new(stream: &std::net::TcpStream) -> io::Result<Self> {
        Ok(PollByteWatch {
            handle: os::handle_of(stream),
        })
    }

    pub(crate) fn wait(&self, timeout: Duration) -> io::Result<bool> {
        wait_for_handle(self.handle, timeout)
    }

    pub(crate) fn pause(&self) {}

    pub(crate) fn resume(&self) {}
}

/// Where another thread cannot change what the server's poll watches a
/// connection for (mio keeps its registrations for itself on Windows, and
/// its kqueue registration has no pause): connections are watched for
/// bytes and writability, always, and there is no watch to change.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) enum PollWatch {}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl PollWatch {
    /// Registers `stream` with `registry` under `token`, watched for bytes
    /// and writability; there is no watch to return.
    pub(crate) fn register(
        registry: &std::sync::Arc<mio::Registry>,
        stream: &mut mio::net::TcpStream,
        token: mio::Token,
    ) -> io::Result<Option<PollWatch>> {
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        registry.register(stream, token, interest)?;
        Ok(None)
    }

    pub(crate) fn pause(&self) {
        match *self {}
    }

    pub(crate) fn watch(&self, _writable: bool) {
        match *self {}
    }
}

/// Sets what every connected socket needs before its first send: on
/// Apple's systems, which have no `MSG_NOSIGNAL`, `SO_NOSIGPIPE`.
pub(crate) fn prepare_stream(socket: &impl AsSocket) -> io::Result<()> {
    os::prepare_stream(&SockRef::from(socket))
}

/// A non-blocking listener on `addr` with the system's largest accept
/// backlog. A burst of connecting clients (a game server restarting) would
/// overflow a smaller one, and every dropped SYN costs its client a second.
pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    os::before_bind(&socket)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(MAX_BACKLOG)?;
    Ok(socket.into())
}

/// Turns TCP keepalive on with these timings. Where the system refuses to
/// set the probe count (Wine; Windows before 10 version 1703), the count
/// stays the system's and a debug line says so.
pub(crate) fn set_keepalive(
    socket: &impl AsSocket,
    idle: Duration,
    interval: Duration,
    count: u32,
) -> io::Result<()> {
    let socket = SockRef::from(socket);
    let timings = TcpKeepalive::new().with_time(idle).with_interval(interval);
    match socket.set_tcp_keepalive(&timings.clone().with_retries(count)) {
        Err(error) if error.raw_os_error() == Some(os::NO_SUCH_OPTION) => {
            crate::log::log_at!(
                Debug,
                "the system cannot set the keepalive probe count ({error}); using its own"
            );
            socket.set_tcp_keepalive(&timings)
        }
        result => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpStream;

    fn connected_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn the_running_threads_count_the_caller() {
        let running = running_threads().expect("/proc/loadavg");
        assert!(running >= 1, "{running}");
    }

    #[test]
    fn the_notifier_is_readable_from_a_raise_to_the_next_clear() {
        let notifier = Notifier::new().unwrap();
        let quick = Duration::from_millis(20);
        assert!(!wait_readable(notifier.handle(), quick).unwrap());
        notifier.raise();
        notifier.raise();
        assert!(wait_readable(notifier.handle(), Duration::from_secs(5)).unwrap());
        notifier.clear();
        assert!(!wait_readable(notifier.handle(), quick).unwrap());
        notifier.raise();
        assert!(wait_readable(notifier.handle(), Duration::from_secs(5)).unwrap());
    }

    #[test]
    fn a_full_socket_makes_nowait_sends_would_block_and_waits_time_out() {
        let (client, _server) = connected_pair();
        bound_waits(&client).unwrap();
        let chunk = vec![0u8; 1 << 16];
        let full = (0..10_000).find_map(|_| send_nowait(&client, &[&chunk]).err());
        assert_eq!(full.map(|e| e.kind()), Some(io::ErrorKind::WouldBlock));
        let started = Instant::now();
        let waited = wait_writable(&client, started + Duration::from_millis(100));
        assert_eq!(waited.map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut));
        assert!(started.elapsed() >= Duration::from_millis(90));
    }

    #[test]
    fn a_vectored_send_writes_every_slice_in_order() {
        let (client, mut server) = connected_pair();
        let slices: Vec<Vec<u8>> = (0..70u8).map(|i| vec![i; usize::from(i) + 1]).collect();
        let borrowed: Vec<&[u8]> = slices.iter().map(|s| s.as_slice()).collect();
        let mut sent = 0;
        let mut from = 0;
        while from < borrowed.len() {
            let took = send_nowait(&client, &borrowed[from..]).unwrap();
            assert!(took > 0);
            // Every call takes whole slices here (small, an empty socket),
            // at most MAX_SLICES of them.
            let mut left = took;
            while left > 0 {
                left -= borrowed[from].len();
                from += 1;
            }
            sent += took;
        }
        let mut received = vec![0u8; sent];
        server.read_exact(&mut received).unwrap();
        assert_eq!(received, slices.concat());
    }

    #[test]
    fn keepalive_takes_timings_and_count() {
        let (client, _server) = connected_pair();
        set_keepalive(&client, Duration::from_secs(7), Duration::from_secs(3), 4).unwrap();
        let socket = SockRef::from(&client);
        assert!(socket.keepalive().unwrap());
    }

    #[test]
    fn a_listener_accepts_without_blocking() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(
            listener.accept().map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while listener.accept().is_err() {
            assert!(Instant::now() < deadline, "the connection never came");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
