//! The callback types of a client.

use std::sync::Arc;

use super::{Client, DisconnectState};
use crate::protocol::Message;

/// Called with a received message (route or `on_recv`).
pub type MessageHandler = Arc<dyn Fn(&Client, &Message) + Send + Sync>;
/// Called when a connection (or reconnection) completes.
pub type ConnectHandler = Arc<dyn Fn(&Client) + Send + Sync>;
/// Called on every disconnection step (see [`DisconnectState`]).
/// Receives the outcome of [`super::Client::request`], once.
pub type ReplyHandler = Box<dyn FnOnce(&Client, crate::Result<Message>) + Send>;
pub type DisconnectHandler = Arc<dyn Fn(&Client, &DisconnectState) + Send + Sync>;

/// A client's registered callbacks; kept across reconnections.
pub(crate) type Callbacks =
    crate::callbacks::CallbackTable<MessageHandler, ConnectHandler, DisconnectHandler>;
