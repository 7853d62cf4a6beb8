//! Server benchmark: `cargo bench --bench server`.
//!
//! One load, three servers in the same run:
//! - libveltix's server, echoing from a route callback (`reply` on a worker);
//! - a raw baseline: one thread per connection that decodes frames and
//!   writes each back, with no callbacks, lanes or queues (what a
//!   hand-written blocking echo costs on this machine);
//! - the Python reference server (`tests/support/ref_server.py`, veltix
//!   3.3.0) when `.venv` exists.
//!
//! The load: `CONNECTIONS` raw sockets, a thread each, pipelining 64-byte
//! echo requests in windows of `WINDOW` (write the window, read its
//! replies) for `SECONDS`; printed as echoed messages per second.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use support::handshake_as_client;
use veltix::protocol::frame::encode_frame;
use veltix::protocol::{handshake, Decoded, FrameDecoder};
use veltix::server::{Server, ServerConfig};

const ECHO: u16 = 200;
const CONNECTIONS: usize = 8;
const WINDOW: usize = 32;
const SECONDS: f64 = 2.0;

fn main() {
    println!(
        "{CONNECTIONS} connections pipelining 64 B echo requests, {WINDOW} in flight each, {SECONDS} s per server\n"
    );

    let server = Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
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
    let port = server.start().unwrap();
    report("libveltix server (route callback)", port);
    server.shut_down();

    report("raw baseline (thread per connection)", start_raw_echo());

    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if !python.exists() {
        println!("(no .venv: run scripts/test.sh once to compare with the Python server)");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ref_server.py");
    let python_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(python)
        .arg(script)
        .args(["--port", &python_port.to_string(), "--forever"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // It logs before it prints READY.
    let ready = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("READY"));
    assert!(ready, "the Python server did not start");
    report("Python reference server (veltix 3.3.0)", python_port);
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs the load against `port` and prints the echo rate.
fn report(name: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs_f64(SECONDS);
    let started = Instant::now();
    let loads: Vec<_> = (0..CONNECTIONS)
        .map(|_| std::thread::spawn(move || pipeline(port, deadline)))
        .collect();
    let echoed: usize = loads.into_iter().map(|l| l.join().unwrap()).sum();
    let rate = echoed as f64 / started.elapsed().as_secs_f64();
    println!("{name:<40} {rate:>10.0} msg/s");
}

/// One connection's load until `deadline`; the replies it got.
fn pipeline(port: u16, deadline: Instant) -> usize {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut decoder = FrameDecoder::new(u32::MAX, 64 * 1024);
    handshake_as_client(&mut stream, &mut decoder);
    let window: Vec<u8> = (0..WINDOW)
        .flat_map(|i| encode_frame(ECHO, i as u16, &[7u8; 64]))
        .collect();
    let mut echoed = 0;
    while Instant::now() < deadline {
        stream.write_all(&window).unwrap();
        let mut got = 0;
        while got < WINDOW {
            match decoder.next_frame() {
                Some(Decoded::Frame(_)) => got += 1,
                Some(Decoded::Dropped(reason)) => panic!("{reason}"),
                None => {
                    decoder.fill_with(|b| stream.read(b)).unwrap();
                }
            }
        }
        echoed += got;
    }
    echoed
}

/// The raw baseline: greets, acks any hello, and echoes every frame from
/// the connection's own thread.
fn start_raw_echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                stream.set_nodelay(true).unwrap();
                stream.write_all(&handshake::hello("raw")).unwrap();
                let mut decoder = FrameDecoder::new(u32::MAX, 64 * 1024);
                loop {
                    match handshake::next_item(&mut decoder) {
                        Some(Ok(_)) => break,
                        Some(Err(_)) => return,
                        None => match decoder.fill_with(|b| stream.read(b)) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        },
                    }
                }
                stream.write_all(&handshake::ack()).unwrap();
                let mut out = Vec::new();
                loop {
                    while let Some(decoded) = decoder.next_frame() {
                        if let Decoded::Frame(m) = decoded {
                            out.extend(encode_frame(m.type_code(), m.request_id(), m.payload()));
                        }
                    }
                    if !out.is_empty() && stream.write_all(&out).is_err() {
                        return;
                    }
                    out.clear();
                    match decoder.fill_with(|b| stream.read(b)) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    port
}
