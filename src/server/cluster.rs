//! The server's side of cluster mode ([`crate::cluster`]): what its API
//! sends to other nodes, and what it delivers from them.

use std::sync::Arc;

use super::handlers::ClusterStateHandler;
use super::peer::{Cork, PeerId};
use super::Server;
use crate::cluster::{node_of, Cluster, ClusterHost, ClusterStats, NodeCount, NODE_SHIFT};
use crate::error::{Error, Result};
use crate::protocol::bus::{BusMessage, BusTarget};
use crate::protocol::frame::{check_frame_size, FrameHeader, HEADER_SIZE};

/// The largest count in a cluster-wide peer id (see [`NODE_SHIFT`]).
const MAX_NODE_PEERS: u64 = (1 << NODE_SHIFT) - 1;

impl Server {
    /// The cluster this server is a node of, if any.
    pub(super) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.inner.cluster.as_ref()
    }

    /// The cluster, when `peer` is another node's: a send to it goes over
    /// the bus.
    pub(super) fn remote_node_of(&self, peer: PeerId) -> Option<&Arc<Cluster>> {
        self.cluster()
            .filter(|cluster| node_of(peer) != cluster.node())
    }

    /// Fails what cannot cross nodes (a request, a ping, a close, a
    /// peer's details) for another node's `peer`.
    pub(super) fn local_only(&self, peer: PeerId, what: &str) -> Result<()> {
        match self.remote_node_of(peer) {
            Some(_) => Err(Error::InvalidArgument(format!(
                "peer {peer} is on cluster node {}: {what} works only on this node's peers (node {}); only sends, replies, broadcasts and tag sends cross nodes. Fix: do it on the node that holds the peer",
                node_of(peer),
                self.cluster().map_or(0, |cluster| cluster.node())
            ))),
            None => Ok(()),
        }
    }

    /// The id of the `n`th connection (from 1): cluster-wide in cluster
    /// mode (the node's id in the high bits), `None` once a node has used
    /// every id it has (ids are never reused).
    pub(super) fn peer_id_for(&self, n: u64) -> Option<PeerId> {
        match self.cluster() {
            None => Some(n),
            Some(_) if n > MAX_NODE_PEERS => None,
            Some(cluster) => Some(u64::from(cluster.node()) << NODE_SHIFT | n),
        }
    }

    /// Queues a frame for another node's peer: its header and payload.
    pub(super) fn send_to_remote(
        cluster: &Cluster,
        peer: PeerId,
        header: &[u8],
        payload: &[u8],
    ) -> Result<()> {
        cluster.publish(&BusTarget::Peer(peer), &[header, payload]);
        Ok(())
    }

    /// Sends a message with a fresh request id to the peers having tag
    /// `name` (set to `value`, if given): this node's at once, and, in
    /// cluster mode, every other node's through the bus. How many of this
    /// node's peers it was sent to.
    pub fn send_to_tag(
        &self,
        name: &str,
        value: Option<&str>,
        type_code: u16,
        payload: &[u8],
    ) -> Result<usize> {
        check_frame_size(payload.len(), self.inner.config.max_message_size)?;
        let request_id = self.inner.pending.allocate_id()?;
        let header = FrameHeader::for_payload(type_code, request_id, payload).encode();
        let sent = self.send_to_local_tag(name, value, &header, payload);
        if let Some(cluster) = self.cluster() {
            cluster.publish(&BusTarget::Tag { name, value }, &[&header, payload]);
        }
        Ok(sent)
    }

    fn send_to_local_tag(
        &self,
        name: &str,
        value: Option<&str>,
        header: &[u8],
        payload: &[u8],
    ) -> usize {
        let mut sent = 0;
        for peer in self
            .peers()
            .values()
            .filter(|peer| peer.tags.has(name, value))
        {
            if self
                .send_encoded(peer, header, payload, Cork::Allowed)
                .is_ok()
            {
                sent += 1;
            }
        }
        sent
    }

    /// Sets (or with `None` clears) the handler told when the cluster's
    /// bus is reached or lost; outside a callback, returns once the old
    /// one is not running.
    pub fn on_cluster_state(&self, handler: Option<ClusterStateHandler>) {
        self.inner
            .on_cluster_state
            .set(handler, !self.in_callback());
    }

    /// This node's id in its cluster; `None` outside cluster mode.
    pub fn cluster_node_id(&self) -> Option<u16> {
        self.cluster().map(|cluster| cluster.node())
    }

    /// The bus counters; `None` outside cluster mode.
    pub fn cluster_stats(&self) -> Option<ClusterStats> {
        self.cluster().map(|cluster| cluster.stats())
    }

    /// Each node's count of connected clients: this node's now, the
    /// others' as they recorded it within the last few seconds; `None`
    /// outside cluster mode.
    pub fn cluster_counts(&self) -> Option<Vec<NodeCount>> {
        let local = self.client_count();
        self.cluster().map(|cluster| cluster.counts(local))
    }
}

impl ClusterHost for Server {
    fn local_clients(&self) -> usize {
        self.client_count()
    }

    fn deliver(&self, message: BusMessage<'_>) {
        let (header, payload) = message.frame.split_at(HEADER_SIZE);
        match message.target {
            BusTarget::Everyone { except } => {
                self.broadcast_local(header, payload, &except);
            }
            BusTarget::Peer(id) => {
                // Gone meanwhile, or never here: at most once, dropped.
                if let Ok(peer) = self.peer(id) {
                    let _ = self.send_encoded(&peer, header, payload, Cork::Allowed);
                }
            }
            BusTarget::Tag { name, value } => {
                self.send_to_local_tag(name, value, header, payload);
            }
        }
    }

    fn bus_state_changed(&self, connected: bool) {
        let server = self.clone();
        self.inner.workers.submit_ordered(Box::new(move || {
            if let Some(call) = server.inner.on_cluster_state.call() {
                (call.handler())(&server, connected);
            }
        }));
    }
}
