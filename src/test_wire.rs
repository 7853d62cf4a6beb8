//! What the client's and the server's tests of a waiter that reads its own
//! reply both put on the wire: frames read from a raw socket, and a reply
//! with pushes and a PING around it, in one write.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use crate::protocol::frame::{encode_frame, PING, PONG};
use crate::protocol::{Decoded, FrameDecoder, Message};

/// The type of a request, and of its reply.
pub const REQUEST: u16 = 200;
/// The type of a one-way push.
pub const PUSH: u16 = 201;

/// The next frame from `stream`, `None` at the end of the stream.
pub fn next_frame(stream: &TcpStream, decoder: &mut FrameDecoder) -> Option<Message> {
    loop {
        match decoder.next_frame() {
            Some(Decoded::Frame(message)) => return Some(message),
            Some(Decoded::Dropped(reason)) => panic!("{reason}"),
            None => {}
        }
        if decoder.fill_with(|buf| (&*stream).read(buf)).ok()? == 0 {
            return None;
        }
    }
}

/// The peer's side of `rounds` round trips: each request of type
/// [`REQUEST`] answered by [`reply_among_pushes`] in one write, and the
/// PONG to its PING checked; then it holds the connection until the other
/// side leaves.
pub fn answer_among_pushes(stream: TcpStream, mut decoder: FrameDecoder, rounds: u16) {
    let mut out = &stream;
    for round in 0..rounds {
        let request = next_frame(&stream, &mut decoder).unwrap();
        assert_eq!(request.type_code(), REQUEST);
        out.write_all(&reply_among_pushes(round, &request)).unwrap();
        let pong = next_frame(&stream, &mut decoder).unwrap();
        assert_eq!((pong.type_code(), pong.request_id()), (PONG, 7000 + round));
    }
    while next_frame(&stream, &mut decoder).is_some() {}
}

/// Checks that the pushes of `rounds` rounds of [`answer_among_pushes`]
/// arrive on `pushed`, each within 10 s, all of them and in order.
pub fn assert_pushes_of_rounds(pushed: &Receiver<Vec<u8>>, rounds: u16) {
    let expected: Vec<Vec<u8>> = (0..rounds).flat_map(pushes_around_reply).collect();
    let got: Vec<Vec<u8>> = (0..expected.len())
        .map(|_| pushed.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    assert_eq!(got, expected, "pushes lost or out of order");
}

/// Round `round`'s answer to `request`: three pushes, a PING with id
/// `7000 + round`, the reply (payload `reply`), and a push after it.
fn reply_among_pushes(round: u16, request: &Message) -> Vec<u8> {
    let mut burst = Vec::new();
    for k in 0..3 {
        burst.extend(encode_frame(
            PUSH,
            0,
            format!("{round} before {k}").as_bytes(),
        ));
    }
    burst.extend(encode_frame(PING, 7000 + round, &[]));
    burst.extend(encode_frame(REQUEST, request.request_id(), b"reply"));
    burst.extend(encode_frame(PUSH, 0, format!("{round} after").as_bytes()));
    burst
}

/// The pushes of [`reply_among_pushes`] for `round`, in order.
fn pushes_around_reply(round: u16) -> Vec<Vec<u8>> {
    let mut pushes: Vec<Vec<u8>> = (0..3)
        .map(|k| format!("{round} before {k}").into_bytes())
        .collect();
    pushes.push(format!("{round} after").into_bytes());
    pushes
}
