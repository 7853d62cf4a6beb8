//! Dispatch mode (`max_workers = 0`): callbacks run only on the host's
//! thread, inside `veltix_*_dispatch`, in arrival order; the event fd is
//! readable while they are due; network I/O (PINGs, `send_and_wait`
//! replies) goes on without the host; `free` delivers the due lifecycle
//! calls on the calling thread.

mod support;

use std::ffi::c_void;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use support::capi::{last_error, read_message, TestClient};
use veltix::ffi::*;
use veltix::server::{Server, ServerConfig};

/// What the callbacks saw, and on which thread.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, ThreadId)>>);

impl Seen {
    fn push(&self, what: String) {
        self.0
            .lock()
            .unwrap()
            .push((what, std::thread::current().id()));
    }

    fn take(&self) -> Vec<(String, ThreadId)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

unsafe extern "C" fn on_connect(user_data: *mut c_void, _: *mut veltix_client_t) {
    (*(user_data as *const Seen)).push("connect".into());
}

unsafe extern "C" fn on_recv(
    user_data: *mut c_void,
    _: *mut veltix_client_t,
    message: *const veltix_message_t,
) {
    let (_, _, payload) = read_message(message);
    (*(user_data as *const Seen)).push(String::from_utf8(payload).unwrap());
}

unsafe extern "C" fn on_disconnect(
    user_data: *mut c_void,
    _: *mut veltix_client_t,
    state: *const veltix_disconnect_state_t,
) {
    (*(user_data as *const Seen)).push(format!("disconnect {}", (*state).reason));
}

unsafe extern "C" fn dispatch_inside(
    user_data: *mut c_void,
    client: *mut veltix_client_t,
    _: *const veltix_message_t,
) {
    let status = veltix_client_dispatch(client, 0, std::ptr::null_mut());
    (*(user_data as *const Seen)).push(format!("nested dispatch {status}"));
}

/// A value no event handle has (the tests check it is left untouched).
const NO_HANDLE: veltix_socket_t = veltix_socket_t::MAX;

/// Whether `handle` becomes readable within `timeout`.
fn readable(handle: veltix_socket_t, timeout: Duration) -> bool {
    veltix::sys::wait_readable(handle, timeout).unwrap()
}

/// A server (worker mode) that greets each client with five messages and
/// echoes type 200.
fn greeting_server() -> (Server, u16) {
    let server = Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        io_threads: support::io_threads(),
        port: 0,
        ..ServerConfig::default()
    })
    .unwrap();
    server.on_connect(Some(Arc::new(|server, peer| {
        for i in 0..5 {
            server.send(peer, 230, format!("m{i}").as_bytes()).unwrap();
        }
    })));
    server
        .route(
            200,
            Arc::new(|server, peer, message| {
                let _ = server.reply(peer, message, 200, message.payload());
            }),
        )
        .unwrap();
    let port = server.start().unwrap();
    (server, port)
}

#[test]
fn client_callbacks_run_only_in_dispatch_on_the_host_thread_in_order() {
    let (server, port) = greeting_server();
    let seen = Box::new(Seen::default());
    let user_data = &*seen as *const Seen as *mut c_void;
    let mut client = TestClient::new(port, |c| c.max_workers = 0);
    unsafe {
        veltix_client_on_connect(client.ptr, Some(on_connect), user_data, None);
        veltix_client_on_recv(client.ptr, Some(on_recv), user_data, None);
        veltix_client_on_disconnect(client.ptr, Some(on_disconnect), user_data, None);
    }
    let mut fd: veltix_socket_t = NO_HANDLE;
    assert_eq!(
        unsafe { veltix_client_event_fd(client.ptr, &mut fd) },
        VELTIX_OK
    );
    assert!(!readable(fd, Duration::ZERO), "nothing due yet");
    assert_eq!(client.connect(), VELTIX_OK, "{}", last_error());
    assert!(readable(fd, Duration::from_secs(5)), "the event fd signals");

    // Without the host dispatching: pings are answered and send_and_wait
    // completes, and no callback runs.
    // The server lists the peer just after it sends the ack.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.peer_ids().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let peer = server.peer_ids()[0];
    assert!(server.ping(peer, Duration::from_secs(5)).is_ok());
    assert_eq!(client.request(200, b"echo", 5000).unwrap().2, b"echo");
    std::thread::sleep(Duration::from_millis(50));
    assert!(seen.take().is_empty(), "a callback ran outside dispatch");

    let host = std::thread::current().id();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while events.len() < 6 && Instant::now() < deadline {
        let mut ran = usize::MAX;
        let status = unsafe { veltix_client_dispatch(client.ptr, 100, &mut ran) };
        assert_eq!(status, VELTIX_OK, "{}", last_error());
        let got = seen.take();
        assert_eq!(got.len(), ran, "dispatch counts what it ran");
        events.extend(got);
    }
    let names: Vec<&str> = events.iter().map(|(what, _)| what.as_str()).collect();
    assert_eq!(names, ["connect", "m0", "m1", "m2", "m3", "m4"]);
    assert!(
        events.iter().all(|(_, thread)| *thread == host),
        "on the host thread"
    );
    let mut ran = usize::MAX;
    assert_eq!(
        unsafe { veltix_client_dispatch(client.ptr, 0, &mut ran) },
        VELTIX_OK
    );
    assert_eq!(ran, 0);
    assert!(
        !readable(fd, Duration::ZERO),
        "nothing due: the fd is quiet"
    );

    // A nested dispatch is refused.
    unsafe {
        veltix_client_route(client.ptr, 231, Some(dispatch_inside), user_data, None);
    }
    server.send(peer, 231, b"x").unwrap();
    assert!(readable(fd, Duration::from_secs(5)));
    unsafe { veltix_client_dispatch(client.ptr, 1000, std::ptr::null_mut()) };
    assert_eq!(
        seen.take()[0].0,
        format!("nested dispatch {VELTIX_ERR_INVALID_ARGUMENT}")
    );

    // disconnect, then free: the on_disconnect still due runs inside free,
    // on this thread.
    assert_eq!(unsafe { veltix_client_disconnect(client.ptr) }, VELTIX_OK);
    assert!(seen.take().is_empty());
    client.free_now();
    let got = seen.take();
    assert_eq!(
        got,
        vec![(format!("disconnect {VELTIX_DISCONNECT_MANUAL}"), host)]
    );
    server.shut_down();
}

#[test]
fn dispatch_is_refused_with_worker_threads() {
    let client = TestClient::new(support::free_port(), |_| {});
    let mut fd: veltix_socket_t = NO_HANDLE;
    assert_eq!(
        unsafe { veltix_client_dispatch(client.ptr, 0, std::ptr::null_mut()) },
        VELTIX_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().contains("max_workers = 0"), "{}", last_error());
    assert_eq!(
        unsafe { veltix_client_event_fd(client.ptr, &mut fd) },
        VELTIX_ERR_INVALID_ARGUMENT
    );
    assert_eq!(fd, NO_HANDLE, "out written only on success");
}

#[test]
fn a_dispatch_mode_server_runs_routes_on_the_host_thread() {
    let seen = Arc::new(Seen::default());
    let server = Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        io_threads: support::io_threads(),
        port: 0,
        max_workers: 0,
        ..ServerConfig::default()
    })
    .unwrap();
    let recorder = seen.clone();
    server
        .route(
            200,
            Arc::new(move |server, peer, message| {
                recorder.push("echo".into());
                let _ = server.reply(peer, message, 200, message.payload());
            }),
        )
        .unwrap();
    let port = server.start().unwrap();
    let fd = server.event_handle().unwrap();
    // The client pings with no host dispatching: the I/O thread answers.
    let client = TestClient::connected(port);
    let mut rtt = 0.0;
    assert_eq!(
        unsafe { veltix_client_ping(client.ptr, 5000, &mut rtt) },
        VELTIX_OK
    );
    // A request completes once the host dispatches.
    let client = Arc::new(client);
    let requester = {
        let client = client.clone();
        std::thread::spawn(move || client.request(200, b"hi", 5000))
    };
    assert!(readable(fd, Duration::from_secs(5)));
    let host = std::thread::current().id();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !requester.is_finished() && Instant::now() < deadline {
        server.dispatch(Some(Duration::from_millis(50))).unwrap();
    }
    assert_eq!(requester.join().unwrap().unwrap().2, b"hi");
    assert_eq!(seen.take(), vec![("echo".to_string(), host)]);
    // One peer's callbacks run in its lane: dispatch counts each callback.
    for _ in 0..3 {
        assert_eq!(client.send(200, b"more"), VELTIX_OK);
    }
    let mut counted = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while counted < 3 && Instant::now() < deadline {
        counted += server.dispatch(Some(Duration::from_millis(50))).unwrap();
    }
    assert_eq!(counted, 3);
    assert_eq!(seen.take().len(), 3);
    drop(client);
    server.shut_down();
}

/// Outcomes of `veltix_*_request`: (status, reply payload, thread).
#[derive(Default)]
struct Outcomes(Mutex<Vec<(veltix_status_t, Vec<u8>, ThreadId)>>);

unsafe extern "C" fn on_client_reply(
    user_data: *mut c_void,
    _: *mut veltix_client_t,
    status: veltix_status_t,
    reply: *const veltix_message_t,
    error: *const std::ffi::c_char,
) {
    let payload = if reply.is_null() {
        std::ffi::CStr::from_ptr(error).to_bytes().to_vec()
    } else {
        read_message(reply).2
    };
    (*(user_data as *const Outcomes)).0.lock().unwrap().push((
        status,
        payload,
        std::thread::current().id(),
    ));
}

unsafe extern "C" fn on_server_reply(
    user_data: *mut c_void,
    _: *mut veltix_server_t,
    _: veltix_peer_id_t,
    status: veltix_status_t,
    reply: *const veltix_message_t,
    error: *const std::ffi::c_char,
) {
    on_client_reply(user_data, std::ptr::null_mut(), status, reply, error);
}

#[test]
fn client_requests_complete_once_inside_dispatch_in_all_three_outcomes() {
    let (server, port) = greeting_server();
    let outcomes = Box::new(Outcomes::default());
    let user_data = &*outcomes as *const Outcomes as *mut c_void;
    let client = TestClient::new(port, |c| c.max_workers = 0);
    assert_eq!(client.connect(), VELTIX_OK);
    let request = |type_code: u16, timeout_ms: u32| unsafe {
        veltix_client_request(
            client.ptr,
            type_code,
            b"ask".as_ptr(),
            3,
            timeout_ms,
            Some(on_client_reply),
            user_data,
        )
    };
    // The reply; a type the server drops (timeout); one cut by disconnect.
    assert_eq!(request(200, 5000), VELTIX_OK);
    assert_eq!(request(232, 200), VELTIX_OK);
    assert_eq!(request(232, 60_000), VELTIX_OK);
    let host = std::thread::current().id();
    let took = |n: usize| outcomes.0.lock().unwrap().len() >= n;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !took(2) && Instant::now() < deadline {
        unsafe { veltix_client_dispatch(client.ptr, 50, std::ptr::null_mut()) };
    }
    assert_eq!(unsafe { veltix_client_disconnect(client.ptr) }, VELTIX_OK);
    while !took(3) && Instant::now() < deadline {
        unsafe { veltix_client_dispatch(client.ptr, 50, std::ptr::null_mut()) };
    }
    std::thread::sleep(Duration::from_millis(300));
    unsafe { veltix_client_dispatch(client.ptr, 0, std::ptr::null_mut()) };
    let got = std::mem::take(&mut *outcomes.0.lock().unwrap());
    let statuses: Vec<veltix_status_t> = got.iter().map(|(status, _, _)| *status).collect();
    assert_eq!(
        statuses,
        vec![VELTIX_OK, VELTIX_ERR_TIMEOUT, VELTIX_ERR_CLOSED],
        "{got:?}"
    );
    assert_eq!(got[0].1, b"ask", "the reply");
    assert!(
        String::from_utf8_lossy(&got[1].1).contains("200 ms"),
        "the detail comes with the status"
    );
    assert!(
        got.iter().all(|(_, _, thread)| *thread == host),
        "inside dispatch"
    );
    // A request that cannot be sent fails at once; its callback never runs.
    assert_eq!(request(200, 1000), VELTIX_ERR_NOT_CONNECTED);
    drop(client);
    assert!(outcomes.0.lock().unwrap().is_empty());
    server.shut_down();
}

#[test]
fn server_requests_complete_once_with_the_reply_or_the_peer_leaving() {
    let server = support::server_capi::TestServer::start(|_| {});
    let outcomes = Box::new(Outcomes::default());
    let user_data = &*outcomes as *const Outcomes as *mut c_void;
    // A client that answers type 240 and ignores 241.
    let client = veltix::client::Client::new(veltix::client::ClientConfig {
        port: server.port,
        ..Default::default()
    })
    .unwrap();
    client
        .route(
            240,
            Arc::new(|client, message| {
                let _ = client.reply(message, 240, b"answer");
            }),
        )
        .unwrap();
    client.route(241, Arc::new(|_, _| {})).unwrap();
    client.connect().unwrap();
    let peer = server.next_connect();
    let request = |peer: veltix_peer_id_t, type_code: u16| unsafe {
        veltix_server_request(
            server.ptr,
            peer,
            type_code,
            b"q".as_ptr(),
            1,
            60_000,
            Some(on_server_reply),
            user_data,
        )
    };
    assert_eq!(request(peer, 240), VELTIX_OK);
    assert_eq!(request(peer, 241), VELTIX_OK);
    let deadline = Instant::now() + Duration::from_secs(5);
    while outcomes.0.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    client.close();
    while outcomes.0.lock().unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    let got = std::mem::take(&mut *outcomes.0.lock().unwrap());
    let statuses: Vec<veltix_status_t> = got.iter().map(|(status, _, _)| *status).collect();
    assert_eq!(statuses, vec![VELTIX_OK, VELTIX_ERR_CLOSED], "{got:?}");
    assert_eq!(got[0].1, b"answer");
    assert_eq!(request(peer, 240), VELTIX_ERR_NOT_CONNECTED);
    assert_eq!(request(9999, 240), VELTIX_ERR_NOT_CONNECTED);
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        outcomes.0.lock().unwrap().is_empty(),
        "refused requests never call back"
    );
}

unsafe extern "C" fn on_disconnect_detail(
    user_data: *mut c_void,
    _: *mut veltix_client_t,
    state: *const veltix_disconnect_state_t,
) {
    let state = &*state;
    (*(user_data as *const Seen)).push(format!(
        "disconnect attempt={} permanent={} reason={} error={}",
        state.attempt,
        state.permanent,
        state.reason,
        last_error()
    ));
}

/// Dispatches `client` until `seen` holds `count` events or 5 s pass.
fn dispatch_until(client: &TestClient, seen: &Seen, count: usize) -> Vec<(String, ThreadId)> {
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while events.len() < count && Instant::now() < deadline {
        let status = unsafe { veltix_client_dispatch(client.ptr, 50, std::ptr::null_mut()) };
        assert_eq!(status, VELTIX_OK, "{}", last_error());
        events.extend(seen.take());
    }
    events
}

#[test]
fn connect_async_returns_at_once_and_reports_through_dispatch() {
    let (server, port) = greeting_server();
    let seen = Box::new(Seen::default());
    let user_data = &*seen as *const Seen as *mut c_void;
    let client = TestClient::new(port, |c| c.max_workers = 0);
    unsafe {
        veltix_client_on_connect(client.ptr, Some(on_connect), user_data, None);
        veltix_client_on_recv(client.ptr, Some(on_recv), user_data, None);
        veltix_client_on_disconnect(client.ptr, Some(on_disconnect_detail), user_data, None);
    }
    assert_eq!(
        unsafe { veltix_client_connect_async(client.ptr) },
        VELTIX_OK
    );
    assert_eq!(
        unsafe { veltix_client_connect_async(client.ptr) },
        VELTIX_ERR_ALREADY_CONNECTED,
        "one attempt at a time"
    );
    let host = std::thread::current().id();
    let events = dispatch_until(&client, &seen, 6);
    let names: Vec<&str> = events.iter().map(|(what, _)| what.as_str()).collect();
    assert_eq!(names, ["connect", "m0", "m1", "m2", "m3", "m4"]);
    assert!(events.iter().all(|(_, thread)| *thread == host));
    assert!(client.is_connected());
    assert_eq!(client.request(200, b"after", 5000).unwrap().2, b"after");
    // The manual disconnection carries no error detail.
    assert_eq!(unsafe { veltix_client_disconnect(client.ptr) }, VELTIX_OK);
    let events = dispatch_until(&client, &seen, 1);
    assert_eq!(
        events[0].0,
        format!("disconnect attempt=0 permanent=true reason={VELTIX_DISCONNECT_MANUAL} error=")
    );
    server.shut_down();
}

#[test]
fn a_failed_connect_async_reports_each_attempt_with_its_error() {
    let seen = Box::new(Seen::default());
    let user_data = &*seen as *const Seen as *mut c_void;
    let client = TestClient::new(support::free_port(), |c| {
        c.max_workers = 0;
        c.retry = 2;
        c.retry_delay_ms = 50;
    });
    unsafe {
        veltix_client_on_disconnect(client.ptr, Some(on_disconnect_detail), user_data, None);
    }
    assert_eq!(
        unsafe { veltix_client_connect_async(client.ptr) },
        VELTIX_OK
    );
    let events = dispatch_until(&client, &seen, 4);
    let steps: Vec<String> = events
        .iter()
        .map(|(what, _)| what.split(" error=").next().unwrap().to_string())
        .collect();
    let error = VELTIX_DISCONNECT_ERROR;
    assert_eq!(
        steps,
        [
            format!("disconnect attempt=0 permanent=false reason={error}"),
            format!("disconnect attempt=1 permanent=false reason={error}"),
            format!("disconnect attempt=2 permanent=false reason={error}"),
            format!("disconnect attempt=2 permanent=true reason={error}"),
        ]
    );
    assert!(
        events.iter().all(|(what, _)| what.contains("refused")),
        "veltix_last_error() inside on_disconnect says why: {events:?}"
    );
    assert!(!client.is_connected());
}

#[test]
fn connect_async_to_a_silent_server_never_blocks_and_free_cancels_it() {
    // Accepts, then never answers the handshake.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Box::new(Seen::default());
    let user_data = &*seen as *const Seen as *mut c_void;
    let mut client = TestClient::new(port, |c| {
        c.max_workers = 0;
        c.handshake_timeout_ms = 30_000;
    });
    unsafe {
        veltix_client_on_disconnect(client.ptr, Some(on_disconnect_detail), user_data, None);
    }
    let started = Instant::now();
    assert_eq!(
        unsafe { veltix_client_connect_async(client.ptr) },
        VELTIX_OK
    );
    assert!(started.elapsed() < Duration::from_millis(100));
    let (_accepted, _) = listener.accept().unwrap();
    let mut ran = usize::MAX;
    unsafe { veltix_client_dispatch(client.ptr, 200, &mut ran) };
    assert_eq!(ran, 0, "nothing to report while the handshake waits");
    let started = Instant::now();
    client.free_now();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "free cancels the attempt: {:?}",
        started.elapsed()
    );
}
