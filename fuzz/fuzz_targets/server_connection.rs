//! A whole server connection: arbitrary bytes from a peer (after a valid
//! hello, or instead of it) into a running libveltix server on 127.0.0.1,
//! then a half-close. The server must answer with well-formed output only
//! (its hello, the ack, intact frames), close the connection within a
//! bounded time, and keep serving: the next input is the proof.
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use veltix::protocol::handshake::{self, HandshakeItem};
use veltix::protocol::{Decoded, FrameDecoder};
use veltix::server::{Server, ServerConfig};

const ECHO: u16 = 200;

/// The server under test, started once.
fn server_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let server = Server::new(ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            max_message_size: 64 * 1024,
            max_outbound_bytes: 256 * 1024,
            max_memory_bytes: 8 << 20,
            handshake_timeout: Duration::from_secs(2),
            max_workers: 2,
            ..ServerConfig::default()
        })
        .unwrap();
        server
            .route(
                ECHO,
                Arc::new(|server, peer, message| {
                    let _ = server.reply(peer, message, ECHO, message.payload());
                }),
            )
            .unwrap();
        server.on_recv(Some(Arc::new(|_, _, _| {})));
        let port = server.start().unwrap();
        std::mem::forget(server);
        port
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let mut stream = TcpStream::connect(("127.0.0.1", server_port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    if mode & 1 == 1 {
        stream.write_all(&handshake::hello("fuzz")).unwrap();
    }
    // The peer may be cut while writing; what it wrote until then counts.
    for chunk in input.chunks(usize::from(mode >> 1).max(1)) {
        if stream.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    let mut output = Vec::new();
    match stream.read_to_end(&mut output) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not close the connection: {e}"),
    }
    check_output(&output);
});

/// The server's bytes: its hello, then (if the hello was accepted) the ack
/// and intact frames.
fn check_output(output: &[u8]) {
    let mut decoder = FrameDecoder::new(1 << 20, 4096);
    decoder.push(output);
    let mut messages = 0;
    while let Some(item) = handshake::next_item(&mut decoder) {
        match item {
            Ok(HandshakeItem::Message(_)) if messages < 2 => messages += 1,
            other => panic!("unexpected in the server's handshake: {other:?}"),
        }
        if messages == 2 {
            break;
        }
    }
    while let Some(decoded) = decoder.next_frame() {
        assert!(
            matches!(decoded, Decoded::Frame(_)),
            "the server sent a bad frame: {decoded:?}"
        );
    }
}
