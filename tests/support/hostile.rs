//! Tools for the hostile-peer tests: raw attacking sockets, TCP segment
//! counts, and a lock that runs the measuring tests of one binary one at a
//! time (what they measure is in `measure`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use veltix::protocol::frame::{encode_frame, FrameHeader};
use veltix::protocol::handshake;

use super::fake_server::read_handshake;

/// Runs the tests of a binary one at a time, so each sees only its own
/// memory and CPU use.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Reads one whole frame: its header and its payload.
    pub fn read_frame(&mut self) -> std::io::Result<(FrameHeader, Vec<u8>)> {
        let mut header = [0u8; 15];
        self.stream.read_exact(&mut header)?;
        let header = FrameHeader::decode(&header).expect("a frame starts with the magic bytes");
        let mut payload = vec![0u8; header.payload_len as usize];
        self.stream.read_exact(&mut payload)?;
        Ok((header, payload))
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

/// A socket of this process, by its raw handle.
#[cfg(unix)]
pub type RawSocket = std::os::fd::RawFd;
#[cfg(windows)]
pub type RawSocket = std::os::windows::io::RawSocket;

/// The raw handle of `stream`.
pub fn raw_socket(stream: &TcpStream) -> RawSocket {
    #[cfg(unix)]
    return std::os::fd::AsRawFd::as_raw_fd(stream);
    #[cfg(windows)]
    return std::os::windows::io::AsRawSocket::as_raw_socket(stream);
}

/// The socket of this process connected between `local_port` and
/// `peer_port` (either side), found through /proc/self/fd; `None` on
/// other systems.
#[cfg(target_os = "linux")]
pub fn socket_between(local_port: u16, peer_port: u16) -> Option<RawSocket> {
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

#[cfg(not(target_os = "linux"))]
pub fn socket_between(_local_port: u16, _peer_port: u16) -> Option<RawSocket> {
    None
}

#[cfg(target_os = "linux")]
type NameFn = unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32;

#[cfg(target_os = "linux")]
fn port_of(fd: i32, name: NameFn) -> Option<u16> {
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let result = unsafe { name(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len) };
    (result == 0 && i32::from(addr.sin_family) == libc::AF_INET)
        .then(|| u16::from_be(addr.sin_port))
}

/// TCP segments (sent, received) so far on socket `fd`: `tcpi_segs_out`
/// and `tcpi_segs_in` of Linux's `struct tcp_info`, at bytes 136 and 140.
/// `None` where the system does not report them: qemu-user answers with a
/// 4-byte `TCP_INFO`, and other systems have no such fields.
#[cfg(target_os = "linux")]
fn tcp_segments(fd: RawSocket) -> Option<(u32, u32)> {
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
    assert_eq!(result, 0, "TCP_INFO");
    let field = |at: usize| u32::from_ne_bytes(info[at..at + 4].try_into().unwrap());
    (len >= 144).then(|| (field(136), field(140)))
}

#[cfg(not(target_os = "linux"))]
fn tcp_segments(_socket: RawSocket) -> Option<(u32, u32)> {
    None
}

/// Counts the TCP segments a socket sends and receives from now on, where
/// the system reports them (see [`tcp_segments`]).
pub struct SegmentCount {
    socket: RawSocket,
    start: (u32, u32),
}

impl SegmentCount {
    /// Starts counting on `socket`; `None`, with a note on stderr, where
    /// the system does not count: the caller then checks everything but
    /// the count. On Linux the socket must be known ([`socket_between`]
    /// finds every one there).
    pub fn start(socket: Option<RawSocket>) -> Option<SegmentCount> {
        if cfg!(target_os = "linux") {
            assert!(socket.is_some(), "the socket was not found");
        }
        let counted = socket.and_then(|socket| {
            let start = tcp_segments(socket)?;
            Some(SegmentCount { socket, start })
        });
        if counted.is_none() {
            eprintln!("note: this system reports no TCP segment counts; the bound on writes is not checked here");
        }
        counted
    }

    /// Segments sent since the start.
    pub fn sent(&self) -> u32 {
        tcp_segments(self.socket).expect("counted at the start").0 - self.start.0
    }

    /// Segments received since the start.
    pub fn received(&self) -> u32 {
        tcp_segments(self.socket).expect("counted at the start").1 - self.start.1
    }
}
