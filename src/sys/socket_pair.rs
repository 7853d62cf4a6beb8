//! The dispatch notifier of systems without an eventfd: one byte through
//! a connected pair of sockets.

use std::io::{Read, Write};

/// A readable handle raised by one byte through a connected pair of
/// sockets: the [`Notifier`] of systems without an eventfd.
pub(crate) struct SocketPairNotifier<S> {
    reader: S,
    writer: S,
}

impl<S> SocketPairNotifier<S>
where
    for<'a> &'a S: Read + Write,
{
    /// Over a connected pair, both already non-blocking.
    pub(crate) fn new(reader: S, writer: S) -> Self {
        SocketPairNotifier { reader, writer }
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
    pub(crate) fn reader(&self) -> &S {
        &self.reader
    }
}
