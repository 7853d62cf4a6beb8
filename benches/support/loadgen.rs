//! The server benchmark's load generator: one thread, one epoll loop over
//! every connection (so it needs less CPU than the servers it loads),
//! checking every reply's CRC (the decoder drops a bad one, which fails
//! the run), type, request id and order; except in the fan-out workload,
//! whose receivers only count bytes, so that the generator's cost does not
//! grow with the server's output.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream as StdStream;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::support::handshake_as_client;
use veltix::protocol::frame::encode_frame;
use veltix::protocol::{Decoded, FrameDecoder};

/// Echoed back with the same type, request id and payload.
pub const ECHO: u16 = 200;
/// Broadcast by the server to every client (the sender too) as
/// [`BROADCAST_OUT`].
pub const BROADCAST: u16 = 202;
/// What a broadcast arrives as.
pub const BROADCAST_OUT: u16 = 203;
/// Payload size of every message.
pub const PAYLOAD: usize = 64;

/// What the generator asks of the server.
#[derive(Clone, Copy, Debug)]
pub enum Workload {
    /// `connections` clients, each keeping `in_flight` echo requests
    /// outstanding (1: closed loop).
    Echo {
        connections: usize,
        in_flight: usize,
    },
    /// `receivers` clients; the first broadcasts `batch` messages at a time,
    /// and the next batch goes once the one before it reached everyone.
    Broadcast { receivers: usize, batch: usize },
    /// `receivers` clients, the first `senders` of which each broadcast
    /// `batch` messages at a time; the next round goes once all but the
    /// last reached everyone. Receivers count bytes, never decode.
    FanOut {
        senders: usize,
        receivers: usize,
        batch: usize,
    },
    /// `clients` threads connecting, completing the handshake and
    /// closing, again and again (see [`churn`]).
    Churn { clients: usize },
}

/// Connection churn: `clients` threads each connect, complete the
/// handshake, close, and start again (the only workload with more than one
/// generator thread: a blocking connect per thread).
pub fn churn(port: u16, clients: usize, seconds: f64) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let cpu_before = thread_cpu();
                let mut handshakes = 0usize;
                while Instant::now() < deadline {
                    let mut stream = StdStream::connect(("127.0.0.1", port)).expect("connect");
                    stream.set_nodelay(true).unwrap();
                    let mut decoder = FrameDecoder::new(u32::MAX, 4096);
                    handshake_as_client(&mut stream, &mut decoder);
                    handshakes += 1;
                    // Closed with a reset: tens of thousands of closes
                    // would otherwise fill the ports with TIME_WAIT.
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                }
                (handshakes, thread_cpu() - cpu_before)
            })
        })
        .collect();
    let (handshakes, cpu) = threads
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .fold((0, Duration::ZERO), |(n, cpu), (more, spent)| {
            (n + more, cpu + spent)
        });
    let elapsed = started.elapsed().as_secs_f64();
    Outcome {
        rate: handshakes as f64 / elapsed,
        cpu: cpu.as_secs_f64() / elapsed,
    }
}

/// Has each of `senders` broadcast the sequence numbers `seqs`, in one
/// write each.
fn broadcast_from_each(senders: &mut [Connection], seqs: std::ops::Range<u32>) {
    for sender in senders {
        for seq in seqs.clone() {
            sender.queue_broadcast(seq);
        }
        sender.flush();
    }
}

/// Bytes of one frame on the wire.
const FRAME_BYTES: usize = 15 + PAYLOAD;

/// Whether the server must keep each connection's order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Kept,
    Any,
}

/// What one run measured.
pub struct Outcome {
    /// Echo replies, or broadcast frames delivered, per second.
    pub rate: f64,
    /// The generator's CPU time over the run, in cores.
    pub cpu: f64,
}

/// One connection of the generator.
struct Connection {
    stream: TcpStream,
    decoder: FrameDecoder,
    /// Bytes encoded and not yet taken by the socket.
    out: Vec<u8>,
    /// Request ids (echo) sent and not answered yet, oldest first.
    outstanding: VecDeque<u16>,
    next_id: u32,
    /// Broadcasts received.
    received: u32,
}

/// Reads what `stream` has into `scratch`; how many bytes.
fn count_bytes(mut stream: &TcpStream, scratch: &mut [u8]) -> usize {
    let mut bytes = 0;
    loop {
        match stream.read(scratch) {
            Ok(0) => panic!("the server closed a connection"),
            Ok(n) => bytes += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return bytes,
            Err(e) => panic!("read from the server failed: {e}"),
        }
    }
}

impl Connection {
    fn open(port: u16) -> Connection {
        let mut stream = StdStream::connect(("127.0.0.1", port)).expect("connect to the server");
        stream.set_nodelay(true).unwrap();
        let mut decoder = FrameDecoder::new(u32::MAX, 64 * 1024);
        handshake_as_client(&mut stream, &mut decoder);
        stream.set_nonblocking(true).unwrap();
        Connection {
            stream: TcpStream::from_std(stream),
            decoder,
            out: Vec::with_capacity(64 * 1024),
            outstanding: VecDeque::new(),
            next_id: 0,
            received: 0,
        }
    }

    /// Client request ids are 1..32768.
    fn id(counter: u32) -> u16 {
        (1 + counter % 32767) as u16
    }

    fn queue_echo(&mut self) {
        let id = Connection::id(self.next_id);
        self.next_id += 1;
        self.outstanding.push_back(id);
        self.out.extend(encode_frame(ECHO, id, &[7u8; PAYLOAD]));
    }

    fn queue_broadcast(&mut self, seq: u32) {
        let mut payload = [0u8; PAYLOAD];
        payload[..4].copy_from_slice(&seq.to_be_bytes());
        self.out.extend(encode_frame(BROADCAST, 0, &payload));
    }

    /// Writes what the socket takes.
    fn flush(&mut self) {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("write to the server failed: {e}"),
            }
        }
    }

    /// Reads what the socket has and checks every frame; how many arrived.
    /// With `Order::Any` replies may come in any order (the Python server's
    /// thread pool reorders), but each id exactly once.
    fn receive(&mut self, workload: Workload, order: Order) -> usize {
        let mut frames = 0;
        loop {
            while let Some(decoded) = self.decoder.next_frame() {
                let message = match decoded {
                    Decoded::Frame(message) => message,
                    Decoded::Dropped(reason) => panic!("a bad frame from the server: {reason}"),
                };
                assert_eq!(message.payload().len(), PAYLOAD, "payload size");
                match workload {
                    Workload::Echo { .. } => {
                        assert_eq!(message.type_code(), ECHO, "reply type");
                        let at = match order {
                            Order::Kept => 0,
                            Order::Any => self
                                .outstanding
                                .iter()
                                .position(|id| *id == message.request_id())
                                .expect("a reply to a request in flight"),
                        };
                        let expected = self.outstanding.remove(at).expect("a request in flight");
                        assert_eq!(message.request_id(), expected, "reply order");
                    }
                    Workload::FanOut { .. } => unreachable!("fan-out receivers count bytes"),
                    Workload::Churn { .. } => unreachable!("churn reads only handshakes"),
                    Workload::Broadcast { batch, .. } => {
                        assert_eq!(message.type_code(), BROADCAST_OUT, "broadcast type");
                        let seq = u32::from_be_bytes(message.payload()[..4].try_into().unwrap());
                        match order {
                            Order::Kept => assert_eq!(seq, self.received, "broadcast order"),
                            Order::Any => assert!(
                                seq < self.received + 2 * batch as u32,
                                "a broadcast that was not sent yet"
                            ),
                        }
                        self.received += 1;
                    }
                }
                frames += 1;
            }
            let stream = &self.stream;
            match self.decoder.fill_with(|buf| (&*stream).read(buf)) {
                Ok(0) => panic!("the server closed a connection"),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return frames,
                Err(e) => panic!("read from the server failed: {e}"),
            }
        }
    }
}

/// Connects, runs `workload` against the server on `port` for `seconds`,
/// and returns the rate and the generator's CPU.
pub fn run(port: u16, workload: Workload, order: Order, seconds: f64) -> Outcome {
    let count = match workload {
        Workload::Echo { connections, .. } => connections,
        Workload::Broadcast { receivers, .. } | Workload::FanOut { receivers, .. } => receivers,
        Workload::Churn { clients } => return churn(port, clients, seconds),
    };
    let mut connections: Vec<Connection> = (0..count).map(|_| Connection::open(port)).collect();
    let mut poll = Poll::new().unwrap();
    for (i, connection) in connections.iter_mut().enumerate() {
        poll.registry()
            .register(
                &mut connection.stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .unwrap();
    }
    let mut events = Events::with_capacity(1024);
    let cpu_before = thread_cpu();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut counted = 0usize;
    // Broadcast: the sequence numbers sent so far (by each sender).
    let mut broadcasts_sent = 0u32;
    // Fan-out: the bytes received, by every receiver together.
    let mut bytes_received = 0usize;
    let mut scratch = vec![0u8; 256 * 1024];
    match workload {
        Workload::Echo { in_flight, .. } => {
            for connection in &mut connections {
                for _ in 0..in_flight {
                    connection.queue_echo();
                }
                connection.flush();
            }
        }
        Workload::Broadcast { batch, .. } => {
            for _ in 0..2 * batch {
                connections[0].queue_broadcast(broadcasts_sent);
                broadcasts_sent += 1;
            }
            connections[0].flush();
        }
        Workload::FanOut { senders, batch, .. } => {
            broadcast_from_each(&mut connections[..senders], 0..2 * batch as u32);
            broadcasts_sent = 2 * batch as u32;
        }
        Workload::Churn { .. } => unreachable!("churn returned above"),
    }
    while Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        for event in events.iter() {
            let connection = &mut connections[event.token().0];
            if let (Workload::FanOut { .. }, true) = (workload, event.is_readable()) {
                bytes_received += count_bytes(&connection.stream, &mut scratch);
            } else if event.is_readable() {
                let frames = connection.receive(workload, order);
                counted += frames;
                if let Workload::Echo { .. } = workload {
                    for _ in 0..frames {
                        connection.queue_echo();
                    }
                }
            }
            connection.flush();
        }
        if let Workload::Broadcast { batch, receivers } = workload {
            // Two batches in flight: the next goes once all but the last
            // batch reached every receiver.
            if counted >= receivers * (broadcasts_sent as usize - batch) {
                for _ in 0..batch {
                    connections[0].queue_broadcast(broadcasts_sent);
                    broadcasts_sent += 1;
                }
                connections[0].flush();
            }
        }
        if let Workload::FanOut {
            senders,
            receivers,
            batch,
        } = workload
        {
            counted = bytes_received / FRAME_BYTES;
            let in_flight = senders * batch;
            if counted >= receivers * (senders * broadcasts_sent as usize - in_flight) {
                let next = broadcasts_sent..broadcasts_sent + batch as u32;
                broadcast_from_each(&mut connections[..senders], next);
                broadcasts_sent += batch as u32;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (thread_cpu() - cpu_before).as_secs_f64() / elapsed;
    Outcome {
        rate: counted as f64 / elapsed,
        cpu,
    }
}

/// CPU time of the calling thread.
pub fn thread_cpu() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into a live rusage.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}
