//! Callback lifetimes a caller can rely on: the client's lifecycle
//! callbacks are delivered by the time the calls that end a connection
//! return (`disconnect` + `wait_until_closed`, `disconnect` + `free`, a
//! failed `connect` with its retries), and `unroute`, on the client and the
//! server, returns only when the removed callback is not running.

mod support;

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::capi::{disconnect, last_error, TestClient};
use veltix::ffi::*;
use veltix::server::{Server, ServerConfig};

fn local_server() -> (Server, u16) {
    let server = Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        io_threads: support::io_threads(),
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
        unsafe { veltix_client_route(client.ptr, 230, Some(slow_client_route), user_data, None) },
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
        unsafe { veltix_server_route(server.ptr, 230, Some(slow_server_route), user_data, None) },
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

unsafe extern "C" fn count_free(user_data: *mut c_void) {
    (*(user_data as *const AtomicUsize)).fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn ignore_message(
    _: *mut c_void,
    _: *mut veltix_client_t,
    _: *const veltix_message_t,
) {
}

unsafe extern "C" fn ignore_connect(_: *mut c_void, _: *mut veltix_client_t) {}

unsafe extern "C" fn ignore_server_message(
    _: *mut c_void,
    _: *mut veltix_server_t,
    _: veltix_peer_id_t,
    _: *const veltix_message_t,
) {
}

/// A user_data that counts how often it was released.
fn counter() -> Box<AtomicUsize> {
    Box::new(AtomicUsize::new(0))
}

fn data(counter: &AtomicUsize) -> *mut c_void {
    counter as *const AtomicUsize as *mut c_void
}

fn frees(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

#[test]
fn client_free_user_data_runs_exactly_once_in_every_path() {
    let client = TestClient::new(support::free_port(), |_| {});
    let free = Some(count_free as unsafe extern "C" fn(*mut c_void));
    let (replaced, cleared, unrouted, at_free, refused, kept) = (
        counter(),
        counter(),
        counter(),
        counter(),
        counter(),
        counter(),
    );
    unsafe {
        // Replaced by another on_recv.
        veltix_client_on_recv(client.ptr, Some(ignore_message), data(&replaced), free);
        veltix_client_on_recv(client.ptr, Some(ignore_message), data(&cleared), free);
        assert_eq!(frees(&replaced), 1, "replaced");
        // Cleared with NULL; the NULL registration's own free is not taken.
        veltix_client_on_recv(client.ptr, None, data(&kept), free);
        assert_eq!(frees(&cleared), 1, "cleared");
        // Unrouted.
        veltix_client_route(client.ptr, 230, Some(ignore_message), data(&unrouted), free);
        assert_eq!(frees(&unrouted), 0, "still routed");
        veltix_client_unroute(client.ptr, 230);
        assert_eq!(frees(&unrouted), 1, "unrouted");
        // A refused registration does not take its user_data.
        veltix_client_route(client.ptr, 231, Some(ignore_message), data(&at_free), free);
        assert_eq!(
            veltix_client_route(client.ptr, 231, Some(ignore_message), data(&refused), free),
            VELTIX_ERR_ALREADY_EXISTS
        );
        veltix_client_on_connect(client.ptr, Some(ignore_connect), data(&at_free), free);
    }
    assert_eq!(frees(&refused), 0, "refused route");
    assert_eq!(frees(&at_free), 0, "still registered");
    drop(client);
    assert_eq!(frees(&at_free), 2, "the route and on_connect, at free");
    for (name, c) in [
        ("replaced", &replaced),
        ("cleared", &cleared),
        ("unrouted", &unrouted),
    ] {
        assert_eq!(frees(c), 1, "{name}: exactly once");
    }
    assert_eq!((frees(&refused), frees(&kept)), (0, 0));
}

#[test]
fn server_free_user_data_runs_exactly_once_in_every_path() {
    let free = Some(count_free as unsafe extern "C" fn(*mut c_void));
    let mut config = unsafe { std::mem::zeroed::<veltix_server_config_t>() };
    unsafe { veltix_server_config_init(&mut config, std::mem::size_of_val(&config)) };
    let mut server = std::ptr::null_mut();
    assert_eq!(
        unsafe { veltix_server_new(&config, &mut server) },
        VELTIX_OK
    );
    let (replaced, unrouted, at_free, refused) = (counter(), counter(), counter(), counter());
    unsafe {
        veltix_server_on_recv(server, Some(ignore_server_message), data(&replaced), free);
        veltix_server_on_recv(server, Some(ignore_server_message), data(&at_free), free);
        assert_eq!(frees(&replaced), 1, "replaced");
        veltix_server_route(
            server,
            230,
            Some(ignore_server_message),
            data(&unrouted),
            free,
        );
        veltix_server_unroute(server, 230);
        assert_eq!(frees(&unrouted), 1, "unrouted");
        veltix_server_route(
            server,
            231,
            Some(ignore_server_message),
            data(&at_free),
            free,
        );
        assert_eq!(
            veltix_server_route(
                server,
                231,
                Some(ignore_server_message),
                data(&refused),
                free
            ),
            VELTIX_ERR_ALREADY_EXISTS
        );
        assert_eq!(frees(&at_free), 0);
        veltix_server_free(server);
    }
    assert_eq!(frees(&at_free), 2, "on_recv and the route, at free");
    assert_eq!(
        (frees(&replaced), frees(&unrouted), frees(&refused)),
        (1, 1, 0)
    );
}

#[test]
fn free_user_data_waits_for_the_running_call() {
    let (server, port) = local_server();
    server.on_connect(Some(std::sync::Arc::new(|server, peer| {
        let _ = server.send(peer, 230, b"slow");
    })));
    let client = TestClient::new(port, |_| {});
    // The route's user_data: its slow-callback state, and how often it was
    // released (which must come after the running call finished).
    unsafe extern "C" fn slow_then_count(
        user_data: *mut c_void,
        client: *mut veltix_client_t,
        message: *const veltix_message_t,
    ) {
        let pair = &*(user_data as *const (SlowCallback, AtomicUsize));
        slow_client_route(
            &pair.0 as *const SlowCallback as *mut c_void,
            client,
            message,
        );
    }
    unsafe extern "C" fn count_pair_free(user_data: *mut c_void) {
        let pair = &*(user_data as *const (SlowCallback, AtomicUsize));
        assert!(
            pair.0.finished.load(Ordering::SeqCst),
            "released while its callback ran"
        );
        pair.1.fetch_add(1, Ordering::SeqCst);
    }
    let pair = Box::new((SlowCallback::default(), AtomicUsize::new(0)));
    let pair_ptr = &*pair as *const (SlowCallback, AtomicUsize) as *mut c_void;
    unsafe {
        veltix_client_route(
            client.ptr,
            230,
            Some(slow_then_count),
            pair_ptr,
            Some(count_pair_free),
        );
    }
    assert_eq!(client.connect(), VELTIX_OK);
    wait_until("the route callback to start", &pair.0.started);
    assert_eq!(unsafe { veltix_client_unroute(client.ptr, 230) }, VELTIX_OK);
    assert_eq!(
        pair.1.load(Ordering::SeqCst),
        1,
        "released once, after the call"
    );
    drop(client);
    assert_eq!(pair.1.load(Ordering::SeqCst), 1, "and not again at free");
    server.shut_down();
}
