//! The read side of a connection: decodes frames, answers PINGs,
//! completes pending requests, hands the rest to the worker pool, and
//! reports the connection's end.
//!
//! Reading happens in turns, each by whichever thread holds the
//! connection's [`ReadState`]:
//! - the reader thread, which waits for bytes without holding it;
//! - a thread waiting for its reply (`send_and_wait`, `ping`), when the
//!   reader thread is idle: it reads the socket itself until the reply
//!   comes, doing the reader thread's whole job for every other frame, in
//!   order (the leader/follower pattern of ACE, and what the blocking APIs
//!   of hiredis and libpq do). Its reply then costs two thread wake-ups,
//!   the server's and its own, as in a program reading its own socket,
//!   not three with the reader thread's between them; on a busy machine
//!   that third one is what made a round trip 2.6 times the raw one
//!   (`cargo bench --bench client -- "latency under load"`).

use std::cell::Cell;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use super::connection::Connection;
use super::handlers::MessageHandler;
use super::{Client, DisconnectReason, DisconnectState};
use crate::callbacks::{with_thread_cache, HandledTypes, HandlerCache};
use crate::error::Error;
use crate::liveness::{dead_connection, heartbeat_tick, Heartbeat, HeartbeatClock, HeartbeatDue};
use crate::log::log_at;
use crate::protocol::frame::{PING, PONG};
use crate::protocol::{Decoded, FrameDecoder, Message};
use crate::stats::StatsTime;
use crate::sys::ReadWait;
use crate::writer::Coalesce;

thread_local! {
    /// The message handler this worker thread called last.
    static HANDLERS: Cell<HandlerCache<MessageHandler>> = const { Cell::new(HandlerCache::new()) };
}

/// Longest wait for bytes without heartbeats: a turn then finds nothing.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// How a connection ended, and the error it reports.
type Ended = (DisconnectReason, Error);

/// What a thread needs to take a read turn; held by the reader (the
/// connection's lock of its read side).
pub(crate) struct ReadState {
    decoder: FrameDecoder,
    clock: HeartbeatClock,
    handled: HandledTypes,
    /// The reader thread has queued `on_connect` and the frames that came
    /// inside the handshake: only then may a waiting thread read.
    open: bool,
    /// The end a waiting thread met while reading, for the reader thread
    /// to report.
    ended: Option<Ended>,
    /// Replies read by the thread that waited for them.
    #[cfg(test)]
    replies_read_by_waiters: u64,
}

impl ReadState {
    /// The read side of a connection whose handshake left `decoder`.
    pub fn new(decoder: FrameDecoder) -> Self {
        ReadState {
            decoder,
            clock: HeartbeatClock::new(Instant::now()),
            handled: HandledTypes::default(),
            open: false,
            ended: None,
            #[cfg(test)]
            replies_read_by_waiters: 0,
        }
    }
}

/// The read side, taken by a thread about to send a request and wait for
/// its reply, with the reader thread's wait paused: taken before the
/// request leaves, so that its reply cannot wake the reader thread. The
/// wait resumes when it is dropped.
pub(super) struct Lead<'a> {
    connection: &'a Connection,
    state: MutexGuard<'a, ReadState>,
}

impl<'a> Lead<'a> {
    /// The read side of `connection`, unless another thread reads it (the
    /// reader thread in a turn, or another waiter), the reader thread has
    /// not yet queued `on_connect`, or the connection ended.
    pub fn take(connection: &'a Connection) -> Option<Self> {
        let state = connection.try_read()?;
        if !state.open || state.ended.is_some() {
            return None;
        }
        connection.watch.pause();
        Some(Lead { connection, state })
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        // Before the read side is let go: bytes that came meanwhile wake
        // the reader thread as soon as it may read them.
        self.connection.watch.resume();
    }
}

/// What a read turn leaves for the next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// The read filled its room: more bytes are probably waiting.
    Full,
    /// The socket had no more bytes.
    Drained,
}

impl Client {
    /// Body of the reader thread of connection `generation`.
    pub(super) fn run_reader(
        &self,
        generation: u64,
        connection: Arc<Connection>,
        early_frames: Vec<Message>,
    ) {
        {
            let mut state = connection.lock_read();
            let state = &mut *state;
            self.emit_connect();
            for message in early_frames {
                self.on_frame(&connection, message, &mut state.handled);
            }
            connection.stats.read(state.decoder.buffered().len());
            state.clock = HeartbeatClock::new(Instant::now());
            state.open = true;
        }
        let heartbeat = self.inner.config.liveness.heartbeat;
        // Waits for bytes end at least once a tick to look at the heartbeat.
        let wait = heartbeat_tick(&heartbeat).unwrap_or(IDLE_WAIT);
        // The decoder may hold frames read past the handshake's ack.
        let mut turn = Turn::Full;
        let ended = loop {
            // Back-pressure: no reading while the callbacks lag behind.
            if !connection.backlog.wait_for_room() {
                break (
                    DisconnectReason::Error,
                    Error::Closed("the connection was closed".into()),
                );
            }
            if turn == Turn::Drained {
                if let Err(e) = connection.watch.wait(wait) {
                    break read_failed(&e);
                }
            }
            let Some(mut state) = connection.try_read() else {
                // A thread waiting for its reply reads; where it could not
                // pause this wait, its bytes woke this thread too. It gives
                // the CPU to that reader, and waits again.
                std::thread::yield_now();
                turn = Turn::Drained;
                continue;
            };
            if let Some(ended) = state.ended.take() {
                break ended;
            }
            if connection.backlog.is_paused() {
                // Held back, the reader could not see the server's frames:
                // the pause counts as life.
                state.clock.received(Instant::now());
            }
            match self.read_turn(&connection, &mut state, &heartbeat, ReadWait::No) {
                Ok(next) => turn = next,
                Err(ended) => break ended,
            }
        };
        let ended = match connection.send_failed() {
            true => (
                DisconnectReason::Error,
                Error::Closed("a send to the server failed or timed out".into()),
            ),
            false => ended,
        };
        self.connection_lost(generation, &connection, ended);
    }

    /// Reads the connection on the calling thread while it waits for a
    /// reply, as `lead` allows: until `replied()`, the `deadline`, a full
    /// callback backlog or the connection's end (which the reader thread
    /// then reports).
    pub(super) fn read_while_waiting(
        &self,
        mut lead: Lead<'_>,
        deadline: Instant,
        replied: &dyn Fn() -> bool,
    ) {
        let connection = lead.connection;
        let heartbeat = &self.inner.config.liveness.heartbeat;
        // The request was just sent: its reply is not there yet.
        let mut turn = Turn::Drained;
        let ended = loop {
            if replied() {
                #[cfg(test)]
                {
                    lead.state.replies_read_by_waiters += 1;
                }
                break None;
            }
            if connection.backlog.holds_reading_back() {
                break None;
            }
            let wait = match turn {
                Turn::Full => ReadWait::No,
                Turn::Drained => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break None;
                    }
                    // A read that blocks ends within the socket's read
                    // timeout, the lead slice; a shorter wait polls.
                    if left >= connection.lead_slice {
                        ReadWait::Blocking
                    } else if crate::sys::wait_for_bytes(connection.stream(), left).is_err() {
                        // The reader thread meets the error and reports it.
                        break None;
                    } else {
                        ReadWait::No
                    }
                }
            };
            match self.read_turn(connection, &mut lead.state, heartbeat, wait) {
                Ok(next) => turn = next,
                Err(ended) => break Some(ended),
            }
        };
        // The reader thread reports the end: the socket's end or error
        // wakes it once the lead lets go, a dead heartbeat at its next tick.
        lead.state.ended = ended;
    }

    /// One read turn: takes what the socket holds (waiting for it as `wait`
    /// says), handles every whole frame buffered, and looks at the
    /// heartbeat.
    fn read_turn(
        &self,
        connection: &Connection,
        state: &mut ReadState,
        heartbeat: &Heartbeat,
        wait: ReadWait,
    ) -> Result<Turn, Ended> {
        let stats = &connection.stats;
        let mut room = 0;
        let read = state.decoder.fill_with(|buf| {
            room = buf.len();
            crate::sys::read_as(connection.stream(), buf, wait)
        });
        let now = Instant::now();
        let turn = match read {
            Ok(0) => {
                return Err((
                    DisconnectReason::ServerClosed,
                    Error::Closed("the server closed the connection".into()),
                ))
            }
            Ok(n) => {
                stats.read(n);
                state.clock.received(now);
                if n == room {
                    Turn::Full
                } else {
                    Turn::Drained
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Turn::Full,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Turn::Drained
            }
            Err(e) => {
                log_at!(Debug, "connection read failed: {e}");
                return Err(read_failed(&e));
            }
        };
        let mut frames = 0;
        while let Some(decoded) = state.decoder.next_frame() {
            frames += 1;
            match decoded {
                Decoded::Frame(message) => self.on_frame(connection, message, &mut state.handled),
                Decoded::Dropped(reason) => log_at!(Warn, "from the server: {reason}"),
            }
        }
        if frames > 0 {
            stats.frames_arrived(frames, StatsTime::of(now));
            connection.frames_received(now);
        }
        match state.clock.due(heartbeat, now) {
            HeartbeatDue::Dead(silence) => {
                log_at!(
                    Warn,
                    "nothing from {}:{} for {} ms: the connection is dead",
                    self.inner.config.server_addr,
                    self.inner.config.port,
                    silence.as_millis()
                );
                return Err((DisconnectReason::Error, dead_connection(silence)));
            }
            HeartbeatDue::Ping => {
                state.clock.pinged(now);
                self.send_heartbeat(connection, heartbeat, state.clock.last_received());
            }
            HeartbeatDue::Until(_) | HeartbeatDue::Never => {}
        }
        Ok(turn)
    }

    /// Sends a heartbeat PING. Its PONG completes a pending request that
    /// records the round trip and never reaches a callback. The write may
    /// wait until the connection would be declared dead.
    fn send_heartbeat(
        &self,
        connection: &Connection,
        heartbeat: &Heartbeat,
        last_received: Instant,
    ) {
        let sent = Instant::now();
        let deadline = heartbeat.timeout.map(|timeout| last_received + timeout);
        let stats = connection.stats.clone();
        let record_rtt: crate::pending::OnOutcome = Box::new(move |result| {
            if result.is_ok() {
                stats.round_trip(sent.elapsed());
            }
        });
        let wait = heartbeat
            .timeout
            .or(heartbeat.interval)
            .unwrap_or(Duration::from_secs(1));
        let sent_ping = self.inner.pending.request(
            super::THE_CONNECTION,
            wait,
            |id| connection.send(PING, id, &[], deadline, Coalesce::IfBurst),
            record_rtt,
        );
        if let Err(error) = sent_ping {
            log_at!(Debug, "heartbeat PING not sent: {error}");
        }
    }

    /// Routes one incoming message, in the reference's order: PING is
    /// answered, a reply completes its pending request, then a route or
    /// `on_recv` gets it on the pool, else it is dropped with a log line.
    fn on_frame(&self, connection: &Connection, message: Message, handled: &mut HandledTypes) {
        if message.type_code() == PING {
            if let Err(error) =
                connection.send(PONG, message.request_id(), &[], None, Coalesce::Never)
            {
                log_at!(Warn, "could not answer a PING: {error}");
            }
            return;
        }
        let Some(message) = self.inner.pending.complete(super::THE_CONNECTION, message) else {
            return;
        };
        match self.callbacks().handles(message.type_code(), handled) {
            true => {
                let client = self.clone();
                let charge = connection.backlog.charge(message.payload().len());
                // The handler is looked up again when the job runs: one
                // removed or replaced meanwhile is never started.
                self.inner.workers.submit_droppable(Box::new(move || {
                    with_thread_cache(&HANDLERS, |handlers| {
                        client.callbacks().call_message_handler(
                            message.type_code(),
                            handlers,
                            |handler| handler(&client, &message),
                        )
                    });
                    drop(charge);
                }));
            }
            false => log_at!(
                Warn,
                "message of type {} (request id {}) dropped: no route and no on_recv callback",
                message.type_code(),
                message.request_id()
            ),
        }
    }

    /// Reports the end of connection `generation`, unless `disconnect` or
    /// `free` already took it, and starts reconnecting if configured.
    fn connection_lost(
        &self,
        generation: u64,
        connection: &Connection,
        (reason, error): (DisconnectReason, Error),
    ) {
        connection.shutdown();
        let retry = self.inner.config.retry;
        let report = self.undelivered();
        let attempt = {
            let mut state = self.state();
            if state.generation != generation || state.connection.is_none() {
                return;
            }
            state.connection = None;
            let attempt = (retry > 0 && !state.freed).then(Arc::default);
            state.attempt = attempt.clone();
            self.inner.state_changed.notify_all();
            attempt
        };
        self.inner.pending.fail_all(&Error::Closed(
            "the connection closed before the reply arrived".into(),
        ));
        log_at!(
            Warn,
            "connection to {}:{} lost ({reason:?})",
            self.inner.config.server_addr,
            self.inner.config.port
        );
        let first = attempt.as_ref().map(|_| self.delay_before_attempt(1));
        self.report_disconnect(
            report,
            DisconnectState {
                permanent: attempt.is_none(),
                attempt: 0,
                retry_max: retry,
                reason,
                error: Some(error.clone()),
                next_delay: first,
            },
        );
        if let Some(attempt) = attempt {
            let _ = self.retry_loop(&attempt, retry, reason, error, first.unwrap_or_default());
        }
    }
}

fn read_failed(error: &std::io::Error) -> Ended {
    (
        DisconnectReason::Error,
        Error::io("reading from the server failed", error),
    )
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc::{channel, Receiver};
    use std::sync::{Arc, Barrier, Mutex};

    use super::*;
    use crate::client::ClientConfig;
    use crate::protocol::{encode_frame, handshake};
    use crate::test_wire::{
        answer_among_pushes, assert_pushes_of_rounds, next_frame, PUSH, REQUEST,
    };

    /// A server that completes the handshake, then runs `script` on the
    /// connection and a decoder of what the client sends.
    fn fake_server(
        script: impl FnOnce(TcpStream, FrameDecoder) + Send + 'static,
    ) -> (u16, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.set_nodelay(true).unwrap();
            let hello = serde_json::json!({"v": "3.3.0", "pv": "1.0", "meta": {}});
            stream.write_all(&handshake::encode(&hello)).unwrap();
            let mut decoder = FrameDecoder::new(u32::MAX, 4096);
            loop {
                if let Some(item) = handshake::next_item(&mut decoder) {
                    assert!(item.is_ok());
                    break;
                }
                let read = decoder.fill_with(|buf| (&stream).read(buf)).unwrap();
                assert!(read > 0, "the client left during the handshake");
            }
            stream.write_all(&handshake::ack()).unwrap();
            script(stream, decoder);
        });
        (port, server)
    }

    /// A connected client with one worker whose pushes arrive on the
    /// channel.
    fn client_on(port: u16, config: ClientConfig) -> (Client, Receiver<Vec<u8>>) {
        let client = Client::new(ClientConfig {
            port,
            max_workers: 1,
            ..config
        })
        .unwrap();
        let (pushes, pushed) = channel();
        let pushes = Mutex::new(pushes);
        client.on_recv(Some(Arc::new(move |_, message| {
            let _ = pushes.lock().unwrap().send(message.payload().to_vec());
        })));
        client.connect().unwrap();
        (client, pushed)
    }

    fn replies_read_by_waiters(client: &Client) -> u64 {
        client
            .connection()
            .unwrap()
            .lock_read()
            .replies_read_by_waiters
    }

    #[test]
    fn a_waiter_reads_its_own_reply_and_hands_on_every_other_frame_in_order() {
        const ROUNDS: u16 = 10;
        let (port, server) =
            fake_server(|stream, decoder| answer_among_pushes(stream, decoder, ROUNDS));
        let (client, pushed) = client_on(port, ClientConfig::default());
        for _ in 0..ROUNDS {
            // The reader thread is idle between rounds.
            std::thread::sleep(Duration::from_millis(20));
            let reply = client
                .send_and_wait(REQUEST, b"request", Duration::from_secs(10))
                .unwrap();
            assert_eq!(reply.payload(), b"reply");
        }
        assert_pushes_of_rounds(&pushed, ROUNDS);
        assert_eq!(
            replies_read_by_waiters(&client),
            u64::from(ROUNDS),
            "the reader thread, not the waiter, read replies"
        );
        client.close();
        server.join().unwrap();
    }

    #[test]
    fn a_dispatching_host_reads_the_reply_its_request_waits_for() {
        const ROUNDS: u16 = 5;
        let (port, server) = fake_server(|stream, mut decoder| {
            let mut out = &stream;
            while let Some(request) = next_frame(&stream, &mut decoder) {
                if request.type_code() == REQUEST {
                    // Late enough that the host is inside dispatch, even
                    // in an instrumented build: a reply that comes before
                    // is the reader thread's to read.
                    std::thread::sleep(Duration::from_millis(50));
                    let mut burst = encode_frame(PUSH, 0, b"push");
                    burst.extend(encode_frame(REQUEST, request.request_id(), b"reply"));
                    out.write_all(&burst).unwrap();
                }
            }
        });
        let client = Client::new(ClientConfig {
            port,
            max_workers: 0,
            ..ClientConfig::default()
        })
        .unwrap();
        let (events, event) = channel();
        let pushes = Mutex::new(events.clone());
        client.on_recv(Some(Arc::new(move |_, message| {
            let _ = pushes.lock().unwrap().send(message.payload().to_vec());
        })));
        client.connect().unwrap();
        // on_connect's turn (none registered) and anything queued since.
        while client.dispatch(Some(Duration::from_millis(50))).unwrap() > 0 {}
        for _ in 0..ROUNDS {
            std::thread::sleep(Duration::from_millis(20));
            let replies = Mutex::new(events.clone());
            client
                .request(
                    REQUEST,
                    b"request",
                    Duration::from_secs(10),
                    Box::new(move |_, reply| {
                        let _ = replies
                            .lock()
                            .unwrap()
                            .send(reply.unwrap().payload().to_vec());
                    }),
                )
                .unwrap();
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            while got.len() < 2 {
                assert!(Instant::now() < deadline, "callbacks missing: {got:?}");
                client.dispatch(Some(Duration::from_secs(5))).unwrap();
                got.extend(event.try_iter());
            }
            assert_eq!(got, [b"push".to_vec(), b"reply".to_vec()]);
        }
        assert!(
            replies_read_by_waiters(&client) >= u64::from(ROUNDS),
            "the reader thread, not the dispatching host, read the replies"
        );
        client.close();
        server.join().unwrap();
    }

    #[test]
    fn a_waiter_stops_reading_when_the_callbacks_lag_behind() {
        const PUSHES: u16 = 200;
        let (port, server) = fake_server(|stream, mut decoder| {
            let mut out = &stream;
            let request = next_frame(&stream, &mut decoder).unwrap();
            let mut burst = Vec::new();
            for _ in 0..PUSHES {
                burst.extend(encode_frame(PUSH, 0, b"push"));
            }
            burst.extend(encode_frame(REQUEST, request.request_id(), b"reply"));
            out.write_all(&burst).unwrap();
            while next_frame(&stream, &mut decoder).is_some() {}
        });
        let client = Client::new(ClientConfig {
            port,
            max_workers: 1,
            max_queued_messages: 4,
            buffer_size: 64,
            ..ClientConfig::default()
        })
        .unwrap();
        // The first callback holds the worker until released.
        let release = Arc::new(Barrier::new(2));
        let held = release.clone();
        let first = std::sync::atomic::AtomicBool::new(true);
        client.on_recv(Some(Arc::new(move |_, _| {
            if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                held.wait();
            }
        })));
        client.connect().unwrap();
        let waiter = {
            let client = client.clone();
            std::thread::spawn(move || client.send_and_wait(REQUEST, b"r", Duration::from_secs(20)))
        };
        std::thread::sleep(Duration::from_millis(300));
        let frames_in = client.stats().unwrap().frames_in;
        assert!(
            frames_in < u64::from(PUSHES) / 2,
            "{frames_in} frames read while the callbacks were stuck"
        );
        release.wait();
        let reply = waiter.join().unwrap().unwrap();
        assert_eq!(reply.payload(), b"reply");
        client.close();
        server.join().unwrap();
    }
}
