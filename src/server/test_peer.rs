//! A raw client of a server, for tests that need bytes on the wire the
//! library's client would never send (several frames in one write, a
//! reply interleaved with pushes).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::disconnect::DisconnectReason;
use crate::protocol::{handshake, FrameDecoder};
use crate::server::{PeerId, Server, ServerConfig};

/// The I/O threads of the servers unit tests start:
/// `$VELTIX_TEST_IO_THREADS`, else what the test's config says.
pub fn io_threads_or(configured: u32) -> u32 {
    std::env::var("VELTIX_TEST_IO_THREADS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(configured)
}

/// A started server on 127.0.0.1 whose `on_recv` payloads and
/// disconnect reasons arrive on the channels.
pub fn server_with(
    config: ServerConfig,
) -> (Server, u16, Receiver<Vec<u8>>, Receiver<DisconnectReason>) {
    let server = Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        io_threads: io_threads_or(config.io_threads),
        ..config
    })
    .unwrap();
    let (pushes, pushed) = channel();
    let pushes = Mutex::new(pushes);
    server.on_recv(Some(Arc::new(move |_, _, message| {
        let _ = pushes.lock().unwrap().send(message.payload().to_vec());
    })));
    let (ends, ended) = channel();
    let ends = Mutex::new(ends);
    server.on_disconnect(Some(Arc::new(move |_, _, reason| {
        let _ = ends.lock().unwrap().send(reason);
    })));
    let port = server.start().unwrap();
    (server, port, pushed, ended)
}

/// A raw client of the server at `port`, past its handshake, and its
/// id on the server.
pub fn raw_peer(server: &Server, port: u16) -> (TcpStream, FrameDecoder, PeerId) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut decoder = FrameDecoder::new(1 << 20, 64 * 1024);
    let mut messages = 0;
    while messages < 2 {
        match handshake::next_item(&mut decoder) {
            Some(Ok(_)) => {
                messages += 1;
                if messages == 1 {
                    stream.write_all(&handshake::hello("test")).unwrap();
                }
            }
            Some(Err(e)) => panic!("{e}"),
            None => {
                decoder.fill_with(|b| stream.read(b)).unwrap();
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(&id) = server.peer_ids().first() {
            return (stream, decoder, id);
        }
        assert!(Instant::now() < deadline, "the peer never connected");
        std::thread::sleep(Duration::from_millis(1));
    }
}
