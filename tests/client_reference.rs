//! End-to-end tests through the C ABI against the real veltix 3.3.0 server.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::capi::{disconnect, last_error, read_message, Event, TestClient};
use support::RefServer;
use veltix::ffi::*;

const ECHO: u16 = 200;
const SLOW_ECHO: u16 = 201;
const BROADCAST: u16 = 202;
const BROADCAST_OUT: u16 = 203;
const ASK: u16 = 212;
const ANSWER: u16 = 213;
const COUNT: u16 = 220;

#[test]
fn connect_send_and_wait_and_ping() {
    let server = RefServer::start();
    let client = TestClient::connected(server.port);
    assert!(client.is_connected());
    let (type_code, request_id, payload) = client.request(ECHO, b"hello veltix", 5000).unwrap();
    assert_eq!(
        (type_code, payload.as_slice()),
        (ECHO, &b"hello veltix"[..])
    );
    assert!(
        (1..32768).contains(&request_id),
        "client ids are in [1, 32768)"
    );

    let mut rtt = -1.0;
    assert_eq!(
        unsafe { veltix_client_ping(client.ptr, 5000, &mut rtt) },
        VELTIX_OK
    );
    assert!(rtt > 0.0 && rtt < 5000.0, "rtt {rtt}");
    assert_eq!(
        unsafe { veltix_client_ping(client.ptr, 5000, std::ptr::null_mut()) },
        VELTIX_OK
    );

    let text = std::ffi::CString::new("as text").unwrap();
    assert_eq!(client.route(ECHO), VELTIX_OK);
    assert_eq!(
        unsafe { veltix_client_send_text(client.ptr, ECHO, text.as_ptr()) },
        VELTIX_OK
    );
    assert_eq!(client.next_message(), (Some(ECHO), b"as text".to_vec()));
}

#[test]
fn route_then_on_recv_then_pending_order() {
    let server = RefServer::start();
    let client = TestClient::connected(server.port);
    // A route for ECHO must not steal the reply of a send_and_wait.
    assert_eq!(client.route(ECHO), VELTIX_OK);
    assert_eq!(client.route(ECHO), VELTIX_ERR_ALREADY_EXISTS);
    assert!(
        last_error().contains("already has a route"),
        "{}",
        last_error()
    );
    let (_, _, payload) = client
        .request(ECHO, b"reply goes to the waiter", 5000)
        .unwrap();
    assert_eq!(payload, b"reply goes to the waiter");
    assert_eq!(client.next_event_within(Duration::from_millis(300)), None);

    // A plain send's echo goes to the route.
    assert_eq!(client.send(ECHO, b"routed"), VELTIX_OK);
    assert_eq!(client.next_message(), (Some(ECHO), b"routed".to_vec()));
    // Without the route it reaches on_recv.
    assert_eq!(
        unsafe { veltix_client_unroute(client.ptr, ECHO) },
        VELTIX_OK
    );
    assert_eq!(
        unsafe { veltix_client_unroute(client.ptr, ECHO) },
        VELTIX_ERR_NOT_FOUND
    );
    assert_eq!(client.send(ECHO, b"unrouted"), VELTIX_OK);
    assert_eq!(client.next_message(), (None, b"unrouted".to_vec()));
    // With neither, the message is dropped (logged) and nothing breaks.
    assert_eq!(
        unsafe { veltix_client_on_recv(client.ptr, None, std::ptr::null_mut(), None) },
        VELTIX_OK
    );
    assert_eq!(client.send(ECHO, b"dropped"), VELTIX_OK);
    assert_eq!(client.next_event_within(Duration::from_millis(300)), None);
    assert!(client.request(ECHO, b"still fine", 5000).is_ok());
}

#[test]
fn replies_are_matched_by_id_out_of_order() {
    let server = RefServer::start();
    let client = Arc::new(TestClient::connected(server.port));
    let slow = {
        let client = client.clone();
        std::thread::spawn(move || {
            let result = client.request(SLOW_ECHO, b"600:slow", 5000);
            (result, Instant::now())
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let (_, _, fast) = client.request(ECHO, b"fast", 5000).unwrap();
    let fast_done = Instant::now();
    let mut rtt = 0.0;
    assert_eq!(
        unsafe { veltix_client_ping(client.ptr, 5000, &mut rtt) },
        VELTIX_OK
    );
    let (slow_result, slow_done) = slow.join().unwrap();
    assert_eq!(fast, b"fast");
    assert_eq!(slow_result.unwrap().2, b"slow");
    assert!(
        fast_done < slow_done,
        "the fast reply overtook the slow one"
    );
}

#[test]
fn server_ping_and_server_request_answered_with_reply() {
    let server = RefServer::start();
    let client = TestClient::connected(server.port);
    let result = client.command(r#"{"cmd": "ping_me"}"#);
    assert!(
        result["rtt"].as_f64().is_some(),
        "server ping got a PONG: {result}"
    );

    // The server's send_and_wait reaches our route; we answer with reply.
    assert_eq!(client.route(ASK), VELTIX_OK);
    *client.sink.on_message.lock().unwrap() = Some(Box::new(|client, message| unsafe {
        if veltix_message_type(message) == ASK {
            let (_, id, text) = read_message(message);
            assert!(id >= 32768, "server-chosen id {id}");
            let mut answer = b"answer:".to_vec();
            answer.extend(text);
            let status =
                veltix_client_reply(client, message, ANSWER, answer.as_ptr(), answer.len());
            assert_eq!(status, VELTIX_OK);
        }
    }));
    let result = client.command(r#"{"cmd": "ask", "text": "question"}"#);
    assert_eq!(result["answer"]["text"], "answer:question");
    assert_eq!(result["answer"]["type"], ANSWER);
}

#[test]
fn broadcasts_reach_every_client() {
    let server = RefServer::start();
    let a = TestClient::connected(server.port);
    let b = TestClient::connected(server.port);
    assert_eq!(b.route(BROADCAST_OUT), VELTIX_OK);
    assert_eq!(a.send(BROADCAST, b"to all"), VELTIX_OK);
    for (client, route) in [(&a, None), (&b, Some(BROADCAST_OUT))] {
        match client.next_event() {
            Some(Event::Message {
                route: r,
                type_code,
                request_id,
                payload,
            }) => {
                assert_eq!(
                    (r, type_code, payload.as_slice()),
                    (route, BROADCAST_OUT, &b"to all"[..])
                );
                assert!(request_id >= 32768);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn server_close_without_retry_fails_pending_at_once() {
    let server = RefServer::start();
    let client = Arc::new(TestClient::connected(server.port));
    let pending = {
        let client = client.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            (
                client.request(SLOW_ECHO, b"8000:never", 20_000),
                start.elapsed(),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    client.send(210, br#"{"cmd": "close_me"}"#);
    let (result, elapsed) = pending.join().unwrap();
    assert_eq!(result, Err(VELTIX_ERR_CLOSED));
    assert!(
        elapsed < Duration::from_secs(5),
        "failed at once, not after the timeout: {elapsed:?}"
    );
    let events = client.drain_events(Duration::from_millis(500));
    assert_eq!(
        events,
        vec![disconnect(true, 0, 0, VELTIX_DISCONNECT_SERVER_CLOSED)]
    );
    assert!(!client.is_connected());
    assert_eq!(
        unsafe { veltix_client_wait_until_closed(client.ptr, 1000) },
        VELTIX_OK
    );
    assert_eq!(client.send(ECHO, b"x"), VELTIX_ERR_NOT_CONNECTED);
    assert_eq!(
        client.request(ECHO, b"x", 100),
        Err(VELTIX_ERR_NOT_CONNECTED)
    );
}

#[test]
fn server_gone_with_retry_reports_each_attempt() {
    let mut server = RefServer::start();
    let client = TestClient::new(server.port, |c| {
        c.retry = 3;
        c.retry_delay_ms = 100;
    });
    assert_eq!(client.connect(), VELTIX_OK);
    assert_eq!(client.next_event(), Some(Event::Connect));
    server.kill();
    let expected = vec![
        disconnect(false, 0, 3, VELTIX_DISCONNECT_SERVER_CLOSED),
        disconnect(false, 1, 3, VELTIX_DISCONNECT_SERVER_CLOSED),
        disconnect(false, 2, 3, VELTIX_DISCONNECT_SERVER_CLOSED),
        disconnect(false, 3, 3, VELTIX_DISCONNECT_SERVER_CLOSED),
        disconnect(true, 3, 3, VELTIX_DISCONNECT_SERVER_CLOSED),
    ];
    let events: Vec<Event> = (0..5).filter_map(|_| client.next_event()).collect();
    assert_eq!(events, expected);
    assert_eq!(
        unsafe { veltix_client_wait_until_closed(client.ptr, 2000) },
        VELTIX_OK
    );
}

#[test]
fn reconnects_after_the_server_restarts_keeping_routes() {
    let mut server = RefServer::start();
    let port = server.port;
    let client = TestClient::new(port, |c| {
        c.retry = 200;
        c.retry_delay_ms = 100;
    });
    assert_eq!(client.route(BROADCAST_OUT), VELTIX_OK);
    assert_eq!(client.connect(), VELTIX_OK);
    assert_eq!(client.next_event(), Some(Event::Connect));
    server.kill();
    assert_eq!(
        client.next_event(),
        Some(disconnect(false, 0, 200, VELTIX_DISCONNECT_SERVER_CLOSED))
    );
    std::thread::sleep(Duration::from_millis(300));
    let _server = RefServer::start_on(port, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.next_event() {
            Some(Event::Connect) => break,
            Some(Event::Disconnect {
                permanent: false, ..
            }) if Instant::now() < deadline => {}
            other => panic!("expected a reconnection, got {other:?}"),
        }
    }
    assert!(client.is_connected());
    assert_eq!(
        client.request(ECHO, b"after restart", 5000).unwrap().2,
        b"after restart"
    );
    assert_eq!(client.send(BROADCAST, b"routes kept"), VELTIX_OK);
    assert_eq!(
        client.next_message(),
        (Some(BROADCAST_OUT), b"routes kept".to_vec())
    );
}

#[test]
fn stop_retry_cancels_during_the_delay() {
    let mut server = RefServer::start();
    let client = TestClient::new(server.port, |c| {
        c.retry = 5;
        c.retry_delay_ms = 30_000;
    });
    assert_eq!(client.connect(), VELTIX_OK);
    assert_eq!(client.next_event(), Some(Event::Connect));
    server.kill();
    assert_eq!(
        client.next_event(),
        Some(disconnect(false, 0, 5, VELTIX_DISCONNECT_SERVER_CLOSED))
    );
    assert_eq!(
        client.next_event(),
        Some(disconnect(false, 1, 5, VELTIX_DISCONNECT_SERVER_CLOSED))
    );
    // Now in the 30 s delay.
    assert_eq!(
        unsafe { veltix_client_wait_until_closed(client.ptr, 100) },
        VELTIX_ERR_TIMEOUT
    );
    let start = Instant::now();
    assert_eq!(unsafe { veltix_client_stop_retry(client.ptr) }, VELTIX_OK);
    assert_eq!(
        client.next_event(),
        Some(disconnect(true, 1, 5, VELTIX_DISCONNECT_SERVER_CLOSED))
    );
    assert_eq!(
        unsafe { veltix_client_wait_until_closed(client.ptr, 2000) },
        VELTIX_OK
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn retry_reconnects_in_the_background() {
    let mut server = RefServer::start();
    let port = server.port;
    let client = TestClient::connected(port);
    assert_eq!(
        unsafe { veltix_client_retry(client.ptr, 3) },
        VELTIX_ERR_ALREADY_CONNECTED
    );
    server.kill();
    assert_eq!(
        client.next_event(),
        Some(disconnect(true, 0, 0, VELTIX_DISCONNECT_SERVER_CLOSED))
    );
    assert_eq!(
        unsafe { veltix_client_retry(client.ptr, -1) },
        VELTIX_ERR_INVALID_ARGUMENT
    );
    let _server = RefServer::start_on(port, &[]);
    assert_eq!(unsafe { veltix_client_retry(client.ptr, 3) }, VELTIX_OK);
    assert_eq!(client.next_event(), Some(Event::Connect));
    assert!(client.request(ECHO, b"back", 5000).is_ok());
}

#[test]
fn manual_disconnect_and_reconnect() {
    let server = RefServer::start();
    let client = TestClient::connected(server.port);
    assert_eq!(client.connect(), VELTIX_ERR_ALREADY_CONNECTED);
    assert_eq!(unsafe { veltix_client_disconnect(client.ptr) }, VELTIX_OK);
    assert_eq!(
        client.next_event(),
        Some(disconnect(true, 0, 0, VELTIX_DISCONNECT_MANUAL))
    );
    assert_eq!(
        unsafe { veltix_client_disconnect(client.ptr) },
        VELTIX_ERR_NOT_CONNECTED
    );
    assert_eq!(
        unsafe { veltix_client_wait_until_closed(client.ptr, -1) },
        VELTIX_OK
    );
    assert_eq!(client.connect(), VELTIX_OK);
    assert_eq!(client.next_event(), Some(Event::Connect));
    assert!(client.request(ECHO, b"again", 5000).is_ok());
}

#[test]
fn server_full_is_reported() {
    let server = RefServer::start_on(support::free_port(), &["--max-connection", "1"]);
    let first = TestClient::connected(server.port);
    let second = TestClient::new(server.port, |_| {});
    assert_eq!(second.connect(), VELTIX_ERR_SERVER_FULL);
    assert!(last_error().contains("full"), "{}", last_error());
    assert_eq!(
        second.next_event(),
        Some(disconnect(true, 0, 0, VELTIX_DISCONNECT_SERVER_CLOSED))
    );
    assert!(first.request(ECHO, b"first still served", 5000).is_ok());
}

#[test]
fn one_mebibyte_payloads_and_the_size_limit() {
    let server = RefServer::start();
    let client = TestClient::connected(server.port);
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    let (_, _, echoed) = client.request(ECHO, &big, 20_000).unwrap();
    assert!(echoed == big, "1 MiB echoed intact");

    let small = TestClient::new(server.port, |c| c.max_message_size = 1024);
    assert_eq!(small.connect(), VELTIX_OK);
    assert_eq!(
        small.send(ECHO, &big[..1024 - 15 + 1]),
        VELTIX_ERR_MESSAGE_TOO_LARGE
    );
    assert!(
        last_error().contains("max_message_size"),
        "{}",
        last_error()
    );
    assert_eq!(
        small.request(ECHO, &big[..1024 - 15 + 1], 1000),
        Err(VELTIX_ERR_MESSAGE_TOO_LARGE)
    );
    // Nothing was written: the connection is intact and the limit is exact.
    assert_eq!(
        small.request(ECHO, &big[..1024 - 15], 5000).unwrap().2,
        &big[..1024 - 15]
    );
}

#[test]
fn eight_threads_sending_concurrently_arrive_intact() {
    let server = RefServer::start();
    let client = Arc::new(TestClient::connected(server.port));
    const PER_THREAD: usize = 1000;
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                let mut sum = 0u64;
                for i in 0..PER_THREAD {
                    let len = 1 + (i * 97 + usize::from(t) * 13) % 4000;
                    let mut payload = vec![t; len];
                    payload[..8.min(len)].copy_from_slice(&(i as u64).to_be_bytes()[..8.min(len)]);
                    assert_eq!(client.send(COUNT, &payload), VELTIX_OK);
                    sum = sum.wrapping_add(fingerprint(&payload));
                }
                sum
            })
        })
        .collect();
    let expected_sum = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold(0u64, u64::wrapping_add);
    // The stats request is ordered after every COUNT frame on the wire, but
    // the server handles frames on a pool: poll until all are counted.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, stats) = client.request(210, br#"{"cmd": "stats"}"#, 5000).unwrap();
        let stats: serde_json::Value = serde_json::from_slice(&stats).unwrap();
        if stats["count"] == 8 * PER_THREAD || Instant::now() > deadline {
            assert_eq!(stats["count"], 8 * PER_THREAD);
            assert_eq!(stats["sum"].as_u64(), Some(expected_sum));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The reference script's fingerprint: crc32 * 2**20 + len, summed mod 2**64.
fn fingerprint(payload: &[u8]) -> u64 {
    (u64::from(crc32fast::hash(payload)) << 20).wrapping_add(payload.len() as u64)
}

#[test]
fn calls_from_inside_callbacks_do_not_deadlock() {
    let server = RefServer::start();
    let client = TestClient::connected(server.port);
    assert_eq!(client.route(BROADCAST_OUT), VELTIX_OK);
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    *client.sink.on_message.lock().unwrap() = Some(Box::new(move |client, _message| unsafe {
        // send_and_wait from a callback: the reply is matched on the reader.
        let mut response = std::ptr::null_mut();
        let status =
            veltix_client_send_and_wait(client, ECHO, b"inner".as_ptr(), 5, 5000, &mut response);
        let (_, _, payload) = read_message(response);
        veltix_message_free(response);
        let disconnected = veltix_client_disconnect(client);
        tx.lock()
            .unwrap()
            .send((status, payload, disconnected))
            .unwrap();
    }));
    assert_eq!(client.send(BROADCAST, b"go"), VELTIX_OK);
    let (status, payload, disconnected) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        (status, payload.as_slice(), disconnected),
        (VELTIX_OK, &b"inner"[..], VELTIX_OK)
    );
}

#[test]
fn free_from_inside_a_callback_returns() {
    let server = RefServer::start();
    let client = TestClient::connected(server.port);
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    *client.sink.on_message.lock().unwrap() = Some(Box::new(move |inner, _| unsafe {
        veltix_client_free(inner);
        tx.lock().unwrap().send(()).unwrap();
    }));
    assert_eq!(client.send(ECHO, b"free me"), VELTIX_OK);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("free inside a callback returned");
    // The handle is gone; keep the test's Drop from freeing it twice.
    std::mem::forget(client);
}

#[test]
fn free_fails_pending_requests_and_joins() {
    let server = RefServer::start();
    let client = TestClient::connected(server.port);
    let ptr = client.ptr as usize;
    let waiter = std::thread::spawn(move || unsafe {
        let mut response = std::ptr::null_mut();
        let start = Instant::now();
        let status = veltix_client_send_and_wait(
            ptr as *mut veltix_client_t,
            SLOW_ECHO,
            b"8000:x".as_ptr(),
            6,
            20_000,
            &mut response,
        );
        (status, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    drop(client);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "free took {:?}",
        start.elapsed()
    );
    let (status, elapsed) = waiter.join().unwrap();
    assert_eq!(status, VELTIX_ERR_CLOSED);
    assert!(elapsed < Duration::from_secs(5));
}

#[test]
fn a_slow_callback_never_delays_replies_or_pings() {
    let server = RefServer::start();
    let client = TestClient::new(server.port, |c| c.max_workers = 1);
    assert_eq!(client.connect(), VELTIX_OK);
    assert_eq!(client.route(BROADCAST_OUT), VELTIX_OK);
    *client.sink.on_message.lock().unwrap() = Some(Box::new(|_, message| unsafe {
        if veltix_message_type(message) == BROADCAST_OUT {
            std::thread::sleep(Duration::from_millis(1500));
        }
    }));
    assert_eq!(client.send(BROADCAST, b"occupy the only worker"), VELTIX_OK);
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    assert_eq!(
        client.request(ECHO, b"not delayed", 5000).unwrap().2,
        b"not delayed"
    );
    let mut rtt = 0.0;
    assert_eq!(
        unsafe { veltix_client_ping(client.ptr, 5000, &mut rtt) },
        VELTIX_OK
    );
    assert!(
        start.elapsed() < Duration::from_millis(700),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn one_worker_keeps_arrival_order() {
    let server = RefServer::start();
    let client = TestClient::new(server.port, |c| c.max_workers = 1);
    assert_eq!(client.connect(), VELTIX_OK);
    assert_eq!(client.next_event(), Some(Event::Connect));
    assert_eq!(
        client.send(210, br#"{"cmd": "burst", "n": 300}"#),
        VELTIX_OK
    );
    let payloads: Vec<String> = (0..300)
        .map(|_| match client.next_event() {
            Some(Event::Message { payload, .. }) => String::from_utf8(payload).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    assert_eq!(payloads, expected);
}
