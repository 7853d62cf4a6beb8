//! Requests awaiting a reply (`send_and_wait`, `ping`), keyed by request id.
//!
//! Each request completes exactly once: with its reply (matched on the
//! reader thread), with a timeout, or with an error as soon as the
//! connection closes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

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
    waiters: HashMap<u16, Sender<Result<Message>>>,
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

    /// Registers a request before it is sent, so its reply cannot be missed.
    pub fn register(&self) -> Result<PendingRequest> {
        let mut inner = self.lock();
        let id = inner.free_id()?;
        let (sender, outcome) = bounded(1);
        inner.waiters.insert(id, sender);
        Ok(PendingRequest { id, outcome })
    }

    /// Hands `message` to the request with its id; gives it back if none.
    pub fn complete(&self, message: Message) -> Option<Message> {
        let waiter = self.lock().waiters.remove(&message.request_id());
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(Ok(message));
                None
            }
            None => Some(message),
        }
    }

    /// Fails every pending request with `error`.
    pub fn fail_all(&self, error: &Error) {
        let waiters = std::mem::take(&mut self.lock().waiters);
        for waiter in waiters.into_values() {
            let _ = waiter.send(Err(error.clone()));
        }
    }

    /// Withdraws a request that was not sent.
    pub fn cancel(&self, request: &PendingRequest) {
        self.lock().waiters.remove(&request.id);
    }

    /// Waits for the outcome of `request`, at most `timeout`.
    pub fn wait(&self, request: PendingRequest, timeout: Duration) -> Result<Message> {
        match request.outcome.recv_timeout(timeout) {
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
    use crate::protocol::ids::CLIENT_IDS;

    #[test]
    fn reply_timeout_and_close_each_complete_once() {
        let pending = PendingRequests::new(IdAllocator::new(CLIENT_IDS));
        let a = pending.register().unwrap();
        let b = pending.register().unwrap();
        let c = pending.register().unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(pending.complete(Message::new(200, a.id, b"r")), None);
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
        assert!(pending.complete(Message::new(200, b_id, b"late")).is_some());
        pending.fail_all(&Error::Closed("gone".into()));
        assert_eq!(
            pending.wait(c, Duration::from_secs(5)),
            Err(Error::Closed("gone".into()))
        );
    }

    #[test]
    fn ids_in_use_are_not_reallocated() {
        let pending = PendingRequests::new(IdAllocator::new(1..4));
        let a = pending.register().unwrap();
        let b = pending.register().unwrap();
        let c = pending.register().unwrap();
        assert_eq!(pending.register().err(), Some(Error::IdsExhausted));
        assert_eq!(pending.allocate_id(), Err(Error::IdsExhausted));
        pending.cancel(&b);
        assert_eq!(pending.allocate_id(), Ok(b.id));
        drop((a, c));
    }
}
