//! Request id allocation.
//!
//! Clients choose ids in `[0, 32768)` and servers in `[32768, 65536)`, so an
//! id chosen by one side can never be taken for a reply to the other side's
//! pending request. An id is never reused while a request with it still
//! awaits its reply.

use std::ops::Range;

/// Ids a client allocates. 0 is left out so that a frame sent with the
/// default id 0 by a minimal peer is never taken for a reply.
pub const CLIENT_IDS: Range<u32> = 1..32768;
/// Ids a server allocates.
pub const SERVER_IDS: Range<u32> = 32768..65536;

/// Cycles through a range of ids, skipping those still in use.
#[derive(Debug, Clone)]
pub struct IdAllocator {
    range: Range<u32>,
    next: u32,
}

impl IdAllocator {
    /// An allocator over `range` (a sub-range of `0..65536`).
    pub fn new(range: Range<u32>) -> Self {
        assert!(!range.is_empty() && range.end <= 65536, "bad id range");
        IdAllocator {
            next: range.start,
            range,
        }
    }

    /// Whether `id` is one this allocator may hand out.
    pub fn covers(&self, id: u16) -> bool {
        self.range.contains(&u32::from(id))
    }

    /// The next id for which `in_use` is false, or `None` when every id in
    /// the range is in use.
    pub fn allocate(&mut self, in_use: impl Fn(u16) -> bool) -> Option<u16> {
        let span = self.range.end - self.range.start;
        for _ in 0..span {
            let id = self.next as u16;
            self.next += 1;
            if self.next == self.range.end {
                self.next = self.range.start;
            }
            if !in_use(id) {
                return Some(id);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn cycles_within_the_range_and_skips_ids_in_use() {
        let mut ids = IdAllocator::new(10..13);
        let busy: HashSet<u16> = [11].into();
        let got: Vec<u16> = (0..4)
            .map(|_| ids.allocate(|id| busy.contains(&id)).unwrap())
            .collect();
        assert_eq!(got, vec![10, 12, 10, 12]);
    }

    #[test]
    fn exhausted_when_all_in_use() {
        let mut ids = IdAllocator::new(CLIENT_IDS);
        assert_eq!(ids.allocate(|_| true), None);
        assert_eq!(ids.allocate(|_| false), Some(1));
        let mut server = IdAllocator::new(SERVER_IDS);
        assert_eq!(server.allocate(|_| false), Some(32768));
    }
}
