//! The read side of one connection: its decoder and what reading it keeps
//! (the handshake's progress, the heartbeat clock, the idle clock).
//!
//! It lives in the [`Peer`] behind a lock, taken for each read turn by the
//! I/O thread, or by a thread waiting in `send_and_wait` for a reply from
//! this peer (see `lead.rs`). Whoever holds it does the same job: it
//! completes the handshake, answers PINGs, completes pending requests, and
//! hands every other message to the peer's callbacks, in order. Decisions
//! (pausing a peer, enforcing the memory budget, closing) stay with the I/O
//! thread: a read turn only reports them.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use super::peer::Peer;
use super::{Server, ServerConfig};
use crate::budget::{Account, Gauge, MemoryBudget};
use crate::callbacks::HandledTypes;
use crate::disconnect::DisconnectReason;
use crate::liveness::{HeartbeatClock, HeartbeatDue};
use crate::log::log_at;
use crate::protocol::frame::{PING, PONG};
use crate::protocol::handshake::{self, HandshakeItem};
use crate::protocol::proxy::{self, ProxyHeader};
use crate::protocol::{Borrowed, FrameDecoder};
use crate::stats::StatsTime;
use crate::sys::ReadWait;

/// Reads of one connection per readiness turn before others get theirs.
const READS_PER_TURN: usize = 16;

/// The moment a read turn started, as liveness and statistics keep it:
/// the I/O thread reads the clock once per loop turn, not per read.
#[derive(Clone, Copy)]
pub(super) struct TurnTime {
    pub instant: Instant,
    pub stats: StatsTime,
}

impl TurnTime {
    pub fn now() -> Self {
        let instant = Instant::now();
        TurnTime {
            instant,
            stats: StatsTime::of(instant),
        }
    }
}

/// When a read turn may stop before the socket says it would block.
#[derive(Clone, Copy)]
pub(super) enum ReadUntil {
    /// At a read that fills less than the room it had: it took all the
    /// socket held, and with edge-triggered readiness bytes arriving later
    /// bring a new event. Not for an event that says the peer closed: its
    /// FIN, come with the last bytes, brings no other event.
    ShortRead,
    /// Until the socket would block (or the turn's budget ends): a turn
    /// no event started, or one whose event says the peer closed.
    WouldBlock,
}

impl ReadUntil {
    /// For a readable event: [`ReadUntil::ShortRead`] where a short read
    /// leaves the socket armed for the next bytes
    /// ([`crate::sys::SHORT_READ_REARMS`]).
    pub fn after_readable_event() -> ReadUntil {
        match crate::sys::SHORT_READ_REARMS {
            true => ReadUntil::ShortRead,
            false => ReadUntil::WouldBlock,
        }
    }
}

/// How a connection's read turn ended.
pub(super) enum Turn {
    /// The socket has nothing more to read for now.
    Drained,
    /// The read budget ran out; the socket may hold more.
    Unfinished,
    /// The peer shut its sending side (end of stream).
    ReadClosed,
    /// The peer's callback backlog is full: it is read again on
    /// [`super::event_loop::Command::Read`].
    Paused,
    /// The server's memory budget is exceeded: it must be enforced before
    /// reading on.
    OverBudget,
    /// The connection must be closed.
    Close(DisconnectReason),
}

/// What one read took from the socket.
pub(super) enum ReadAmount {
    /// All the room the decoder offered: more bytes may be waiting.
    Full,
    /// Less than its room: the socket held no more at that moment.
    Short,
}

/// What a connection's liveness deadline found.
pub(super) enum Liveness {
    /// Heard from recently enough.
    Alive,
    /// Silent for a heartbeat interval: PING it now (recorded as sent).
    PingDue,
    /// To close, for the reason given: dead (no heartbeat answered) or
    /// idle (no message).
    Dead(String),
}

/// What a connection's first bytes must be, for the PROXY protocol
/// (`ServerConfig::proxy_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProxyStage {
    /// Nothing to look for: the feature is off, or the header was read.
    Done,
    /// From a trusted load balancer: a PROXY header must come first.
    Required,
    /// From any other address, with the feature on: a PROXY header is
    /// someone claiming to be a load balancer.
    Forbidden,
}

/// The read side of one connection.
pub(super) struct ReadSide {
    decoder: FrameDecoder,
    /// The decoder's buffer, kept in the server's memory budget.
    inbound: Account,
    /// The PROXY header still to read, or to refuse.
    proxy: ProxyStage,
    /// The handshake is complete (the ack was sent).
    pub connected: bool,
    /// When something last arrived, and the last heartbeat PING.
    pub clock: HeartbeatClock,
    /// When the last message (not a PING or PONG) arrived: the idle
    /// timeout counts from it.
    pub last_message: Instant,
    /// Whether the type of its last message had a handler.
    handled: HandledTypes,
    /// Replies read by the thread that waited for them.
    #[cfg(test)]
    pub replies_read_by_waiters: u64,
}

impl ReadSide {
    /// The read side of a connection just accepted, its decoder's buffer
    /// kept in `budget`, if any.
    pub fn new(decoder: FrameDecoder, budget: Option<Arc<MemoryBudget>>) -> Self {
        ReadSide {
            decoder,
            inbound: Account::new(budget),
            proxy: ProxyStage::Done,
            connected: false,
            clock: HeartbeatClock::new(Instant::now()),
            last_message: Instant::now(),
            handled: HandledTypes::default(),
            #[cfg(test)]
            replies_read_by_waiters: 0,
        }
    }

    /// Expects (or refuses) a PROXY header first, as `stage` says.
    pub fn with_proxy(mut self, stage: ProxyStage) -> Self {
        self.proxy = stage;
        self
    }

    /// An empty account in the budget the decoder's buffer is kept in,
    /// for the connection's other holders.
    pub fn new_account(&self) -> Account {
        self.inbound.in_same_budget()
    }

    /// Bytes of a partial inbound frame held in the memory budget, as
    /// other threads may read them while this side is in use.
    pub fn held_gauge(&mut self) -> Gauge {
        self.inbound.gauge()
    }

    /// When the connection must be looked at again for its heartbeat or
    /// idle timeout under `config`; `None` if neither is on.
    pub fn liveness_deadline(&self, config: &ServerConfig, now: Instant) -> Option<Instant> {
        let heartbeat = match self.clock.due(&config.liveness.heartbeat, now) {
            HeartbeatDue::Until(at) => Some(at),
            HeartbeatDue::Dead(_) | HeartbeatDue::Ping => Some(now),
            HeartbeatDue::Never => None,
        };
        let idle = config.idle_timeout.map(|idle| self.last_message + idle);
        [heartbeat, idle].into_iter().flatten().min()
    }

    /// At its liveness deadline: whether `peer`, connected, is alive under
    /// `config`, due a PING, or to be closed.
    pub fn check_liveness(&mut self, peer: &Peer, config: &ServerConfig, now: Instant) -> Liveness {
        if peer.backlog.is_paused() {
            // Not reading it, the loop cannot tell: the pause is life.
            self.clock.received(now);
        }
        let idle = config
            .idle_timeout
            .filter(|idle| now.saturating_duration_since(self.last_message) >= *idle)
            .map(|idle| format!("no message for {} ms (idle_timeout_ms)", idle.as_millis()));
        let due = self.clock.due(&config.liveness.heartbeat, now);
        let dead = match due {
            HeartbeatDue::Dead(silence) => Some(format!(
                "nothing for {} ms (heartbeat_timeout_ms)",
                silence.as_millis()
            )),
            _ => None,
        };
        if let Some(why) = idle.or(dead) {
            return Liveness::Dead(why);
        }
        match due {
            HeartbeatDue::Ping => {
                self.clock.pinged(now);
                Liveness::PingDue
            }
            HeartbeatDue::Dead(_) | HeartbeatDue::Until(_) | HeartbeatDue::Never => Liveness::Alive,
        }
    }

    /// Reads what the socket has, up to [`READS_PER_TURN`] reads, and
    /// handles every complete handshake message and frame. `spare` is the
    /// receive buffer lent for the turn.
    pub fn read_turn(
        &mut self,
        peer: &Arc<Peer>,
        server: &Server,
        spare: &mut Vec<u8>,
        now: TurnTime,
        until: ReadUntil,
    ) -> Turn {
        self.borrow_buffer(spare);
        let mut turn = Turn::Unfinished;
        // Callbacks on this thread leave nothing in the backlog.
        let may_queue = !server.inner.config.callbacks_on_io_thread;
        for _ in 0..READS_PER_TURN {
            if may_queue && peer.backlog.pause_if_full() {
                turn = Turn::Paused;
                break;
            }
            if server.budget().exceeded() {
                turn = Turn::OverBudget;
                break;
            }
            match self.read_once(peer, server, Some(now), ReadWait::No) {
                Ok(ReadAmount::Short) if matches!(until, ReadUntil::ShortRead) => {
                    turn = Turn::Drained
                }
                Ok(_) => continue,
                Err(end) => turn = end,
            }
            break;
        }
        self.give_back_buffer(spare);
        turn
    }

    /// One read of the socket, waiting as `wait` says, and every whole
    /// handshake message and frame it completes handled; an error is how
    /// the turn ends: [`Turn::Drained`] when the socket has nothing.
    /// `turn` is when the read happens, as the I/O thread reads the clock
    /// once per loop turn; without it the clock is read after the read.
    pub fn read_once(
        &mut self,
        peer: &Arc<Peer>,
        server: &Server,
        turn: Option<TurnTime>,
        wait: ReadWait,
    ) -> Result<ReadAmount, Turn> {
        let mut room = 0;
        // Accounted after decoding: what is decoded now never waits.
        let read = loop {
            let read = self.decoder.fill_with(|buf| {
                room = buf.len();
                let stream = &peer.stream;
                // Through mio's `try_io`: on Windows a read that would
                // block is what arms the socket's next event.
                stream.try_io(|| crate::sys::read_as(stream, buf, wait))
            });
            match read {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                read => break read,
            }
        };
        match read {
            Ok(0) => Err(Turn::ReadClosed),
            Ok(n) => {
                let now = turn.unwrap_or_else(TurnTime::now);
                if self.connected {
                    peer.stats.read(n);
                    self.clock.received(now.instant);
                }
                let handled = self.handle_input(peer, server, now);
                self.account_inbound();
                match handled {
                    Ok(()) if n < room => Ok(ReadAmount::Short),
                    Ok(()) => Ok(ReadAmount::Full),
                    Err(reason) => Err(Turn::Close(reason)),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(Turn::Drained),
            Err(e) => {
                log_at!(Debug, "read from peer {} failed: {e}", peer.id);
                Err(Turn::Close(DisconnectReason::Error))
            }
        }
    }

    /// Lends the decoder `spare` for a read if it holds no bytes.
    pub fn borrow_buffer(&mut self, spare: &mut Vec<u8>) {
        *spare = self.decoder.lend_buffer(std::mem::take(spare));
    }

    /// Takes the receive buffer back into `spare` if the decoder holds no
    /// bytes (an idle connection holds none), and keeps the budget's
    /// count of what it holds.
    pub fn give_back_buffer(&mut self, spare: &mut Vec<u8>) {
        let reclaimed = self.decoder.reclaim_buffer();
        if reclaimed.len() > spare.len() {
            *spare = reclaimed;
        }
        self.account_inbound();
    }

    /// Frees what the decoder holds (its connection closed).
    pub fn discard_inbound(&mut self) {
        self.decoder.discard();
        self.account_inbound();
    }

    /// Puts the decoder's buffer in the memory budget while it holds
    /// received bytes not yet decoded; an emptied buffer goes back to its
    /// lender at the end of the read turn, so it counts for nothing.
    fn account_inbound(&mut self) {
        let held = match self.decoder.buffered().is_empty() {
            true => 0,
            false => self.decoder.held_bytes(),
        };
        self.inbound.set(held);
    }

    /// Reads the PROXY header a connection from a trusted load balancer
    /// starts with (recording the client's address), or passes a
    /// connection from elsewhere that has none. False while too few bytes
    /// have come to tell; an error closes the connection (a missing,
    /// malformed or untrusted header), before its handshake, so no
    /// callback hears of it.
    fn read_proxy_header(&mut self, peer: &Peer) -> Result<bool, DisconnectReason> {
        let refused = |why: &str| {
            log_at!(Warn, "closed {}: {why}", peer.addr);
            Err(DisconnectReason::Error)
        };
        match (proxy::parse(self.decoder.buffered()), self.proxy) {
            (ProxyHeader::Incomplete, _) => Ok(false),
            (ProxyHeader::Absent, ProxyStage::Forbidden) => {
                self.proxy = ProxyStage::Done;
                Ok(true)
            }
            (ProxyHeader::Absent, _) => {
                refused("a trusted load balancer's connection has no PROXY header. Fix: make it send one (HAProxy: send-proxy or send-proxy-v2), or take its address out of config.proxy_protocol_from")
            }
            (ProxyHeader::Parsed { .. }, ProxyStage::Forbidden) => refused(
                "a PROXY header from an address config.proxy_protocol_from does not trust",
            ),
            (ProxyHeader::Parsed { source, len }, _) => {
                self.decoder.consume(len);
                if let Some(client) = source {
                    log_at!(Debug, "{} is a load balancer's connection for {client}", peer.addr);
                    peer.set_client_address(client);
                }
                self.proxy = ProxyStage::Done;
                Ok(true)
            }
            (ProxyHeader::Invalid(why), _) => refused(&why),
        }
    }

    /// Completes the handshake if it is pending, then dispatches every
    /// complete frame, read at `now`. An error is the reason to close the
    /// connection.
    fn handle_input(
        &mut self,
        peer: &Arc<Peer>,
        server: &Server,
        now: TurnTime,
    ) -> Result<(), DisconnectReason> {
        if self.proxy != ProxyStage::Done && !self.read_proxy_header(peer)? {
            return Ok(());
        }
        if !self.connected {
            let failure = match handshake::next_item(&mut self.decoder) {
                None => return Ok(()),
                Some(Ok(HandshakeItem::Message(hello))) => handshake::check_hello(&hello)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        peer.send([&handshake::ack(), &[]])
                            .map_err(|e| format!("cannot send the ack: {e:?}"))
                    })
                    .err(),
                Some(Ok(HandshakeItem::Frame(_))) => {
                    Some("a data frame came before the client's hello".into())
                }
                Some(Err(e)) => Some(e.to_string()),
            };
            if let Some(failure) = failure {
                log_at!(Info, "closed {}: handshake failed: {failure}", peer.addr);
                return Err(DisconnectReason::Error);
            }
            // Statistics and liveness count from here (the ack not
            // included); before on_connect, which may send at once.
            peer.stats.restart();
            peer.stats.read(self.decoder.buffered().len());
            self.clock = HeartbeatClock::new(now.instant);
            self.last_message = now.instant;
            self.connected = true;
            server.peer_connected(peer);
        }
        let mut inbox = server.inbox_for_read(self.decoder.buffered().len());
        let mut any_message = false;
        let mut frames = 0;
        while let Some(decoded) = self.decoder.next_borrowed() {
            frames += 1;
            match decoded {
                Borrowed::Frame(frame) => {
                    any_message |= !matches!(frame.type_code, PING | PONG);
                    server.route_message(peer, frame, &mut inbox, &mut self.handled)
                }
                Borrowed::Dropped(reason) => {
                    log_at!(Warn, "from peer {} ({}): {reason}", peer.id, peer.addr)
                }
            }
        }
        if frames > 0 {
            peer.stats.frames_arrived(frames, now.stats);
            if any_message {
                self.last_message = now.instant;
            }
        }
        server.deliver(peer, inbox);
        match peer.failure() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }
}
