//! The client's send path from one thread: a burst is coalesced into few
//! writes and its last frame still leaves at once, a lone send is written
//! by the calling thread, frames sent before `disconnect` reach the server,
//! and a write that fails in the background ends the connection.

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use support::fake_server::{complete_handshake, read_frame, FakeServer};
use support::hostile::{raw_socket, serial, SegmentCount};
use support::{cpu_slowdown, time_slack};
use veltix::client::{Client, ClientConfig};
use veltix::protocol::{Decoded, FrameDecoder};

/// A connected client and the server's end of its connection.
fn connected() -> (Client, TcpStream) {
    let fake = FakeServer::new();
    let client = Client::new(ClientConfig {
        port: fake.port,
        ..ClientConfig::default()
    })
    .unwrap();
    let (accepted, stream) = channel();
    let server = fake.serve_one(move |mut stream| {
        complete_handshake(&mut stream);
        accepted.send(stream).unwrap();
    });
    client.connect().unwrap();
    server.join().unwrap();
    (client, stream.recv().unwrap())
}

/// The payload of the `i`th frame of a burst: 64 bytes naming `i`.
fn payload(i: usize) -> Vec<u8> {
    (i as u32).to_be_bytes().repeat(16)
}

/// Reads frames in bulk until end of stream or `limit` frames, checking
/// each CRC; their payloads.
fn read_frames(stream: &mut TcpStream, limit: usize) -> Vec<Vec<u8>> {
    let mut decoder = FrameDecoder::new(1 << 20, 256 * 1024);
    let mut payloads = Vec::new();
    while payloads.len() < limit {
        while let Some(decoded) = decoder.next_frame() {
            let Decoded::Frame(message) = decoded else {
                panic!("a damaged frame: {decoded:?}")
            };
            payloads.push(message.payload().to_vec());
        }
        if payloads.len() >= limit || decoder.fill_with(|b| stream.read(b)).unwrap() == 0 {
            break;
        }
    }
    payloads
}

fn assert_burst(payloads: &[Vec<u8>], count: usize) {
    assert_eq!(payloads.len(), count, "frames received");
    for (i, got) in payloads.iter().enumerate() {
        assert_eq!(got, &payload(i), "frame {i} out of order or damaged");
    }
}

#[test]
fn one_thread_sending_a_burst_makes_few_writes_and_its_last_frame_leaves_at_once() {
    const BURST: usize = 20_000;
    let _serial = serial();
    let (client, mut stream) = connected();
    let segments = SegmentCount::start(Some(raw_socket(&stream)));
    let (done, received) = channel();
    let server = std::thread::spawn(move || {
        let payloads = read_frames(&mut stream, BURST);
        done.send((Instant::now(), payloads)).unwrap();
        let segments_in = segments.map(|count| count.received());
        (stream, segments_in)
    });
    for i in 0..BURST {
        client.send(200, &payload(i)).unwrap();
    }
    // Nothing more is sent: the burst's tail must leave on its own.
    let last_send_returned = Instant::now();
    let (arrived, payloads) = received
        .recv_timeout(Duration::from_secs(10) + time_slack())
        .expect("the burst's last frames never left");
    assert_burst(&payloads, BURST);
    let tail_delay = arrived.saturating_duration_since(last_send_returned);
    assert!(
        tail_delay < Duration::from_millis(200) + time_slack(),
        "the last frame left {tail_delay:?} after its send returned"
    );
    let (_stream, segments) = server.join().unwrap();
    // One write per frame would be about 20,000 segments. Under a
    // sanitizer each send takes longer than the coalescing window, so no
    // burst forms: there only order and the tail's delay are checked, and
    // the normal pass checks the bound.
    let bound = match cpu_slowdown() > 1.0 {
        true => BURST as u32,
        false => (BURST / 40) as u32,
    };
    if let Some(segments) = segments {
        assert!(segments <= bound, "{BURST} frames took {segments} segments");
    }
    client.close();
}

#[test]
fn a_lone_send_is_on_the_wire_when_it_returns() {
    let _serial = serial();
    let (client, mut stream) = connected();
    for i in 0..20 {
        // Well past any burst: each send is alone.
        std::thread::sleep(Duration::from_millis(3));
        client.send(201, &payload(i)).unwrap();
        // On loopback a write by the calling thread has reached the
        // receiver's queue when it returns; a hand-off to another thread
        // would not have.
        stream.set_nonblocking(true).unwrap();
        let mut queued = [0u8; 256];
        let readable = stream.peek(&mut queued).unwrap_or(0);
        stream.set_nonblocking(false).unwrap();
        assert_eq!(readable, 15 + 64, "send {i} was not written by the caller");
        assert_eq!(read_frame(&mut stream).2, payload(i));
    }
    client.close();
}

#[test]
fn frames_sent_before_disconnect_reach_the_server() {
    const BURST: usize = 5_000;
    let (client, mut stream) = connected();
    let server = std::thread::spawn(move || read_frames(&mut stream, usize::MAX));
    for i in 0..BURST {
        client.send(200, &payload(i)).unwrap();
    }
    client.disconnect().unwrap();
    assert_burst(&server.join().unwrap(), BURST);
    client.close();
}

#[test]
fn a_burst_into_a_reset_connection_ends_it_with_an_error() {
    let (client, mut stream) = connected();
    let server = std::thread::spawn(move || {
        read_frames(&mut stream, 1000);
        // An abortive close: the client's next writes fail.
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    let started = Instant::now();
    let mut i = 0;
    let failed = loop {
        if let Err(error) = client.send(200, &payload(i)) {
            break error;
        }
        i += 1;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sends into a reset connection kept succeeding"
        );
    };
    server.join().unwrap();
    assert!(i >= 1000, "failed after {i} sends: {failed}");
    client
        .wait_until_closed(Some(Duration::from_secs(5)))
        .expect("the reset connection is reported closed");
    assert!(!client.is_connected());
    client.close();
}
