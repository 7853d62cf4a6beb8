//! A thread waiting in `send_and_wait` (or `ping`) for a peer's reply
//! reads that peer's socket itself while the I/O thread is not reading
//! it: the leader/follower pattern the client's waiters follow too
//! (`client/reader.rs`).
//!
//! Without it, a reply costs three thread wake-ups: the peer's, the I/O
//! thread's, then the waiter's, whom the I/O thread hands the reply. On a
//! machine whose cores are busy that third one made the server's round
//! trip 1.7 times a raw one; with it, 1.23 times (`cargo bench --bench
//! client -- "latency under load"`).
//!
//! The waiter takes the peer's read side (a `try_lock`: never while the
//! I/O thread reads it) and does the I/O thread's whole job for every
//! frame that comes before its reply, in order: PINGs answered, replies
//! to other requests completed, messages handed to the peer's callbacks.
//! What only the I/O thread decides stays with it: when the peer's
//! callbacks lag, the memory budget is exceeded, or the connection ends
//! or fails, the waiter stops and asks the I/O thread to read the peer.
//! It leads for [`LEAD_LIMIT`] at most, then sleeps as before: a reply
//! that slow gains nothing from one wake-up less, and the I/O thread,
//! which keeps the heartbeat and idle timers, meanwhile finds the read
//! side taken and looks again later.
//!
//! On Linux the waiter also pauses the I/O thread's epoll watch of the
//! socket before its request leaves, so the reply wakes it alone, and it
//! waits in one blocking `recv` (the socket blocks; the I/O thread's calls
//! pass `MSG_DONTWAIT`). Elsewhere the I/O thread may wake for the reply
//! too: told the socket is readable while a waiter holds the read side,
//! it leaves a note ([`Peer::read_side_to_read`]), and the waiter, once it
//! lets go, reads what came ([`Peer::read_side_after_missed_read`]):
//! readiness is edge-triggered, so the event would not come again.

use std::cell::Cell;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use super::peer::Peer;
use super::read_side::{ReadAmount, ReadSide, Turn};
use super::Server;
use crate::sys::ReadWait;

/// Longest a waiter reads its peer's socket itself.
pub(super) const LEAD_LIMIT: Duration = Duration::from_millis(100);

/// Longest one read of a waiter blocks: the socket's read timeout.
pub(super) const READ_SLICE: Duration = Duration::from_millis(20);

thread_local! {
    /// The receive buffer this thread lends the connection it reads.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// How a lead ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LeadEnd {
    /// Its reply came, its time ran out, or the socket was drained.
    Done,
    /// What is next is the I/O thread's to decide: the peer's callbacks
    /// lag, the memory budget is exceeded, or the connection ended.
    HandOver,
}

/// The read side of a peer, taken by a thread about to send it a request
/// and wait for the reply, with the I/O thread's watch of its socket
/// paused (on Linux): taken before the request leaves, so that the reply
/// cannot wake the I/O thread. Dropped, it resumes the watch (which
/// reports what came meanwhile), lets go of the read side, and reads what
/// the I/O thread was told of while it held it, or hands the peer back.
pub(super) struct Lead<'a> {
    server: &'a Server,
    peer: &'a Arc<Peer>,
    /// Held until the lead is dropped.
    side: Option<MutexGuard<'a, ReadSide>>,
    end: LeadEnd,
}

impl<'a> Lead<'a> {
    /// The read side of `peer`, unless another thread reads it (the I/O
    /// thread in a turn, or another waiter), its handshake is not done,
    /// or its callbacks run on the I/O thread (where its messages are
    /// read).
    pub fn take(server: &'a Server, peer: &'a Arc<Peer>) -> Option<Self> {
        if server.inner.config.callbacks_on_io_thread {
            return None;
        }
        let side = peer.try_read_side()?;
        if !side.connected {
            return None;
        }
        peer.pause_watch();
        Some(Lead {
            server,
            peer,
            side: Some(side),
            end: LeadEnd::Done,
        })
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        // Before the read side is let go: what it reports meanwhile is
        // left in a note, read below.
        self.peer.resume_watch();
        drop(self.side.take());
        let (server, peer) = (self.server, self.peer);
        let mut end = self.end;
        while end == LeadEnd::Done {
            // Bytes the I/O thread was told of while this held the side.
            let Some(mut side) = peer.read_side_after_missed_read() else {
                return;
            };
            end = server.lead(peer, &mut side, None, &|| false);
        }
        // What this waiter met is for the I/O thread to act on: a pause,
        // the budget, the connection's end.
        peer.ask_to_read();
    }
}

impl Server {
    /// Reads the peer of `lead` on this thread, which sent it a request,
    /// until `replied` says its reply came, or `deadline`, or
    /// [`LEAD_LIMIT`].
    pub(super) fn read_while_waiting(
        &self,
        mut lead: Lead<'_>,
        deadline: Instant,
        replied: &dyn Fn() -> bool,
    ) {
        let until = deadline.min(Instant::now() + LEAD_LIMIT);
        if let Some(side) = lead.side.as_mut() {
            lead.end = self.lead(lead.peer, side, Some(until), replied);
        }
    }

    /// Reads `peer`, whose read side this thread holds, until `replied`,
    /// waiting for bytes until `wait_until`; without it, until the socket
    /// is drained.
    fn lead(
        &self,
        peer: &Arc<Peer>,
        side: &mut ReadSide,
        wait_until: Option<Instant>,
        replied: &dyn Fn() -> bool,
    ) -> LeadEnd {
        let mut spare = SPARE.take();
        side.borrow_buffer(&mut spare);
        // A request was just sent: its reply is not there yet.
        let mut wait = wait_until.is_some();
        let end = loop {
            if replied() {
                #[cfg(test)]
                {
                    side.replies_read_by_waiters += 1;
                }
                break LeadEnd::Done;
            }
            if peer.backlog.holds_reading_back() || self.budget().exceeded() {
                break LeadEnd::HandOver;
            }
            let mut how = ReadWait::No;
            if let (true, Some(until)) = (wait, wait_until) {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break LeadEnd::Done;
                }
                // A read that blocks ends within the socket's read timeout,
                // the read slice; a shorter wait polls.
                if left >= READ_SLICE {
                    how = ReadWait::Blocking;
                } else {
                    match crate::sys::wait_for_bytes(&peer.stream, left) {
                        Ok(true) => {}
                        // A slice of the wait ended (on Windows): the clock
                        // says whether it is over.
                        Ok(false) => continue,
                        Err(_) => break LeadEnd::HandOver,
                    }
                }
            }
            match side.read_once(peer, self, None, how) {
                Ok(ReadAmount::Full) => wait = false,
                Ok(ReadAmount::Short) if wait_until.is_some() => wait = true,
                // A short read took all there was, where later bytes bring
                // the I/O thread an event of their own.
                Ok(ReadAmount::Short) if crate::sys::SHORT_READ_REARMS => break LeadEnd::Done,
                Ok(ReadAmount::Short) => wait = false,
                Err(Turn::Drained) if wait_until.is_some() => wait = true,
                Err(Turn::Drained) => break LeadEnd::Done,
                Err(_) => break LeadEnd::HandOver,
            }
        };
        side.give_back_buffer(&mut spare);
        SPARE.set(spare);
        end
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    use crate::disconnect::DisconnectReason;
    use crate::liveness::{Heartbeat, Liveness};
    use crate::protocol::frame::{encode_frame, PING, PONG};
    use crate::server::test_peer::{raw_peer, server_with};
    use crate::server::{PeerId, Server, ServerConfig};
    use crate::test_wire::{
        answer_among_pushes, assert_pushes_of_rounds, next_frame, PUSH, REQUEST,
    };

    fn replies_read_by_waiters(server: &Server, peer: PeerId) -> u64 {
        let peer = server.peer(peer).unwrap();
        let side = peer.read.lock().unwrap();
        side.replies_read_by_waiters
    }

    #[test]
    fn a_waiter_reads_its_own_reply_and_hands_on_every_other_frame_in_order() {
        const ROUNDS: u16 = 10;
        let (server, port, pushed, _) = server_with(ServerConfig::default());
        let (stream, decoder, peer) = raw_peer(&server, port);
        let client = std::thread::spawn(move || answer_among_pushes(stream, decoder, ROUNDS));
        for _ in 0..ROUNDS {
            // The I/O thread is idle between rounds.
            std::thread::sleep(Duration::from_millis(20));
            let reply = server
                .send_and_wait(peer, REQUEST, b"request", Duration::from_secs(10))
                .unwrap();
            assert_eq!(reply.payload(), b"reply");
        }
        assert_pushes_of_rounds(&pushed, ROUNDS);
        assert_eq!(
            replies_read_by_waiters(&server, peer),
            u64::from(ROUNDS),
            "the I/O thread, not the waiter, read replies"
        );
        server.close();
        client.join().unwrap();
    }

    #[test]
    fn bytes_that_come_as_a_waiter_lets_go_are_never_left_unread() {
        // Each reply is followed by a push in a write of its own, which
        // may come while the waiter still holds the read side: the I/O
        // thread's readiness event for it is then spent, and the push
        // would wait for the next bytes, which only come after it.
        const ROUNDS: usize = 10_000;
        let (server, port, pushed, _) = server_with(ServerConfig::default());
        let (stream, mut decoder, peer) = raw_peer(&server, port);
        let client = std::thread::spawn(move || {
            let mut out = &stream;
            while let Some(request) = next_frame(&stream, &mut decoder) {
                out.write_all(&encode_frame(REQUEST, request.request_id(), b"reply"))
                    .unwrap();
                out.write_all(&encode_frame(PUSH, 0, b"push")).unwrap();
            }
        });
        for round in 0..ROUNDS {
            server
                .send_and_wait(peer, REQUEST, b"request", Duration::from_secs(10))
                .unwrap();
            assert!(
                pushed.recv_timeout(Duration::from_secs(2)).is_ok(),
                "round {round}: the push after the reply was left unread"
            );
        }
        assert!(replies_read_by_waiters(&server, peer) > 0);
        server.close();
        client.join().unwrap();
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_reply_a_waiter_reads_does_not_wake_the_io_thread() {
        const ROUNDS: u64 = 500;
        let (server, port, _, _) = server_with(ServerConfig::default());
        let (stream, mut decoder, id) = raw_peer(&server, port);
        let echo = std::thread::spawn(move || {
            let mut out = &stream;
            while let Some(request) = next_frame(&stream, &mut decoder) {
                out.write_all(&encode_frame(REQUEST, request.request_id(), b"reply"))
                    .unwrap();
            }
        });
        for _ in 0..ROUNDS {
            server
                .send_and_wait(id, REQUEST, b"request", Duration::from_secs(10))
                .unwrap();
        }
        let peer = server.peer(id).unwrap();
        let woken = peer.reads_found_taken.load(Ordering::Relaxed);
        assert!(
            woken < ROUNDS / 10,
            "the I/O thread was told of {woken} replies of {ROUNDS} its waiters read"
        );
        assert!(replies_read_by_waiters(&server, id) > ROUNDS / 2);
        drop(peer);
        server.close();
        echo.join().unwrap();
    }

    #[test]
    fn a_waiter_stops_reading_when_the_callbacks_lag_behind() {
        const PUSHES: u16 = 200;
        let server = Server::new(ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            max_workers: 1,
            max_queued_messages: 4,
            buffer_size: 64,
            io_threads: crate::server::test_peer::io_threads_or(1),
            ..ServerConfig::default()
        })
        .unwrap();
        // The first callback holds the worker until released.
        let release = Arc::new(Barrier::new(2));
        let held = release.clone();
        let first = AtomicBool::new(true);
        server.on_recv(Some(Arc::new(move |_, _, _| {
            if first.swap(false, Ordering::SeqCst) {
                held.wait();
            }
        })));
        let port = server.start().unwrap();
        let (stream, mut decoder, peer) = raw_peer(&server, port);
        let client = std::thread::spawn(move || {
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
        let waiter = {
            let server = server.clone();
            std::thread::spawn(move || {
                server.send_and_wait(peer, REQUEST, b"r", Duration::from_secs(20))
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        let frames_in = server.peer_stats(peer).unwrap().frames_in;
        assert!(
            frames_in < u64::from(PUSHES) / 2,
            "{frames_in} frames read while the callbacks were stuck"
        );
        release.wait();
        let reply = waiter.join().unwrap().unwrap();
        assert_eq!(reply.payload(), b"reply");
        server.close();
        client.join().unwrap();
    }

    #[test]
    fn a_peer_that_leaves_during_a_wait_fails_it_at_once() {
        let (server, port, _, ended) = server_with(ServerConfig::default());
        let (stream, mut decoder, peer) = raw_peer(&server, port);
        let client = std::thread::spawn(move || {
            next_frame(&stream, &mut decoder).unwrap();
            drop(stream);
        });
        let started = Instant::now();
        let outcome = server.send_and_wait(peer, REQUEST, b"r", Duration::from_secs(20));
        assert!(outcome.is_err(), "{outcome:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the wait outlived its peer"
        );
        let reason = ended.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(reason, DisconnectReason::PeerClosed);
        assert!(server.peer_ids().is_empty());
        server.close();
        client.join().unwrap();
    }

    #[test]
    fn heartbeats_go_on_while_a_waiter_reads() {
        let interval = Duration::from_millis(20);
        let (server, port, _, ended) = server_with(ServerConfig {
            liveness: Liveness {
                heartbeat: Heartbeat {
                    interval: Some(interval),
                    timeout: Some(Duration::from_secs(5)),
                },
                tcp_keepalive: None,
            },
            ..ServerConfig::default()
        });
        let (stream, mut decoder, peer) = raw_peer(&server, port);
        // Answers the server's PINGs; never replies to its request.
        let client = std::thread::spawn(move || {
            let mut out = &stream;
            let mut pings = 0;
            while let Some(frame) = next_frame(&stream, &mut decoder) {
                if frame.type_code() == PING {
                    pings += 1;
                    out.write_all(&encode_frame(PONG, frame.request_id(), &[]))
                        .unwrap();
                }
            }
            pings
        });
        let wait = Duration::from_secs(1);
        let outcome = server.send_and_wait(peer, REQUEST, b"r", wait);
        assert!(outcome.is_err(), "{outcome:?}");
        assert!(
            ended.try_recv().is_err(),
            "the peer was cut while it answered"
        );
        server.close();
        let pings = client.join().unwrap();
        // One per interval of silence; a PONG counts as life, so about
        // one per interval (at least a third of them, on a loaded machine).
        let most = (wait.as_millis() / interval.as_millis()) as u32;
        assert!(pings >= most / 3, "{pings} heartbeats in {wait:?}");
    }
}
