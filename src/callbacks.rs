//! The table of registered callbacks, shared by the client and the server
//! (each with its own handler types): routes by type code, then `on_recv`,
//! plus the connect and disconnect handlers. Handlers are `Arc`s, cloned
//! out under the lock and run after it is released.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// Registered callbacks: `M` handles messages, `C` connections, `D`
/// disconnections.
pub(crate) struct Callbacks<M, C, D> {
    routes: HashMap<u16, M>,
    pub on_recv: Option<M>,
    pub on_connect: Option<C>,
    pub on_disconnect: Option<D>,
}

impl<M, C, D> Default for Callbacks<M, C, D> {
    fn default() -> Self {
        Callbacks {
            routes: HashMap::new(),
            on_recv: None,
            on_connect: None,
            on_disconnect: None,
        }
    }
}

impl<M: Clone, C, D> Callbacks<M, C, D> {
    /// Routes `type_code` to `handler`; `who` names the API in the fix
    /// (`"veltix_client"` or `"veltix_server"`).
    pub fn route(&mut self, who: &str, type_code: u16, handler: M) -> Result<()> {
        if self.routes.contains_key(&type_code) {
            return Err(Error::AlreadyExists(format!(
                "type {type_code} already has a route. Fix: {who}_unroute() it first"
            )));
        }
        self.routes.insert(type_code, handler);
        Ok(())
    }

    /// Removes the route of `type_code`.
    pub fn unroute(&mut self, type_code: u16) -> Result<()> {
        match self.routes.remove(&type_code) {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(format!(
                "type {type_code} has no route. Fix: nothing to remove; check the type code"
            ))),
        }
    }

    /// The handler for a message: its type's route, else `on_recv`.
    pub fn handler_for(&self, type_code: u16) -> Option<M> {
        self.routes
            .get(&type_code)
            .or(self.on_recv.as_ref())
            .cloned()
    }
}
