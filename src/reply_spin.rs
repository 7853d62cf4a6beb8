//! A short spin before a thread sleeps waiting for a reply.
//!
//! A thread blocked in `send_and_wait` or `ping` is woken by the reader
//! thread that matched the reply: one more sleep and wake-up than a program
//! reading its own socket. Where a wake-up is dear (a virtual machine whose
//! idle CPU must be woken by the hypervisor: tens of microseconds here),
//! that hop cost more than the whole loopback round trip. So the waiter
//! first spins for [`SPIN_FOR`], watching for the reply, and sleeps only
//! if it has not come.
//!
//! Even a spin that ends before the reply helps: the waiter's CPU is still
//! awake when the reply comes soon after. But the spin costs CPU, so it is
//! rationed: at most one thread per table spins at a time (the others sleep
//! at once, leaving CPUs to the reader and the peer), and
//! [`MISSES_BEFORE_SKIPPING`] spins in a row that end without the reply
//! turn spinning off for the next [`SKIPS_AFTER_MISSES`] waits. On a link
//! whose round trips are longer than the spin, about one wait in ten spins
//! in vain.
//!
//! The spin yields the CPU between looks. Where every core is free that
//! costs a system call per look and nothing else; where the machine is
//! busy (a game client's render loop on one of two cores) the reader
//! thread that must receive the reply runs at once instead of waiting for
//! the spin to end (`cargo bench --bench client -- "latency under load"`).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a waiter spins for its reply before sleeping.
pub const SPIN_FOR: Duration = Duration::from_micros(50);
/// Spins in a row that end without the reply before spinning pauses.
pub const MISSES_BEFORE_SKIPPING: u32 = 8;
/// Waits that sleep at once when spinning pauses.
pub const SKIPS_AFTER_MISSES: u32 = 64;

/// The spinning policy of one table of pending requests.
pub(crate) struct ReplySpin {
    /// How long a spin lasts: [`SPIN_FOR`] (longer in tests run under
    /// emulation, whose clock reads alone take tens of microseconds).
    spin_for: Duration,
    /// A thread is spinning now.
    taken: AtomicBool,
    /// Spins in a row that missed.
    misses: AtomicU32,
    /// Waits left that must not spin.
    skips: AtomicU32,
}

impl Default for ReplySpin {
    fn default() -> Self {
        ReplySpin {
            spin_for: SPIN_FOR,
            taken: AtomicBool::new(false),
            misses: AtomicU32::new(0),
            skips: AtomicU32::new(0),
        }
    }
}

impl ReplySpin {
    /// Calls `ready` until it yields a value, for at most [`SPIN_FOR`] (and
    /// never past `deadline`), if spinning is allowed now; `None` when the
    /// caller must sleep.
    pub fn spin<T>(&self, deadline: Instant, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
        let skipped = self
            .skips
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if skipped || self.taken.swap(true, Ordering::Acquire) {
            return None;
        }
        let until = deadline.min(Instant::now() + self.spin_for);
        let outcome = loop {
            if let Some(value) = ready() {
                break Some(value);
            }
            if Instant::now() >= until {
                break None;
            }
            // Gives the CPU to any thread that wants it between looks: on a
            // busy machine that is the reader thread that receives the
            // reply (or the peer sending it), which a plain spin kept off
            // the one free core until the spin ran out.
            std::thread::yield_now();
        };
        // Before the spin is released: only the spinning thread counts.
        match outcome {
            Some(_) => self.misses.store(0, Ordering::Relaxed),
            None => {
                let misses = self.misses.load(Ordering::Relaxed) + 1;
                if misses >= MISSES_BEFORE_SKIPPING {
                    self.skips.store(SKIPS_AFTER_MISSES, Ordering::Relaxed);
                    self.misses.store(0, Ordering::Relaxed);
                } else {
                    self.misses.store(misses, Ordering::Relaxed);
                }
            }
        }
        self.taken.store(false, Ordering::Release);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// How many times slower than a normal build code runs here: the
    /// cross and sanitizer passes set `VELTIX_TEST_CPU_SLOWDOWN`.
    fn slowdown() -> u32 {
        std::env::var("VELTIX_TEST_CPU_SLOWDOWN")
            .ok()
            .and_then(|factor| factor.parse().ok())
            .unwrap_or(1)
    }

    /// A policy whose spins last [`SPIN_FOR`] scaled by the slowdown.
    fn scaled() -> ReplySpin {
        ReplySpin {
            spin_for: SPIN_FOR * slowdown(),
            ..ReplySpin::default()
        }
    }

    #[test]
    fn a_reply_that_comes_during_the_spin_is_taken() {
        // The reply is there at the third look. A spin preempted for longer
        // than SPIN_FOR (a loaded or instrumented run) misses; one of a few
        // tries must not.
        let caught = (0..5).any(|_| {
            let spin = scaled();
            let mut asked = 0;
            let got = spin.spin(far(), || {
                asked += 1;
                (asked == 3).then_some(7)
            });
            // A spin that caught its reply leaves spinning on.
            got == Some(7) && spin.spin(far(), || Some(8)) == Some(8)
        });
        assert!(caught, "the spin never kept looking until the reply came");
    }

    #[test]
    fn spins_that_keep_missing_make_the_next_waits_sleep_at_once() {
        let spin = ReplySpin::default();
        for _ in 0..MISSES_BEFORE_SKIPPING {
            let started = Instant::now();
            assert_eq!(spin.spin(far(), || None::<()>), None);
            assert!(
                started.elapsed() >= SPIN_FOR,
                "spun {:?}",
                started.elapsed()
            );
        }
        for _ in 0..SKIPS_AFTER_MISSES {
            let mut asked = false;
            assert_eq!(
                spin.spin(far(), || {
                    asked = true;
                    Some(())
                }),
                None
            );
            assert!(!asked, "a wait after the misses spun");
        }
        assert_eq!(spin.spin(far(), || Some(1)), Some(1), "spinning again");
    }

    #[test]
    fn a_hit_starts_the_count_of_misses_again() {
        let spin = ReplySpin::default();
        for _ in 0..MISSES_BEFORE_SKIPPING - 1 {
            assert_eq!(spin.spin(far(), || None::<()>), None);
        }
        assert_eq!(spin.spin(far(), || Some(1)), Some(1));
        for _ in 0..MISSES_BEFORE_SKIPPING - 1 {
            assert_eq!(spin.spin(far(), || None::<()>), None);
        }
        assert_eq!(spin.spin(far(), || Some(2)), Some(2), "still spinning");
    }

    #[test]
    fn one_thread_spins_at_a_time_and_never_past_the_deadline() {
        let spin = ReplySpin::default();
        let mut second_asked = false;
        let first = spin.spin(far(), || {
            // Another waiter arriving while this one spins sleeps at once.
            let second = spin.spin(far(), || {
                second_asked = true;
                Some(2)
            });
            assert_eq!(second, None);
            Some(1)
        });
        assert_eq!(first, Some(1));
        assert!(!second_asked, "two waiters spun at once");
        let started = Instant::now();
        assert_eq!(spin.spin(started, || None::<()>), None);
        assert!(
            started.elapsed() < SPIN_FOR * slowdown(),
            "spun past the deadline"
        );
    }
}
