//! The connected peers, by id, in shards: the I/O threads adding and
//! removing peers, and the threads looking one up to send, meet on one
//! shard's lock at most, never on one lock for the whole server. A server
//! with one I/O thread has one shard.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::peer::{Peer, PeerId};

/// Shards per I/O thread, when there are several.
const SHARDS_PER_LOOP: usize = 4;

type Shard = HashMap<PeerId, Arc<Peer>>;

/// The connected peers.
pub(super) struct PeerTable {
    shards: Box<[RwLock<Shard>]>,
    /// Counts changes (under the changed shard's lock), so a broadcast run
    /// knows its receivers are still everyone.
    version: AtomicU64,
}

impl PeerTable {
    /// A table for a server of `loops` I/O threads.
    pub fn new(loops: usize) -> PeerTable {
        let shards = match loops {
            0 | 1 => 1,
            loops => loops * SHARDS_PER_LOOP,
        };
        PeerTable {
            shards: (0..shards).map(|_| RwLock::default()).collect(),
            version: AtomicU64::new(0),
        }
    }

    /// Peer `id`, if connected.
    pub fn get(&self, id: PeerId) -> Option<Arc<Peer>> {
        read(self.shard(id)).get(&id).cloned()
    }

    pub fn insert(&self, peer: Arc<Peer>) {
        self.change(peer.id).insert(peer.id, peer);
    }

    pub fn remove(&self, id: PeerId) {
        self.change(id).remove(&id);
    }

    /// The shard of peer `id`, to change: the version counts the change.
    fn change(&self, id: PeerId) -> RwLockWriteGuard<'_, Shard> {
        let shard = self.shard(id).write().unwrap_or_else(|e| e.into_inner());
        self.version.fetch_add(1, Ordering::AcqRel);
        shard
    }

    /// How many times the table changed.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Every peer, the table unchanged while the view is held (each shard
    /// is read-locked, in order; a change locks one shard only, so views
    /// and changes never wait for each other in a cycle).
    pub fn all(&self) -> AllPeers<'_> {
        AllPeers {
            shards: self.shards.iter().map(read).collect(),
        }
    }

    fn shard(&self, id: PeerId) -> &RwLock<Shard> {
        // Ids are handed out in sequence: consecutive ones spread.
        &self.shards[(id % self.shards.len() as u64) as usize]
    }
}

fn read(shard: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    shard.read().unwrap_or_else(|e| e.into_inner())
}

/// The peers of a [`PeerTable`], held unchanged.
pub(super) struct AllPeers<'a> {
    shards: Vec<RwLockReadGuard<'a, Shard>>,
}

impl AllPeers<'_> {
    pub fn values(&self) -> impl Iterator<Item = &Arc<Peer>> {
        self.shards.iter().flat_map(|shard| shard.values())
    }

    pub fn keys(&self) -> impl Iterator<Item = &PeerId> {
        self.shards.iter().flat_map(|shard| shard.keys())
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.len()).sum()
    }
}
