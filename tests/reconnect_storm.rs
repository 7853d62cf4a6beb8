//! 1,000 clients cut off by a server restart, reconnecting with the
//! reference's fixed delay and with backoff and full jitter: how many
//! connection attempts land in the busiest 100 ms. Alone in its binary (it
//! runs 1,000 clients at a time); the numbers go to the README.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use veltix::client::{Client, ClientConfig};
use veltix::server::{Server, ServerConfig};

/// How long the server stays down.
const DOWN: Duration = Duration::from_millis(1500);

/// Reconnection attempts made after the cut (each failed attempt's
/// on_disconnect and each on_connect), and when the last client was back.
struct Storm {
    attempts: Vec<Instant>,
    cut_at: Instant,
    all_back_after: Duration,
}

fn storm(tweak: impl Fn(&mut ClientConfig)) -> Storm {
    let port = support::restartable_port();
    let server = Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        io_threads: support::io_threads(),
        port,
        max_workers: 1,
        ..ServerConfig::default()
    })
    .unwrap();
    server.start().unwrap();
    let attempts = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let count = support::many_clients();
    let clients: Vec<Client> = (0..count)
        .map(|_| {
            let mut config = ClientConfig {
                port,
                max_workers: 1,
                retry: 30,
                retry_delay: Duration::from_millis(1000),
                ..ClientConfig::default()
            };
            tweak(&mut config);
            let client = Client::new(config).unwrap();
            let record = attempts.clone();
            client.on_disconnect(Some(Arc::new(move |_, state| {
                if state.attempt >= 1 {
                    record.lock().unwrap().push(Instant::now());
                }
            })));
            let record = attempts.clone();
            client.on_connect(Some(Arc::new(move |_| {
                record.lock().unwrap().push(Instant::now());
            })));
            client.connect().unwrap();
            client
        })
        .collect();
    // Wait for the 1,000 on_connect calls of the first connections.
    let deadline = Instant::now() + Duration::from_secs(30);
    while attempts.lock().unwrap().len() < count {
        assert!(Instant::now() < deadline, "clients connected");
        std::thread::sleep(Duration::from_millis(10));
    }
    attempts.lock().unwrap().clear();

    let cut_at = Instant::now();
    server.close();
    std::thread::sleep(DOWN);
    server.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !clients.iter().all(Client::is_connected) {
        assert!(Instant::now() < deadline, "every client back within 30 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    let all_back_after = cut_at.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    // Client handles are clones: close() ends each one and joins its
    // threads (dropping a handle does not).
    for client in &clients {
        client.close();
    }
    server.shut_down();
    let attempts = attempts.lock().unwrap().clone();
    Storm {
        attempts,
        cut_at,
        all_back_after,
    }
}

/// The most attempts within any 100 ms.
fn busiest_100ms(times: &[Instant]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut most = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        while sorted[end] - sorted[start] >= Duration::from_millis(100) {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

#[test]
fn backoff_with_jitter_spreads_a_thousand_reconnecting_clients() {
    let fixed = storm(|_| {});
    let jittered = storm(|c| {
        c.retry_delay_max = Some(Duration::from_secs(8));
        c.retry_jitter = true;
    });
    let report = |name: &str, storm: &Storm| {
        let first = storm.attempts.iter().min().map(|t| *t - storm.cut_at);
        println!(
            "{name}: {} attempts, busiest 100 ms: {}, first at {first:?}, all back after {:?}",
            storm.attempts.len(),
            busiest_100ms(&storm.attempts),
            storm.all_back_after
        );
    };
    report("fixed 1 s (the reference)", &fixed);
    report("backoff 1 s..8 s, full jitter", &jittered);
    let (fixed_peak, jittered_peak) = (
        busiest_100ms(&fixed.attempts),
        busiest_100ms(&jittered.attempts),
    );
    assert!(
        fixed_peak >= support::many_clients() * 9 / 10,
        "without jitter the clients come back together: {fixed_peak}"
    );
    assert!(
        jittered_peak * 3 <= fixed_peak,
        "with jitter the busiest 100 ms holds far fewer attempts: {jittered_peak} vs {fixed_peak}"
    );
}
