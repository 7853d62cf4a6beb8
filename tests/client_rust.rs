//! The safe Rust API: a panicking callback does not take the client (or the
//! process) down.

mod support;

use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::RefServer;
use veltix::client::{Client, ClientConfig};

#[test]
fn a_panicking_callback_is_contained() {
    let server = RefServer::start();
    let client = Client::new(ClientConfig {
        port: server.port,
        max_workers: 1,
        ..ClientConfig::default()
    })
    .unwrap();
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    client.on_recv(Some(Arc::new(move |_, message| {
        if message.payload() == b"boom" {
            panic!("callback panic");
        }
        tx.lock().unwrap().send(message.payload().to_vec()).unwrap();
    })));
    client.connect().unwrap();
    client.send(200, b"boom").unwrap();
    client.send(200, b"after").unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), b"after");
    assert!(client.is_connected());
    client.close();
}
