//! The table of registered callbacks, shared by the client and the server
//! (each with its own handler types): routes by type code, then `on_recv`,
//! plus the connect and disconnect handlers.
//!
//! Handlers are looked up when a callback is about to run, never when its
//! message was received, so a handler removed or replaced is never started
//! again. Each handler counts its calls in progress: removing or replacing
//! one can wait until it is no longer running, so the caller may release
//! what the old handler uses. No lock is held while a handler runs.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};

/// A registered handler and its calls in progress.
pub(crate) struct Registered<H> {
    handler: H,
    calls: Mutex<usize>,
    idle: Condvar,
}

impl<H> Registered<H> {
    fn new(handler: H) -> Arc<Self> {
        Arc::new(Registered {
            handler,
            calls: Mutex::new(0),
            idle: Condvar::new(),
        })
    }

    /// Runs `call` with the handler, counted as a call in progress (also if
    /// it panics).
    pub fn call<R>(&self, call: impl FnOnce(&H) -> R) -> R {
        struct InProgress<'a, H>(&'a Registered<H>);
        impl<H> Drop for InProgress<'_, H> {
            fn drop(&mut self) {
                let mut calls = self.0.calls();
                *calls -= 1;
                if *calls == 0 {
                    self.0.idle.notify_all();
                }
            }
        }
        *self.calls() += 1;
        let _in_progress = InProgress(self);
        call(&self.handler)
    }

    /// Waits until no call is in progress.
    fn wait_idle(&self) {
        let mut calls = self.calls();
        while *calls > 0 {
            calls = self.idle.wait(calls).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, usize> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A handler taken out of the table, still possibly running.
type Retired<H> = Option<Arc<Registered<H>>>;

/// Registered callbacks: `M` handles messages, `C` connections, `D`
/// disconnections.
pub(crate) struct CallbackTable<M, C, D> {
    table: RwLock<Table<M, C, D>>,
}

struct Table<M, C, D> {
    routes: HashMap<u16, Arc<Registered<M>>>,
    on_recv: Retired<M>,
    on_connect: Retired<C>,
    on_disconnect: Retired<D>,
}

impl<M, C, D> Default for CallbackTable<M, C, D> {
    fn default() -> Self {
        CallbackTable {
            table: RwLock::new(Table {
                routes: HashMap::new(),
                on_recv: None,
                on_connect: None,
                on_disconnect: None,
            }),
        }
    }
}

impl<M, C, D> CallbackTable<M, C, D> {
    /// Sets (or clears) the handler for messages without a route. With
    /// `wait`, returns once the previous one is not running (a caller
    /// inside a callback passes `false`: it could be waiting for itself).
    pub fn set_on_recv(&self, handler: Option<M>, wait: bool) {
        let old = std::mem::replace(&mut self.write().on_recv, handler.map(Registered::new));
        retire(old, wait);
    }

    /// Sets (or clears) the connection handler; `wait` as for `set_on_recv`.
    pub fn set_on_connect(&self, handler: Option<C>, wait: bool) {
        let old = std::mem::replace(&mut self.write().on_connect, handler.map(Registered::new));
        retire(old, wait);
    }

    /// Sets (or clears) the disconnection handler; `wait` as for
    /// `set_on_recv`.
    pub fn set_on_disconnect(&self, handler: Option<D>, wait: bool) {
        let old = std::mem::replace(
            &mut self.write().on_disconnect,
            handler.map(Registered::new),
        );
        retire(old, wait);
    }

    /// Routes `type_code` to `handler`; `who` names the API in the fix
    /// (`"veltix_client"` or `"veltix_server"`).
    pub fn route(&self, who: &str, type_code: u16, handler: M) -> Result<()> {
        let mut table = self.write();
        if table.routes.contains_key(&type_code) {
            return Err(Error::AlreadyExists(format!(
                "type {type_code} already has a route. Fix: {who}_unroute() it first"
            )));
        }
        table.routes.insert(type_code, Registered::new(handler));
        Ok(())
    }

    /// Removes the route of `type_code`; `wait` as for `set_on_recv`.
    pub fn unroute(&self, type_code: u16, wait: bool) -> Result<()> {
        let old = self.write().routes.remove(&type_code);
        match old {
            Some(old) => {
                retire(Some(old), wait);
                Ok(())
            }
            None => Err(Error::NotFound(format!(
                "type {type_code} has no route. Fix: nothing to remove; check the type code"
            ))),
        }
    }

    /// The handler for a message now: its type's route, else `on_recv`.
    pub fn message_handler(&self, type_code: u16) -> Retired<M> {
        let table = self.read();
        table
            .routes
            .get(&type_code)
            .or(table.on_recv.as_ref())
            .cloned()
    }

    /// The connection handler now.
    pub fn on_connect(&self) -> Retired<C> {
        self.read().on_connect.clone()
    }

    /// The disconnection handler now.
    pub fn on_disconnect(&self) -> Retired<D> {
        self.read().on_disconnect.clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, Table<M, C, D>> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table<M, C, D>> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Lets a handler taken out of the table finish its running calls, if
/// asked to wait (the table's lock is already released).
fn retire<H>(old: Retired<H>, wait: bool) {
    if let (Some(old), true) = (old, wait) {
        old.wait_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    type Handler = Arc<dyn Fn() + Send + Sync>;

    #[test]
    fn unroute_waits_for_a_running_call_and_the_handler_never_starts_again() {
        let table: Arc<CallbackTable<Handler, (), ()>> = Arc::default();
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        let slow: Handler = Arc::new(move || {
            std::thread::sleep(Duration::from_millis(100));
            done.store(true, Ordering::SeqCst);
        });
        table.route("veltix_test", 200, slow).unwrap();
        let running = table.message_handler(200).unwrap();
        let call = std::thread::spawn(move || running.call(|h| h()));
        std::thread::sleep(Duration::from_millis(20));
        table.unroute(200, true).unwrap();
        assert!(finished.load(Ordering::SeqCst), "unroute returned mid-call");
        assert!(table.message_handler(200).is_none());
        call.join().unwrap();
        assert!(table.unroute(200, true).is_err());
    }

    #[test]
    fn replacing_on_recv_waits_and_routes_come_first() {
        let table: CallbackTable<u32, (), ()> = CallbackTable::default();
        table.set_on_recv(Some(1), true);
        table.route("veltix_test", 7, 2).unwrap();
        let handler = |t| table.message_handler(t).map(|r| r.call(|h| *h));
        assert_eq!((handler(7), handler(8)), (Some(2), Some(1)));
        table.set_on_recv(None, true);
        assert_eq!((handler(7), handler(8)), (Some(2), None));
    }
}
