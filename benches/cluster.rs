//! Cluster benchmark: `cargo bench --bench cluster`, against a real
//! `redis-server` (Debian's) on a free port, with three libveltix nodes in
//! this process.
//!
//! - **Fan-out.** `VELTIX_BENCH_RECEIVERS` raw receivers (default 300)
//!   that only count bytes, and `VELTIX_BENCH_BROADCASTS` broadcasts
//!   (default 2,000, 64-byte payloads): from a server without a cluster
//!   holding every receiver (the baseline), from a cluster node holding
//!   every receiver (its broadcasts still go to the bus, where the other
//!   two nodes find no receiver), and from node 1 with the receivers
//!   spread evenly over three nodes (two thirds of the deliveries cross
//!   the bus). Deliveries per second, from the first broadcast to the
//!   last byte at the last receiver, and Redis's CPU per broadcast.
//! - **Latency.** One receiver on node 2; `VELTIX_BENCH_SENDS` sends
//!   (default 2,000) to it by id, alternately from node 2 (local) and from
//!   node 1 (across the bus), each timed from the call to the frame's
//!   arrival; p50 and p99 of each.
//!
//! Each figure is the median of `VELTIX_BENCH_RUNS` runs (default 3). All
//! of it shares this machine's cores: the receivers, the nodes, Redis.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use veltix::cluster::ClusterConfig;
use veltix::protocol::FrameDecoder;
use veltix::server::{Server, ServerConfig};

mod support;
#[path = "../tests/support/cluster.rs"]
#[allow(dead_code)]
mod test_cluster;

use support::handshake_as_client;
use test_cluster::RedisServer;

/// The message type of the benchmark's traffic.
const NEWS: u16 = 220;
const PAYLOAD: usize = 64;
const FRAME: usize = 15 + PAYLOAD;

/// A free port, for the Redis support module (which asks for one that
/// stays free across restarts; the benchmark never restarts Redis).
fn restartable_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn main() {
    let receivers = env_or("VELTIX_BENCH_RECEIVERS", 300);
    let broadcasts = env_or("VELTIX_BENCH_BROADCASTS", 2000);
    let sends = env_or("VELTIX_BENCH_SENDS", 2000);
    let runs = env_or("VELTIX_BENCH_RUNS", 3);
    let redis = RedisServer::start();
    let nodes: Vec<Server> = (1..=3).map(|id| node(&redis, id)).collect();
    for node in &nodes {
        wait_for(|| node.cluster_stats().is_some_and(|stats| stats.connected));
    }

    let alone = Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        ..ServerConfig::default()
    })
    .unwrap();
    alone.start().unwrap();

    println!("fan-out: {broadcasts} broadcasts of {PAYLOAD} bytes to {receivers} receivers, median of {runs} runs");
    println!(
        "{:<40} {:>14} {:>22}",
        "layout", "deliveries/s", "Redis CPU per bcast"
    );
    let third = 1.0 / 3.0;
    let layouts: [(&str, Vec<(&Server, f64)>); 3] = [
        ("one server, no cluster", vec![(&alone, 1.0)]),
        (
            "one node of three holds every receiver",
            vec![(&nodes[0], 1.0)],
        ),
        (
            "three nodes, a third each",
            nodes.iter().map(|node| (node, third)).collect(),
        ),
    ];
    for (layout, spread) in &layouts {
        let (rate, redis_cpu) = median_of(runs, || fan_out(spread, &redis, receivers, broadcasts));
        println!("{layout:<40} {rate:>14.0} {:>19.2} us", redis_cpu * 1e6);
    }
    alone.close();

    println!("\nlatency of a send by id, {sends} sends, median of {runs} runs");
    println!("{:<34} {:>10} {:>10}", "path", "p50 us", "p99 us");
    let latencies: Vec<[Duration; 4]> = (0..runs).map(|_| latency(&nodes, sends)).collect();
    for (i, path) in [
        "local (node 2 to its peer)",
        "across the bus (node 1 to it)",
    ]
    .iter()
    .enumerate()
    {
        let p50 = median(latencies.iter().map(|l| l[2 * i]).collect());
        let p99 = median(latencies.iter().map(|l| l[2 * i + 1]).collect());
        println!("{path:<34} {:>10.1} {:>10.1}", micros(p50), micros(p99));
    }
    let dropped: u64 = nodes
        .iter()
        .map(|n| n.cluster_stats().unwrap().dropped)
        .sum();
    println!("\nmessages dropped by the bus during the benchmark: {dropped}");
    for node in &nodes {
        node.close();
    }
}

/// A started node `id` of cluster "bench" on `redis`.
fn node(redis: &RedisServer, id: u16) -> Server {
    let server = Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        cluster: Some(ClusterConfig {
            bus: redis.url(),
            name: "bench".into(),
            node_id: id,
        }),
        ..ServerConfig::default()
    })
    .unwrap();
    server.start().unwrap();
    server
}

/// One fan-out run, broadcasting from the first server of `spread`, each
/// holding its share of the receivers; deliveries per second, and Redis's
/// CPU seconds per broadcast.
fn fan_out(
    spread: &[(&Server, f64)],
    redis: &RedisServer,
    receivers: usize,
    broadcasts: usize,
) -> (f64, f64) {
    let mut sockets = Vec::new();
    for (node, share) in spread {
        let port = node.local_addr().unwrap().port();
        for _ in 0..(receivers as f64 * share).round() as usize {
            sockets.push(receiver(port));
        }
    }
    let receivers = sockets.len();
    let connected = || spread.iter().map(|(n, _)| n.client_count()).sum::<usize>();
    wait_for(|| connected() == receivers);
    std::thread::sleep(Duration::from_millis(200));
    let redis_before = process_cpu(redis.pid());
    let payload = [7u8; PAYLOAD];
    let start = Instant::now();
    let reading = std::thread::spawn(move || read_all(sockets, broadcasts * FRAME));
    for _ in 0..broadcasts {
        spread[0].0.broadcast(NEWS, &payload, &[]).unwrap();
    }
    reading.join().unwrap();
    let elapsed = start.elapsed();
    let redis_cpu = process_cpu(redis.pid()) - redis_before;
    wait_for(|| connected() == 0);
    let deliveries = (receivers * broadcasts) as f64;
    (
        deliveries / elapsed.as_secs_f64(),
        redis_cpu.as_secs_f64() / broadcasts as f64,
    )
}

/// A handshaken raw connection to `port`.
fn receiver(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut decoder = FrameDecoder::new(u32::MAX, 4096);
    handshake_as_client(&mut stream, &mut decoder);
    stream
}

/// Reads every socket until each has delivered `bytes`, then closes them.
fn read_all(sockets: Vec<TcpStream>, bytes: usize) {
    let mut poll = Poll::new().unwrap();
    let mut streams: Vec<(mio::net::TcpStream, usize)> = sockets
        .into_iter()
        .map(|s| {
            s.set_nonblocking(true).unwrap();
            (mio::net::TcpStream::from_std(s), 0)
        })
        .collect();
    for (i, (stream, _)) in streams.iter_mut().enumerate() {
        poll.registry()
            .register(stream, Token(i), Interest::READABLE)
            .unwrap();
    }
    let mut left = streams.len();
    let mut events = Events::with_capacity(1024);
    let mut buffer = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(120);
    while left > 0 {
        assert!(
            Instant::now() < deadline,
            "{left} receivers still waiting after 120 s"
        );
        poll.poll(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
        for event in &events {
            let (stream, got) = &mut streams[event.token().0];
            loop {
                match stream.read(&mut buffer) {
                    Ok(0) => panic!("a node closed a receiver"),
                    Ok(n) => {
                        let before = *got;
                        *got += n;
                        if before < bytes && *got >= bytes {
                            left -= 1;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}

/// One latency run: [local p50, local p99, remote p50, remote p99].
fn latency(nodes: &[Server], sends: usize) -> [Duration; 4] {
    let mut stream = receiver(nodes[1].local_addr().unwrap().port());
    wait_for(|| nodes[1].client_count() == 1);
    let peer = nodes[1].peer_ids()[0];
    std::thread::sleep(Duration::from_millis(200));
    let mut frame = [0u8; 15 + 8];
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for i in 0..sends {
        let (from, times) = match i % 2 {
            0 => (&nodes[1], &mut local),
            _ => (&nodes[0], &mut remote),
        };
        let start = Instant::now();
        from.send(peer, NEWS, &(i as u64).to_be_bytes()).unwrap();
        stream.read_exact(&mut frame).unwrap();
        times.push(start.elapsed());
        assert_eq!(frame[15..], (i as u64).to_be_bytes(), "in order, none lost");
    }
    drop(stream);
    wait_for(|| nodes[1].client_count() == 0);
    let (local, remote) = (percentiles(local), percentiles(remote));
    [local.0, local.1, remote.0, remote.1]
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn median_of(runs: usize, mut run: impl FnMut() -> (f64, f64)) -> (f64, f64) {
    let mut results: Vec<(f64, f64)> = (0..runs).map(|_| run()).collect();
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    results[results.len() / 2]
}

/// A process's CPU time, in nanoseconds, from /proc (its main thread's:
/// Redis runs its commands on it).
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
    Duration::from_nanos(stat.split_whitespace().next().unwrap().parse().unwrap())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "not within 30 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
