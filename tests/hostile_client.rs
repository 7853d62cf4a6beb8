//! Attacks on libveltix's client by scripted hostile servers (raw sockets
//! on 127.0.0.1), each bounded by a watchdog, and careless callers: what a
//! server that floods, never greets, or stops reading may cost the client,
//! and sends that race a disconnect. The tests run one at a time so each
//! measures only itself. Those that measure memory or CPU time (through
//! /proc) are in `measured`, on Linux only.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::capi::{last_error, Event, TestClient};
use support::fake_server::{complete_handshake, FakeServer};
use support::hostile::{frame, serial};
use support::time_slack;
use veltix::client::{Client, ClientConfig};
use veltix::ffi::*;

#[test]
fn a_send_to_a_server_that_stopped_reading_ends_by_its_timeout() {
    let _serial = serial();
    let (stalled, client) = stalled_server_and_client();

    // send_and_wait: its timeout covers the write. The first requests fit
    // in the socket buffers and time out waiting for a reply; then the
    // write itself runs out of the call's 500 ms.
    let payload = vec![3u8; 1 << 20];
    let started = Instant::now();
    let mut write_timed_out = false;
    while !write_timed_out && started.elapsed() < Duration::from_secs(10) {
        let call = Instant::now();
        let status = client
            .request(200, &payload, 500)
            .err()
            .unwrap_or(VELTIX_OK);
        let took = call.elapsed();
        assert_eq!(status, VELTIX_ERR_TIMEOUT, "{}", last_error());
        assert!(
            took < Duration::from_millis(700) + time_slack(),
            "one call took {took:?}"
        );
        write_timed_out = last_error().starts_with("writing");
    }
    println!(
        "send_and_wait of 1 MiB to a server that stopped reading: every call ended by its 500 ms timeout; the write timed out after {:?}: {}",
        started.elapsed(),
        last_error()
    );
    assert!(write_timed_out, "no write ever timed out: {}", last_error());
    // A timed-out write closes the connection, reported once.
    let event = client.next_event_within(Duration::from_secs(5));
    assert!(
        matches!(
            event,
            Some(Event::Disconnect {
                reason: VELTIX_DISCONNECT_ERROR,
                permanent: true,
                ..
            })
        ),
        "{event:?}"
    );
    assert!(!client.is_connected());
    drop(client);
    drop(stalled);
    // A plain send to a stalled server ends by send_timeout_ms as well.
    let (_stalled, client) = stalled_server_and_client();
    let started = Instant::now();
    let status = loop {
        let status = client.send(200, &payload);
        if status != VELTIX_OK || started.elapsed() > Duration::from_secs(10) {
            break status;
        }
    };
    let took = started.elapsed();
    assert_eq!(status, VELTIX_ERR_TIMEOUT, "{}", last_error());
    assert!(
        took < Duration::from_secs(3) + time_slack(),
        "took {took:?}"
    );
}

#[test]
fn a_burst_of_small_frames_to_a_server_that_stopped_reading_ends_by_its_timeout() {
    let _serial = serial();
    let (_stalled, client) = stalled_server_and_client();
    // Small frames are queued for the writer thread; once the socket and
    // the queue are full, the writer's write runs out of time and the
    // sender blocked behind it fails with the same timeout.
    let started = Instant::now();
    let mut sent = 0usize;
    let status = loop {
        let status = client.send(200, &[5u8; 64]);
        if status != VELTIX_OK || started.elapsed() > Duration::from_secs(10) {
            break status;
        }
        sent += 1;
    };
    let took = started.elapsed();
    assert_eq!(
        status,
        VELTIX_ERR_TIMEOUT,
        "after {sent} sends: {}",
        last_error()
    );
    assert!(
        took < Duration::from_secs(3) + time_slack(),
        "took {took:?}"
    );
    let event = client.next_event_within(Duration::from_secs(5));
    assert!(
        matches!(
            event,
            Some(Event::Disconnect {
                reason: VELTIX_DISCONNECT_ERROR,
                ..
            })
        ),
        "{event:?}"
    );
    let freeing = Instant::now();
    drop(client);
    assert!(
        freeing.elapsed() < Duration::from_secs(1) + time_slack(),
        "free took {:?}",
        freeing.elapsed()
    );
}

/// A server that completes the handshake, then never reads, holding its
/// socket open until dropped.
struct StalledServer {
    hold: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for StalledServer {
    fn drop(&mut self) {
        drop(self.hold.take());
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// A stalled server and a client connected to it (its `on_connect` seen),
/// with `send_timeout_ms` 300.
fn stalled_server_and_client() -> (StalledServer, TestClient) {
    let fake = FakeServer::new();
    let port = fake.port;
    let (hold, held) = std::sync::mpsc::channel::<()>();
    let thread = fake.serve_one(move |mut stream| {
        complete_handshake(&mut stream);
        let _ = held.recv_timeout(Duration::from_secs(30));
        drop(stream);
    });
    let stalled = StalledServer {
        hold: Some(hold),
        thread: Some(thread),
    };
    let client = TestClient::new(port, |c| c.send_timeout_ms = 300);
    assert_eq!(client.connect(), VELTIX_OK, "{}", last_error());
    assert_eq!(client.next_event(), Some(Event::Connect));
    (stalled, client)
}

#[test]
fn sends_racing_a_disconnect_are_not_io_errors() {
    let _serial = serial();
    let server = veltix::server::Server::new(veltix::server::ServerConfig {
        host: "127.0.0.1".into(),
        io_threads: support::io_threads(),
        port: 0,
        ..Default::default()
    })
    .unwrap();
    server.on_recv(Some(Arc::new(|_, _, _| {})));
    let port = server.start().unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..20 {
        let client = Arc::new(TestClient::connected(port));
        let stop = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let (client, stop) = (client.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut statuses = Vec::new();
                    let payload = vec![9u8; 16 * 1024];
                    while !stop.load(Ordering::Relaxed) {
                        statuses.push(client.send(200, &payload));
                    }
                    statuses
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(unsafe { veltix_client_disconnect(client.ptr) }, VELTIX_OK);
        std::thread::sleep(Duration::from_millis(10));
        stop.store(true, Ordering::Relaxed);
        for sender in senders {
            for status in sender.join().unwrap() {
                *seen.entry(status).or_insert(0u64) += 1;
            }
        }
    }
    server.shut_down();
    println!("send statuses around a disconnect: {seen:?}");
    for status in seen.keys() {
        assert!(
            [VELTIX_OK, VELTIX_ERR_NOT_CONNECTED, VELTIX_ERR_CLOSED].contains(status),
            "a send racing disconnect gave {status}: {seen:?}"
        );
    }
}

#[test]
fn a_server_held_back_by_back_pressure_loses_nothing() {
    let _serial = serial();
    let fake = FakeServer::new();
    let port = fake.port;
    let server = fake.serve_one(|mut stream| {
        complete_handshake(&mut stream);
        let burst: Vec<u8> = (0..3000u16)
            .flat_map(|i| frame(200, i, &vec![1u8; if i % 100 == 0 { 100_000 } else { 10 }]))
            .collect();
        stream.write_all(&burst).unwrap();
        // A PING behind the burst is answered once the reader reads again.
        stream.write_all(&frame(0, 4242, b"")).unwrap();
        let (type_code, id, _) = support::fake_server::read_frame(&mut stream);
        assert_eq!((type_code, id), (1, 4242), "the PONG");
    });
    let client = Client::new(ClientConfig {
        port,
        max_workers: 1,
        max_queued_messages: 8,
        max_queued_bytes: 64 * 1024,
        ..ClientConfig::default()
    })
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    client.on_recv(Some(Arc::new(move |_, message| {
        std::thread::sleep(Duration::from_micros(200));
        tx.lock().unwrap().send(message.request_id()).unwrap();
    })));
    client.connect().unwrap();
    let got: Vec<u16> = (0..3000)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(10))
                .expect("a message within 10 s")
        })
        .collect();
    assert_eq!(got, (0..3000).collect::<Vec<u16>>(), "all, in order");
    server.join().unwrap();
    client.close();
}

/// What an attack costs in memory or CPU time, measured through /proc.
#[cfg(target_os = "linux")]
mod measured {
    use super::*;
    use std::io::Read;
    use std::net::TcpStream;
    use std::sync::atomic::AtomicUsize;

    use support::measure::{allocator_slack, rss, PeakRss, Watchdog};

    const MIB: u64 = 1024 * 1024;

    /// Writes `chunk` to `stream` until `stop` is set or the client goes away;
    /// the bytes the client's socket accepted.
    fn flood(mut stream: TcpStream, chunk: &[u8], stop: &AtomicBool) -> u64 {
        stream
            .set_write_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let (mut sent, mut at) = (0u64, 0usize);
        while !stop.load(Ordering::Relaxed) {
            match stream.write(&chunk[at..]) {
                Ok(n) => {
                    sent += n as u64;
                    at = (at + n) % chunk.len();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        sent
    }

    /// A client whose `on_recv` takes `pause`, and how many times it ran.
    fn slow_client(config: ClientConfig, pause: Duration) -> (Client, Arc<AtomicUsize>) {
        let client = Client::new(config).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = ran.clone();
        client.on_recv(Some(Arc::new(move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(pause);
        })));
        (client, ran)
    }

    #[test]
    fn a_server_flooding_a_slow_callback_is_held_back_by_tcp() {
        let _serial = serial();
        let _watchdog = Watchdog::new(
            "server flood into a slow on_recv",
            Duration::from_secs(60),
            rss() + 3 * 1024 * MIB,
        );
        let fake = FakeServer::new();
        let (client, handled) = slow_client(
            ClientConfig {
                port: fake.port,
                max_workers: 1,
                ..ClientConfig::default()
            },
            Duration::from_millis(10),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut stream = fake.accept();
                complete_handshake(&mut stream);
                flood(stream, &frame(200, 0, &vec![5u8; 64 * 1024]), &stop)
            })
        };
        let peak = PeakRss::start();
        client.connect().unwrap();
        std::thread::sleep(Duration::from_secs(2));
        let grown = peak.growth();
        stop.store(true, Ordering::Relaxed);
        let sent = server.join().unwrap();
        println!(
        "2 s server flood into a 10 ms on_recv: the client took {} MiB, RSS grew {} MiB, {} callbacks ran",
        sent / MIB,
        grown / MIB,
        handled.load(Ordering::Relaxed)
    );
        assert!(
            grown < 64 * MIB + allocator_slack(),
            "RSS grew {} MiB",
            grown / MIB
        );
        assert!(sent < 64 * MIB, "the client took {} MiB", sent / MIB);
        let started = Instant::now();
        client.close();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "free with a backlog took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn frames_during_the_handshake_are_bounded() {
        let _serial = serial();
        let _watchdog = Watchdog::new(
            "handshake flood",
            Duration::from_secs(60),
            rss() + 3 * 1024 * MIB,
        );
        let fake = FakeServer::new();
        let port = fake.port;
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                // Valid 1 MiB frames, and never a hello.
                flood(fake.accept(), &frame(200, 0, &vec![1u8; 1 << 20]), &stop)
            })
        };
        let client = TestClient::new(port, |c| c.handshake_timeout_ms = 4000);
        let peak = PeakRss::start();
        let started = Instant::now();
        let status = client.connect();
        let took = started.elapsed();
        let grown = peak.growth();
        stop.store(true, Ordering::Relaxed);
        let sent = server.join().unwrap();
        println!(
        "handshake flood of 1 MiB frames: connect gave {status} after {took:?} ({}), {} MiB sent, RSS grew {} MiB",
        last_error(),
        sent / MIB,
        grown / MIB
    );
        assert_eq!(status, VELTIX_ERR_HANDSHAKE_FAILED, "{}", last_error());
        assert!(last_error().contains("handshake"), "{}", last_error());
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert!(
            grown < 64 * MIB + allocator_slack(),
            "RSS grew {} MiB",
            grown / MIB
        );
    }

    #[test]
    fn free_returns_promptly_with_a_backlog_of_client_callbacks() {
        let _serial = serial();
        let _watchdog = Watchdog::new(
            "client free",
            Duration::from_secs(60),
            rss() + 2 * 1024 * MIB,
        );
        let fake = FakeServer::new();
        let port = fake.port;
        let server = fake.serve_one(|mut stream| {
            complete_handshake(&mut stream);
            let burst: Vec<u8> = (0..100_000u32)
                .flat_map(|i| frame(200, i as u16, b"x"))
                .collect();
            let _ = stream.write_all(&burst);
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        });
        let (client, ran) = slow_client(
            ClientConfig {
                port,
                max_workers: 1,
                max_queued_messages: 200_000,
                ..ClientConfig::default()
            },
            Duration::from_millis(1),
        );
        client.connect().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        client.close();
        let took = started.elapsed();
        println!(
            "client free with a backlog of ~{} callbacks: {took:?}",
            100_000 - ran.load(Ordering::Relaxed)
        );
        assert!(took < Duration::from_secs(1), "free took {took:?}");
        server.join().unwrap();
    }

    #[test]
    fn a_stream_of_bad_crc_headers_costs_the_reader_linear_work() {
        let _serial = serial();
        let _watchdog = Watchdog::new(
            "bad CRC stream to a client",
            Duration::from_secs(60),
            rss() + 2 * 1024 * MIB,
        );
        let fake = FakeServer::new();
        let port = fake.port;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let server = {
            let (stop, sent) = (stop.clone(), sent.clone());
            fake.serve_one(move |mut stream| {
                complete_handshake(&mut stream);
                // Back-to-back headers declaring 10 MiB frames with bad CRCs:
                // 10 MiB at once, then 1 MiB/s.
                let header = support::hostile::declaring_header(200, (10 * MIB) as u32 - 15);
                let chunk: Vec<u8> = header.iter().copied().cycle().take(15 * 4369).collect();
                let mut total = 0;
                while !stop.load(Ordering::Relaxed) {
                    if stream.write_all(&chunk).is_err() {
                        return;
                    }
                    total += chunk.len();
                    sent.store(total, Ordering::Relaxed);
                    if total > 10 * MIB as usize {
                        std::thread::sleep(Duration::from_micros(62_500));
                    }
                }
            })
        };
        let client = TestClient::new(port, |_| {});
        assert_eq!(client.connect(), VELTIX_OK, "{}", last_error());
        while sent.load(Ordering::Relaxed) < 10 * MIB as usize {
            std::thread::sleep(Duration::from_millis(10));
        }
        let cpu_before = support::measure::thread_cpu("veltix-reader");
        let window = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        let cpu = support::measure::thread_cpu("veltix-reader") - cpu_before;
        let share = cpu.as_secs_f64() / window.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        drop(client);
        server.join().unwrap();
        println!(
            "bad-CRC stream at 1 MiB/s to a client: its reader thread used {:.1}% of a core",
            share * 100.0
        );
        assert!(
            share < 0.5,
            "the reader thread used {:.0}% of a core",
            share * 100.0
        );
    }
}
