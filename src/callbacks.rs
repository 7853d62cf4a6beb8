//! The table of registered callbacks, shared by the client and the server
//! (each with its own handler types): routes by type code, then `on_recv`,
//! plus the connect and disconnect handlers.
//!
//! Handlers are looked up when a callback is about to run, never when its
//! message was received, so a handler removed or replaced is never started
//! again. Each handler counts its calls in progress: removing or replacing
//! one can wait until it is no longer running, so the caller may release
//! what the old handler uses. No lock is held while a handler runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};

/// A registered handler and its calls in progress.
pub(crate) struct Registered<H> {
    handler: H,
    /// In its own allocation, so a finishing call can signal it after
    /// letting go of the handler.
    calls: Arc<Calls>,
}

#[derive(Default)]
struct Calls {
    count: Mutex<CallCount>,
    idle: Condvar,
}

#[derive(Default)]
struct CallCount {
    running: usize,
    /// Removers waiting for `running` to reach 0: only then does the last
    /// call signal `idle` (a signal is a system call).
    waiting: usize,
}

impl Calls {
    fn count(&self) -> std::sync::MutexGuard<'_, CallCount> {
        self.count.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<H> Registered<H> {
    fn new(handler: H) -> Arc<Self> {
        Arc::new(Registered {
            handler,
            calls: Arc::default(),
        })
    }

    /// A call of the handler, counted as in progress from now (the table's
    /// lock is held, so a removal cannot miss it) until it is dropped.
    fn start_call(self: &Arc<Self>) -> Call<H> {
        self.calls.count().running += 1;
        Call {
            registered: Some(self.clone()),
            calls: self.calls.clone(),
        }
    }

    /// Waits until no call is in progress: then this is the handler's last
    /// reference, and dropping it releases what it holds here.
    fn wait_idle(&self) {
        let mut count = self.calls.count();
        count.waiting += 1;
        while count.running > 0 {
            count = self
                .calls
                .idle
                .wait(count)
                .unwrap_or_else(|e| e.into_inner());
        }
        count.waiting -= 1;
    }
}

/// One call of a handler looked up in the table; in progress until dropped.
pub(crate) struct Call<H> {
    registered: Option<Arc<Registered<H>>>,
    calls: Arc<Calls>,
}

impl<H> Call<H> {
    /// The handler to call.
    pub fn handler(&self) -> &H {
        &self.registered.as_ref().expect("until dropped").handler
    }
}

impl<H> Drop for Call<H> {
    fn drop(&mut self) {
        // The handler first: once the count reaches 0, a waiting remover
        // holds its last reference.
        self.registered.take();
        let mut count = self.calls.count();
        count.running -= 1;
        if count.running == 0 && count.waiting > 0 {
            self.calls.idle.notify_all();
        }
    }
}

/// A handler taken out of the table, still possibly running.
type Retired<H> = Option<Arc<Registered<H>>>;

/// Registered callbacks: `M` handles messages, `C` connections, `D`
/// disconnections.
pub(crate) struct CallbackTable<M, C, D> {
    table: RwLock<Table<M, C, D>>,
    /// Counts changes to the table (under its write lock), so a
    /// [`HandlerCache`] knows when its handler may be stale.
    changes: AtomicU64,
}

/// Whether the last type looked up by [`CallbackTable::handles`] had a
/// handler, and the table's change count then.
#[derive(Default)]
pub(crate) struct HandledTypes {
    last: Option<(u16, u64, bool)>,
}

/// The handler a batch of messages used last, kept for the next message of
/// the same type while the table is unchanged: one atomic load per message
/// instead of a lookup. Its call counts as in progress until the batch
/// looks up another handler or drops the cache, so a removal that waits
/// waits at most until then.
pub(crate) struct HandlerCache<M> {
    entry: Option<CachedCall<M>>,
}

struct CachedCall<M> {
    type_code: u16,
    /// The table's change count when it was looked up.
    changes: u64,
    call: Option<Call<M>>,
}

impl<M> Default for HandlerCache<M> {
    fn default() -> Self {
        HandlerCache { entry: None }
    }
}

struct Table<M, C, D> {
    /// Ordered, not hashed: a lookup by a peer's type code is a few
    /// comparisons, where SipHash cost more than the rest of a lookup.
    routes: BTreeMap<u16, Arc<Registered<M>>>,
    on_recv: Retired<M>,
    on_connect: Retired<C>,
    on_disconnect: Retired<D>,
}

impl<M, C, D> Default for CallbackTable<M, C, D> {
    fn default() -> Self {
        CallbackTable {
            table: RwLock::new(Table {
                routes: BTreeMap::new(),
                on_recv: None,
                on_connect: None,
                on_disconnect: None,
            }),
            changes: AtomicU64::new(0),
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

    /// A call of the handler for a message now: its type's route, else
    /// `on_recv`.
    pub fn message_handler(&self, type_code: u16) -> Option<Call<M>> {
        let table = self.read();
        let registered = table.routes.get(&type_code).or(table.on_recv.as_ref());
        registered.map(Registered::start_call)
    }

    /// The handler for a message now, as [`CallbackTable::message_handler`],
    /// reusing `cache` while it is still current.
    pub fn cached_message_handler<'a>(
        &self,
        type_code: u16,
        cache: &'a mut HandlerCache<M>,
    ) -> Option<&'a M> {
        let current = cache.entry.as_ref().is_some_and(|cached| {
            cached.type_code == type_code && cached.changes == self.changes.load(Ordering::Acquire)
        });
        if !current {
            // The old call ends first: a remover waiting for it may go.
            cache.entry = None;
            let table = self.read();
            let registered = table.routes.get(&type_code).or(table.on_recv.as_ref());
            cache.entry = Some(CachedCall {
                type_code,
                changes: self.changes.load(Ordering::Acquire),
                call: registered.map(Registered::start_call),
            });
        }
        let cached = cache.entry.as_ref()?;
        cached.call.as_ref().map(Call::handler)
    }

    /// A call of the connection handler now.
    pub fn on_connect(&self) -> Option<Call<C>> {
        self.read().on_connect.as_ref().map(Registered::start_call)
    }

    /// A call of the disconnection handler now.
    pub fn on_disconnect(&self) -> Option<Call<D>> {
        self.read()
            .on_disconnect
            .as_ref()
            .map(Registered::start_call)
    }

    /// Whether a message of `type_code` has a handler now, reusing `seen`
    /// (one atomic load) while the table is unchanged since it last looked
    /// this type up.
    pub fn handles(&self, type_code: u16, seen: &mut HandledTypes) -> bool {
        let changes = self.changes.load(Ordering::Acquire);
        if let Some((cached_type, cached_changes, handled)) = seen.last {
            if cached_type == type_code && cached_changes == changes {
                return handled;
            }
        }
        let table = self.read();
        let handled = table.routes.contains_key(&type_code) || table.on_recv.is_some();
        // Read under the lock: no change can come between it and the look-up.
        seen.last = Some((type_code, self.changes.load(Ordering::Acquire), handled));
        handled
    }

    fn read(&self) -> RwLockReadGuard<'_, Table<M, C, D>> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table<M, C, D>> {
        let table = self.table.write().unwrap_or_else(|e| e.into_inner());
        self.changes.fetch_add(1, Ordering::AcqRel);
        table
    }
}

/// Lets a handler taken out of the table finish its running calls, if
/// asked to wait (the table's lock is already released); then this holds
/// its last reference, and what the handler owns is released here.
fn retire<H>(old: Retired<H>, wait: bool) {
    if let (Some(old), true) = (&old, wait) {
        old.wait_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::time::Duration;

    type Handler = Arc<dyn Fn() + Send + Sync>;

    #[test]
    fn whether_a_type_is_handled_is_looked_up_again_after_any_change() {
        let table: CallbackTable<Handler, (), ()> = CallbackTable::default();
        let mut seen = HandledTypes::default();
        assert!(!table.handles(1, &mut seen));
        assert!(!table.handles(1, &mut seen), "cached");
        table.route("test", 1, Arc::new(|| {})).unwrap();
        assert!(table.handles(1, &mut seen), "routed since");
        assert!(!table.handles(2, &mut seen), "another type");
        assert!(table.handles(1, &mut seen));
        table.unroute(1, false).unwrap();
        assert!(!table.handles(1, &mut seen), "unrouted since");
    }

    #[test]
    fn a_cached_handler_is_looked_up_again_after_any_change_and_releases_its_call() {
        let table: Arc<CallbackTable<Handler, (), ()>> = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let handler: Handler = Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        table.route("test", 1, handler).unwrap();
        let mut cache = HandlerCache::default();
        for _ in 0..3 {
            (table.cached_message_handler(1, &mut cache).expect("routed"))();
        }
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        // A remover that waits is held only by the cache's call, which the
        // next look-up (after the change) lets go of.
        let remover = {
            let table = table.clone();
            std::thread::spawn(move || table.unroute(1, true))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !remover.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the remover still waits for the cached call"
            );
            if table.changes.load(Ordering::SeqCst) > 1 {
                assert!(
                    table.cached_message_handler(1, &mut cache).is_none(),
                    "unrouted"
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        remover.join().unwrap().unwrap();
        assert!(table.cached_message_handler(1, &mut cache).is_none());
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

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
        let call = std::thread::spawn(move || (running.handler())());
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
        let handler = |t| table.message_handler(t).map(|call| *call.handler());
        assert_eq!((handler(7), handler(8)), (Some(2), Some(1)));
        table.set_on_recv(None, true);
        assert_eq!((handler(7), handler(8)), (Some(2), None));
    }
}
