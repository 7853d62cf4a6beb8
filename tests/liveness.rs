//! Liveness: TCP keepalive options, heartbeats that find dead peers on
//! both sides (and stay out of the application's way with live ones), the
//! server's idle timeout, and per-connection statistics. Everything on
//! 127.0.0.1, bounded in time. What only Linux can show is in `linux`.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use support::capi::{Event, TestClient};
use support::fake_server::{complete_handshake, read_frame, FakeServer};
use support::hostile::{frame, RawPeer};
use support::server_capi::{ServerEvent, TestServer};
use veltix::ffi::*;

/// A heartbeat (interval 100 ms, timeout 400 ms) closed the connection
/// with reason ERROR within `low_ms..=high_ms` (plus the sanitizers' slack).
fn assert_detected((reason, detected): (i32, Duration), low_ms: u64, high_ms: u64, what: &str) {
    assert_eq!(reason, VELTIX_DISCONNECT_ERROR);
    assert!(
        detected >= Duration::from_millis(low_ms)
            && detected <= Duration::from_millis(high_ms) + support::time_slack(),
        "detected {detected:?} {what} (timeout 400 ms, interval 100 ms)"
    );
}

/// Heartbeats of 100 ms with a 400 ms timeout.
fn client_heartbeats(c: &mut veltix_client_config_t) {
    c.liveness.heartbeat_interval_ms = 100;
    c.liveness.heartbeat_timeout_ms = 400;
}

/// `client`'s statistics through the C API.
fn client_stats(client: &TestClient) -> veltix_stats_t {
    let mut stats = unsafe { std::mem::zeroed::<veltix_stats_t>() };
    stats.struct_size = std::mem::size_of::<veltix_stats_t>() as u32;
    assert_eq!(
        unsafe { veltix_client_stats(client.ptr, &mut stats) },
        VELTIX_OK,
        "{}",
        support::capi::last_error()
    );
    stats
}

/// Waits for the client's permanent on_disconnect; its reason and when.
fn wait_for_disconnect(client: &TestClient, within: Duration) -> (i32, Instant) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(Event::Disconnect { reason, .. }) =
            client.next_event_within(deadline.saturating_duration_since(Instant::now()))
        {
            return (reason, Instant::now());
        }
    }
    panic!("no on_disconnect within {within:?}");
}

#[test]
fn a_client_finds_a_server_that_stopped_answering() {
    let fake = FakeServer::new();
    let port = fake.port;
    let (went_silent_tx, went_silent) = std::sync::mpsc::channel::<(Instant, usize)>();
    let server = fake.serve_one(move |mut stream| {
        complete_handshake(&mut stream);
        // Answers PINGs for 500 ms, then stops reading and answering, with
        // the socket open (a frozen process).
        let start = Instant::now();
        let mut pings = 0;
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        while start.elapsed() < Duration::from_millis(500) {
            let mut header = [0u8; 15];
            if stream.read_exact(&mut header).is_err() {
                continue;
            }
            assert_eq!(u16::from_be_bytes([header[3], header[4]]), 0, "a PING");
            pings += 1;
            let id = u16::from_be_bytes([header[13], header[14]]);
            stream.write_all(&frame(1, id, b"")).unwrap();
        }
        went_silent_tx.send((Instant::now(), pings)).unwrap();
        std::thread::sleep(Duration::from_secs(3));
    });
    let client = TestClient::new(port, client_heartbeats);
    assert_eq!(client.connect(), VELTIX_OK);
    assert_eq!(client.next_event(), Some(Event::Connect));
    let (silent_since, pings) = went_silent.recv().unwrap();
    assert!(
        (3..=6).contains(&pings),
        "one PING per 100 ms of silence: {pings}"
    );
    let rtt = client_stats(&client).last_rtt_ms;
    assert!((0.0..100.0).contains(&rtt), "heartbeat round trip {rtt}");
    let (reason, at) = wait_for_disconnect(&client, Duration::from_secs(3));
    // The last PONG came at most one interval before the fake went silent.
    assert_detected(
        (reason, at - silent_since),
        250,
        600,
        "after the server went silent",
    );
    assert!(
        client
            .events_so_far()
            .iter()
            .all(|event| !matches!(event, Event::Message { .. })),
        "no PONG reached a callback"
    );
    server.join().unwrap();
}

#[test]
fn a_busy_connection_sends_no_heartbeat_pings() {
    let fake = FakeServer::new();
    let port = fake.port;
    let (kept_tx, kept) = std::sync::mpsc::channel();
    let server = fake.serve_one(move |mut stream| {
        complete_handshake(&mut stream);
        // A frame every 30 ms for 600 ms; anything the client sends back
        // would be a PING.
        stream.set_nonblocking(true).unwrap();
        let mut received = Vec::new();
        for i in 0..20u16 {
            stream.write_all(&frame(230, i, b"tick")).unwrap();
            std::thread::sleep(Duration::from_millis(30));
            let mut buf = [0u8; 256];
            if let Ok(n) = stream.read(&mut buf) {
                received.extend_from_slice(&buf[..n]);
            }
        }
        assert!(
            received.is_empty(),
            "the client sent {} bytes",
            received.len()
        );
        kept_tx.send(stream).unwrap();
    });
    let client = TestClient::new(port, client_heartbeats);
    assert_eq!(client.connect(), VELTIX_OK);
    server.join().unwrap();
    let _open = kept.recv().unwrap();
    assert!(client.is_connected());
}

#[test]
fn client_statistics_match_what_the_peer_sent_and_received() {
    let fake = FakeServer::new();
    let port = fake.port;
    let (tally_tx, tally) = std::sync::mpsc::channel::<(usize, usize)>();
    let server = fake.serve_one(move |mut stream| {
        complete_handshake(&mut stream);
        let mut sent = 0;
        for (i, payload) in [&b"0123456789"[..], b"", &[7u8; 1000][..]]
            .iter()
            .enumerate()
        {
            let bytes = frame(230, i as u16, payload);
            stream.write_all(&bytes).unwrap();
            sent += bytes.len();
        }
        let mut received = 0;
        for _ in 0..2 {
            let (_, _, payload) = read_frame(&mut stream);
            received += 15 + payload.len();
        }
        tally_tx.send((sent, received)).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    });
    let client = TestClient::new(port, |_| {});
    assert_eq!(client.connect(), VELTIX_OK);
    assert_eq!(client.send(231, b"hello"), VELTIX_OK);
    assert_eq!(client.send(231, b"seven b"), VELTIX_OK);
    let (sent, received) = tally.recv_timeout(Duration::from_secs(5)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while (client_stats(&client).frames_in < 3 || client_stats(&client).frames_out < 2)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = client_stats(&client);
    assert_eq!(
        (
            stats.bytes_in,
            stats.frames_in,
            stats.bytes_out,
            stats.frames_out
        ),
        (sent as u64, 3, received as u64, 2)
    );
    assert_eq!(stats.last_rtt_ms, -1.0, "nothing measured yet");
    assert!(stats.ms_since_last_frame < 1000);
    server.join().unwrap();
    // No connection: no statistics.
    let mut stats = unsafe { std::mem::zeroed::<veltix_stats_t>() };
    stats.struct_size = std::mem::size_of::<veltix_stats_t>() as u32;
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.is_connected() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        unsafe { veltix_client_stats(client.ptr, &mut stats) },
        VELTIX_ERR_NOT_CONNECTED
    );
}

/// `server`'s statistics of `peer` through the C API.
fn peer_stats(server: &TestServer, peer: veltix_peer_id_t) -> veltix_stats_t {
    let mut stats = unsafe { std::mem::zeroed::<veltix_stats_t>() };
    stats.struct_size = std::mem::size_of::<veltix_stats_t>() as u32;
    assert_eq!(
        unsafe { veltix_server_peer_stats(server.ptr, peer, &mut stats) },
        VELTIX_OK,
        "{}",
        support::capi::last_error()
    );
    stats
}

/// Waits for `peer`'s on_disconnect; its reason and when.
fn wait_for_peer_disconnect(
    server: &TestServer,
    peer: veltix_peer_id_t,
    within: Duration,
) -> (i32, Instant) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(ServerEvent::Disconnect(gone, reason)) =
            server.next_event_within(deadline.saturating_duration_since(Instant::now()))
        {
            if gone == peer {
                return (reason, Instant::now());
            }
        }
    }
    panic!("no on_disconnect of peer {peer} within {within:?}");
}

/// Answers the server's PINGs (and reads everything else) until `until`,
/// then returns with the socket open.
fn answer_pings(peer: &mut RawPeer, until: Instant) -> usize {
    peer.stream
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let mut pings = 0;
    while Instant::now() < until {
        let mut header = [0u8; 15];
        if peer.stream.read_exact(&mut header).is_err() {
            continue;
        }
        if u16::from_be_bytes([header[3], header[4]]) == 0 {
            pings += 1;
            let id = u16::from_be_bytes([header[13], header[14]]);
            peer.write(&frame(1, id, b"")).unwrap();
        }
    }
    pings
}

#[test]
fn a_server_finds_a_client_that_stopped_answering_and_fails_its_requests() {
    let server = TestServer::start(|c| {
        c.liveness.heartbeat_interval_ms = 100;
        c.liveness.heartbeat_timeout_ms = 400;
    });
    let mut raw = RawPeer::handshaken(server.port);
    let peer = server.next_connect();
    // A request the peer will never answer, pending while it dies.
    let pending = {
        let ptr = server.ptr as usize;
        std::thread::spawn(move || {
            let mut reply = std::ptr::null_mut();
            let started = Instant::now();
            let status = unsafe {
                veltix_server_send_and_wait(
                    ptr as *mut veltix_server_t,
                    peer,
                    232,
                    b"?".as_ptr(),
                    1,
                    30_000,
                    &mut reply,
                )
            };
            (status, started.elapsed())
        })
    };
    let pings = answer_pings(&mut raw, Instant::now() + Duration::from_millis(500));
    let silent_since = Instant::now();
    assert!(
        (3..=6).contains(&pings),
        "one PING per 100 ms of silence: {pings}"
    );
    let rtt = peer_stats(&server, peer).last_rtt_ms;
    assert!((0.0..100.0).contains(&rtt), "heartbeat round trip {rtt}");
    let (reason, at) = wait_for_peer_disconnect(&server, peer, Duration::from_secs(3));
    assert_detected(
        (reason, at - silent_since),
        250,
        600,
        "after the peer went silent",
    );
    let (status, waited) = pending.join().unwrap();
    assert_eq!(status, VELTIX_ERR_CLOSED);
    assert!(
        waited < Duration::from_secs(2),
        "failed at once: {waited:?}"
    );
    // No PONG reached a callback: the only events were connect/disconnect.
    assert!(server
        .next_event_within(Duration::from_millis(50))
        .is_none());
}

#[test]
fn the_idle_timeout_closes_a_silent_peer_and_keeps_a_chatty_one() {
    let server = TestServer::start(|c| {
        c.idle_timeout_ms = 300;
        c.liveness.heartbeat_interval_ms = 50; // PONGs do not count as messages
    });
    let mut silent = RawPeer::handshaken(server.port);
    let silent_id = server.next_connect();
    let started = Instant::now();
    let mut chatty = RawPeer::handshaken(server.port);
    let chatty_id = server.next_connect();
    let answering = std::thread::spawn(move || {
        answer_pings(&mut silent, Instant::now() + Duration::from_millis(800));
        silent
    });
    for i in 0..16u16 {
        chatty.write(&frame(232, i, b"chat")).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut events = Vec::new();
    while let Some(event) = server.next_event_within(Duration::from_millis(10)) {
        events.push(event);
    }
    let closed: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::Disconnect(peer, reason) => Some((*peer, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(closed, vec![(silent_id, VELTIX_DISCONNECT_ERROR)]);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.peers(), vec![chatty_id]);
    drop(answering.join().unwrap());
}

#[test]
fn server_statistics_match_what_the_peer_sent_and_received() {
    let server = TestServer::start(|_| {});
    let mut raw = RawPeer::handshaken(server.port);
    let peer = server.next_connect();
    let mut sent = 0;
    for (i, payload) in [&b"abc"[..], &[9u8; 5000][..]].iter().enumerate() {
        let bytes = frame(232, i as u16, payload);
        raw.write(&bytes).unwrap();
        sent += bytes.len();
    }
    // An echo, and a PING the server answers: both count.
    let echo = frame(support::server_capi::ECHO, 7, b"echo me");
    raw.write(&echo).unwrap();
    raw.write(&frame(0, 8, b"")).unwrap();
    sent += echo.len() + 15;
    assert_eq!(server.send(peer, 233, &[1u8; 300]), VELTIX_OK);
    let mut received = 0;
    for _ in 0..3 {
        let (_, _, payload) = read_frame(&mut raw.stream);
        received += 15 + payload.len();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    // Counted once each write returns: wait for the last to be counted.
    while (peer_stats(&server, peer).frames_in < 4 || peer_stats(&server, peer).frames_out < 3)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = peer_stats(&server, peer);
    assert_eq!(
        (
            stats.bytes_in,
            stats.frames_in,
            stats.bytes_out,
            stats.frames_out
        ),
        (sent as u64, 4, received as u64, 3)
    );
    assert!(stats.ms_since_last_frame < 1000);
    let mut unknown = stats;
    assert_eq!(
        unsafe { veltix_server_peer_stats(server.ptr, 9999, &mut unknown) },
        VELTIX_ERR_NOT_CONNECTED
    );
    // A struct_size the library does not know is refused, nothing written.
    let mut bigger = stats;
    bigger.struct_size += 8;
    bigger.bytes_in = 77;
    assert_eq!(
        unsafe { veltix_server_peer_stats(server.ptr, peer, &mut bigger) },
        VELTIX_ERR_INVALID_ARGUMENT
    );
    assert_eq!(bigger.bytes_in, 77);
}

unsafe extern "C" fn record_delays(
    user_data: *mut std::ffi::c_void,
    _: *mut veltix_client_t,
    state: *const veltix_disconnect_state_t,
) {
    let seen = &*(user_data as *const std::sync::Mutex<Vec<(u32, bool, u32)>>);
    let state = &*state;
    seen.lock()
        .unwrap()
        .push((state.attempt, state.permanent, state.next_delay_ms));
}

#[test]
fn on_disconnect_reports_the_backoff_delay_before_each_attempt() {
    let seen = Box::new(std::sync::Mutex::new(Vec::<(u32, bool, u32)>::new()));
    let client = TestClient::new(support::free_port(), |c| {
        c.retry = 3;
        c.retry_delay_ms = 50;
        c.retry_delay_max_ms = 150;
    });
    let user_data = &*seen as *const _ as *mut std::ffi::c_void;
    unsafe { veltix_client_on_disconnect(client.ptr, Some(record_delays), user_data, None) };
    let started = Instant::now();
    assert_eq!(client.connect(), VELTIX_ERR_CONNECT_FAILED);
    let took = started.elapsed();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (0, false, 50),
            (1, false, 100),
            (2, false, 150),
            (3, false, 0),
            (3, true, 0)
        ],
        "backoff waits before the first retry too, doubling up to the maximum"
    );
    assert!(
        took >= Duration::from_millis(300)
            && took < Duration::from_millis(1500) + support::time_slack(),
        "50 + 100 + 150 ms of waiting: {took:?}"
    );
}

/// What only Linux shows: its keepalive options (`TCP_KEEPIDLE` and
/// friends), and reference peers stopped with `SIGSTOP`.
#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use support::hostile::socket_between;
    use support::{RefClient, RefServer};

    fn option(fd: i32, level: i32, name: i32) -> i32 {
        let mut value: i32 = -1;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        let result =
            unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut i32).cast(), &mut len) };
        assert_eq!(result, 0, "getsockopt");
        value
    }

    /// (SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT) of `fd`.
    fn keepalive_of(fd: i32) -> (i32, i32, i32, i32) {
        (
            option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
            option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
            option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
            option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
        )
    }

    #[test]
    fn keepalive_options_are_set_on_both_sides() {
        let server = TestServer::start(|c| {
            c.liveness.keepalive_idle_s = 30;
            c.liveness.keepalive_interval_s = 5;
            c.liveness.keepalive_count = 4;
        });
        let client = TestClient::new(server.port, |c| {
            c.liveness.keepalive_idle_s = 20;
            c.liveness.keepalive_interval_s = 3;
            c.liveness.keepalive_count = 2;
        });
        assert_eq!(client.connect(), VELTIX_OK);
        let peer = server.next_connect();
        let (_, client_port) = server.peer_address(peer).unwrap();
        let client_side = socket_between(client_port, server.port).expect("the client's socket");
        let server_side = socket_between(server.port, client_port).expect("the server's socket");
        assert_eq!(keepalive_of(client_side), (1, 20, 3, 2));
        assert_eq!(keepalive_of(server_side), (1, 30, 5, 4));

        // Off by default: the system's settings stay.
        let plain = TestClient::connected(server.port);
        let peer = server.next_connect();
        let (_, client_port) = server.peer_address(peer).unwrap();
        let plain_side = socket_between(client_port, server.port).unwrap();
        assert_eq!(option(plain_side, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);
        drop(plain);

        // Half a keepalive setting is refused, naming the field.
        let mut config = unsafe { std::mem::zeroed::<veltix_client_config_t>() };
        unsafe { veltix_client_config_init(&mut config, std::mem::size_of_val(&config)) };
        config.liveness.keepalive_idle_s = 10;
        let mut out = std::ptr::null_mut();
        assert_eq!(
            unsafe { veltix_client_new(&config, &mut out) },
            VELTIX_ERR_INVALID_ARGUMENT
        );
        assert!(support::capi::last_error().contains("keepalive"));
    }

    /// Stops process `pid` with SIGSTOP (it keeps its sockets and answers
    /// nothing), waits for `detect` to see the disconnection, resumes it: the
    /// reason and how long detection took.
    fn detect_sigstopped(pid: u32, detect: impl FnOnce() -> (i32, Instant)) -> (i32, Duration) {
        let stopped = Instant::now();
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        let (reason, at) = detect();
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
        (reason, at - stopped)
    }

    #[test]
    fn client_heartbeats_with_the_reference_server_and_one_it_stopped() {
        let mut server = RefServer::start();
        let client = TestClient::new(server.port, client_heartbeats);
        assert_eq!(client.connect(), VELTIX_OK);
        // The reference answers the PINGs: a second of silence keeps the
        // connection, and no PONG reaches a callback.
        std::thread::sleep(Duration::from_secs(1));
        assert!(client.is_connected());
        assert!(client_stats(&client).last_rtt_ms >= 0.0);
        assert_eq!(
            client.request(200, b"still here", 5000).unwrap().2,
            b"still here"
        );
        assert!(client
            .drain_events(Duration::from_millis(50))
            .iter()
            .all(|event| matches!(event, Event::Connect)));
        let detected = detect_sigstopped(server.pid(), || {
            wait_for_disconnect(&client, Duration::from_secs(5))
        });
        server.kill();
        assert_detected(detected, 300, 700, "after SIGSTOP");
    }

    #[test]
    fn server_heartbeats_with_the_reference_client_and_one_it_stopped() {
        let server = TestServer::start(|c| {
            c.liveness.heartbeat_interval_ms = 100;
            c.liveness.heartbeat_timeout_ms = 400;
        });
        let client = RefClient::connected(server.port);
        let peer = server.next_connect();
        // The reference client answers the PINGs: a second of silence keeps it.
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(server.peers(), vec![peer]);
        assert!(peer_stats(&server, peer).last_rtt_ms >= 0.0);
        assert!(
            server
                .next_event_within(Duration::from_millis(50))
                .is_none(),
            "no PONG reached a callback"
        );
        let detected = detect_sigstopped(client.pid(), || {
            wait_for_peer_disconnect(&server, peer, Duration::from_secs(5))
        });
        drop(client);
        assert_detected(detected, 300, 700, "after SIGSTOP");
    }
}
