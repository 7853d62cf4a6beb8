//! Tools for the hostile-peer tests: raw attacking sockets, the process's
//! memory and a thread's CPU time, a watchdog, and a lock that runs the
//! measuring tests of one binary one at a time.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use veltix::protocol::frame::{encode_frame, FrameHeader};
use veltix::protocol::handshake;

use super::fake_server::read_handshake;

/// Runs the tests of a binary one at a time, so each sees only its own
/// memory and CPU use.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resident memory of this process in bytes.
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Extra resident memory an instrumented allocator adds to the bounds the
/// tests assert (shadow memory, quarantine): `VELTIX_TEST_RSS_SLACK_MIB`,
/// set by scripts/sanitize.sh; 0 otherwise.
pub fn allocator_slack() -> u64 {
    std::env::var("VELTIX_TEST_RSS_SLACK_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        << 20
}

/// CPU time (user + system) used so far by this process's threads whose
/// name starts with `prefix`.
pub fn thread_cpu(prefix: &str) -> Duration {
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: utime and stime are the
        // 14th and 15th fields of the whole line.
        let after_name = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        if fields.len() > 12 {
            ticks +=
                fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        }
    }
    Duration::from_millis(ticks * 1000 / ticks_per_second)
}

/// Aborts the process if it runs past `limit` or its memory grows past
/// `max_rss`: a test that lets an attack through must fail, not take the
/// machine down. Stops watching when dropped.
pub struct Watchdog {
    done: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn new(what: &'static str, limit: Duration, max_rss: u64) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let watching = done.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            while !watching.load(Ordering::Relaxed) {
                let rss = rss();
                if rss > max_rss || started.elapsed() > limit {
                    eprintln!(
                        "WATCHDOG: {what}: RSS {} MiB (max {} MiB) after {:?} (max {limit:?}); aborting",
                        rss >> 20,
                        max_rss >> 20,
                        started.elapsed()
                    );
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Watchdog { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// A raw connection to a Veltix server: it says exactly what a test wants.
pub struct RawPeer {
    pub stream: TcpStream,
}

impl RawPeer {
    /// Connects without saying anything.
    pub fn connect(port: u16) -> RawPeer {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        RawPeer { stream }
    }

    /// Connects and completes the handshake.
    pub fn handshaken(port: u16) -> RawPeer {
        let mut peer = RawPeer::connect(port);
        read_handshake(&mut peer.stream);
        peer.stream
            .write_all(&handshake::hello("hostile-test"))
            .unwrap();
        let ack = read_handshake(&mut peer.stream);
        assert_eq!(ack["result"], "ok", "{ack}");
        peer
    }

    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }
}

/// A 15-byte header declaring a `payload_len`-byte payload with a CRC that
/// no payload of zeros has.
pub fn declaring_header(type_code: u16, payload_len: u32) -> [u8; 15] {
    FrameHeader {
        type_code,
        payload_len,
        crc: 0xdead_beef,
        request_id: 7,
    }
    .encode()
}

/// A valid frame.
pub fn frame(type_code: u16, request_id: u16, payload: &[u8]) -> Vec<u8> {
    encode_frame(type_code, request_id, payload)
}

/// The highest resident memory seen while it runs, sampled every 5 ms: an
/// attack whose memory is released at its end is still seen.
pub struct PeakRss {
    done: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<u64>>,
    before: u64,
}

impl PeakRss {
    pub fn start() -> PeakRss {
        let done = Arc::new(AtomicBool::new(false));
        let watching = done.clone();
        let before = rss();
        let sampler = std::thread::spawn(move || {
            let mut peak = rss();
            while !watching.load(Ordering::Relaxed) {
                peak = peak.max(rss());
                std::thread::sleep(Duration::from_millis(5));
            }
            peak.max(rss())
        });
        PeakRss {
            done,
            sampler: Some(sampler),
            before,
        }
    }

    /// Peak growth over the resident memory at the start, in bytes.
    pub fn growth(mut self) -> u64 {
        self.done.store(true, Ordering::Relaxed);
        let peak = self.sampler.take().unwrap().join().unwrap();
        peak.saturating_sub(self.before)
    }
}

/// The sockets of this process connected between `local_port` and
/// `peer_port` (either side), found through /proc/self/fd.
pub fn socket_between(local_port: u16, peer_port: u16) -> Option<i32> {
    let fds = std::fs::read_dir("/proc/self/fd").ok()?;
    for entry in fds.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if port_of(fd, libc::getsockname) == Some(local_port)
            && port_of(fd, libc::getpeername) == Some(peer_port)
        {
            return Some(fd);
        }
    }
    None
}

type NameFn = unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32;

fn port_of(fd: i32, name: NameFn) -> Option<u16> {
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let result = unsafe { name(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len) };
    (result == 0 && i32::from(addr.sin_family) == libc::AF_INET)
        .then(|| u16::from_be(addr.sin_port))
}

/// TCP segments (sent, received) so far on socket `fd`: `tcpi_segs_out`
/// and `tcpi_segs_in` of Linux's `struct tcp_info`, at bytes 136 and 140.
pub fn tcp_segments(fd: i32) -> (u32, u32) {
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    let result = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert!(result == 0 && len >= 144, "TCP_INFO");
    let field = |at: usize| u32::from_ne_bytes(info[at..at + 4].try_into().unwrap());
    (field(136), field(140))
}
