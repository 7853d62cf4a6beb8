//! 10,000 idle connections held by the server at once, its memory per idle
//! connection, the CPU its heartbeats to all of them cost, and service to
//! an active client meanwhile. Alone in its test binary so the memory and
//! CPU measurements see only this server.

// Linux only: it measures memory through /proc.
#![cfg(target_os = "linux")]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::capi::TestClient;
use support::server_capi::{TestServer, ECHO};

const IDLE: usize = 10_000;
const HEARTBEAT_MS: u32 = 500;

/// Resident memory of this process in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn wait_for(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ten_thousand_idle_connections_and_an_active_client() {
    // Heartbeats on: a PING to every silent peer each half second (the
    // idle peers never answer, so no timeout, which would close them).
    let server = TestServer::start(|config| {
        config.max_workers = 1;
        config.liveness.heartbeat_interval_ms = HEARTBEAT_MS;
    });
    // Warm up: one connection through every code path before measuring.
    drop(TestClient::connected(server.port));
    wait_for(
        "the warm-up client to leave",
        Duration::from_secs(5),
        || server.client_count() == 0,
    );
    let before = rss();

    let started = Instant::now();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/idle_peers.py");
    let mut holder = Command::new(support::python())
        .args([
            script,
            "--port",
            &server.port.to_string(),
            "--count",
            &IDLE.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start idle_peers.py");
    let mut ready = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    println!("{IDLE} connections ready after {:?}", started.elapsed());
    assert_eq!(
        ready.trim(),
        format!("READY {IDLE}"),
        "idle_peers.py output"
    );
    wait_for(
        "every idle peer to be connected",
        Duration::from_secs(30),
        || server.client_count() == IDLE,
    );
    let after = rss();
    let per_connection = after.saturating_sub(before) / IDLE as u64;
    println!(
        "server memory: {} KiB before, {} KiB with {IDLE} idle connections: {per_connection} bytes per idle connection",
        before / 1024,
        after / 1024
    );
    // The sanitizer passes' shadow memory gets the allocator slack.
    let bound = 8 * 1024 + support::measure::allocator_slack() / IDLE as u64;
    assert!(
        per_connection < bound,
        "an idle connection costs {per_connection} bytes"
    );

    // The heartbeats' cost: the I/O thread and the request timer, which
    // retires each unanswered PING, over 3 s of 20,000 PINGs a second.
    let cpu = || {
        support::measure::thread_cpu("veltix-server-io")
            + support::measure::thread_cpu("veltix-timer")
    };
    let (cpu_before, measuring) = (cpu(), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let share = (cpu() - cpu_before).as_secs_f64() / measuring.elapsed().as_secs_f64();
    let first = server.peers()[0];
    let pings = {
        let mut stats = unsafe { std::mem::zeroed::<veltix::ffi::veltix_stats_t>() };
        stats.struct_size = std::mem::size_of_val(&stats) as u32;
        unsafe { veltix::ffi::veltix_server_peer_stats(server.ptr, first, &mut stats) };
        stats.frames_out
    };
    println!(
        "heartbeats every {HEARTBEAT_MS} ms to {IDLE} idle peers: {:.1}% of a core (I/O thread and timer); {pings} PINGs to one peer so far",
        share * 100.0
    );
    assert!(pings >= 5, "the idle peers are pinged: {pings}");
    assert!(
        share < 0.5 * support::cpu_slowdown(),
        "heartbeats cost {:.1}% of a core",
        share * 100.0
    );

    // An active client is served at once while they idle.
    let client = TestClient::connected(server.port);
    let started = Instant::now();
    for i in 0..100 {
        let text = format!("active {i}");
        assert_eq!(
            client.request(ECHO, text.as_bytes(), 2000).unwrap().2,
            text.as_bytes()
        );
    }
    let per_request = started.elapsed() / 100;
    println!("echo round trip with {IDLE} idle connections: {per_request:?}");
    assert!(per_request < Duration::from_millis(20));
    let reached = server.broadcast(230, b"to all", &[]);
    assert_eq!(reached, IDLE + 1);

    drop(holder.stdin.take());
    holder.wait().unwrap();
    let closing = Instant::now();
    wait_for("the idle peers to be gone", Duration::from_secs(30), || {
        server.client_count() == 1
    });
    println!("{IDLE} disconnections handled in {:?}", closing.elapsed());
}
