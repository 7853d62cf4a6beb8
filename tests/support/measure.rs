//! What the hostile-peer tests measure, through Linux's /proc: the
//! process's memory, a thread's CPU time, and a watchdog on both.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Resident memory of this process in bytes.
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Extra resident memory an instrumented allocator adds to the bounds the
/// tests assert (shadow memory, quarantine): `VELTIX_TEST_RSS_SLACK_MIB`,
/// set by scripts/sanitize.sh; 0 otherwise.
pub fn allocator_slack() -> u64 {
    std::env::var("VELTIX_TEST_RSS_SLACK_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        << 20
}

/// CPU time (user + system) used so far by this process's threads whose
/// name starts with `prefix`.
pub fn thread_cpu(prefix: &str) -> Duration {
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: utime and stime are the
        // 14th and 15th fields of the whole line.
        let after_name = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        if fields.len() > 12 {
            ticks +=
                fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        }
    }
    Duration::from_millis(ticks * 1000 / ticks_per_second)
}

/// Aborts the process if it runs past `limit` or its memory grows past
/// `max_rss`: a test that lets an attack through must fail, not take the
/// machine down. Stops watching when dropped.
pub struct Watchdog {
    done: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn new(what: &'static str, limit: Duration, max_rss: u64) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let watching = done.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            while !watching.load(Ordering::Relaxed) {
                let rss = rss();
                if rss > max_rss || started.elapsed() > limit {
                    eprintln!(
                        "WATCHDOG: {what}: RSS {} MiB (max {} MiB) after {:?} (max {limit:?}); aborting",
                        rss >> 20,
                        max_rss >> 20,
                        started.elapsed()
                    );
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Watchdog { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// The highest resident memory seen while it runs, sampled every 5 ms: an
/// attack whose memory is released at its end is still seen.
pub struct PeakRss {
    done: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<u64>>,
    before: u64,
}

impl PeakRss {
    pub fn start() -> PeakRss {
        let done = Arc::new(AtomicBool::new(false));
        let watching = done.clone();
        let before = rss();
        let sampler = std::thread::spawn(move || {
            let mut peak = rss();
            while !watching.load(Ordering::Relaxed) {
                peak = peak.max(rss());
                std::thread::sleep(Duration::from_millis(5));
            }
            peak.max(rss())
        });
        PeakRss {
            done,
            sampler: Some(sampler),
            before,
        }
    }

    /// Peak growth over the resident memory at the start, in bytes.
    pub fn growth(mut self) -> u64 {
        self.done.store(true, Ordering::Relaxed);
        let peak = self.sampler.take().unwrap().join().unwrap();
        peak.saturating_sub(self.before)
    }
}
