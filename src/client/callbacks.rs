//! The callbacks a client runs on its worker pool.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Client, DisconnectState};
use crate::protocol::Message;

/// Called with a received message (route or `on_recv`).
pub type MessageHandler = Arc<dyn Fn(&Client, &Message) + Send + Sync>;
/// Called when a connection (or reconnection) completes.
pub type ConnectHandler = Arc<dyn Fn(&Client) + Send + Sync>;
/// Called on every disconnection step (see [`DisconnectState`]).
pub type DisconnectHandler = Arc<dyn Fn(&Client, &DisconnectState) + Send + Sync>;

/// Registered callbacks; kept across reconnections.
#[derive(Default)]
pub(crate) struct Callbacks {
    pub routes: HashMap<u16, MessageHandler>,
    pub on_recv: Option<MessageHandler>,
    pub on_connect: Option<ConnectHandler>,
    pub on_disconnect: Option<DisconnectHandler>,
}

impl Callbacks {
    /// The handler for a message: its type's route, else `on_recv`.
    pub fn handler_for(&self, type_code: u16) -> Option<MessageHandler> {
        self.routes
            .get(&type_code)
            .or(self.on_recv.as_ref())
            .cloned()
    }
}
