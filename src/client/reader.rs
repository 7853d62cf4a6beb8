//! The reader thread of a connection: decodes frames, answers PINGs,
//! completes pending requests, hands the rest to the worker pool, and
//! reports the connection's end.

use std::cell::Cell;
use std::sync::Arc;
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

thread_local! {
    /// The message handler this worker thread called last.
    static HANDLERS: Cell<HandlerCache<MessageHandler>> = const { Cell::new(HandlerCache::new()) };
}

impl Client {
    /// Body of the reader thread of connection `generation`.
    pub(super) fn run_reader(
        &self,
        generation: u64,
        connection: Arc<Connection>,
        mut decoder: FrameDecoder,
        early_frames: Vec<Message>,
    ) {
        self.emit_connect();
        let mut handled = HandledTypes::default();
        for message in early_frames {
            self.on_frame(&connection, message, &mut handled);
        }
        let stats = connection.stats.clone();
        stats.read(decoder.buffered().len());
        let heartbeat = self.inner.config.liveness.heartbeat;
        let mut clock = HeartbeatClock::new(Instant::now());
        if let Some(tick) = heartbeat_tick(&heartbeat) {
            // Reads wake up at least once a tick to look at the heartbeat.
            if let Err(e) = connection.stream().set_read_timeout(Some(tick)) {
                log_at!(Warn, "heartbeats off: cannot set the read timeout: {e}");
            }
        }
        let ended = loop {
            let mut frames = 0;
            while let Some(decoded) = decoder.next_frame() {
                frames += 1;
                match decoded {
                    Decoded::Frame(message) => self.on_frame(&connection, message, &mut handled),
                    Decoded::Dropped(reason) => log_at!(Warn, "from the server: {reason}"),
                }
            }
            if frames > 0 {
                stats.frames_arrived(frames, StatsTime::now());
            }
            // Back-pressure: no reading while the callbacks lag behind.
            if !connection.backlog.wait_for_room() {
                break (
                    DisconnectReason::Error,
                    Error::Closed("the connection was closed".into()),
                );
            }
            if connection.backlog.is_paused() {
                // Held back, the reader could not see the server's frames:
                // the pause counts as life.
                clock.received(Instant::now());
            }
            match decoder.fill_with(|buf| crate::sys::read(connection.stream(), buf)) {
                Ok(0) => {
                    break (
                        DisconnectReason::ServerClosed,
                        Error::Closed("the server closed the connection".into()),
                    )
                }
                Ok(n) => {
                    stats.read(n);
                    clock.received(Instant::now());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => {
                    log_at!(Debug, "connection read failed: {e}");
                    break (
                        DisconnectReason::Error,
                        Error::io("reading from the server failed", &e),
                    );
                }
            }
            let now = Instant::now();
            match clock.due(&heartbeat, now) {
                HeartbeatDue::Dead(silence) => {
                    log_at!(
                        Warn,
                        "nothing from {}:{} for {} ms: the connection is dead",
                        self.inner.config.server_addr,
                        self.inner.config.port,
                        silence.as_millis()
                    );
                    break (DisconnectReason::Error, dead_connection(silence));
                }
                HeartbeatDue::Ping => {
                    clock.pinged(now);
                    self.send_heartbeat(&connection, &heartbeat, clock.last_received());
                }
                HeartbeatDue::Until(_) | HeartbeatDue::Never => {}
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

    /// Sends a heartbeat PING. Its PONG completes a pending request that
    /// records the round trip and never reaches a callback. The write may
    /// wait until the connection would be declared dead.
    fn send_heartbeat(
        &self,
        connection: &Arc<Connection>,
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
            |id| connection.send(PING, id, &[], deadline),
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
            if let Err(error) = connection.send(PONG, message.request_id(), &[], None) {
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
