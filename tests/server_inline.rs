//! `callbacks_on_io_thread`: a server's callbacks run on its I/O thread,
//! in order, and what would wait for that thread is refused or does not
//! wait for it.

mod support;

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use veltix::client::{Client, ClientConfig};
use veltix::error::Error;
use veltix::server::{Server, ServerConfig};

const ECHO: u16 = 200;
const BLOCKING_CALLS: u16 = 201;
const ASYNC_REQUEST: u16 = 202;
const ANSWERED_BY_CLIENT: u16 = 203;
const CLOSE_SERVER: u16 = 204;
const UNROUTE_ITSELF: u16 = 205;

fn inline_server() -> Server {
    Server::new(ServerConfig {
        host: "127.0.0.1".into(),
        io_threads: support::io_threads(),
        port: 0,
        callbacks_on_io_thread: true,
        ..ServerConfig::default()
    })
    .unwrap()
}

fn client_of(port: u16) -> Client {
    let client = Client::new(ClientConfig {
        port,
        ..ClientConfig::default()
    })
    .unwrap();
    client.connect().unwrap();
    client
}

fn this_thread() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

/// A sender usable from callbacks.
fn shared<T: Send + 'static>(sender: Sender<T>) -> Arc<Mutex<Sender<T>>> {
    Arc::new(Mutex::new(sender))
}

#[test]
fn callbacks_run_on_the_io_thread_in_order() {
    let server = inline_server();
    let (events, seen) = channel();
    let events = shared(events);
    let log = events.clone();
    server.on_connect(Some(Arc::new(move |_, _| {
        log.lock()
            .unwrap()
            .send(("connect".to_owned(), this_thread()))
            .unwrap();
    })));
    let log = events.clone();
    server
        .route(
            ECHO,
            Arc::new(move |server, peer, message| {
                server
                    .reply(peer, message, ECHO, message.payload())
                    .unwrap();
                let text = String::from_utf8_lossy(message.payload()).into_owned();
                log.lock().unwrap().send((text, this_thread())).unwrap();
            }),
        )
        .unwrap();
    let log = events.clone();
    server.on_disconnect(Some(Arc::new(move |_, _, _| {
        log.lock()
            .unwrap()
            .send(("disconnect".to_owned(), this_thread()))
            .unwrap();
    })));
    let client = client_of(server.start().unwrap());
    for i in 0..50 {
        let payload = format!("message {i}");
        let reply = client
            .send_and_wait(ECHO, payload.as_bytes(), Duration::from_secs(5))
            .unwrap();
        assert_eq!(reply.payload(), payload.as_bytes());
    }
    client.close();
    let mut expected = vec!["connect".to_owned()];
    expected.extend((0..50).map(|i| format!("message {i}")));
    expected.push("disconnect".to_owned());
    for want in expected {
        let (got, thread) = seen.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(got, want);
        assert_eq!(thread, "veltix-server-io", "{got} ran elsewhere");
    }
    server.close();
}

#[test]
fn calls_that_would_wait_for_the_io_thread_fail_at_once_and_request_works() {
    let server = inline_server();
    let (outcomes, seen) = channel();
    let outcomes = shared(outcomes);
    let report = outcomes.clone();
    server
        .route(
            BLOCKING_CALLS,
            Arc::new(move |server, peer, _| {
                let started = Instant::now();
                let waited =
                    server.send_and_wait(peer, ANSWERED_BY_CLIENT, b"q", Duration::from_secs(5));
                let pinged = server.ping(peer, Duration::from_secs(5));
                let refused = matches!(waited, Err(Error::InvalidArgument(_)))
                    && matches!(pinged, Err(Error::InvalidArgument(_)));
                report
                    .lock()
                    .unwrap()
                    .send(format!(
                        "refused {refused} in {:?}",
                        started.elapsed() < Duration::from_secs(1)
                    ))
                    .unwrap();
            }),
        )
        .unwrap();
    let report = outcomes.clone();
    server
        .route(
            ASYNC_REQUEST,
            Arc::new(move |server, peer, _| {
                let report = report.clone();
                server
                    .request(
                        peer,
                        ANSWERED_BY_CLIENT,
                        b"q",
                        Duration::from_secs(5),
                        Box::new(move |_, _, result| {
                            let answer = result.map(|m| m.payload().to_vec());
                            report.lock().unwrap().send(format!("{answer:?}")).unwrap();
                        }),
                    )
                    .unwrap();
            }),
        )
        .unwrap();
    let client = client_of(server.start().unwrap());
    client
        .route(
            ANSWERED_BY_CLIENT,
            Arc::new(|client, message| {
                client
                    .reply(message, ANSWERED_BY_CLIENT, b"answer")
                    .unwrap();
            }),
        )
        .unwrap();
    client.send(BLOCKING_CALLS, b"").unwrap();
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(10)).unwrap(),
        "refused true in true"
    );
    client.send(ASYNC_REQUEST, b"").unwrap();
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(10)).unwrap(),
        format!("{:?}", Ok::<_, Error>(b"answer".to_vec()))
    );
    client.close();
    server.close();
}

#[test]
fn a_callback_on_the_io_thread_may_close_the_server_and_unroute_itself() {
    let server = inline_server();
    let (done, seen) = channel();
    let done = shared(done);
    let report = done.clone();
    server
        .route(
            UNROUTE_ITSELF,
            Arc::new(move |server, _, _| {
                server.unroute(UNROUTE_ITSELF).unwrap();
                report.lock().unwrap().send("unrouted").unwrap();
            }),
        )
        .unwrap();
    let report = done.clone();
    server
        .route(
            CLOSE_SERVER,
            Arc::new(move |server, _, _| {
                server.close();
                report.lock().unwrap().send("closed").unwrap();
            }),
        )
        .unwrap();
    let client = client_of(server.start().unwrap());
    client.send(UNROUTE_ITSELF, b"").unwrap();
    assert_eq!(seen.recv_timeout(Duration::from_secs(5)), Ok("unrouted"));
    client.send(CLOSE_SERVER, b"").unwrap();
    assert_eq!(seen.recv_timeout(Duration::from_secs(5)), Ok("closed"));
    client
        .wait_until_closed(Some(Duration::from_secs(5)))
        .expect("the server closed its connections");
    assert_eq!(server.local_addr(), None);
    client.close();
}
