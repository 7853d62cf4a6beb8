//! What the benchmarks share: a raw socket's side of the handshake.

use std::io::{Read, Write};
use std::net::TcpStream;

use veltix::protocol::{handshake, FrameDecoder};

/// Plays the client's side of the handshake on a raw socket: reads the
/// server's hello, sends ours, reads the ack. Bytes read past it stay in
/// `decoder`.
pub fn handshake_as_client(stream: &mut TcpStream, decoder: &mut FrameDecoder) {
    let mut messages = 0;
    while messages < 2 {
        match handshake::next_item(decoder) {
            Some(Ok(_)) => {
                messages += 1;
                if messages == 1 {
                    stream.write_all(&handshake::hello("bench")).unwrap();
                }
            }
            Some(Err(e)) => panic!("{e}"),
            None => {
                decoder.fill_with(|b| stream.read(b)).unwrap();
            }
        }
    }
}
