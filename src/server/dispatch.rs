//! What the I/O thread hands to the application: connections, messages and
//! disconnections, each queued in the peer's lane so one peer's callbacks
//! run in order (`on_connect`, its messages, `on_disconnect`) while other
//! peers' run in parallel.

use std::cell::Cell;
use std::sync::Arc;

use super::handlers::PeerMessageHandler;
use super::peer::{Peer, PeerId};
use super::Server;
use crate::callbacks::{with_thread_cache, HandledTypes, HandlerCache};
use crate::disconnect::DisconnectReason;
use crate::error::Error;
use crate::log::log_at;
use crate::protocol::frame::{FrameHeader, PING, PONG};
use crate::protocol::{FrameRef, MessageBatch};
use crate::workers::run_guarded;

thread_local! {
    /// The message handler this thread called last.
    static HANDLERS: Cell<HandlerCache<PeerMessageHandler>> = const { Cell::new(HandlerCache::new()) };

    /// The emptied block of the last batch run on this I/O thread, for
    /// its next one (see [`Server::deliver`]).
    static SPARE_BLOCK: Cell<Option<Vec<u8>>> = const { Cell::new(None) };
}

impl Server {
    /// A peer completed its handshake: it becomes visible to the API, and
    /// `on_connect` is queued.
    pub(super) fn peer_connected(&self, peer: &Arc<Peer>) {
        self.peer_table().insert(peer.clone());
        log_at!(Debug, "peer {} ({}) connected", peer.id, peer.addr);
        self.run_in_lane(peer, move |server, id| {
            if let Some(call) = server.callbacks().on_connect() {
                (call.handler())(server, id);
            }
        });
    }

    /// A connected peer's connection ended: it leaves the API, its pending
    /// requests fail, and `on_disconnect` is queued after its messages.
    pub(super) fn peer_disconnected(&self, peer: &Arc<Peer>, reason: DisconnectReason) {
        self.peer_table().remove(peer.id);
        if let Some(cluster) = self.cluster() {
            peer.tags.release(cluster.tags());
        }
        self.inner.pending.fail_owner(
            peer.id,
            &Error::Closed(format!(
                "peer {} disconnected before the reply arrived",
                peer.id
            )),
        );
        log_at!(
            Info,
            "peer {} ({}) disconnected ({reason:?})",
            peer.id,
            peer.addr
        );
        self.run_in_lane(peer, move |server, id| {
            if let Some(call) = server.callbacks().on_disconnect() {
                (call.handler())(server, id, reason);
            }
        });
    }

    /// Routes one message from `peer`, in the reference's order: PING is
    /// answered, a reply completes its pending request, then a message with
    /// a route or `on_recv` joins `inbox` (see [`Server::deliver`]), else it
    /// is dropped with a log line. `handled` is the connection's cache of
    /// whether its last type had a handler.
    pub(super) fn route_message(
        &self,
        peer: &Arc<Peer>,
        frame: FrameRef<'_>,
        inbox: &mut MessageBatch,
        handled: &mut HandledTypes,
    ) {
        if frame.type_code == PING {
            let pong = FrameHeader::for_payload(PONG, frame.request_id, &[]).encode();
            if let Err(e) = peer.send([&pong, &[]]) {
                log_at!(Debug, "could not answer a PING of peer {}: {e:?}", peer.id);
            }
            return;
        }
        if self.inner.pending.may_await(frame.request_id)
            && self
                .inner
                .pending
                .complete(peer.id, frame.to_message())
                .is_none()
        {
            return;
        }
        match self
            .callbacks()
            .handles(frame.type_code, handled)
        {
            true => inbox.push(frame.type_code, frame.request_id, frame.payload),
            false => log_at!(
                Warn,
                "message of type {} (request id {}) from peer {} dropped: no route and no on_recv callback",
                frame.type_code,
                frame.request_id,
                peer.id
            ),
        }
    }

    /// An empty batch for the messages of a read that left `received`
    /// bytes buffered. With callbacks on the I/O thread (which calls
    /// this), it reuses the block of the thread's last batch.
    pub(super) fn inbox_for_read(&self, received: usize) -> MessageBatch {
        let block = match self.inner.config.callbacks_on_io_thread {
            true => SPARE_BLOCK.take().unwrap_or_default(),
            false => Vec::new(),
        };
        MessageBatch::for_read(received, block)
    }

    /// Queues the messages of one read from `peer` for its callbacks, as
    /// one job in its lane: one hand-off per read, not per message. With
    /// callbacks on the I/O thread, runs them now instead.
    ///
    /// Each handler is looked up again when its turn comes: one removed or
    /// replaced meanwhile is never started. A server closing, or cutting
    /// this peer to stay within its memory budget, drops the callbacks not
    /// started yet. Their sends are corked: replies wait while more of this
    /// peer's messages are queued, and a broadcast costs one write per
    /// receiver per batch.
    ///
    /// A queued batch is charged to the peer's backlog until its last
    /// callback returns (or it is dropped): within one read, as with a
    /// charge per message, since the I/O thread asks for room before each
    /// read. A batch run on the I/O thread is not: no read happens while it
    /// runs, so it is never more than the one read's messages. Its block
    /// is kept for the thread's next batch (up to
    /// [`MessageBatch::MOST_RESERVED`] bytes).
    pub(super) fn deliver(&self, peer: &Arc<Peer>, mut inbox: MessageBatch) {
        if inbox.is_empty() {
            return;
        }
        if self.inner.config.callbacks_on_io_thread {
            // Nothing of this peer is ever queued: no batch follows, and
            // a lone message's sends have nothing to join.
            let cork_owner = inbox.len() > 1;
            let block = self.inner.workers.run_batch_here(&peer.lane, |batch| {
                self.run_batch(peer, inbox, batch, || false, cork_owner)
            });
            if block.capacity() <= MessageBatch::MOST_RESERVED {
                SPARE_BLOCK.set(Some(block));
            }
            return;
        }
        inbox.give_back_unused_room();
        let charge = peer.backlog.charge_many(inbox.len(), inbox.payload_bytes());
        let server = self.clone();
        let sender = peer.clone();
        let job: crate::workers::BatchJob = Box::new(move |batch| {
            // A lone message with nothing queued behind it: its sends have
            // nothing to join (a batch queued meanwhile is written by its
            // own end).
            let cork_owner = inbox.len() > 1 || sender.lane.has_queued();
            let more_follow = || sender.lane.has_queued();
            server.run_batch(&sender, inbox, batch, more_follow, cork_owner);
            drop(charge);
        });
        self.inner.workers.submit_batch_in(&peer.lane, job);
    }

    /// Runs the callbacks of `inbox`, a read of `peer`, with its sends
    /// corked (see [`Peer::run_corked`]; `more_follow` says whether another
    /// batch of the peer is queued, `cork_owner` whether the sends to
    /// `peer` are corked too); a failed write closes the peer. Returns the
    /// batch's block, emptied.
    fn run_batch(
        &self,
        peer: &Arc<Peer>,
        inbox: MessageBatch,
        batch: &crate::workers::Batch<'_>,
        more_follow: impl Fn() -> bool,
        cork_owner: bool,
    ) -> Vec<u8> {
        let mut block = Vec::new();
        let written = peer.run_corked(self.key(), more_follow, cork_owner, || {
            with_thread_cache(&HANDLERS, |handlers| {
                block = inbox.lend_each(|message| {
                    if !batch.may_continue() {
                        return false;
                    }
                    let ran = self.callbacks().call_message_handler(
                        message.type_code(),
                        handlers,
                        |handler| run_guarded(|| handler(self, peer.id, message)),
                    );
                    if ran {
                        batch.ran_callback();
                    }
                    true
                })
            });
        });
        if let Err(e) = written {
            log_at!(Debug, "write to peer {} failed: {e}", peer.id);
            peer.ask_to_close(DisconnectReason::Error);
        }
        block
    }

    /// Runs `job` once the peer's callbacks queued so far have run (it is
    /// never dropped by [`crate::workers::Lane::drop_queued`]).
    pub(super) fn after_callbacks(&self, peer: &Peer, job: crate::workers::Job) {
        self.in_lane(peer, job);
    }

    /// Runs `callback` after the peer's earlier callbacks (see
    /// [`Server::in_lane`]).
    fn run_in_lane(&self, peer: &Peer, callback: impl FnOnce(&Server, PeerId) + Send + 'static) {
        let server = self.clone();
        let id = peer.id;
        self.in_lane(peer, Box::new(move || callback(&server, id)));
    }

    /// Queues `job` in the peer's lane; with callbacks on the I/O thread
    /// (which calls this), runs it now: the peer's earlier callbacks have.
    fn in_lane(&self, peer: &Peer, job: crate::workers::Job) {
        match self.inner.config.callbacks_on_io_thread {
            true => run_guarded(job),
            false => self.inner.workers.submit_in(&peer.lane, job),
        }
    }
}
