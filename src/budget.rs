//! A server-wide bound on the memory held on behalf of peers: partial
//! inbound frames, messages queued for callbacks and bytes queued for
//! sending. Each holder keeps an [`Account`] of what it holds now; the
//! server's I/O thread enforces the bound (see `veltix_server_config_t`'s
//! `max_memory_bytes`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The bytes held on behalf of all peers, and their bound.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    held: AtomicUsize,
    limit: usize,
}

impl MemoryBudget {
    /// An empty budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            held: AtomicUsize::new(0),
            limit,
        })
    }

    /// The bound, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether more than the bound is held.
    pub fn exceeded(&self) -> bool {
        self.held() > self.limit
    }

    /// Whether holding `more` bytes would pass the bound.
    pub fn would_exceed(&self, more: usize) -> bool {
        self.held().saturating_add(more) > self.limit
    }
}

/// What an [`Account`] holds, for other threads to read (see
/// [`Account::gauge`]).
pub(crate) type Gauge = Arc<AtomicUsize>;

/// What one holder (a decoder, a backlog, an outbound queue) holds now,
/// kept in its budget; without a budget (the client) it only counts. What
/// it still holds leaves the budget when it is dropped.
#[derive(Debug, Default)]
pub(crate) struct Account {
    budget: Option<Arc<MemoryBudget>>,
    held: usize,
    /// Mirrors `held`, once [`Account::gauge`] asked for it.
    gauge: Option<Gauge>,
}

impl Account {
    /// An empty account in `budget`, if any.
    pub fn new(budget: Option<Arc<MemoryBudget>>) -> Account {
        Account {
            budget,
            held: 0,
            gauge: None,
        }
    }

    /// What this account holds from now on, readable without it: by the
    /// threads that look for the largest holder while its owner works.
    pub fn gauge(&mut self) -> Gauge {
        self.gauge
            .get_or_insert_with(|| Arc::new(AtomicUsize::new(self.held)))
            .clone()
    }

    /// An empty account in this one's budget, for another holder.
    pub fn in_same_budget(&self) -> Account {
        Account::new(self.budget.clone())
    }

    /// Bytes this holder holds.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Records that the holder now holds `now` bytes.
    pub fn set(&mut self, now: usize) {
        if now == self.held {
            // Most updates change nothing: no write to the shared counter.
            return;
        }
        if let Some(budget) = &self.budget {
            if now > self.held {
                budget.held.fetch_add(now - self.held, Ordering::Relaxed);
            } else {
                budget.held.fetch_sub(self.held - now, Ordering::Relaxed);
            }
        }
        self.held = now;
        if let Some(gauge) = &self.gauge {
            gauge.store(now, Ordering::Relaxed);
        }
    }

    /// Whether the holder may grow by `more` bytes within the budget.
    pub fn may_grow(&self, more: usize) -> bool {
        self.budget
            .as_ref()
            .map_or(true, |budget| !budget.would_exceed(more))
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_add_up_in_their_budget_and_leave_it_when_dropped() {
        let budget = MemoryBudget::new(100);
        let mut a = Account::new(Some(budget.clone()));
        let mut b = Account::new(Some(budget.clone()));
        a.set(60);
        b.set(30);
        assert_eq!(budget.held(), 90);
        assert!(!budget.exceeded());
        assert!(a.may_grow(10) && !a.may_grow(11));
        b.set(50);
        assert!(budget.exceeded());
        a.set(10);
        assert_eq!((budget.held(), a.held()), (60, 10));
        drop(a);
        assert_eq!(budget.held(), 50);
        drop(b);
        assert_eq!(budget.held(), 0);
        let mut watched = Account::new(Some(budget.clone()));
        let gauge = watched.gauge();
        watched.set(40);
        assert_eq!(gauge.load(Ordering::Relaxed), 40);
        drop(watched);
        assert_eq!((gauge.load(Ordering::Relaxed), budget.held()), (0, 0));
        let mut alone = Account::new(None);
        alone.set(usize::MAX / 2);
        assert!(alone.may_grow(usize::MAX));
    }
}
