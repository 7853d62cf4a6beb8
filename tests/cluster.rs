//! Cluster mode against a real Redis: three libveltix server processes
//! (this binary run again as `node_process`) on one bus, with reference
//! veltix 3.3.0 clients and libveltix clients on different nodes.
//! Broadcasts, tag sends and sends by id reach exactly their peers, in
//! order per sender; counts converge; killing and restarting Redis, and
//! stopping a node, degrade only what crosses nodes.
//!
//! Linux only: Debian's redis-server, and SIGSTOP.
#![cfg(target_os = "linux")]

mod support;

use std::ffi::{c_void, CString};
use std::io::BufRead;
use std::time::{Duration, Instant};

use support::capi::{last_error, Event, TestClient};
use support::cluster::{signal, NodeProcess, RedisServer};
use support::server_capi::{ServerEvent, TestServer, ECHO};
use support::{time_slack, RefClient};
use veltix::ffi::*;

/// The type of the messages the tests fan out.
const NEWS: u16 = 220;
/// Peer ids carry their node's id from this bit up.
const NODE_SHIFT: u32 = 37;

// ----- the node process ----------------------------------------------------

/// A cluster node, when this binary runs as one (`VELTIX_TEST_NODE` is
/// "<bus> <cluster> <node id>"): prints `EVENT ready <port> <node>`, then
/// an `EVENT` line per connect, disconnect and bus state change, and
/// answers each command on stdin with one `ANSWER` line (see `run`).
/// Without the variable it does nothing.
#[test]
fn node_process() {
    let Ok(spec) = std::env::var("VELTIX_TEST_NODE") else {
        return;
    };
    let fields: Vec<&str> = spec.split(' ').collect();
    let bus = CString::new(fields[0]).unwrap();
    let name = CString::new(fields[1]).unwrap();
    let node_id: u16 = fields[2].parse().unwrap();
    let mut server = TestServer::new(|config| {
        config.cluster_bus = bus.as_ptr();
        config.cluster_name = name.as_ptr();
        config.cluster_node_id = node_id;
    })
    .unwrap();
    unsafe extern "C" fn on_state(_: *mut c_void, _: *mut veltix_server_t, connected: bool) {
        println!("EVENT state {}", u8::from(connected));
    }
    let status = unsafe {
        veltix_server_on_cluster_state(server.ptr, Some(on_state), std::ptr::null_mut(), None)
    };
    assert_eq!(status, VELTIX_OK);
    assert_eq!(server.restart(), VELTIX_OK, "{}", last_error());
    let stats = cluster_stats(&server).expect("a cluster node");
    println!("EVENT ready {} {}", server.port, stats.node_id);
    std::thread::scope(|scope| {
        scope.spawn(|| loop {
            match server.next_event_within(Duration::from_millis(200)) {
                Some(ServerEvent::Connect(peer)) => println!("EVENT connect {peer}"),
                Some(ServerEvent::Disconnect(peer, _)) => println!("EVENT disconnect {peer}"),
                _ => {}
            }
        });
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            println!("ANSWER {}", run(&server, &line));
        }
        // The parent is gone: so is this node.
        std::process::exit(0);
    });
}

/// One command of a node process:
///
/// - `broadcast TYPE TEXT EXCEPT` (EXCEPT: comma-separated ids, or `-`)
///   -> `sent N`
/// - `send PEER TYPE TEXT` -> `status S`
/// - `tag PEER NAME VALUE` -> `status S`
/// - `send_tag NAME VALUE TYPE TEXT` (VALUE `*`: any) -> `sent N`
/// - `ping PEER` -> `status S`
/// - `nodes` -> `nodes TOTAL NODE:CLIENTS,...`
/// - `stats` -> `stats CONNECTED PUBLISHED RECEIVED DROPPED`
fn run(server: &TestServer, line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let number = |i: usize| words[i].parse::<u64>().unwrap();
    match words[0] {
        "broadcast" => {
            let except: Vec<u64> = match words[3] {
                "-" => Vec::new(),
                list => list.split(',').map(|id| id.parse().unwrap()).collect(),
            };
            let sent = server.broadcast(number(1) as u16, words[2].as_bytes(), &except);
            format!("sent {sent}")
        }
        "send" => {
            let status = server.send(number(1), number(2) as u16, words[3].as_bytes());
            format!("status {status}")
        }
        "tag" => format!("status {}", server.set_tag(number(1), words[2], words[3])),
        "send_tag" => {
            let name = CString::new(words[1]).unwrap();
            let value = CString::new(words[2]).unwrap();
            let value_ptr = if words[2] == "*" {
                std::ptr::null()
            } else {
                value.as_ptr()
            };
            let text = words[4].as_bytes();
            let mut sent = 0usize;
            let status = unsafe {
                veltix_server_send_to_tag(
                    server.ptr,
                    name.as_ptr(),
                    value_ptr,
                    number(3) as u16,
                    text.as_ptr(),
                    text.len(),
                    &mut sent,
                )
            };
            assert_eq!(status, VELTIX_OK, "{}", last_error());
            format!("sent {sent}")
        }
        "ping" => match server.ping(number(1)) {
            Ok(_) => "status 0".into(),
            Err(status) => format!("status {status}"),
        },
        "nodes" => {
            let (total, nodes) = cluster_nodes(server);
            let list: Vec<String> = nodes
                .iter()
                .map(|node| format!("{}:{}", node.node_id, node.clients))
                .collect();
            format!("nodes {total} {}", list.join(","))
        }
        "stats" => {
            let stats = cluster_stats(server).unwrap();
            format!(
                "stats {} {} {} {}",
                u8::from(stats.connected),
                stats.published,
                stats.received,
                stats.dropped
            )
        }
        other => panic!("unknown command {other}"),
    }
}

/// `veltix_server_cluster_stats()`, or its status.
fn cluster_stats(server: &TestServer) -> Result<veltix_cluster_stats_t, veltix_status_t> {
    let mut stats = unsafe { std::mem::zeroed::<veltix_cluster_stats_t>() };
    stats.struct_size = std::mem::size_of_val(&stats) as u32;
    match unsafe { veltix_server_cluster_stats(server.ptr, &mut stats) } {
        VELTIX_OK => Ok(stats),
        status => Err(status),
    }
}

/// `veltix_server_cluster_nodes()`: the total and each node.
fn cluster_nodes(server: &TestServer) -> (u64, Vec<veltix_cluster_node_t>) {
    let mut nodes = [veltix_cluster_node_t {
        node_id: 0,
        clients: 0,
    }; 8];
    let (mut count, mut total) = (0usize, 0u64);
    let status = unsafe {
        veltix_server_cluster_nodes(
            server.ptr,
            nodes.as_mut_ptr(),
            nodes.len(),
            &mut count,
            &mut total,
        )
    };
    assert_eq!(status, VELTIX_OK, "{}", last_error());
    (total, nodes[..count.min(nodes.len())].to_vec())
}

// ----- the test side ---------------------------------------------------------

/// A client of one node: the reference's or libveltix's, and its peer id.
enum Member {
    Reference(RefClient),
    Library(TestClient),
}

struct Peer {
    id: u64,
    client: Member,
}

impl Peer {
    /// A reference client connected to `node`, with one callback thread
    /// (the reference's pool would otherwise reorder its callbacks).
    fn reference(node: &NodeProcess) -> Peer {
        let client = RefClient::start(node.port, &["--max-workers", "1"]);
        assert_eq!(
            client.command(serde_json::json!({"op": "connect"}))["ok"],
            true
        );
        assert_eq!(client.next_event()["event"], "connect");
        Peer {
            id: node.next_connect(),
            client: Member::Reference(client),
        }
    }

    /// A libveltix client connected to `node`, with one callback thread
    /// (with more, its callbacks run in parallel, out of arrival order).
    fn library(node: &NodeProcess) -> Peer {
        let client = TestClient::new(node.port, |config| config.max_workers = 1);
        assert_eq!(client.connect(), VELTIX_OK, "{}", last_error());
        assert_eq!(client.next_event(), Some(Event::Connect));
        Peer {
            id: node.next_connect(),
            client: Member::Library(client),
        }
    }

    /// The texts of the NEWS messages received until `quiet` passes
    /// without any, in arrival order.
    fn news(&self, quiet: Duration) -> Vec<String> {
        match &self.client {
            Member::Reference(client) => std::iter::from_fn(|| client.next_event_within(quiet))
                .filter(|event| event["event"] == "recv" && event["type"] == NEWS)
                .map(|event| event["text"].as_str().unwrap().to_owned())
                .collect(),
            Member::Library(client) => client
                .drain_messages(quiet)
                .into_iter()
                .filter(|(type_code, _)| *type_code == NEWS)
                .map(|(_, payload)| String::from_utf8(payload).unwrap())
                .collect(),
        }
    }

    /// Waits up to `timeout` for `count` NEWS messages; what came.
    fn news_within(&self, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < count && Instant::now() < deadline {
            got.extend(self.news(Duration::from_millis(100)));
        }
        got
    }
}

/// A node's `nodes` answer as (total, "node:clients,...").
fn counts(node: &NodeProcess) -> (u64, String) {
    let answer = node.command("nodes");
    let fields: Vec<&str> = answer.split(' ').collect();
    (
        fields[1].parse().unwrap(),
        fields.get(2).unwrap_or(&"").to_string(),
    )
}

/// A node's `stats` answer as [connected, published, received, dropped].
fn stats(node: &NodeProcess) -> [u64; 4] {
    let answer = node.command("stats");
    let fields: Vec<u64> = answer
        .split(' ')
        .skip(1)
        .map(|f| f.parse().unwrap())
        .collect();
    fields.try_into().unwrap()
}

/// Waits up to `timeout` for `check` to hold.
fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Three nodes on `redis`, each with its bus state reported.
fn three_nodes(redis: &RedisServer, cluster: &str) -> [NodeProcess; 3] {
    // A node starts in well under a second natively; under qemu-user, with
    // the suite's tests starting theirs at once on 2 cores, once over 10 s.
    const NODE_START: Duration = Duration::from_secs(30);
    [1, 2, 3].map(|id| {
        let node = NodeProcess::start("node_process", &redis.url(), cluster, id);
        assert_eq!(node.next_event_matching("state", NODE_START), "state 1");
        node
    })
}

#[test]
fn broadcasts_tag_sends_and_sends_by_id_reach_exactly_their_peers_in_order() {
    let redis = RedisServer::start();
    let nodes = three_nodes(&redis, "fanout");
    // Reference and libveltix clients on different nodes.
    let a = Peer::reference(&nodes[0]);
    let b = Peer::library(&nodes[0]);
    let c = Peer::reference(&nodes[1]);
    let d = Peer::library(&nodes[2]);
    let e = Peer::reference(&nodes[2]);
    for (peer, node) in [(&a, 1), (&b, 1), (&c, 2), (&d, 3), (&e, 3)] {
        assert_eq!(peer.id >> NODE_SHIFT, node, "peer ids carry their node");
    }
    let everyone = [&a, &b, &c, &d, &e];

    // Counts converge within the refresh period (1 s), on every node.
    for node in &nodes {
        eventually(Duration::from_secs(3), "counts converge", || {
            counts(node) == (5, "1:2,2:1,3:2".into())
        });
    }

    // A broadcast from node 1, but for b (a local peer) and d (a remote
    // one): 20 in a row, each receiver gets all, in order, exactly once
    // (a node drops its own echo from the bus).
    let except = format!("{},{}", b.id, d.id);
    for i in 0..20 {
        assert_eq!(
            nodes[0].command(&format!("broadcast {NEWS} b{i} {except}")),
            "sent 1"
        );
    }
    let expected: Vec<String> = (0..20).map(|i| format!("b{i}")).collect();
    for peer in [&a, &c, &e] {
        assert_eq!(peer.news_within(20, Duration::from_secs(5)), expected);
    }
    for peer in [&b, &d] {
        assert_eq!(peer.news(Duration::from_millis(300)), Vec::<String>::new());
    }
    for peer in [&a, &c, &e] {
        assert!(
            peer.news(Duration::from_millis(100)).is_empty(),
            "no duplicate"
        );
    }

    // Tags: room=red on a (node 1), c (node 2) and e (node 3); room=blue
    // on d (node 3). Nodes subscribe to a tag's channel within a read
    // slice (50 ms) of its first holder.
    for (peer, node, value) in [
        (&a, 0, "red"),
        (&c, 1, "red"),
        (&e, 2, "red"),
        (&d, 2, "blue"),
    ] {
        assert_eq!(
            nodes[node].command(&format!("tag {} room {value}", peer.id)),
            "status 0"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        nodes[2].command(&format!("send_tag room red {NEWS} red1")),
        "sent 1"
    );
    for peer in [&a, &c, &e] {
        assert_eq!(peer.news_within(1, Duration::from_secs(5)), ["red1"]);
    }
    assert_eq!(
        nodes[1].command(&format!("send_tag room * {NEWS} any1")),
        "sent 1"
    );
    for peer in [&a, &c, &d, &e] {
        assert_eq!(peer.news_within(1, Duration::from_secs(5)), ["any1"]);
    }
    for peer in everyone {
        assert!(
            peer.news(Duration::from_millis(300)).is_empty(),
            "peer {}",
            peer.id
        );
    }

    // Sends by id, from node 2, to peers of nodes 1 and 3 (in order) and
    // to its own.
    for i in 0..10 {
        for target in [&b, &d, &c] {
            let answer = nodes[1].command(&format!("send {} {NEWS} s{i}", target.id));
            assert_eq!(answer, "status 0");
        }
    }
    let expected: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    for peer in [&b, &d, &c] {
        assert_eq!(peer.news_within(10, Duration::from_secs(5)), expected);
    }
    for peer in everyone {
        assert!(
            peer.news(Duration::from_millis(300)).is_empty(),
            "peer {}",
            peer.id
        );
    }

    // What cannot cross nodes says so; an unknown local id is not found.
    let invalid = VELTIX_ERR_INVALID_ARGUMENT;
    assert_eq!(
        nodes[1].command(&format!("ping {}", a.id)),
        format!("status {invalid}")
    );
    let missing = (2u64 << NODE_SHIFT) | 999;
    let not_connected = VELTIX_ERR_NOT_CONNECTED;
    assert_eq!(
        nodes[1].command(&format!("send {missing} {NEWS} x")),
        format!("status {not_connected}")
    );

    // A client leaves: the counts follow.
    drop(e);
    for node in &nodes {
        eventually(Duration::from_secs(3), "counts follow a departure", || {
            counts(node) == (4, "1:2,2:1,3:1".into())
        });
    }
    let [_, published, received, dropped] = stats(&nodes[1]);
    assert!(
        published >= 12 && received >= 21 && dropped == 0,
        "{published} {received} {dropped}"
    );
}

/// The median of `samples`.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// The median round trip of 200 echoes through `client`.
fn echo_median(client: &TestClient) -> Duration {
    median(
        (0..200)
            .map(|_| {
                let start = Instant::now();
                client.request(ECHO, b"ping", 5000).expect("echo");
                start.elapsed()
            })
            .collect(),
    )
}

#[test]
fn losing_redis_degrades_only_what_crosses_nodes_and_delivery_resumes() {
    let mut redis = RedisServer::start();
    let one = NodeProcess::start("node_process", &redis.url(), "outage", 1);
    let two = NodeProcess::start("node_process", &redis.url(), "outage", 2);
    for node in [&one, &two] {
        assert_eq!(
            node.next_event_matching("state", Duration::from_secs(10)),
            "state 1"
        );
    }
    let local = Peer::library(&one);
    let neighbour = Peer::reference(&one);
    let remote = Peer::reference(&two);
    let Member::Library(echo) = &local.client else {
        unreachable!()
    };
    let normal = echo_median(echo);

    redis.kill();
    for node in [&one, &two] {
        assert_eq!(
            node.next_event_matching("state", Duration::from_secs(5)),
            "state 0"
        );
    }
    // The other node's count leaves the list once its last reading is
    // older than a record's expiry (3 s).
    eventually(Duration::from_secs(5), "only this node is counted", || {
        counts(&one) == (2, "1:2".into())
    });
    // Local echo and broadcast go on, as fast as before.
    let during = echo_median(echo);
    assert!(
        during <= normal * 2 + Duration::from_micros(300) + time_slack(),
        "local echo p50 {during:?} with the bus down, {normal:?} before"
    );
    let [connected, _, _, dropped_before] = stats(&one);
    assert_eq!(connected, 0);
    assert_eq!(one.command(&format!("broadcast {NEWS} down -")), "sent 2");
    for peer in [&local, &neighbour] {
        assert_eq!(peer.news_within(1, Duration::from_secs(5)), ["down"]);
    }
    assert!(
        remote.news(Duration::from_millis(500)).is_empty(),
        "at most once: lost"
    );
    let [_, _, _, dropped_after] = stats(&one);
    assert_eq!(dropped_after, dropped_before + 1, "the outage is counted");

    // Redis comes back: both nodes reconnect (backoff up to 5 s), and
    // cross-node delivery resumes.
    redis.restart();
    for node in [&one, &two] {
        assert_eq!(
            node.next_event_matching("state", Duration::from_secs(15)),
            "state 1"
        );
    }
    assert_eq!(one.command(&format!("broadcast {NEWS} up -")), "sent 2");
    assert_eq!(remote.news_within(1, Duration::from_secs(5)), ["up"]);
    assert_eq!(
        two.command(&format!("send {} {NEWS} back", local.id)),
        "status 0"
    );
    assert_eq!(local.news_within(2, Duration::from_secs(5)), ["up", "back"]);
    assert_eq!(neighbour.news_within(1, Duration::from_secs(5)), ["up"]);
    let [connected, _, _, _] = stats(&one);
    assert_eq!(connected, 1);
}

#[test]
fn a_stopped_node_stalls_nobody_and_leaves_the_counts_after_its_expiry() {
    let redis = RedisServer::start();
    let nodes = three_nodes(&redis, "stall");
    let a = Peer::library(&nodes[0]);
    let b = Peer::reference(&nodes[1]);
    let _c = Peer::reference(&nodes[2]);
    for node in &nodes[..2] {
        eventually(Duration::from_secs(3), "counts converge", || {
            counts(node).0 == 3
        });
    }
    signal(nodes[2].pid(), libc::SIGSTOP);
    let stopped = Instant::now();
    // The others go on: 50 broadcasts each way, all delivered in order.
    for i in 0..50 {
        assert_eq!(
            nodes[0].command(&format!("broadcast {NEWS} x{i} -")),
            "sent 1"
        );
    }
    let expected: Vec<String> = (0..50).map(|i| format!("x{i}")).collect();
    assert_eq!(b.news_within(50, Duration::from_secs(5)), expected);
    assert_eq!(a.news_within(50, Duration::from_secs(5)), expected);
    // Its record expires (3 s after its last refresh) and the next
    // refresh drops it: within 5 s.
    for node in &nodes[..2] {
        eventually(
            Duration::from_secs(6),
            "the stopped node leaves the counts",
            || counts(node) == (2, "1:1,2:1".into()),
        );
    }
    assert!(
        stopped.elapsed() >= Duration::from_secs(2),
        "not before the record's expiry"
    );
    let mut third = nodes;
    third[2].kill();
    assert_eq!(
        third[1].command(&format!("broadcast {NEWS} after -")),
        "sent 1"
    );
    assert_eq!(a.news_within(1, Duration::from_secs(5)), ["after"]);
}

// ----- in one process: the C API's checks ----------------------------------

/// A server with `bus` as its cluster bus (and `name`, if given).
fn try_cluster_server(bus: &str, name: Option<&str>, node_id: u16) -> Result<TestServer, String> {
    let bus = CString::new(bus).unwrap();
    let name = name.map(|name| CString::new(name).unwrap());
    TestServer::new(|config| {
        config.cluster_bus = bus.as_ptr();
        config.cluster_name = name.as_ref().map_or(std::ptr::null(), |name| name.as_ptr());
        config.cluster_node_id = node_id;
    })
}

#[test]
fn bad_cluster_settings_are_refused_with_the_field_and_a_fix() {
    for (bus, name, field) in [
        (
            "rediss://127.0.0.1:1",
            None,
            "config.cluster_bus uses rediss",
        ),
        ("http://127.0.0.1:1", None, "config.cluster_bus"),
        ("redis://127.0.0.1:1", Some(""), "config.cluster_name"),
        (
            "redis://127.0.0.1:1",
            Some("two words"),
            "config.cluster_name",
        ),
    ] {
        let error = try_cluster_server(bus, name, 1).err().expect("refused");
        assert!(
            error.starts_with(field) && error.contains("Fix:"),
            "{error}"
        );
    }
    // Outside cluster mode the cluster calls say so.
    let alone = TestServer::start(|_| {});
    assert_eq!(
        cluster_stats(&alone).err(),
        Some(VELTIX_ERR_INVALID_ARGUMENT)
    );
    assert!(last_error().contains("cluster_bus"), "{}", last_error());
    let mut count = 0usize;
    let status = unsafe {
        veltix_server_cluster_nodes(
            alone.ptr,
            std::ptr::null_mut(),
            0,
            &mut count,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(status, VELTIX_ERR_INVALID_ARGUMENT);
    // ...and peer ids are as before: 1, 2, ...
    let client = TestClient::connected(alone.port);
    assert_eq!(alone.next_connect(), 1);
    drop(client);
}

#[test]
fn an_unreachable_bus_leaves_local_traffic_alone_and_is_reported() {
    // A port nothing listens on: the first attempt fails.
    let port = support::free_port();
    let server = try_cluster_server(&format!("redis://127.0.0.1:{port}"), None, 0).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<bool>();
    unsafe extern "C" fn on_state(data: *mut c_void, _: *mut veltix_server_t, connected: bool) {
        let tx = &*(data as *const std::sync::mpsc::Sender<bool>);
        let _ = tx.send(connected);
    }
    let status = unsafe {
        veltix_server_on_cluster_state(
            server.ptr,
            Some(on_state),
            &tx as *const _ as *mut c_void,
            None,
        )
    };
    assert_eq!(status, VELTIX_OK);
    let mut server = server;
    assert_eq!(server.restart(), VELTIX_OK);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Ok(false),
        "reported lost"
    );
    let stats = cluster_stats(&server).unwrap();
    assert!(!stats.connected);
    assert_ne!(stats.node_id, 0, "a node id is drawn for 0");
    // Local traffic: echo, broadcast; what would cross nodes is counted.
    let client = TestClient::connected(server.port);
    let id = server.next_connect();
    assert_eq!(id >> NODE_SHIFT, u64::from(stats.node_id));
    assert_eq!(client.request(ECHO, b"hi", 2000).unwrap().2, b"hi");
    assert_eq!(server.broadcast(NEWS, b"local", &[]), 1);
    assert_eq!(
        client.drain_messages(Duration::from_millis(200)),
        [(NEWS, b"local".to_vec())]
    );
    assert_eq!(cluster_stats(&server).unwrap().dropped, stats.dropped + 1);
    let (total, nodes) = cluster_nodes(&server);
    assert_eq!(
        (total, nodes.len(), nodes[0].node_id),
        (1, 1, stats.node_id)
    );
    unsafe { veltix_server_on_cluster_state(server.ptr, None, std::ptr::null_mut(), None) };
}

#[test]
fn a_stalled_redis_never_blocks_a_send_and_the_bus_queue_stays_bounded() {
    let redis = RedisServer::start();
    let bus = CString::new(redis.url()).unwrap();
    let mut server = TestServer::new(|config| {
        config.cluster_bus = bus.as_ptr();
        config.cluster_node_id = 9;
        config.max_message_size = 64 * 1024;
        config.max_outbound_bytes = 1024 * 1024;
    })
    .unwrap();
    assert_eq!(server.restart(), VELTIX_OK);
    eventually(Duration::from_secs(5), "the bus connects", || {
        cluster_stats(&server).unwrap().connected
    });
    // Redis stops reading: the publishing thread blocks in its write once
    // the sockets' buffers are full, and the queue behind it fills.
    signal(redis.pid(), libc::SIGSTOP);
    let payload = vec![b'x'; 1024];
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..30_000 {
        let call = Instant::now();
        assert_eq!(server.broadcast(NEWS, &payload, &[]), 0);
        slowest = slowest.max(call.elapsed());
    }
    let took = start.elapsed();
    let stats = cluster_stats(&server).unwrap();
    // 30 MB offered; the kernel's buffers take a few MB, the queue at most
    // max_outbound_bytes: the rest is dropped, not held.
    assert!(stats.dropped > 10_000, "dropped {}", stats.dropped);
    assert!(
        slowest < Duration::from_millis(50) + time_slack(),
        "a broadcast took {slowest:?}"
    );
    assert!(
        took < Duration::from_secs(5) + time_slack() * 10,
        "30,000 broadcasts took {took:?}"
    );
    // Local traffic is served meanwhile.
    let client = TestClient::connected(server.port);
    assert_eq!(
        client.request(ECHO, b"still here", 2000).unwrap().2,
        b"still here"
    );
    // Closing waits for the bus threads, each at most one Redis deadline
    // (1 s), however much was queued.
    let closing = Instant::now();
    assert_eq!(server.close(), VELTIX_OK);
    assert!(
        closing.elapsed() < Duration::from_secs(3) + time_slack(),
        "close took {:?}",
        closing.elapsed()
    );
    signal(redis.pid(), libc::SIGCONT);
    assert_eq!(server.restart(), VELTIX_OK);
    eventually(Duration::from_secs(15), "the bus is back", || {
        cluster_stats(&server).unwrap().connected
    });
}

#[test]
fn closing_the_server_is_not_counted_as_losing_the_bus() {
    let redis = RedisServer::start();
    let bus = CString::new(redis.url()).unwrap();
    let mut server = TestServer::new(|config| config.cluster_bus = bus.as_ptr()).unwrap();
    assert_eq!(server.restart(), VELTIX_OK);
    eventually(Duration::from_secs(5), "the bus connects", || {
        cluster_stats(&server).unwrap().connected
    });
    assert_eq!(server.close(), VELTIX_OK);
    let stats = cluster_stats(&server).unwrap();
    assert!(!stats.connected);
    assert_eq!(stats.disconnects, 0, "a close is not a loss");
}
