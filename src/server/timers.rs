//! The I/O thread's liveness timers: one min-heap for every peer's
//! heartbeat and idle deadline (no thread or timer per peer). Each
//! connected peer has exactly one entry; an entry outliving its
//! connection is dropped when it comes up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::peer::PeerId;

/// Deadlines of connected peers, earliest first.
#[derive(Default)]
pub(super) struct LivenessTimers {
    heap: BinaryHeap<Reverse<(Instant, usize, PeerId)>>,
}

impl LivenessTimers {
    /// Looks at peer `id` (at `key`) again at `at`.
    pub fn schedule(&mut self, at: Instant, key: usize, id: PeerId) {
        self.heap.push(Reverse((at, key, id)));
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next peer whose deadline has come by `now`, removed.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, PeerId)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                self.heap.pop().map(|Reverse((_, key, id))| (key, id))
            }
            _ => None,
        }
    }
}
