//! The callback thread pool.
//!
//! Jobs run on `count` threads fed by one channel; with one thread they run
//! in submission order. A [`Lane`] runs its jobs one at a time in submission
//! order whatever the pool size: the client's lifecycle events use the
//! pool's own lane ([`WorkerPool::submit_ordered`]), and the server gives
//! each connection a lane so its callbacks keep arrival order while other
//! connections' run in parallel. A panicking job is caught and logged; it
//! never takes a worker, or the host process, down.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, ThreadId};

use crossbeam_channel::{unbounded, Sender};

use crate::log::log_at;

/// A unit of work for the pool.
pub type Job = Box<dyn FnOnce() + Send>;

/// A job as queued: whether shutting down may drop it unstarted (a message
/// callback may be; an `on_connect`/`on_disconnect` call is not).
struct Queued {
    job: Job,
    droppable: bool,
}

/// What happens to queued jobs: all run (until shutdown), droppable ones
/// are dropped (shutdown that waits), or all are dropped (shutdown that
/// cannot wait, from inside a job).
const RUN_ALL: u8 = 0;
const DROP_DROPPABLE: u8 = 1;
const DROP_ALL: u8 = 2;

/// Whether a queued job runs under `policy`.
fn runs(policy: &AtomicU8, droppable: bool) -> bool {
    match policy.load(Ordering::Acquire) {
        RUN_ALL => true,
        DROP_DROPPABLE => !droppable,
        _ => false,
    }
}

/// A fixed set of threads running submitted jobs.
pub struct WorkerPool {
    sender: Mutex<Option<Sender<Queued>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    thread_ids: Vec<ThreadId>,
    /// [`RUN_ALL`] until shutdown.
    policy: Arc<AtomicU8>,
    lane: Lane,
    /// Jobs submitted and not yet finished, for [`WorkerPool::wait_idle`].
    outstanding: Arc<(Mutex<usize>, Condvar)>,
}

/// A queue of jobs that run one at a time, in submission order, on any of
/// the pool's workers.
#[derive(Clone, Default)]
pub struct Lane(Arc<Mutex<LaneState>>);

#[derive(Default)]
struct LaneState {
    /// Queued jobs, and whether [`Lane::drop_queued`] may drop each.
    jobs: VecDeque<(Job, bool)>,
    draining: bool,
}

impl Lane {
    /// Drops the lane's queued jobs that were submitted as droppable
    /// ([`WorkerPool::submit_droppable_in`]) and have not started; the
    /// others stay queued, in order. Returns how many were dropped.
    pub fn drop_queued(&self) -> usize {
        let dropped: VecDeque<(Job, bool)> = {
            let mut state = self.state();
            let (dropped, kept) = std::mem::take(&mut state.jobs)
                .into_iter()
                .partition(|(_, droppable)| *droppable);
            state.jobs = kept;
            dropped
        };
        // Dropped outside the lock: a job's captures may run code on drop.
        dropped.len()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl WorkerPool {
    /// Starts `count` (at least 1) threads named `name`.
    pub fn new(name: &str, count: usize) -> std::io::Result<Self> {
        let (sender, receiver) = unbounded::<Queued>();
        let policy = Arc::new(AtomicU8::new(RUN_ALL));
        let outstanding = Arc::new((Mutex::new(0usize), Condvar::new()));
        let mut threads = Vec::new();
        for index in 0..count.max(1) {
            let receiver = receiver.clone();
            let policy = policy.clone();
            let outstanding = outstanding.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || {
                    for queued in receiver.iter() {
                        if runs(&policy, queued.droppable) {
                            run_guarded(queued.job);
                        }
                        let (count, idle) = &*outstanding;
                        let mut count = count.lock().unwrap_or_else(|e| e.into_inner());
                        *count -= 1;
                        if *count == 0 {
                            idle.notify_all();
                        }
                    }
                })?;
            threads.push(handle);
        }
        Ok(WorkerPool {
            sender: Mutex::new(Some(sender)),
            thread_ids: threads.iter().map(|t| t.thread().id()).collect(),
            threads: Mutex::new(threads),
            policy,
            lane: Lane::default(),
            outstanding,
        })
    }

    /// Queues a job; `false` (and the job dropped) after shutdown.
    pub fn submit(&self, job: Job) -> bool {
        self.send(Queued {
            job,
            droppable: false,
        })
    }

    /// Queues a job that a shutdown drops if it has not started (a message
    /// callback).
    pub fn submit_droppable(&self, job: Job) -> bool {
        self.send(Queued {
            job,
            droppable: true,
        })
    }

    fn send(&self, queued: Queued) -> bool {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sender) = sender.as_ref() else {
            return false;
        };
        *self.outstanding.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        if sender.send(queued).is_ok() {
            return true;
        }
        *self.outstanding.0.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        false
    }

    /// Queues a job on the pool's own lane (see [`WorkerPool::submit_in`]).
    pub fn submit_ordered(&self, job: Job) {
        self.submit_in(&self.lane, job);
    }

    /// Queues a job that runs after every job submitted to `lane` before it
    /// has finished, and before any submitted after it.
    pub fn submit_in(&self, lane: &Lane, job: Job) {
        self.push_in(lane, job, false);
    }

    /// As [`WorkerPool::submit_in`], for a job that [`Lane::drop_queued`]
    /// may drop before it starts.
    pub fn submit_droppable_in(&self, lane: &Lane, job: Job) {
        self.push_in(lane, job, true);
    }

    fn push_in(&self, lane: &Lane, job: Job, droppable: bool) {
        let mut state = lane.state();
        state.jobs.push_back((job, droppable));
        if state.draining {
            return;
        }
        state.draining = true;
        drop(state);
        let shared = lane.clone();
        let policy = self.policy.clone();
        let drain: Job = Box::new(move || loop {
            let next = {
                let mut state = shared.state();
                let next = state.jobs.pop_front();
                state.draining = next.is_some();
                next
            };
            match next {
                Some((job, droppable)) if runs(&policy, droppable) => run_guarded(job),
                Some(_) => {}
                None => return,
            }
        });
        if !self.submit(drain) {
            let mut state = lane.state();
            state.jobs.clear();
            state.draining = false;
        }
    }

    /// Waits until every submitted job has finished. Must not be called
    /// from a worker (it would wait for itself).
    pub fn wait_idle(&self) {
        let (count, idle) = &*self.outstanding;
        let mut count = count.lock().unwrap_or_else(|e| e.into_inner());
        while *count > 0 {
            count = idle.wait(count).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether the calling thread is one of this pool's workers.
    pub fn is_worker_thread(&self) -> bool {
        self.thread_ids.contains(&std::thread::current().id())
    }

    /// Stops accepting jobs. With `join`, the queued jobs that are not
    /// droppable still run, the droppable ones are dropped, and it waits for
    /// the workers to exit, except the calling thread if it is one of them
    /// (it exits when its job returns). Without `join` (a caller that must
    /// not wait, such as a job), every queued job is dropped. Running jobs
    /// finish either way.
    pub fn shutdown(&self, join: bool) {
        let policy = if join { DROP_DROPPABLE } else { DROP_ALL };
        self.policy.fetch_max(policy, Ordering::AcqRel);
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        if join {
            let me = std::thread::current().id();
            for handle in threads {
                if handle.thread().id() != me {
                    let _ = handle.join();
                }
            }
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.shutdown(false);
    }
}

/// Runs a job, catching and logging a panic.
pub(crate) fn run_guarded(job: Job) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(job)) {
        log_at!(Error, "a callback panicked: {}", panic_message(&*panic));
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn ordered_jobs_run_in_sequence_on_many_workers() {
        let pool = WorkerPool::new("test", 4).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..200 {
            let tx = tx.clone();
            pool.submit_ordered(Box::new(move || {
                if i % 7 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                tx.send(i).unwrap();
            }));
        }
        let got: Vec<i32> = (0..200).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        pool.shutdown(true);
    }

    #[test]
    fn lanes_keep_their_own_order_and_wait_idle_sees_every_job() {
        let pool = WorkerPool::new("test", 3).unwrap();
        let lanes = [Lane::default(), Lane::default()];
        let seen = Arc::new(Mutex::new([Vec::new(), Vec::new()]));
        for i in 0..300 {
            let seen = seen.clone();
            pool.submit_in(
                &lanes[i % 2],
                Box::new(move || {
                    if i % 11 == 0 {
                        std::thread::sleep(Duration::from_micros(300));
                    }
                    seen.lock().unwrap()[i % 2].push(i);
                }),
            );
        }
        pool.wait_idle();
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0], (0..300).step_by(2).collect::<Vec<_>>());
        assert_eq!(seen[1], (1..300).step_by(2).collect::<Vec<_>>());
        drop(seen);
        pool.shutdown(true);
    }

    #[test]
    fn a_waiting_shutdown_runs_queued_lifecycle_jobs_and_drops_messages() {
        let pool = WorkerPool::new("test", 1).unwrap();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        pool.submit(Box::new(move || {
            let _ = gate_rx.recv_timeout(Duration::from_secs(5));
        }));
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..6 {
            let seen = seen.clone();
            let job: Job = Box::new(move || seen.lock().unwrap().push(i));
            match i % 2 {
                0 => pool.submit_ordered(job),
                _ => {
                    pool.submit_droppable(job);
                }
            }
        }
        gate_tx.send(()).unwrap();
        pool.shutdown(true);
        assert_eq!(*seen.lock().unwrap(), vec![0, 2, 4]);
    }

    #[test]
    fn a_shutdown_that_cannot_wait_drops_everything_queued() {
        let pool = WorkerPool::new("test", 1).unwrap();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        pool.submit(Box::new(move || {
            started_tx.send(()).unwrap();
            let _ = gate_rx.recv_timeout(Duration::from_secs(5));
            done_tx.send(()).unwrap();
        }));
        started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let ran = Arc::new(Mutex::new(0));
        for _ in 0..4 {
            let ran = ran.clone();
            pool.submit_ordered(Box::new(move || *ran.lock().unwrap() += 1));
        }
        pool.shutdown(false);
        gate_tx.send(()).unwrap();
        done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(*ran.lock().unwrap(), 0);
    }

    #[test]
    fn a_lane_drops_its_droppable_jobs_and_keeps_the_others_in_order() {
        let pool = WorkerPool::new("test", 1).unwrap();
        let lane = Lane::default();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        pool.submit_in(
            &lane,
            Box::new(move || {
                let _ = gate_rx.recv_timeout(Duration::from_secs(5));
            }),
        );
        for i in 0..10 {
            let seen = seen.clone();
            let job: Job = Box::new(move || seen.lock().unwrap().push(i));
            match i % 5 {
                4 => pool.submit_in(&lane, job),
                _ => pool.submit_droppable_in(&lane, job),
            }
        }
        assert_eq!(lane.drop_queued(), 8);
        gate_tx.send(()).unwrap();
        pool.wait_idle();
        assert_eq!(*seen.lock().unwrap(), vec![4, 9]);
        pool.shutdown(true);
    }

    #[test]
    fn a_panicking_job_does_not_kill_the_worker() {
        let pool = WorkerPool::new("test", 1).unwrap();
        pool.submit(Box::new(|| panic!("boom")));
        let (tx, rx) = mpsc::channel();
        pool.submit(Box::new(move || tx.send(42).unwrap()));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(42));
        pool.shutdown(true);
        assert!(!pool.submit(Box::new(|| {})));
    }

    #[test]
    fn shutdown_from_a_worker_does_not_join_itself() {
        let pool = Arc::new(WorkerPool::new("test", 2).unwrap());
        let (tx, rx) = mpsc::channel();
        let inner = pool.clone();
        pool.submit(Box::new(move || {
            assert!(inner.is_worker_thread());
            inner.shutdown(true);
            tx.send(()).unwrap();
        }));
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(!pool.is_worker_thread());
    }
}
