//! A short spin before a thread sleeps waiting for a reply it cannot read
//! itself.
//!
//! A client's waiter usually reads its reply itself (see
//! `client::reader`). When it cannot (the reader thread is in a read turn,
//! the callback backlog is full) and always on a server, the thread that
//! reads the reply must wake it: one more sleep and wake-up than a program
//! reading its own socket. Where a wake-up is dear (a virtual machine whose
//! idle CPU must be woken by the hypervisor: tens of microseconds here),
//! that hop costs more than the whole loopback round trip. So the waiter
//! first spins for `reply_spin` (50 us by default, 0 = never), watching
//! for the reply, and sleeps only if it has not come.
//!
//! A spin pays only where a core is idle for the threads that bring the
//! reply: on a busy machine (a game client's render loop on one of two
//! cores) it takes their core. So the waiter spins only while the system
//! runs fewer threads than it has cores (Linux's `/proc/loadavg`, read at
//! most every [`LOAD_SAMPLE_EVERY`]; elsewhere the setting alone decides),
//! and yields the CPU between looks. It is rationed too: at most one
//! thread per table spins at a time, and [`MISSES_BEFORE_SKIPPING`] spins
//! in a row that end without the reply turn spinning off for the next
//! [`SKIPS_AFTER_MISSES`] waits. On a link whose round trips are longer
//! than the spin, about one wait in ten spins in vain.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Default spin of a waiter before it sleeps.
pub const DEFAULT_REPLY_SPIN: Duration = Duration::from_micros(50);
/// Longest spin the configuration accepts.
pub const MAX_REPLY_SPIN: Duration = Duration::from_millis(1);
/// Spins in a row that end without the reply before spinning pauses.
pub const MISSES_BEFORE_SKIPPING: u32 = 8;
/// Waits that sleep at once when spinning pauses.
pub const SKIPS_AFTER_MISSES: u32 = 64;
/// How long a count of running threads is trusted.
pub const LOAD_SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Counts the threads the system runs now, the caller included.
type RunningThreads = fn() -> Option<u32>;

/// The spinning policy of one table of pending requests.
pub(crate) struct ReplySpin {
    /// How long a spin lasts; zero: never.
    spin_for: Duration,
    /// The machine's cores.
    cores: u32,
    running_threads: RunningThreads,
    /// When the running threads were counted, in nanoseconds since
    /// `epoch` (`u64::MAX`: never).
    sampled_at: AtomicU64,
    epoch: Instant,
    /// At that count, a core was idle.
    idle_core: AtomicBool,
    /// A thread is spinning now.
    taken: AtomicBool,
    /// Spins in a row that missed.
    misses: AtomicU32,
    /// Waits left that must not spin.
    skips: AtomicU32,
    /// Spins started.
    #[cfg(test)]
    spins: AtomicU32,
}

impl ReplySpin {
    /// Spins of `spin_for` (none if zero), where a core is idle.
    pub fn new(spin_for: Duration) -> Self {
        Self::counting(spin_for, crate::sys::running_threads)
    }

    fn counting(spin_for: Duration, running_threads: RunningThreads) -> Self {
        ReplySpin {
            spin_for,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            running_threads,
            sampled_at: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            idle_core: AtomicBool::new(false),
            taken: AtomicBool::new(false),
            misses: AtomicU32::new(0),
            skips: AtomicU32::new(0),
            #[cfg(test)]
            spins: AtomicU32::new(0),
        }
    }

    /// Whether a core is idle besides the caller's (true where the system
    /// does not tell).
    fn a_core_is_idle(&self) -> bool {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let sampled_at = self.sampled_at.load(Ordering::Acquire);
        let fresh = sampled_at != u64::MAX
            && now.saturating_sub(sampled_at) < LOAD_SAMPLE_EVERY.as_nanos() as u64;
        // One waiter counts again; the others use the last count.
        if fresh
            || self
                .sampled_at
                .compare_exchange(sampled_at, now, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return self.idle_core.load(Ordering::Acquire);
        }
        let idle = (self.running_threads)().map_or(true, |running| running < self.cores);
        self.idle_core.store(idle, Ordering::Release);
        idle
    }

    /// Calls `ready` until it yields a value, for at most the spin (and
    /// never past `deadline`), if spinning is allowed now; `None` when the
    /// caller must sleep.
    pub fn spin<T>(&self, deadline: Instant, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
        if self.spin_for.is_zero() {
            return None;
        }
        let skipped = self
            .skips
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if skipped || !self.a_core_is_idle() || self.taken.swap(true, Ordering::Acquire) {
            return None;
        }
        #[cfg(test)]
        self.spins.fetch_add(1, Ordering::Relaxed);
        let until = deadline.min(Instant::now() + self.spin_for);
        let outcome = loop {
            if let Some(value) = ready() {
                break Some(value);
            }
            if Instant::now() >= until {
                break None;
            }
            // Gives the CPU to any thread that wants it between looks, in
            // case the count of running threads is already stale.
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

    /// A policy of the default spin, scaled by the slowdown, on a machine
    /// that does not tell its load (the tests run beside each other).
    fn scaled() -> ReplySpin {
        ReplySpin::counting(DEFAULT_REPLY_SPIN * slowdown(), || None)
    }

    fn unscaled() -> ReplySpin {
        ReplySpin::counting(DEFAULT_REPLY_SPIN, || None)
    }

    #[test]
    fn a_reply_that_comes_during_the_spin_is_taken() {
        // The reply is there at the third look. A spin preempted for longer
        // than the spin (a loaded or instrumented run) misses; one of a few
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
        let spin = unscaled();
        for _ in 0..MISSES_BEFORE_SKIPPING {
            let started = Instant::now();
            assert_eq!(spin.spin(far(), || None::<()>), None);
            assert!(
                started.elapsed() >= DEFAULT_REPLY_SPIN,
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
        let spin = unscaled();
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
        let spin = unscaled();
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
            started.elapsed() < DEFAULT_REPLY_SPIN * slowdown(),
            "spun past the deadline"
        );
    }

    #[test]
    fn a_spin_of_zero_never_spins() {
        let spin = ReplySpin::counting(Duration::ZERO, || None);
        for _ in 0..100 {
            assert_eq!(spin.spin(far(), || Some(1)), None);
        }
        assert_eq!(spin.spins.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_waiter_spins_only_while_the_system_runs_fewer_threads_than_it_has_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let busy = ReplySpin::counting(DEFAULT_REPLY_SPIN, || {
            Some(std::thread::available_parallelism().map_or(1, |n| n.get() as u32))
        });
        for _ in 0..100 {
            assert_eq!(busy.spin(far(), || Some(1)), None);
        }
        assert_eq!(
            busy.spins.load(Ordering::Relaxed),
            0,
            "spun on a busy machine"
        );
        if cores > 1 {
            let idle = ReplySpin::counting(DEFAULT_REPLY_SPIN, || Some(1));
            assert_eq!(idle.spin(far(), || Some(1)), Some(1));
            assert_eq!(idle.spins.load(Ordering::Relaxed), 1);
        }
    }

    /// The real count, with a thread spinning on every core: no waiter
    /// spins (counted, not timed).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_waiter_never_spins_while_every_core_is_busy() {
        use std::sync::Arc;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stop = Arc::new(AtomicBool::new(false));
        let hogs: Vec<_> = (0..cores)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let until = Instant::now() + Duration::from_secs(10);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        // The hogs are running once the system counts them and this thread.
        let deadline = Instant::now() + Duration::from_secs(5);
        while crate::sys::running_threads().unwrap() <= cores as u32 {
            assert!(Instant::now() < deadline, "the hogs never ran");
            std::thread::yield_now();
        }
        let spin = ReplySpin::new(DEFAULT_REPLY_SPIN);
        for _ in 0..200 {
            assert_eq!(spin.spin(far(), || Some(1)), None);
        }
        stop.store(true, Ordering::Relaxed);
        for hog in hogs {
            hog.join().unwrap();
        }
        assert_eq!(
            spin.spins.load(Ordering::Relaxed),
            0,
            "a waiter spun on a busy machine"
        );
    }
}
