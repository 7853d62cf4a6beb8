//! The callback types of a server.

use std::sync::Arc;

use super::{PeerId, Server};
use crate::disconnect::DisconnectReason;
use crate::protocol::Message;

/// Called with a message from a peer (route or `on_recv`).
pub type PeerMessageHandler = Arc<dyn Fn(&Server, PeerId, &Message) + Send + Sync>;
/// Called when a peer completes its handshake.
pub type PeerConnectHandler = Arc<dyn Fn(&Server, PeerId) + Send + Sync>;
/// Receives the outcome of [`super::Server::request`], once.
pub type PeerReplyHandler = Box<dyn FnOnce(&Server, PeerId, crate::Result<Message>) + Send>;
/// Called when a connected peer's connection ends.
pub type PeerDisconnectHandler = Arc<dyn Fn(&Server, PeerId, DisconnectReason) + Send + Sync>;

/// Called when the cluster's bus is reached (`true`) or lost (`false`).
pub type ClusterStateHandler = Arc<dyn Fn(&Server, bool) + Send + Sync>;

/// A server's registered callbacks; kept across restarts.
pub(crate) type Callbacks =
    crate::callbacks::CallbackTable<PeerMessageHandler, PeerConnectHandler, PeerDisconnectHandler>;
