//! The send path: frames from any number of threads onto one socket, never
//! interleaved, with bursts coalesced.
//!
//! A lone send writes header and payload itself with one `sendmsg` (no
//! thread hop, no payload copy). A send that comes within
//! [`COALESCE_WINDOW`] of the previous one with nothing received between
//! them, or finds the socket busy or frames already queued, appends its
//! frame to the queue (the one copy) and returns; the writer's flusher thread writes the queue in as few calls as
//! it can. So a thread sending as fast as it can makes one write per queue
//! taken, not one per frame, and a lone request pays no thread hop. The
//! flusher is woken only when it sleeps, and writes as soon as it runs: the
//! last frame of a burst leaves after at most one thread wake-up, never
//! after a timer. Large frames, or a full queue, wait for the socket
//! instead, which bounds the queue and gives back-pressure.
//!
//! Frames of one thread keep their order: a frame is written directly only
//! when nothing is queued, and whoever writes takes the queue only while it
//! holds the socket, writing the queue before its own frame.
//!
//! Every write is bounded in time by a [`WriteLimit`]: a peer that stops
//! reading makes a sender wait at most its limit (or, for the socket itself,
//! the limit of the sender holding it), never forever. A write that runs out
//! of time fails with `TimedOut`, possibly part-way through a frame, so the
//! caller must then close the connection. A write the flusher makes fails
//! the same way; the flusher then shuts the socket down (the connection's
//! reader sees it end) and every later send fails with its error. The clock
//! is read when a send that may coalesce starts, and when a write has to
//! wait.
//!
//! Writes go through [`crate::sys::send_nowait`]: a peer that resets the
//! connection gives an error, never a `SIGPIPE` that would kill the host
//! process.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::log::log_at;
use crate::protocol::frame::{FrameHeader, HEADER_SIZE};
use crate::sys::{self, AsSocket};

/// Frames up to this size may be queued.
const MAX_QUEUED_FRAME: usize = 64 * 1024;
/// Bound of the queue; past it senders wait for the socket.
const MAX_QUEUE: usize = 1024 * 1024;
/// A send this soon after the previous one returned is part of a burst and
/// is queued for the flusher rather than written by its caller.
pub const COALESCE_WINDOW: Duration = Duration::from_micros(10);
/// Stack of the flusher thread, which only moves bytes.
const FLUSHER_STACK: usize = 64 * 1024;

/// Whether a frame may join a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coalesce {
    /// Queued for the flusher when it comes within [`COALESCE_WINDOW`] of
    /// the previous send.
    IfBurst,
    /// A frame someone waits on (a request whose sender waits for the
    /// reply, a PONG the peer times): written by its caller unless frames
    /// are queued before it or the socket is busy, and not the start of a
    /// burst. Its sender's next frame comes a round trip later, within
    /// the window on a fast link, and queueing it would add the flusher's
    /// wake-up to every round trip.
    Never,
}

/// Writes frames to a connected socket from any thread.
pub struct FrameWriter {
    shared: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    /// The socket. Only the holder of `socket` writes to it; anyone may
    /// shut it down, also while a write waits.
    stream: TcpStream,
    socket: Mutex<Socket>,
    queue: Mutex<Queue>,
    /// Wakes the flusher: frames were queued, or it must stop.
    work: Condvar,
    /// Wakes [`FrameWriter::drain`]: the flusher went idle or failed.
    idle: Condvar,
    /// When the previous send started, in nanoseconds since `epoch`.
    last_send: AtomicU64,
    /// When the connection last received a frame, in the same unit: a
    /// send after that answers what arrived, and starts no burst.
    last_receive: AtomicU64,
    epoch: Instant,
    /// Bound of each write the flusher makes.
    send_timeout: Duration,
}

/// The right to write to the stream.
struct Socket {
    /// The previous queue's buffer, kept to reuse its capacity.
    spare: Vec<u8>,
}

struct Queue {
    bytes: Vec<u8>,
    /// The flusher was woken and has not yet found the queue empty.
    flusher_busy: bool,
    /// The flusher thread was started (it is, once a frame was queued).
    flusher_started: bool,
    stopping: bool,
    /// Why the flusher's write failed; every later send fails with it.
    failure: Option<(io::ErrorKind, String)>,
}

impl Queue {
    fn error(&self) -> Option<io::Error> {
        let (kind, text) = self.failure.as_ref()?;
        Some(io::Error::new(*kind, text.clone()))
    }
}

impl FrameWriter {
    /// A writer over `stream` (typically a `try_clone` of the reader's);
    /// each write of its flusher waits at most `send_timeout` for room. The
    /// flusher thread starts with the first burst. Fails if the socket
    /// cannot be set up for bounded writes
    /// ([`sys::bound_waits`]).
    pub fn new(stream: TcpStream, send_timeout: Duration) -> io::Result<Self> {
        sys::bound_waits(&stream)?;
        let shared = Arc::new(Shared {
            stream,
            socket: Mutex::new(Socket { spare: Vec::new() }),
            queue: Mutex::new(Queue {
                bytes: Vec::new(),
                flusher_busy: false,
                flusher_started: false,
                stopping: false,
                failure: None,
            }),
            work: Condvar::new(),
            idle: Condvar::new(),
            last_send: AtomicU64::new(0),
            last_receive: AtomicU64::new(0),
            epoch: Instant::now(),
            send_timeout,
        });
        Ok(FrameWriter {
            shared,
            flusher: Mutex::new(None),
        })
    }

    /// Sends one frame. Returns once the frame is written to the socket or
    /// queued for the flusher; `TimedOut` if the socket did not take it
    /// within `limit`, or the flusher's error if one of its writes failed.
    pub fn send(
        &self,
        type_code: u16,
        request_id: u16,
        payload: &[u8],
        mut limit: WriteLimit,
        coalesce: Coalesce,
    ) -> io::Result<()> {
        let header = FrameHeader::for_payload(type_code, request_id, payload).encode();
        let frame_len = HEADER_SIZE + payload.len();
        let in_burst = coalesce == Coalesce::IfBurst && self.shared.send_joins_burst();
        // Whether the frame went to the queue (the socket busy makes it go).
        let queued = |socket_busy: bool| -> io::Result<bool> {
            Ok(frame_len <= MAX_QUEUED_FRAME
                && self.try_queue(&header, payload, in_burst || socket_busy)?)
        };
        if queued(false)? {
            return Ok(());
        }
        let mut socket = match self.shared.socket.try_lock() {
            Ok(socket) => socket,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                if queued(true)? {
                    return Ok(());
                }
                lock(&self.shared.socket)
            }
        };
        // Frames queued before ours go first.
        let limit = &mut limit;
        let stream = &self.shared.stream;
        self.shared
            .write_queue(&mut socket, limit)
            .and_then(|()| write_parts_within(stream, &mut [&header, payload], limit))?;
        drop(socket);
        Ok(())
    }

    /// Queues a frame if it must or should be (`in_burst`), and it fits;
    /// whether it did (if not, the caller writes it).
    fn try_queue(&self, header: &[u8], payload: &[u8], in_burst: bool) -> io::Result<bool> {
        let mut queue = lock(&self.shared.queue);
        if let Some(error) = queue.error() {
            return Err(error);
        }
        let must = !queue.bytes.is_empty() || queue.flusher_busy;
        let fits = queue.bytes.len() + header.len() + payload.len() <= MAX_QUEUE;
        if queue.stopping || !(must || in_burst) || !fits {
            return Ok(false);
        }
        if !queue.flusher_started {
            if let Err(error) = self.start_flusher() {
                log_at!(
                    Warn,
                    "writing every frame directly: no writer thread: {error}"
                );
                return Ok(false);
            }
            queue.flusher_started = true;
        }
        queue.bytes.extend_from_slice(header);
        queue.bytes.extend_from_slice(payload);
        if !queue.flusher_busy {
            queue.flusher_busy = true;
            self.shared.work.notify_one();
        }
        Ok(true)
    }

    fn start_flusher(&self) -> io::Result<()> {
        let shared = self.shared.clone();
        let flusher = std::thread::Builder::new()
            .name("veltix-writer".into())
            .stack_size(FLUSHER_STACK)
            .spawn(move || shared.run_flusher())?;
        *lock(&self.flusher) = Some(flusher);
        Ok(())
    }

    /// Notes that frames arrived at `at`: the next send answers them (a
    /// request of a loop that waits for each reply, even through a
    /// callback), and is written by its caller rather than queued as the
    /// continuation of a burst.
    pub fn frames_received(&self, at: Instant) {
        let at = self.shared.nanos_since_epoch(at);
        self.shared.last_receive.store(at, Ordering::Relaxed);
    }

    /// Waits until the flusher has written everything queued, at most
    /// `within`; whether it did (not if it timed out or a write failed).
    pub fn drain(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut queue = lock(&self.shared.queue);
        while (queue.flusher_busy || !queue.bytes.is_empty()) && queue.failure.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            queue = self
                .shared
                .idle
                .wait_timeout(queue, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        queue.failure.is_none()
    }

    /// Whether a write of the flusher failed (and shut the socket down).
    pub fn failed(&self) -> bool {
        lock(&self.shared.queue).failure.is_some()
    }

    /// Shuts the socket down (both ways, waking any write waiting for
    /// room), stops the flusher, dropping what it has not written, and
    /// joins it. A write failing from now on is the close's doing, never a
    /// failure of the connection. Never call from the flusher (it runs no
    /// code of the caller's).
    pub fn stop(&self) {
        lock(&self.shared.queue).stopping = true;
        self.shared.work.notify_all();
        let _ = self.shared.stream.shutdown(Shutdown::Both);
        if let Some(flusher) = lock(&self.flusher).take() {
            let _ = flusher.join();
        }
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        // Not joined here: a stop that was never asked for must not wait.
        lock(&self.shared.queue).stopping = true;
        self.shared.work.notify_all();
    }
}

impl Shared {
    fn nanos_since_epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Records that a send that may coalesce starts now; whether it
    /// continues a burst: it comes within [`COALESCE_WINDOW`] of the
    /// previous one's start, with no frame received since. Counted from
    /// starts, since a reply can arrive before its request's send returns.
    fn send_joins_burst(&self) -> bool {
        let started = self.nanos_since_epoch(Instant::now());
        let previous = self.last_send.swap(started, Ordering::Relaxed);
        started.saturating_sub(previous) < COALESCE_WINDOW.as_nanos() as u64
            && self.last_receive.load(Ordering::Relaxed) <= previous
    }

    /// The flusher thread: writes the queue whenever it is woken, until
    /// stopped or a write fails.
    fn run_flusher(&self) {
        loop {
            {
                let mut queue = lock(&self.queue);
                while queue.bytes.is_empty() {
                    queue.flusher_busy = false;
                    self.idle.notify_all();
                    if queue.stopping {
                        return;
                    }
                    queue = self.work.wait(queue).unwrap_or_else(|e| e.into_inner());
                }
                if queue.stopping {
                    return;
                }
            }
            let mut socket = lock(&self.socket);
            let mut limit = WriteLimit::new(self.send_timeout, None);
            if let Err(error) = self.write_queue(&mut socket, &mut limit) {
                let mut queue = lock(&self.queue);
                if !queue.stopping {
                    queue.failure = Some((error.kind(), error.to_string()));
                }
                queue.bytes = Vec::new();
                queue.flusher_busy = false;
                self.idle.notify_all();
                drop(queue);
                // Only now: the reader, seeing the socket end, must find the
                // failure recorded.
                let _ = self.stream.shutdown(Shutdown::Both);
                drop(socket);
                return;
            }
        }
    }

    /// Writes what is queued; called with the socket held, so no other
    /// writer can slip a frame in between. Fails with the flusher's error
    /// if one of its writes failed meanwhile.
    fn write_queue(&self, socket: &mut Socket, limit: &mut WriteLimit) -> io::Result<()> {
        {
            let mut queue = lock(&self.queue);
            if let Some(error) = queue.error() {
                return Err(error);
            }
            if queue.bytes.is_empty() {
                return Ok(());
            }
            std::mem::swap(&mut queue.bytes, &mut socket.spare);
        }
        let result = write_parts_within(&self.stream, &mut [&socket.spare, &[]], limit);
        socket.spare.clear();
        result
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A frame as written: header, then payload (either may be empty).
pub(crate) type Parts<'a> = [&'a [u8]; 2];

/// Writes all of `parts` with [`sys::send_nowait`], retrying partial
/// writes and interrupts, with no allocation, and never waiting for room.
/// On an error (including `WouldBlock` from a full socket) `parts` holds
/// the bytes still unsent. Never raises `SIGPIPE`. On a mio socket, call
/// it inside `try_io`.
pub(crate) fn write_parts(socket: &impl AsSocket, parts: &mut Parts<'_>) -> io::Result<()> {
    write_parts_with(socket, parts, None)
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

/// As [`write_parts`], but waits for room within `limit`: `TimedOut`
/// then, with `parts` holding the unsent bytes.
pub(crate) fn write_parts_within(
    stream: &TcpStream,
    parts: &mut Parts<'_>,
    limit: &mut WriteLimit,
) -> io::Result<()> {
    write_parts_with(stream, parts, Some(limit))
}

/// Writes `parts`, each call never waiting; with a limit, the wait for
/// room is a poll bounded by it, and without one there is no wait.
fn write_parts_with(
    socket: &impl AsSocket,
    parts: &mut Parts<'_>,
    mut limit: Option<&mut WriteLimit>,
) -> io::Result<()> {
    while parts.iter().any(|part| !part.is_empty()) {
        let mut sent = match sys::send_nowait(socket, parts) {
            Ok(sent) => sent,
            Err(error) => match (error.kind(), limit.as_deref_mut()) {
                (io::ErrorKind::WouldBlock, Some(limit)) => {
                    sys::wait_writable(socket, limit.deadline())?;
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
    fn a_frame_someone_waits_on_is_written_by_its_caller_even_within_a_burst() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _server = listener.accept().unwrap();
        let writer = FrameWriter::new(client, Duration::from_secs(60)).unwrap();
        let flusher_started = || lock(&writer.shared.queue).flusher_started;
        // Each right after a plain send, as a request may follow a send
        // (or the previous reply) on a fast link: no queue, no flusher.
        for id in 0..100 {
            std::thread::sleep(COALESCE_WINDOW * 5);
            writer
                .send(200, id, b"s", far(), Coalesce::IfBurst)
                .unwrap();
            writer.send(200, id, b"r", far(), Coalesce::Never).unwrap();
        }
        assert!(
            !flusher_started(),
            "a round trip's request waited for the flusher"
        );
    }

    #[test]
    fn a_send_that_follows_a_received_frame_starts_no_burst() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _server = listener.accept().unwrap();
        let writer = FrameWriter::new(client, Duration::from_secs(60)).unwrap();
        // A request loop through callbacks: each request goes out, its
        // reply arrives, the next request follows within the window.
        for id in 0..100 {
            std::thread::sleep(COALESCE_WINDOW * 5);
            writer
                .send(200, id, b"q", far(), Coalesce::IfBurst)
                .unwrap();
            writer.frames_received(Instant::now());
            writer
                .send(200, id, b"q", far(), Coalesce::IfBurst)
                .unwrap();
        }
        assert!(
            !lock(&writer.shared.queue).flusher_started,
            "a request that answered a received frame waited for the flusher"
        );
    }

    #[test]
    fn concurrent_senders_never_interleave() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let writer = Arc::new(FrameWriter::new(client, Duration::from_secs(60)).unwrap());
        let threads: Vec<_> = (0..8u16)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..500u16 {
                        let len = (usize::from(i) * 37) % 3000;
                        let payload = vec![t as u8; len];
                        writer
                            .send(200 + t, i, &payload, far(), Coalesce::IfBurst)
                            .unwrap();
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
        let writer = FrameWriter::new(client, Duration::from_secs(60)).unwrap();
        let payload = vec![0u8; 64 * 1024];
        let failed = (0..100).any(|_| {
            writer
                .send(200, 0, &payload, far(), Coalesce::IfBurst)
                .is_err()
        });
        assert!(failed);
    }

    #[test]
    fn a_write_to_a_peer_that_does_not_read_ends_at_its_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let writer = FrameWriter::new(client, Duration::from_secs(60)).unwrap();
        let payload = vec![0u8; 1 << 20];
        let started = Instant::now();
        let limit = WriteLimit::new(
            Duration::from_secs(60),
            Some(started + Duration::from_millis(200)),
        );
        let error = (0..1000)
            .find_map(|_| {
                writer
                    .send(200, 0, &payload, limit, Coalesce::IfBurst)
                    .err()
            })
            .expect("the socket filled up");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(190) && took < Duration::from_millis(1000),
            "{took:?}"
        );
    }
}
