//! The callback pool: where callbacks run.
//!
//! Jobs run on `count` threads fed by one channel; with one thread they run
//! in submission order. With `count` 0 (dispatch mode) there are no
//! threads: jobs wait in the channel until the host calls
//! [`WorkerPool::dispatch`] on its own thread, and a handle
//! ([`crate::sys::Notifier`]) is readable while any wait, for the host's
//! poll/epoll/`WSAPoll` loop. A [`Lane`] runs its jobs one at a time in submission
//! order whatever the pool size: the client's lifecycle events use the
//! pool's own lane ([`WorkerPool::submit_ordered`]), and the server gives
//! each connection a lane so its callbacks keep arrival order while other
//! connections' run in parallel. A panicking job is caught and logged; it
//! never takes a worker, or the host process, down.

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};

use crate::log::log_at;
use crate::sys::{Notifier, PollHandle};

/// A unit of work for the pool.
pub type Job = Box<dyn FnOnce() + Send>;

/// A job as queued: whether shutting down may drop it unstarted (a message
/// callback may be; an `on_connect`/`on_disconnect` call is not).
struct Queued {
    work: Work,
    droppable: bool,
    /// A callback (counted by `dispatch`), not a lane's runner, whose
    /// callbacks count themselves.
    callback: bool,
}

/// What a queued item does.
enum Work {
    /// Runs a job.
    Job(Job),
    /// Runs a lane's jobs until it has none (see [`WorkerPool::submit_in`]):
    /// queued as is, not boxed, as it is queued again for most batches.
    Drain(Lane),
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

/// Jobs submitted and not yet finished, for [`WorkerPool::wait_idle`].
#[derive(Default)]
struct Outstanding {
    count: Mutex<OutstandingCount>,
    /// Signalled when the count falls to zero while someone waits.
    idle: Condvar,
}

#[derive(Default)]
struct OutstandingCount {
    jobs: usize,
    /// Threads in [`Outstanding::wait_idle`]: without them, a job that
    /// empties the pool signals nobody (a system call saved per job).
    waiters: usize,
}

impl Outstanding {
    fn lock(&self) -> std::sync::MutexGuard<'_, OutstandingCount> {
        self.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self) {
        self.lock().jobs += 1;
    }

    fn remove(&self) {
        let mut count = self.lock();
        count.jobs -= 1;
        if count.jobs == 0 && count.waiters > 0 {
            self.idle.notify_all();
        }
    }

    fn wait_idle(&self) {
        let mut count = self.lock();
        count.waiters += 1;
        while count.jobs > 0 {
            count = self.idle.wait(count).unwrap_or_else(|e| e.into_inner());
        }
        count.waiters -= 1;
    }
}

/// Runs (or, by `policy`, drops) one queued job and counts it finished.
fn finish(queued: Queued, policy: &AtomicU8, outstanding: &Outstanding) {
    if runs(policy, queued.droppable) {
        match queued.work {
            Work::Job(job) => run_guarded(job),
            Work::Drain(lane) => lane.drain(policy),
        }
        if queued.callback {
            count_callback();
        }
    }
    outstanding.remove();
}

thread_local! {
    /// The pool this thread is dispatching for, if any (dispatch mode).
    static DISPATCHING: Cell<*const WorkerPool> = const { Cell::new(std::ptr::null()) };
    /// Callbacks this thread ran (what `dispatch` reports).
    static CALLBACKS_RUN: Cell<usize> = const { Cell::new(0) };
}

fn count_callback() {
    CALLBACKS_RUN.with(|count| count.set(count.get() + 1));
}

/// Dispatch mode: the queue the host drains, and the handle its loop polls.
struct Host {
    receiver: Receiver<Queued>,
    /// Readable while jobs wait.
    event: Notifier,
    /// [`NOT_RAISED`], [`RAISED`] (since the host last reset it: a burst of
    /// jobs costs one system call) or [`HOST_AWAKE`].
    state: AtomicU8,
}

/// The notifier is clear, and the next job raises it.
const NOT_RAISED: u8 = 0;
/// The notifier was raised.
const RAISED: u8 = 1;
/// The host is inside `dispatch`, reading its connection until a job is
/// due: jobs need not raise the notifier (two system calls per job saved).
const HOST_AWAKE: u8 = 2;

impl Host {
    fn new(receiver: Receiver<Queued>) -> std::io::Result<Host> {
        Ok(Host {
            receiver,
            event: Notifier::new()?,
            state: AtomicU8::new(NOT_RAISED),
        })
    }

    /// After a job was queued: makes the handle readable.
    fn signal(&self) {
        let raise = self
            .state
            .compare_exchange(NOT_RAISED, RAISED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if raise {
            self.event.raise();
        }
    }

    /// Before draining: makes the handle unreadable. Jobs queued from now
    /// on signal again; those queued before are drained by the caller.
    fn reset(&self) {
        // Cleared before the state says so: a job queued in between finds
        // it raised, and is drained by the caller.
        if self.state.load(Ordering::SeqCst) != HOST_AWAKE {
            self.event.clear();
        }
        self.state.store(NOT_RAISED, Ordering::SeqCst);
    }
}

/// The host is inside `dispatch` and about to drain (see
/// [`WorkerPool::host_awake`]); dropped, the notifier is raised again if
/// jobs wait and no drain reset it.
pub(crate) struct HostAwake<'a>(Option<&'a Host>);

impl Drop for HostAwake<'_> {
    fn drop(&mut self) {
        let Some(host) = self.0 else {
            return;
        };
        let still_awake = host
            .state
            .compare_exchange(HOST_AWAKE, NOT_RAISED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if still_awake && !host.receiver.is_empty() {
            host.signal();
        }
    }
}

/// Why [`WorkerPool::dispatch`] cannot run.
#[derive(Debug, PartialEq, Eq)]
pub enum DispatchError {
    /// Callbacks run on worker threads (the pool was made with threads).
    NotInDispatchMode,
    /// Called from inside a dispatched callback.
    Nested,
}

impl From<DispatchError> for crate::Error {
    fn from(error: DispatchError) -> Self {
        crate::Error::InvalidArgument(match error {
            DispatchError::NotInDispatchMode => "callbacks run on worker threads (config.max_workers > 0). Fix: create it with max_workers = 0 to run callbacks on your own thread with dispatch".into(),
            DispatchError::Nested => "dispatch was called from inside a dispatched callback. Fix: return from the callback; the host's loop dispatches again".into(),
        })
    }
}

/// A fixed set of threads running submitted jobs, or (dispatch mode) a
/// queue the host drains.
pub struct WorkerPool {
    sender: Mutex<Option<Sender<Queued>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    thread_ids: Vec<ThreadId>,
    /// Dispatch mode's queue, when the pool has no threads.
    host: Option<Host>,
    /// [`RUN_ALL`] until shutdown.
    policy: Arc<AtomicU8>,
    lane: Lane,
    outstanding: Arc<Outstanding>,
}

/// A job that runs a batch of callbacks (one peer's messages of one
/// read), asking its [`Batch`] before each whether it may start it.
pub type BatchJob = Box<dyn FnOnce(&Batch<'_>) + Send>;

/// What a [`BatchJob`] may ask while it runs.
pub struct Batch<'a> {
    lane: &'a LaneShared,
    /// The lane's drop count when the batch started.
    drops: u64,
    policy: &'a AtomicU8,
}

impl Batch<'_> {
    /// Whether the next callback may start: not once the lane's queued
    /// callbacks were dropped ([`Lane::drop_queued`]) or a shutdown drops
    /// message callbacks, exactly as if each callback were its own job.
    pub fn may_continue(&self) -> bool {
        self.lane.drops.load(Ordering::Acquire) == self.drops && runs(self.policy, true)
    }

    /// Counts one callback run, for what `dispatch` reports.
    pub fn ran_callback(&self) {
        count_callback();
    }
}

/// A queue of jobs that run one at a time, in submission order, on any of
/// the pool's workers.
#[derive(Clone, Default)]
pub struct Lane(Arc<LaneShared>);

#[derive(Default)]
struct LaneShared {
    state: Mutex<LaneState>,
    /// How many times [`Lane::drop_queued`] ran: a running batch stops
    /// when it changes.
    drops: AtomicU64,
}

/// One job queued in a lane.
enum LaneJob {
    /// One callback (counted by the lane), never dropped unstarted.
    Single(Job),
    /// Many message callbacks, each counted by the job; dropped unstarted
    /// by [`Lane::drop_queued`] and a waiting shutdown.
    Batch(BatchJob),
}

#[derive(Default)]
struct LaneState {
    /// Queued jobs.
    jobs: VecDeque<LaneJob>,
    draining: bool,
}

impl Lane {
    /// Whether jobs are queued behind the one running.
    pub fn has_queued(&self) -> bool {
        !self.state().jobs.is_empty()
    }

    /// Drops the lane's queued batches ([`WorkerPool::submit_batch_in`])
    /// that have not started, and stops a running batch before its next
    /// callback; the other jobs stay queued, in order. Returns how many
    /// batches were dropped.
    pub fn drop_queued(&self) -> usize {
        let dropped: VecDeque<LaneJob> = {
            let mut state = self.state();
            self.0.drops.fetch_add(1, Ordering::AcqRel);
            let (dropped, kept) = std::mem::take(&mut state.jobs)
                .into_iter()
                .partition(|job| matches!(job, LaneJob::Batch(_)));
            state.jobs = kept;
            dropped
        };
        // Dropped outside the lock: a job's captures may run code on drop.
        dropped.len()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the lane's jobs in order (or drops them, by `policy`) until it
    /// has none: the one queued item of a draining lane.
    fn drain(&self, policy: &AtomicU8) {
        loop {
            // The drop count is read with the job taken, under the lock
            // `drop_queued` counts under: a batch taken before a drop
            // sees it.
            let (next, drops) = {
                let mut state = self.state();
                let next = state.jobs.pop_front();
                state.draining = next.is_some();
                (next, self.0.drops.load(Ordering::Acquire))
            };
            match next {
                Some(LaneJob::Single(job)) if runs(policy, false) => {
                    run_guarded(job);
                    count_callback();
                }
                Some(LaneJob::Batch(job)) if runs(policy, true) => {
                    let batch = Batch {
                        lane: &self.0,
                        drops,
                        policy,
                    };
                    run_guarded(|| job(&batch));
                }
                Some(_) => {}
                None => return,
            }
        }
    }
}

impl WorkerPool {
    /// Starts `count` threads named `name`; with `count` 0, none: the pool
    /// is in dispatch mode.
    pub fn new(name: &str, count: usize) -> std::io::Result<Self> {
        let (sender, receiver) = unbounded::<Queued>();
        let policy = Arc::new(AtomicU8::new(RUN_ALL));
        let outstanding: Arc<Outstanding> = Arc::default();
        let mut threads = Vec::new();
        for index in 0..count {
            let receiver = receiver.clone();
            let policy = policy.clone();
            let outstanding = outstanding.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || {
                    for queued in receiver.iter() {
                        finish(queued, &policy, &outstanding);
                    }
                })?;
            threads.push(handle);
        }
        let host = match count {
            0 => Some(Host::new(receiver)?),
            _ => None,
        };
        Ok(WorkerPool {
            sender: Mutex::new(Some(sender)),
            thread_ids: threads.iter().map(|t| t.thread().id()).collect(),
            threads: Mutex::new(threads),
            host,
            policy,
            lane: Lane::default(),
            outstanding,
        })
    }

    /// Queues a job; `false` (and the job dropped) after shutdown.
    #[cfg(test)]
    pub fn submit(&self, job: Job) -> bool {
        self.send(Queued {
            work: Work::Job(job),
            droppable: false,
            callback: true,
        })
    }

    /// Queues a job that a shutdown drops if it has not started (a message
    /// callback).
    pub fn submit_droppable(&self, job: Job) -> bool {
        self.send(Queued {
            work: Work::Job(job),
            droppable: true,
            callback: true,
        })
    }

    fn send(&self, queued: Queued) -> bool {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sender) = sender.as_ref() else {
            return false;
        };
        self.outstanding.add();
        if sender.send(queued).is_ok() {
            if let Some(host) = &self.host {
                host.signal();
            }
            return true;
        }
        self.outstanding.remove();
        false
    }

    /// Queues a job on the pool's own lane (see [`WorkerPool::submit_in`]).
    pub fn submit_ordered(&self, job: Job) {
        self.submit_in(&self.lane, job);
    }

    /// Queues a job that runs after every job submitted to `lane` before it
    /// has finished, and before any submitted after it.
    pub fn submit_in(&self, lane: &Lane, job: Job) {
        self.push_in(lane, LaneJob::Single(job));
    }

    /// Queues a batch of message callbacks in `lane`: dropped like a
    /// droppable job before it starts, and stopped between callbacks once
    /// it would have been (see [`Batch::may_continue`]).
    pub fn submit_batch_in(&self, lane: &Lane, job: BatchJob) {
        self.push_in(lane, LaneJob::Batch(job));
    }

    /// Runs a batch of message callbacks of `lane` on the calling thread
    /// now (callbacks on the I/O thread), asking as a queued batch does.
    pub fn run_batch_here<T>(&self, lane: &Lane, job: impl FnOnce(&Batch<'_>) -> T) -> T {
        let batch = Batch {
            lane: &lane.0,
            drops: lane.0.drops.load(Ordering::Acquire),
            policy: &self.policy,
        };
        job(&batch)
    }

    fn push_in(&self, lane: &Lane, job: LaneJob) {
        let mut state = lane.state();
        state.jobs.push_back(job);
        if state.draining {
            return;
        }
        state.draining = true;
        drop(state);
        let queued = Queued {
            work: Work::Drain(lane.clone()),
            droppable: false,
            callback: false,
        };
        if !self.send(queued) {
            let mut state = lane.state();
            state.jobs.clear();
            state.draining = false;
        }
    }

    /// Waits until every submitted job has finished. Must not be called
    /// from a worker (it would wait for itself). In dispatch mode the jobs
    /// still queued run on the calling thread (the host's).
    pub fn wait_idle(&self) {
        if let Some(host) = &self.host {
            while let Ok(queued) = host.receiver.try_recv() {
                self.run_dispatched(queued);
            }
        }
        self.outstanding.wait_idle();
    }

    /// Whether the calling thread is running one of this pool's jobs: one
    /// of its workers, or (dispatch mode) a thread inside `dispatch`.
    pub fn is_worker_thread(&self) -> bool {
        match self.host {
            Some(_) => DISPATCHING.with(|current| std::ptr::eq(current.get(), self)),
            None => self.thread_ids.contains(&std::thread::current().id()),
        }
    }

    /// Whether the pool is in dispatch mode (no threads of its own).
    pub fn is_dispatch_mode(&self) -> bool {
        self.host.is_some()
    }

    /// Dispatch mode: whether a `dispatch` on this thread would wait now
    /// (nothing is due, and it is not nested in a callback).
    pub fn dispatch_would_wait(&self) -> bool {
        self.host
            .as_ref()
            .is_some_and(|host| host.receiver.is_empty())
            && !self.is_worker_thread()
    }

    /// Dispatch mode: tells the pool that the host, inside `dispatch`,
    /// waits for a job on its own (reading its connection) and drains
    /// before it returns, so jobs need not raise the notifier meanwhile.
    /// Keep the guard until after the drain.
    pub(crate) fn host_awake(&self) -> HostAwake<'_> {
        HostAwake(self.host.as_ref().filter(|host| {
            host.state
                .compare_exchange(NOT_RAISED, HOST_AWAKE, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        }))
    }

    /// Dispatch mode: whether a job waits for `dispatch`.
    pub fn job_due(&self) -> bool {
        self.host
            .as_ref()
            .is_some_and(|host| !host.receiver.is_empty())
    }

    /// Dispatch mode: the handle that is readable while jobs wait.
    pub fn event_handle(&self) -> Result<PollHandle, DispatchError> {
        let host = self.host.as_ref().ok_or(DispatchError::NotInDispatchMode)?;
        Ok(host.event.handle())
    }

    /// Dispatch mode: waits up to `timeout` (`None`: for ever) for a job,
    /// then runs it and the jobs queued by then, on the calling thread;
    /// how many ran.
    pub fn dispatch(&self, timeout: Option<Duration>) -> Result<usize, DispatchError> {
        let host = self.host.as_ref().ok_or(DispatchError::NotInDispatchMode)?;
        if self.is_worker_thread() {
            return Err(DispatchError::Nested);
        }
        host.reset();
        let first = match timeout {
            Some(timeout) if timeout.is_zero() => host.receiver.try_recv().ok(),
            Some(timeout) => host.receiver.recv_timeout(timeout).ok(),
            None => host.receiver.recv().ok(),
        };
        let Some(first) = first else {
            return Ok(0);
        };
        // What is due: the first job and those queued by now, not those
        // that keep arriving meanwhile (the host gets its thread back).
        let due = host.receiver.len();
        let before = CALLBACKS_RUN.with(Cell::get);
        self.run_dispatched(first);
        for _ in 0..due {
            let Ok(queued) = host.receiver.try_recv() else {
                break;
            };
            self.run_dispatched(queued);
        }
        Ok(CALLBACKS_RUN.with(Cell::get) - before)
    }

    /// Runs a dispatched job on this thread, marked as inside a callback.
    fn run_dispatched(&self, queued: Queued) {
        let outer = DISPATCHING.with(|current| current.replace(self));
        finish(queued, &self.policy, &self.outstanding);
        DISPATCHING.with(|current| current.set(outer));
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
        // Dispatch mode: what waits runs (or is dropped) on this thread now;
        // nothing may stay queued, as a job holds its client or server.
        if let Some(host) = &self.host {
            while let Ok(queued) = host.receiver.try_recv() {
                self.run_dispatched(queued);
            }
        }
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
pub(crate) fn run_guarded(job: impl FnOnce()) {
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
    fn in_dispatch_mode_the_event_fd_never_misses_a_queued_job() {
        let pool = Arc::new(WorkerPool::new("test", 0).unwrap());
        let handle = pool.event_handle().unwrap();
        let ran = Arc::new(Mutex::new(0usize));
        let producer = {
            let (pool, ran) = (pool.clone(), ran.clone());
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    let ran = ran.clone();
                    pool.submit_droppable(Box::new(move || *ran.lock().unwrap() += 1));
                    if i % 1000 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        };
        let mut dispatched = 0;
        while dispatched < 20_000 {
            let ready = crate::sys::wait_readable(handle, Duration::from_secs(5)).unwrap();
            assert!(
                ready,
                "jobs waited ({dispatched} of 20000 run) with the handle quiet"
            );
            dispatched += pool.dispatch(Some(Duration::ZERO)).unwrap();
        }
        producer.join().unwrap();
        assert_eq!(*ran.lock().unwrap(), 20_000);
        assert_eq!(pool.dispatch(Some(Duration::ZERO)), Ok(0));
        assert!(!pool.is_worker_thread());
    }

    #[test]
    fn jobs_queued_while_the_host_is_awake_raise_the_handle_only_if_left_waiting() {
        let pool = WorkerPool::new("test", 0).unwrap();
        let handle = pool.event_handle().unwrap();
        let quick = Duration::from_millis(20);
        // Drained before the host leaves dispatch: the handle never rose.
        let awake = pool.host_awake();
        pool.submit_droppable(Box::new(|| {}));
        assert!(!crate::sys::wait_readable(handle, quick).unwrap());
        assert_eq!(pool.dispatch(Some(Duration::ZERO)), Ok(1));
        drop(awake);
        assert!(!crate::sys::wait_readable(handle, quick).unwrap());
        // Left waiting (the host's read ended some other way): the handle
        // rises when the host stops being awake.
        let awake = pool.host_awake();
        pool.submit_droppable(Box::new(|| {}));
        drop(awake);
        assert!(crate::sys::wait_readable(handle, Duration::from_secs(5)).unwrap());
        assert_eq!(pool.dispatch(Some(Duration::ZERO)), Ok(1));
        assert!(!crate::sys::wait_readable(handle, quick).unwrap());
        // Awake while the handle is already up: it stays up until drained.
        pool.submit_droppable(Box::new(|| {}));
        let awake = pool.host_awake();
        assert!(crate::sys::wait_readable(handle, Duration::from_secs(5)).unwrap());
        assert_eq!(pool.dispatch(Some(Duration::ZERO)), Ok(1));
        drop(awake);
        assert!(!crate::sys::wait_readable(handle, quick).unwrap());
    }

    #[test]
    fn a_lane_drops_its_batches_and_keeps_the_other_jobs_in_order() {
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
            match i % 5 {
                4 => pool.submit_in(&lane, Box::new(move || seen.lock().unwrap().push(i))),
                _ => pool.submit_batch_in(&lane, Box::new(move |_| seen.lock().unwrap().push(i))),
            }
        }
        assert_eq!(lane.drop_queued(), 8);
        gate_tx.send(()).unwrap();
        pool.wait_idle();
        assert_eq!(*seen.lock().unwrap(), vec![4, 9]);
        pool.shutdown(true);
    }

    #[test]
    fn a_batch_stops_between_callbacks_once_its_lane_is_dropped() {
        let pool = WorkerPool::new("test", 1).unwrap();
        let lane = Lane::default();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let seen = ran.clone();
        pool.submit_batch_in(
            &lane,
            Box::new(move |batch| {
                for i in 0..5 {
                    if !batch.may_continue() {
                        return;
                    }
                    seen.lock().unwrap().push(i);
                    if i == 1 {
                        started_tx.send(()).unwrap();
                        let _ = gate_rx.recv_timeout(Duration::from_secs(5));
                    }
                }
            }),
        );
        started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        lane.drop_queued();
        gate_tx.send(()).unwrap();
        pool.wait_idle();
        assert_eq!(
            *ran.lock().unwrap(),
            vec![0, 1],
            "the running callback ends, no other starts"
        );
        pool.shutdown(true);
    }

    #[test]
    fn dispatch_counts_each_callback_of_a_batch() {
        let pool = WorkerPool::new("test", 0).unwrap();
        let lane = Lane::default();
        pool.submit_batch_in(
            &lane,
            Box::new(|batch| {
                for _ in 0..3 {
                    batch.ran_callback();
                }
            }),
        );
        pool.submit_in(&lane, Box::new(|| {}));
        assert_eq!(pool.dispatch(Some(Duration::ZERO)), Ok(4));
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
