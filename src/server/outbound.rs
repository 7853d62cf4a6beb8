//! A peer's queue of bytes its socket has not taken yet, in fixed-size
//! chunks: growing it never copies what is queued (a `Vec` that doubles
//! would copy, and hold old and new buffers at once), the memory it holds
//! is exactly its chunks, and a chunk written out is freed at once (but
//! for one smallest chunk per thread, kept for the next queue that starts:
//! a corked reply written at once then costs no allocation).

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;

use crate::sys::{self, AsSocket, MAX_SLICES};

/// Largest chunk; below the allocator's large-allocation threshold, so
/// chunks are recycled rather than mapped and unmapped.
const CHUNK: usize = 64 * 1024;
/// Smallest chunk. Chunks grow with the queue (each new one twice what is
/// queued, between the two sizes): a batch of small replies costs a small
/// allocation, not 64 KiB allocated and freed per write.
const FIRST_CHUNK: usize = 4 * 1024;

thread_local! {
    /// A smallest chunk written out on this thread, empty, for reuse.
    static SPARE_CHUNK: Cell<Option<Vec<u8>>> = const { Cell::new(None) };
}

/// An empty chunk of `size` bytes: this thread's spare one if it fits.
fn new_chunk(size: usize) -> Vec<u8> {
    match size {
        FIRST_CHUNK => SPARE_CHUNK
            .take()
            .unwrap_or_else(|| Vec::with_capacity(FIRST_CHUNK)),
        _ => Vec::with_capacity(size),
    }
}

/// Frees a written chunk, or keeps it as this thread's spare.
fn retire_chunk(mut chunk: Vec<u8>) {
    if chunk.capacity() == FIRST_CHUNK {
        chunk.clear();
        SPARE_CHUNK.set(Some(chunk));
    }
}

/// Queued outbound bytes.
#[derive(Default)]
pub(crate) struct ChunkQueue {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already written.
    head: usize,
    /// Bytes queued and not written.
    len: usize,
    /// Bytes the chunks hold (their capacity).
    held: usize,
}

impl ChunkQueue {
    /// Bytes queued and not yet written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes of memory the chunks hold.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Appends `bytes`.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len();
        while !bytes.is_empty() {
            let back = match self.chunks.back_mut() {
                Some(back) if back.len() < back.capacity() => back,
                _ => {
                    let size = (2 * self.len).clamp(FIRST_CHUNK, CHUNK);
                    self.held += size;
                    self.chunks.push_back(new_chunk(size));
                    self.chunks.back_mut().expect("just pushed")
                }
            };
            let n = bytes.len().min(back.capacity() - back.len());
            back.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
    }

    /// Writes queued bytes to `socket` until the queue is empty (`Ok`) or
    /// the socket is full (`WouldBlock`) or fails; written chunks are freed.
    /// On a mio socket, call it inside `try_io`.
    pub fn write_to(&mut self, socket: &impl AsSocket) -> io::Result<()> {
        while self.len > 0 {
            let sent = match self.chunks.len() {
                // The usual case (a batch's replies): no slice array to fill.
                1 => sys::send_nowait(socket, &[&self.chunks[0][self.head..]])?,
                _ => {
                    let mut slices: [&[u8]; MAX_SLICES] = [&[]; MAX_SLICES];
                    let mut count = 0;
                    for (i, chunk) in self.chunks.iter().take(MAX_SLICES).enumerate() {
                        slices[i] = if i == 0 { &chunk[self.head..] } else { chunk };
                        count += 1;
                    }
                    sys::send_nowait(socket, &slices[..count])?
                }
            };
            self.consume(sent);
        }
        Ok(())
    }

    /// Drops everything queued.
    pub fn clear(&mut self) {
        *self = ChunkQueue::default();
    }

    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let front = self.chunks.front().expect("consumed bytes are queued");
            let left = front.len() - self.head;
            if n < left {
                self.head += n;
                return;
            }
            n -= left;
            self.head = 0;
            let written = self.chunks.pop_front().expect("consumed bytes are queued");
            self.held -= written.capacity();
            retire_chunk(written);
        }
        if self.len == 0 {
            self.head = 0;
            self.chunks.clear();
            self.held = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_fill_whole_chunks_and_consuming_frees_them() {
        let mut queue = ChunkQueue::default();
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        queue.push(&data[..10]);
        assert_eq!(
            queue.held(),
            FIRST_CHUNK,
            "a small queue holds a small chunk"
        );
        queue.push(&data[10..]);
        assert_eq!(queue.len(), 200_000);
        let sizes: Vec<usize> = queue.chunks.iter().map(Vec::capacity).collect();
        assert_eq!(sizes[0], FIRST_CHUNK);
        assert!(sizes[1..].iter().all(|size| *size == CHUNK), "{sizes:?}");
        assert_eq!(queue.held(), sizes.iter().sum::<usize>());
        queue.consume(FIRST_CHUNK + 5);
        assert_eq!(queue.held(), sizes[1..].iter().sum::<usize>());
        let rest: Vec<u8> = queue
            .chunks
            .iter()
            .enumerate()
            .flat_map(|(i, c)| if i == 0 { &c[queue.head..] } else { &c[..] })
            .copied()
            .collect();
        assert_eq!(rest, data[FIRST_CHUNK + 5..]);
        queue.consume(200_000 - FIRST_CHUNK - 5);
        assert_eq!((queue.len(), queue.held()), (0, 0));
    }

    #[test]
    fn a_written_smallest_chunk_is_kept_for_the_next_queue_of_the_thread() {
        let spare = || {
            let chunk = SPARE_CHUNK.take();
            let capacity = chunk.as_ref().map(Vec::capacity);
            SPARE_CHUNK.set(chunk);
            capacity
        };
        drop(SPARE_CHUNK.take());
        let mut queue = ChunkQueue::default();
        queue.push(b"reply");
        assert_eq!(spare(), None);
        queue.consume(5);
        assert_eq!(spare(), Some(FIRST_CHUNK), "the written chunk is kept");
        let mut next = ChunkQueue::default();
        next.push(b"next");
        assert_eq!(spare(), None, "and taken by the next queue");
        assert_eq!(&next.chunks[0][..], b"next");
        assert_eq!(next.held(), FIRST_CHUNK);
    }
}
