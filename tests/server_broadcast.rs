//! Broadcasts from a callback: each receiver gets them in the order the
//! callback made them, among its other sends, in both callback modes, and
//! a peer that connects between two broadcasts of one callback gets the
//! second.

mod support;

use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use veltix::client::{Client, ClientConfig};
use veltix::server::{Server, ServerConfig};

const TRIGGER: u16 = 300;
const TO_ALL: u16 = 301;
const TO_OWNER: u16 = 302;
const ALL_BUT_ONE: u16 = 303;
const ROUNDS: usize = 50;

fn server(on_io_thread: bool) -> Server {
    Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        io_threads: support::io_threads(),
        port: 0,
        max_workers: 2,
        callbacks_on_io_thread: on_io_thread,
        ..ServerConfig::default()
    })
    .unwrap()
}

/// A connected client whose messages arrive, in order, on the receiver as
/// `(type, text)`.
fn listening_client(port: u16) -> (Client, Receiver<(u16, String)>) {
    let client = Client::new(ClientConfig {
        port,
        max_workers: 1,
        ..ClientConfig::default()
    })
    .unwrap();
    let (seen, messages) = channel();
    let seen = Mutex::new(seen);
    client.on_recv(Some(Arc::new(move |_, message| {
        let text = String::from_utf8_lossy(message.payload()).into_owned();
        let _ = seen.lock().unwrap().send((message.type_code(), text));
    })));
    client.connect().unwrap();
    (client, messages)
}

fn receive(messages: &Receiver<(u16, String)>, count: usize) -> Vec<(u16, String)> {
    (0..count)
        .map(|i| {
            messages
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("message {i} of {count} never came"))
        })
        .collect()
}

fn order_is_kept_among_broadcasts_and_other_sends(on_io_thread: bool) {
    let server = server(on_io_thread);
    let (counts, counted) = channel();
    let counts = Mutex::new(counts);
    server
        .route(
            TRIGGER,
            Arc::new(move |server, owner, message| {
                let spared: u64 = String::from_utf8_lossy(message.payload()).parse().unwrap();
                let mut reached = Vec::new();
                for i in 0..ROUNDS {
                    reached.push(
                        server
                            .broadcast(TO_ALL, format!("b{i}").as_bytes(), &[])
                            .unwrap(),
                    );
                    server
                        .send(owner, TO_OWNER, format!("d{i}").as_bytes())
                        .unwrap();
                    reached.push(
                        server
                            .broadcast(ALL_BUT_ONE, format!("x{i}").as_bytes(), &[spared])
                            .unwrap(),
                    );
                }
                counts.lock().unwrap().send(reached).unwrap();
            }),
        )
        .unwrap();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let connected = peers.clone();
    server.on_connect(Some(Arc::new(move |_, peer| {
        connected.lock().unwrap().push(peer)
    })));
    let port = server.start().unwrap();
    let (owner, owner_got) = listening_client(port);
    let (spared, spared_got) = listening_client(port);
    let (other, other_got) = listening_client(port);
    while peers.lock().unwrap().len() < 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let spared_id = peers.lock().unwrap()[1];
    owner
        .send(TRIGGER, spared_id.to_string().as_bytes())
        .unwrap();

    let all_three: Vec<(u16, String)> = (0..ROUNDS)
        .flat_map(|i| {
            [
                (TO_ALL, format!("b{i}")),
                (TO_OWNER, format!("d{i}")),
                (ALL_BUT_ONE, format!("x{i}")),
            ]
        })
        .collect();
    let without = |kind: u16| -> Vec<(u16, String)> {
        all_three
            .iter()
            .filter(|(t, _)| *t != kind)
            .cloned()
            .collect()
    };
    assert_eq!(receive(&owner_got, ROUNDS * 3), all_three, "the sender");
    assert_eq!(
        receive(&spared_got, ROUNDS),
        without(TO_OWNER)
            .into_iter()
            .filter(|(t, _)| *t == TO_ALL)
            .collect::<Vec<_>>(),
        "the spared peer"
    );
    assert_eq!(
        receive(&other_got, ROUNDS * 2),
        without(TO_OWNER),
        "another peer"
    );
    let reached = counted.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        reached.chunks(2).all(|pair| pair == [3, 2]),
        "each broadcast counts its receivers: {reached:?}"
    );
    for client in [owner, spared, other] {
        client.close();
    }
    server.close();
}

#[test]
fn with_callbacks_on_workers_order_is_kept_among_broadcasts_and_other_sends() {
    order_is_kept_among_broadcasts_and_other_sends(false);
}

#[test]
fn with_callbacks_on_the_io_thread_order_is_kept_among_broadcasts_and_other_sends() {
    order_is_kept_among_broadcasts_and_other_sends(true);
}

#[test]
fn a_peer_that_connects_between_two_broadcasts_of_a_callback_gets_the_second() {
    let server = server(false);
    let (joined, has_joined) = channel::<u64>();
    let joined = Mutex::new(joined);
    let has_joined = Mutex::new(has_joined);
    let (go, gone) = channel::<()>();
    let go = Mutex::new(go);
    server
        .route(
            TRIGGER,
            Arc::new(move |server, owner, _| {
                server.broadcast(TO_ALL, b"before", &[]).unwrap();
                go.lock().unwrap().send(()).unwrap();
                // The callback waits, inside its batch, for a newcomer.
                let has_joined = has_joined.lock().unwrap();
                while has_joined.recv_timeout(Duration::from_secs(10)).unwrap() == owner {}
                server.broadcast(TO_ALL, b"after", &[]).unwrap();
            }),
        )
        .unwrap();
    server.on_connect(Some(Arc::new(move |_, peer| {
        let _ = joined.lock().unwrap().send(peer);
    })));
    let port = server.start().unwrap();
    let (first, first_got) = listening_client(port);
    first.send(TRIGGER, b"").unwrap();
    gone.recv_timeout(Duration::from_secs(10)).unwrap();
    let (newcomer, newcomer_got) = listening_client(port);
    assert_eq!(
        receive(&first_got, 2),
        vec![(TO_ALL, "before".to_owned()), (TO_ALL, "after".to_owned())]
    );
    assert_eq!(
        receive(&newcomer_got, 1),
        vec![(TO_ALL, "after".to_owned())]
    );
    newcomer.close();
    first.close();
    server.close();
}

/// A callback of one server sending through another server to a peer whose
/// id equals its own peer's, and broadcasting through both when their peer
/// tables are at the same version: each server's peer gets its own.
fn a_send_through_another_server_reaches_that_servers_peer(on_io_thread: bool) {
    let (first, second) = (server(on_io_thread), server(on_io_thread));
    let second_port = second.start().unwrap();
    let (second_client, second_got) = listening_client(second_port);
    // The server acks before it counts the peer (on_connect follows the
    // ack on the wire): the client's connect can return first.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while second.client_count() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the peer was never counted"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let relay = second.clone();
    first
        .route(
            TRIGGER,
            Arc::new(move |server, owner, _| {
                // Both servers number their peers from 1: `owner` is also
                // the id of the second server's one peer.
                relay.send(owner, TO_OWNER, b"relayed").unwrap();
                assert_eq!(server.broadcast(TO_ALL, b"own", &[]).unwrap(), 1);
                assert_eq!(relay.broadcast(TO_ALL, b"relayed", &[]).unwrap(), 1);
            }),
        )
        .unwrap();
    let first_port = first.start().unwrap();
    let (first_client, first_got) = listening_client(first_port);
    first_client.send(TRIGGER, b"").unwrap();
    assert_eq!(
        receive(&second_got, 2),
        vec![
            (TO_OWNER, "relayed".to_owned()),
            (TO_ALL, "relayed".to_owned())
        ]
    );
    assert_eq!(receive(&first_got, 1), vec![(TO_ALL, "own".to_owned())]);
    assert!(
        first_got.recv_timeout(Duration::from_millis(200)).is_err(),
        "a relayed message went to the first server's peer"
    );
    first_client.close();
    second_client.close();
    first.close();
    second.close();
}

#[test]
fn with_callbacks_on_workers_a_send_through_another_server_reaches_that_servers_peer() {
    a_send_through_another_server_reaches_that_servers_peer(false);
}

#[test]
fn with_callbacks_on_the_io_thread_a_send_through_another_server_reaches_that_servers_peer() {
    a_send_through_another_server_reaches_that_servers_peer(true);
}

/// With callbacks on the I/O thread, the broadcasts of many senders read in
/// one turn of the loop reach a receiver in one write for the turn, not one
/// per sender.
#[test]
fn with_callbacks_on_the_io_thread_a_turn_of_broadcasts_reaches_a_receiver_in_one_write() {
    use support::hostile::{frame, socket_between, RawPeer, SegmentCount};
    const SENDERS: usize = 20;
    const SLOW: u16 = 304;
    let server = Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        io_threads: 1,
        port: 0,
        callbacks_on_io_thread: true,
        ..ServerConfig::default()
    })
    .unwrap();
    let (connected, connects) = channel();
    let connected = Mutex::new(connected);
    server.on_connect(Some(Arc::new(move |_, peer| {
        let _ = connected.lock().unwrap().send(peer);
    })));
    support::route_broadcast(&server, TRIGGER, TO_ALL);
    // Holds the loop while the senders' messages arrive: the next poll
    // reports them all, in one turn.
    server
        .route(
            SLOW,
            Arc::new(|_, _, _| std::thread::sleep(Duration::from_millis(200))),
        )
        .unwrap();
    let port = server.start().unwrap();
    let mut receiver = RawPeer::handshaken(port);
    let receiver_id = connects.recv_timeout(Duration::from_secs(5)).unwrap();
    let client_port = server.peer_addr(receiver_id).unwrap().port();
    let mut senders: Vec<RawPeer> = (0..SENDERS).map(|_| RawPeer::handshaken(port)).collect();
    for _ in 0..SENDERS {
        connects.recv_timeout(Duration::from_secs(5)).unwrap();
    }
    let segments = SegmentCount::start(socket_between(port, client_port));
    receiver.write(&frame(SLOW, 1, b"")).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for (index, sender) in senders.iter_mut().enumerate() {
        sender
            .write(&frame(TRIGGER, 1, format!("from {index}").as_bytes()))
            .unwrap();
    }
    let mut from: Vec<String> = (0..SENDERS)
        .map(|_| {
            let (header, payload) = receiver.read_frame().unwrap();
            assert_eq!(header.type_code, TO_ALL);
            String::from_utf8(payload).unwrap()
        })
        .collect();
    from.sort();
    let mut expected: Vec<String> = (0..SENDERS).map(|i| format!("from {i}")).collect();
    expected.sort();
    assert_eq!(from, expected, "every sender's broadcast arrived once");
    if let Some(segments) = segments.map(|count| count.sent()) {
        assert!(
            segments <= 3,
            "{SENDERS} senders' broadcasts in one turn took {segments} segments"
        );
    }
    server.shut_down();
}
