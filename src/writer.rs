//! The send path: frames from any number of threads onto one socket, never
//! interleaved.
//!
//! A sender that finds the socket free writes header and payload itself with
//! one `sendmsg` (no thread hop, no payload copy). A sender that finds it busy
//! appends its frame to a backlog (the one copy) and returns; whoever holds
//! the socket writes the backlog in one call before releasing it, so frames
//! coalesce under load. Large frames, or a full backlog, wait for the socket
//! instead, which bounds the backlog and gives back-pressure.
//!
//! Every write is bounded in time by a [`WriteLimit`]: a peer that stops
//! reading makes a sender wait at most its limit (or, for the socket itself,
//! the limit of the sender holding it), never forever. A write that runs out
//! of time fails with `TimedOut`, possibly part-way through a frame, so the
//! caller must then close the connection. The clock is read only when a
//! write has to wait, so the common case costs no time lookup.
//!
//! Writes use `MSG_NOSIGNAL`: a peer that resets the connection gives an
//! error, never a `SIGPIPE` that would kill the host process.

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

use crate::protocol::frame::{FrameHeader, HEADER_SIZE};

/// Frames up to this size may be queued behind a busy socket.
const MAX_QUEUED_FRAME: usize = 64 * 1024;
/// Bound of the backlog; past it senders wait for the socket.
const MAX_BACKLOG: usize = 1024 * 1024;

/// Writes frames to a connected socket from any thread.
pub struct FrameWriter {
    socket: Mutex<Socket>,
    backlog: Mutex<Vec<u8>>,
}

struct Socket {
    stream: TcpStream,
    /// The previous backlog's buffer, kept to reuse its capacity.
    spare: Vec<u8>,
}

impl FrameWriter {
    /// A writer over `stream` (typically a `try_clone` of the reader's).
    pub fn new(stream: TcpStream) -> Self {
        FrameWriter {
            socket: Mutex::new(Socket {
                stream,
                spare: Vec::new(),
            }),
            backlog: Mutex::new(Vec::new()),
        }
    }

    /// Sends one frame. Returns once the frame is written to the socket or
    /// queued behind a write in progress, which will carry it; `TimedOut`
    /// if the socket did not take it within `limit`.
    pub fn send(
        &self,
        type_code: u16,
        request_id: u16,
        payload: &[u8],
        mut limit: WriteLimit,
    ) -> io::Result<()> {
        let limit = &mut limit;
        let header = FrameHeader::for_payload(type_code, request_id, payload).encode();
        let frame_len = HEADER_SIZE + payload.len();
        let mut socket = match self.socket.try_lock() {
            Ok(socket) => socket,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                if frame_len <= MAX_QUEUED_FRAME && self.queue(&header, payload) {
                    return self.flush_backlog_if_free(limit);
                }
                self.socket.lock().unwrap_or_else(|e| e.into_inner())
            }
        };
        // Frames queued before ours go first.
        let fd = socket.stream.as_raw_fd();
        let result = self
            .write_backlog(&mut socket, limit)
            .and_then(|()| write_parts_within(fd, &mut [&header, payload], limit));
        drop(socket);
        result?;
        self.flush_backlog_if_free(limit)
    }

    /// Appends a frame to the backlog if it fits.
    fn queue(&self, header: &[u8], payload: &[u8]) -> bool {
        let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
        if backlog.len() + header.len() + payload.len() > MAX_BACKLOG {
            return false;
        }
        backlog.extend_from_slice(header);
        backlog.extend_from_slice(payload);
        true
    }

    /// Writes the backlog if no one holds the socket. Called after every
    /// release and after every queueing, so a queued frame is never left
    /// behind: either its sender gets the socket, or the holder sees the
    /// frame after releasing.
    fn flush_backlog_if_free(&self, limit: &mut WriteLimit) -> io::Result<()> {
        while !self
            .backlog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            let mut socket = match self.socket.try_lock() {
                Ok(socket) => socket,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => return Ok(()),
            };
            self.write_backlog(&mut socket, limit)?;
        }
        Ok(())
    }

    fn write_backlog(&self, socket: &mut Socket, limit: &mut WriteLimit) -> io::Result<()> {
        {
            let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
            if backlog.is_empty() {
                return Ok(());
            }
            std::mem::swap(&mut *backlog, &mut socket.spare);
        }
        let fd = socket.stream.as_raw_fd();
        let result = write_parts_within(fd, &mut [&socket.spare, &[]], limit);
        socket.spare.clear();
        result
    }
}

/// A frame as written: header, then payload (either may be empty).
pub(crate) type Parts<'a> = [&'a [u8]; 2];

/// Writes all of `parts` with `sendmsg(MSG_NOSIGNAL)`, retrying partial
/// writes and interrupts, with no allocation. On an error (including
/// `WouldBlock` from a full non-blocking socket) `parts` holds the bytes
/// still unsent. Never raises `SIGPIPE`.
pub(crate) fn write_parts(fd: RawFd, parts: &mut Parts<'_>) -> io::Result<()> {
    write_parts_with(fd, parts, None)
}

/// How long a blocked write may wait for room: `timeout` from when it first
/// has to wait, and never past the caller's own `deadline`, if any.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteLimit {
    timeout: Duration,
    deadline: Option<Instant>,
    /// Set at the first wait.
    resolved: Option<Instant>,
}

impl WriteLimit {
    /// `timeout` per blocked write, within `deadline`.
    pub fn new(timeout: Duration, deadline: Option<Instant>) -> Self {
        WriteLimit {
            timeout,
            deadline,
            resolved: None,
        }
    }

    /// The moment waiting must end; fixed at the first call.
    fn deadline(&mut self) -> Instant {
        *self.resolved.get_or_insert_with(|| {
            let by_timeout = Instant::now() + self.timeout;
            self.deadline.map_or(by_timeout, |d| d.min(by_timeout))
        })
    }
}

/// As [`write_parts`] on a blocking socket, but waits for room only within
/// `limit`: `TimedOut` then, with `parts` holding the unsent bytes.
pub(crate) fn write_parts_within(
    fd: RawFd,
    parts: &mut Parts<'_>,
    limit: &mut WriteLimit,
) -> io::Result<()> {
    write_parts_with(fd, parts, Some(limit))
}

/// Writes `parts`; without a limit, as the socket's own blocking mode
/// decides; with one, each call is non-blocking and the wait for room is a
/// poll bounded by the limit.
fn write_parts_with(
    fd: RawFd,
    parts: &mut Parts<'_>,
    mut limit: Option<&mut WriteLimit>,
) -> io::Result<()> {
    let flags = match limit {
        Some(_) => libc::MSG_DONTWAIT,
        None => 0,
    };
    while parts.iter().any(|part| !part.is_empty()) {
        let mut sent = match send_slices(fd, parts, flags) {
            Ok(sent) => sent,
            Err(error) => match (error.kind(), limit.as_deref_mut()) {
                (io::ErrorKind::WouldBlock, Some(limit)) => {
                    wait_writable(fd, limit.deadline())?;
                    continue;
                }
                _ => return Err(error),
            },
        };
        for part in parts.iter_mut() {
            let n = sent.min(part.len());
            *part = &part[n..];
            sent -= n;
        }
    }
    Ok(())
}

/// Most slices one [`send_slices`] call takes (the rest waits for the next).
pub(crate) const MAX_SLICES: usize = 64;

/// One `sendmsg(MSG_NOSIGNAL | flags)` of up to [`MAX_SLICES`] of `slices`,
/// retried on interrupts; the number of bytes the socket took.
pub(crate) fn send_slices(fd: RawFd, slices: &[&[u8]], flags: libc::c_int) -> io::Result<usize> {
    // A frame (header and payload) is the hot path: a two-entry iovec
    // array, not one sized for a queue's many chunks.
    match slices.len() {
        0..=2 => send_iovecs::<2>(fd, slices, flags),
        _ => send_iovecs::<MAX_SLICES>(fd, slices, flags),
    }
}

fn send_iovecs<const N: usize>(
    fd: RawFd,
    slices: &[&[u8]],
    flags: libc::c_int,
) -> io::Result<usize> {
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut iov = [empty; N];
    let count = slices.len().min(N);
    for (vec, slice) in iov.iter_mut().zip(slices) {
        vec.iov_base = slice.as_ptr() as *mut libc::c_void;
        vec.iov_len = slice.len();
    }
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = count as _;
    loop {
        // SAFETY: the iovecs point into live slices for the duration of the
        // call; the caller owns the descriptor.
        let sent = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | flags) };
        if sent >= 0 {
            return Ok(sent as usize);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Waits until `fd` can take more bytes; `TimedOut` at `deadline`.
fn wait_writable(fd: RawFd, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer did not take the bytes in time",
            ));
        }
        let mut pollfd = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // Round up so a sub-millisecond remainder still waits.
        let millis = left.as_millis().saturating_add(1).min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, millis) };
        if ready > 0 {
            // Writable, or an error/hang-up the next sendmsg reports.
            return Ok(());
        }
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Decoded, FrameDecoder};
    use std::io::Read;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::time::Duration;

    fn far() -> WriteLimit {
        WriteLimit::new(Duration::from_secs(60), None)
    }

    #[test]
    fn concurrent_senders_never_interleave() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let writer = Arc::new(FrameWriter::new(client));
        let threads: Vec<_> = (0..8u16)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..500u16 {
                        let len = (usize::from(i) * 37) % 3000;
                        let payload = vec![t as u8; len];
                        writer.send(200 + t, i, &payload, far()).unwrap();
                    }
                })
            })
            .collect();
        let reader = std::thread::spawn(move || {
            let mut decoder = FrameDecoder::new(1 << 20, 8192);
            let mut next = [0u16; 8];
            let mut total = 0;
            while total < 8 * 500 {
                decoder.fill_with(|buf| server.read(buf)).unwrap();
                while let Some(event) = decoder.next_frame() {
                    let Decoded::Frame(m) = event else {
                        panic!("dropped {event:?}")
                    };
                    let t = usize::from(m.type_code() - 200);
                    assert_eq!(m.request_id(), next[t], "per-thread order");
                    assert!(m.payload().iter().all(|b| usize::from(*b) == t));
                    next[t] += 1;
                    total += 1;
                }
            }
        });
        for t in threads {
            t.join().unwrap();
        }
        reader.join().unwrap();
    }

    #[test]
    fn writing_to_a_reset_peer_is_an_error_not_a_signal() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        drop(server);
        let writer = FrameWriter::new(client);
        let payload = vec![0u8; 64 * 1024];
        let failed = (0..100).any(|_| writer.send(200, 0, &payload, far()).is_err());
        assert!(failed);
    }

    #[test]
    fn a_write_to_a_peer_that_does_not_read_ends_at_its_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let writer = FrameWriter::new(client);
        let payload = vec![0u8; 1 << 20];
        let started = Instant::now();
        let limit = WriteLimit::new(
            Duration::from_secs(60),
            Some(started + Duration::from_millis(200)),
        );
        let error = (0..1000)
            .find_map(|_| writer.send(200, 0, &payload, limit).err())
            .expect("the socket filled up");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(190) && took < Duration::from_millis(1000),
            "{took:?}"
        );
    }
}
