//! Where the outcome of a blocked caller's request arrives.
//!
//! A thread blocked in `send_and_wait` or `ping` waits for one outcome,
//! delivered once by whichever thread completes the request. Each thread
//! keeps a slot and reuses it for its every request; a channel per request
//! cost an allocation, its waker's lock and its teardown on every round
//! trip. The waiter parks; the completer fills the slot and unparks it,
//! which costs a system call only if the waiter sleeps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::Instant;

/// One outcome, filled once and taken once.
pub(crate) struct ReplySlot<T> {
    value: Mutex<Option<T>>,
    filled: AtomicBool,
    waiter: Thread,
}

impl<T> ReplySlot<T> {
    /// An empty slot for the calling thread.
    pub fn new() -> Self {
        ReplySlot {
            value: Mutex::new(None),
            filled: AtomicBool::new(false),
            waiter: std::thread::current(),
        }
    }

    /// Fills the slot and wakes its thread.
    pub fn fill(&self, value: T) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
        self.filled.store(true, Ordering::Release);
        self.waiter.unpark();
    }

    /// Whether the outcome is there.
    pub fn is_filled(&self) -> bool {
        self.filled.load(Ordering::Acquire)
    }

    /// The outcome, if it is there.
    pub fn try_take(&self) -> Option<T> {
        if !self.is_filled() {
            return None;
        }
        self.value.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Waits for the outcome until `deadline`; only the slot's own thread
    /// may wait.
    pub fn take_by(&self, deadline: Instant) -> Option<T> {
        loop {
            if let Some(value) = self.try_take() {
                return Some(value);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            std::thread::park_timeout(left);
        }
    }

    /// Waits for an outcome that is on its way (its request was taken
    /// from the table by the thread completing it).
    pub fn take(&self) -> T {
        loop {
            if let Some(value) = self.try_take() {
                return value;
            }
            std::thread::park();
        }
    }
}

/// An empty slot for the calling thread: its own, unless a request still
/// holds it or the thread is exiting (then a new one).
pub(crate) fn for_this_thread<T: Send + 'static>(
    own: &'static std::thread::LocalKey<Arc<ReplySlot<T>>>,
) -> Arc<ReplySlot<T>> {
    own.try_with(|slot| {
        (Arc::strong_count(slot) == 1).then(|| {
            slot.filled.store(false, Ordering::Relaxed);
            slot.clone()
        })
    })
    .ok()
    .flatten()
    .unwrap_or_else(|| Arc::new(ReplySlot::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    thread_local! {
        static OWN: Arc<ReplySlot<u32>> = Arc::new(ReplySlot::new());
    }

    #[test]
    fn a_slot_filled_by_another_thread_wakes_its_waiter() {
        let slot = for_this_thread(&OWN);
        let filler = slot.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            filler.fill(7);
        });
        assert_eq!(
            slot.take_by(Instant::now() + Duration::from_secs(5)),
            Some(7)
        );
        thread.join().unwrap();
        assert!(slot.try_take().is_none(), "taken once");
    }

    #[test]
    fn a_wait_ends_at_its_deadline_and_a_slot_in_use_is_not_reused() {
        let slot = for_this_thread(&OWN);
        let started = Instant::now();
        assert_eq!(slot.take_by(started + Duration::from_millis(30)), None);
        assert!(started.elapsed() >= Duration::from_millis(30));
        let second = for_this_thread(&OWN);
        assert!(
            !Arc::ptr_eq(&slot, &second),
            "a slot still held was handed out"
        );
        drop((slot, second));
        let again = for_this_thread(&OWN);
        assert!(!again.is_filled());
        assert!(
            OWN.with(|own| Arc::ptr_eq(own, &again)),
            "the thread's slot was not reused"
        );
    }
}
