//! One accepted connection as the server's users see it: its id, address
//! and tags, the lane its callbacks run in, and its send path.
//!
//! The send path writes from the calling thread (no hop to the I/O thread):
//! a frame goes straight to the non-blocking socket when nothing is queued
//! before it. What the socket does not take is queued, and the I/O thread
//! writes the queue when the socket becomes writable again, in one call for
//! many frames. The queue is bounded: a peer that stops reading is marked
//! failed once its queue would exceed the bound, and the I/O thread closes
//! it, so it can never stall the server or other peers.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};

use mio::net::TcpStream;
use scoped_tls::scoped_thread_local;

use crate::backlog::Backlog;
use crate::budget::{Account, Gauge};
use crate::disconnect::DisconnectReason;
use crate::stats::ConnectionStats;
use crate::workers::Lane;
use crate::writer::{write_parts, Parts};

use super::event_loop::{Command, Control};
use super::outbound::ChunkQueue;
use super::peer_tags::PeerTags;
use super::read_side::ReadSide;
use crate::sys::PollWatch;

/// Corked bytes of one peer written anyway once this many are queued.
pub(crate) const CORK_LIMIT: usize = 64 * 1024;

/// How many of another loop's peers an I/O thread's turn must hold back
/// for that loop to write them (see [`Peer::write_after_turn`]); fewer
/// are written by the turn's own thread at once, so that a relay to one
/// peer of another loop does not wait for that loop to wake.
const HAND_OFF_AT: usize = 8;

/// Whether a send may be held back by a cork (see [`Peer::run_corked`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cork {
    /// Replies and one-way sends.
    Allowed,
    /// Requests: their caller waits for the reply.
    Never,
}

scoped_thread_local! {
    /// The cork this thread holds while it runs a peer's message callbacks
    /// (see [`Peer::run_corked`]).
    static CORK: CorkSession
}

thread_local! {
    /// An I/O thread's turn with callbacks on it: the peers whose corked
    /// bytes wait for the turn's end (see [`Peer::write_after_turn`]).
    static TURN: RefCell<Option<Turn>> = const { RefCell::new(None) };
}

/// The writes an I/O thread's turn holds back.
struct Turn {
    id: u64,
    peers: Vec<Arc<Peer>>,
}

/// Writes the corked bytes of each of `peers`.
fn write_each(peers: Vec<Arc<Peer>>) {
    for peer in peers {
        // Its failure is its own: its I/O thread closes it.
        let _ = peer.write_corked();
    }
}

/// Writes the corked bytes of `peers`: those of the loop `own` reaches
/// (the caller's) here, and those of each other loop that holds
/// [`HAND_OFF_AT`] or more of them by that loop, handed over with one
/// wake-up.
fn write_or_hand_over(mut peers: Vec<Arc<Peer>>, own: &Arc<Control>) {
    for (control, mut theirs) in take_other_loops(&mut peers, own) {
        if theirs.len() < HAND_OFF_AT {
            write_each(theirs);
            continue;
        }
        // Those handed over before and not written yet will be written
        // with these bytes: pending hand-offs hold each peer once, however
        // long their loop is busy.
        theirs.retain(|peer| !peer.handed_over.swap(true, Ordering::AcqRel));
        if !theirs.is_empty() {
            control.write_on_its_turn(theirs);
        }
    }
    write_each(peers);
}

/// Held peers of one other loop, and how to reach it.
type OtherLoops = Vec<(Arc<Control>, Vec<Arc<Peer>>)>;

/// Takes the peers of loops other than the one `own` reaches out of
/// `peers`, by loop.
fn take_other_loops(peers: &mut Vec<Arc<Peer>>, own: &Arc<Control>) -> OtherLoops {
    let mut others: OtherLoops = Vec::new();
    peers.retain(|peer| {
        let Some(control) = peer.io_thread.as_ref().filter(|c| !Arc::ptr_eq(c, own)) else {
            return true;
        };
        match others.iter_mut().find(|(c, _)| Arc::ptr_eq(c, control)) {
            Some((_, theirs)) => theirs.push(peer.clone()),
            None => others.push((control.clone(), vec![peer.clone()])),
        }
        false
    });
    others
}

/// Runs `f` on this thread's cork session, if it has one.
fn with_session<R>(f: impl FnOnce(&CorkSession) -> R) -> Option<R> {
    CORK.is_set().then(|| CORK.with(f))
}

/// Which server a cork session runs callbacks of: the address of its
/// shared state (see [`super::Server::as_ptr`]), unique while it lives.
pub(crate) type ServerKey = usize;

/// A number for a new cork session, unique in the process, so a peer is
/// listed once per session: each thread takes a block of numbers at a
/// time, so sessions on different threads share no counter.
fn next_session_id() -> u64 {
    const BLOCK: u64 = 1 << 20;
    /// Blocks handed out; block 0 is never used (0 means no session).
    static BLOCKS: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static NEXT: Cell<u64> = const { Cell::new(0) };
    }
    NEXT.with(|next| {
        let mut id = next.get();
        if id % BLOCK == 0 {
            id = BLOCKS.fetch_add(1, Ordering::Relaxed) * BLOCK;
        }
        next.set(id + 1);
        id
    })
}

/// The sends a callback batch holds back: bytes for the peer whose
/// callbacks run, and for the other peers it sent to (a broadcast).
struct CorkSession {
    id: u64,
    /// The server whose callbacks run: another server's sends are corked
    /// too, but its broadcasts join no run and its peers are not `owner`.
    server: ServerKey,
    /// The peer whose callbacks run.
    owner: Arc<Peer>,
    /// Whether sends to the owner are corked too.
    owner_corked: bool,
    /// The other peers with bytes corked by this session.
    others: RefCell<Vec<Arc<Peer>>>,
    /// Broadcasts of `server` not yet copied to their receivers.
    run: RefCell<Option<BroadcastRun>>,
}

/// Broadcasts in a row from one cork session to the same receivers,
/// encoded once: appending one costs the same for 10 receivers or 1,000.
/// The run ends (each receiver's queue gets a copy of its bytes) before any
/// other send of the session, when the receivers may have changed, when it
/// holds [`CORK_LIMIT`] bytes, and when the session writes or ends.
pub(crate) struct BroadcastRun {
    /// The version of the server's peer table the receivers were read at.
    table_version: u64,
    receivers: Vec<Arc<Peer>>,
    frames: u64,
    bytes: Vec<u8>,
    /// Handles a receiver whose queue refuses the copy (it is then closed).
    on_failure: OnSendFailure,
}

/// What a [`BroadcastRun`] does with a receiver that refused its copy.
pub(crate) type OnSendFailure = Box<dyn Fn(&Arc<Peer>, SendError)>;

impl BroadcastRun {
    /// A run to `receivers`, read from the peer table at `table_version`;
    /// its first broadcast was already sent to each.
    pub fn new(table_version: u64, receivers: Vec<Arc<Peer>>, on_failure: OnSendFailure) -> Self {
        BroadcastRun {
            table_version,
            receivers,
            frames: 0,
            bytes: Vec::new(),
            on_failure,
        }
    }
}

/// A connected client of a server; never reused during the server's life.
pub type PeerId = u64;

/// The shared state of one connection.
pub(crate) struct Peer {
    pub id: PeerId,
    /// The address the connection came from (a load balancer's, behind
    /// one).
    pub addr: SocketAddr,
    /// The client's address from a trusted PROXY header, once read.
    client_addr: OnceLock<SocketAddr>,
    /// The connection's key in the I/O thread's table (its poll token).
    pub key: usize,
    pub stream: TcpStream,
    /// Callbacks of this peer run one at a time, in arrival order.
    pub lane: Lane,
    /// Its messages waiting for callbacks; full, the I/O thread stops
    /// reading it.
    pub backlog: Arc<Backlog>,
    outbound: Mutex<Outbound>,
    /// Part of the outbound queue was held back by a cork (not by a full
    /// socket): no writable event will come for it, so it must be written
    /// by the next send that is not corked, or when the cork is released.
    /// Written under the outbound lock; read without it by a batch's end,
    /// which needs only what its own thread or lane corked.
    corked: AtomicBool,
    /// Queued bytes wait for the socket to become writable (a write found
    /// it full): only then does a writable event need the lock. Set
    /// before the write is tried again, so an event that comes after that
    /// write sees it.
    blocked: AtomicBool,
    /// Whether `failed` is set in the outbound state, for a look without
    /// the lock.
    has_failed: AtomicBool,
    max_outbound: usize,
    /// Its tags (see `veltix_server_set_tag`).
    pub tags: PeerTags,
    /// Bytes and frames since the handshake, the last round trip.
    pub stats: ConnectionStats,
    /// Its read side: the I/O thread's for a read turn, or a thread's
    /// that waits for a reply from this peer.
    pub(super) read: Mutex<ReadSide>,
    /// The I/O thread had bytes to read and found the read side taken:
    /// the thread holding it reads them once it lets go.
    read_missed: AtomicBool,
    /// Changes what the I/O thread's poll watches the socket for, where
    /// the system lets other threads do so (Linux); elsewhere it is
    /// watched for bytes and writability, always.
    watch: Option<PollWatch>,
    /// How to reach the I/O thread that holds this connection (`None`
    /// only in unit tests).
    io_thread: Option<Arc<Control>>,
    /// The bytes its read side holds in the memory budget.
    inbound_held: Gauge,
    /// The last I/O thread turn that holds back this peer's corked bytes.
    held_for_turn: AtomicU64,
    /// Another loop's turn handed its corked bytes to this peer's loop,
    /// which has not written them yet: not handed again meanwhile.
    handed_over: AtomicBool,
    /// Times a thread with bytes to read found the read side taken.
    #[cfg(test)]
    pub reads_found_taken: AtomicU64,
}

struct Outbound {
    /// Bytes accepted for sending that the socket has not taken yet.
    queue: ChunkQueue,
    /// The last cork session that listed this peer among its others.
    listed_in: u64,
    /// Set when the connection failed or is closing: sends are refused.
    failed: Option<DisconnectReason>,
    /// The queue's memory, kept in the server's memory budget.
    account: Account,
    /// What the I/O thread's poll watches the socket for, where other
    /// threads change it (the peer's `watch`).
    watched: Watched,
}

/// What the I/O thread's poll watches a socket for.
#[derive(Default)]
struct Watched {
    /// Nothing: a thread waiting for its reply reads the socket itself.
    paused: bool,
    /// Writability too: bytes wait for the socket to take them.
    writable: bool,
}

/// Ends this thread's broadcast run, if any: each receiver's queue gets a
/// copy of the run's bytes.
fn end_broadcast_run() {
    let Some(Some(run)) = with_session(|session| session.run.take()) else {
        return;
    };
    if run.frames == 0 {
        return;
    }
    for receiver in &run.receivers {
        if let Err(error) = receiver.send_frames([&run.bytes, &[]], Cork::Allowed, run.frames) {
            (run.on_failure)(receiver, error);
        }
    }
}

impl Outbound {
    /// Drops the queue (the connection failed or closed).
    fn clear(&mut self) {
        self.queue.clear();
        self.account.set(0);
    }
}

/// What [`Peer::look_at_read_side`] saw, and whether the caller must now
/// read the peer: bytes came while it looked.
pub(super) struct Looked<R> {
    pub seen: R,
    pub must_read: bool,
}

/// Why a send was refused.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The connection is closed or closing.
    Closed,
    /// The peer does not read: queueing would exceed the bound.
    Overflow { queued: usize },
    /// The peer does not read, and queueing would pass the server's memory
    /// budget.
    OverBudget { queued: usize },
    /// The socket failed.
    Io(io::Error),
}

impl Peer {
    pub(super) fn new(
        id: PeerId,
        addr: SocketAddr,
        key: usize,
        stream: TcpStream,
        max_outbound: usize,
        backlog: Arc<Backlog>,
        mut read: ReadSide,
    ) -> Self {
        let inbound_held = read.held_gauge();
        Peer {
            id,
            addr,
            client_addr: OnceLock::new(),
            key,
            stream,
            lane: Lane::default(),
            backlog,
            outbound: Mutex::new(Outbound {
                queue: ChunkQueue::default(),
                listed_in: 0,
                failed: None,
                account: read.new_account(),
                watched: Watched::default(),
            }),
            max_outbound,
            tags: PeerTags::default(),
            stats: ConnectionStats::new(),
            corked: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            has_failed: AtomicBool::new(false),
            read: Mutex::new(read),
            read_missed: AtomicBool::new(false),
            watch: None,
            io_thread: None,
            inbound_held,
            held_for_turn: AtomicU64::new(0),
            handed_over: AtomicBool::new(false),
            #[cfg(test)]
            reads_found_taken: AtomicU64::new(0),
        }
    }

    /// The client's address: from a trusted PROXY header if the connection
    /// carried one, else the connection's own.
    pub fn client_address(&self) -> SocketAddr {
        self.client_addr.get().copied().unwrap_or(self.addr)
    }

    /// Records the client's address read from a trusted PROXY header.
    pub fn set_client_address(&self, address: SocketAddr) {
        let _ = self.client_addr.set(address);
    }

    /// This peer, its socket registered with the I/O thread's poll
    /// through `watch`, that I/O thread reached through `control`.
    pub(super) fn watched_by(self, watch: Option<PollWatch>, control: Arc<Control>) -> Self {
        Peer {
            watch,
            io_thread: Some(control),
            ..self
        }
    }

    /// Asks the I/O thread that holds this connection to close it.
    pub(super) fn ask_to_close(&self, reason: DisconnectReason) {
        self.ask_io_thread(Command::Close {
            key: self.key,
            id: self.id,
            reason,
        });
    }

    /// Whether the I/O thread reached through `control` holds this
    /// connection.
    pub(super) fn is_held_by(&self, control: &Arc<Control>) -> bool {
        self.io_thread
            .as_ref()
            .is_some_and(|own| Arc::ptr_eq(own, control))
    }

    /// Cuts this peer to bring the server back under its memory budget,
    /// from a thread other than its I/O thread: sends are refused, its
    /// queued bytes and its message callbacks not yet started are dropped
    /// now, and its I/O thread is asked to close it, which frees what its
    /// read side holds.
    pub(super) fn cut(&self) {
        self.drop_outbound(DisconnectReason::Error);
        self.lane.drop_queued();
        self.ask_to_close(DisconnectReason::Error);
    }

    /// The bytes held for this peer in the server's memory budget: its
    /// partial inbound frame, its messages queued for callbacks and its
    /// queued outbound bytes. Read from any thread, without waiting for
    /// the one that reads it.
    pub(super) fn held_in_budget(&self) -> usize {
        self.inbound_held.load(Ordering::Relaxed) + self.backlog.bytes() + self.outbound_held()
    }

    /// Asks the I/O thread that holds this connection to read it.
    pub(super) fn ask_to_read(&self) {
        self.ask_io_thread(Command::Read {
            key: self.key,
            id: self.id,
        });
    }

    /// Sends `command` to this connection's I/O thread (ignored once that
    /// thread has ended: the server was closed).
    fn ask_io_thread(&self, command: Command) {
        if let Some(control) = &self.io_thread {
            control.send(command);
        }
    }

    /// Stops the I/O thread's poll from reporting this socket: a thread
    /// waiting for its reply reads it itself, and the reply must not wake
    /// the I/O thread too. Without a watch, nothing changes.
    pub(super) fn pause_watch(&self) {
        if let Some(watch) = &self.watch {
            let mut out = self.outbound();
            out.watched.paused = true;
            watch.pause();
        }
    }

    /// Undoes [`Peer::pause_watch`]: what came meanwhile is reported at
    /// once.
    pub(super) fn resume_watch(&self) {
        if let Some(watch) = &self.watch {
            let mut out = self.outbound();
            out.watched.paused = false;
            watch.watch(out.watched.writable);
        }
    }

    /// Whether the I/O thread's poll watches the socket for writability.
    #[cfg(all(test, any(target_os = "linux", target_os = "android")))]
    pub(super) fn watched_for_writability(&self) -> bool {
        self.outbound().watched.writable
    }

    /// Watches the socket for writability too, or no longer.
    fn watch_writable(&self, out: &mut Outbound, writable: bool) {
        let Some(watch) = &self.watch else {
            return;
        };
        if out.watched.writable != writable {
            out.watched.writable = writable;
            if !out.watched.paused {
                watch.watch(writable);
            }
        }
    }

    /// Its read side, unless another thread holds it.
    pub(super) fn try_read_side(&self) -> Option<MutexGuard<'_, ReadSide>> {
        match self.read.try_lock() {
            Ok(side) => Some(side),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Its read side, for a thread with bytes to read (readiness the I/O
    /// thread was told of): `None` if another thread holds it, which is
    /// then told to read them once it lets go.
    pub(super) fn read_side_to_read(&self) -> Option<MutexGuard<'_, ReadSide>> {
        self.try_read_side().or_else(|| {
            #[cfg(test)]
            self.reads_found_taken.fetch_add(1, Ordering::Relaxed);
            self.read_missed.store(true, Ordering::SeqCst);
            // Either the holder, letting go, sees the flag, or this sees
            // that it let go (see `read_side_after_missed_read`).
            fence(Ordering::SeqCst);
            self.try_read_side()
        })
    }

    /// For a thread that just let go of the read side: the read side
    /// again if a thread with bytes to read found it taken meanwhile
    /// (the caller must read them), unless yet another thread holds it,
    /// which is then told instead.
    pub(super) fn read_side_after_missed_read(&self) -> Option<MutexGuard<'_, ReadSide>> {
        fence(Ordering::SeqCst);
        if !self.read_missed.swap(false, Ordering::SeqCst) {
            return None;
        }
        self.read_side_to_read()
    }

    /// Its read side, for a thread that will not read: the I/O thread
    /// taking a look between read turns, which must never wait for a
    /// waiter's lead (see `lead.rs`). `None` while a waiter holds it.
    pub(super) fn look_at_read_side<R>(
        &self,
        look: impl FnOnce(&mut ReadSide) -> R,
    ) -> Option<Looked<R>> {
        let seen = look(&mut *self.try_read_side()?);
        // A read handed on to the I/O thread's look while it held it.
        let must_read = self.read_side_after_missed_read().is_some();
        Some(Looked { seen, must_read })
    }

    /// Sends `parts` (a frame's header and payload, or a handshake message
    /// and nothing) in order, never interleaved with another send. On
    /// overflow or a socket error the peer is marked failed; the caller has
    /// the I/O thread close it.
    pub fn send(self: &Arc<Self>, parts: Parts<'_>) -> Result<(), SendError> {
        self.send_with(parts, Cork::Allowed)
    }

    /// As [`Peer::send`]; with [`Cork::Never`] the frame is never held
    /// back (a request whose caller waits for the reply would otherwise
    /// wait for itself).
    pub fn send_with(self: &Arc<Self>, parts: Parts<'_>, cork: Cork) -> Result<(), SendError> {
        self.send_frames(parts, cork, 1)
    }

    /// Sends `parts`, which hold `frames` whole frames, as [`Peer::send_with`].
    fn send_frames(
        self: &Arc<Self>,
        mut parts: Parts<'_>,
        cork: Cork,
        frames: u64,
    ) -> Result<(), SendError> {
        let (session, run_open) = with_session(|session| {
            let run_open = session.run.borrow().is_some();
            match !session.owner_corked && Arc::ptr_eq(&session.owner, self) {
                true => (None, run_open),
                false => (Some(session.id), run_open),
            }
        })
        .unwrap_or((None, false));
        if run_open {
            // This session's earlier broadcasts go first.
            end_broadcast_run();
        }
        let session = match cork {
            Cork::Allowed => session,
            Cork::Never => None,
        };
        let corking = session.is_some();
        let mut out = self.outbound();
        if out.failed.is_some() {
            return Err(SendError::Closed);
        }
        let frame_len = parts[0].len() + parts[1].len();
        if out.queue.len() == 0 && !corking {
            let stream = &self.stream;
            match stream.try_io(|| write_parts(stream, &mut parts)) {
                Ok(()) => {
                    // Every send holds `out`.
                    self.stats.frames_sent_serialized(frames, frame_len);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    self.fail(&mut out, DisconnectReason::Error);
                    return Err(SendError::Io(e));
                }
            }
        }
        // A direct write that found the socket full queues the rest and
        // writes the queue, which flags it for the writable event.
        let socket_full = out.queue.len() == 0 && !corking;
        let adding = parts[0].len() + parts[1].len();
        let queued = out.queue.len() + adding;
        if queued > self.max_outbound {
            self.fail(&mut out, DisconnectReason::Error);
            out.clear();
            return Err(SendError::Overflow { queued });
        }
        if !out.account.may_grow(adding) {
            self.fail(&mut out, DisconnectReason::Error);
            out.clear();
            return Err(SendError::OverBudget { queued });
        }
        for part in parts {
            out.queue.push(part);
        }
        let held = out.queue.held();
        out.account.set(held);
        let write_now = match session {
            Some(session) => {
                self.corked.store(true, Ordering::Release);
                if out.listed_in != session {
                    out.listed_in = session;
                    self.list_in_cork();
                }
                out.queue.len() >= CORK_LIMIT
            }
            // Corked bytes ahead of ours wait for no writable event.
            None => self.corked.load(Ordering::Acquire) || socket_full,
        };
        if write_now {
            self.write_queue(&mut out).map_err(SendError::Io)?;
        }
        self.stats.frames_sent_serialized(frames, frame_len);
        Ok(())
    }

    /// Whether queued bytes wait for the socket to become writable (then
    /// the I/O thread flushes them; corked ones wait for their batch).
    pub fn awaits_writable(&self) -> bool {
        self.blocked.load(Ordering::SeqCst)
    }

    /// Writes queued bytes until the socket is full or the queue empty (the
    /// I/O thread, when the socket becomes writable).
    pub fn flush(&self) -> io::Result<()> {
        let mut out = self.outbound();
        self.write_queue(&mut out)
    }

    /// Runs `callback` (this peer's message callbacks, one batch) on this
    /// worker thread with sends corked: instead of a write each, they
    /// gather in their peers' outbound queues (up to [`CORK_LIMIT`] each).
    /// At the end, what was queued for other peers (a broadcast) is
    /// written, one write per peer; what was queued for this peer is
    /// written too, unless `more_follow` says another batch of its
    /// callbacks is queued, whose end writes it: a pipelining client's
    /// replies go out in one write per batch. Sends that must not wait
    /// (requests, pings) are never corked. Without `cork_owner`, sends to
    /// this peer are written at once, as outside a batch (a batch of one
    /// message, with nothing after it to join); what an earlier batch left
    /// corked for it is still written at the end.
    pub fn run_corked(
        self: &Arc<Self>,
        server: ServerKey,
        more_follow: impl Fn() -> bool,
        cork_owner: bool,
        callback: impl FnOnce(),
    ) -> io::Result<()> {
        let session = CorkSession {
            id: next_session_id(),
            server,
            owner: self.clone(),
            owner_corked: cork_owner,
            others: RefCell::default(),
            run: RefCell::default(),
        };
        let outcome = CORK.set(&session, || {
            // A panicking callback still releases the cork (then the panic
            // goes on to the worker's guard), so no corked byte is stranded.
            let outcome = panic::catch_unwind(AssertUnwindSafe(callback));
            // While the session is on: the copies are corked like other sends.
            end_broadcast_run();
            outcome
        });
        for other in session.others.into_inner() {
            other.write_after_this_turn();
        }
        let written = match more_follow() {
            true => Ok(()),
            false => self.write_corked(),
        };
        if let Err(panicked) = outcome {
            panic::resume_unwind(panicked);
        }
        written
    }

    /// Runs `turn` (an I/O thread's turn, whose callbacks run on it) with
    /// the bytes its callbacks send to peers other than the one whose
    /// message they handle held back until it ends: then each such peer
    /// gets one write for the whole turn, however many peers' callbacks
    /// sent to it (game state fan-out: many senders, each broadcasting).
    /// A peer's own replies are not held (see [`Peer::run_corked`]).
    ///
    /// The held peers of another loop (`own` reaches this one) are handed
    /// to it, one command and one wake-up per turn, so that each loop
    /// writes its own receivers and a receiver gets one write per round
    /// whichever loops its senders are on (see [`write_or_hand_over`]).
    pub(super) fn write_after_turn<T>(own: &Arc<Control>, turn: impl FnOnce() -> T) -> T {
        TURN.with(|current| {
            *current.borrow_mut() = Some(Turn {
                id: next_session_id(),
                peers: Vec::new(),
            })
        });
        // Ends the turn even if `turn` panics: its held bytes are written
        // and no turn is left open on this thread.
        struct EndTurn<'a>(&'a Arc<Control>);
        impl Drop for EndTurn<'_> {
            fn drop(&mut self) {
                let held = TURN.with(|current| current.borrow_mut().take());
                write_or_hand_over(held.map(|turn| turn.peers).unwrap_or_default(), self.0);
            }
        }
        let _end = EndTurn(own);
        turn()
    }

    /// Leaves this peer's corked bytes to the end of the calling I/O
    /// thread's turn, if it is in one (listed once per turn); whether it
    /// did.
    fn hold_for_turn(self: &Arc<Self>) -> bool {
        TURN.with(|current| {
            let mut current = current.borrow_mut();
            let Some(turn) = current.as_mut() else {
                return false;
            };
            if self.held_for_turn.swap(turn.id, Ordering::Relaxed) != turn.id {
                turn.peers.push(self.clone());
            }
            true
        })
    }

    /// Writes the corked bytes of `peers`, which another I/O thread's turn
    /// handed to this one: at the end of this thread's turn if it is in
    /// one.
    pub(super) fn write_handed(peers: Vec<Arc<Peer>>) {
        for peer in peers {
            // Bytes corked from now on are handed over again.
            peer.handed_over.store(false, Ordering::Release);
            peer.write_after_this_turn();
        }
    }

    /// Writes the corked bytes at the end of the calling I/O thread's
    /// turn if it is in one, else now.
    fn write_after_this_turn(self: &Arc<Self>) {
        if !self.hold_for_turn() {
            // Its failure is its own: its I/O thread closes it.
            let _ = self.write_corked();
        }
    }

    /// Writes what this thread's cork session holds so far, if it has one
    /// (before its callback blocks); the session goes on.
    pub fn write_cork() {
        end_broadcast_run();
        let corked: Vec<Arc<Peer>> = with_session(|session| {
            std::iter::once(&session.owner)
                .chain(session.others.borrow().iter())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
        write_each(corked);
    }

    /// Writes the queue if part of it was held back by a cork.
    fn write_corked(&self) -> io::Result<()> {
        // Without the lock first: usually nothing is corked.
        if !self.corked.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut out = self.outbound();
        match self.corked.load(Ordering::Acquire) {
            true => self.write_queue(&mut out),
            false => Ok(()),
        }
    }

    /// Adds a broadcast of `frame` (header and payload) to this thread's
    /// run, if its session has one to the receivers of `server` at
    /// `table_version`: the number of receivers. `None` when the caller
    /// must send it peer by peer (and may then start a run with
    /// [`Peer::start_broadcast_run`]).
    pub fn add_to_broadcast_run(
        server: ServerKey,
        table_version: u64,
        frame: Parts<'_>,
    ) -> Option<usize> {
        let frame_len = frame[0].len() + frame[1].len();
        let (receivers, full) = with_session(|session| {
            if session.server != server {
                return None;
            }
            let mut run = session.run.borrow_mut();
            let run = run.as_mut()?;
            if run.table_version != table_version || frame_len >= CORK_LIMIT {
                return Some((None, true));
            }
            for part in frame {
                run.bytes.extend_from_slice(part);
            }
            run.frames += 1;
            Some((Some(run.receivers.len()), run.bytes.len() >= CORK_LIMIT))
        })
        .flatten()?;
        if full {
            end_broadcast_run();
        }
        receivers
    }

    /// Whether this thread runs callbacks of `server` (with their sends
    /// corked).
    pub fn in_cork_session_of(server: ServerKey) -> bool {
        with_session(|session| session.server == server).unwrap_or(false)
    }

    /// Opens a run for the next broadcasts of this thread's cork session,
    /// if it has one (see [`BroadcastRun`]; the caller checked that it
    /// runs callbacks of the broadcasting server).
    pub fn start_broadcast_run(run: BroadcastRun) {
        with_session(|session| *session.run.borrow_mut() = Some(run));
    }

    /// Runs `f` with the peer `id` of `server` if this thread runs its
    /// callbacks, else with `None`: what a reply from a callback finds
    /// without a look-up in the server's table.
    pub fn with_running<T>(
        server: ServerKey,
        id: PeerId,
        f: impl FnOnce(Option<&Arc<Peer>>) -> T,
    ) -> T {
        match CORK.is_set() {
            true => CORK.with(|session| {
                f((session.server == server && session.owner.id == id).then_some(&session.owner))
            }),
            false => f(None),
        }
    }

    /// Lists this peer in the thread's cork session, to be written at its
    /// end (the session's owner is written then anyway).
    fn list_in_cork(self: &Arc<Self>) {
        with_session(|session| {
            if !Arc::ptr_eq(&session.owner, self) {
                session.others.borrow_mut().push(self.clone());
            }
        });
    }

    /// Marks the connection failed for `reason`, unless it already failed
    /// for another: sends are refused from now on.
    fn fail(&self, out: &mut Outbound, reason: DisconnectReason) {
        out.failed.get_or_insert(reason);
        self.has_failed.store(true, Ordering::Release);
    }

    /// Writes the queue until the socket is full or the queue empty; a
    /// socket error marks the peer failed.
    fn write_queue(&self, out: &mut Outbound) -> io::Result<()> {
        self.corked.store(false, Ordering::Release);
        let result = loop {
            let stream = &self.stream;
            match stream.try_io(|| out.queue.write_to(stream)) {
                // A writable event that came between the full socket and
                // the flag saw no flag: try once more with it set (SeqCst:
                // the I/O thread reads it after the event's system call).
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        && !self.blocked.swap(true, Ordering::SeqCst) =>
                {
                    self.watch_writable(out, true)
                }
                result => break result,
            }
        };
        if out.queue.len() == 0 {
            self.blocked.store(false, Ordering::SeqCst);
            self.watch_writable(out, false);
        }
        let held = out.queue.held();
        out.account.set(held);
        match result {
            Ok(()) => Ok(()),
            // The rest goes when the socket is writable again.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => {
                self.fail(out, DisconnectReason::Error);
                Err(e)
            }
        }
    }

    /// Bytes queued for sending, as the memory budget counts them.
    pub fn outbound_held(&self) -> usize {
        self.outbound().account.held()
    }

    /// Why the connection failed on a send, if it did.
    pub fn failure(&self) -> Option<DisconnectReason> {
        // Without the lock first: the I/O thread asks after every read.
        if !self.has_failed.load(Ordering::Acquire) {
            return None;
        }
        self.outbound().failed
    }

    /// Refuses further sends (`reason` is kept unless a failure came first).
    pub fn refuse_sends(&self, reason: DisconnectReason) {
        let mut out = self.outbound();
        self.fail(&mut out, reason);
    }

    /// Ends the connection (the I/O thread, after taking it out of its
    /// table): queued bytes are written if the socket takes them at once,
    /// then both directions are shut, so other holders of the peer fail
    /// fast. What it held in the memory budget is freed now (but a partial
    /// frame a waiter reads, until it lets go), not when its last holder
    /// lets go of it.
    pub fn shut(&self, flush_first: bool) {
        if flush_first {
            let _ = self.flush();
        }
        self.drop_outbound(DisconnectReason::Manual);
        if let Some(mut side) = self.try_read_side() {
            side.discard_inbound();
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Refuses further sends (for `reason`, unless a failure came first)
    /// and drops the queued bytes.
    fn drop_outbound(&self, reason: DisconnectReason) {
        let mut out = self.outbound();
        self.fail(&mut out, reason);
        out.clear();
    }

    fn outbound(&self) -> MutexGuard<'_, Outbound> {
        self.outbound.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pair(max_outbound: usize) -> (Arc<Peer>, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let remote = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (local, addr) = listener.accept().unwrap();
        local.set_nonblocking(true).unwrap();
        let limits = crate::backlog::BacklogLimits {
            messages: 1,
            bytes: 1,
        };
        let peer = Peer::new(
            1,
            addr,
            0,
            TcpStream::from_std(local),
            max_outbound,
            Backlog::new(limits, None, None),
            ReadSide::new(crate::protocol::FrameDecoder::new(1 << 20, 1024), None),
        );
        (Arc::new(peer), remote)
    }

    #[test]
    fn a_peer_that_does_not_read_overflows_its_bound_and_is_refused() {
        let (peer, remote) = pair(1 << 20);
        let chunk = vec![7u8; 64 * 1024];
        let mut overflowed = false;
        for _ in 0..1000 {
            match peer.send([&chunk, &[]]) {
                Ok(()) => {}
                Err(SendError::Overflow { queued }) => {
                    assert!(queued > 1 << 20);
                    overflowed = true;
                    break;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(overflowed, "the bound was never hit");
        assert_eq!(peer.failure(), Some(DisconnectReason::Error));
        assert!(matches!(peer.send([b"x", &[]]), Err(SendError::Closed)));
        drop(remote);
    }

    /// Reads what `remote` has within 100 ms.
    fn available(remote: &mut std::net::TcpStream) -> Vec<u8> {
        remote
            .set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .unwrap();
        let mut buf = vec![0u8; 1 << 16];
        match remote.read(&mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(_) => Vec::new(),
        }
    }

    /// A peer held by the I/O thread reached through `control`, and its
    /// client's end.
    fn pair_on(control: &Arc<Control>) -> (Arc<Peer>, std::net::TcpStream) {
        let (peer, remote) = pair(1 << 20);
        let peer = Arc::into_inner(peer).unwrap();
        (Arc::new(peer.watched_by(None, control.clone())), remote)
    }

    /// Runs a callback batch of another peer that sends `bytes` to each
    /// of `to`.
    fn batch_sending<'a>(to: impl IntoIterator<Item = &'a Arc<Peer>>, bytes: &[u8]) {
        let (owner, _client) = pair(1 << 20);
        let send_to_each = || {
            for peer in to {
                peer.send([bytes, &[]]).unwrap();
            }
        };
        owner.run_corked(0, || false, false, send_to_each).unwrap();
    }

    /// Runs a turn of the I/O thread reached through `own` in which a
    /// callback sends `bytes` to each of `to`.
    fn turn_sending(own: &Arc<Control>, to: &[(Arc<Peer>, std::net::TcpStream)], bytes: &[u8]) {
        Peer::write_after_turn(own, || {
            batch_sending(to.iter().map(|(peer, _)| peer), bytes)
        });
    }

    #[test]
    fn a_turn_writes_its_own_peers_at_its_end_and_hands_many_of_another_loop_to_it() {
        let (here, _, _here_poll) = Control::detached();
        let (there, there_commands, _there_poll) = Control::detached();
        let (mine, mut mine_remote) = pair_on(&here);
        let mut far: Vec<_> = (0..HAND_OFF_AT).map(|_| pair_on(&there)).collect();
        Peer::write_after_turn(&here, || {
            batch_sending(far.iter().map(|(peer, _)| peer).chain([&mine]), b"hi");
            assert!(
                available(&mut mine_remote).is_empty(),
                "held to the turn's end"
            );
        });
        assert_eq!(available(&mut mine_remote), b"hi");
        for (_, remote) in far.iter_mut().step_by(HAND_OFF_AT - 1) {
            assert!(available(remote).is_empty(), "written by the wrong loop");
        }
        let Ok(Command::Write(handed)) = there_commands.try_recv() else {
            panic!("nothing handed to the other loop");
        };
        assert_eq!(handed.len(), far.len());
        assert!(there_commands.try_recv().is_err(), "one hand-off per turn");
        // Until that loop writes them, they are not handed again: a loop
        // stuck in a long callback holds each of its peers once at most.
        turn_sending(&here, &far, b"again");
        assert!(there_commands.try_recv().is_err(), "handed twice");
        // Nor after a turn wrote a few of them itself.
        turn_sending(&here, &far[..1], b"few");
        assert_eq!(available(&mut far[0].1), b"hiagainfew");
        turn_sending(&here, &far, b"!");
        assert!(there_commands.try_recv().is_err(), "handed twice");
        Peer::write_handed(handed);
        assert_eq!(available(&mut far[0].1), b"!");
        assert_eq!(available(&mut far[HAND_OFF_AT - 1].1), b"hiagain!");
        turn_sending(&here, &far, b"more");
        assert!(
            matches!(there_commands.try_recv(), Ok(Command::Write(again)) if again.len() == far.len()),
            "written, then handed again"
        );
    }

    #[test]
    fn a_turn_writes_a_few_peers_of_another_loop_itself_and_all_once_that_loop_is_gone() {
        let (here, _, _here_poll) = Control::detached();
        let (there, there_commands, _there_poll) = Control::detached();
        let mut few: Vec<_> = (0..HAND_OFF_AT - 1).map(|_| pair_on(&there)).collect();
        turn_sending(&here, &few, b"few");
        assert_eq!(available(&mut few[0].1), b"few", "written at once");
        assert!(there_commands.try_recv().is_err(), "nothing handed");
        drop(there_commands);
        let mut many: Vec<_> = (0..HAND_OFF_AT).map(|_| pair_on(&there)).collect();
        turn_sending(&here, &many, b"many");
        for (_, remote) in many.iter_mut().step_by(HAND_OFF_AT - 1) {
            assert_eq!(available(remote), b"many", "its loop is gone");
        }
    }

    #[test]
    fn session_ids_are_unique_across_threads_and_never_0() {
        let ids = |n| (0..n).map(|_| next_session_id()).collect::<Vec<_>>();
        let mut all = ids(1 << 21);
        all.extend(std::thread::spawn(move || ids(1000)).join().unwrap());
        assert!(!all.contains(&0));
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count);
    }

    #[test]
    fn corked_sends_wait_for_the_last_callback_or_the_limit_and_requests_never_do() {
        let (peer, mut remote) = pair(1 << 20);
        // More callbacks follow: held back.
        peer.run_corked(0, || true, true, || peer.send([b"one", &[]]).unwrap())
            .unwrap();
        assert!(available(&mut remote).is_empty(), "held while more follow");
        // A request is not held, and takes the corked bytes with it.
        peer.run_corked(
            0,
            || true,
            true,
            || peer.send_with([b"ask", &[]], Cork::Never).unwrap(),
        )
        .unwrap();
        assert_eq!(available(&mut remote), b"oneask");
        // The last callback of a batch writes what it corked.
        peer.run_corked(0, || true, true, || peer.send([b"two", &[]]).unwrap())
            .unwrap();
        peer.run_corked(0, || false, true, || peer.send([b"three", &[]]).unwrap())
            .unwrap();
        assert_eq!(available(&mut remote), b"twothree");
        // Past the limit, corked bytes are written anyway.
        let big = vec![1u8; CORK_LIMIT];
        peer.run_corked(0, || true, true, || peer.send([&big, &[]]).unwrap())
            .unwrap();
        let mut got = 0;
        while got < CORK_LIMIT {
            let chunk = available(&mut remote);
            assert!(!chunk.is_empty(), "the limit forces the write");
            got += chunk.len();
        }
    }

    #[test]
    fn without_cork_owner_sends_to_the_owner_are_written_at_once() {
        let (peer, mut remote) = pair(1 << 20);
        let (other, mut other_remote) = pair(1 << 20);
        peer.run_corked(
            0,
            || true,
            false,
            || {
                peer.send([b"reply", &[]]).unwrap();
                assert_eq!(available(&mut remote), b"reply", "not held");
                other.send([b"other", &[]]).unwrap();
                assert!(available(&mut other_remote).is_empty(), "others corked");
            },
        )
        .unwrap();
        assert_eq!(available(&mut other_remote), b"other");
    }

    #[test]
    fn a_batch_that_does_not_cork_its_owner_still_writes_what_an_earlier_one_corked() {
        let (peer, mut remote) = pair(1 << 20);
        // More followed: held back for the next batch to write.
        peer.run_corked(0, || true, true, || peer.send([b"one", &[]]).unwrap())
            .unwrap();
        assert!(available(&mut remote).is_empty());
        // The next batch (a lone message) sends nothing to its owner.
        peer.run_corked(0, || false, false, || {}).unwrap();
        assert_eq!(available(&mut remote), b"one");
    }

    #[test]
    fn a_panicking_callback_still_releases_its_cork() {
        let (peer, mut remote) = pair(1 << 20);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            peer.run_corked(
                0,
                || false,
                true,
                || {
                    peer.send([b"before the panic", &[]]).unwrap();
                    panic!("a callback bug");
                },
            )
        }));
        assert!(outcome.is_err(), "the panic goes on");
        assert_eq!(available(&mut remote), b"before the panic");
        assert!(!CORK.is_set(), "the thread is uncorked");
    }

    #[test]
    fn queued_bytes_arrive_in_order_after_flushes() {
        let (peer, mut remote) = pair(64 << 20);
        let frames: Vec<Vec<u8>> = (0..400u32)
            .map(|i| {
                let mut frame = i.to_be_bytes().to_vec();
                frame.resize(4 + (i as usize * 997) % 40_000, i as u8);
                frame
            })
            .collect();
        for frame in &frames {
            peer.send([&frame[..4], &frame[4..]]).unwrap();
        }
        let expected: Vec<u8> = frames.concat();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; expected.len()];
            remote.read_exact(&mut got).unwrap();
            assert!(got == expected, "bytes differ");
        });
        while !reader.is_finished() {
            peer.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        reader.join().unwrap();
    }
}
