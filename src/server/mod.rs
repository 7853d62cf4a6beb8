//! The Veltix server: an event-driven server built on [`crate::protocol`],
//! wire-compatible with the reference's clients.
//!
//! Threads: one I/O thread per `io_threads` ([`event_loop`]) runs a mio
//! event loop over its share of the connections (the first over the
//! listener too), and a pool of `max_workers` threads runs
//! the callbacks, each peer's in its own lane (in arrival order). Sends write
//! from the calling thread ([`peer`]). Every method may be called from any
//! thread, including from inside a callback; none holds a lock while user
//! code runs.

mod cluster;
mod config;
mod dispatch;
mod event_loop;
mod handlers;
mod lead;
mod outbound;
mod peer;
mod peer_table;
mod peer_tags;
mod proxy;
mod read_side;
#[cfg(test)]
mod test_peer;
mod timers;

use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use config::{ServerConfig, DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_OUTBOUND_BYTES};
pub use handlers::{
    ClusterStateHandler, PeerConnectHandler, PeerDisconnectHandler, PeerMessageHandler,
    PeerReplyHandler,
};
pub use peer::PeerId;
pub use proxy::TrustedProxies;

use crate::backlog::BacklogLimits;
use crate::budget::MemoryBudget;
use crate::callbacks::HandlerSlot;
use crate::cluster::{BusThreads, Cluster, ClusterHost};
use crate::disconnect::DisconnectReason;
use crate::error::{Error, Result};
use crate::log::log_at;
use crate::pending::PendingRequests;
use crate::protocol::bus::BusTarget;
use crate::protocol::frame::{check_frame_size, FrameHeader, PING};
use crate::protocol::ids::{IdAllocator, SERVER_IDS};
use crate::protocol::Message;
use crate::stats::StatsSnapshot;
use crate::sys::PollHandle;
use crate::workers::{panic_message, WorkerPool};
use event_loop::{Command, Loops};
use handlers::Callbacks;
use lead::Lead;
use peer::{BroadcastRun, Cork, Peer, SendError, ServerKey};
use peer_table::{AllPeers, PeerTable};

/// A Veltix server. Cloning gives another handle to the same server.
#[derive(Clone)]
pub struct Server {
    inner: Arc<ServerInner>,
}

/// The shared state behind every [`Server`] handle.
pub struct ServerInner {
    config: ServerConfig,
    callbacks: Callbacks,
    /// Peers that completed the handshake and are not yet disconnected.
    peers: PeerTable,
    pending: PendingRequests,
    workers: WorkerPool,
    /// The last peer id handed out (ids start at 1, never reused).
    last_peer_id: AtomicU64,
    backlog_limits: BacklogLimits,
    /// What is held on behalf of all peers, and its bound.
    budget: Arc<MemoryBudget>,
    running: Mutex<Option<Running>>,
    /// Cluster mode: this node's side of the bus.
    cluster: Option<Arc<Cluster>>,
    on_cluster_state: HandlerSlot<ClusterStateHandler>,
}

/// A started server: its I/O threads and how to reach them.
struct Running {
    loops: Arc<Loops>,
    threads: Vec<JoinHandle<()>>,
    addr: SocketAddr,
    /// Cluster mode: the threads that talk to the bus.
    bus: Option<BusThreads>,
}

impl Server {
    /// A server for `config`, not yet listening. Starts its worker threads.
    pub fn new(config: ServerConfig) -> Result<Server> {
        config.validate()?;
        let backlog_limits = config.backlog_limits()?;
        let workers = WorkerPool::new("veltix-server-worker", config.max_workers as usize)
            .map_err(|e| Error::io("cannot start the worker threads", &e))?;
        let budget =
            MemoryBudget::new(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX));
        // The bus's queue is bounded as one peer's is.
        let cluster = config.cluster.clone().map(|cluster| {
            Arc::new(Cluster::new(
                cluster,
                budget.clone(),
                config.max_outbound_bytes as usize,
            ))
        });
        Ok(Server {
            inner: Arc::new(ServerInner {
                callbacks: Callbacks::default(),
                peers: PeerTable::new(config.loop_count()),
                pending: PendingRequests::new(IdAllocator::new(SERVER_IDS), config.reply_spin),
                workers,
                last_peer_id: AtomicU64::new(0),
                backlog_limits,
                budget,
                config,
                running: Mutex::default(),
                cluster,
                on_cluster_state: HandlerSlot::default(),
            }),
        })
    }

    /// Address of the shared state; stable for the server's life, used as
    /// the C handle.
    pub fn as_ptr(&self) -> *const ServerInner {
        Arc::as_ptr(&self.inner)
    }

    /// What tells this server's cork sessions from another server's.
    pub(super) fn key(&self) -> ServerKey {
        self.as_ptr() as ServerKey
    }

    /// Turns an owning pointer from [`Server::into_raw`] back into a server.
    ///
    /// # Safety
    /// `ptr` must come from `into_raw` and be used this way once.
    pub unsafe fn from_raw(ptr: *const ServerInner) -> Server {
        Server {
            inner: Arc::from_raw(ptr),
        }
    }

    /// A new handle from a pointer obtained by `into_raw` or `as_ptr`, whose
    /// server is still alive.
    ///
    /// # Safety
    /// `ptr` must point to a live server.
    pub unsafe fn clone_from_ptr(ptr: *const ServerInner) -> Server {
        Arc::increment_strong_count(ptr);
        Server::from_raw(ptr)
    }

    /// Gives up this handle for a pointer (see [`Server::from_raw`]).
    pub fn into_raw(self) -> *const ServerInner {
        Arc::into_raw(self.inner)
    }

    /// The configuration the server was created with.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    // ----- callbacks ---------------------------------------------------

    /// Sets (or with `None` clears) the handler for messages without a route.
    pub fn on_recv(&self, handler: Option<PeerMessageHandler>) {
        self.inner
            .callbacks
            .set_on_recv(handler, !self.in_callback());
    }

    /// Sets (or clears) the handler run when a peer completes its handshake.
    pub fn on_connect(&self, handler: Option<PeerConnectHandler>) {
        self.inner
            .callbacks
            .set_on_connect(handler, !self.in_callback());
    }

    /// Sets (or clears) the handler run when a connected peer leaves.
    pub fn on_disconnect(&self, handler: Option<PeerDisconnectHandler>) {
        self.inner
            .callbacks
            .set_on_disconnect(handler, !self.in_callback());
    }

    /// Routes messages of `type_code` to `handler` instead of `on_recv`.
    pub fn route(&self, type_code: u16, handler: PeerMessageHandler) -> Result<()> {
        self.inner
            .callbacks
            .route("veltix_server", type_code, handler)
    }

    /// Removes the route of `type_code`.
    pub fn unroute(&self, type_code: u16) -> Result<()> {
        self.inner.callbacks.unroute(type_code, !self.in_callback())
    }

    // ----- lifecycle ----------------------------------------------------

    /// Listens on the configured address and starts the I/O thread; returns
    /// the port (the one picked when the configured port is 0). A closed
    /// server may be started again; callbacks and routes are kept.
    pub fn start(&self) -> Result<u16> {
        let mut running = self.running();
        if running.is_some() {
            return Err(Error::AlreadyRunning);
        }
        let (host, port) = (self.inner.config.host.as_str(), self.inner.config.port);
        let addr = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| {
                Error::BindFailed(format!(
                    "config.host \"{host}\" does not resolve to an address. Fix: use an IP literal such as \"0.0.0.0\", \"::\" or \"127.0.0.1\""
                ))
            })?;
        let (event_loops, loops, bound) =
            event_loop::listen(self.clone(), addr, self.inner.config.loop_count()).map_err(|e| {
                Error::BindFailed(format!(
                    "cannot listen on {addr}: {e}. Fix: choose a free port (0 picks one), stop the process using it, or use a local address"
                ))
            })?;
        let mut threads = Vec::with_capacity(event_loops.len());
        let stop = |threads: Vec<JoinHandle<()>>| {
            loops.send_to_each(|_| Command::Stop);
            for thread in threads {
                let _ = thread.join();
            }
        };
        for event_loop in event_loops {
            let spawned = std::thread::Builder::new()
                .name("veltix-server-io".into())
                .spawn(move || {
                    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| event_loop.run())) {
                        log_at!(
                            Error,
                            "an I/O thread of the server panicked: {}; close and start the server again",
                            panic_message(&*panic)
                        );
                    }
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    stop(threads);
                    return Err(Error::io("cannot start the I/O threads", &e));
                }
            }
        }
        let bus = match self.cluster() {
            None => None,
            Some(cluster) => {
                let host: Arc<dyn ClusterHost> = Arc::new(self.clone());
                match BusThreads::start(cluster.clone(), host) {
                    Ok(bus) => Some(bus),
                    Err(e) => {
                        stop(threads);
                        return Err(Error::io("cannot start the cluster's bus threads", &e));
                    }
                }
            }
        };
        log_at!(Info, "server listening on {bound}");
        *running = Some(Running {
            loops,
            threads,
            addr: bound,
            bus,
        });
        Ok(bound.port())
    }

    /// The address the server listens on, if it is running.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.running().as_ref().map(|running| running.addr)
    }

    /// Drains the server for a rolling deploy: it stops listening at once,
    /// so a load balancer sends new clients to other nodes, then closes
    /// its connections `peers_per_second` at a time (0: all at once), each
    /// as `close_client` does (`on_disconnect` with reason `Manual`), so
    /// that clients with `retry` come back through the balancer a few at
    /// a time. Calling it again changes the rate. `close` ends it.
    pub fn drain(&self, peers_per_second: u32) -> Result<()> {
        let running = self.running();
        let Some(running) = running.as_ref() else {
            return Err(Error::Closed(
                "the server is not running, so there is nothing to drain".into(),
            ));
        };
        // Each loop closes its share, their turns interleaved: together,
        // one close per 1 / peers_per_second at most.
        let step = match peers_per_second {
            0 => Duration::ZERO,
            rate => Duration::from_secs(1) / rate,
        };
        let loops = running.loops.len() as u32;
        running.loops.send_to_each(|index| Command::Drain {
            interval: step * loops,
            first_after: step * index as u32,
        });
        Ok(())
    }

    /// Stops listening and closes every connection (`on_disconnect` runs for
    /// each connected peer, reason `Manual`); pending requests fail. Message
    /// callbacks not yet started are dropped. Waits for the I/O thread and,
    /// unless called from a callback, for the running callbacks and the
    /// queued `on_connect`/`on_disconnect` calls. No effect on a server that
    /// is not running.
    pub fn close(&self) {
        let Some(running) = self.running().take() else {
            return;
        };
        if let Some(bus) = running.bus {
            bus.stop();
        }
        running.loops.send_to_each(|_| Command::Stop);
        // A callback on an I/O thread closing the server never waits for
        // its own thread.
        let current = std::thread::current().id();
        for thread in running.threads {
            if thread.thread().id() != current {
                let _ = thread.join();
            }
        }
        if !self.in_callback() {
            self.inner.workers.wait_idle();
        }
        log_at!(Info, "server on {} closed", running.addr);
    }

    /// Closes the server, drops queued callbacks and stops the worker
    /// threads (not waiting for the calling one, inside a callback).
    pub fn shut_down(&self) {
        self.close();
        let in_callback = self.in_callback();
        self.inner.workers.shutdown(!in_callback);
    }

    /// Dispatch mode (`max_workers` 0): waits up to `timeout` (`None`: for
    /// ever) for a callback to be due, then runs it and those due by then
    /// on the calling thread; how many ran.
    pub fn dispatch(&self, timeout: Option<Duration>) -> Result<usize> {
        Ok(self.inner.workers.dispatch(timeout)?)
    }

    /// Dispatch mode: a handle readable while callbacks are due (a file
    /// descriptor on POSIX, a `SOCKET` on Windows).
    pub fn event_handle(&self) -> Result<PollHandle> {
        Ok(self.inner.workers.event_handle()?)
    }

    // ----- messaging ----------------------------------------------------

    /// Sends a message to `peer` with a fresh request id. In cluster mode
    /// a peer of another node is sent to through the bus (at most once:
    /// `Ok` then means queued for the bus).
    pub fn send(&self, peer: PeerId, type_code: u16, payload: &[u8]) -> Result<()> {
        check_frame_size(payload.len(), self.inner.config.max_message_size)?;
        if let Some(cluster) = self.remote_node_of(peer) {
            let request_id = self.inner.pending.allocate_id()?;
            let header = FrameHeader::for_payload(type_code, request_id, payload).encode();
            return Self::send_to_remote(cluster, peer, &header, payload);
        }
        self.with_peer_to_send(peer, |peer| {
            let request_id = self.inner.pending.allocate_id()?;
            self.send_frame(peer, type_code, request_id, payload, Cork::Allowed)
        })
    }

    /// Replies to `to`, received from `peer`: a message carrying its id
    /// (in cluster mode, through the bus to another node's peer).
    pub fn reply(&self, peer: PeerId, to: &Message, type_code: u16, payload: &[u8]) -> Result<()> {
        check_frame_size(payload.len(), self.inner.config.max_message_size)?;
        if let Some(cluster) = self.remote_node_of(peer) {
            let header = FrameHeader::for_payload(type_code, to.request_id(), payload).encode();
            return Self::send_to_remote(cluster, peer, &header, payload);
        }
        self.with_peer_to_send(peer, |peer| {
            self.send_frame(peer, type_code, to.request_id(), payload, Cork::Allowed)
        })
    }

    /// Sends a request to `peer` and waits for the message carrying its id.
    pub fn send_and_wait(
        &self,
        peer: PeerId,
        type_code: u16,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Message> {
        check_frame_size(payload.len(), self.inner.config.max_message_size)?;
        self.local_only(peer, "a request waiting for its reply")?;
        if self.on_io_thread() {
            return Err(Error::InvalidArgument(
                "send_and_wait or ping inside a callback running on the I/O thread (callbacks_on_io_thread) would wait for the thread that reads the reply. Fix: use veltix_server_request(), or run callbacks on workers".into(),
            ));
        }
        // A callback about to wait first lets go of what it corked: its
        // earlier replies and broadcasts must not wait for the reply too.
        Peer::write_cork();
        // Registered before the peer is looked up: if it leaves after the
        // lookup, its departure fails this request at once.
        // The server never blocks on a write (a full socket queues), so
        // the deadline bounds only the wait for the reply.
        let target = std::cell::OnceCell::new();
        let lead = std::cell::RefCell::new(None);
        self.inner.pending.round_trip(
            peer,
            timeout,
            |request_id, _| {
                let peer = self.peer(peer)?;
                let peer = target.get_or_init(|| peer);
                // Taken before the request leaves: its reply cannot wake
                // the I/O thread.
                *lead.borrow_mut() = Lead::take(self, peer);
                self.send_frame(peer, type_code, request_id, payload, Cork::Never)
            },
            |deadline, replied| {
                if let Some(lead) = lead.borrow_mut().take() {
                    self.read_while_waiting(lead, deadline, replied);
                }
            },
        )
    }

    /// Sends a request to `peer` without waiting for its reply: `on_reply`
    /// runs once, as a callback (on a worker, or inside `dispatch`), with
    /// the reply, a timeout after `timeout`, or the error that ended the
    /// peer's connection. If this returns an error, `on_reply` never runs.
    pub fn request(
        &self,
        peer: PeerId,
        type_code: u16,
        payload: &[u8],
        timeout: Duration,
        on_reply: PeerReplyHandler,
    ) -> Result<()> {
        check_frame_size(payload.len(), self.inner.config.max_message_size)?;
        self.local_only(peer, "a request")?;
        let server = self.clone();
        let on_outcome: crate::pending::OnOutcome = Box::new(move |result| {
            let workers = &server.inner.workers;
            let handle = server.clone();
            workers.submit_ordered(Box::new(move || on_reply(&handle, peer, result)));
        });
        self.inner.pending.request(
            peer,
            timeout,
            |request_id| {
                let peer = self.peer(peer)?;
                self.send_frame(&peer, type_code, request_id, payload, Cork::Never)
            },
            on_outcome,
        )
    }

    /// Pings `peer`; the round trip in milliseconds.
    pub fn ping(&self, peer: PeerId, timeout: Duration) -> Result<f64> {
        let start = Instant::now();
        self.send_and_wait(peer, PING, &[], timeout)?;
        let rtt = start.elapsed();
        if let Ok(peer) = self.peer(peer) {
            peer.stats.round_trip(rtt);
        }
        Ok(rtt.as_secs_f64() * 1000.0)
    }

    /// `peer`'s statistics since its handshake.
    pub fn peer_stats(&self, peer: PeerId) -> Result<StatsSnapshot> {
        Ok(self.peer(peer)?.stats.snapshot())
    }

    /// Sends a heartbeat PING to `peer` (the I/O thread does, for a silent
    /// peer). Its PONG records the round trip in the peer's statistics and
    /// reaches no callback.
    pub(super) fn send_heartbeat(&self, peer: &Arc<Peer>) {
        let sent = Instant::now();
        let measured = peer.clone();
        let record_rtt: crate::pending::OnOutcome = Box::new(move |result| {
            if result.is_ok() {
                measured.stats.round_trip(sent.elapsed());
            }
        });
        let heartbeat = self.inner.config.liveness.heartbeat;
        let wait = heartbeat
            .timeout
            .or(heartbeat.interval)
            .unwrap_or(Duration::from_secs(1));
        let sent_ping = self.inner.pending.request(
            peer.id,
            wait,
            |request_id| self.send_frame(peer, PING, request_id, &[], Cork::Never),
            record_rtt,
        );
        if let Err(error) = sent_ping {
            log_at!(
                Debug,
                "heartbeat PING to peer {} not sent: {error}",
                peer.id
            );
        }
    }

    /// Sends one message, with one request id, to every connected peer but
    /// those in `except`; returns how many of this node's peers it was
    /// sent to. A peer whose send fails is left out (and closed if its
    /// connection failed). In cluster mode it then goes to every other
    /// node's peers (but `except`) through the bus.
    pub fn broadcast(&self, type_code: u16, payload: &[u8], except: &[PeerId]) -> Result<usize> {
        check_frame_size(payload.len(), self.inner.config.max_message_size)?;
        let request_id = self.inner.pending.allocate_id()?;
        let header = FrameHeader::for_payload(type_code, request_id, payload).encode();
        let sent = self.broadcast_local(&header, payload, except);
        if let Some(cluster) = self.cluster() {
            let except = except.to_vec();
            cluster.publish(&BusTarget::Everyone { except }, &[&header, payload]);
        }
        Ok(sent)
    }

    /// Writes an encoded broadcast to this node's peers but `except`; how
    /// many it was sent to.
    fn broadcast_local(&self, header: &[u8], payload: &[u8], except: &[PeerId]) -> usize {
        let to_everyone = except.is_empty();
        if to_everyone {
            // Inside a callback, after a broadcast to the same peers: one
            // copy, whatever their number (see `peer::BroadcastRun`).
            let version = self.inner.peers.version();
            if let Some(receivers) =
                Peer::add_to_broadcast_run(self.key(), version, [header, payload])
            {
                return receivers;
            }
        }
        // With the table held: a send never blocks, and a failed peer is
        // closed through its I/O thread, which takes no lock here.
        let peers = self.peers();
        // Read while it is held: the table cannot change meanwhile.
        let version = self.inner.peers.version();
        // Inside a callback, the next broadcasts may join a run to these.
        let opens_run = to_everyone && Peer::in_cork_session_of(self.key());
        let mut sent = 0;
        let mut receivers = Vec::new();
        for peer in peers.values().filter(|peer| !except.contains(&peer.id)) {
            if self
                .send_encoded(peer, header, payload, Cork::Allowed)
                .is_ok()
            {
                sent += 1;
                if opens_run {
                    receivers.push(peer.clone());
                }
            }
        }
        drop(peers);
        if opens_run {
            let server = self.clone();
            let on_failure = Box::new(move |peer: &Arc<Peer>, error| {
                let _ = server.send_failed(peer, error);
            });
            Peer::start_broadcast_run(BroadcastRun::new(version, receivers, on_failure));
        }
        sent
    }

    // ----- peers --------------------------------------------------------

    /// Closes the connection of `peer`: queued bytes are written if the
    /// socket takes them, then it closes and `on_disconnect` runs (reason
    /// `Manual`). Sends to it fail from now on.
    pub fn close_client(&self, peer: PeerId) -> Result<()> {
        self.local_only(peer, "closing")?;
        let peer = self.peer(peer)?;
        peer.refuse_sends(DisconnectReason::Manual);
        peer.ask_to_close(DisconnectReason::Manual);
        Ok(())
    }

    /// How many peers are connected (handshake complete).
    pub fn client_count(&self) -> usize {
        self.peers().len()
    }

    /// The ids of the connected peers, in increasing order.
    pub fn peer_ids(&self) -> Vec<PeerId> {
        let mut ids: Vec<PeerId> = self.peers().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The address of `peer`: the client's, from a trusted PROXY header
    /// when its connection came through a load balancer
    /// (`ServerConfig::proxy_protocol`), else the connection's own.
    pub fn peer_addr(&self, peer: PeerId) -> Result<SocketAddr> {
        Ok(self.peer(peer)?.client_address())
    }

    /// Sets tag `name` of `peer` to `value`, replacing a previous value
    /// unless `overwrite` is false; whether the tag was set.
    pub fn set_tag(&self, peer: PeerId, name: &str, value: &str, overwrite: bool) -> Result<bool> {
        let index = self.cluster().map(|cluster| cluster.tags());
        Ok(self.peer(peer)?.tags.set(name, value, overwrite, index))
    }

    /// Removes tag `name` of `peer`; whether it was set.
    pub fn remove_tag(&self, peer: PeerId, name: &str) -> Result<bool> {
        let index = self.cluster().map(|cluster| cluster.tags());
        Ok(self.peer(peer)?.tags.remove(name, index))
    }

    /// The value of tag `name` of `peer`, if set.
    pub fn tag(&self, peer: PeerId, name: &str) -> Result<Option<String>> {
        Ok(self.peer(peer)?.tags.get(name))
    }

    /// The connected peers having tag `name` (set to `value`, if given), in
    /// increasing id order.
    pub fn peers_with_tag(&self, name: &str, value: Option<&str>) -> Vec<PeerId> {
        let mut ids: Vec<PeerId> = self
            .peers()
            .values()
            .filter(|peer| peer.tags.has(name, value))
            .map(|peer| peer.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    // ----- internals ------------------------------------------------------

    /// The bounds of each peer's callback backlog.
    fn backlog_limits(&self) -> BacklogLimits {
        self.inner.backlog_limits
    }

    /// The server-wide memory budget.
    fn budget(&self) -> &Arc<MemoryBudget> {
        &self.inner.budget
    }

    /// The next peer id (the I/O thread, on accept); `None` when a
    /// cluster node has used all its ids.
    fn next_peer_id(&self) -> Option<PeerId> {
        self.peer_id_for(self.inner.last_peer_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Runs `send` with the peer `id`: found without a look-up (or a
    /// reference count) when this thread runs its callbacks (a departed
    /// one refuses the send with the same error as the look-up).
    fn with_peer_to_send<T>(
        &self,
        id: PeerId,
        send: impl FnOnce(&Arc<Peer>) -> Result<T>,
    ) -> Result<T> {
        Peer::with_running(self.key(), id, |running| match running {
            Some(peer) => send(peer),
            None => send(&self.peer(id)?),
        })
    }

    /// Every connected peer, at this moment.
    fn connected_peers(&self) -> Vec<Arc<Peer>> {
        self.peers().values().cloned().collect()
    }

    fn peer(&self, id: PeerId) -> Result<Arc<Peer>> {
        self.inner.peers.get(id).ok_or(Error::PeerNotConnected(id))
    }

    fn send_frame(
        &self,
        peer: &Arc<Peer>,
        type_code: u16,
        request_id: u16,
        payload: &[u8],
        cork: Cork,
    ) -> Result<()> {
        let header = FrameHeader::for_payload(type_code, request_id, payload).encode();
        self.send_encoded(peer, &header, payload, cork)
    }

    /// Sends a frame; a peer whose connection fails (or that stopped
    /// reading) is handed to the I/O thread to close.
    fn send_encoded(
        &self,
        peer: &Arc<Peer>,
        header: &[u8],
        payload: &[u8],
        cork: Cork,
    ) -> Result<()> {
        peer.send_with([header, payload], cork)
            .or_else(|error| self.send_failed(peer, error))
    }

    /// What a refused send to `peer` means: it is closed (logged) where
    /// its queue overflowed, the memory budget ran out or its socket
    /// failed; the error for the caller.
    fn send_failed(&self, peer: &Arc<Peer>, error: SendError) -> Result<()> {
        match error {
            SendError::Closed => Err(Error::PeerNotConnected(peer.id)),
            SendError::OverBudget { queued } => {
                let budget = self.budget();
                log_at!(
                    Warn,
                    "peer {} ({}) is not reading and the server holds {} bytes for its peers: queueing {queued} more bytes for it would pass max_memory_bytes ({}); disconnecting it",
                    peer.id,
                    peer.addr,
                    budget.held(),
                    budget.limit()
                );
                peer.ask_to_close(DisconnectReason::Error);
                Err(Error::Closed(format!(
                    "peer {} was disconnected: it stopped reading and the server's memory budget (max_memory_bytes {}) is used up. Fix: raise max_memory_bytes, or send less to slow peers",
                    peer.id,
                    budget.limit()
                )))
            }
            SendError::Overflow { queued } => {
                let max = self.inner.config.max_outbound_bytes;
                log_at!(
                    Warn,
                    "peer {} ({}) is not reading: {queued} bytes would be queued for it, over max_outbound_bytes ({max}); disconnecting it",
                    peer.id,
                    peer.addr
                );
                peer.ask_to_close(DisconnectReason::Error);
                Err(Error::Closed(format!(
                    "peer {} was disconnected: it stopped reading and its queue reached max_outbound_bytes ({max}). Fix: raise max_outbound_bytes, or send less to slow peers",
                    peer.id
                )))
            }
            SendError::Io(e) => {
                peer.ask_to_close(DisconnectReason::Error);
                Err(Error::io(&format!("sending to peer {}", peer.id), &e))
            }
        }
    }

    /// Whether the calling thread runs one of this server's callbacks: a
    /// worker, or the I/O thread with `callbacks_on_io_thread`. Such a
    /// thread must never wait for a callback to finish (it may be its own).
    fn in_callback(&self) -> bool {
        self.inner.workers.is_worker_thread() || self.on_io_thread()
    }

    /// Whether the calling thread is this server's I/O thread.
    fn on_io_thread(&self) -> bool {
        event_loop::is_io_thread_of(self)
    }

    fn running(&self) -> MutexGuard<'_, Option<Running>> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every connected peer, the table held unchanged meanwhile.
    fn peers(&self) -> AllPeers<'_> {
        self.inner.peers.all()
    }

    fn peer_table(&self) -> &PeerTable {
        &self.inner.peers
    }

    fn callbacks(&self) -> &Callbacks {
        &self.inner.callbacks
    }
}
