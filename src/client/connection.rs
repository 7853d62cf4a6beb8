//! Opening a connection: TCP connect and the client side of the handshake.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use super::reader::ReadState;
use super::ClientConfig;
use crate::backlog::{Backlog, BacklogLimits};
use crate::error::{Error, Result};
use crate::liveness::heartbeat_tick;
use crate::log::log_at;
use crate::protocol::frame::HEADER_SIZE;
use crate::protocol::handshake::{self, HandshakeItem};
use crate::protocol::{Decoded, FrameDecoder, Message};
use crate::stats::ConnectionStats;
use crate::writer::{write_parts_within, Coalesce, FrameWriter, WriteLimit};

/// Longest blocking read of a thread waiting for its reply (shorter with
/// heartbeats: their tick).
const LEAD_SLICE: Duration = Duration::from_millis(100);

/// An established connection: the socket, its read side, its send path
/// and its callback backlog.
pub(crate) struct Connection {
    stream: TcpStream,
    /// Held by the thread reading the socket (see [`super::reader`]).
    pub read: Mutex<ReadState>,
    /// The reader thread's wait for bytes, paused while another thread reads.
    pub watch: crate::sys::ByteWatch,
    /// The socket's read timeout: the longest blocking read of a thread
    /// waiting for its reply, so it looks at its deadline and the
    /// heartbeat at least this often.
    pub lead_slice: Duration,
    writer: FrameWriter,
    /// Messages waiting for callbacks; full, the reader stops reading.
    pub backlog: Arc<Backlog>,
    /// Bound of one blocking write.
    send_timeout: Duration,
    /// Set by [`Connection::shutdown`] before the socket is shut, so a send
    /// failing after it knows it raced a close.
    shut: AtomicBool,
    /// Set when a send failed (and shut the connection), so the reader
    /// reports an error rather than the end of stream it then reads.
    send_failed: AtomicBool,
    /// Bytes and frames since the handshake, the last round trip.
    pub stats: Arc<ConnectionStats>,
}

/// What a successful handshake leaves: the socket, the decoder holding any
/// bytes read past the ack, and data frames that arrived inside the
/// handshake (delivered once connected).
pub(crate) struct Established {
    pub stream: TcpStream,
    pub decoder: FrameDecoder,
    pub early_frames: Vec<Message>,
}

impl Connection {
    /// Wraps an established socket, whose handshake left `decoder`.
    pub fn new(stream: TcpStream, decoder: FrameDecoder, config: &ClientConfig) -> Result<Self> {
        let writer = stream
            .try_clone()
            .map_err(|e| Error::io("cannot duplicate the socket", &e))?;
        let writer = FrameWriter::new(writer, config.send_timeout)
            .map_err(|e| Error::io("cannot set the socket up for bounded sends", &e))?;
        let lead_slice = heartbeat_tick(&config.liveness.heartbeat)
            .map_or(LEAD_SLICE, |tick| tick.min(LEAD_SLICE));
        stream
            .set_read_timeout(Some(lead_slice))
            .map_err(|e| Error::io("cannot set the read timeout", &e))?;
        let watch = crate::sys::ByteWatch::new(&stream)
            .map_err(|e| Error::io("cannot watch the socket", &e))?;
        Ok(Connection {
            stream,
            read: Mutex::new(ReadState::new(decoder)),
            watch,
            lead_slice,
            writer,
            backlog: Backlog::new(config.backlog_limits()?, None, None),
            send_timeout: config.send_timeout,
            shut: AtomicBool::new(false),
            send_failed: AtomicBool::new(false),
            stats: Arc::new(ConnectionStats::new()),
        })
    }

    /// Sends one frame, waiting for the socket at most `send_timeout` (or
    /// until `deadline`, if sooner), coalesced with a burst as `coalesce`
    /// says. On failure the connection is shut down
    /// so the reader notices and the disconnection is reported once: a
    /// write that timed out may have left half a frame on the wire.
    pub fn send(
        &self,
        type_code: u16,
        request_id: u16,
        payload: &[u8],
        deadline: Option<Instant>,
        coalesce: Coalesce,
    ) -> Result<()> {
        let limit = WriteLimit::new(self.send_timeout, deadline);
        self.writer
            .send(type_code, request_id, payload, limit, coalesce)
            .map(|()| {
                self.stats.frame_sent(HEADER_SIZE + payload.len());
            })
            .map_err(|e| {
                // The writer thread's own failure may be noticed by the
                // reader, which closes, before this sender reports it.
                let raced_a_close = self.shut.load(Ordering::SeqCst) && !self.writer.failed();
                if !raced_a_close {
                    self.send_failed.store(true, Ordering::SeqCst);
                }
                self.shutdown();
                if raced_a_close {
                    Error::Closed("the connection was closed during the send".into())
                } else if e.kind() == std::io::ErrorKind::TimedOut {
                    Error::Timeout(format!(
                        "writing to the server did not finish in time (send_timeout_ms {} or the call's timeout): it stopped reading. The connection is closed, since a frame may be half written. Fix: check the server, or raise send_timeout_ms",
                        self.send_timeout.as_millis()
                    ))
                } else {
                    Error::io("sending failed", &e)
                }
            })
    }

    /// Notes that frames arrived at `at` (see [`FrameWriter::frames_received`]).
    pub fn frames_received(&self, at: Instant) {
        self.writer.frames_received(at);
    }

    /// Whether a send (or a background write of queued frames) failed and
    /// closed the connection.
    pub fn send_failed(&self) -> bool {
        self.send_failed.load(Ordering::SeqCst) || self.writer.failed()
    }

    /// The socket, for the thread reading it.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Takes the read side, waiting while another thread reads.
    pub fn lock_read(&self) -> MutexGuard<'_, ReadState> {
        self.read.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the read side unless another thread reads.
    pub fn try_read(&self) -> Option<MutexGuard<'_, ReadState>> {
        match self.read.try_lock() {
            Ok(state) => Some(state),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Closes both directions, waking the reader (also while it waits for
    /// room in the backlog) and any blocked writer, and joins the writer's
    /// flusher; queued frames not yet written are dropped.
    pub fn shutdown(&self) {
        self.shut.store(true, Ordering::SeqCst);
        self.backlog.close();
        self.writer.stop();
    }

    /// Closes the connection after the frames already sent are written,
    /// waiting for that at most `send_timeout` (a server that stopped
    /// reading).
    pub fn finish(&self) {
        if !self.writer.drain(self.send_timeout) {
            log_at!(
                Warn,
                "closing with queued frames unwritten: the server did not take them within send_timeout_ms, or the connection failed"
            );
        }
        self.shutdown();
    }
}

/// Connects and completes the handshake within `config.handshake_timeout`.
/// `on_tcp_connected` sees the socket before the handshake starts (so the
/// caller can shut it down to cancel).
pub(crate) fn establish(
    config: &ClientConfig,
    on_tcp_connected: impl FnOnce(&TcpStream),
) -> Result<Established> {
    let deadline = Instant::now() + config.handshake_timeout;
    let stream = connect_tcp(config, deadline)?;
    on_tcp_connected(&stream);
    stream
        .set_nodelay(true)
        .map_err(|e| Error::io("cannot set TCP_NODELAY", &e))?;
    crate::sys::prepare_stream(&stream)
        .and_then(|()| crate::sys::bound_waits(&stream))
        .map_err(|e| Error::io("cannot set the socket up", &e))?;
    config
        .liveness
        .apply_keepalive(&stream)
        .map_err(|e| Error::io("cannot set TCP keepalive", &e))?;
    let mut decoder = FrameDecoder::new(config.max_message_size, config.buffer_size as usize);
    let mut early = EarlyFrames::new(config)?;
    let mut read = |decoder: &mut FrameDecoder| {
        read_handshake_message(&stream, decoder, deadline, config, &mut early)
    };
    let server_hello = read(&mut decoder)?;
    handshake::check_hello(&server_hello).map_err(Error::handshake)?;
    write_parts_within(
        &stream,
        &mut [&handshake::hello(crate::VERSION), &[]],
        &mut WriteLimit::new(config.handshake_timeout, Some(deadline)),
    )
    .map_err(|e| handshake_io_error("sending the hello failed", &e))?;
    let ack = read(&mut decoder)?;
    handshake::check_ack(&ack).map_err(Error::handshake)?;
    stream
        .set_read_timeout(None)
        .map_err(|e| Error::io("cannot clear the read timeout", &e))?;
    Ok(Established {
        stream,
        decoder,
        early_frames: early.frames,
    })
}

/// Data frames that arrive inside the handshake (protocol.md 1.8), kept to
/// be delivered once connected, within the bounds of the callback backlog:
/// a server that sends frames instead of its hello fails the handshake
/// once they pass `max_queued_messages` or `max_queued_bytes`.
struct EarlyFrames {
    frames: Vec<Message>,
    /// Frames met, kept or dropped.
    count: usize,
    bytes: usize,
    limits: BacklogLimits,
}

impl EarlyFrames {
    fn new(config: &ClientConfig) -> Result<Self> {
        Ok(EarlyFrames {
            frames: Vec::new(),
            count: 0,
            bytes: 0,
            limits: config.backlog_limits()?,
        })
    }

    /// Counts a frame met during the handshake, keeping it if it is one.
    fn add(&mut self, frame: Option<Message>) -> Result<()> {
        self.count += 1;
        if let Some(frame) = frame {
            self.bytes += frame.payload().len();
            self.frames.push(frame);
        }
        if self.count > self.limits.messages || self.bytes > self.limits.bytes {
            return Err(Error::HandshakeFailed(format!(
                "the server sent {} data frames ({} bytes) during the handshake and no hello, over max_queued_messages ({}) or max_queued_bytes ({}). Fix: check that the server is a Veltix server",
                self.count, self.bytes, self.limits.messages, self.limits.bytes
            )));
        }
        Ok(())
    }
}

fn connect_tcp(config: &ClientConfig, deadline: Instant) -> Result<TcpStream> {
    let target = format!("{}:{}", config.server_addr, config.port);
    let addrs = (config.server_addr.as_str(), config.port)
        .to_socket_addrs()
        .map_err(|e| {
            Error::ConnectFailed(format!(
                "cannot resolve {target}: {e}. Fix: check config.server_addr"
            ))
        })?;
    let mut last_error = None;
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, remaining) {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut => Error::Timeout(format!(
            "connecting to {target} timed out. Fix: check that the server is reachable, or raise config.handshake_timeout_ms"
        )),
        Some(e) => Error::ConnectFailed(format!(
            "cannot connect to {target}: {e}. Fix: check that a Veltix server is listening there"
        )),
        None => Error::ConnectFailed(format!("{target} resolved to no address. Fix: check config.server_addr")),
    })
}

/// Reads until a whole handshake message is buffered; data frames met on
/// the way are kept in `early_frames` (protocol.md 1.8).
fn read_handshake_message(
    stream: &TcpStream,
    decoder: &mut FrameDecoder,
    deadline: Instant,
    config: &ClientConfig,
    early: &mut EarlyFrames,
) -> Result<serde_json::Value> {
    loop {
        while let Some(item) = handshake::next_item(decoder) {
            match item.map_err(Error::handshake)? {
                HandshakeItem::Message(message) => return Ok(message),
                HandshakeItem::Frame(Decoded::Frame(frame)) => {
                    log_at!(
                        Debug,
                        "data frame (type {}) inside the handshake; delivering it once connected",
                        frame.type_code()
                    );
                    early.add(Some(frame))?;
                }
                HandshakeItem::Frame(Decoded::Dropped(reason)) => {
                    log_at!(Warn, "during the handshake: {reason}");
                    early.add(None)?;
                }
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(handshake_timeout(config));
        }
        stream
            .set_read_timeout(Some(remaining.max(Duration::from_millis(1))))
            .map_err(|e| Error::io("cannot set the read timeout", &e))?;
        match decoder.fill_with(|buf| crate::sys::read(stream, buf)) {
            Ok(0) => {
                return Err(Error::HandshakeFailed(
                    "the server closed the connection during the handshake (it rejects our protocol version, or is not a Veltix server). Fix: check the server's address and version".into(),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(handshake_timeout(config))
            }
            Err(e) => return Err(handshake_io_error("reading the handshake failed", &e)),
        }
    }
}

fn handshake_timeout(config: &ClientConfig) -> Error {
    Error::Timeout(format!(
        "the handshake did not complete within {} ms. Fix: check that the server is a Veltix server, or raise config.handshake_timeout_ms",
        config.handshake_timeout.as_millis()
    ))
}

fn handshake_io_error(context: &str, error: &std::io::Error) -> Error {
    Error::HandshakeFailed(format!(
        "{context}: {error}. Fix: check that the server is a Veltix 1.x server"
    ))
}
