//! Client benchmark: `cargo bench --bench client`.
//!
//! Runs libveltix's client, and the Python reference client from `.venv`
//! when present, against the same in-process Rust echo peer (so the peer is
//! not the bottleneck), and prints:
//! - request/response: sequential `send_and_wait` of 64 bytes (rate, p50, p99);
//! - callback round trips in worker mode and in dispatch mode: a 64-byte
//!   message echoed into a route callback, and a `request` whose reply
//!   callback runs, each waited for by the sending thread (on a channel in
//!   worker mode, by calling `dispatch` in dispatch mode);
//! - one-way throughput: 4 threads sending 64-byte messages;
//! - 1 MiB round trips;
//! - one thread sending 64-byte messages as fast as it can, each counted by
//!   a server that reads in bulk, beside ZeroMQ PUSH/PULL (when the system
//!   has `libzmq.so.5`) and a raw socket writing each frame with its own
//!   `write`;
//! - `ping` beside a raw TCP ping-pong of the same PING and PONG frames;
//! - round trips under load (`latency under load`): a raw ping-pong,
//!   `ping` and a 64-byte `send_and_wait`, with the machine idle, with one
//!   CPU hog on every core but one, and with one on every core (the hogs
//!   are threads of this bench, spinning for at most two minutes).
//!
//! The last three print medians of `VELTIX_BENCH_RUNS` runs (default 3).

use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;
#[path = "support/zmq.rs"]
mod zmq;

use support::handshake_as_client;
use veltix::client::{Client, ClientConfig};
use veltix::protocol::frame::{FrameHeader, PING};
use veltix::protocol::{handshake, Decoded, FrameDecoder};
use veltix::server::{PeerId, Server, ServerConfig};

/// Frames of this type are counted, not echoed.
const COUNTED: u16 = 220;
/// A frame of this type is answered with the count so far (8 bytes).
const COUNT_QUERY: u16 = 221;

fn main() {
    // `cargo bench --bench client -- <filter>` runs the sections whose name
    // holds the filter: latency, throughput, sender, ping, python.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |section: &str| {
        filter
            .as_ref()
            .map_or(true, |f| section.contains(f.as_str()))
    };
    let runs = std::env::var("VELTIX_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let port = start_echo_peer();
    println!("libveltix client against an in-process Rust echo peer on port {port}\n");
    if wanted("latency") {
        same_thread_floor(port, 20_000);
        let client = connected_client(port);
        request_response(&client, 20_000);
        client.close();
        for mode in [Mode::Workers, Mode::Dispatch] {
            callback_round_trips(port, mode, 20_000);
        }
    }
    if wanted("throughput") {
        let client = connected_client(port);
        throughput(&client, 4, 50_000);
        large_round_trips(&client, 100);
        client.close();
    }
    if wanted("sender") {
        single_sender(runs, 2_000_000);
    }
    if wanted("ping") {
        ping_against_raw(port, runs, 10_000);
    }
    if wanted("latency under load") {
        round_trips_under_load(port, runs, 5_000);
    }
    if !wanted("python") {
        return;
    }
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if python.exists() {
        println!("\nPython reference client (veltix 3.3.0) against the same peer:");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_client.py");
        let status = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    } else {
        println!("\n(no .venv: run scripts/test.sh once to compare with the Python client)");
    }
}

fn request_response(client: &Client, count: usize) {
    let payload = [7u8; 64];
    let samples = (0..count)
        .map(|_| {
            let t = Instant::now();
            client
                .send_and_wait(200, &payload, Duration::from_secs(5))
                .unwrap();
            t.elapsed()
        })
        .collect();
    print_latencies("request/response 64 B (send_and_wait)", samples);
}

fn connected_client(port: u16) -> Client {
    let client = Client::new(ClientConfig {
        port,
        ..ClientConfig::default()
    })
    .unwrap();
    client.connect().unwrap();
    client
}

/// Where callbacks run.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// On the client's worker threads (the default `max_workers`).
    Workers,
    /// On the host's thread, inside `dispatch` (`max_workers = 0`).
    Dispatch,
}

/// Round trips whose end is a callback: an echo into a route, and a
/// `request` reply. The sending thread waits for each callback before the
/// next send: on a channel the callback signals (worker mode), or by
/// calling `dispatch`, which runs it on this thread (dispatch mode).
fn callback_round_trips(port: u16, mode: Mode, count: usize) {
    let client = Client::new(ClientConfig {
        port,
        max_workers: match mode {
            Mode::Workers => ClientConfig::default().max_workers,
            Mode::Dispatch => 0,
        },
        ..ClientConfig::default()
    })
    .unwrap();
    let ran = Arc::new(AtomicU64::new(0));
    let (signal, signalled) = mpsc::channel::<()>();
    let callback_done = {
        let ran = ran.clone();
        let signal = std::sync::Mutex::new(signal);
        Arc::new(move || {
            ran.fetch_add(1, Ordering::Release);
            if let Mode::Workers = mode {
                let _ = signal.lock().unwrap().send(());
            }
        })
    };
    let on_echo = callback_done.clone();
    client.route(200, Arc::new(move |_, _| on_echo())).unwrap();
    client.connect().unwrap();
    let wait_for_callback = |expected: u64| match mode {
        Mode::Workers => signalled.recv().unwrap(),
        Mode::Dispatch => {
            while ran.load(Ordering::Acquire) < expected {
                client.dispatch(Some(Duration::from_secs(5))).unwrap();
            }
        }
    };
    let payload = [7u8; 64];
    // The connection's on_connect is the first dispatched event: run it.
    if let Mode::Dispatch = mode {
        client.dispatch(Some(Duration::ZERO)).unwrap();
    }
    let mut routed = Vec::with_capacity(count);
    for i in 0..count as u64 {
        let t = Instant::now();
        client.send(200, &payload).unwrap();
        wait_for_callback(i + 1);
        routed.push(t.elapsed());
    }
    let mut requested = Vec::with_capacity(count);
    for i in 0..count as u64 {
        let t = Instant::now();
        let on_reply = callback_done.clone();
        client
            .request(
                200,
                &payload,
                Duration::from_secs(5),
                Box::new(move |_, result| {
                    result.unwrap();
                    on_reply();
                }),
            )
            .unwrap();
        wait_for_callback(count as u64 + i + 1);
        requested.push(t.elapsed());
    }
    for (what, samples) in [("echo into a route", routed), ("request reply", requested)] {
        print_latencies(&format!("{what}, {mode:?} mode"), samples);
    }
    client.close();
}

/// Prints the rate, p50 and p99 of sequential round trips.
fn print_latencies(what: &str, mut samples: Vec<Duration>) {
    let count = samples.len();
    let total: Duration = samples.iter().sum();
    samples.sort();
    println!(
        "{what:<40} {:>9.0} /s  p50 {:>6.1} us  p99 {:>6.1} us",
        count as f64 / total.as_secs_f64(),
        micros(samples[count / 2]),
        micros(samples[count * 99 / 100]),
    );
}

/// The floor for request/response: one thread writing a frame and reading
/// the reply on a plain blocking socket (no reader thread, no callbacks).
fn same_thread_floor(port: u16, count: usize) {
    let (mut stream, mut decoder) = raw_connection(port);
    let frame = veltix::protocol::encode_frame(200, 1, &[7u8; 64]);
    let start = Instant::now();
    for _ in 0..count {
        stream.write_all(&frame).unwrap();
        while decoder.next_frame().is_none() {
            decoder.fill_with(|b| stream.read(b)).unwrap();
        }
    }
    let elapsed = start.elapsed();
    println!(
        "floor (same-thread blocking socket): {:>9.0} req/s  mean {:>6.1} us",
        count as f64 / elapsed.as_secs_f64(),
        micros(elapsed) / count as f64
    );
}

fn throughput(client: &Client, threads: usize, per_thread: usize) {
    let before = counted(client);
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || {
                let payload = [1u8; 64];
                for _ in 0..per_thread {
                    client.send(COUNTED, &payload).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let total = (threads * per_thread) as u64;
    while counted(client) < before + total {}
    let elapsed = start.elapsed();
    println!(
        "one-way 64 B, {threads} threads: {:>9.0} msg/s  ({total} messages in {:.2} s)",
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
}

fn large_round_trips(client: &Client, count: usize) {
    let payload = vec![3u8; 1024 * 1024];
    let start = Instant::now();
    for _ in 0..count {
        let reply = client
            .send_and_wait(200, &payload, Duration::from_secs(10))
            .unwrap();
        assert_eq!(reply.payload().len(), payload.len());
    }
    let elapsed = start.elapsed();
    println!(
        "1 MiB round trips:       {:>9.0} MiB/s each way  ({count} in {:.2} s)",
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
}

fn counted(client: &Client) -> u64 {
    let reply = client
        .send_and_wait(COUNT_QUERY, &[], Duration::from_secs(5))
        .unwrap();
    u64::from_be_bytes(reply.payload().try_into().unwrap())
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// A thread-per-connection peer: hello/ack, then echoes every frame (same
/// type and id), counts `COUNTED` frames and answers `COUNT_QUERY`.
fn start_echo_peer() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let stream = stream.unwrap();
            std::thread::spawn(move || serve(stream));
        }
    });
    port
}

fn serve(mut stream: TcpStream) {
    let Some(decoder) = handshake_as_server(&mut stream, 64 * 1024) else {
        return;
    };
    echo_frames(stream, decoder);
}

/// Answers every frame on `stream` until it ends: PINGs with PONGs, the
/// counting frames with counts, the rest with themselves.
fn echo_frames(stream: TcpStream, mut decoder: FrameDecoder) {
    let mut out = BufWriter::with_capacity(256 * 1024, stream.try_clone().unwrap());
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    loop {
        while let Some(Decoded::Frame(m)) = decoder.next_frame() {
            let (type_code, id) = (m.type_code(), m.request_id());
            let reply: &[u8] = match type_code {
                COUNTED => {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
                COUNT_QUERY => &counter
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .to_be_bytes(),
                0 => &[],
                _ => m.payload(),
            };
            let reply_type = if type_code == 0 { 1 } else { type_code };
            let header = FrameHeader::for_payload(reply_type, id, reply);
            out.write_all(&header.encode()).unwrap();
            out.write_all(reply).unwrap();
        }
        out.flush().unwrap();
        match decoder.fill_with(|b| (&stream).read(b)) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Plays the server's side of the handshake; the decoder (reading
/// `read_size` bytes at a time) with any bytes read past the client's
/// hello, or `None` if the client left.
fn handshake_as_server(stream: &mut TcpStream, read_size: usize) -> Option<FrameDecoder> {
    stream.set_nodelay(true).unwrap();
    let hello = serde_json::json!({"v": "bench", "pv": "1.0", "meta": {}});
    stream.write_all(&handshake::encode(&hello)).unwrap();
    let mut decoder = FrameDecoder::new(u32::MAX, read_size);
    loop {
        match handshake::next_item(&mut decoder) {
            Some(Ok(handshake::HandshakeItem::Message(_))) => break,
            Some(other) => panic!("unexpected {other:?}"),
            None => {
                if decoder.fill_with(|b| stream.read(b)).unwrap() == 0 {
                    return None;
                }
            }
        }
    }
    stream.write_all(&handshake::ack()).unwrap();
    Some(decoder)
}

/// A server for one connection that reads in bulk (256 KiB at a time),
/// checks every frame's CRC and counts them; sends the moment the
/// `expected`th arrived.
fn counting_server(expected: usize) -> (u16, mpsc::Receiver<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (counted, done) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut decoder = handshake_as_server(&mut stream, 256 * 1024).unwrap();
        let mut count = 0;
        while count < expected {
            while let Some(decoded) = decoder.next_frame() {
                match decoded {
                    Decoded::Frame(_) => count += 1,
                    Decoded::Dropped(reason) => panic!("a damaged frame: {reason}"),
                }
            }
            if count < expected && decoder.fill_with(|b| stream.read(b)).unwrap() == 0 {
                panic!("the sender left after {count} of {expected} frames");
            }
        }
        counted.send(Instant::now()).unwrap();
        // Read to the end, so the sender's close is an orderly one.
        let mut sink = vec![0u8; 64 * 1024];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    });
    (port, done)
}

/// One thread sending `count` 64-byte messages as fast as it can, each
/// counted by a server that reads in bulk: libveltix's `send`, a raw
/// socket writing each frame with its own `write` (a tenth as many), and
/// ZeroMQ PUSH/PULL when the system has it. Messages per second, medians
/// of `runs` runs, and libveltix's ratio to each.
fn single_sender(runs: usize, count: usize) {
    let zmq = zmq::Zmq::load();
    let mut veltix = Vec::new();
    let mut raw = Vec::new();
    let mut zeromq = Vec::new();
    for _ in 0..runs {
        veltix.push(veltix_single_sender(count));
        raw.push(raw_single_sender(count / 10));
        if let Some(zmq) = zmq {
            let port = free_port();
            zeromq.push(count as f64 / zmq.push_pull(port, count, 64).as_secs_f64());
        }
    }
    let (veltix, raw) = (median(veltix), median(raw));
    println!("\none thread sending 64 B messages, counted by a server reading in bulk (medians of {runs}):");
    println!("  libveltix send                 {veltix:>11.0} msg/s");
    println!(
        "  raw socket, one write a frame  {raw:>11.0} msg/s   libveltix / raw {:.1}",
        veltix / raw
    );
    match zeromq.is_empty() {
        true => println!(
            "  ZeroMQ PUSH/PULL: libzmq.so.5 not found (Debian: apt-get install libzmq3-dev)"
        ),
        false => {
            let zeromq = median(zeromq);
            println!(
                "  ZeroMQ PUSH/PULL               {zeromq:>11.0} msg/s   libveltix / ZeroMQ {:.2}",
                veltix / zeromq
            );
        }
    }
}

fn veltix_single_sender(count: usize) -> f64 {
    let (port, counted) = counting_server(count);
    let client = connected_client(port);
    let payload = [1u8; 64];
    let started = Instant::now();
    for _ in 0..count {
        client.send(COUNTED, &payload).unwrap();
    }
    let done = counted.recv().unwrap();
    client.close();
    count as f64 / (done - started).as_secs_f64()
}

fn raw_single_sender(count: usize) -> f64 {
    let (port, counted) = counting_server(count);
    let (mut stream, _) = raw_connection(port);
    let frame = veltix::protocol::encode_frame(COUNTED, 1, &[1u8; 64]);
    let started = Instant::now();
    for _ in 0..count {
        stream.write_all(&frame).unwrap();
    }
    let done = counted.recv().unwrap();
    count as f64 / (done - started).as_secs_f64()
}

/// `Client::ping` beside a raw ping-pong: one thread writing a PING frame
/// on a blocking socket and reading the PONG. Mean and p50 round trips,
/// medians of `runs` runs of `count`.
fn ping_against_raw(port: u16, runs: usize, count: usize) {
    let client = connected_client(port);
    let mut raw_ping = RawPinger::connect(port);
    let (mut veltix, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        raw.push(time_each(count, || raw_ping.round_trip()));
        veltix.push(time_each(count, || {
            client.ping(Duration::from_secs(5)).unwrap();
        }));
    }
    client.close();
    let (veltix, raw) = (RoundTrips::median_of(&veltix), RoundTrips::median_of(&raw));
    println!("\nping round trips (medians of {runs} runs of {count}):");
    println!(
        "  raw TCP ping-pong   mean {:>6.1} us  p50 {:>6.1} us",
        raw.mean, raw.p50
    );
    println!(
        "  libveltix ping      mean {:>6.1} us  p50 {:>6.1} us   libveltix / raw {:.2} (mean), {:.2} (p50)",
        veltix.mean,
        veltix.p50,
        veltix.mean / raw.mean,
        veltix.p50 / raw.p50
    );
}

/// A plain blocking socket to `port`, handshaken, and its decoder.
fn raw_connection(port: u16) -> (TcpStream, FrameDecoder) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut decoder = FrameDecoder::new(u32::MAX, 64 * 1024);
    handshake_as_client(&mut stream, &mut decoder);
    (stream, decoder)
}

/// A raw ping-pong: one thread writing a PING frame on a blocking socket
/// and reading the PONG.
struct RawPinger {
    stream: TcpStream,
    decoder: FrameDecoder,
    ping: Vec<u8>,
}

impl RawPinger {
    fn connect(port: u16) -> Self {
        let (stream, decoder) = raw_connection(port);
        let ping = veltix::protocol::encode_frame(PING, 1, &[]);
        RawPinger {
            stream,
            decoder,
            ping,
        }
    }

    fn round_trip(&mut self) {
        self.stream.write_all(&self.ping).unwrap();
        let stream = &mut self.stream;
        while self.decoder.next_frame().is_none() {
            self.decoder.fill_with(|b| stream.read(b)).unwrap();
        }
    }
}

/// Mean, p50 and p99 of a run of round trips, in microseconds.
#[derive(Clone, Copy)]
struct RoundTrips {
    mean: f64,
    p50: f64,
    p99: f64,
}

impl RoundTrips {
    /// Each figure's median over `runs`.
    fn median_of(runs: &[RoundTrips]) -> RoundTrips {
        let figure = |pick: fn(&RoundTrips) -> f64| median(runs.iter().map(pick).collect());
        RoundTrips {
            mean: figure(|r| r.mean),
            p50: figure(|r| r.p50),
            p99: figure(|r| r.p99),
        }
    }
}

/// Runs `round_trip` `count` times.
fn time_each(count: usize, mut round_trip: impl FnMut()) -> RoundTrips {
    let mut samples: Vec<Duration> = (0..count)
        .map(|_| {
            let started = Instant::now();
            round_trip();
            started.elapsed()
        })
        .collect();
    samples.sort();
    let total: Duration = samples.iter().sum();
    RoundTrips {
        mean: micros(total) / count as f64,
        p50: micros(samples[count / 2]),
        p99: micros(samples[count * 99 / 100]),
    }
}

/// Threads that keep CPUs busy (a game's render or simulation loop) until
/// dropped, each for at most `limit`.
struct Hogs {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Hogs {
    fn start(count: usize, limit: Duration) -> Hogs {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..count)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let until = Instant::now() + limit;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Hogs { stop, threads }
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Round trips beside a raw ping-pong on an idle machine, with every core
/// but one busy, and with every core busy: the raw ping-pong, `ping`, and
/// a 64-byte `send_and_wait`. Mean, p50 and p99 (medians of `runs` runs of
/// `count`, the three kinds interleaved), and each one's ratio to raw.
fn round_trips_under_load(port: u16, runs: usize, count: usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\nround trips under load ({cores} cores; medians of {runs} runs of {count}):");
    println!(
        "  {:<24} {:<40} {:>8} {:>8} {:>8}   / raw (mean, p50, p99)",
        "machine", "round trip", "mean us", "p50 us", "p99 us"
    );
    let client = connected_client(port);
    let mut raw_ping = RawPinger::connect(port);
    let dispatching = DispatchingRequester::connect(port);
    let (server, peer) = server_with_echo_peer();
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let payload = [7u8; 64];
    let conditions = [
        ("idle", 0),
        ("every core but one busy", cores.saturating_sub(1)),
        ("every core busy", cores),
    ];
    let mut raws = Vec::new();
    for (machine, hogs) in conditions {
        let _hogs = Hogs::start(hogs, Duration::from_secs(120));
        let mut results: Vec<(&str, Vec<RoundTrips>)> = Vec::new();
        let mut record = |name, trips| match results.iter_mut().find(|(n, _)| *n == name) {
            Some((_, runs)) => runs.push(trips),
            None => results.push((name, vec![trips])),
        };
        for _ in 0..runs {
            record(
                "raw TCP ping-pong",
                time_each(count, || raw_ping.round_trip()),
            );
            record(
                "libveltix ping",
                time_each(count, || {
                    client.ping(Duration::from_secs(5)).unwrap();
                }),
            );
            record(
                "libveltix send_and_wait 64 B",
                time_each(count, || {
                    client
                        .send_and_wait(200, &payload, Duration::from_secs(5))
                        .unwrap();
                }),
            );
            record(
                "libveltix request, dispatch mode",
                time_each(count, || dispatching.round_trip(&payload)),
            );
            record(
                "libveltix server send_and_wait 64 B",
                time_each(count, || {
                    server
                        .send_and_wait(peer, 200, &payload, Duration::from_secs(5))
                        .unwrap();
                }),
            );
        }
        let raw = RoundTrips::median_of(&results[0].1);
        for (name, runs) in &results {
            print_round_trips(machine, name, runs, raw);
        }
        raws.push(raw);
    }
    // The Python client apart, after every library row: a raw run that
    // followed one measured three times slower.
    if python.exists() {
        for ((machine, hogs), raw) in conditions.into_iter().zip(raws) {
            let _hogs = Hogs::start(hogs, Duration::from_secs(120));
            let runs: Vec<RoundTrips> = (0..runs)
                .map(|_| python_round_trips(&python, port, count / 5))
                .collect();
            print_round_trips(machine, "veltix 3.3.0 (Python) send_and_wait", &runs, raw);
        }
    }
    client.close();
    dispatching.client.close();
    server.close();
}

/// One row of the round trips under load: medians, and their ratios to
/// the raw ping-pong's.
fn print_round_trips(machine: &str, name: &str, runs: &[RoundTrips], raw: RoundTrips) {
    let r = RoundTrips::median_of(runs);
    println!(
        "  {machine:<24} {name:<40} {:>8.1} {:>8.1} {:>8.1}   {:.2}, {:.2}, {:.2}",
        r.mean,
        r.p50,
        r.p99,
        r.mean / raw.mean,
        r.p50 / raw.p50,
        r.p99 / raw.p99
    );
}

/// A dispatch-mode client whose `request` round trip ends in its reply
/// callback, run inside `dispatch` on the requesting thread.
struct DispatchingRequester {
    client: Client,
    replies: Arc<AtomicU64>,
}

impl DispatchingRequester {
    fn connect(port: u16) -> Self {
        let client = Client::new(ClientConfig {
            port,
            max_workers: 0,
            ..ClientConfig::default()
        })
        .unwrap();
        client.connect().unwrap();
        // on_connect is the first dispatched event.
        client.dispatch(Some(Duration::from_millis(100))).unwrap();
        DispatchingRequester {
            client,
            replies: Arc::default(),
        }
    }

    fn round_trip(&self, payload: &[u8]) {
        let expected = self.replies.load(Ordering::Acquire) + 1;
        let replies = self.replies.clone();
        self.client
            .request(
                200,
                payload,
                Duration::from_secs(5),
                Box::new(move |_, reply| {
                    reply.unwrap();
                    replies.fetch_add(1, Ordering::Release);
                }),
            )
            .unwrap();
        while self.replies.load(Ordering::Acquire) < expected {
            self.client.dispatch(Some(Duration::from_secs(5))).unwrap();
        }
    }
}

/// A libveltix server and the id of its one peer: a raw client thread
/// that answers every frame with itself.
fn server_with_echo_peer() -> (Server, PeerId) {
    let server = Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        ..ServerConfig::default()
    })
    .unwrap();
    let port = server.start().unwrap();
    std::thread::spawn(move || {
        let (stream, decoder) = raw_connection(port);
        echo_frames(stream, decoder);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(&peer) = server.peer_ids().first() {
            return (server, peer);
        }
        assert!(Instant::now() < deadline, "the echo peer never connected");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `count` sequential 64-byte `send_and_wait`s of the Python reference
/// client against the echo peer, timed by the script.
fn python_round_trips(python: &Path, port: u16, count: usize) -> RoundTrips {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_client.py");
    let output = Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .arg("round-trips")
        .arg(count.to_string())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    // The reference logs to standard output around it.
    let figures: Vec<f64> = text
        .lines()
        .find_map(|line| line.strip_prefix("round-trips:"))
        .unwrap_or_else(|| panic!("no round trips in {text}"))
        .split_whitespace()
        .map(|figure| figure.parse().unwrap_or_else(|_| panic!("{text}")))
        .collect();
    RoundTrips {
        mean: figures[0],
        p50: figures[1],
        p99: figures[2],
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
