//! The real veltix 3.3.0 Python client against libveltix's server, driven
//! through the server's C ABI.

mod support;

use std::time::Duration;

use serde_json::json;
use support::server_capi::{ServerEvent, TestServer, ECHO};
use support::{restartable_port, RefClient};
use veltix::ffi::*;

const PY_ROUTED: u16 = 203;
const ASK: u16 = 212;
const ANSWER: u16 = 213;

#[test]
fn routes_send_and_wait_and_pings_work_both_ways() {
    let server = TestServer::start(|_| {});
    let python = RefClient::connected(server.port);
    let peer = server.next_connect();
    assert_eq!(server.client_count(), 1);
    assert_eq!(server.peers(), vec![peer]);
    let (ip, port) = server.peer_address(peer).unwrap();
    assert_eq!(ip, "127.0.0.1");
    assert_ne!(port, 0);

    // Python -> our server: send_and_wait answered by our ECHO route.
    let answer = python.command(json!({"op": "request", "type": ECHO, "text": "hello"}));
    assert_eq!(answer["reply"]["type"], ECHO);
    assert_eq!(answer["reply"]["text"], "hello");

    // Python -> our server: a one-way message reaches on_recv.
    python.command(json!({"op": "send", "type": 230, "text": "one way"}));
    match server.next_event() {
        ServerEvent::Message {
            peer: from,
            type_code,
            payload,
            ..
        } => assert_eq!(
            (from, type_code, payload.as_slice()),
            (peer, 230, &b"one way"[..])
        ),
        other => panic!("expected a message, got {other:?}"),
    }

    // Our server -> Python: to its on_recv, and to one of its routes, with
    // a server-side request id.
    assert_eq!(server.send(peer, 231, b"to on_recv"), VELTIX_OK);
    let event = python.next_event();
    assert_eq!(
        (event["route"].clone(), event["type"].clone()),
        (json!(false), json!(231))
    );
    assert_eq!(event["text"], "to on_recv");
    let id = event["id"].as_u64().unwrap();
    assert!(
        (32768..65536).contains(&id),
        "server ids are in [32768, 65536): {id}"
    );
    assert_eq!(server.send(peer, PY_ROUTED, b"to a route"), VELTIX_OK);
    let event = python.next_event();
    assert_eq!(
        (event["route"].clone(), event["text"].clone()),
        (json!(true), json!("to a route"))
    );

    // Our server -> Python: send_and_wait answered by the Python route.
    let (type_code, request_id, payload) = server.request(peer, ASK, b"question", 5000).unwrap();
    assert_eq!(
        (type_code, payload.as_slice()),
        (ANSWER, &b"answer:question"[..])
    );
    assert!(request_id >= 32768);
    assert_eq!(
        python.next_event()["type"],
        ASK,
        "the route saw the question"
    );

    // Pings both ways.
    let rtt = python.command(json!({"op": "ping"}))["rtt"].as_f64();
    assert!(rtt.is_some_and(|ms| ms >= 0.0), "ping_server: {rtt:?}");
    let rtt = server.ping(peer).unwrap();
    assert!((0.0..2000.0).contains(&rtt), "ping_client: {rtt}");

    // The pong and the reply never reached on_recv.
    assert_eq!(server.drain_events(Duration::from_millis(200)), vec![]);

    // A Python disconnect is a clean close by the peer.
    assert_eq!(python.command(json!({"op": "disconnect"}))["ok"], true);
    assert_eq!(
        server.next_event(),
        ServerEvent::Disconnect(peer, VELTIX_DISCONNECT_PEER_CLOSED)
    );
    assert_eq!(server.client_count(), 0);
    assert_eq!(server.send(peer, 231, b"gone"), VELTIX_ERR_NOT_CONNECTED);
}

#[test]
fn broadcast_leaves_out_the_excluded_and_tags_select_peers() {
    let server = TestServer::start(|_| {});
    let pythons: Vec<RefClient> = (0..3).map(|_| RefClient::connected(server.port)).collect();
    let mut peers: Vec<u64> = (0..3).map(|_| server.next_connect()).collect();
    peers.sort_unstable();
    assert_eq!(server.peers(), peers);

    assert_eq!(server.add_tag(peers[0], "room", "lobby"), VELTIX_OK);
    assert_eq!(server.add_tag(peers[1], "room", "lobby"), VELTIX_OK);
    assert_eq!(server.add_tag(peers[2], "room", "game"), VELTIX_OK);
    assert_eq!(
        server.add_tag(peers[2], "room", "lobby"),
        VELTIX_ERR_ALREADY_EXISTS
    );
    assert_eq!(server.get_tag(peers[2], "room"), Ok("game".into()));
    assert_eq!(
        server.peers_with_tag("room", Some("lobby")),
        vec![peers[0], peers[1]]
    );
    assert_eq!(server.peers_with_tag("room", None), peers);
    assert_eq!(server.set_tag(peers[2], "room", "lobby"), VELTIX_OK);
    assert_eq!(server.peers_with_tag("room", Some("lobby")), peers);
    assert_eq!(server.remove_tag(peers[0], "room"), VELTIX_OK);
    assert_eq!(server.remove_tag(peers[0], "room"), VELTIX_ERR_NOT_FOUND);
    assert_eq!(server.get_tag(peers[0], "room"), Err(VELTIX_ERR_NOT_FOUND));
    assert_eq!(
        server.peers_with_tag("room", None),
        vec![peers[1], peers[2]]
    );

    // Broadcast to everyone but the first client.
    let reached = server.broadcast(232, b"to the lobby", &[peers[0]]);
    assert_eq!(reached, 2);
    let mut texts = Vec::new();
    let mut ids = Vec::new();
    for python in &pythons {
        if let Some(event) = python.next_event_within(Duration::from_secs(2)) {
            texts.push(event["text"].as_str().unwrap().to_owned());
            ids.push(event["id"].as_u64().unwrap());
        }
    }
    assert_eq!(texts, vec!["to the lobby", "to the lobby"]);
    assert_eq!(ids[0], ids[1], "one request id for every recipient");
    // The excluded client got nothing (the order of `pythons` is not the
    // order of peer ids, so check that exactly one stayed silent above).
    for python in &pythons {
        assert!(python
            .next_event_within(Duration::from_millis(200))
            .is_none());
    }

    // Broadcast to all: every client, once.
    assert_eq!(server.broadcast(232, b"everyone", &[]), 3);
    for python in &pythons {
        assert_eq!(python.next_event()["text"], "everyone");
    }
}

#[test]
fn a_full_server_refuses_with_server_full_until_a_slot_frees() {
    let server = TestServer::start(|config| config.max_connection = 1);
    let first = RefClient::connected(server.port);
    let peer = server.next_connect();
    let second = RefClient::start(server.port, &[]);
    let refused = second.command(json!({"op": "connect"}));
    assert_eq!(refused["ok"], false);
    let error = refused["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        error.contains("full"),
        "the reference reports server_full: {refused}"
    );
    assert_eq!(server.client_count(), 1);

    assert_eq!(first.command(json!({"op": "disconnect"}))["ok"], true);
    assert_eq!(
        server.next_event(),
        ServerEvent::Disconnect(peer, VELTIX_DISCONNECT_PEER_CLOSED)
    );
    assert_eq!(second.command(json!({"op": "connect"}))["ok"], true);
    assert!(server.next_connect() > peer, "ids are never reused");
}

#[test]
fn close_client_gives_the_python_client_server_closed() {
    let server = TestServer::start(|_| {});
    let python = RefClient::connected(server.port);
    let peer = server.next_connect();
    assert_eq!(server.send(peer, 231, b"last words"), VELTIX_OK);
    assert_eq!(server.close_client(peer), VELTIX_OK);
    assert_eq!(
        server.send(peer, 231, b"too late"),
        VELTIX_ERR_NOT_CONNECTED
    );
    // The reference runs callbacks on a pool: the two events may come in
    // either order.
    let mut events = [python.next_event(), python.next_event()];
    events.sort_by_key(|event| event["event"].as_str().unwrap().to_owned());
    let [disconnect, message] = events;
    assert_eq!(
        message["text"], "last words",
        "bytes sent before the close arrive"
    );
    assert_eq!(disconnect["event"], "disconnect");
    assert_eq!(disconnect["reason"], "SERVER_CLOSED");
    assert_eq!(disconnect["permanent"], true);
    assert_eq!(
        server.next_event(),
        ServerEvent::Disconnect(peer, VELTIX_DISCONNECT_MANUAL)
    );
    assert_eq!(server.close_client(peer), VELTIX_ERR_NOT_CONNECTED);
}

#[test]
fn a_python_client_reconnects_after_the_server_restarts() {
    // A port another process grabs between the check and the bind is
    // replaced by the next one.
    let (port, mut server) = (0..20)
        .find_map(|_| {
            let port = restartable_port();
            TestServer::try_start(|config| config.port = port).map(|server| (port, server))
        })
        .expect("no restartable port could be bound");
    assert_eq!(server.port, port);
    let python = RefClient::start(port, &["--retry", "20", "--retry-delay", "0.2"]);
    assert_eq!(python.command(json!({"op": "connect"}))["ok"], true);
    assert_eq!(python.next_event()["event"], "connect");
    let before = server.next_connect();

    assert_eq!(server.close(), VELTIX_OK);
    assert_eq!(
        server.next_event(),
        ServerEvent::Disconnect(before, VELTIX_DISCONNECT_MANUAL)
    );
    assert_eq!(server.port, port);
    assert_eq!(
        unsafe { veltix_server_port(server.ptr) },
        0,
        "closed: no port"
    );
    let event = python.next_event();
    assert_eq!(
        (event["event"].clone(), event["permanent"].clone()),
        (json!("disconnect"), json!(false))
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while server.restart() == VELTIX_ERR_BIND_FAILED && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        server.port,
        port,
        "restarted on its port: {}",
        support::capi::last_error()
    );
    assert_eq!(server.restart(), VELTIX_ERR_ALREADY_RUNNING);
    let after = server.next_connect();
    assert!(after > before, "ids carry on across restarts");
    loop {
        let event = python.next_event();
        if event["event"] == "connect" {
            break;
        }
        assert_eq!(event["event"], "disconnect", "{event}");
    }
    let answer = python.command(json!({"op": "request", "type": ECHO, "text": "back"}));
    assert_eq!(answer["reply"]["text"], "back");
}
