//! The Veltix client: a thread-based client built on [`crate::protocol`].
//!
//! Threads: one reader per connection (it matches replies to pending
//! requests, answers PINGs and hands other messages to the pool), a pool of
//! `max_workers` threads running every callback, and a retry thread while a
//! background reconnection runs. Every method may be called from any thread,
//! including from inside a callback; none holds a lock while user code runs.

mod attempt;
mod config;
mod connection;
mod disconnect;
mod handlers;
mod reader;
mod reconnect;

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use config::{ClientConfig, MAX_BUFFER_SIZE, MAX_WORKERS};
pub use disconnect::{DisconnectReason, DisconnectState};
pub use handlers::{ConnectHandler, DisconnectHandler, MessageHandler, ReplyHandler};

use crate::error::{Error, Result};
use crate::log::log_at;
use crate::pending::PendingRequests;
use crate::protocol::frame::{check_frame_size, PING};
use crate::protocol::ids::{IdAllocator, CLIENT_IDS};
use crate::protocol::Message;
use crate::stats::StatsSnapshot;
use crate::sys::PollHandle;
use crate::workers::WorkerPool;
use crate::writer::Coalesce;
use attempt::Attempt;
use connection::Connection;
use handlers::Callbacks;

/// Longest read on the host's thread of a `dispatch` without a timeout; it
/// then waits as its timeout says.
const LONGEST_LEAD: Duration = Duration::from_secs(3600);

/// The owner of every pending request of a client: its one connection.
const THE_CONNECTION: u64 = 0;

/// A Veltix client. Cloning gives another handle to the same client.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

/// The shared state behind every [`Client`] handle.
pub struct ClientInner {
    config: ClientConfig,
    callbacks: Callbacks,
    pending: PendingRequests,
    workers: WorkerPool,
    state: Mutex<State>,
    /// Signalled on every change of `state` (and by `stop_retry`).
    state_changed: Condvar,
    /// Reader and retry threads, joined by `free`.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Random numbers for the reconnection jitter.
    jitter: crate::backoff::Jitter,
}

#[derive(Default)]
struct State {
    connection: Option<Arc<Connection>>,
    /// Bumped on every new connection, so a reader of an old one knows it.
    generation: u64,
    /// The connect or retry operation in progress, if any.
    attempt: Option<Arc<Attempt>>,
    freed: bool,
    /// `on_disconnect` calls decided on and not yet run (see
    /// [`Undelivered`]).
    undelivered: usize,
}

/// An `on_disconnect` call decided on and not yet run: while one exists,
/// `wait_until_closed` and a failed `connect` keep waiting. Taken before
/// the state change it reports, so no waiter sees the change without it;
/// released when the callback has run, or when it is dropped unrun.
struct Undelivered(Client);

impl Drop for Undelivered {
    fn drop(&mut self) {
        self.0.state().undelivered -= 1;
        self.0.inner.state_changed.notify_all();
    }
}

impl Client {
    /// A client for `config`, not yet connected. Starts its worker threads.
    pub fn new(config: ClientConfig) -> Result<Client> {
        config.validate()?;
        let workers = WorkerPool::new("veltix-worker", config.max_workers as usize)
            .map_err(|e| Error::io("cannot start the worker threads", &e))?;
        let salt = &workers as *const WorkerPool as usize;
        let pending = PendingRequests::new(IdAllocator::new(CLIENT_IDS), config.reply_spin);
        Ok(Client {
            inner: Arc::new(ClientInner {
                config,
                callbacks: Callbacks::default(),
                pending,
                workers,
                state: Mutex::default(),
                state_changed: Condvar::new(),
                threads: Mutex::default(),
                jitter: crate::backoff::Jitter::new(salt),
            }),
        })
    }

    /// Address of the shared state; stable for the client's life, used as
    /// the C handle.
    pub fn as_ptr(&self) -> *const ClientInner {
        Arc::as_ptr(&self.inner)
    }

    /// Turns an owning pointer from [`Client::into_raw`] back into a client.
    ///
    /// # Safety
    /// `ptr` must come from `into_raw` and be used this way once.
    pub unsafe fn from_raw(ptr: *const ClientInner) -> Client {
        Client {
            inner: Arc::from_raw(ptr),
        }
    }

    /// A new handle from a pointer obtained by `into_raw` or `as_ptr`, whose
    /// client is still alive. The handle keeps the client's memory alive
    /// even if the owning pointer is released meanwhile.
    ///
    /// # Safety
    /// `ptr` must point to a live client.
    pub unsafe fn clone_from_ptr(ptr: *const ClientInner) -> Client {
        Arc::increment_strong_count(ptr);
        Client {
            inner: Arc::from_raw(ptr),
        }
    }

    /// Gives up this handle for a pointer (see [`Client::from_raw`]).
    pub fn into_raw(self) -> *const ClientInner {
        Arc::into_raw(self.inner)
    }

    // ----- callbacks ---------------------------------------------------

    /// Sets (or with `None` clears) the handler for messages without a route.
    pub fn on_recv(&self, handler: Option<MessageHandler>) {
        self.inner
            .callbacks
            .set_on_recv(handler, !self.inner.workers.is_worker_thread());
    }

    /// Sets (or clears) the handler run after each successful connection.
    pub fn on_connect(&self, handler: Option<ConnectHandler>) {
        self.inner
            .callbacks
            .set_on_connect(handler, !self.inner.workers.is_worker_thread());
    }

    /// Sets (or clears) the handler run on each disconnection step.
    pub fn on_disconnect(&self, handler: Option<DisconnectHandler>) {
        self.inner
            .callbacks
            .set_on_disconnect(handler, !self.inner.workers.is_worker_thread());
    }

    /// Routes messages of `type_code` to `handler` instead of `on_recv`.
    pub fn route(&self, type_code: u16, handler: MessageHandler) -> Result<()> {
        self.inner
            .callbacks
            .route("veltix_client", type_code, handler)
    }

    /// Removes the route of `type_code`.
    pub fn unroute(&self, type_code: u16) -> Result<()> {
        self.inner
            .callbacks
            .unroute(type_code, !self.inner.workers.is_worker_thread())
    }

    // ----- connection lifecycle ------------------------------------------

    /// Connects and completes the handshake; with `retry > 0`, retries on
    /// failure before giving up (blocking).
    pub fn connect(&self) -> Result<()> {
        let attempt = self.begin_connect()?;
        let result = self.run_connect(&attempt);
        if result.is_err() {
            self.wait_delivered();
        }
        result
    }

    /// Starts `connect` on a thread of its own and returns at once. The
    /// outcome arrives as callbacks: `on_connect`, or the `on_disconnect`
    /// sequence of a failed connect (with `retry > 0`, one call per failed
    /// attempt, then the permanent one).
    pub fn connect_async(&self) -> Result<()> {
        let attempt = self.begin_connect()?;
        let client = self.clone();
        let run = attempt.clone();
        let spawned = self.spawn_thread("veltix-connect", move || {
            let _ = client.run_connect(&run);
        });
        if let Err(error) = spawned {
            self.end_attempt(&attempt);
            return Err(error);
        }
        Ok(())
    }

    /// Registers a connect operation, or says why one cannot start.
    fn begin_connect(&self) -> Result<Arc<Attempt>> {
        self.begin_attempt().map_err(|busy| match busy {
            Busy::Freed => freed(),
            Busy::Connected | Busy::InProgress => Error::AlreadyConnected(
                "already connected, connecting or reconnecting. Fix: veltix_client_disconnect() first".into(),
            ),
        })
    }

    /// The body of `connect`: one attempt, then on failure the
    /// `on_disconnect` sequence and, with `retry > 0`, the retry loop.
    fn run_connect(&self, attempt: &Arc<Attempt>) -> Result<()> {
        match attempt.establish(&self.inner.config) {
            Ok(established) => self.install(established, attempt),
            Err(error) => {
                let reason = reason_for(&error);
                log_at!(Error, "{error}");
                let retry = self.inner.config.retry;
                if retry == 0 {
                    let report = self.undelivered();
                    self.end_attempt(attempt);
                    if !attempt.is_quiet() {
                        self.report_disconnect(
                            report,
                            DisconnectState {
                                permanent: true,
                                attempt: 0,
                                retry_max: 0,
                                reason,
                                error: Some(error.clone()),
                                next_delay: None,
                            },
                        );
                    }
                    return Err(error);
                }
                let first = self.delay_before_attempt(1);
                if !attempt.is_quiet() {
                    self.emit_disconnect(DisconnectState {
                        permanent: false,
                        attempt: 0,
                        retry_max: retry,
                        reason,
                        error: Some(error.clone()),
                        next_delay: Some(first),
                    });
                }
                self.retry_loop(attempt, retry, reason, error, first)
            }
        }
    }

    /// Closes the connection (or cancels a reconnection) and reports
    /// `on_disconnect` with reason MANUAL. Frames already sent are written
    /// first, waiting at most `send_timeout` for a server that stopped
    /// reading; never waits for callbacks.
    pub fn disconnect(&self) -> Result<()> {
        let why = Error::Closed("the client was disconnected while waiting for the reply".into());
        let report = self.undelivered();
        if !self.shut_down(false, why) {
            return Err(Error::NotConnected);
        }
        log_at!(
            Info,
            "disconnected from {}:{}",
            self.inner.config.server_addr,
            self.inner.config.port
        );
        self.report_disconnect(
            report,
            DisconnectState {
                permanent: true,
                attempt: 0,
                retry_max: self.inner.config.retry,
                reason: DisconnectReason::Manual,
                error: None,
                next_delay: None,
            },
        );
        Ok(())
    }

    /// Starts a reconnection loop in the background (`max_attempts`, or
    /// `config.retry` when `None`).
    pub fn retry(&self, max_attempts: Option<u32>) -> Result<()> {
        let max = max_attempts.unwrap_or(self.inner.config.retry);
        if max == 0 {
            return Err(Error::InvalidArgument(
                "nothing to retry: config.retry is 0 and no attempt count was given. Fix: pass max_attempts > 0".into(),
            ));
        }
        let attempt = match self.begin_attempt() {
            Ok(attempt) => attempt,
            Err(Busy::InProgress) => {
                log_at!(
                    Warn,
                    "retry() ignored: a connect or retry is already in progress"
                );
                return Ok(());
            }
            Err(Busy::Connected) => {
                return Err(Error::AlreadyConnected(
                    "already connected. Fix: nothing to retry".into(),
                ))
            }
            Err(Busy::Freed) => return Err(freed()),
        };
        let client = self.clone();
        let spawned = self.spawn_thread("veltix-retry", move || {
            let error = Error::Closed("no reconnection attempt was made".into());
            let reason = DisconnectReason::ServerClosed;
            let _ = client.retry_loop(&attempt, max, reason, error, Duration::ZERO);
        });
        if let Err(error) = spawned {
            self.end_attempt_now();
            return Err(error);
        }
        Ok(())
    }

    /// Cancels a running reconnection loop at once, even during its delay.
    pub fn stop_retry(&self) {
        let state = self.state();
        if let Some(attempt) = &state.attempt {
            attempt.cancel(false);
        }
        self.inner.state_changed.notify_all();
    }

    /// Waits until the client is neither connected nor reconnecting, and
    /// (outside a callback) its `on_disconnect` calls have run, at most
    /// `timeout` (`None` = forever).
    pub fn wait_until_closed(&self, timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let in_callback = self.cannot_wait_for_callbacks();
        let mut state = self.state();
        while state.connection.is_some()
            || state.attempt.is_some()
            || (state.undelivered > 0 && !in_callback)
        {
            state = match deadline {
                None => self
                    .inner
                    .state_changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::Timeout(
                            "the client is still connected or reconnecting. Fix: wait longer, or veltix_client_disconnect() it".into(),
                        ));
                    }
                    self.inner
                        .state_changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        Ok(())
    }

    /// Whether the handshake has completed and the connection is up.
    pub fn is_connected(&self) -> bool {
        self.state().connection.is_some()
    }

    /// Shuts the client down for good: closes the connection, cancels any
    /// reconnection, fails pending requests, drops queued callbacks and joins
    /// the library's threads, except the calling one when called from a
    /// callback. No callback starts after this returns. Idempotent.
    pub fn close(&self) {
        self.shut_down(true, freed());
        let in_callback = self.inner.workers.is_worker_thread();
        self.inner.workers.shutdown(!in_callback);
        let me = std::thread::current().id();
        let threads =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in threads {
            if handle.thread().id() != me && !in_callback {
                let _ = handle.join();
            }
        }
    }

    /// Dispatch mode (`max_workers` 0): waits up to `timeout` (`None`: for
    /// ever) for a callback to be due, then runs it and those due by then
    /// on the calling thread; how many ran.
    pub fn dispatch(&self, timeout: Option<Duration>) -> Result<usize> {
        let workers = &self.inner.workers;
        if timeout != Some(Duration::ZERO) && workers.dispatch_would_wait() {
            // As a waiter for a reply: the host's thread reads the socket
            // itself while the reader thread is idle, until a callback is
            // due, so the reply a `request` waits for wakes it directly.
            let started = Instant::now();
            if let Ok(connection) = self.connection() {
                if let Some(lead) = reader::Lead::take(&connection) {
                    let deadline = started + timeout.unwrap_or(LONGEST_LEAD);
                    let awake = workers.host_awake();
                    self.read_while_waiting(lead, deadline, &|| workers.job_due());
                    let left = timeout.map(|timeout| timeout.saturating_sub(started.elapsed()));
                    let ran = workers.dispatch(left);
                    drop(awake);
                    return Ok(ran?);
                }
            }
        }
        Ok(workers.dispatch(timeout)?)
    }

    /// Dispatch mode: a handle readable while callbacks are due (a file
    /// descriptor on POSIX, a `SOCKET` on Windows).
    pub fn event_handle(&self) -> Result<PollHandle> {
        Ok(self.inner.workers.event_handle()?)
    }

    // ----- messaging ----------------------------------------------------

    /// Sends a message with a fresh request id: written by this thread when
    /// alone, queued for the connection's writer thread within a burst
    /// (the writer thread is woken at once: no timer holds the last frame).
    pub fn send(&self, type_code: u16, payload: &[u8]) -> Result<()> {
        self.check_size(payload)?;
        let connection = self.connection()?;
        let id = self.inner.pending.allocate_id()?;
        connection.send(type_code, id, payload, None, Coalesce::IfBurst)
    }

    /// Sends a reply to `to`: a message carrying `to`'s request id.
    pub fn reply(&self, to: &Message, type_code: u16, payload: &[u8]) -> Result<()> {
        self.check_size(payload)?;
        self.connection()?
            .send(type_code, to.request_id(), payload, None, Coalesce::IfBurst)
    }

    /// Sends a request and waits for the message carrying its id.
    pub fn send_and_wait(
        &self,
        type_code: u16,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Message> {
        self.check_size(payload)?;
        let connection = self.connection()?;
        self.round_trip(&connection, type_code, payload, timeout)
    }

    /// One request and its reply on `connection`; the caller reads the
    /// reply itself when the reader thread is idle (see [`reader`]).
    fn round_trip(
        &self,
        connection: &Connection,
        type_code: u16,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Message> {
        let lead = reader::Lead::take(connection);
        self.inner.pending.round_trip(
            THE_CONNECTION,
            timeout,
            |request_id, deadline| {
                let deadline = Some(deadline);
                connection.send(type_code, request_id, payload, deadline, Coalesce::Never)
            },
            |deadline, replied| {
                if let Some(lead) = lead {
                    self.read_while_waiting(lead, deadline, replied)
                }
            },
        )
    }

    /// Sends a request without waiting for its reply: `on_reply` runs once,
    /// as a callback (on a worker, or inside `dispatch`), with the reply, a
    /// timeout after `timeout`, or the error that ended the connection. If
    /// this returns an error, `on_reply` never runs. The write itself waits
    /// for a full socket at most `send_timeout` (or `timeout`, if shorter).
    pub fn request(
        &self,
        type_code: u16,
        payload: &[u8],
        timeout: Duration,
        on_reply: ReplyHandler,
    ) -> Result<()> {
        self.check_size(payload)?;
        let client = self.clone();
        let on_outcome: crate::pending::OnOutcome = Box::new(move |result| {
            let workers = &client.inner.workers;
            let handle = client.clone();
            workers.submit_ordered(Box::new(move || on_reply(&handle, result)));
        });
        let deadline = Instant::now() + timeout;
        self.inner.pending.request(
            THE_CONNECTION,
            timeout,
            |request_id| {
                self.connection()?.send(
                    type_code,
                    request_id,
                    payload,
                    Some(deadline),
                    Coalesce::IfBurst,
                )
            },
            on_outcome,
        )
    }

    /// Pings the server; the round trip in milliseconds (also kept as the
    /// connection's last round trip in [`Client::stats`]).
    pub fn ping(&self, timeout: Duration) -> Result<f64> {
        let connection = self.connection()?;
        let start = Instant::now();
        self.round_trip(&connection, PING, &[], timeout)?;
        let rtt = start.elapsed();
        connection.stats.round_trip(rtt);
        Ok(rtt.as_secs_f64() * 1000.0)
    }

    /// The current connection's statistics since its handshake.
    pub fn stats(&self) -> Result<StatsSnapshot> {
        Ok(self.connection()?.stats.snapshot())
    }

    // ----- internals ------------------------------------------------------

    /// Forgets the connection and the operation in progress, closing the one
    /// and quietly cancelling the other, and fails pending requests with
    /// `why`. With `free`, no new connection can start afterwards. Returns
    /// whether there was anything to close.
    fn shut_down(&self, free: bool, why: Error) -> bool {
        let (connection, attempt) = {
            let mut state = self.state();
            state.freed |= free;
            let taken = (state.connection.take(), state.attempt.take());
            self.inner.state_changed.notify_all();
            taken
        };
        if let Some(attempt) = &attempt {
            attempt.cancel(true);
        }
        if let Some(connection) = &connection {
            connection.finish();
        }
        self.inner.pending.fail_all(&why);
        connection.is_some() || attempt.is_some()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn callbacks(&self) -> &Callbacks {
        &self.inner.callbacks
    }

    fn connection(&self) -> Result<Arc<Connection>> {
        let state = self.state();
        if state.freed {
            return Err(freed());
        }
        state.connection.clone().ok_or(Error::NotConnected)
    }

    /// The configured `max_message_size`.
    pub fn max_message_size(&self) -> u32 {
        self.inner.config.max_message_size
    }

    fn check_size(&self, payload: &[u8]) -> Result<()> {
        check_frame_size(payload.len(), self.inner.config.max_message_size)
    }

    /// Registers a new connect/retry operation if the client is idle.
    fn begin_attempt(&self) -> std::result::Result<Arc<Attempt>, Busy> {
        let mut state = self.state();
        if state.freed {
            return Err(Busy::Freed);
        }
        if state.connection.is_some() {
            return Err(Busy::Connected);
        }
        if state.attempt.is_some() {
            return Err(Busy::InProgress);
        }
        let attempt = Arc::new(Attempt::default());
        state.attempt = Some(attempt.clone());
        Ok(attempt)
    }

    /// Ends `attempt` if it is still the current operation.
    fn end_attempt(&self, attempt: &Arc<Attempt>) {
        let mut state = self.state();
        if state
            .attempt
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, attempt))
        {
            state.attempt = None;
            self.inner.state_changed.notify_all();
        }
    }

    fn end_attempt_now(&self) {
        self.state().attempt = None;
        self.inner.state_changed.notify_all();
    }

    /// Makes an established connection the client's, unless `attempt` was
    /// cancelled meanwhile, and starts its reader (which reports
    /// `on_connect`).
    fn install(&self, established: connection::Established, attempt: &Arc<Attempt>) -> Result<()> {
        let connection = Arc::new(Connection::new(
            established.stream,
            established.decoder,
            &self.inner.config,
        )?);
        let generation = {
            let mut state = self.state();
            let current = state
                .attempt
                .as_ref()
                .is_some_and(|a| Arc::ptr_eq(a, attempt));
            if attempt.is_cancelled() || !current || state.freed {
                connection.shutdown();
                if current {
                    state.attempt = None;
                    self.inner.state_changed.notify_all();
                }
                return Err(attempt::cancelled());
            }
            state.attempt = None;
            state.connection = Some(connection.clone());
            state.generation += 1;
            self.inner.state_changed.notify_all();
            state.generation
        };
        let client = self.clone();
        let reader_connection = connection.clone();
        let spawned = self.spawn_thread("veltix-reader", move || {
            client.run_reader(generation, reader_connection, established.early_frames)
        });
        if let Err(error) = spawned {
            connection.shutdown();
            let mut state = self.state();
            state.connection = None;
            self.inner.state_changed.notify_all();
            return Err(error);
        }
        Ok(())
    }

    /// Queues `on_connect`; the reader does it before dispatching anything,
    /// so `on_connect` comes before the connection's first message.
    fn emit_connect(&self) {
        log_at!(
            Info,
            "connected to {}:{}",
            self.inner.config.server_addr,
            self.inner.config.port
        );
        let client = self.clone();
        self.inner.workers.submit_ordered(Box::new(move || {
            if let Some(call) = client.callbacks().on_connect() {
                (call.handler())(&client);
            }
        }));
    }

    /// Queues an `on_disconnect` call.
    fn emit_disconnect(&self, disconnect: DisconnectState) {
        let report = self.undelivered();
        self.report_disconnect(report, disconnect);
    }

    /// Counts an `on_disconnect` call about to be decided on; take it
    /// before the state change it will report.
    fn undelivered(&self) -> Undelivered {
        self.state().undelivered += 1;
        Undelivered(self.clone())
    }

    /// Queues the `on_disconnect` call counted by `report`.
    fn report_disconnect(&self, report: Undelivered, disconnect: DisconnectState) {
        let client = self.clone();
        self.inner.workers.submit_ordered(Box::new(move || {
            if let Some(call) = client.callbacks().on_disconnect() {
                (call.handler())(&client, &disconnect);
            }
            drop(report);
        }));
    }

    /// Whether waiting for queued callbacks could wait for ever: inside a
    /// callback (it would wait for itself), or in dispatch mode (they run
    /// only when the host dispatches, and the host may be the caller).
    fn cannot_wait_for_callbacks(&self) -> bool {
        self.inner.workers.is_dispatch_mode() || self.inner.workers.is_worker_thread()
    }

    /// Outside a callback, waits until every `on_disconnect` call decided
    /// on has run (a callback waiting for them could wait for itself).
    fn wait_delivered(&self) {
        if self.cannot_wait_for_callbacks() {
            return;
        }
        let mut state = self.state();
        while state.undelivered > 0 {
            state = self
                .inner
                .state_changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn spawn_thread(&self, name: &str, body: impl FnOnce() + Send + 'static) -> Result<()> {
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || crate::workers::run_guarded(Box::new(body)))
            .map_err(|e| Error::io("cannot start a thread", &e))?;
        let mut threads = self.inner.threads.lock().unwrap_or_else(|e| e.into_inner());
        // Finished threads (readers of closed connections, ended retry
        // loops) are joined, which returns at once, rather than dropped
        // unjoined: a client reconnecting for days must not leak them.
        let (finished, running) = threads.drain(..).partition(|t| t.is_finished());
        *threads = running;
        for thread in finished {
            let _ = thread.join();
        }
        threads.push(handle);
        Ok(())
    }
}

/// Why a new connect/retry operation cannot start.
enum Busy {
    Freed,
    Connected,
    InProgress,
}

fn freed() -> Error {
    Error::Closed("the client was freed".into())
}

/// The disconnect reason reported for a failed connection attempt.
fn reason_for(error: &Error) -> DisconnectReason {
    match error {
        Error::ServerFull => DisconnectReason::ServerClosed,
        _ => DisconnectReason::Error,
    }
}
