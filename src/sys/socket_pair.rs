//! The dispatch notifier of systems without an eventfd: one byte through
//! a connected pair of sockets.

use std::io::{self, Read, Write};

use socket2::SockRef;

use super::{os, AsSocket, PollHandle};

/// A stream type that can make a connected pair of itself.
pub(crate) trait ConnectedPair: Sized {
    /// Two connected ends: (the one the host polls, the one raised).
    fn connected_pair() -> io::Result<(Self, Self)>;
}

/// A readable handle raised by one byte through a connected pair.
pub(crate) struct SocketPairNotifier<S> {
    reader: S,
    writer: S,
}

impl<S> SocketPairNotifier<S>
where
    S: ConnectedPair + AsSocket,
    for<'a> &'a S: Read + Write,
{
    pub(crate) fn new() -> io::Result<Self> {
        let (reader, writer) = S::connected_pair()?;
        SockRef::from(&reader).set_nonblocking(true)?;
        SockRef::from(&writer).set_nonblocking(true)?;
        Ok(SocketPairNotifier { reader, writer })
    }

    /// Makes the reader readable. A full pair is readable already.
    pub(crate) fn raise(&self) {
        let _ = (&self.writer).write(&[1]);
    }

    /// Makes the reader unreadable (reads until it would block).
    pub(crate) fn clear(&self) {
        let mut bytes = [0u8; 64];
        while matches!((&self.reader).read(&mut bytes), Ok(n) if n > 0) {}
    }

    /// The end the host polls.
    pub(crate) fn handle(&self) -> PollHandle {
        os::handle_of(&self.reader)
    }
}
