//! Windows (Winsock 2).

use super::Readiness;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::windows::io::AsRawSocket;
use std::time::{Duration, Instant};

use socket2::{SockRef, Socket};
use windows_sys::Win32::Networking::WinSock::{
    WSAPoll, POLLRDNORM, POLLWRNORM, SOCKET, WSAENOPROTOOPT, WSAPOLLFD,
};

pub(crate) use std::os::windows::io::AsSocket;

/// The handle a dispatch-mode host polls: a `SOCKET`.
pub type PollHandle = usize;

/// mio on Windows arms a socket's next event only when a read or write
/// through it would block: a read turn must go on until it does.
pub(crate) const SHORT_READ_REARMS: bool = false;

/// The error of a socket option the system does not have.
pub(super) const NO_SUCH_OPTION: i32 = WSAENOPROTOOPT;

/// Winsock never raises signals, and has no per-call `MSG_DONTWAIT`: a
/// send never waits only on a socket made non-blocking by [`bound_waits`]
/// (or by mio).
pub(super) const SEND_NOWAIT_FLAGS: i32 = 0;

/// Longest single wait of [`read`], so that a socket shut down by another
/// thread is noticed within it even where `WSAPoll` does not report it.
const READ_WAIT_SLICE: Duration = Duration::from_millis(100);

/// Threads running or ready to run on the system: not known.
pub(crate) fn running_threads() -> Option<u32> {
    None
}

/// The same bound for every wait for bytes on the client's socket.
pub(super) const WAIT_SLICE: Option<Duration> = Some(READ_WAIT_SLICE);

pub(super) fn handle_of(socket: &impl AsSocket) -> PollHandle {
    socket.as_socket().as_raw_socket() as PollHandle
}

/// `WSAPoll` on one socket for up to `timeout`; whether it is ready (an
/// error or hang-up counts: the next call reports it).
pub(super) fn poll_one(
    socket: PollHandle,
    readiness: Readiness,
    timeout: Duration,
) -> io::Result<bool> {
    let events = match readiness {
        Readiness::Readable => POLLRDNORM,
        Readiness::Writable => POLLWRNORM,
    };
    let mut pollfd = WSAPOLLFD {
        fd: socket as SOCKET,
        events,
        revents: 0,
    };
    let millis = super::wait_millis(timeout);
    // SAFETY: one valid WSAPOLLFD for the duration of the call.
    match unsafe { WSAPoll(&mut pollfd, 1, millis) } {
        ready if ready > 0 => Ok(true),
        0 => Ok(false),
        _ => Err(io::Error::last_os_error()),
    }
}

pub(super) fn prepare_stream(_socket: &SockRef<'_>) -> io::Result<()> {
    Ok(())
}

/// `SO_REUSEADDR` on Windows would let another socket steal the port: not
/// set (as mio does not).
pub(super) fn before_bind(_socket: &Socket) -> io::Result<()> {
    Ok(())
}

/// Makes the client's socket non-blocking, so a send can give up at its
/// deadline (Winsock has no per-call `MSG_DONTWAIT`, and a socket whose
/// `SO_SNDTIMEO` send timed out is left in an indeterminate state) and a
/// read waiting in [`read`] sees a shutdown from another thread (which
/// does not wake a blocked `recv`). The mode is the socket's, shared with
/// its clones.
pub(crate) fn bound_waits(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(true)
}

/// A server's connection stays non-blocking, as mio requires on Windows:
/// [`read`] waits in a poll.
pub(super) fn server_reads_wait(_socket: &SockRef<'_>) -> io::Result<()> {
    Ok(())
}

/// A read of the client's socket that waits for bytes within its read
/// timeout (`WouldBlock` when it runs out), whether the socket blocks or
/// went through [`bound_waits`]. It waits in slices of at most
/// [`READ_WAIT_SLICE`] and tries the socket between them.
pub(crate) fn read(stream: &impl AsSocket, buf: &mut [u8]) -> io::Result<usize> {
    let socket = SockRef::from(stream);
    let mut read = || match io::Read::read(&mut &*socket, buf) {
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => None,
        result => Some(result),
    };
    if let Some(result) = read() {
        return result;
    }
    // Only a read that has to wait asks for the timeout, once.
    let deadline = socket.read_timeout()?.map(|limit| Instant::now() + limit);
    loop {
        let wait = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                left.min(READ_WAIT_SLICE)
            }
            None => READ_WAIT_SLICE,
        };
        poll_one(handle_of(stream), Readiness::Readable, wait)?;
        if let Some(result) = read() {
            return result;
        }
    }
}

/// A read of a non-blocking socket (the client's since [`bound_waits`], a
/// server's always) that never waits: `WouldBlock` when no byte is there.
pub(crate) fn read_nowait(stream: &impl AsSocket, buf: &mut [u8]) -> io::Result<usize> {
    io::Read::read(&mut &*SockRef::from(stream), buf)
}

/// The reader thread polls, and a thread reading in its place leaves it be
/// (it may wake, find the read side taken, and wait again).
pub(crate) type ByteWatch = super::PollByteWatch;

/// A loopback TCP connection, whose accepting end the host polls: Windows
/// has no socket pair, and `select`, `WSAPoll` and libuv's `uv_poll` take
/// only sockets.
pub(crate) type Notifier = super::socket_pair::SocketPairNotifier<TcpStream>;

/// Connections to the pair's listener from another program, dropped before
/// giving up.
const MAX_STRANGERS: usize = 16;

impl super::socket_pair::ConnectedPair for TcpStream {
    fn connected_pair() -> io::Result<(Self, Self)> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let writer = TcpStream::connect(listener.local_addr()?)?;
        writer.set_nodelay(true)?;
        let ours: SocketAddr = writer.local_addr()?;
        // Another local program may connect first: only ours is kept.
        let reader = (0..MAX_STRANGERS)
            .find_map(|_| match listener.accept() {
                Ok((reader, from)) if from == ours => Some(Ok(reader)),
                Ok(_) => None,
                Err(error) => Some(Err(error)),
            })
            .unwrap_or_else(|| {
                Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "the notifier's own connection never came",
                ))
            })?;
        Ok((reader, writer))
    }
}
