//! A server with several I/O threads (`io_threads`): connections spread
//! across the loops, and what crosses loops (broadcasts, sends from a
//! callback on one loop to a peer of another, the memory budget, close and
//! free) works as on one loop. Raw peers on 127.0.0.1; every wait bounded.

mod support;

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use support::hostile::{declaring_header, frame, RawPeer};
use veltix::disconnect::DisconnectReason;
use veltix::server::{PeerId, Server, ServerConfig};

const ECHO: u16 = 200;
/// A peer asks the server to broadcast its payload to everyone.
const SHOUT: u16 = 201;
/// A peer asks the server to send its payload's last 8 bytes' peer (big
/// endian) the payload's other bytes.
const RELAY: u16 = 202;
const BROADCAST: u16 = 210;
const RELAYED: u16 = 211;

/// A started server with `loops` I/O threads that echoes ECHO, broadcasts
/// SHOUT and relays RELAY; each connect arrives on the channel with the
/// thread it ran on (its loop's, with `callbacks_on_io_thread`).
struct LoopServer {
    server: Server,
    port: u16,
    connects: Receiver<(PeerId, ThreadId)>,
    disconnects: Receiver<(PeerId, DisconnectReason)>,
}

impl LoopServer {
    fn start(loops: u32, tweak: impl FnOnce(&mut ServerConfig)) -> LoopServer {
        let mut config = ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            io_threads: loops,
            callbacks_on_io_thread: true,
            ..ServerConfig::default()
        };
        tweak(&mut config);
        let server = Server::new(config).unwrap();
        let (connected, connects) = channel();
        let connected = Mutex::new(connected);
        server.on_connect(Some(Arc::new(move |_, peer| {
            let _ = connected
                .lock()
                .unwrap()
                .send((peer, std::thread::current().id()));
        })));
        let (disconnected, disconnects) = channel();
        let disconnected = Mutex::new(disconnected);
        server.on_disconnect(Some(Arc::new(move |_, peer, reason| {
            let _ = disconnected.lock().unwrap().send((peer, reason));
        })));
        support::route_echo(&server, ECHO);
        support::route_broadcast(&server, SHOUT, BROADCAST);
        server
            .route(
                RELAY,
                Arc::new(|server, _, message| {
                    let (body, to) = message.payload().split_at(message.payload().len() - 8);
                    let to = u64::from_be_bytes(to.try_into().unwrap());
                    server.send(to, RELAYED, body).unwrap();
                }),
            )
            .unwrap();
        let port = server.start().unwrap();
        LoopServer {
            server,
            port,
            connects,
            disconnects,
        }
    }

    /// A raw peer past its handshake, its id and the thread its connect
    /// ran on.
    fn connect(&self) -> (RawPeer, PeerId, ThreadId) {
        let peer = RawPeer::handshaken(self.port);
        let (id, thread) = self.connects.recv_timeout(Duration::from_secs(10)).unwrap();
        (peer, id, thread)
    }
}

impl Drop for LoopServer {
    fn drop(&mut self) {
        self.server.shut_down();
    }
}

#[test]
fn a_thousand_connections_at_once_spread_within_ten_percent_across_the_loops() {
    const LOOPS: usize = 4;
    let running = LoopServer::start(LOOPS as u32, |_| {});
    let clients = support::many_clients();
    let port = running.port;
    // 10 threads connect at once; each holds its peers open until counted.
    let connecting: Vec<_> = (0..10)
        .map(|index| {
            std::thread::spawn(move || {
                (index..clients)
                    .step_by(10)
                    .map(|_| RawPeer::handshaken(port))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut per_thread: HashMap<ThreadId, usize> = HashMap::new();
    for _ in 0..clients {
        let (_, thread) = running
            .connects
            .recv_timeout(Duration::from_secs(30))
            .expect("every client connects");
        *per_thread.entry(thread).or_default() += 1;
    }
    let peers: Vec<RawPeer> = connecting
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    assert_eq!(peers.len(), clients);
    let counts: Vec<usize> = per_thread.values().copied().collect();
    println!("{clients} connections over {LOOPS} loops: {counts:?}");
    assert_eq!(counts.len(), LOOPS, "connections ran on {counts:?}");
    let mean = clients / LOOPS;
    for count in counts {
        assert!(
            count.abs_diff(mean) <= mean / 10,
            "a loop holds {count} connections, the mean is {mean}"
        );
    }
}

/// A broadcast from peers on two loops, each run from its callback on its
/// own loop, reaches peers of every loop, each sender's in order. With
/// callbacks on the I/O thread, each loop holds enough receivers (10) for
/// the others to hand it their writes to them.
#[test]
fn broadcasts_from_peers_of_one_loop_reach_every_loop_in_order_per_sender() {
    for on_io_thread in [true, false] {
        let running = LoopServer::start(4, |config| config.callbacks_on_io_thread = on_io_thread);
        let mut peers: Vec<(RawPeer, PeerId, ThreadId)> =
            (0..40).map(|_| running.connect()).collect();
        if on_io_thread {
            let mut per_loop = std::collections::HashMap::<ThreadId, usize>::new();
            for (_, _, thread) in &peers {
                *per_loop.entry(*thread).or_default() += 1;
            }
            assert_eq!(per_loop.len(), 4, "40 peers landed on {per_loop:?}");
            assert!(per_loop.values().all(|&n| n >= 8), "{per_loop:?}");
        }
        const EACH: u32 = 300;
        // Peers 0 and 1, on two loops, shout sender-tagged sequence numbers.
        for sender in 0..2u8 {
            let mut stream = peers[sender as usize].0.stream.try_clone().unwrap();
            std::thread::spawn(move || {
                use std::io::Write;
                for sequence in 0..EACH {
                    let mut payload = vec![sender];
                    payload.extend_from_slice(&sequence.to_be_bytes());
                    stream.write_all(&frame(SHOUT, 1, &payload)).unwrap();
                }
            });
        }
        for (peer, id, _) in &mut peers {
            let mut next = [0u32; 2];
            while next != [EACH, EACH] {
                let (header, payload) = peer.read_frame().unwrap();
                assert_eq!(header.type_code, BROADCAST);
                let sender = payload[0] as usize;
                let sequence = u32::from_be_bytes(payload[1..5].try_into().unwrap());
                assert_eq!(
                    sequence, next[sender],
                    "peer {id} got sender {sender}'s broadcasts out of order (callbacks on the I/O thread: {on_io_thread})"
                );
                next[sender] += 1;
            }
        }
    }
}

#[test]
fn a_send_from_a_callback_on_one_loop_reaches_a_peer_of_another() {
    let running = LoopServer::start(2, |_| {});
    let (mut asking, _, asking_loop) = running.connect();
    let (mut target, target_id, target_loop) = running.connect();
    assert_ne!(asking_loop, target_loop, "the two peers share a loop");
    for round in 0..100u32 {
        let mut payload = round.to_be_bytes().to_vec();
        payload.extend_from_slice(&target_id.to_be_bytes());
        asking.write(&frame(RELAY, 1, &payload)).unwrap();
        let (header, body) = target.read_frame().unwrap();
        assert_eq!(header.type_code, RELAYED);
        assert_eq!(body, round.to_be_bytes(), "relay {round} arrived");
    }
    // And the other way, with the roles swapped.
    let (asking_id, mut payload) = (running.server.peer_ids()[0], b"back".to_vec());
    payload.extend_from_slice(&asking_id.to_be_bytes());
    target.write(&frame(RELAY, 1, &payload)).unwrap();
    let (_, body) = asking.read_frame().unwrap();
    assert_eq!(body, b"back");
}

/// Echoing clients on every loop, then `close` (and a restart), then
/// `shut_down` (what `veltix_server_free` does), each with traffic on all
/// loops: each returns promptly and every peer is told.
#[test]
fn close_restart_and_free_with_traffic_on_every_loop() {
    let mut running = LoopServer::start(4, |config| config.callbacks_on_io_thread = false);
    for round in 0..2 {
        let peers: Vec<(RawPeer, PeerId, ThreadId)> = (0..8).map(|_| running.connect()).collect();
        let echoing: Vec<_> = peers
            .into_iter()
            .map(|(mut peer, _, _)| {
                std::thread::spawn(move || {
                    let mut echoes = 0u32;
                    loop {
                        let sent = peer.write(&frame(ECHO, 1, &[7u8; 512]));
                        if sent.is_err() || peer.read_frame().is_err() {
                            return echoes;
                        }
                        echoes += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        match round {
            0 => running.server.close(),
            _ => running.server.shut_down(),
        }
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "close took {took:?}");
        for echoing in echoing {
            assert!(echoing.join().unwrap() > 0, "a peer echoed nothing");
        }
        let mut left = 0;
        while let Ok((_, reason)) = running.disconnects.recv_timeout(Duration::from_secs(1)) {
            assert_eq!(reason, DisconnectReason::Manual);
            left += 1;
        }
        assert_eq!(left, 8, "every peer's on_disconnect ran");
        if round == 0 {
            running.port = running.server.start().unwrap();
        }
    }
}

/// Two peers hold partial frames, on two loops (and, for comparison, on
/// one); the second pushes the server over its budget with its last
/// bytes, and the first, which holds the most, is the one cut.
#[test]
fn the_memory_budget_cuts_the_largest_holder_whichever_loop_holds_it() {
    const MIB: usize = 1 << 20;
    for loops in [2, 1] {
        let running = LoopServer::start(loops, |config| {
            config.max_workers = 1;
            config.max_message_size = (12 * MIB) as u32;
            config.max_outbound_bytes = (12 * MIB) as u32;
            config.max_memory_bytes = 16 * MIB as u64;
        });
        let (mut largest, largest_id, largest_loop) = running.connect();
        let (mut smaller, smaller_id, smaller_loop) = running.connect();
        if loops == 2 {
            assert_ne!(largest_loop, smaller_loop, "the two peers share a loop");
        }
        // 10 MiB of an 11 MiB frame: held until the frame completes.
        largest
            .write(&declaring_header(ECHO, (11 * MIB) as u32))
            .unwrap();
        largest.write(&vec![1u8; 10 * MIB]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // 7 MiB of a 7 MiB + 1 frame, then nothing: 17 MiB in all.
        let payload = vec![2u8; 7 * MIB + 1];
        let whole = frame(ECHO, 9, &payload);
        smaller.write(&whole[..whole.len() - 1]).unwrap();
        let (cut, reason) = running
            .disconnects
            .recv_timeout(Duration::from_secs(10))
            .expect("a peer is cut");
        assert_eq!(
            (cut, reason),
            (largest_id, DisconnectReason::Error),
            "peer {largest_id} holds the most, peer {smaller_id} less ({loops} loops)"
        );
        // The other is served on: its frame completes and comes back.
        smaller.write(&whole[whole.len() - 1..]).unwrap();
        let (header, echoed) = smaller.read_frame().unwrap();
        assert_eq!((header.request_id, echoed.len()), (9, payload.len()));
        assert!(running
            .disconnects
            .recv_timeout(Duration::from_millis(200))
            .is_err());
    }
}
