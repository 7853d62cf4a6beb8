//! The server benchmark's reference point: a minimal Veltix server as one
//! would write it by hand for speed. One thread, one edge-triggered epoll
//! loop; it parses frames and checks their CRC, echoes in the I/O thread
//! and broadcasts by appending one encoded frame to every connection's
//! buffer, and writes each connection once per loop turn. No callbacks,
//! no limits, no liveness: what libveltix's server is measured against.

use std::io::{self, Read, Write};
use std::net::TcpListener as StdListener;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::loadgen::{BROADCAST, BROADCAST_OUT, ECHO};
use veltix::protocol::frame::FrameHeader;
use veltix::protocol::handshake::{self, HandshakeItem};
use veltix::protocol::{Decoded, FrameDecoder};

const LISTENER: Token = Token(usize::MAX);

struct Connection {
    stream: TcpStream,
    decoder: FrameDecoder,
    out: Vec<u8>,
    handshaken: bool,
    /// Listed in the loop's `dirty` since its buffer last went out.
    dirty: bool,
}

impl Connection {
    fn push(&mut self, header: &[u8], payload: &[u8]) {
        self.out.extend_from_slice(header);
        self.out.extend_from_slice(payload);
    }

    /// Writes what the socket takes; `false` if the connection failed.
    fn flush(&mut self) -> bool {
        let mut written = 0;
        while written < self.out.len() {
            match self.stream.write(&self.out[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        self.out.drain(..written);
        true
    }
}

/// Serves on `listener` until the process ends.
pub fn serve(listener: StdListener) -> ! {
    listener.set_nonblocking(true).unwrap();
    let mut listener = TcpListener::from_std(listener);
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .unwrap();
    let hello = handshake::hello("minimal");
    let mut connections: Slab<Connection> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut dirty: Vec<usize> = Vec::new();
    let mut broadcast_id: u16 = 32768;
    let mut broadcasts: Vec<u8> = Vec::new();
    loop {
        poll.poll(&mut events, None).unwrap();
        for event in events.iter() {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    stream.set_nodelay(true).unwrap();
                    let entry = connections.vacant_entry();
                    poll.registry()
                        .register(
                            &mut stream,
                            Token(entry.key()),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .unwrap();
                    let mut connection = Connection {
                        stream,
                        decoder: FrameDecoder::new(u32::MAX, 64 * 1024),
                        out: hello.clone(),
                        handshaken: false,
                        dirty: true,
                    };
                    connection.flush();
                    connection.dirty = false;
                    entry.insert(connection);
                }
                continue;
            }
            let key = event.token().0;
            let Some(connection) = connections.get_mut(key) else {
                continue;
            };
            let mut closed = false;
            if event.is_readable() || event.is_read_closed() {
                closed = !read(connection, &mut broadcasts, &mut broadcast_id);
            }
            if !connection.dirty && !connection.out.is_empty() {
                connection.dirty = true;
                dirty.push(key);
            }
            if closed {
                let mut connection = connections.remove(key);
                let _ = poll.registry().deregister(&mut connection.stream);
                continue;
            }
            if !broadcasts.is_empty() {
                for (key, connection) in connections.iter_mut() {
                    if connection.handshaken {
                        connection.out.extend_from_slice(&broadcasts);
                        if !connection.dirty {
                            connection.dirty = true;
                            dirty.push(key);
                        }
                    }
                }
                broadcasts.clear();
            }
        }
        for key in dirty.drain(..) {
            if let Some(connection) = connections.get_mut(key) {
                connection.dirty = false;
                if !connection.flush() {
                    let mut connection = connections.remove(key);
                    let _ = poll.registry().deregister(&mut connection.stream);
                }
            }
        }
    }
}

/// Reads until the socket is empty, answering the handshake and echoing;
/// broadcasts are encoded once into `broadcasts`. `false` when the
/// connection ended or broke the protocol.
fn read(connection: &mut Connection, broadcasts: &mut Vec<u8>, broadcast_id: &mut u16) -> bool {
    loop {
        let stream = &connection.stream;
        match connection.decoder.fill_with(|buf| (&*stream).read(buf)) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
        if !connection.handshaken {
            match handshake::next_item(&mut connection.decoder) {
                None => continue,
                Some(Ok(HandshakeItem::Message(_))) => {
                    connection.out.extend_from_slice(&handshake::ack());
                    connection.handshaken = true;
                }
                Some(_) => return false,
            }
        }
        while let Some(decoded) = connection.decoder.next_frame() {
            let Decoded::Frame(message) = decoded else {
                continue;
            };
            let payload = message.payload();
            match message.type_code() {
                ECHO => {
                    let header = FrameHeader::for_payload(ECHO, message.request_id(), payload);
                    connection.push(&header.encode(), payload);
                }
                BROADCAST => {
                    let header = FrameHeader::for_payload(BROADCAST_OUT, *broadcast_id, payload);
                    *broadcast_id = broadcast_id.checked_add(1).unwrap_or(32768);
                    broadcasts.extend_from_slice(&header.encode());
                    broadcasts.extend_from_slice(payload);
                }
                _ => {}
            }
        }
    }
}
