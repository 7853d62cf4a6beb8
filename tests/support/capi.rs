//! A test client driving libveltix only through its exported C functions,
//! recording every callback as an [`Event`].

use std::ffi::{c_void, CStr, CString};
use std::ptr;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use veltix::ffi::*;

/// A callback observed by the test.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A message, and whether it came through a route (`Some(type)`) or
    /// `on_recv` (`None`).
    Message {
        route: Option<u16>,
        type_code: u16,
        request_id: u16,
        payload: Vec<u8>,
    },
    Connect,
    Disconnect {
        permanent: bool,
        attempt: u32,
        retry_max: u32,
        reason: veltix_disconnect_reason_t,
    },
}

/// What the callbacks get as `user_data`.
pub struct Sink {
    events: Mutex<Sender<Event>>,
    /// Optional extra behaviour run inside message callbacks.
    pub on_message: Mutex<Option<MessageHook>>,
}

/// Test code run inside a message callback, on the worker thread.
pub type MessageHook = Box<dyn Fn(*mut veltix_client_t, *const veltix_message_t) + Send>;

impl Sink {
    fn send(&self, event: Event) {
        let _ = self.events.lock().unwrap().send(event);
    }
}

/// Reads a message through the C accessors.
///
/// # Safety
/// `message` must be valid.
pub unsafe fn read_message(message: *const veltix_message_t) -> (u16, u16, Vec<u8>) {
    let mut len = 0usize;
    let data = veltix_message_content(message, &mut len);
    assert!(!data.is_null());
    assert_eq!(*data.add(len), 0, "content is NUL-terminated");
    (
        veltix_message_type(message),
        veltix_message_request_id(message),
        std::slice::from_raw_parts(data, len).to_vec(),
    )
}

unsafe fn on_message(
    user_data: *mut c_void,
    client: *mut veltix_client_t,
    message: *const veltix_message_t,
    route: Option<u16>,
) {
    let sink = &*(user_data as *const Sink);
    let (type_code, request_id, payload) = read_message(message);
    sink.send(Event::Message {
        route,
        type_code,
        request_id,
        payload,
    });
    if let Some(hook) = sink.on_message.lock().unwrap().as_ref() {
        hook(client, message);
    }
}

unsafe extern "C" fn on_recv(
    user_data: *mut c_void,
    client: *mut veltix_client_t,
    message: *const veltix_message_t,
) {
    on_message(user_data, client, message, None);
}

unsafe extern "C" fn on_route(
    user_data: *mut c_void,
    client: *mut veltix_client_t,
    message: *const veltix_message_t,
) {
    let type_code = veltix_message_type(message);
    on_message(user_data, client, message, Some(type_code));
}

unsafe extern "C" fn on_connect(user_data: *mut c_void, _client: *mut veltix_client_t) {
    (*(user_data as *const Sink)).send(Event::Connect);
}

unsafe extern "C" fn on_disconnect(
    user_data: *mut c_void,
    _client: *mut veltix_client_t,
    state: *const veltix_disconnect_state_t,
) {
    let state = &*state;
    (*(user_data as *const Sink)).send(Event::Disconnect {
        permanent: state.permanent,
        attempt: state.attempt,
        retry_max: state.retry_max,
        reason: state.reason,
    });
}

/// A client whose callbacks all feed one event channel.
pub struct TestClient {
    pub ptr: *mut veltix_client_t,
    pub sink: Box<Sink>,
    events: Receiver<Event>,
}

// The C API is thread-safe; tests share the handle across threads.
unsafe impl Send for TestClient {}
unsafe impl Sync for TestClient {}

impl TestClient {
    /// A client for `port` with `tweak` applied to the default config, and
    /// on_recv/on_connect/on_disconnect registered.
    pub fn new(port: u16, tweak: impl FnOnce(&mut veltix_client_config_t)) -> TestClient {
        let addr = CString::new("127.0.0.1").unwrap();
        let mut config = unsafe { std::mem::zeroed::<veltix_client_config_t>() };
        unsafe { veltix_client_config_init(&mut config, std::mem::size_of_val(&config)) };
        config.server_addr = addr.as_ptr();
        config.port = port;
        tweak(&mut config);
        let mut ptr = ptr::null_mut();
        let status = unsafe { veltix_client_new(&config, &mut ptr) };
        assert_eq!(status, VELTIX_OK, "veltix_client_new: {}", last_error());
        let (tx, events) = channel();
        let sink = Box::new(Sink {
            events: Mutex::new(tx),
            on_message: Mutex::new(None),
        });
        let user_data = &*sink as *const Sink as *mut c_void;
        unsafe {
            assert_eq!(
                veltix_client_on_recv(ptr, Some(on_recv), user_data, None),
                VELTIX_OK
            );
            assert_eq!(
                veltix_client_on_connect(ptr, Some(on_connect), user_data, None),
                VELTIX_OK
            );
            assert_eq!(
                veltix_client_on_disconnect(ptr, Some(on_disconnect), user_data, None),
                VELTIX_OK
            );
        }
        TestClient { ptr, sink, events }
    }

    /// A connected client with the default config.
    pub fn connected(port: u16) -> TestClient {
        let client = TestClient::new(port, |_| {});
        assert_eq!(client.connect(), VELTIX_OK, "connect: {}", last_error());
        assert_eq!(client.next_event(), Some(Event::Connect));
        client
    }

    pub fn connect(&self) -> veltix_status_t {
        unsafe { veltix_client_connect(self.ptr) }
    }

    pub fn route(&self, type_code: u16) -> veltix_status_t {
        let user_data = &*self.sink as *const Sink as *mut c_void;
        unsafe { veltix_client_route(self.ptr, type_code, Some(on_route), user_data, None) }
    }

    pub fn send(&self, type_code: u16, payload: &[u8]) -> veltix_status_t {
        unsafe { veltix_client_send(self.ptr, type_code, payload.as_ptr(), payload.len()) }
    }

    /// `send_and_wait`, the reply as (type, id, payload).
    pub fn request(
        &self,
        type_code: u16,
        payload: &[u8],
        timeout_ms: u32,
    ) -> Result<(u16, u16, Vec<u8>), veltix_status_t> {
        let mut response = ptr::null_mut();
        let status = unsafe {
            veltix_client_send_and_wait(
                self.ptr,
                type_code,
                payload.as_ptr(),
                payload.len(),
                timeout_ms,
                &mut response,
            )
        };
        if status != VELTIX_OK {
            assert!(response.is_null(), "out parameter written on failure");
            return Err(status);
        }
        let read = unsafe { read_message(response) };
        unsafe { veltix_message_free(response) };
        Ok(read)
    }

    /// Runs a JSON command on the reference server and returns its result.
    pub fn command(&self, json: &str) -> serde_json::Value {
        self.send(210, json.as_bytes());
        self.next_message_of(211, Duration::from_secs(10))
    }

    pub fn next_event(&self) -> Option<Event> {
        self.next_event_within(Duration::from_secs(10))
    }

    pub fn next_event_within(&self, timeout: Duration) -> Option<Event> {
        match self.events.recv_timeout(timeout) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The next event, which must be a message: (route, payload).
    pub fn next_message(&self) -> (Option<u16>, Vec<u8>) {
        match self.next_event() {
            Some(Event::Message { route, payload, .. }) => (route, payload),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The JSON payload of the next message of `type_code`, skipping others.
    pub fn next_message_of(&self, type_code: u16, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event_within(left) {
                Some(Event::Message {
                    type_code: t,
                    payload,
                    ..
                }) if t == type_code => return serde_json::from_slice(&payload).unwrap(),
                Some(_) => continue,
                None => panic!("no message of type {type_code} within {timeout:?}"),
            }
        }
    }

    /// (type, payload) of every message until `quiet` passes without an
    /// event; other events are skipped.
    pub fn drain_messages(&self, quiet: Duration) -> Vec<(u16, Vec<u8>)> {
        self.drain_events(quiet)
            .into_iter()
            .filter_map(|event| match event {
                Event::Message {
                    type_code, payload, ..
                } => Some((type_code, payload)),
                _ => None,
            })
            .collect()
    }

    /// Every event until `timeout` passes without one.
    pub fn drain_events(&self, quiet: Duration) -> Vec<Event> {
        std::iter::from_fn(|| self.next_event_within(quiet)).collect()
    }

    pub fn is_connected(&self) -> bool {
        unsafe { veltix_client_is_connected(self.ptr) }
    }

    /// `veltix_client_free` now; the events recorded until it returned stay
    /// readable (dropping the test client afterwards frees NULL, a no-op).
    pub fn free_now(&mut self) {
        unsafe { veltix_client_free(self.ptr) };
        self.ptr = ptr::null_mut();
    }

    /// The events recorded so far, without waiting.
    pub fn events_so_far(&self) -> Vec<Event> {
        self.events.try_iter().collect()
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        unsafe { veltix_client_free(self.ptr) };
    }
}

/// `veltix_last_error()` as a String.
pub fn last_error() -> String {
    unsafe { CStr::from_ptr(veltix_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Shorthand for a disconnect event.
pub fn disconnect(
    permanent: bool,
    attempt: u32,
    retry_max: u32,
    reason: veltix_disconnect_reason_t,
) -> Event {
    Event::Disconnect {
        permanent,
        attempt,
        retry_max,
        reason,
    }
}
