//! Back-pressure from callbacks to the reading side of one connection,
//! shared by the client and the server.
//!
//! Each message handed to a callback is *charged* to its connection's
//! [`Backlog`] until the callback returns (or the queued job is dropped).
//! Before reading more from the socket, the reader asks for room: past
//! either bound (messages or bytes) it stops reading, so the kernel's
//! receive buffer fills and TCP flow control slows the sender. It reads
//! again once the backlog has drained to half of both bounds (the
//! hysteresis keeps it from flapping on every message). The client's reader
//! thread waits in [`Backlog::wait_for_room`]; the server's I/O thread, which
//! must never block, asks [`Backlog::pause_if_full`] and is called back
//! through the resume hook.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::budget::{Account, MemoryBudget};

/// The bounds of a connection's backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BacklogLimits {
    /// Most messages queued for (or running in) callbacks.
    pub messages: usize,
    /// Most payload bytes queued for (or running in) callbacks.
    pub bytes: usize,
}

/// Called (without any lock held) when a paused reader may read again.
pub(crate) type ResumeHook = Box<dyn Fn() + Send + Sync>;

/// The messages of one connection that wait for, or run in, a callback.
pub(crate) struct Backlog {
    state: Mutex<State>,
    room: Condvar,
    limits: BacklogLimits,
    on_resume: Option<ResumeHook>,
}

struct State {
    messages: usize,
    bytes: usize,
    /// `bytes`, kept in the server's memory budget.
    account: Account,
    /// The reader stopped reading and waits to be resumed.
    paused: bool,
    /// The connection is gone: waiting readers return.
    closed: bool,
}

impl State {
    fn full(&self, limits: &BacklogLimits) -> bool {
        self.messages >= limits.messages || self.bytes >= limits.bytes
    }

    fn drained(&self, limits: &BacklogLimits) -> bool {
        self.messages <= limits.messages / 2 && self.bytes <= limits.bytes / 2
    }
}

/// Messages' share of a [`Backlog`], released when dropped: when their
/// callbacks returned, or when the queued job is discarded.
pub(crate) struct Charge {
    backlog: Arc<Backlog>,
    messages: usize,
    bytes: usize,
}

impl Backlog {
    /// An empty backlog whose bytes count in `budget`, if any;
    /// `on_resume` is called when a reader paused by
    /// [`Backlog::pause_if_full`] may read again.
    pub fn new(
        limits: BacklogLimits,
        budget: Option<Arc<MemoryBudget>>,
        on_resume: Option<ResumeHook>,
    ) -> Arc<Backlog> {
        Arc::new(Backlog {
            state: Mutex::new(State {
                messages: 0,
                bytes: 0,
                account: Account::new(budget),
                paused: false,
                closed: false,
            }),
            room: Condvar::new(),
            limits,
            on_resume,
        })
    }

    /// Charges a message of `bytes` payload bytes until the returned
    /// [`Charge`] is dropped.
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        self.charge_many(1, bytes)
    }

    /// Charges `messages` messages of `bytes` payload bytes in all (one
    /// read's batch) until the returned [`Charge`] is dropped.
    pub fn charge_many(self: &Arc<Self>, messages: usize, bytes: usize) -> Charge {
        let mut state = self.state();
        state.messages += messages;
        state.bytes += bytes;
        let now = state.bytes;
        state.account.set(now);
        Charge {
            backlog: self.clone(),
            messages,
            bytes,
        }
    }

    /// For a reader that must not block: whether the backlog is full, in
    /// which case the reader must stop reading until the resume hook runs.
    pub fn pause_if_full(&self) -> bool {
        let mut state = self.state();
        if state.full(&self.limits) && !state.closed {
            state.paused = true;
        }
        state.paused
    }

    /// For a reader that may block: waits while the backlog is full.
    /// `false` once the backlog is closed (the connection is gone).
    pub fn wait_for_room(&self) -> bool {
        let mut state = self.state();
        while state.full(&self.limits) && !state.closed {
            state.paused = true;
            state = self.room.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        !state.closed
    }

    /// For a reader that reads in another's place and must not wait here:
    /// whether the backlog is full, or the reader is held back until it
    /// drains.
    pub fn holds_reading_back(&self) -> bool {
        let state = self.state();
        !state.closed && (state.paused || state.full(&self.limits))
    }

    /// Whether the reader is held back (it cannot see what its peer sends).
    pub fn is_paused(&self) -> bool {
        self.state().paused
    }

    /// Wakes and releases a waiting reader for good.
    pub fn close(&self) {
        self.state().closed = true;
        self.room.notify_all();
    }

    /// Payload bytes charged now.
    pub fn bytes(&self) -> usize {
        self.state().bytes
    }

    /// Messages and bytes charged now.
    #[cfg(test)]
    fn load(&self) -> (usize, usize) {
        let state = self.state();
        (state.messages, state.bytes)
    }

    fn release(&self, messages: usize, bytes: usize) {
        let resume = {
            let mut state = self.state();
            state.messages -= messages;
            state.bytes -= bytes;
            let now = state.bytes;
            state.account.set(now);
            let resume = state.paused && state.drained(&self.limits);
            if resume {
                state.paused = false;
            }
            resume
        };
        if resume {
            self.room.notify_all();
            if let Some(hook) = &self.on_resume {
                hook();
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.backlog.release(self.messages, self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const LIMITS: BacklogLimits = BacklogLimits {
        messages: 4,
        bytes: 100,
    };

    #[test]
    fn a_full_backlog_pauses_until_half_drained_then_resumes_once() {
        let resumed = Arc::new(AtomicUsize::new(0));
        let counter = resumed.clone();
        let backlog = Backlog::new(
            LIMITS,
            None,
            Some(Box::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            })),
        );
        let mut charges: Vec<Charge> = (0..3).map(|_| backlog.charge(10)).collect();
        assert!(!backlog.pause_if_full(), "3 of 4 messages");
        charges.push(backlog.charge(10));
        assert!(backlog.pause_if_full(), "4 of 4 messages");
        charges.pop();
        assert!(
            backlog.pause_if_full(),
            "still paused at 3: not drained to half"
        );
        charges.pop();
        assert_eq!(resumed.load(Ordering::SeqCst), 1, "resumed at 2 of 4");
        assert!(!backlog.pause_if_full());
        drop(charges);
        assert_eq!(resumed.load(Ordering::SeqCst), 1, "not paused: no resume");
        assert_eq!(backlog.load(), (0, 0));
    }

    #[test]
    fn charged_bytes_count_in_the_budget() {
        let budget = MemoryBudget::new(1000);
        let backlog = Backlog::new(LIMITS, Some(budget.clone()), None);
        let a = backlog.charge(300);
        let b = backlog.charge(200);
        assert_eq!((budget.held(), backlog.bytes()), (500, 500));
        drop(a);
        assert_eq!(budget.held(), 200);
        drop(b);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn bytes_bound_too_and_one_large_message_always_passes() {
        let backlog = Backlog::new(LIMITS, None, None);
        assert!(!backlog.pause_if_full());
        let large = backlog.charge(1000);
        assert!(backlog.pause_if_full(), "over the byte bound");
        drop(large);
        assert!(!backlog.pause_if_full());
    }

    #[test]
    fn a_blocked_reader_wakes_when_callbacks_drain_or_the_connection_closes() {
        let backlog = Backlog::new(LIMITS, None, None);
        let charges: Vec<Charge> = (0..4).map(|_| backlog.charge(1)).collect();
        let waiter = {
            let backlog = backlog.clone();
            std::thread::spawn(move || backlog.wait_for_room())
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "full: the reader waits");
        drop(charges);
        assert!(waiter.join().unwrap(), "room again");

        let _charges: Vec<Charge> = (0..4).map(|_| backlog.charge(1)).collect();
        let waiter = {
            let backlog = backlog.clone();
            std::thread::spawn(move || backlog.wait_for_room())
        };
        std::thread::sleep(Duration::from_millis(50));
        backlog.close();
        assert!(!waiter.join().unwrap(), "closed: the reader gives up");
    }
}
