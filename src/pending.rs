//! Requests awaiting a reply, keyed by request id: blocking ones
//! (`send_and_wait`, `ping`), whose caller waits, and asynchronous ones
//! (`request`), whose outcome goes to a function.
//!
//! Each request completes exactly once: with its reply (matched on the
//! thread that reads the connection), with a timeout, or with an error as
//! soon as the connection closes. Asynchronous requests time out on one
//! timer thread per table, started with the first of them. Each request has an owner, the connection
//! it was sent on: a client has one (owner 0), a server one per peer, and
//! only a message from the owner completes a request.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::protocol::ids::IdAllocator;
use crate::protocol::Message;
use crate::reply_slot::{self, ReplySlot};
use crate::reply_spin::ReplySpin;

/// The outcome of a blocked request.
type Blocked = ReplySlot<Result<Message>>;

thread_local! {
    /// The slot this thread's blocked requests reuse.
    static OWN_SLOT: Arc<Blocked> = Arc::new(ReplySlot::new());
}

/// The pending-request table and the id allocator that avoids its ids.
pub(crate) struct PendingRequests {
    shared: Arc<Shared>,
}

struct Shared {
    /// The ids requests get: a message with another id answers none of
    /// them, without a look at the table (and its lock).
    ids: IdAllocator,
    inner: Mutex<Inner>,
    /// Wakes the timer thread when an earlier deadline arrives.
    timer: Condvar,
    /// Whether a caller about to wait spins first.
    spin: ReplySpin,
}

struct Inner {
    ids: IdAllocator,
    waiters: HashMap<u16, Waiter, BuildHasherDefault<IdHasher>>,
    /// Deadlines of asynchronous requests: (when, id, serial).
    deadlines: BinaryHeap<Reverse<(Instant, u16, u64)>>,
    /// Tells apart two requests that used the same id, one after the other.
    next_serial: u64,
    timer_started: bool,
    /// When the timer thread, asleep, wakes up by itself (`None` while it
    /// is awake: it looks at the deadlines before it sleeps again).
    timer_wakes_at: Option<Instant>,
}

/// Hashes a request id by one multiplication: ids are chosen by this
/// side, never by a peer, so nobody can pick colliding ones (SipHash's
/// defence costs a round trip more time than the rest of the table).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u16(u16::from(*byte));
        }
    }

    fn write_u16(&mut self, id: u16) {
        // Fibonacci hashing: spreads consecutive ids over the high bits
        // hashbrown uses.
        self.0 = (self.0 ^ u64::from(id)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What a request's outcome is handed to, once.
pub(crate) type OnOutcome = Box<dyn FnOnce(Result<Message>) + Send>;

struct Waiter {
    owner: u64,
    serial: u64,
    outcome: Outcome,
}

enum Outcome {
    /// A caller blocked in `send_and_wait`.
    Waiting(Arc<Blocked>),
    /// An asynchronous request, with the time it was given.
    Async(OnOutcome, Duration),
}

impl Waiter {
    fn deliver(self, result: Result<Message>) {
        match self.outcome {
            Outcome::Waiting(slot) => slot.fill(result),
            Outcome::Async(on_outcome, _) => on_outcome(result),
        }
    }
}

impl Inner {
    /// Keeps `deadline` for request `id` (registered as `serial`). A
    /// deadline stays until it comes, though its request is answered long
    /// before: once most of them are such, they are dropped, so the heap
    /// never holds more than twice the pending requests (plus a few), at
    /// an amortised cost of O(1) per request.
    fn push_deadline(&mut self, deadline: Instant, id: u16, serial: u64) {
        const SLACK: usize = 64;
        if self.deadlines.len() >= 2 * self.waiters.len() + SLACK {
            let waiters = &self.waiters;
            self.deadlines.retain(|Reverse((_, id, serial))| {
                waiters.get(id).is_some_and(|w| w.serial == *serial)
            });
        }
        self.deadlines.push(Reverse((deadline, id, serial)));
    }

    /// The next id no pending request uses.
    fn free_id(&mut self) -> Result<u16> {
        let waiters = &self.waiters;
        self.ids
            .allocate(|id| waiters.contains_key(&id))
            .ok_or(Error::IdsExhausted)
    }
}

/// A registered request: its id and where its outcome arrives.
pub(crate) struct PendingRequest {
    pub id: u16,
    outcome: Arc<Blocked>,
}

impl PendingRequests {
    /// A table allocating ids from `ids`, whose waiters spin up to
    /// `reply_spin` where a core is idle.
    pub fn new(ids: IdAllocator, reply_spin: Duration) -> Self {
        PendingRequests {
            shared: Arc::new(Shared {
                ids: ids.clone(),
                inner: Mutex::new(Inner {
                    ids,
                    waiters: HashMap::default(),
                    deadlines: BinaryHeap::new(),
                    next_serial: 0,
                    timer_started: false,
                    timer_wakes_at: None,
                }),
                timer: Condvar::new(),
                spin: ReplySpin::new(reply_spin),
            }),
        }
    }

    /// An id for a message that expects no reply (never one in use).
    pub fn allocate_id(&self) -> Result<u16> {
        self.lock().free_id()
    }

    /// Registers a request to `owner` before it is sent, so its reply
    /// cannot be missed.
    pub fn register(&self, owner: u64) -> Result<PendingRequest> {
        let outcome = reply_slot::for_this_thread(&OWN_SLOT);
        let id = self.insert(owner, Outcome::Waiting(outcome.clone()))?.0;
        Ok(PendingRequest { id, outcome })
    }

    /// An asynchronous request to `owner`: registers an id, calls `send`
    /// with it, and hands the outcome to `on_outcome` once: the reply, a
    /// timeout after `timeout`, or the connection's end. If `send` fails,
    /// the request is withdrawn, its error returned, and `on_outcome`
    /// dropped unused.
    pub fn request(
        &self,
        owner: u64,
        timeout: Duration,
        send: impl FnOnce(u16) -> Result<()>,
        on_outcome: OnOutcome,
    ) -> Result<()> {
        let (id, serial) = self.insert(owner, Outcome::Async(on_outcome, timeout))?;
        if let Err(error) = send(id) {
            self.lock().waiters.remove(&id);
            return Err(error);
        }
        let (start_timer, wake_timer) = {
            let mut inner = self.lock();
            let deadline = Instant::now() + timeout;
            inner.push_deadline(deadline, id, serial);
            // The sleeping timer is woken only for a deadline before its
            // own wake-up: not for each request of a steady stream (which
            // cost every request the timer thread's wake-up too).
            let wake = inner.timer_wakes_at.is_some_and(|at| deadline < at);
            (!std::mem::replace(&mut inner.timer_started, true), wake)
        };
        if wake_timer {
            self.shared.timer.notify_all();
        }
        if start_timer {
            let shared = Arc::downgrade(&self.shared);
            std::thread::Builder::new()
                .name("veltix-timer".into())
                .spawn(move || expire_requests(shared))
                .map_err(|e| Error::io("cannot start the request timer thread", &e))?;
        }
        Ok(())
    }

    fn insert(&self, owner: u64, outcome: Outcome) -> Result<(u16, u64)> {
        let mut inner = self.lock();
        let id = inner.free_id()?;
        let serial = inner.next_serial;
        inner.next_serial += 1;
        inner.waiters.insert(
            id,
            Waiter {
                owner,
                serial,
                outcome,
            },
        );
        Ok((id, serial))
    }

    /// Whether a message with `request_id` may be the reply to one of
    /// these requests: false for an id this table never gives out, so the
    /// caller need not make a [`Message`] to call [`PendingRequests::complete`].
    pub fn may_await(&self, request_id: u16) -> bool {
        self.shared.ids.covers(request_id)
    }

    /// Hands `message`, received from `owner`, to the request with its id;
    /// gives it back if there is none.
    pub fn complete(&self, owner: u64, message: Message) -> Option<Message> {
        if !self.may_await(message.request_id()) {
            return Some(message);
        }
        let mut inner = self.lock();
        match inner.waiters.get(&message.request_id()) {
            Some(waiter) if waiter.owner == owner => {}
            _ => return Some(message),
        }
        let waiter = inner.waiters.remove(&message.request_id())?;
        drop(inner);
        waiter.deliver(Ok(message));
        None
    }

    /// Fails every pending request with `error`.
    pub fn fail_all(&self, error: &Error) {
        let waiters = std::mem::take(&mut self.lock().waiters);
        for waiter in waiters.into_values() {
            waiter.deliver(Err(error.clone()));
        }
    }

    /// Fails the pending requests sent to `owner` with `error`.
    pub fn fail_owner(&self, owner: u64, error: &Error) {
        let failed: Vec<Waiter> = {
            let mut inner = self.lock();
            let ids: Vec<u16> = inner
                .waiters
                .iter()
                .filter(|(_, waiter)| waiter.owner == owner)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| inner.waiters.remove(id))
                .collect()
        };
        for waiter in failed {
            waiter.deliver(Err(error.clone()));
        }
    }

    /// One request/reply exchange with `owner`: registers an id, calls
    /// `send` with it and the exchange's deadline (`timeout` from now, which
    /// bounds the write too), and waits for the reply until that deadline
    /// (the request is withdrawn if `send` fails). Before it waits, it
    /// calls `read_while_waiting` with the deadline and a test of whether
    /// the reply came: a caller that can read the connection itself until
    /// then does so there.
    pub fn round_trip(
        &self,
        owner: u64,
        timeout: Duration,
        send: impl FnOnce(u16, Instant) -> Result<()>,
        read_while_waiting: impl FnOnce(Instant, &dyn Fn() -> bool),
    ) -> Result<Message> {
        let deadline = Instant::now() + timeout;
        let request = self.register(owner)?;
        if let Err(error) = send(request.id, deadline) {
            self.cancel(&request);
            return Err(error);
        }
        read_while_waiting(deadline, &|| request.outcome.is_filled());
        self.wait_until(request, deadline, timeout)
    }

    /// Withdraws a request that was not sent.
    pub fn cancel(&self, request: &PendingRequest) {
        self.lock().waiters.remove(&request.id);
    }

    /// Waits for the outcome of `request`, at most `timeout`.
    #[cfg(test)]
    pub fn wait(&self, request: PendingRequest, timeout: Duration) -> Result<Message> {
        self.wait_until(request, Instant::now() + timeout, timeout)
    }

    /// Waits for the outcome of `request` until `deadline`, the end of the
    /// caller's `timeout`.
    fn wait_until(
        &self,
        request: PendingRequest,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Message> {
        // A caller that read its own reply finds it here, at no cost.
        if let Some(outcome) = request.outcome.try_take() {
            return outcome;
        }
        let spun = self
            .shared
            .spin
            .spin(deadline, || request.outcome.try_take());
        if let Some(outcome) = spun {
            return outcome;
        }
        if let Some(outcome) = request.outcome.take_by(deadline) {
            return outcome;
        }
        if self.lock().waiters.remove(&request.id).is_some() {
            return Err(timed_out(request.id, timeout));
        }
        // Completed while timing out: the outcome is on its way.
        request.outcome.take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.lock()
    }
}

impl Drop for PendingRequests {
    fn drop(&mut self) {
        // Lets the timer thread see the table is gone.
        self.shared.timer.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The timer thread: fails asynchronous requests whose deadline passed,
/// until the table is dropped.
fn expire_requests(shared: Weak<Shared>) {
    /// Longest sleep, so a dropped table is noticed.
    const NAP: Duration = Duration::from_secs(1);
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut inner = shared.lock();
        let now = Instant::now();
        let mut expired = Vec::new();
        while let Some(&Reverse((deadline, id, serial))) = inner.deadlines.peek() {
            if deadline > now {
                break;
            }
            inner.deadlines.pop();
            if inner.waiters.get(&id).is_some_and(|w| w.serial == serial) {
                expired.extend(inner.waiters.remove(&id).map(|waiter| (id, waiter)));
            }
        }
        if expired.is_empty() {
            let nap = inner
                .deadlines
                .peek()
                .map_or(NAP, |Reverse((deadline, _, _))| {
                    deadline.saturating_duration_since(now).min(NAP)
                });
            inner.timer_wakes_at = Some(now + nap);
            let (mut inner, _) = shared
                .timer
                .wait_timeout(inner, nap)
                .unwrap_or_else(|e| e.into_inner());
            inner.timer_wakes_at = None;
            continue;
        }
        drop(inner);
        for (id, waiter) in expired {
            let timeout = match &waiter.outcome {
                Outcome::Async(_, timeout) => *timeout,
                Outcome::Waiting(_) => Duration::ZERO,
            };
            waiter.deliver(Err(timed_out(id, timeout)));
        }
    }
}

fn timed_out(id: u16, timeout: Duration) -> Error {
    Error::Timeout(format!(
        "no reply to request {id} within {} ms. Fix: raise the timeout, or check that the peer answers this message type",
        timeout.as_millis()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ids::{CLIENT_IDS, SERVER_IDS};

    #[test]
    fn reply_timeout_and_close_each_complete_once() {
        let pending = PendingRequests::new(IdAllocator::new(CLIENT_IDS), Duration::ZERO);
        let a = pending.register(0).unwrap();
        let b = pending.register(0).unwrap();
        let c = pending.register(0).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(pending.complete(0, Message::new(200, a.id, b"r")), None);
        assert_eq!(
            pending
                .wait(a, Duration::from_millis(10))
                .unwrap()
                .payload(),
            b"r"
        );
        let b_id = b.id;
        assert!(matches!(
            pending.wait(b, Duration::from_millis(10)),
            Err(Error::Timeout(_))
        ));
        // A late reply is not swallowed: it goes back to the caller.
        assert!(pending
            .complete(0, Message::new(200, b_id, b"late"))
            .is_some());
        pending.fail_all(&Error::Closed("gone".into()));
        assert_eq!(
            pending.wait(c, Duration::from_secs(5)),
            Err(Error::Closed("gone".into()))
        );
    }

    #[test]
    fn answered_requests_leave_the_timer_nothing_to_hold() {
        // A steady stream of answered requests: each deadline outlives
        // its request by the whole timeout, so kept until it expired they
        // would grow with the rate times the timeout.
        let pending = PendingRequests::new(IdAllocator::new(CLIENT_IDS), Duration::ZERO);
        for _ in 0..100_000 {
            let sent = std::cell::Cell::new(0);
            pending
                .request(
                    0,
                    Duration::from_secs(60),
                    |id| {
                        sent.set(id);
                        Ok(())
                    },
                    Box::new(|outcome| assert!(outcome.is_ok())),
                )
                .unwrap();
            assert_eq!(
                pending.complete(0, Message::new(200, sent.get(), b"r")),
                None
            );
        }
        let held = pending.lock().deadlines.len();
        assert!(held <= 1000, "{held} deadlines held for no pending request");
    }

    #[test]
    fn ids_in_use_are_not_reallocated() {
        let pending = PendingRequests::new(IdAllocator::new(1..4), Duration::ZERO);
        let a = pending.register(0).unwrap();
        let b = pending.register(0).unwrap();
        let c = pending.register(0).unwrap();
        assert_eq!(pending.register(0).err(), Some(Error::IdsExhausted));
        assert_eq!(pending.allocate_id(), Err(Error::IdsExhausted));
        pending.cancel(&b);
        assert_eq!(pending.allocate_id(), Ok(b.id));
        drop((a, c));
    }

    #[test]
    fn only_the_owner_completes_and_closing_an_owner_fails_only_its_requests() {
        let pending = PendingRequests::new(IdAllocator::new(SERVER_IDS), Duration::ZERO);
        let to_one = pending.register(1).unwrap();
        let to_two = pending.register(2).unwrap();
        let forged = Message::new(200, to_one.id, b"forged");
        assert_eq!(pending.complete(2, forged.clone()), Some(forged));
        pending.fail_owner(2, &Error::Closed("peer 2 left".into()));
        assert_eq!(
            pending.wait(to_two, Duration::from_secs(5)),
            Err(Error::Closed("peer 2 left".into()))
        );
        assert_eq!(
            pending.complete(1, Message::new(201, to_one.id, b"ok")),
            None
        );
        assert_eq!(
            pending
                .wait(to_one, Duration::from_secs(5))
                .unwrap()
                .payload(),
            b"ok"
        );
    }

    #[test]
    fn async_requests_complete_once_by_reply_timeout_or_failure() {
        let pending = PendingRequests::new(IdAllocator::new(CLIENT_IDS), Duration::ZERO);
        let (tx, rx) = std::sync::mpsc::channel();
        let outcome = |tag: &'static str| -> OnOutcome {
            let tx = tx.clone();
            Box::new(move |result: Result<Message>| tx.send((tag, result.is_ok())).unwrap())
        };
        let mut sent = Vec::new();
        for (tag, timeout) in [("replied", 5_000), ("timed out", 50), ("failed", 5_000)] {
            pending
                .request(
                    0,
                    Duration::from_millis(timeout),
                    |id| {
                        sent.push(id);
                        Ok(())
                    },
                    outcome(tag),
                )
                .unwrap();
        }
        assert!(pending
            .complete(0, Message::new(200, sent[0], b"r"))
            .is_none());
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)),
            Ok(("replied", true))
        );
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)),
            Ok(("timed out", false))
        );
        pending.fail_all(&Error::Closed("the request was abandoned".into()));
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)),
            Ok(("failed", false))
        );
        // The replied request's deadline passes: no second outcome.
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        // A request that cannot be sent is withdrawn and never calls back.
        let refused = pending.request(
            0,
            Duration::from_millis(10),
            |_| Err(Error::NotConnected),
            outcome("refused"),
        );
        assert_eq!(refused, Err(Error::NotConnected));
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    }
}
