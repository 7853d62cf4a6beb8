//! Requests awaiting a reply (`send_and_wait`, `ping`), keyed by request id.
//!
//! Each request completes exactly once: with its reply (matched on the
//! thread that reads the connection), with a timeout, or with an error as
//! soon as the connection closes. Each request has an owner, the connection
//! it was sent on: a client has one (owner 0), a server one per peer, and
//! only a message from the owner completes a request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use crate::error::{Error, Result};
use crate::protocol::ids::IdAllocator;
use crate::protocol::Message;

/// The pending-request table and the id allocator that avoids its ids.
pub(crate) struct PendingRequests {
    inner: Mutex<Inner>,
}

struct Inner {
    ids: IdAllocator,
    waiters: HashMap<u16, Waiter>,
}

struct Waiter {
    owner: u64,
    outcome: Sender<Result<Message>>,
}

impl Inner {
    /// The next id no pending request uses.
    fn free_id(&mut self) -> Result<u16> {
        let waiters = &self.waiters;
        self.ids
            .allocate(|id| waiters.contains_key(&id))
            .ok_or(Error::IdsExhausted)
    }
}

/// A registered request: its id and where its outcome arrives.
pub(crate) struct PendingRequest {
    pub id: u16,
    outcome: Receiver<Result<Message>>,
}

impl PendingRequests {
    /// A table allocating ids from `ids`.
    pub fn new(ids: IdAllocator) -> Self {
        PendingRequests {
            inner: Mutex::new(Inner {
                ids,
                waiters: HashMap::new(),
            }),
        }
    }

    /// An id for a message that expects no reply (never one in use).
    pub fn allocate_id(&self) -> Result<u16> {
        self.lock().free_id()
    }

    /// Registers a request to `owner` before it is sent, so its reply
    /// cannot be missed.
    pub fn register(&self, owner: u64) -> Result<PendingRequest> {
        let mut inner = self.lock();
        let id = inner.free_id()?;
        let (sender, outcome) = bounded(1);
        inner.waiters.insert(
            id,
            Waiter {
                owner,
                outcome: sender,
            },
        );
        Ok(PendingRequest { id, outcome })
    }

    /// Hands `message`, received from `owner`, to the request with its id;
    /// gives it back if there is none.
    pub fn complete(&self, owner: u64, message: Message) -> Option<Message> {
        let mut inner = self.lock();
        match inner.waiters.get(&message.request_id()) {
            Some(waiter) if waiter.owner == owner => {}
            _ => return Some(message),
        }
        let waiter = inner.waiters.remove(&message.request_id())?;
        drop(inner);
        let _ = waiter.outcome.send(Ok(message));
        None
    }

    /// Fails every pending request with `error`.
    pub fn fail_all(&self, error: &Error) {
        let waiters = std::mem::take(&mut self.lock().waiters);
        for waiter in waiters.into_values() {
            let _ = waiter.outcome.send(Err(error.clone()));
        }
    }

    /// Fails the pending requests sent to `owner` with `error`.
    pub fn fail_owner(&self, owner: u64, error: &Error) {
        let failed: Vec<Waiter> = {
            let mut inner = self.lock();
            let ids: Vec<u16> = inner
                .waiters
                .iter()
                .filter(|(_, waiter)| waiter.owner == owner)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| inner.waiters.remove(id))
                .collect()
        };
        for waiter in failed {
            let _ = waiter.outcome.send(Err(error.clone()));
        }
    }

    /// One request/reply exchange with `owner`: registers an id, calls
    /// `send` with it and the exchange's deadline (`timeout` from now, which
    /// bounds the write too), and waits for the reply until that deadline
    /// (the request is withdrawn if `send` fails).
    pub fn round_trip(
        &self,
        owner: u64,
        timeout: Duration,
        send: impl FnOnce(u16, Instant) -> Result<()>,
    ) -> Result<Message> {
        let deadline = Instant::now() + timeout;
        let request = self.register(owner)?;
        if let Err(error) = send(request.id, deadline) {
            self.cancel(&request);
            return Err(error);
        }
        self.wait_until(request, deadline, timeout)
    }

    /// Withdraws a request that was not sent.
    pub fn cancel(&self, request: &PendingRequest) {
        self.lock().waiters.remove(&request.id);
    }

    /// Waits for the outcome of `request`, at most `timeout`.
    #[cfg(test)]
    pub fn wait(&self, request: PendingRequest, timeout: Duration) -> Result<Message> {
        self.wait_until(request, Instant::now() + timeout, timeout)
    }

    /// Waits for the outcome of `request` until `deadline`, the end of the
    /// caller's `timeout`.
    fn wait_until(
        &self,
        request: PendingRequest,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Message> {
        match request.outcome.recv_deadline(deadline) {
            Ok(outcome) => outcome,
            Err(RecvTimeoutError::Timeout) => {
                if self.lock().waiters.remove(&request.id).is_some() {
                    return Err(Error::Timeout(format!(
                        "no reply to request {} within {} ms. Fix: raise the timeout, or check that the peer answers this message type",
                        request.id,
                        timeout.as_millis()
                    )));
                }
                // Completed while timing out: the outcome is in the channel.
                request.outcome.recv().unwrap_or_else(|_| Err(closed()))
            }
            Err(RecvTimeoutError::Disconnected) => Err(closed()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn closed() -> Error {
    Error::Closed("the request was abandoned".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ids::{CLIENT_IDS, SERVER_IDS};

    #[test]
    fn reply_timeout_and_close_each_complete_once() {
        let pending = PendingRequests::new(IdAllocator::new(CLIENT_IDS));
        let a = pending.register(0).unwrap();
        let b = pending.register(0).unwrap();
        let c = pending.register(0).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(pending.complete(0, Message::new(200, a.id, b"r")), None);
        assert_eq!(
            pending
                .wait(a, Duration::from_millis(10))
                .unwrap()
                .payload(),
            b"r"
        );
        let b_id = b.id;
        assert!(matches!(
            pending.wait(b, Duration::from_millis(10)),
            Err(Error::Timeout(_))
        ));
        // A late reply is not swallowed: it goes back to the caller.
        assert!(pending
            .complete(0, Message::new(200, b_id, b"late"))
            .is_some());
        pending.fail_all(&Error::Closed("gone".into()));
        assert_eq!(
            pending.wait(c, Duration::from_secs(5)),
            Err(Error::Closed("gone".into()))
        );
    }

    #[test]
    fn ids_in_use_are_not_reallocated() {
        let pending = PendingRequests::new(IdAllocator::new(1..4));
        let a = pending.register(0).unwrap();
        let b = pending.register(0).unwrap();
        let c = pending.register(0).unwrap();
        assert_eq!(pending.register(0).err(), Some(Error::IdsExhausted));
        assert_eq!(pending.allocate_id(), Err(Error::IdsExhausted));
        pending.cancel(&b);
        assert_eq!(pending.allocate_id(), Ok(b.id));
        drop((a, c));
    }

    #[test]
    fn only_the_owner_completes_and_closing_an_owner_fails_only_its_requests() {
        let pending = PendingRequests::new(IdAllocator::new(SERVER_IDS));
        let to_one = pending.register(1).unwrap();
        let to_two = pending.register(2).unwrap();
        let forged = Message::new(200, to_one.id, b"forged");
        assert_eq!(pending.complete(2, forged.clone()), Some(forged));
        pending.fail_owner(2, &Error::Closed("peer 2 left".into()));
        assert_eq!(
            pending.wait(to_two, Duration::from_secs(5)),
            Err(Error::Closed("peer 2 left".into()))
        );
        assert_eq!(
            pending.complete(1, Message::new(201, to_one.id, b"ok")),
            None
        );
        assert_eq!(
            pending
                .wait(to_one, Duration::from_secs(5))
                .unwrap()
                .payload(),
            b"ok"
        );
    }
}
