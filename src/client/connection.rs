//! Opening a connection: TCP connect and the client side of the handshake.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::ClientConfig;
use crate::error::{Error, Result};
use crate::log::log_at;
use crate::protocol::handshake::{self, HandshakeItem};
use crate::protocol::{Decoded, FrameDecoder, Message};
use crate::writer::FrameWriter;

/// An established connection: the socket and its send path.
pub(crate) struct Connection {
    stream: TcpStream,
    writer: FrameWriter,
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
    /// Wraps an established socket.
    pub fn new(stream: TcpStream) -> Result<Self> {
        let writer = stream
            .try_clone()
            .map_err(|e| Error::io("cannot duplicate the socket", &e))?;
        Ok(Connection {
            stream,
            writer: FrameWriter::new(writer),
        })
    }

    /// Sends one frame; on failure the connection is shut down so the
    /// reader notices and the disconnection is reported once.
    pub fn send(&self, type_code: u16, request_id: u16, payload: &[u8]) -> Result<()> {
        self.writer
            .send(type_code, request_id, payload)
            .map_err(|e| {
                self.shutdown();
                Error::io("sending failed", &e)
            })
    }

    /// The socket, for the reader thread.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Closes both directions, waking the reader and any blocked writer.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
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
    let mut decoder = FrameDecoder::new(config.max_message_size, config.buffer_size as usize);
    let mut early_frames = Vec::new();
    let mut read = |decoder: &mut FrameDecoder| {
        read_handshake_message(&stream, decoder, deadline, config, &mut early_frames)
    };
    let server_hello = read(&mut decoder)?;
    handshake::check_hello(&server_hello).map_err(Error::handshake)?;
    (&stream)
        .write_all(&handshake::hello(crate::VERSION))
        .map_err(|e| handshake_io_error("sending the hello failed", &e))?;
    let ack = read(&mut decoder)?;
    handshake::check_ack(&ack).map_err(Error::handshake)?;
    stream
        .set_read_timeout(None)
        .map_err(|e| Error::io("cannot clear the read timeout", &e))?;
    Ok(Established {
        stream,
        decoder,
        early_frames,
    })
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
    early_frames: &mut Vec<Message>,
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
                    early_frames.push(frame);
                }
                HandshakeItem::Frame(Decoded::Dropped(reason)) => {
                    log_at!(Warn, "during the handshake: {reason}");
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
        match decoder.fill_with(|buf| (&mut &*stream).read(buf)) {
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
