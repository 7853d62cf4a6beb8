//! Cluster mode: servers on many hosts as one service, over a Redis (or
//! Valkey) pub/sub bus. Connection state stays on its node; the bus only
//! carries what crosses nodes: broadcasts, sends to a tag and sends to a
//! peer of another node, each as one encoded frame
//! ([`crate::protocol::bus`]).
//!
//! Channels, for cluster `c`: `veltix:c:all` (broadcasts, every node),
//! `veltix:c:node:<id>` (sends to that node's peers) and `veltix:c:tag:<name>`
//! (subscribed only while a local peer holds the tag), so a node receives
//! only what may concern it. Counts come from per-node records that
//! expire (`veltix:c:count:<id>`, refreshed every second), never from a
//! question to every node.
//!
//! A node delivers to its own peers first and never waits for the bus:
//! publishing only queues (bounded, in the server's memory budget), and
//! while the bus is down what would cross nodes is dropped and counted.
//! Delivery across nodes is at most once.

mod bus;
mod config;
mod tags;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

pub(crate) use bus::BusThreads;
pub use config::{ClusterConfig, DEFAULT_CLUSTER_NAME};
pub(crate) use tags::TagIndex;

use crate::backoff::Jitter;
use crate::budget::{Account, MemoryBudget};
use crate::log::log_at;
use crate::protocol::bus::{self as wire, BusMessage, BusTarget};

/// Where a node's id sits in its peers' ids: `node << NODE_SHIFT | n`,
/// with `n` counting that node's connections from 1. 37 bits of count
/// (137 billion connections per run) keep every id under 2^53, so
/// JavaScript and Lua numbers hold it exactly.
pub const NODE_SHIFT: u32 = 37;

/// The node a cluster-wide peer id belongs to (0 outside cluster mode).
pub fn node_of(peer: u64) -> u16 {
    (peer >> NODE_SHIFT) as u16
}

/// What the bus needs from the server it serves.
pub(crate) trait ClusterHost: Send + Sync + 'static {
    /// Peers connected to this node now (handshake complete).
    fn local_clients(&self) -> usize;
    /// Writes a message from another node to the local peers it targets.
    fn deliver(&self, message: BusMessage<'_>);
    /// The bus was reached (`true`) or lost (`false`).
    fn bus_state_changed(&self, connected: bool);
}

/// The counters of a node's bus traffic since the server was created.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClusterStats {
    /// Whether both bus connections are up.
    pub connected: bool,
    /// Messages handed to Redis.
    pub published: u64,
    /// Messages from other nodes received (own echoes not counted).
    pub received: u64,
    /// Messages that would have crossed nodes but were dropped: the bus
    /// was down, or the outbound queue was full.
    pub dropped: u64,
    /// Messages received that were malformed, from another version or
    /// another program on the same channels; ignored.
    pub malformed: u64,
    /// Times a bus connection was lost.
    pub disconnects: u64,
}

/// One node's count of connected clients, as last recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCount {
    /// The node's id.
    pub node: u16,
    /// Its connected clients.
    pub clients: u64,
}

/// A message waiting for the publishing thread.
struct Outgoing {
    channel: Arc<str>,
    bytes: Vec<u8>,
}

impl Outgoing {
    /// What it holds, as the queue's bound counts it: its bytes and its
    /// own size, so a flood of small messages is bounded too.
    fn cost(&self) -> usize {
        self.bytes.len() + std::mem::size_of::<Outgoing>()
    }
}

/// A node's side of the bus, shared by the server and its bus threads.
pub(crate) struct Cluster {
    config: ClusterConfig,
    node: u16,
    /// The channels' and keys' names.
    names: Names,
    queue: (Sender<Outgoing>, Receiver<Outgoing>),
    /// The bytes waiting in `queue`, in the server's budget.
    queued: Mutex<Account>,
    /// Most bytes `queue` may hold.
    max_queued: usize,
    publisher_up: AtomicBool,
    subscriber_up: AtomicBool,
    /// The state last reported to the host (`None` before the first).
    reported: Mutex<Option<bool>>,
    tags: TagIndex,
    /// Every node's recorded count, as last read, and when.
    remote_counts: Mutex<Option<(Instant, Vec<NodeCount>)>>,
    /// Drawn per server: tells this process's count record from another
    /// one's with the same node id.
    instance: u64,
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    malformed: AtomicU64,
    disconnects: AtomicU64,
}

/// The names a cluster uses in Redis.
struct Names {
    all: Arc<str>,
    own_node: Arc<str>,
    nodes: String,
    prefix: String,
}

impl Names {
    fn new(cluster: &str, node: u16) -> Names {
        let prefix = format!("veltix:{cluster}:");
        Names {
            all: format!("{prefix}all").into(),
            own_node: format!("{prefix}node:{node}").into(),
            nodes: format!("{prefix}nodes"),
            prefix,
        }
    }

    fn node(&self, node: u16) -> Arc<str> {
        format!("{}node:{node}", self.prefix).into()
    }

    fn tag(&self, name: &str) -> String {
        format!("{}tag:{name}", self.prefix)
    }

    fn count(&self, node: u16) -> String {
        format!("{}count:{node}", self.prefix)
    }
}

impl Cluster {
    /// A node of `config`'s cluster whose outbound queue holds at most
    /// `max_queued` bytes, counted in `budget`.
    pub fn new(config: ClusterConfig, budget: Arc<MemoryBudget>, max_queued: usize) -> Cluster {
        let node = config.node_id_or_random();
        Cluster {
            names: Names::new(&config.name, node),
            config,
            node,
            queue: crossbeam_channel::unbounded(),
            queued: Mutex::new(Account::new(Some(budget))),
            max_queued,
            publisher_up: AtomicBool::new(false),
            subscriber_up: AtomicBool::new(false),
            reported: Mutex::new(None),
            tags: TagIndex::default(),
            remote_counts: Mutex::default(),
            instance: Jitter::new(node as usize).next(),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
        }
    }

    /// This node's id.
    pub fn node(&self) -> u16 {
        self.node
    }

    /// The tags this node's peers hold, for the bus subscriptions.
    pub fn tags(&self) -> &TagIndex {
        &self.tags
    }

    /// Queues `frame` (one encoded frame) for the other nodes' peers that
    /// `target` names; never blocks. Dropped (and counted) while the bus is
    /// down or when the queue is full.
    pub fn publish(&self, target: &BusTarget<'_>, frame: &[&[u8]]) {
        if !self.publisher_up.load(Ordering::Acquire) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let channel = match target {
            BusTarget::Everyone { .. } => self.names.all.clone(),
            BusTarget::Peer(id) => self.names.node(node_of(*id)),
            BusTarget::Tag { name, .. } => self.names.tag(name).into(),
        };
        let Some(bytes) = wire::encode(self.node, target, frame) else {
            log_at!(Warn, "a tag name or value over 65,535 bytes cannot cross nodes; sent to local peers only");
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let outgoing = Outgoing { channel, bytes };
        let cost = outgoing.cost();
        {
            let mut queued = self.queued();
            let held = queued.held();
            if held + cost > self.max_queued || !queued.may_grow(cost) {
                drop(queued);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                log_at!(
                    Debug,
                    "the bus queue is full ({held} bytes); a message to other nodes was dropped"
                );
                return;
            }
            queued.set(held + cost);
        }
        let _ = self.queue.0.send(outgoing);
    }

    /// The counters, and whether the bus is connected.
    pub fn stats(&self) -> ClusterStats {
        ClusterStats {
            connected: self.connected(),
            published: self.published.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            disconnects: self.disconnects.load(Ordering::Relaxed),
        }
    }

    /// Every node's count of clients, this one's (`local`) live and the
    /// others' as recorded within the last few seconds, in node order.
    pub fn counts(&self, local: usize) -> Vec<NodeCount> {
        let mut counts = match &*self.remote_counts_guard() {
            Some((read, counts)) if read.elapsed() < bus::COUNT_EXPIRY => counts.clone(),
            _ => Vec::new(),
        };
        counts.retain(|count| count.node != self.node);
        counts.push(NodeCount {
            node: self.node,
            clients: local as u64,
        });
        counts.sort_unstable_by_key(|count| count.node);
        counts
    }

    fn connected(&self) -> bool {
        self.publisher_up.load(Ordering::Acquire) && self.subscriber_up.load(Ordering::Acquire)
    }

    /// Records that one of the bus connections came up or went down (a
    /// loss counted unless the server closed it), and tells `host` when
    /// that changes the node's state.
    fn set_up(&self, flag: &AtomicBool, up: bool, closed: bool, host: &dyn ClusterHost) {
        if !up && flag.swap(false, Ordering::AcqRel) && !closed {
            self.disconnects.fetch_add(1, Ordering::Relaxed);
        } else {
            flag.store(up, Ordering::Release);
        }
        let now = self.connected();
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        // Reported: a failure, and both connections up; not one of them up
        // while the other is still connecting.
        if *reported != Some(now) && (now || !up) {
            *reported = Some(now);
            log_at!(
                Info,
                "cluster {} node {}: the bus at {} is {}",
                self.config.name,
                self.node,
                self.config.bus_for_logs(),
                if now { "connected" } else { "lost" }
            );
            host.bus_state_changed(now);
        }
    }

    /// A message published on one of this node's channels.
    fn received(&self, bytes: &[u8], host: &dyn ClusterHost) {
        match wire::decode(bytes) {
            Some(message) if message.origin == self.node => {}
            Some(message) => {
                self.received.fetch_add(1, Ordering::Relaxed);
                host.deliver(message);
            }
            None => {
                self.malformed.fetch_add(1, Ordering::Relaxed);
                log_at!(
                    Warn,
                    "cluster {}: ignored a malformed bus message of {} bytes (another program or version on the same channels?)",
                    self.config.name,
                    bytes.len()
                );
            }
        }
    }

    fn queued(&self) -> MutexGuard<'_, Account> {
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remote_counts_guard(&self) -> MutexGuard<'_, Option<(Instant, Vec<NodeCount>)>> {
        self.remote_counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `outgoing` off the queue's account.
    fn dequeued(&self, outgoing: &Outgoing) {
        let mut queued = self.queued();
        let held = queued.held();
        queued.set(held.saturating_sub(outgoing.cost()));
    }
}
