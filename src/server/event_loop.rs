//! The server's I/O threads: mio event loops, the first over the listener
//! too, each over the connections it was handed (`io_threads`).
//!
//! The first accepts (or refuses with `server_full`) and hands each new
//! connection to the loop holding the fewest, itself included, where it
//! stays for its whole life. Each loop greets, runs each handshake
//! under its deadline, reads and decodes frames, hands them to
//! [`Server::route_message`], writes queued bytes when a socket becomes writable
//! or another loop hands it the writes of a turn ([`Command::Write`]), and
//! closes connections. It runs user code only with `callbacks_on_io_thread`,
//! and never waits for a peer: a
//! connection that never completes its handshake costs only its table slot
//! until its deadline, and a connection that floods is read a bounded
//! amount per turn so others are served too.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;

use super::lead::{LEAD_LIMIT, READ_SLICE};
use super::peer::{Peer, PeerId};
use super::read_side::{Liveness, ProxyStage, ReadSide, ReadUntil, Turn, TurnTime};
use super::timers::LivenessTimers;
use super::{Server, ServerConfig};
use crate::backlog::Backlog;
use crate::disconnect::DisconnectReason;
use crate::log::log_at;
use crate::protocol::handshake;
use crate::protocol::FrameDecoder;
use crate::sys::PollWatch;
use crate::writer::write_parts;

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);
/// Pause before accepting again after `accept` failed (e.g. no descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

thread_local! {
    /// The server one of whose I/O threads this is (its address), or 0.
    static IO_THREAD_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Whether the calling thread is one of `server`'s I/O threads.
pub(super) fn is_io_thread_of(server: &Server) -> bool {
    IO_THREAD_OF.with(|of| of.get() == server.as_ptr() as usize)
}

/// A request to the I/O thread from another thread.
pub(super) enum Command {
    /// Close peer `id`, found at `key` (`close_client`, or a failed send).
    Close {
        key: usize,
        id: PeerId,
        reason: DisconnectReason,
    },
    /// Read peer `id`, at `key`, again: its callback backlog drained, or
    /// a thread that read it while waiting for a reply left the rest.
    Read { key: usize, id: PeerId },
    /// Take over a connection the accepting loop counted for this one.
    Adopt { stream: TcpStream, addr: SocketAddr },
    /// Write the corked bytes of these connections of this loop, which
    /// another loop's turn held back (see [`Control::write_on_its_turn`]).
    Write(Vec<Arc<Peer>>),
    /// Stop accepting, then close every connection, one per `interval`
    /// (all at once for zero) from `first_after` on, as `close_client`
    /// does.
    Drain {
        interval: Duration,
        first_after: Duration,
    },
    /// Close every connection and the listener, and exit.
    Stop,
}

/// A node being drained: connections close one at a time.
struct Draining {
    interval: Duration,
    next_close: Instant,
}

/// How other threads reach the I/O thread.
pub(super) struct Control {
    commands: Sender<Command>,
    waker: Waker,
}

impl Control {
    /// Queues `command` and wakes the I/O thread.
    pub fn send(&self, command: Command) {
        if self.queue(command).is_ok() {
            self.wake();
        }
    }

    /// Queues `command` without waking the I/O thread; the command back
    /// if that thread is gone (it panicked, or the server closed).
    fn queue(&self, command: Command) -> Result<(), Command> {
        self.commands.send(command).map_err(|refused| refused.0)
    }

    fn wake(&self) {
        let _ = self.waker.wake();
    }

    /// Has this loop write the corked bytes of `peers`, connections it
    /// holds, in its next turn, woken once for all of them; they are
    /// written here if its thread is gone.
    pub fn write_on_its_turn(&self, peers: Vec<Arc<Peer>>) {
        match self.queue(Command::Write(peers)) {
            Ok(()) => self.wake(),
            Err(Command::Write(peers)) => Peer::write_handed(peers),
            Err(_) => unreachable!("the command sent was Write"),
        }
    }

    /// A control of no running loop: its commands arrive on the receiver
    /// (the poll is its waker's).
    #[cfg(test)]
    pub fn detached() -> (Arc<Control>, Receiver<Command>, Poll) {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), WAKER).unwrap();
        let (commands, received) = crossbeam_channel::unbounded();
        (Arc::new(Control { commands, waker }), received, poll)
    }
}

/// The I/O threads of one running server, as each of them sees the others.
pub(super) struct Loops {
    controls: Vec<Arc<Control>>,
    /// The connections each loop holds, handshakes included. The accepting
    /// loop counts one for its loop as it hands it over, so that a burst
    /// of new connections spreads before they are adopted.
    connections: Vec<AtomicUsize>,
    /// Held by the loop enforcing the memory budget: two loops cutting at
    /// once would each cut for the same excess.
    enforcing: Mutex<()>,
}

impl Loops {
    /// Sends each loop the command `make` gives for its index.
    pub fn send_to_each(&self, make: impl Fn(usize) -> Command) {
        for (index, control) in self.controls.iter().enumerate() {
            control.send(make(index));
        }
    }

    /// How many loops there are.
    pub fn len(&self) -> usize {
        self.controls.len()
    }

    /// The connections of every loop.
    fn total(&self) -> usize {
        self.connections
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }

    /// The loop holding the fewest connections (the first of those tied).
    fn least_loaded(&self) -> usize {
        (0..self.connections.len())
            .min_by_key(|&index| self.connections[index].load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    fn counted(&self, index: usize) {
        self.connections[index].fetch_add(1, Ordering::Relaxed);
    }

    fn left(&self, index: usize) {
        self.connections[index].fetch_sub(1, Ordering::Relaxed);
    }
}

/// The peer [`EventLoop::enforce_budget`] cuts.
enum Holder {
    /// This loop's connection at this key.
    Here(usize),
    /// A connected peer of another loop, at this index of those looked at.
    Elsewhere(usize),
}

/// One connection as the I/O thread holds it.
struct Connection {
    peer: Arc<Peer>,
    /// The handshake is complete (the ack was sent): what its read side
    /// says, as of the I/O thread's last read turn.
    connected: bool,
    /// The peer shut its sending side; the connection closes once the
    /// callbacks of what it sent have run.
    read_closed: bool,
}

/// The event loop, owned by the I/O thread.
pub(super) struct EventLoop {
    poll: Poll,
    /// The poll's registry, shared with the connections' watches.
    registry: Arc<Registry>,
    /// `None` once draining: no connection is accepted any more.
    listener: Option<TcpListener>,
    /// Set by [`Command::Drain`].
    draining: Option<Draining>,
    connections: Slab<Connection>,
    /// Handshake deadlines in accept order; all share one timeout, so the
    /// queue is sorted.
    handshake_deadlines: VecDeque<(Instant, usize, PeerId)>,
    /// Heartbeat and idle deadlines of the connected peers.
    timers: LivenessTimers,
    /// Connections whose read budget ran out, read again next turn.
    unfinished_reads: Vec<usize>,
    accept_paused_until: Option<Instant>,
    commands: Receiver<Command>,
    /// This loop's place in `loops`.
    index: usize,
    loops: Arc<Loops>,
    /// This loop's control: handed to each peer's backlog, to ask for
    /// [`Command::Read`].
    control: Arc<Control>,
    /// The receive buffer lent to the connection being read.
    spare: Vec<u8>,
    hello: Vec<u8>,
    server: Server,
}

/// Listens on `addr` and prepares `count` loops, the first of which
/// accepts: the loops, how to reach them, and the address actually bound
/// (its port, when 0 was asked).
pub(super) fn listen(
    server: Server,
    addr: SocketAddr,
    count: usize,
) -> io::Result<(Vec<EventLoop>, Arc<Loops>, SocketAddr)> {
    // Not mio's bind: its backlog of 1024 overflows in a burst of
    // connecting clients.
    let mut listener = TcpListener::from_std(crate::sys::listen(addr)?);
    let bound = listener.local_addr()?;
    let mut polls = Vec::with_capacity(count);
    let mut controls = Vec::with_capacity(count);
    let mut receivers = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (commands_in, commands) = crossbeam_channel::unbounded();
        controls.push(Arc::new(Control {
            commands: commands_in,
            waker,
        }));
        receivers.push(commands);
        polls.push(poll);
    }
    polls[0]
        .registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let loops = Arc::new(Loops {
        connections: controls.iter().map(|_| AtomicUsize::new(0)).collect(),
        controls,
        enforcing: Mutex::default(),
    });
    let mut listener = Some(listener);
    let mut event_loops = Vec::with_capacity(count);
    for (index, (poll, commands)) in polls.into_iter().zip(receivers).enumerate() {
        let registry = Arc::new(poll.registry().try_clone()?);
        event_loops.push(EventLoop {
            poll,
            registry,
            listener: listener.take(),
            draining: None,
            connections: Slab::new(),
            handshake_deadlines: VecDeque::new(),
            timers: LivenessTimers::default(),
            unfinished_reads: Vec::new(),
            accept_paused_until: None,
            commands,
            index,
            control: loops.controls[index].clone(),
            loops: loops.clone(),
            spare: Vec::new(),
            hello: handshake::hello(crate::VERSION),
            server: server.clone(),
        });
    }
    Ok((event_loops, loops, bound))
}

impl EventLoop {
    /// Runs until [`Command::Stop`]; then every connection and the listener
    /// are closed.
    pub fn run(mut self) {
        IO_THREAD_OF.with(|of| of.set(self.server.as_ptr() as usize));
        let mut events = Events::with_capacity(1024);
        let callbacks_here = self.server.config().callbacks_on_io_thread;
        let control = self.control.clone();
        loop {
            if let Err(e) = self.poll.poll(&mut events, self.poll_timeout()) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log_at!(
                    Error,
                    "the server's event loop failed ({e}); closing every connection"
                );
                break;
            }
            let stop = match callbacks_here {
                // What the turn's callbacks send to other peers leaves in
                // one write per peer when it ends.
                true => Peer::write_after_turn(&control, || self.turn(&events)),
                false => self.turn(&events),
            };
            if stop {
                break;
            }
        }
        // The server closes: message callbacks not yet started are dropped.
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close(key, DisconnectReason::Manual, true);
        }
    }

    /// Handles what one poll reported, then commands and timers; `true`
    /// on [`Command::Stop`].
    fn turn(&mut self, events: &Events) -> bool {
        // One clock read per turn: its reads happen at about this moment.
        let now = TurnTime::now();
        for event in events.iter() {
            match event.token() {
                LISTENER => self.accept_all(),
                WAKER => {}
                Token(key) => {
                    if event.is_writable() {
                        self.on_writable(key);
                    }
                    if event.is_read_closed() || event.is_error() {
                        self.on_readable(key, now, ReadUntil::WouldBlock);
                    } else if event.is_readable() {
                        self.on_readable(key, now, ReadUntil::after_readable_event());
                    }
                }
            }
        }
        for key in std::mem::take(&mut self.unfinished_reads) {
            self.on_readable(key, now, ReadUntil::WouldBlock);
        }
        if self.run_commands(now) {
            return true;
        }
        // Read again: the turn's callbacks may have taken a while.
        let end = Instant::now();
        self.expire_handshakes(end);
        self.check_liveness(end);
        self.drain_due(end);
        if self
            .accept_paused_until
            .is_some_and(|until| until <= Instant::now())
        {
            self.accept_paused_until = None;
            self.accept_all();
        }
        false
    }

    /// How long the next poll may sleep: until the next handshake deadline
    /// or accept retry; not at all if a read turn is unfinished.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.unfinished_reads.is_empty() {
            return Some(Duration::ZERO);
        }
        let deadline = self.handshake_deadlines.front().map(|(at, _, _)| *at);
        let drain = match (&self.draining, self.connections.is_empty()) {
            (Some(draining), false) => Some(draining.next_close),
            _ => None,
        };
        [
            deadline,
            self.accept_paused_until,
            self.timers.next(),
            drain,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(Instant::now()))
    }

    fn accept_all(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        // Each loop handed a connection is woken once per accepting turn.
        let mut handed = vec![false; self.loops.len()];
        while let Some(listener) = &self.listener {
            match listener.accept() {
                Ok((stream, addr)) => {
                    if let Some(index) = self.accept(stream, addr) {
                        handed[index] = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    log_at!(
                        Error,
                        "accept failed: {e}; retrying in {} ms. Fix: if it says too many open files, raise the descriptor limit (ulimit -n) or set max_connection",
                        ACCEPT_BACKOFF.as_millis()
                    );
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    break;
                }
            }
        }
        for (index, _) in handed.iter().enumerate().filter(|(_, handed)| **handed) {
            self.loops.controls[index].wake();
        }
    }

    /// Sets a new connection up, then refuses it with `server_full`,
    /// adopts it, or hands it to the loop holding the fewest connections:
    /// that loop's index, to be woken.
    fn accept(&mut self, stream: TcpStream, addr: SocketAddr) -> Option<usize> {
        let _ = stream.set_nodelay(true);
        let prepared = crate::sys::prepare_stream(&stream)
            .and_then(|()| crate::sys::prepare_server_stream(&stream, READ_SLICE));
        if let Err(e) = prepared {
            log_at!(Error, "cannot set the connection from {addr} up: {e}");
            return None;
        }
        let config = self.server.config();
        if let Err(e) = config.liveness.apply_keepalive(&stream) {
            log_at!(Warn, "cannot set TCP keepalive on {addr}: {e}");
        }
        if let Some(max) = config.max_connection {
            if self.loops.total() >= max as usize {
                log_at!(Info, "refused {addr}: max_connection ({max}) reached");
                let _ = write_parts(&stream, &mut [&handshake::rejection("server_full"), &[]]);
                return None;
            }
        }
        let index = self.loops.least_loaded();
        self.loops.counted(index);
        if index == self.index {
            self.adopt(stream, addr);
            return None;
        }
        match self.loops.controls[index].queue(Command::Adopt { stream, addr }) {
            Ok(()) => Some(index),
            // That loop's thread is gone (it panicked, and logged why):
            // this one keeps the connection.
            Err(Command::Adopt { stream, addr }) => {
                self.loops.left(index);
                self.loops.counted(self.index);
                self.adopt(stream, addr);
                None
            }
            Err(_) => unreachable!("the command sent was Adopt"),
        }
    }

    /// Takes over a connection counted for this loop: greets it and starts
    /// its handshake clock.
    fn adopt(&mut self, stream: TcpStream, addr: SocketAddr) {
        if !self.greet(stream, addr) {
            self.loops.left(self.index);
        }
    }

    /// Registers a new connection, greets it and starts its handshake
    /// clock; whether it is now held.
    fn greet(&mut self, mut stream: TcpStream, addr: SocketAddr) -> bool {
        let config = self.server.config();
        let Some(id) = self.server.next_peer_id() else {
            log_at!(
                Error,
                "refused {addr}: this cluster node has used all its peer ids (never reused); restart it"
            );
            return false;
        };
        let entry = self.connections.vacant_entry();
        let key = entry.key();
        // Registered for good: the socket leaves the poll when it closes
        // (deregistering needs it exclusively, and callbacks may still
        // hold its peer). Events of a closed connection that come after
        // its key was reused are spurious events of the new one, which
        // the loop tolerates as mio requires.
        let watch = match PollWatch::register(&self.registry, &mut stream, Token(key)) {
            Ok(watch) => watch,
            Err(e) => {
                log_at!(Error, "cannot watch the connection from {addr}: {e}");
                return false;
            }
        };
        let max_outbound = config.max_outbound_bytes as usize;
        let control = self.control.clone();
        let budget = self.server.budget().clone();
        let backlog = Backlog::new(
            self.server.backlog_limits(),
            Some(budget.clone()),
            Some(Box::new(move || control.send(Command::Read { key, id }))),
        );
        let decoder = FrameDecoder::new(config.max_message_size, config.buffer_size as usize);
        let proxy_stage = match &config.proxy_protocol {
            None => ProxyStage::Done,
            Some(trusted) if trusted.trusts(addr.ip()) => ProxyStage::Required,
            Some(_) => ProxyStage::Forbidden,
        };
        let peer = Peer::new(
            id,
            addr,
            key,
            stream,
            max_outbound,
            backlog,
            ReadSide::new(decoder, Some(budget)).with_proxy(proxy_stage),
        )
        .watched_by(watch, self.control.clone());
        let peer = Arc::new(peer);
        if peer.send([&self.hello, &[]]).is_err() {
            return false;
        }
        entry.insert(Connection {
            peer,
            connected: false,
            read_closed: false,
        });
        let deadline = Instant::now() + config.handshake_timeout;
        self.handshake_deadlines.push_back((deadline, key, id));
        true
    }

    fn on_writable(&mut self, key: usize) {
        let Some(connection) = self.connections.get(key) else {
            return;
        };
        // Most writable events come with a readable one, with nothing to
        // write: no lock for them.
        if !connection.peer.awaits_writable() {
            return;
        }
        if let Err(e) = connection.peer.flush() {
            log_at!(Debug, "write to peer {} failed: {e}", connection.peer.id);
            self.close(key, DisconnectReason::Error, false);
        }
    }

    fn on_readable(&mut self, key: usize, now: TurnTime, until: ReadUntil) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        if connection.read_closed {
            return;
        }
        let was_connected = connection.connected;
        let peer = &connection.peer;
        let turn = {
            // Taken by a waiter: it reads these bytes itself.
            let Some(mut side) = peer.read_side_to_read() else {
                return;
            };
            let turn = side.read_turn(peer, &self.server, &mut self.spare, now, until);
            connection.connected = side.connected;
            turn
        };
        if !was_connected && connection.connected {
            let id = connection.peer.id;
            if let Some(at) = self.liveness_deadline(key) {
                self.timers.schedule(at, key, id);
            }
        }
        match turn {
            // The turn's last read may have passed the budget: no read
            // may come to find it.
            Turn::Drained | Turn::Paused if self.server.budget().exceeded() => {
                self.enforce_budget()
            }
            Turn::Drained | Turn::Paused => {}
            Turn::Unfinished => self.unfinished_reads.push(key),
            Turn::OverBudget => {
                self.enforce_budget();
                if self.connections.contains(key) {
                    self.unfinished_reads.push(key);
                }
            }
            Turn::ReadClosed => self.close_after_callbacks(key),
            Turn::Close(reason) => self.close(key, reason, false),
        }
    }

    /// The peer at `key` sent its last bytes (it may still read, as after
    /// `shutdown(SHUT_WR)`): the connection closes once the callbacks of
    /// what it sent have run, so their replies reach it. A peer still in
    /// its handshake closes at once.
    fn close_after_callbacks(&mut self, key: usize) {
        let connection = &mut self.connections[key];
        if !connection.connected {
            self.close(key, DisconnectReason::PeerClosed, false);
            return;
        }
        connection.read_closed = true;
        let (control, id) = (self.control.clone(), connection.peer.id);
        self.server.after_callbacks(
            &connection.peer,
            Box::new(move || {
                control.send(Command::Close {
                    key,
                    id,
                    reason: DisconnectReason::PeerClosed,
                })
            }),
        );
    }

    /// While the server holds more than its memory budget, disconnects the
    /// peer holding the most, whichever loop holds it (its message
    /// callbacks not yet started are dropped, so their memory goes at
    /// once). Peers holding nothing are never cut: what they would free is
    /// nothing.
    fn enforce_budget(&mut self) {
        let cut_here = {
            let _one_loop_at_a_time = self
                .loops
                .enforcing
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.choose_cuts()
        };
        // Closed once the lock is let go: their `on_disconnect` may run
        // here (callbacks on the I/O thread), and no user code runs while
        // a lock another loop may wait for is held.
        for key in cut_here {
            self.close(key, DisconnectReason::Error, true);
        }
    }

    /// Picks the peers to cut, largest first, until what is left would fit
    /// the budget: another loop's peers are cut now ([`Peer::cut`]); the
    /// keys of this loop's are returned, to be closed.
    fn choose_cuts(&self) -> Vec<usize> {
        let budget = self.server.budget();
        // Peers of other loops: those whose sends failed already (cut
        // here or by another loop) hold what their loop is about to free.
        let (leaving, mut others): (Vec<_>, Vec<_>) = self
            .peers_of_other_loops()
            .into_iter()
            .partition(|peer| peer.failure().is_some());
        let mut freeing: usize = leaving.iter().map(|peer| peer.held_in_budget()).sum();
        let mut cut_here = Vec::new();
        while budget.held().saturating_sub(freeing) > budget.limit() {
            let Some((held, holder)) = self.largest_holder(&others, &cut_here) else {
                break;
            };
            let peer = match &holder {
                Holder::Here(key) => &self.connections[*key].peer,
                Holder::Elsewhere(index) => &others[*index],
            };
            log_at!(
                Warn,
                "the server holds {} bytes for its peers, over max_memory_bytes ({}); disconnecting peer {} ({}), which holds the most ({held} bytes)",
                budget.held().saturating_sub(freeing),
                budget.limit(),
                peer.id,
                peer.addr
            );
            match holder {
                Holder::Here(key) => {
                    cut_here.push(key);
                    freeing += held;
                }
                Holder::Elsewhere(index) => {
                    // Its queues go at once; its read side when its loop
                    // closes it.
                    let peer = others.swap_remove(index);
                    peer.cut();
                    freeing += peer.held_in_budget();
                }
            }
        }
        cut_here
    }

    /// The connected peers other loops hold (none with one loop).
    fn peers_of_other_loops(&self) -> Vec<Arc<Peer>> {
        if self.loops.len() == 1 {
            return Vec::new();
        }
        let mut peers = self.server.connected_peers();
        peers.retain(|peer| !peer.is_held_by(&self.control));
        peers
    }

    /// The peer holding the most of the memory budget, and how much, among
    /// this loop's connections but those `chosen` already, and `others`;
    /// `None` if none holds anything.
    fn largest_holder(&self, others: &[Arc<Peer>], chosen: &[usize]) -> Option<(usize, Holder)> {
        let here = self
            .connections
            .iter()
            .filter(|(key, _)| !chosen.contains(key))
            .map(|(key, connection)| (connection.peer.held_in_budget(), key))
            .filter(|(held, _)| *held > 0)
            .max()
            .map(|(held, key)| (held, Holder::Here(key)));
        let elsewhere = others
            .iter()
            .enumerate()
            .map(|(index, peer)| (peer.held_in_budget(), index))
            .filter(|(held, _)| *held > 0)
            .max()
            .map(|(held, index)| (held, Holder::Elsewhere(index)));
        match (here, elsewhere) {
            (Some(here), Some(elsewhere)) if elsewhere.0 > here.0 => Some(elsewhere),
            (None, elsewhere) => elsewhere,
            (here, _) => here,
        }
    }

    /// Runs queued commands; `true` on [`Command::Stop`].
    fn run_commands(&mut self, now: TurnTime) -> bool {
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Close { key, id, reason } => {
                    if self.connections.get(key).is_some_and(|c| c.peer.id == id) {
                        self.close(key, reason, false);
                    }
                }
                Command::Read { key, id } => {
                    if self.connections.get(key).is_some_and(|c| c.peer.id == id) {
                        self.on_readable(key, now, ReadUntil::WouldBlock);
                    }
                }
                Command::Adopt { stream, addr } => self.adopt(stream, addr),
                Command::Write(peers) => Peer::write_handed(peers),
                Command::Drain {
                    interval,
                    first_after,
                } => self.start_draining(interval, first_after),
                Command::Stop => return true,
            }
        }
        false
    }

    /// Closes the listener, so that a load balancer sends new clients
    /// elsewhere, and starts closing the connections (see `drain_due`),
    /// the first after `first_after`.
    fn start_draining(&mut self, interval: Duration, first_after: Duration) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.registry.deregister(&mut listener);
            log_at!(
                Info,
                "draining: no longer accepting; closing {} connections, one every {} ms on each of {} I/O threads",
                self.loops.total(),
                interval.as_millis(),
                self.loops.len()
            );
        }
        self.accept_paused_until = None;
        let first = Instant::now() + first_after;
        let next_close = match &self.draining {
            // A new rate takes over from the next close on.
            Some(draining) => draining.next_close.min(first + interval),
            None => first,
        };
        self.draining = Some(Draining {
            interval,
            next_close,
        });
    }

    /// While draining, closes the connections whose turn has come, lowest
    /// key first, with reason `Manual` (their queued callbacks still run,
    /// so the replies they send go out first).
    fn drain_due(&mut self, now: Instant) {
        let Some(draining) = &mut self.draining else {
            return;
        };
        let interval = draining.interval;
        let mut next_close = draining.next_close;
        while next_close <= now {
            let Some(key) = self.connections.iter().map(|(key, _)| key).next() else {
                break;
            };
            self.close(key, DisconnectReason::Manual, false);
            next_close = match interval.is_zero() {
                true => now,
                false => next_close + interval,
            };
        }
        if let Some(draining) = &mut self.draining {
            draining.next_close = next_close;
        }
    }

    /// Runs `look` on the read side of the connection at `key`; `None`
    /// if there is none, or while a waiter reads it (see `lead.rs`). If
    /// bytes came meanwhile, the connection is read next turn.
    fn look_at_read_side<R>(
        &mut self,
        key: usize,
        look: impl FnOnce(&mut ReadSide, &Arc<Peer>, &ServerConfig) -> R,
    ) -> Option<R> {
        let peer = &self.connections.get(key)?.peer;
        let config = self.server.config();
        let looked = peer.look_at_read_side(|side| look(side, peer, config))?;
        if looked.must_read {
            self.unfinished_reads.push(key);
        }
        Some(looked.seen)
    }

    /// When the connection at `key` must be looked at again for its
    /// heartbeat or idle timeout; `None` if neither is on. While a waiter
    /// reads it, when its lead is over at the latest.
    fn liveness_deadline(&mut self, key: usize) -> Option<Instant> {
        let now = Instant::now();
        self.look_at_read_side(key, |side, _, config| side.liveness_deadline(config, now))
            .unwrap_or(Some(now + LEAD_LIMIT))
    }

    /// Handles the peers whose heartbeat or idle deadline has come: closes
    /// the dead and the idle, pings the silent, and schedules each again.
    fn check_liveness(&mut self, now: Instant) {
        while let Some((key, id)) = self.timers.pop_due(now) {
            let Some(connection) = self.connections.get(key) else {
                continue;
            };
            if connection.peer.id != id || !connection.connected {
                continue;
            }
            let checked = self.look_at_read_side(key, |side, peer, config| {
                side.check_liveness(peer, config, now)
            });
            match checked {
                Some(Liveness::Dead(why)) => {
                    let peer = &self.connections[key].peer;
                    log_at!(Info, "closed peer {id} ({}): {why}", peer.addr);
                    self.close(key, DisconnectReason::Error, false);
                    continue;
                }
                Some(Liveness::PingDue) => self.server.send_heartbeat(&self.connections[key].peer),
                Some(Liveness::Alive) | None => {}
            }
            if let Some(at) = self.liveness_deadline(key) {
                self.timers.schedule(at, key, id);
            }
        }
    }

    fn expire_handshakes(&mut self, now: Instant) {
        while let Some(&(deadline, key, id)) = self.handshake_deadlines.front() {
            if deadline > now {
                break;
            }
            self.handshake_deadlines.pop_front();
            let Some(connection) = self.connections.get(key) else {
                continue;
            };
            if connection.peer.id == id && !connection.connected {
                log_at!(
                    Info,
                    "closed {}: no handshake within {} ms",
                    connection.peer.addr,
                    self.server.config().handshake_timeout.as_millis()
                );
                self.close(key, DisconnectReason::Error, false);
            }
        }
    }

    /// Closes the connection at `key`. Queued bytes are written first if
    /// the close was asked for (`Manual`) or the peer closed (it may still
    /// read), and the socket takes them at once.
    /// With `drop_callbacks`, its message callbacks not yet started are
    /// dropped (`on_connect`/`on_disconnect` still run).
    fn close(&mut self, key: usize, reason: DisconnectReason, drop_callbacks: bool) {
        let Some(connection) = self.connections.try_remove(key) else {
            return;
        };
        self.loops.left(self.index);
        let flush_first = matches!(
            reason,
            DisconnectReason::Manual | DisconnectReason::PeerClosed
        );
        connection.peer.shut(flush_first);
        if drop_callbacks {
            connection.peer.lane.drop_queued();
        }
        if connection.connected {
            self.server.peer_disconnected(&connection.peer, reason);
        }
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use std::io::Read;
    use std::time::{Duration, Instant};

    use crate::server::test_peer::{raw_peer, server_with};
    use crate::server::ServerConfig;

    #[test]
    fn a_socket_is_watched_for_writability_only_while_bytes_wait_for_it() {
        let (server, port, _, _) = server_with(ServerConfig::default());
        let (mut stream, _decoder, id) = raw_peer(&server, port);
        let peer = server.peer(id).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        assert!(
            !peer.watched_for_writability(),
            "watched with nothing to write"
        );
        // The client does not read: the socket fills and bytes queue.
        let mut sent = 0;
        while !peer.awaits_writable() {
            server.send(id, 200, &chunk).unwrap();
            sent += 1;
            assert!(sent < 1000, "the socket never filled");
        }
        assert!(peer.watched_for_writability(), "bytes wait, unwatched");
        // The client reads everything: the queue empties on writable
        // events, and the watch ends with it.
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let deadline = Instant::now() + Duration::from_secs(10);
        while peer.awaits_writable() || peer.watched_for_writability() {
            assert!(Instant::now() < deadline, "still watched for writability");
            let _ = stream.read(&mut buf);
        }
        server.close();
    }
}
