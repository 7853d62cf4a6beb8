//! The client's lifecycle callbacks are delivered by the time the calls
//! that end a connection return: `disconnect` + `wait_until_closed`,
//! `disconnect` + `free`, and a failed `connect` with its retries.

mod support;

use std::time::Duration;

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
