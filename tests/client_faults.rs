//! Faults the reference server cannot produce, from a scripted fake server,
//! and the C boundary's argument checks.

mod support;

use std::ffi::{CStr, CString};
use std::io::Write;
use std::ptr;
use std::time::{Duration, Instant};

use support::capi::{last_error, TestClient};
use support::fake_server::{
    complete_handshake, read_frame, read_handshake, FakeServer, REFERENCE_HELLO,
};
use veltix::ffi::*;
use veltix::protocol::{encode_frame, handshake};

#[test]
fn version_mismatch() {
    let fake = FakeServer::new();
    let port = fake.port;
    let server = fake.serve_one(|mut stream| {
        let hello = b"{\"v\": \"9.0.0\", \"pv\": \"2.0\", \"meta\": {}}";
        stream
            .write_all(&(hello.len() as u16).to_be_bytes())
            .unwrap();
        stream.write_all(hello).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    });
    let client = TestClient::new(port, |_| {});
    assert_eq!(client.connect(), VELTIX_ERR_VERSION_MISMATCH);
    assert!(last_error().contains("2.0"), "{}", last_error());
    assert!(!client.is_connected());
    server.join().unwrap();
}

#[test]
fn handshake_timeout() {
    let fake = FakeServer::new();
    let port = fake.port;
    let server = fake.serve_one(|_stream| std::thread::sleep(Duration::from_millis(1500)));
    let client = TestClient::new(port, |c| c.handshake_timeout_ms = 300);
    let start = Instant::now();
    assert_eq!(client.connect(), VELTIX_ERR_TIMEOUT);
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(280) && elapsed < Duration::from_secs(1),
        "{elapsed:?}"
    );
    assert!(
        last_error().contains("handshake_timeout_ms"),
        "{}",
        last_error()
    );
    assert_eq!(
        client.next_event(),
        Some(support::capi::disconnect(
            true,
            0,
            0,
            VELTIX_DISCONNECT_ERROR
        ))
    );
    server.join().unwrap();
}

#[test]
fn rejection_and_silent_close_during_handshake() {
    let fake = FakeServer::new();
    let port = fake.port;
    let server = std::thread::spawn(move || {
        let mut full = fake.accept();
        full.write_all(&handshake::rejection("server_full"))
            .unwrap();
        drop(full);
        let mut closer = fake.accept();
        closer.write_all(REFERENCE_HELLO).unwrap();
        let _ = read_handshake(&mut closer);
        drop(closer);
        let mut other = fake.accept();
        other.write_all(&handshake::rejection("banned")).unwrap();
    });
    let client = TestClient::new(port, |_| {});
    assert_eq!(client.connect(), VELTIX_ERR_SERVER_FULL);
    assert_eq!(client.connect(), VELTIX_ERR_HANDSHAKE_FAILED);
    assert_eq!(client.connect(), VELTIX_ERR_HANDSHAKE_FAILED);
    assert!(last_error().contains("banned"), "{}", last_error());
    server.join().unwrap();
}

#[test]
fn frames_inside_the_handshake_are_delivered_once_connected() {
    let fake = FakeServer::new();
    let port = fake.port;
    let server = fake.serve_one(|mut stream| {
        stream
            .write_all(&encode_frame(300, 40000, b"before hello"))
            .unwrap();
        stream.write_all(REFERENCE_HELLO).unwrap();
        let hello = read_handshake(&mut stream);
        assert_eq!(hello["pv"], "1.0");
        assert_eq!(hello["v"], veltix::VERSION);
        stream
            .write_all(&encode_frame(301, 40001, b"before ack"))
            .unwrap();
        // The ack and a data frame in one segment (pipelined).
        let mut segment = handshake::ack();
        segment.extend(encode_frame(302, 40002, b"after ack"));
        stream.write_all(&segment).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    });
    let client = TestClient::new(port, |c| c.max_workers = 1);
    assert_eq!(client.connect(), VELTIX_OK, "{}", last_error());
    let mut messages = client.drain_messages(Duration::from_millis(300));
    messages.sort();
    assert_eq!(
        messages,
        vec![
            (300, b"before hello".to_vec()),
            (301, b"before ack".to_vec()),
            (302, b"after ack".to_vec())
        ]
    );
    server.join().unwrap();
}

#[test]
fn garbage_bad_crc_and_oversized_frames_cost_only_themselves() {
    let fake = FakeServer::new();
    let port = fake.port;
    let server = fake.serve_one(|mut stream| {
        complete_handshake(&mut stream);
        let mut bad_crc = encode_frame(300, 1, b"corrupted");
        bad_crc[20] ^= 0x55;
        let smuggled = encode_frame(300, 2, b"smuggled");
        let mut oversized_payload = vec![0u8; 200];
        oversized_payload[50..50 + smuggled.len()].copy_from_slice(&smuggled);
        let oversized = encode_frame(300, 3, &oversized_payload);
        for part in [
            &b"\x00garbage\xffVZ"[..],
            &bad_crc,
            &oversized,
            &encode_frame(300, 4, b"good"),
        ] {
            stream.write_all(part).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        // The connection still works both ways: a PING gets its PONG.
        stream
            .write_all(&encode_frame(0, 777, b"ping payload"))
            .unwrap();
        assert_eq!(read_frame(&mut stream), (1, 777, vec![]));
        stream
            .write_all(&encode_frame(300, 5, b"still here"))
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    });
    let client = TestClient::new(port, |c| c.max_message_size = 100);
    assert_eq!(client.connect(), VELTIX_OK);
    assert_eq!(
        client.drain_messages(Duration::from_millis(500)),
        vec![(300, b"good".to_vec()), (300, b"still here".to_vec())]
    );
    server.join().unwrap();
}

#[test]
fn an_ipv6_literal_address_connects() {
    let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
        panic!("this machine has no IPv6 loopback; the IPv6 test cannot run here");
    };
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        complete_handshake(&mut stream);
        assert_eq!(read_frame(&mut stream), (200, 1, b"over v6".to_vec()));
    });
    let addr = CString::new("::1").unwrap();
    let client = TestClient::new(port, |c| c.server_addr = addr.as_ptr());
    assert_eq!(client.connect(), VELTIX_OK, "{}", last_error());
    assert_eq!(client.send(200, b"over v6"), VELTIX_OK);
    server.join().unwrap();
}

#[test]
fn status_strings_versions_and_last_error() {
    let text = |s| {
        unsafe { CStr::from_ptr(veltix_status_str(s)) }
            .to_str()
            .unwrap()
    };
    assert_eq!(text(VELTIX_OK), "ok");
    assert_eq!(text(VELTIX_ERR_TIMEOUT), "timed out");
    assert_eq!(text(12345), "unknown status");
    assert_eq!(text(i32::MIN), "unknown status");
    for code in -16..=0 {
        assert_ne!(text(code), "unknown status", "code {code}");
    }
    let version = unsafe { CStr::from_ptr(veltix_version()) }
        .to_str()
        .unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert_eq!(version, "0.1.0");
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/veltix.h")).unwrap();
    for (macro_name, value) in [
        ("VELTIX_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("VELTIX_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("VELTIX_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        assert!(
            header.contains(&format!("#define {macro_name} {value}\n")),
            "{macro_name}"
        );
    }
    assert!(header.contains("#define VELTIX_PROTOCOL_VERSION \"1.0\""));
    // last_error is per thread.
    assert_eq!(
        unsafe { veltix_client_connect(ptr::null_mut()) },
        VELTIX_ERR_NULL_POINTER
    );
    assert!(last_error().contains("client is NULL"), "{}", last_error());
    let other = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(other, "");
}

#[test]
fn null_pointers_and_invalid_config_are_refused() {
    unsafe {
        let mut out = ptr::null_mut();
        assert_eq!(
            veltix_client_new(ptr::null(), &mut out),
            VELTIX_ERR_NULL_POINTER
        );
        let mut config = std::mem::zeroed::<veltix_client_config_t>();
        let size = std::mem::size_of_val(&config);
        assert_eq!(veltix_client_config_init(&mut config, size), VELTIX_OK);
        assert_eq!(config.struct_size as usize, size);
        assert_eq!(
            veltix_client_config_init(ptr::null_mut(), size),
            VELTIX_ERR_NULL_POINTER
        );
        assert_eq!(CStr::from_ptr(config.server_addr).to_str(), Ok("127.0.0.1"));
        assert_eq!(
            (
                config.port,
                config.buffer_size,
                config.max_message_size,
                config.handshake_timeout_ms
            ),
            (8080, 8192, 10 * 1024 * 1024, 5000)
        );
        assert_eq!(
            (config.max_workers, config.retry, config.retry_delay_ms),
            (4, 0, 1000)
        );
        assert_eq!(
            veltix_client_new(&config, ptr::null_mut()),
            VELTIX_ERR_NULL_POINTER
        );

        for (field, tweak) in [
            (
                "config.port",
                (|c: &mut veltix_client_config_t| c.port = 0) as fn(&mut _),
            ),
            ("config.max_workers", |c| c.max_workers = 257),
            ("config.buffer_size", |c| c.buffer_size = 0),
            ("config.max_message_size", |c| c.max_message_size = 10),
            ("config.handshake_timeout_ms", |c| {
                c.handshake_timeout_ms = 0
            }),
        ] {
            let mut bad = std::mem::zeroed::<veltix_client_config_t>();
            veltix_client_config_init(&mut bad, std::mem::size_of_val(&bad));
            tweak(&mut bad);
            let mut out = ptr::null_mut();
            assert_eq!(
                veltix_client_new(&bad, &mut out),
                VELTIX_ERR_INVALID_ARGUMENT,
                "{field}"
            );
            assert!(out.is_null(), "out written on failure");
            assert!(
                last_error().starts_with(field) && last_error().contains("Fix:"),
                "{}",
                last_error()
            );
        }

        let client = TestClient::new(1, |_| {});
        let c = client.ptr;
        let mut response = ptr::null_mut();
        assert_eq!(
            veltix_client_send(c, 200, ptr::null(), 5),
            VELTIX_ERR_NULL_POINTER
        );
        assert_eq!(
            veltix_client_send(c, 200, ptr::null(), 0),
            VELTIX_ERR_NOT_CONNECTED
        );
        assert_eq!(
            veltix_client_send_text(c, 200, ptr::null()),
            VELTIX_ERR_NULL_POINTER
        );
        assert_eq!(
            veltix_client_reply(c, ptr::null(), 200, ptr::null(), 0),
            VELTIX_ERR_NULL_POINTER
        );
        assert_eq!(
            veltix_client_send_and_wait(c, 200, ptr::null(), 0, 10, ptr::null_mut()),
            VELTIX_ERR_NULL_POINTER
        );
        assert_eq!(
            veltix_client_send_and_wait(c, 200, ptr::null(), 0, 10, &mut response),
            VELTIX_ERR_NOT_CONNECTED
        );
        assert!(response.is_null());
        assert_eq!(
            veltix_client_route(c, 200, None, ptr::null_mut(), None),
            VELTIX_ERR_NULL_POINTER
        );
        assert_eq!(
            veltix_client_ping(c, 10, ptr::null_mut()),
            VELTIX_ERR_NOT_CONNECTED
        );
        assert_eq!(veltix_client_disconnect(c), VELTIX_ERR_NOT_CONNECTED);
        assert_eq!(veltix_client_stop_retry(c), VELTIX_OK);
        assert_eq!(veltix_client_wait_until_closed(c, 0), VELTIX_OK);
        assert!(!veltix_client_is_connected(ptr::null()));
        for f in [
            veltix_client_disconnect,
            veltix_client_stop_retry,
            veltix_client_connect,
        ] {
            assert_eq!(f(ptr::null_mut()), VELTIX_ERR_NULL_POINTER);
        }
        assert_eq!(
            veltix_client_on_recv(ptr::null_mut(), None, ptr::null_mut(), None),
            VELTIX_ERR_NULL_POINTER
        );
        assert_eq!(veltix_message_type(ptr::null()), 0);
        assert_eq!(veltix_message_request_id(ptr::null()), 0);
        let mut len = 99usize;
        assert!(veltix_message_content(ptr::null(), &mut len).is_null());
        assert_eq!(len, 99, "out parameter untouched on failure");
        assert!(veltix_message_clone(ptr::null()).is_null());
        veltix_message_free(ptr::null_mut());
        veltix_client_free(ptr::null_mut());
    }
}

#[test]
fn connect_failure_with_retry_reports_attempts_then_gives_up() {
    let port = support::free_port();
    let client = TestClient::new(port, |c| {
        c.retry = 2;
        c.retry_delay_ms = 50;
    });
    assert_eq!(client.connect(), VELTIX_ERR_CONNECT_FAILED);
    let events = client.drain_events(Duration::from_millis(300));
    use support::capi::disconnect;
    assert_eq!(
        events,
        vec![
            disconnect(false, 0, 2, VELTIX_DISCONNECT_ERROR),
            disconnect(false, 1, 2, VELTIX_DISCONNECT_ERROR),
            disconnect(false, 2, 2, VELTIX_DISCONNECT_ERROR),
            disconnect(true, 2, 2, VELTIX_DISCONNECT_ERROR),
        ]
    );
}

#[test]
fn logger_receives_lines_and_can_be_removed() {
    use std::sync::Mutex;
    static LINES: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());
    unsafe extern "C" fn sink(
        _: *mut std::ffi::c_void,
        level: veltix_log_level_t,
        message: *const std::ffi::c_char,
    ) {
        let text = CStr::from_ptr(message).to_string_lossy().into_owned();
        LINES.lock().unwrap().push((level, text));
    }
    static FREED: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    unsafe extern "C" fn release(user_data: *mut std::ffi::c_void) {
        FREED.lock().unwrap().push(user_data as usize);
    }
    // Replaced: the first logger is released once, the second still runs.
    unsafe { veltix_set_logger(Some(sink), 1 as *mut _, VELTIX_LOG_WARN, Some(release)) };
    unsafe { veltix_set_logger(Some(sink), 2 as *mut _, VELTIX_LOG_WARN, Some(release)) };
    assert_eq!(*FREED.lock().unwrap(), [1]);
    let client = TestClient::new(support::free_port(), |_| {});
    assert_eq!(client.connect(), VELTIX_ERR_CONNECT_FAILED);
    // Removed: released once; a NULL fn never releases its user_data.
    unsafe { veltix_set_logger(None, 3 as *mut _, 99, Some(release)) };
    unsafe { veltix_set_logger(None, ptr::null_mut(), 99, None) };
    assert_eq!(*FREED.lock().unwrap(), [1, 2]);
    let lines = LINES.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|(level, text)| *level == VELTIX_LOG_ERROR && text.contains("cannot connect")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|(level, _)| *level <= VELTIX_LOG_WARN),
        "max level honoured"
    );
}

#[test]
fn disconnect_cancels_a_handshake_in_progress_at_once() {
    let fake = FakeServer::new();
    let port = fake.port;
    let server = fake.serve_one(|_silent| std::thread::sleep(Duration::from_secs(3)));
    let client = std::sync::Arc::new(TestClient::new(port, |c| c.handshake_timeout_ms = 20_000));
    let connecting = {
        let client = client.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            (client.connect(), start.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(unsafe { veltix_client_disconnect(client.ptr) }, VELTIX_OK);
    let (status, elapsed) = connecting.join().unwrap();
    assert_eq!(status, VELTIX_ERR_CLOSED);
    assert!(
        elapsed < Duration::from_secs(2),
        "cancelled at once, not at the timeout: {elapsed:?}"
    );
    assert_eq!(
        client.next_event(),
        Some(support::capi::disconnect(
            true,
            0,
            0,
            VELTIX_DISCONNECT_MANUAL
        ))
    );
    assert_eq!(client.next_event_within(Duration::from_millis(300)), None);
    assert!(!client.is_connected());
    server.join().unwrap();
}
