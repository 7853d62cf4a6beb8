//! Per-connection statistics, shared by the client and the server: bytes
//! and frames in and out since the handshake, the last measured round
//! trip, and when the last frame arrived. Updated with relaxed atomics by
//! the threads that read and write; read by anyone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A moment as statistics keep it: microseconds since the first one the
/// process took. One subtraction makes it from an `Instant`, so a loop
/// handling many reads at one moment makes it once.
#[derive(Debug, Clone, Copy)]
pub struct StatsTime(u64);

impl StatsTime {
    /// The moment `at`.
    pub fn of(at: Instant) -> Self {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let epoch = *EPOCH.get_or_init(Instant::now);
        StatsTime(at.saturating_duration_since(epoch).as_micros() as u64)
    }

    /// Now.
    pub fn now() -> Self {
        Self::of(Instant::now())
    }
}

/// The counters of one connection.
#[derive(Debug)]
pub struct ConnectionStats {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    /// The last round trip in microseconds; `u64::MAX`: none yet.
    last_rtt_micros: AtomicU64,
    /// When the last frame arrived (a [`StatsTime`]).
    last_frame_micros: AtomicU64,
}

/// A copy of a connection's statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsSnapshot {
    /// Bytes received since the handshake (frames, whole or partial).
    pub bytes_in: u64,
    /// Bytes written to the socket since the handshake.
    pub bytes_out: u64,
    /// Frames received since the handshake, PINGs and PONGs included.
    pub frames_in: u64,
    /// Frames sent since the handshake, PINGs and PONGs included.
    pub frames_out: u64,
    /// The last round trip measured (a heartbeat or a ping), if any.
    pub last_rtt: Option<Duration>,
    /// Time since the last frame arrived (since the handshake, if none).
    pub since_last_frame: Duration,
}

impl ConnectionStats {
    /// Counters starting at zero, now (the handshake's end).
    pub fn new() -> Self {
        ConnectionStats {
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            last_rtt_micros: AtomicU64::new(u64::MAX),
            last_frame_micros: AtomicU64::new(StatsTime::now().0),
        }
    }

    /// Starts counting again from zero, now (a server peer's handshake
    /// just ended: its ack is not counted).
    pub fn restart(&self) {
        for counter in [
            &self.bytes_in,
            &self.bytes_out,
            &self.frames_in,
            &self.frames_out,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.last_rtt_micros.store(u64::MAX, Ordering::Relaxed);
        self.last_frame_micros
            .store(StatsTime::now().0, Ordering::Relaxed);
    }

    /// `n` bytes were read from the socket.
    pub fn read(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `count` whole frames (decoded, or dropped as bad) arrived, the last
    /// at `at`: one call per read that completed any, not per frame.
    pub fn frames_arrived(&self, count: u64, at: StatsTime) {
        self.frames_in.fetch_add(count, Ordering::Relaxed);
        self.last_frame_micros.store(at.0, Ordering::Relaxed);
    }

    /// A frame of `len` bytes was handed to the socket (written, or queued
    /// to be), possibly by several threads at once.
    pub fn frame_sent(&self, len: usize) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// As [`ConnectionStats::frame_sent`] for `count` frames of `len` bytes
    /// in all, for a caller holding the lock that every send of this
    /// connection takes: with no update to race, plain stores do, without
    /// the locked instructions that cost a server broadcasting to many
    /// peers a pipeline drain each.
    pub fn frames_sent_serialized(&self, count: u64, len: usize) {
        let frames = self.frames_out.load(Ordering::Relaxed) + count;
        self.frames_out.store(frames, Ordering::Relaxed);
        let bytes = self.bytes_out.load(Ordering::Relaxed) + len as u64;
        self.bytes_out.store(bytes, Ordering::Relaxed);
    }

    /// A round trip was measured.
    pub fn round_trip(&self, rtt: Duration) {
        self.last_rtt_micros
            .store(rtt.as_micros() as u64, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let rtt = self.last_rtt_micros.load(Ordering::Relaxed);
        let last_frame = self.last_frame_micros.load(Ordering::Relaxed);
        StatsSnapshot {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_out: self.frames_out.load(Ordering::Relaxed),
            last_rtt: (rtt != u64::MAX).then(|| Duration::from_micros(rtt)),
            since_last_frame: Duration::from_micros(StatsTime::now().0.saturating_sub(last_frame)),
        }
    }
}

impl Default for ConnectionStats {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_since_the_last_frame_counts_from_its_arrival_or_the_restart() {
        let stats = ConnectionStats::new();
        let arrived = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        stats.frames_arrived(2, StatsTime::of(arrived));
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.frames_in, 2);
        let since = snapshot.since_last_frame;
        assert!(since >= Duration::from_millis(30), "{since:?}");
        assert!(since < Duration::from_secs(5), "{since:?}");
        stats.restart();
        let since = stats.snapshot().since_last_frame;
        assert!(since < Duration::from_millis(30), "{since:?}");
        assert_eq!(stats.snapshot().frames_in, 0);
    }
}
