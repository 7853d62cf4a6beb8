//! The table of registered callbacks, shared by the client and the server
//! (each with its own handler types): routes by type code, then `on_recv`,
//! plus the connect and disconnect handlers.
//!
//! Handlers are looked up when a callback is about to run, never when its
//! message was received, so a handler removed or replaced is never started
//! again. Each handler counts its calls in progress: removing or replacing
//! one can wait until it is no longer running, so the caller may release
//! what the old handler uses. No lock is held while a handler runs.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::thread::LocalKey;

use crate::error::{Error, Result};

/// A registered handler and its calls in progress.
pub(crate) struct Registered<H> {
    handler: H,
    /// In its own allocation, so a finishing call can signal it after
    /// letting go of the handler.
    calls: Arc<Calls>,
}

/// The calls in progress of one handler.
#[derive(Default)]
struct Calls {
    running: AtomicUsize,
    /// Removers waiting for `running` to reach 0: only then does the last
    /// call signal `idle` (a signal is a system call).
    waiting: AtomicUsize,
    /// Held by a waiting remover between its check and its wait, and by
    /// the last call while it signals: no signal is lost between them.
    lock: Mutex<()>,
    idle: Condvar,
}

impl Calls {
    /// Counts a call as in progress.
    fn begin(&self) {
        // SeqCst, against a remover's change count (see
        // `CallbackTable::call_message_handler`) and its `waiting`.
        self.running.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a call as ended; the last one wakes waiting removers.
    fn end(&self) {
        // A remover counts itself in `waiting` before it reads `running`,
        // and this reads `waiting` after its decrement (both SeqCst): if
        // the remover saw this call running, this sees it waiting.
        if self.running.fetch_sub(1, Ordering::SeqCst) == 1
            && self.waiting.load(Ordering::SeqCst) > 0
        {
            let _waiting = self.lock();
            self.idle.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
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
        self.calls.begin();
        Call {
            registered: Some(self.clone()),
            calls: self.calls.clone(),
        }
    }

    /// Waits until no call is in progress: then this is the handler's last
    /// reference, and dropping it releases what it holds here.
    fn wait_idle(&self) {
        let calls = &self.calls;
        let mut lock = calls.lock();
        calls.waiting.fetch_add(1, Ordering::SeqCst);
        while calls.running.load(Ordering::SeqCst) > 0 {
            lock = calls.idle.wait(lock).unwrap_or_else(|e| e.into_inner());
        }
        calls.waiting.fetch_sub(1, Ordering::SeqCst);
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
        self.calls.end();
    }
}

/// A handler taken out of the table, still possibly running.
type Retired<H> = Option<Arc<Registered<H>>>;

/// Registered callbacks: `M` handles messages, `C` connections, `D`
/// disconnections.
pub(crate) struct CallbackTable<M, C, D> {
    /// Tells this table from any other, past or future, in a
    /// [`HandlerCache`].
    serial: u64,
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

/// The message handler a thread used last, kept while the table is
/// unchanged: a call through it costs no lock and no look-up.
///
/// Within a batch of messages it holds the handler's call in progress, so
/// the next message of the same type costs one load; [`HandlerCache::release`]
/// (or a drop) ends it when the batch ends, and a change to the table ends
/// it at the next message. Between batches it holds no call and does not
/// keep the handler alive: a remover waits at most for one callback, and
/// still drops the handler last.
pub(crate) struct HandlerCache<M> {
    entry: Option<CachedHandler<M>>,
    /// The entry's handler, its call counted in progress, until released.
    held: Option<Arc<Registered<M>>>,
}

struct CachedHandler<M> {
    /// The table it was looked up in ([`CallbackTable::serial`]).
    table: u64,
    type_code: u16,
    /// The table's change count when it was looked up.
    changes: u64,
    /// The handler, and its calls; `None`: the type had none.
    handler: Option<(Weak<Registered<M>>, Arc<Calls>)>,
}

impl<M> HandlerCache<M> {
    /// An empty cache, for a `thread_local!`.
    pub const fn new() -> Self {
        HandlerCache {
            entry: None,
            held: None,
        }
    }

    /// Ends the call it holds, if any: the batch is over.
    pub fn release(&mut self) {
        if let Some(registered) = self.held.take() {
            // The handler first: a waiting remover then drops it last.
            drop(registered);
            if let Some(CachedHandler {
                handler: Some((_, calls)),
                ..
            }) = &self.entry
            {
                calls.end();
            }
        }
    }
}

impl<M> Drop for HandlerCache<M> {
    fn drop(&mut self) {
        self.release();
    }
}

/// Runs `calls` with this thread's handler cache in `key`, taken out
/// meanwhile (a handler that gets here again finds an empty one); the call
/// it holds at the end is released.
pub(crate) fn with_thread_cache<M: 'static, T>(
    key: &'static LocalKey<Cell<HandlerCache<M>>>,
    calls: impl FnOnce(&mut HandlerCache<M>) -> T,
) -> T {
    key.with(|cell| {
        let mut cache = cell.take();
        let out = calls(&mut cache);
        cache.release();
        cell.set(cache);
        out
    })
}

impl<M> Default for HandlerCache<M> {
    fn default() -> Self {
        HandlerCache::new()
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
        static TABLES: AtomicU64 = AtomicU64::new(0);
        CallbackTable {
            serial: TABLES.fetch_add(1, Ordering::Relaxed),
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

    /// Calls `run` with the handler for a message of `type_code` now (its
    /// type's route, else `on_recv`) through `cache`; returns whether
    /// there was one. The call stays counted in `cache` for the next
    /// message (see [`HandlerCache`]).
    ///
    /// While the table is unchanged since `cache` looked the type up, a
    /// call is counted and the change count read again (both SeqCst): a
    /// remover changes the count before it reads the calls in progress,
    /// so either this sees the change and looks up again, or the remover
    /// sees this call and waits for it. A removed handler never starts.
    pub fn call_message_handler(
        &self,
        type_code: u16,
        cache: &mut HandlerCache<M>,
        run: impl FnOnce(&M),
    ) -> bool {
        let changes = self.changes.load(Ordering::SeqCst);
        let current = cache.entry.as_ref().filter(|cached| {
            cached.table == self.serial
                && cached.type_code == type_code
                && cached.changes == changes
        });
        if let Some(cached) = current {
            if let Some(held) = &cache.held {
                // Counted since a load that saw no change, and unchanged.
                run(&held.handler);
                return true;
            }
            let Some((handler, calls)) = &cached.handler else {
                return false;
            };
            calls.begin();
            if self.changes.load(Ordering::SeqCst) == changes {
                if let Some(registered) = handler.upgrade() {
                    run(&cache.held.insert(registered).handler);
                    return true;
                }
            }
            calls.end();
        }
        cache.release();
        self.look_up_and_call(type_code, cache, run)
    }

    /// Looks the handler for `type_code` up, keeps it in `cache`, and calls
    /// `run` with it, counted as in progress from under the table's lock.
    fn look_up_and_call(
        &self,
        type_code: u16,
        cache: &mut HandlerCache<M>,
        run: impl FnOnce(&M),
    ) -> bool {
        {
            let table = self.read();
            let registered = table.routes.get(&type_code).or(table.on_recv.as_ref());
            cache.entry = Some(CachedHandler {
                table: self.serial,
                type_code,
                // Read under the lock: no change can come before the call
                // is counted.
                changes: self.changes.load(Ordering::SeqCst),
                handler: registered.map(|r| (Arc::downgrade(r), r.calls.clone())),
            });
            if let Some(registered) = registered {
                registered.calls.begin();
                cache.held = Some(registered.clone());
            }
        }
        match &cache.held {
            Some(held) => {
                run(&held.handler);
                true
            }
            None => false,
        }
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
        // SeqCst: see `call_message_handler`.
        self.changes.fetch_add(1, Ordering::SeqCst);
        table
    }
}

/// Lets a handler taken out of the table finish its running calls, if
/// asked to wait (the table's lock is already released); then this holds
/// its last reference, and what the handler owns is released here.
/// One handler outside a [`CallbackTable`] (such as a server's cluster
/// state handler), with the table's rules: looked up when a call is about
/// to run, and replaced or cleared only once no call of the old one runs.
pub(crate) struct HandlerSlot<H>(RwLock<Retired<H>>);

impl<H> Default for HandlerSlot<H> {
    fn default() -> Self {
        HandlerSlot(RwLock::new(None))
    }
}

impl<H> HandlerSlot<H> {
    /// Sets (or clears) the handler; `wait` as for
    /// [`CallbackTable::set_on_recv`].
    pub fn set(&self, handler: Option<H>, wait: bool) {
        let mut slot = self.0.write().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::replace(&mut *slot, handler.map(Registered::new));
        drop(slot);
        retire(old, wait);
    }

    /// A call of the handler now, if one is set.
    pub fn call(&self) -> Option<Call<H>> {
        let slot = self.0.read().unwrap_or_else(|e| e.into_inner());
        slot.as_ref().map(Registered::start_call)
    }
}

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

    /// Sets its flag when dropped (with the handler that owns it).
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_cached_handler_holds_its_call_until_released_and_nothing_after() {
        let table: Arc<CallbackTable<Handler, (), ()>> = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        let (counted, flag) = (hits.clone(), DropFlag(dropped.clone()));
        let handler: Handler = Arc::new(move || {
            let _owned = &flag;
            counted.fetch_add(1, Ordering::SeqCst);
        });
        table.route("test", 1, handler).unwrap();
        let mut cache = HandlerCache::new();
        let call = |cache: &mut HandlerCache<Handler>| {
            table.call_message_handler(1, cache, |handler| handler())
        };
        for _ in 0..3 {
            assert!(call(&mut cache));
        }
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        // Within a batch the cache holds the call: a remover waits.
        let remover = {
            let table = table.clone();
            std::thread::spawn(move || table.unroute(1, true))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!remover.is_finished(), "the held call was not waited for");
        assert!(!dropped.load(Ordering::SeqCst), "dropped while held");
        // Released (the batch ended), it holds nothing: the remover goes
        // on and drops the handler itself.
        cache.release();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !remover.is_finished() {
            assert!(std::time::Instant::now() < deadline, "the remover waits");
            std::thread::sleep(Duration::from_millis(1));
        }
        remover.join().unwrap().unwrap();
        assert!(
            dropped.load(Ordering::SeqCst),
            "dropped before unroute returned"
        );
        assert!(!call(&mut cache), "unrouted");
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        // A type without a handler is cached too, until a change.
        let mut other = HandlerCache::new();
        assert!(!table.call_message_handler(2, &mut other, |handler| handler()));
        table.route("test", 2, Arc::new(|| {})).unwrap();
        assert!(table.call_message_handler(2, &mut other, |handler| handler()));
    }

    #[test]
    fn a_held_call_ends_at_the_next_message_after_a_change() {
        let table: Arc<CallbackTable<Handler, (), ()>> = Arc::default();
        table.route("test", 1, Arc::new(|| {})).unwrap();
        table.route("test", 2, Arc::new(|| {})).unwrap();
        let mut cache = HandlerCache::new();
        assert!(table.call_message_handler(1, &mut cache, |handler| handler()));
        let remover = {
            let table = table.clone();
            std::thread::spawn(move || table.unroute(1, true))
        };
        // The next message of the batch, of the same type, sees the
        // change: the removed handler does not run, the held call ends,
        // and the batch goes on.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while table.changes.load(Ordering::SeqCst) == 2 {
            assert!(std::time::Instant::now() < deadline, "never removed");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!table.call_message_handler(1, &mut cache, |handler| handler()));
        while !remover.is_finished() {
            assert!(std::time::Instant::now() < deadline, "the remover waits");
            std::thread::sleep(Duration::from_millis(1));
        }
        remover.join().unwrap().unwrap();
        assert!(table.call_message_handler(2, &mut cache, |handler| handler()));
    }

    #[test]
    fn a_cached_handler_never_starts_once_unroute_returned() {
        let table: Arc<CallbackTable<Handler, (), ()>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let inside = Arc::new(AtomicBool::new(false));
        let caller = {
            let (table, stop) = (table.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut cache = HandlerCache::new();
                while !stop.load(Ordering::SeqCst) {
                    // Batches of 4 messages.
                    for _ in 0..4 {
                        table.call_message_handler(1, &mut cache, |handler| handler());
                    }
                    cache.release();
                }
            })
        };
        for round in 0..20 {
            let (counted, busy) = (hits.clone(), inside.clone());
            let handler: Handler = Arc::new(move || {
                busy.store(true, Ordering::SeqCst);
                // Long enough that an unroute usually comes mid-call.
                let until = std::time::Instant::now() + Duration::from_micros(200);
                while std::time::Instant::now() < until {
                    std::hint::spin_loop();
                }
                counted.fetch_add(1, Ordering::SeqCst);
                busy.store(false, Ordering::SeqCst);
            });
            table.route("test", 1, handler).unwrap();
            let started = hits.load(Ordering::SeqCst);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while hits.load(Ordering::SeqCst) == started {
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round}: never called"
                );
                std::thread::yield_now();
            }
            table.unroute(1, true).unwrap();
            assert!(
                !inside.load(Ordering::SeqCst),
                "round {round}: still running"
            );
            let after = hits.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            assert_eq!(
                hits.load(Ordering::SeqCst),
                after,
                "round {round}: started after"
            );
        }
        stop.store(true, Ordering::SeqCst);
        caller.join().unwrap();
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
        let calling = table.clone();
        let call = std::thread::spawn(move || {
            calling.call_message_handler(200, &mut HandlerCache::new(), |handler| handler())
        });
        std::thread::sleep(Duration::from_millis(20));
        table.unroute(200, true).unwrap();
        assert!(finished.load(Ordering::SeqCst), "unroute returned mid-call");
        assert!(!table.call_message_handler(200, &mut HandlerCache::new(), |_| {}));
        assert!(call.join().unwrap());
        assert!(table.unroute(200, true).is_err());
    }

    #[test]
    fn replacing_on_recv_waits_and_routes_come_first() {
        let table: CallbackTable<u32, (), ()> = CallbackTable::default();
        table.set_on_recv(Some(1), true);
        table.route("veltix_test", 7, 2).unwrap();
        let handler = |t| {
            let mut found = None;
            table.call_message_handler(t, &mut HandlerCache::new(), |h| found = Some(*h));
            found
        };
        assert_eq!((handler(7), handler(8)), (Some(2), Some(1)));
        table.set_on_recv(None, true);
        assert_eq!((handler(7), handler(8)), (Some(2), None));
    }

    #[test]
    fn a_slot_is_cleared_only_once_its_running_call_ends() {
        let slot: Arc<HandlerSlot<Handler>> = Arc::default();
        assert!(slot.call().is_none());
        slot.set(Some(Arc::new(|| {})), true);
        let running = slot.call().expect("set");
        (running.handler())();
        let clearer = {
            let slot = slot.clone();
            std::thread::spawn(move || slot.set(None, true))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !clearer.is_finished(),
            "the running call was not waited for"
        );
        assert!(slot.call().is_none(), "no new call starts meanwhile");
        drop(running);
        clearer.join().unwrap();
    }
}
