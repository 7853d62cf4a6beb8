//! A scripted fake server for faults the reference server cannot produce.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use veltix::protocol::handshake;

/// The reference server's hello, byte for byte.
pub const REFERENCE_HELLO: &[u8] = b"\x00\x27{\"v\": \"3.3.0\", \"pv\": \"1.0\", \"meta\": {}}";

/// A listening socket on a free port.
pub struct FakeServer {
    listener: TcpListener,
    pub port: u16,
}

impl FakeServer {
    pub fn new() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        FakeServer { listener, port }
    }

    /// The next connection, with a 10 s read timeout.
    pub fn accept(&self) -> TcpStream {
        let (stream, _) = self.listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// Runs `script` on the next connection in a thread.
    pub fn serve_one(
        self,
        script: impl FnOnce(TcpStream) + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || script(self.accept()))
    }
}

/// Reads one handshake message (2-byte length, JSON).
pub fn read_handshake(stream: &mut TcpStream) -> serde_json::Value {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Plays the server's side of a normal handshake.
pub fn complete_handshake(stream: &mut TcpStream) -> serde_json::Value {
    stream.write_all(REFERENCE_HELLO).unwrap();
    let hello = read_handshake(stream);
    stream.write_all(&handshake::ack()).unwrap();
    hello
}

/// Reads one frame: (type, request id, payload).
pub fn read_frame(stream: &mut TcpStream) -> (u16, u16, Vec<u8>) {
    let mut header = [0u8; 15];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(&header[..2], b"VX");
    let len = u32::from_be_bytes(header[5..9].try_into().unwrap()) as usize;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).unwrap();
    assert_eq!(
        crc32fast::hash(&payload),
        u32::from_be_bytes(header[9..13].try_into().unwrap())
    );
    (
        u16::from_be_bytes([header[3], header[4]]),
        u16::from_be_bytes([header[13], header[14]]),
        payload,
    )
}
