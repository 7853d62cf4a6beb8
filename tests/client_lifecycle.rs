//! Callback lifetimes a caller can rely on: the client's lifecycle
//! callbacks are delivered by the time the calls that end a connection
//! return (`disconnect` + `wait_until_closed`, `disconnect` + `free`, a
//! failed `connect` with its retries), and `unroute`, on the client and the
//! server, returns only when the removed callback is not running.

mod support;

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::capi::{disconnect, last_error, TestClient};
use veltix::ffi::*;
use veltix::server::{Server, ServerConfig};

fn local_server() -> (Server, u16) {
    let server = Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        ..ServerConfig::default()
    })
    .unwrap();
    let port = server.start().unwrap();
    (server, port)
}

#[test]
fn wait_until_closed_returns_after_the_final_on_disconnect() {
    let (server, port) = local_server();
    for run in 0..20 {
        let client = TestClient::connected(port);
        assert_eq!(unsafe { veltix_client_disconnect(client.ptr) }, VELTIX_OK);
        assert_eq!(
            unsafe { veltix_client_wait_until_closed(client.ptr, 5000) },
            VELTIX_OK
        );
        assert_eq!(
            client.events_so_far(),
            vec![disconnect(true, 0, 0, VELTIX_DISCONNECT_MANUAL)],
            "run {run}"
        );
    }
    server.shut_down();
}

#[test]
fn free_after_disconnect_delivers_on_disconnect_first() {
    let (server, port) = local_server();
    for run in 0..20 {
        let mut client = TestClient::connected(port);
        assert_eq!(unsafe { veltix_client_disconnect(client.ptr) }, VELTIX_OK);
        client.free_now();
        assert_eq!(
            client.events_so_far(),
            vec![disconnect(true, 0, 0, VELTIX_DISCONNECT_MANUAL)],
            "run {run}"
        );
    }
    server.shut_down();
}

#[test]
fn a_failed_connect_returns_after_its_whole_on_disconnect_sequence() {
    let port = support::free_port();
    for run in 0..5 {
        let client = TestClient::new(port, |c| {
            c.retry = 3;
            c.retry_delay_ms = 20;
        });
        assert_eq!(
            client.connect(),
            VELTIX_ERR_CONNECT_FAILED,
            "{}",
            last_error()
        );
        let reason = VELTIX_DISCONNECT_ERROR;
        assert_eq!(
            client.events_so_far(),
            vec![
                disconnect(false, 0, 3, reason),
                disconnect(false, 1, 3, reason),
                disconnect(false, 2, 3, reason),
                disconnect(false, 3, 3, reason),
                disconnect(true, 3, 3, reason),
            ],
            "run {run}"
        );
        assert!(client
            .next_event_within(Duration::from_millis(50))
            .is_none());
    }
}

/// What a slow callback reports: it started, and it finished.
#[derive(Default)]
struct SlowCallback {
    started: AtomicBool,
    finished: AtomicBool,
}

unsafe extern "C" fn slow_client_route(
    user_data: *mut c_void,
    _client: *mut veltix_client_t,
    _message: *const veltix_message_t,
) {
    let state = &*(user_data as *const SlowCallback);
    state.started.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    state.finished.store(true, Ordering::SeqCst);
}

unsafe extern "C" fn slow_server_route(
    user_data: *mut c_void,
    _server: *mut veltix_server_t,
    _peer: veltix_peer_id_t,
    _message: *const veltix_message_t,
) {
    let state = &*(user_data as *const SlowCallback);
    state.started.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    state.finished.store(true, Ordering::SeqCst);
}

fn wait_until(what: &str, flag: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !flag.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "{what} within 5 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn client_unroute_returns_only_when_the_callback_is_not_running() {
    let (server, port) = local_server();
    server.on_connect(Some(std::sync::Arc::new(|server, peer| {
        let _ = server.send(peer, 230, b"slow");
    })));
    let state = Box::new(SlowCallback::default());
    let user_data = &*state as *const SlowCallback as *mut c_void;
    let client = TestClient::new(port, |_| {});
    assert_eq!(
        unsafe { veltix_client_route(client.ptr, 230, Some(slow_client_route), user_data) },
        VELTIX_OK
    );
    assert_eq!(client.connect(), VELTIX_OK);
    wait_until("the route callback to start", &state.started);
    assert_eq!(unsafe { veltix_client_unroute(client.ptr, 230) }, VELTIX_OK);
    assert!(
        state.finished.load(Ordering::SeqCst),
        "unroute returned while the callback was running"
    );
    drop(client);
    server.shut_down();
}

#[test]
fn server_unroute_returns_only_when_the_callback_is_not_running() {
    let server = support::server_capi::TestServer::start(|_| {});
    let state = Box::new(SlowCallback::default());
    let user_data = &*state as *const SlowCallback as *mut c_void;
    assert_eq!(
        unsafe { veltix_server_route(server.ptr, 230, Some(slow_server_route), user_data) },
        VELTIX_OK
    );
    let client = TestClient::connected(server.port);
    assert_eq!(client.send(230, b"slow"), VELTIX_OK);
    wait_until("the route callback to start", &state.started);
    assert_eq!(unsafe { veltix_server_unroute(server.ptr, 230) }, VELTIX_OK);
    assert!(
        state.finished.load(Ordering::SeqCst),
        "unroute returned while the callback was running"
    );
    drop(client);
}
