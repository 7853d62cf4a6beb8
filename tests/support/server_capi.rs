//! A test server driving libveltix's server only through its exported C
//! functions, recording every callback as a [`ServerEvent`].

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::capi::{last_error, read_message};
use veltix::ffi::*;

/// Messages of this type are echoed (same type, payload and request id)
/// by the test server's route, and not recorded.
pub const ECHO: u16 = 200;

/// A server callback observed by the test.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    Connect(veltix_peer_id_t),
    Disconnect(veltix_peer_id_t, veltix_disconnect_reason_t),
    Message {
        peer: veltix_peer_id_t,
        type_code: u16,
        request_id: u16,
        payload: Vec<u8>,
    },
}

struct Sink {
    events: Mutex<Sender<ServerEvent>>,
}

impl Sink {
    fn send(&self, event: ServerEvent) {
        let _ = self.events.lock().unwrap().send(event);
    }
}

unsafe extern "C" fn on_recv(
    user_data: *mut c_void,
    _server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
    message: *const veltix_message_t,
) {
    let (type_code, request_id, payload) = read_message(message);
    (*(user_data as *const Sink)).send(ServerEvent::Message {
        peer,
        type_code,
        request_id,
        payload,
    });
}

unsafe extern "C" fn on_echo(
    _user_data: *mut c_void,
    server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
    message: *const veltix_message_t,
) {
    let (type_code, _, payload) = read_message(message);
    let status = veltix_server_reply(
        server,
        peer,
        message,
        type_code,
        payload.as_ptr(),
        payload.len(),
    );
    assert!(
        status == VELTIX_OK || status == VELTIX_ERR_NOT_CONNECTED,
        "echo reply: {status}"
    );
}

unsafe extern "C" fn on_connect(
    user_data: *mut c_void,
    _server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
) {
    (*(user_data as *const Sink)).send(ServerEvent::Connect(peer));
}

unsafe extern "C" fn on_disconnect(
    user_data: *mut c_void,
    _server: *mut veltix_server_t,
    peer: veltix_peer_id_t,
    reason: veltix_disconnect_reason_t,
) {
    (*(user_data as *const Sink)).send(ServerEvent::Disconnect(peer, reason));
}

/// A started server on 127.0.0.1 whose callbacks feed one event channel.
pub struct TestServer {
    pub ptr: *mut veltix_server_t,
    pub port: u16,
    sink: Box<Sink>,
    events: Receiver<ServerEvent>,
}

// The C API is thread-safe; tests share the handle across threads.
unsafe impl Send for TestServer {}
unsafe impl Sync for TestServer {}

impl TestServer {
    /// A server on a free port with `tweak` applied to the default config,
    /// callbacks registered and ECHO routed, started.
    pub fn start(tweak: impl FnOnce(&mut veltix_server_config_t)) -> TestServer {
        Self::try_start(tweak).unwrap_or_else(|| panic!("start: {}", last_error()))
    }

    /// As `start`; `None` if the server could not listen.
    pub fn try_start(tweak: impl FnOnce(&mut veltix_server_config_t)) -> Option<TestServer> {
        let mut server =
            Self::new(tweak).unwrap_or_else(|error| panic!("veltix_server_new: {error}"));
        match server.restart() {
            VELTIX_OK => Some(server),
            VELTIX_ERR_BIND_FAILED => None,
            other => panic!("start: {other}: {}", last_error()),
        }
    }

    /// A server on 127.0.0.1 with `tweak` applied to the default config,
    /// callbacks registered and ECHO routed, not started (`restart`
    /// starts it); `veltix_server_new`'s error text if it failed.
    pub fn new(tweak: impl FnOnce(&mut veltix_server_config_t)) -> Result<TestServer, String> {
        let host = CString::new("127.0.0.1").unwrap();
        let mut config = unsafe { std::mem::zeroed::<veltix_server_config_t>() };
        unsafe { veltix_server_config_init(&mut config, std::mem::size_of_val(&config)) };
        config.host = host.as_ptr();
        config.port = 0;
        config.io_threads = super::io_threads();
        tweak(&mut config);
        let mut ptr = ptr::null_mut();
        if unsafe { veltix_server_new(&config, &mut ptr) } != VELTIX_OK {
            return Err(last_error());
        }
        let (tx, events) = channel();
        let sink = Box::new(Sink {
            events: Mutex::new(tx),
        });
        let user_data = &*sink as *const Sink as *mut c_void;
        unsafe {
            assert_eq!(
                veltix_server_on_recv(ptr, Some(on_recv), user_data, None),
                VELTIX_OK
            );
            assert_eq!(
                veltix_server_on_connect(ptr, Some(on_connect), user_data, None),
                VELTIX_OK
            );
            assert_eq!(
                veltix_server_on_disconnect(ptr, Some(on_disconnect), user_data, None),
                VELTIX_OK
            );
            assert_eq!(
                veltix_server_route(ptr, ECHO, Some(on_echo), ptr::null_mut(), None),
                VELTIX_OK
            );
        }
        Ok(TestServer {
            ptr,
            port: 0,
            sink,
            events,
        })
    }

    /// `veltix_server_start` (again); records the port.
    pub fn restart(&mut self) -> veltix_status_t {
        let status = unsafe { veltix_server_start(self.ptr) };
        self.port = unsafe { veltix_server_port(self.ptr) };
        status
    }

    pub fn close(&self) -> veltix_status_t {
        unsafe { veltix_server_close(self.ptr) }
    }

    pub fn send(&self, peer: veltix_peer_id_t, type_code: u16, payload: &[u8]) -> veltix_status_t {
        unsafe { veltix_server_send(self.ptr, peer, type_code, payload.as_ptr(), payload.len()) }
    }

    /// `send_and_wait`, the reply as (type, id, payload).
    pub fn request(
        &self,
        peer: veltix_peer_id_t,
        type_code: u16,
        payload: &[u8],
        timeout_ms: u32,
    ) -> Result<(u16, u16, Vec<u8>), veltix_status_t> {
        let mut response = ptr::null_mut();
        let status = unsafe {
            veltix_server_send_and_wait(
                self.ptr,
                peer,
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

    pub fn ping(&self, peer: veltix_peer_id_t) -> Result<f64, veltix_status_t> {
        let mut rtt = -1.0;
        match unsafe { veltix_server_ping_client(self.ptr, peer, 5000, &mut rtt) } {
            VELTIX_OK => Ok(rtt),
            status => Err(status),
        }
    }

    /// Broadcast; the number of peers reached.
    pub fn broadcast(&self, type_code: u16, payload: &[u8], except: &[veltix_peer_id_t]) -> usize {
        let mut sent = usize::MAX;
        let status = unsafe {
            veltix_server_broadcast(
                self.ptr,
                type_code,
                payload.as_ptr(),
                payload.len(),
                except.as_ptr(),
                except.len(),
                &mut sent,
            )
        };
        assert_eq!(status, VELTIX_OK, "broadcast: {}", last_error());
        sent
    }

    pub fn close_client(&self, peer: veltix_peer_id_t) -> veltix_status_t {
        unsafe { veltix_server_close_client(self.ptr, peer) }
    }

    pub fn client_count(&self) -> usize {
        unsafe { veltix_server_client_count(self.ptr) }
    }

    pub fn peers(&self) -> Vec<veltix_peer_id_t> {
        list(|out, capacity, count| unsafe { veltix_server_peers(self.ptr, out, capacity, count) })
    }

    pub fn peers_with_tag(&self, name: &str, value: Option<&str>) -> Vec<veltix_peer_id_t> {
        let name = CString::new(name).unwrap();
        let value = value.map(|v| CString::new(v).unwrap());
        let value_ptr = value.as_ref().map_or(ptr::null(), |v| v.as_ptr());
        list(|out, capacity, count| unsafe {
            veltix_server_peers_with_tag(self.ptr, name.as_ptr(), value_ptr, out, capacity, count)
        })
    }

    pub fn add_tag(&self, peer: veltix_peer_id_t, name: &str, value: &str) -> veltix_status_t {
        let (name, value) = (CString::new(name).unwrap(), CString::new(value).unwrap());
        unsafe { veltix_server_add_tag(self.ptr, peer, name.as_ptr(), value.as_ptr()) }
    }

    pub fn set_tag(&self, peer: veltix_peer_id_t, name: &str, value: &str) -> veltix_status_t {
        let (name, value) = (CString::new(name).unwrap(), CString::new(value).unwrap());
        unsafe { veltix_server_set_tag(self.ptr, peer, name.as_ptr(), value.as_ptr()) }
    }

    pub fn remove_tag(&self, peer: veltix_peer_id_t, name: &str) -> veltix_status_t {
        let name = CString::new(name).unwrap();
        unsafe { veltix_server_remove_tag(self.ptr, peer, name.as_ptr()) }
    }

    /// The tag's value, sized with a first call as the header documents.
    pub fn get_tag(&self, peer: veltix_peer_id_t, name: &str) -> Result<String, veltix_status_t> {
        let name = CString::new(name).unwrap();
        let mut len = usize::MAX;
        let status = unsafe {
            veltix_server_get_tag(self.ptr, peer, name.as_ptr(), ptr::null_mut(), 0, &mut len)
        };
        if status != VELTIX_OK {
            return Err(status);
        }
        let mut buf = vec![0 as c_char; len + 1];
        let status = unsafe {
            veltix_server_get_tag(
                self.ptr,
                peer,
                name.as_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut len,
            )
        };
        assert_eq!(status, VELTIX_OK);
        Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_str()
            .unwrap()
            .to_owned())
    }

    /// The peer's address as (ip text, port).
    pub fn peer_address(&self, peer: veltix_peer_id_t) -> Result<(String, u16), veltix_status_t> {
        let mut buf = [0 as c_char; 46];
        let mut port = 0u16;
        match unsafe {
            veltix_server_peer_address(self.ptr, peer, buf.as_mut_ptr(), buf.len(), &mut port)
        } {
            VELTIX_OK => Ok((
                unsafe { CStr::from_ptr(buf.as_ptr()) }
                    .to_str()
                    .unwrap()
                    .to_owned(),
                port,
            )),
            status => Err(status),
        }
    }

    pub fn next_event(&self) -> ServerEvent {
        self.next_event_within(Duration::from_secs(10))
            .expect("no server event within 10 s")
    }

    pub fn next_event_within(&self, timeout: Duration) -> Option<ServerEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    /// The id of the next peer to connect (skipping other events).
    pub fn next_connect(&self) -> veltix_peer_id_t {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event_within(left) {
                Some(ServerEvent::Connect(peer)) => return peer,
                Some(_) => continue,
                None => panic!("no connection within 10 s"),
            }
        }
    }

    /// Every event until `quiet` passes without one.
    pub fn drain_events(&self, quiet: Duration) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.next_event_within(quiet)).collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        unsafe { veltix_server_free(self.ptr) };
    }
}

/// Calls a list function twice: for the count, then with room for all.
fn list(
    call: impl Fn(*mut veltix_peer_id_t, usize, *mut usize) -> veltix_status_t,
) -> Vec<veltix_peer_id_t> {
    let mut count = usize::MAX;
    assert_eq!(call(ptr::null_mut(), 0, &mut count), VELTIX_OK);
    let mut ids = vec![0; count];
    let mut again = usize::MAX;
    assert_eq!(call(ids.as_mut_ptr(), ids.len(), &mut again), VELTIX_OK);
    ids.truncate(again.min(count));
    ids
}
