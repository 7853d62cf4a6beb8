//! libveltix's client against libveltix's server, both through the C ABI,
//! plus scripted raw peers for faults a real client does not produce.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::capi::{Event, TestClient};
use support::fake_server::read_frame;
use support::hostile::{frame, socket_between, RawPeer, SegmentCount};
use support::server_capi::{ServerEvent, TestServer, ECHO};
use veltix::ffi::*;
use veltix::protocol::handshake;
use veltix::protocol::{encode_frame, Decoded, FrameDecoder};

/// A raw TCP peer that completes the handshake and then does only what the
/// test says.
fn raw_peer(port: u16) -> (TcpStream, FrameDecoder) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(&handshake::hello("raw-test")).unwrap();
    let mut decoder = FrameDecoder::new(1 << 20, 4096);
    let mut messages = 0;
    while messages < 2 {
        match handshake::next_item(&mut decoder) {
            Some(Ok(handshake::HandshakeItem::Message(_))) => messages += 1,
            Some(other) => panic!("unexpected handshake item {other:?}"),
            None => {
                decoder.fill_with(|buf| stream.read(buf)).unwrap();
            }
        }
    }
    (stream, decoder)
}

#[test]
fn a_thousand_clients_exchange_messages_with_nothing_lost() {
    let clients_wanted = support::many_clients();
    const MESSAGES: usize = 10;
    let server = TestServer::start(|_| {});
    let clients: Vec<TestClient> = (0..clients_wanted)
        .map(|_| {
            let client = TestClient::new(server.port, |config| config.max_workers = 1);
            assert_eq!(client.connect(), VELTIX_OK);
            client
        })
        .collect();
    let mut peers: Vec<u64> = (0..clients_wanted).map(|_| server.next_connect()).collect();
    peers.sort_unstable();
    peers.dedup();
    assert_eq!(peers.len(), clients_wanted);
    assert_eq!(server.client_count(), clients_wanted);
    for client in &clients {
        assert_eq!(client.next_event(), Some(Event::Connect));
    }

    // Every client sends MESSAGES echo requests (one-way, replies come to
    // on_recv) and MESSAGES messages to the server's on_recv.
    for round in 0..MESSAGES {
        for (index, client) in clients.iter().enumerate() {
            let text = format!("{index}:{round}");
            assert_eq!(client.send(ECHO, text.as_bytes()), VELTIX_OK);
            assert_eq!(client.send(231, text.as_bytes()), VELTIX_OK);
        }
    }
    // The server got every on_recv message, in order per peer.
    let mut next_round = std::collections::HashMap::<u64, (usize, usize)>::new();
    for _ in 0..clients_wanted * MESSAGES {
        match server.next_event() {
            ServerEvent::Message { peer, payload, .. } => {
                let text = String::from_utf8(payload).unwrap();
                let (index, round) = text.split_once(':').unwrap();
                let (index, round) = (index.parse().unwrap(), round.parse().unwrap());
                let expected = next_round.entry(peer).or_insert((index, 0));
                assert_eq!(*expected, (index, round), "peer {peer} order");
                expected.1 += 1;
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }
    assert_eq!(next_round.len(), clients_wanted);
    // Every client got its echoes, in order.
    for (index, client) in clients.iter().enumerate() {
        for round in 0..MESSAGES {
            let (_, payload) = client.next_message();
            assert_eq!(payload, format!("{index}:{round}").into_bytes());
        }
    }
    // One broadcast reaches all of them exactly once.
    assert_eq!(server.broadcast(232, b"all", &[]), clients_wanted);
    for client in &clients {
        assert_eq!(client.next_message(), (None, b"all".to_vec()));
    }
    drop(clients);
    let gone = server
        .drain_events(Duration::from_millis(500))
        .iter()
        .filter(|e| matches!(e, ServerEvent::Disconnect(_, VELTIX_DISCONNECT_PEER_CLOSED)))
        .count();
    assert_eq!(gone, clients_wanted);
    assert_eq!(server.client_count(), 0);
}

#[test]
fn a_client_that_stops_reading_is_disconnected_and_others_are_served() {
    let server = TestServer::start(|config| {
        config.max_message_size = 256 * 1024;
        config.max_outbound_bytes = 1024 * 1024;
    });
    let (slow, _) = raw_peer(server.port);
    let slow_peer = server.next_connect();
    let healthy = TestClient::connected(server.port);
    let healthy_peer = server.next_connect();

    let chunk = vec![b'x'; 200 * 1024];
    let started = Instant::now();
    let mut sends = 0;
    let status = loop {
        let status = server.send(slow_peer, 233, &chunk);
        if status != VELTIX_OK {
            break status;
        }
        sends += 1;
        assert!(sends < 10_000, "the slow peer was never cut off");
    };
    assert_eq!(status, VELTIX_ERR_CLOSED);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "sends never blocked"
    );
    assert_eq!(
        server.next_event(),
        ServerEvent::Disconnect(slow_peer, VELTIX_DISCONNECT_ERROR)
    );
    assert_eq!(server.send(slow_peer, 233, b"x"), VELTIX_ERR_NOT_CONNECTED);
    // The other client was never affected.
    let started = Instant::now();
    assert_eq!(
        healthy.request(ECHO, b"still here", 2000).unwrap().2,
        b"still here"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(server.client_count(), 1);
    assert_eq!(server.peers(), vec![healthy_peer]);
    drop(slow);
}

#[test]
fn a_peer_that_never_handshakes_costs_only_its_slot_until_the_timeout() {
    let server = TestServer::start(|config| {
        config.max_connection = 2;
        config.handshake_timeout_ms = 400;
    });
    let mut silent = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let connected_at = Instant::now();

    // The silent peer holds a slot, but the server keeps serving.
    let client = TestClient::connected(server.port);
    assert_eq!(client.request(ECHO, b"served", 2000).unwrap().2, b"served");
    let third = TestClient::new(server.port, |_| {});
    assert_eq!(third.connect(), VELTIX_ERR_SERVER_FULL, "handshakes count");

    // It is closed at its deadline, never reported as a client.
    let mut greeting = Vec::new();
    silent.read_to_end(&mut greeting).unwrap();
    let waited = connected_at.elapsed();
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    assert_eq!(
        greeting,
        handshake::hello(veltix::VERSION),
        "it was greeted"
    );
    assert_eq!(third.connect(), VELTIX_OK, "its slot is free again");
    let connects = server
        .drain_events(Duration::from_millis(200))
        .into_iter()
        .filter(|e| matches!(e, ServerEvent::Connect(_)))
        .count();
    assert_eq!(connects, 2, "only the two real clients connected");
}

#[test]
fn bad_frames_are_dropped_and_oversized_ones_skipped_whole() {
    let server = TestServer::start(|config| config.max_message_size = 1024);
    let (mut raw, _) = raw_peer(server.port);
    let peer = server.next_connect();

    // An oversized frame whose payload hides a valid frame: skipped by its
    // declared length, so the hidden frame is never delivered.
    let hidden = encode_frame(234, 7, b"smuggled");
    let mut payload = vec![0u8; 2000];
    payload[100..100 + hidden.len()].copy_from_slice(&hidden);
    raw.write_all(&encode_frame(234, 1, &payload)).unwrap();
    // A frame with a bad CRC, then garbage: dropped.
    let mut bad_crc = encode_frame(234, 2, b"corrupted");
    bad_crc[10] ^= 0xff;
    raw.write_all(&bad_crc).unwrap();
    raw.write_all(b"garbage!").unwrap();
    // The connection goes on: a good frame arrives.
    raw.write_all(&encode_frame(234, 3, b"good")).unwrap();
    assert_eq!(
        server.next_event(),
        ServerEvent::Message {
            peer,
            type_code: 234,
            request_id: 3,
            payload: b"good".to_vec()
        }
    );
    assert_eq!(server.drain_events(Duration::from_millis(200)), vec![]);
    assert_eq!(server.client_count(), 1);
}

#[test]
fn the_server_pings_and_answers_pings_of_raw_peers() {
    let server = TestServer::start(|_| {});
    let (mut raw, mut decoder) = raw_peer(server.port);
    let peer = server.next_connect();
    raw.write_all(&encode_frame(0, 4242, b"ignored")).unwrap();
    let pong = loop {
        if let Some(decoded) = decoder.next_frame() {
            break decoded;
        }
        decoder.fill_with(|buf| raw.read(buf)).unwrap();
    };
    match pong {
        Decoded::Frame(message) => {
            assert_eq!((message.type_code(), message.request_id()), (1, 4242));
            assert!(message.payload().is_empty());
        }
        other => panic!("{other:?}"),
    }
    // A peer that never answers makes ping_client time out, not hang.
    let started = Instant::now();
    let mut rtt = 0.0;
    let status = unsafe { veltix_server_ping_client(server.ptr, peer, 300, &mut rtt) };
    assert_eq!(status, VELTIX_ERR_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn send_and_wait_fails_at_once_when_the_peer_leaves_or_the_server_closes() {
    let server = TestServer::start(|_| {});
    let (raw, _) = raw_peer(server.port);
    let peer = server.next_connect();
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        drop(raw);
    });
    let started = Instant::now();
    assert_eq!(
        server.request(peer, 235, b"?", 10_000),
        Err(VELTIX_ERR_CLOSED)
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    closer.join().unwrap();

    let (_raw, _) = raw_peer(server.port);
    let peer = server.next_connect();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| server.request(peer, 235, b"?", 10_000));
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(server.close(), VELTIX_OK);
        assert_eq!(waiter.join().unwrap(), Err(VELTIX_ERR_CLOSED));
    });
    assert_eq!(server.close(), VELTIX_OK, "closing twice is harmless");
}

static CALLBACK_FREES: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn free_on_message(
    _user_data: *mut std::ffi::c_void,
    server: *mut veltix_server_t,
    _peer: veltix_peer_id_t,
    _message: *const veltix_message_t,
) {
    veltix_server_free(server);
    CALLBACK_FREES.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn free_from_inside_a_callback_returns_and_closes_everything() {
    let mut config = unsafe { std::mem::zeroed::<veltix_server_config_t>() };
    unsafe { veltix_server_config_init(&mut config, std::mem::size_of_val(&config)) };
    let host = c"127.0.0.1";
    config.host = host.as_ptr();
    config.port = 0;
    config.io_threads = support::io_threads();
    let mut server = std::ptr::null_mut();
    unsafe {
        assert_eq!(veltix_server_new(&config, &mut server), VELTIX_OK);
        assert_eq!(
            veltix_server_on_recv(server, Some(free_on_message), std::ptr::null_mut(), None),
            VELTIX_OK
        );
        assert_eq!(veltix_server_start(server), VELTIX_OK);
    }
    let port = unsafe { veltix_server_port(server) };
    let client = TestClient::connected(port);
    assert_eq!(client.send(236, b"free yourself"), VELTIX_OK);
    assert_eq!(
        client.next_event(),
        Some(support::capi::disconnect(
            true,
            0,
            0,
            VELTIX_DISCONNECT_SERVER_CLOSED
        ))
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while CALLBACK_FREES.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(CALLBACK_FREES.load(Ordering::SeqCst), 1, "free returned");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "no longer listening"
    );
}

#[test]
fn configuration_and_arguments_are_checked() {
    let mut config = unsafe { std::mem::zeroed::<veltix_server_config_t>() };
    unsafe { veltix_server_config_init(&mut config, std::mem::size_of_val(&config)) };
    assert_eq!(config.port, 8080);
    assert_eq!(config.max_connection, -1);
    assert_eq!(config.max_workers, 4);
    assert_eq!(config.handshake_timeout_ms, 5000);
    assert_eq!(config.max_message_size, 10 * 1024 * 1024);
    let mut server = std::ptr::null_mut();
    config.max_workers = 257;
    assert_eq!(
        unsafe { veltix_server_new(&config, &mut server) },
        VELTIX_ERR_INVALID_ARGUMENT
    );
    assert!(server.is_null(), "out written only on success");
    assert!(support::capi::last_error().starts_with("config.max_workers"));
    config.max_workers = 1;
    for bad in [-7, 0, i32::MIN] {
        config.max_connection = bad;
        assert_eq!(
            unsafe { veltix_server_new(&config, &mut server) },
            VELTIX_ERR_INVALID_ARGUMENT,
            "max_connection {bad}"
        );
        assert!(
            support::capi::last_error().starts_with("config.max_connection"),
            "{}",
            support::capi::last_error()
        );
    }
    config.max_connection = -1;

    // A port in use fails to bind, with the reason.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    config.max_workers = 1;
    config.host = c"127.0.0.1".as_ptr();
    config.port = port;
    let mut server = std::ptr::null_mut();
    assert_eq!(
        unsafe { veltix_server_new(&config, &mut server) },
        VELTIX_OK
    );
    assert_eq!(
        unsafe { veltix_server_start(server) },
        VELTIX_ERR_BIND_FAILED
    );
    assert!(support::capi::last_error().contains("Fix:"));
    assert_eq!(unsafe { veltix_server_port(server) }, 0);
    unsafe { veltix_server_free(server) };
    drop(taken);

    // Unknown peers, NULL pointers and small buffers.
    let busy = TestServer::start(|_| {});
    assert_eq!(busy.send(999, 230, b"x"), VELTIX_ERR_NOT_CONNECTED);
    assert!(support::capi::last_error().contains("peer 999"));
    assert_eq!(
        unsafe { veltix_server_send(std::ptr::null_mut(), 1, 230, std::ptr::null(), 0) },
        VELTIX_ERR_NULL_POINTER
    );
    let client = TestClient::connected(busy.port);
    let peer = busy.next_connect();
    let mut tiny = [0 as std::ffi::c_char; 4];
    let mut out_port = 0;
    assert_eq!(
        unsafe {
            veltix_server_peer_address(busy.ptr, peer, tiny.as_mut_ptr(), tiny.len(), &mut out_port)
        },
        VELTIX_ERR_BUFFER_TOO_SMALL
    );
    assert_eq!(out_port, 0, "nothing written on failure");
    let big = vec![0u8; 1024 * 1024 * 10];
    assert_eq!(busy.send(peer, 230, &big), VELTIX_ERR_MESSAGE_TOO_LARGE);
    drop(client);
    unsafe { veltix_server_free(std::ptr::null_mut()) };
}

#[test]
fn replies_to_a_pipelined_burst_leave_in_few_writes() {
    pipelined_burst_in_few_writes(|c| c.max_workers = 1);
}

#[test]
fn with_callbacks_on_the_io_thread_a_pipelined_burst_is_echoed_in_order_in_few_writes() {
    pipelined_burst_in_few_writes(|c| c.callbacks_on_io_thread = true);
}

fn pipelined_burst_in_few_writes(config: impl FnOnce(&mut veltix_server_config_t)) {
    let server = TestServer::start(config);
    let mut raw = RawPeer::handshaken(server.port);
    let peer = server.next_connect();
    let (_, client_port) = server.peer_address(peer).unwrap();
    let segments = SegmentCount::start(socket_between(server.port, client_port));
    let burst: Vec<u8> = (0..200u16)
        .flat_map(|i| frame(ECHO, i, format!("request {i}").as_bytes()))
        .collect();
    raw.write(&burst).unwrap();
    for i in 0..200u16 {
        let (type_code, id, payload) = read_frame(&mut raw.stream);
        assert_eq!((type_code, id), (ECHO, i), "in order");
        assert_eq!(payload, format!("request {i}").as_bytes());
    }
    // Corked while the peer's next callbacks wait, the replies leave in a
    // few writes; one write per reply would be about 200 segments.
    if let Some(segments) = segments.map(|count| count.sent()) {
        assert!(segments <= 40, "200 replies took {segments} segments");
    }
}

#[test]
fn a_callback_may_wait_for_its_peer_while_more_of_its_messages_are_queued() {
    // The route asks the peer with send_and_wait; that request must not be
    // held back by the cork, though the peer's next messages are queued.
    let server = TestServer::start(|c| c.max_workers = 1);
    unsafe extern "C" fn ask_back(
        _: *mut std::ffi::c_void,
        server: *mut veltix_server_t,
        peer: veltix_peer_id_t,
        _: *const veltix_message_t,
    ) {
        let mut answer = std::ptr::null_mut();
        let status =
            veltix_server_send_and_wait(server, peer, 241, b"?".as_ptr(), 1, 5000, &mut answer);
        veltix_message_free(answer);
        let text = if status == VELTIX_OK {
            &b"answered"[..]
        } else {
            b"timed out"
        };
        veltix_server_send(server, peer, 242, text.as_ptr(), text.len());
    }
    assert_eq!(
        unsafe { veltix_server_route(server.ptr, 240, Some(ask_back), std::ptr::null_mut(), None) },
        VELTIX_OK
    );
    let mut raw = RawPeer::handshaken(server.port);
    let started = Instant::now();
    let three: Vec<u8> = (0..3u16).flat_map(|i| frame(240, i, b"go")).collect();
    raw.write(&three).unwrap();
    let mut answered = 0;
    while answered < 3 {
        let (type_code, id, _) = read_frame(&mut raw.stream);
        match type_code {
            241 => raw.write(&frame(241, id, b"!")).unwrap(),
            242 => answered += 1,
            other => panic!("unexpected type {other}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no request waited for a cork: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_broadcast_from_a_callback_reaches_everyone_in_few_writes_per_receiver() {
    // Each broadcast is queued for every receiver while the sender's
    // callbacks run, and written once per receiver when the batch ends:
    // nothing may be left behind, and nothing costs a write per message.
    let server = TestServer::start(|c| c.max_workers = 1);
    unsafe extern "C" fn rebroadcast(
        _: *mut std::ffi::c_void,
        server: *mut veltix_server_t,
        _: veltix_peer_id_t,
        message: *const veltix_message_t,
    ) {
        let (mut sent, mut len) = (0, 0);
        let data = veltix_message_content(message, &mut len);
        let status =
            veltix_server_broadcast(server, 251, data, len, std::ptr::null(), 0, &mut sent);
        assert_eq!(status, VELTIX_OK);
    }
    assert_eq!(
        unsafe {
            veltix_server_route(
                server.ptr,
                250,
                Some(rebroadcast),
                std::ptr::null_mut(),
                None,
            )
        },
        VELTIX_OK
    );
    let mut receivers: Vec<RawPeer> = (0..5).map(|_| RawPeer::handshaken(server.port)).collect();
    let watched = server.next_connect();
    for _ in 1..5 {
        server.next_connect();
    }
    let (_, watched_port) = server.peer_address(watched).unwrap();
    let segments = SegmentCount::start(socket_between(server.port, watched_port));
    let burst: Vec<u8> = (0..300u16)
        .flat_map(|i| frame(250, i, format!("news {i}").as_bytes()))
        .collect();
    receivers[4].write(&burst).unwrap();
    for receiver in &mut receivers {
        receiver
            .stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        for i in 0..300u16 {
            let (type_code, _, payload) = read_frame(&mut receiver.stream);
            assert_eq!(type_code, 251);
            assert_eq!(payload, format!("news {i}").as_bytes(), "in order");
        }
    }
    if let Some(segments) = segments.map(|count| count.sent()) {
        assert!(
            segments <= 20,
            "300 broadcasts took {segments} segments to one receiver"
        );
    }
}

#[test]
fn a_panicking_callback_costs_only_its_own_message() {
    // A read's messages run as one batch: a callback that panics must not
    // take the messages after it in the batch down with it.
    use std::sync::Arc;
    use veltix::server::{Server, ServerConfig};
    let server = Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        io_threads: support::io_threads(),
        port: 0,
        max_workers: 1,
        ..ServerConfig::default()
    })
    .unwrap();
    server
        .route(
            ECHO,
            Arc::new(|server, peer, message| {
                assert!(message.payload() != b"panic", "a callback bug");
                let _ = server.reply(peer, message, ECHO, message.payload());
            }),
        )
        .unwrap();
    let port = server.start().unwrap();
    let mut raw = RawPeer::handshaken(port);
    let burst: Vec<u8> = (0..50u16)
        .flat_map(|i| match i % 10 {
            3 => frame(ECHO, i, b"panic"),
            _ => frame(ECHO, i, b"fine"),
        })
        .collect();
    raw.write(&burst).unwrap();
    let answered: Vec<u16> = (0..45).map(|_| read_frame(&mut raw.stream).1).collect();
    let expected: Vec<u16> = (0..50u16).filter(|i| i % 10 != 3).collect();
    assert_eq!(answered, expected);
    server.shut_down();
}

#[test]
fn what_a_callback_sent_leaves_before_it_waits_for_a_reply() {
    // The route broadcasts, then asks the peer that sent it and waits: the
    // broadcast must reach the other peers while the callback waits, not
    // when it returns.
    let server = TestServer::start(|c| c.max_workers = 1);
    unsafe extern "C" fn broadcast_then_ask(
        _: *mut std::ffi::c_void,
        server: *mut veltix_server_t,
        peer: veltix_peer_id_t,
        _: *const veltix_message_t,
    ) {
        let news = b"news";
        let mut sent = 0;
        veltix_server_broadcast(server, 251, news.as_ptr(), news.len(), &peer, 1, &mut sent);
        let mut answer = std::ptr::null_mut();
        // Never answered: the wait ends by its timeout.
        veltix_server_send_and_wait(server, peer, 253, b"?".as_ptr(), 1, 2000, &mut answer);
        veltix_message_free(answer);
    }
    assert_eq!(
        unsafe {
            veltix_server_route(
                server.ptr,
                252,
                Some(broadcast_then_ask),
                std::ptr::null_mut(),
                None,
            )
        },
        VELTIX_OK
    );
    let mut asker = RawPeer::handshaken(server.port);
    let mut other = RawPeer::handshaken(server.port);
    other
        .stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    asker.write(&frame(252, 1, b"go")).unwrap();
    let (type_code, _, payload) = read_frame(&mut other.stream);
    assert_eq!((type_code, payload.as_slice()), (251, &b"news"[..]));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the broadcast waited for the callback's wait: {:?}",
        started.elapsed()
    );
}
