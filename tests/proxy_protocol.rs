//! The PROXY protocol on the server's listener: a trusted load balancer's
//! header gives `veltix_server_peer_address()` the real client; a missing,
//! malformed or untrusted header closes that connection alone. Against
//! scripted peers bound to chosen loopback addresses (Linux routes all of
//! 127.0.0.0/8 to the loopback), and against a real HAProxy with the
//! reference veltix 3.3.0 client behind it.
//!
//! Linux only: other systems route only 127.0.0.1 to the loopback (macOS,
//! the BSDs, and Wine's Windows), and the HAProxy is Debian's.
#![cfg(target_os = "linux")]

mod support;

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use socket2::{Domain, Socket, Type};
use support::fake_server::read_handshake;
use support::server_capi::{ServerEvent, TestServer, ECHO};
use support::{free_port, RefClient};
use veltix::ffi::*;
use veltix::protocol::handshake;

/// The load balancer's address in these tests.
const BALANCER: &str = "127.0.0.3";

/// A server that trusts `trusted` (a C string kept alive by the caller).
fn server_trusting(trusted: &CString) -> TestServer {
    TestServer::start(|config| config.proxy_protocol_from = trusted.as_ptr())
}

/// A connection to `port` from the loopback address `from`.
fn connect_from(from: &str, port: u16) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    socket.connect(&server.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Writes `first` (a PROXY header, or nothing), then a client's hello;
/// true if the server acked it, false if it closed the connection.
fn handshake_after(stream: &mut TcpStream, first: &[u8]) -> bool {
    stream.write_all(first).unwrap();
    stream.write_all(&handshake::hello("proxy-test")).unwrap();
    let hello = read_handshake(stream);
    assert_eq!(hello["pv"], "1.0", "the server's hello");
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len) {
        Ok(()) => {
            let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut body).unwrap();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["result"] == "ok"
        }
        Err(_) => false,
    }
}

/// A version 2 PROXY header for TCP over IPv4 from `client` to `to_port`.
fn v2_header(client: SocketAddr, to_port: u16) -> Vec<u8> {
    let SocketAddr::V4(client) = client else {
        panic!("IPv4 only")
    };
    let mut bytes = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    bytes.extend([0x21, 0x11, 0, 12]);
    bytes.extend(client.ip().octets());
    bytes.extend([127, 0, 0, 1]);
    bytes.extend(client.port().to_be_bytes());
    bytes.extend(to_port.to_be_bytes());
    bytes
}

/// The peer id of the next connection the server reports, within 5 s
/// (earlier peers' disconnections pass).
fn connected_peer(server: &TestServer) -> veltix_peer_id_t {
    loop {
        match server.next_event_within(Duration::from_secs(5)) {
            Some(ServerEvent::Connect(peer)) => return peer,
            Some(ServerEvent::Disconnect(..)) => continue,
            other => panic!("expected a connection, got {other:?}"),
        }
    }
}

#[test]
fn a_trusted_balancer_s_version_1_and_2_headers_give_the_client_s_address() {
    let trusted = CString::new(format!("10.9.9.9, {BALANCER}")).unwrap();
    let server = server_trusting(&trusted);

    let mut v1 = connect_from(BALANCER, server.port);
    let header = format!(
        "PROXY TCP4 198.51.100.7 127.0.0.1 40001 {}\r\n",
        server.port
    );
    assert!(handshake_after(&mut v1, header.as_bytes()));
    let peer = connected_peer(&server);
    assert_eq!(
        server.peer_address(peer).unwrap(),
        ("198.51.100.7".into(), 40001)
    );

    let mut v2 = connect_from(BALANCER, server.port);
    let client: SocketAddr = "203.0.113.9:40002".parse().unwrap();
    assert!(handshake_after(&mut v2, &v2_header(client, server.port)));
    let peer = connected_peer(&server);
    assert_eq!(
        server.peer_address(peer).unwrap(),
        ("203.0.113.9".into(), 40002)
    );

    // The connection works as any other once the header is read.
    v2.write_all(&support::hostile::frame(ECHO, 7, b"after the header"))
        .unwrap();
    let mut echo = [0u8; 15 + 16];
    v2.read_exact(&mut echo).unwrap();
    assert_eq!(&echo[15..], b"after the header");
}

#[test]
fn a_header_split_across_many_reads_is_put_together() {
    let trusted = CString::new(BALANCER).unwrap();
    let server = server_trusting(&trusted);
    let mut stream = connect_from(BALANCER, server.port);
    let header = format!(
        "PROXY TCP4 198.51.100.8 127.0.0.1 40003 {}\r\n",
        server.port
    );
    for byte in header.as_bytes() {
        stream.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(handshake_after(&mut stream, b""));
    let peer = connected_peer(&server);
    assert_eq!(
        server.peer_address(peer).unwrap(),
        ("198.51.100.8".into(), 40003)
    );
}

#[test]
fn a_missing_malformed_or_untrusted_header_closes_that_connection_alone() {
    let trusted = CString::new(BALANCER).unwrap();
    let server = server_trusting(&trusted);
    let port = server.port;
    let header = format!("PROXY TCP4 198.51.100.9 127.0.0.1 40004 {port}\r\n");

    // From the balancer, a header is required...
    assert!(!handshake_after(&mut connect_from(BALANCER, port), b""));
    // ...and must be well formed.
    assert!(!handshake_after(
        &mut connect_from(BALANCER, port),
        b"PROXY TCP4 nonsense\r\n"
    ));
    // From anyone else, a header is someone claiming another address.
    assert!(!handshake_after(
        &mut connect_from("127.0.0.1", port),
        header.as_bytes()
    ));
    assert!(!handshake_after(
        &mut connect_from("127.0.0.2", port),
        &v2_header("192.0.2.1:1".parse().unwrap(), port)
    ));
    // None of them reached a callback.
    assert!(server
        .next_event_within(Duration::from_millis(200))
        .is_none());

    // A direct client without a header is served, under its own address.
    let mut direct = connect_from("127.0.0.2", port);
    assert!(handshake_after(&mut direct, b""));
    let peer = connected_peer(&server);
    assert_eq!(server.peer_address(peer).unwrap().0, "127.0.0.2");
}

#[test]
fn without_the_setting_no_header_is_looked_for() {
    let server = TestServer::start(|_| {});
    let header = format!(
        "PROXY TCP4 198.51.100.10 127.0.0.1 40005 {}\r\n",
        server.port
    );
    // Never guessed: the header is just bytes that fail the handshake.
    assert!(!handshake_after(
        &mut connect_from(BALANCER, server.port),
        header.as_bytes()
    ));
    let mut direct = connect_from(BALANCER, server.port);
    assert!(handshake_after(&mut direct, b""));
    let peer = connected_peer(&server);
    assert_eq!(server.peer_address(peer).unwrap().0, BALANCER);
}

#[test]
fn a_bad_trust_list_is_refused_with_the_entry_named() {
    let bad = CString::new("10.0.0.1, not-an-address").unwrap();
    let mut config = unsafe { std::mem::zeroed::<veltix_server_config_t>() };
    unsafe { veltix_server_config_init(&mut config, std::mem::size_of_val(&config)) };
    config.proxy_protocol_from = bad.as_ptr();
    let mut server = std::ptr::null_mut();
    assert_eq!(
        unsafe { veltix_server_new(&config, &mut server) },
        VELTIX_ERR_INVALID_ARGUMENT
    );
    let detail = unsafe { std::ffi::CStr::from_ptr(veltix_last_error()) }
        .to_string_lossy()
        .into_owned();
    assert!(
        detail.contains("not-an-address") && detail.contains("proxy_protocol_from"),
        "{detail}"
    );
}

/// Debian's HAProxy in the foreground with the configuration `proxies`
/// (after global settings and TCP-mode defaults); killed on drop.
struct Haproxy {
    child: Child,
    _folder: tempdir::Folder,
}

mod tempdir {
    /// A folder removed on drop.
    pub struct Folder(pub std::path::PathBuf);

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Haproxy {
    /// Starts it, and waits until it has taken `listening`.
    fn start(proxies: &str, listening: u16) -> Haproxy {
        let folder =
            std::env::temp_dir().join(format!("veltix-haproxy-{}-{listening}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let config = folder.join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "global\n    maxconn 200\n\
                 defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n{proxies}"
            ),
        )
        .unwrap();
        let binary = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("no haproxy: scripts/test.sh installs Debian's haproxy");
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Listening once its port is taken (a test connection would reach
        // a server through it).
        let started = Instant::now();
        while std::net::TcpListener::bind(("127.0.0.1", listening)).is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "haproxy did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Haproxy {
            child,
            _folder: tempdir::Folder(folder),
        }
    }

    /// One HAProxy forwarding `front_v1` with `send-proxy` and `front_v2`
    /// with `send-proxy-v2` to `backend`, from BALANCER.
    fn both_versions(front_v1: u16, front_v2: u16, backend: u16) -> Haproxy {
        Haproxy::start(
            &format!(
                "frontend v1\n    bind 127.0.0.1:{front_v1}\n    default_backend v1\n\
                 frontend v2\n    bind 127.0.0.1:{front_v2}\n    default_backend v2\n\
                 backend v1\n    server node 127.0.0.1:{backend} send-proxy source {BALANCER}\n\
                 backend v2\n    server node 127.0.0.1:{backend} send-proxy-v2 source {BALANCER}\n"
            ),
            front_v2,
        )
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn reference_clients_behind_a_real_haproxy_are_served_under_their_own_address() {
    let trusted = CString::new(BALANCER).unwrap();
    let server = server_trusting(&trusted);
    let (front_v1, front_v2) = (free_port(), free_port());
    let _haproxy = Haproxy::both_versions(front_v1, front_v2, server.port);

    for front in [front_v1, front_v2] {
        let python = RefClient::connected(front);
        let peer = connected_peer(&server);
        // The connection came from HAProxy (127.0.0.3); the client is 127.0.0.1.
        let (address, port) = server.peer_address(peer).unwrap();
        assert_eq!(address, "127.0.0.1", "through the port {front}");
        assert_ne!(port, 0);
        let answer =
            python.command(json!({"op": "request", "type": ECHO, "text": "through haproxy"}));
        assert_eq!(answer["reply"]["text"], "through haproxy");
    }

    // A client that talks to the server directly cannot pose as one
    // behind the balancer.
    let header = format!(
        "PROXY TCP4 198.51.100.11 127.0.0.1 40006 {}\r\n",
        server.port
    );
    assert!(!handshake_after(
        &mut connect_from("127.0.0.1", server.port),
        header.as_bytes()
    ));
}

#[test]
fn draining_a_node_moves_its_clients_through_haproxy_to_the_other_a_few_at_a_time() {
    let trusted = CString::new(BALANCER).unwrap();
    let (node_a, node_b) = (server_trusting(&trusted), server_trusting(&trusted));
    let front = free_port();
    let _haproxy = Haproxy::start(
        &format!(
            "frontend veltix\n    bind 127.0.0.1:{front}\n    default_backend nodes\n\
             backend nodes\n    balance roundrobin\n    option redispatch\n    retries 3\n\
             \x20   server a 127.0.0.1:{} send-proxy-v2 source {BALANCER}\n\
             \x20   server b 127.0.0.1:{} send-proxy-v2 source {BALANCER}\n",
            node_a.port, node_b.port
        ),
        front,
    );
    // Reference clients that reconnect on their own (every 100 ms).
    let clients: Vec<RefClient> = (0..6)
        .map(|_| {
            let client = RefClient::start(front, &["--retry", "50", "--retry-delay", "0.1"]);
            assert_eq!(client.command(json!({"op": "connect"}))["ok"], true);
            client
        })
        .collect();
    let started = Instant::now();
    while node_a.client_count() + node_b.client_count() < 6 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the clients did not all connect"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let on_a = node_a.client_count();
    assert!(on_a >= 2, "round robin put {on_a} of 6 on node a");
    while node_a
        .next_event_within(Duration::from_millis(100))
        .is_some()
    {}

    // Drain node a at 10 clients a second.
    assert_eq!(unsafe { veltix_server_drain(node_a.ptr, 10) }, VELTIX_OK);
    let mut left_at = Vec::new();
    while left_at.len() < on_a {
        match node_a.next_event_within(Duration::from_secs(5)) {
            Some(ServerEvent::Disconnect(_, reason)) => {
                assert_eq!(reason, VELTIX_DISCONNECT_MANUAL);
                left_at.push(Instant::now());
            }
            other => panic!("expected node a's clients to leave, got {other:?}"),
        }
    }
    let spread = *left_at.last().unwrap() - left_at[0];
    let expected = Duration::from_millis(100) * (on_a as u32 - 1);
    assert!(
        spread >= expected * 8 / 10,
        "{on_a} closes over {spread:?}: not one per 100 ms"
    );
    // It no longer accepts: the balancer sends everyone to node b.
    assert!(TcpStream::connect(("127.0.0.1", node_a.port)).is_err());
    let started = Instant::now();
    while node_b.client_count() < 6 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "node b has {} of 6",
            node_b.client_count()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(node_a.client_count(), 0);
    // Every client's requests are answered again, by node b.
    for client in &clients {
        let answer =
            client.command(json!({"op": "request", "type": ECHO, "text": "after the drain"}));
        assert_eq!(answer["reply"]["text"], "after the drain", "{answer}");
    }
}
