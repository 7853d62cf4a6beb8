//! ZeroMQ PUSH/PULL through the system's `libzmq.so.5`, loaded at run time
//! (Debian: `libzmq5`, or `libzmq3-dev`), as a reference for one thread
//! sending small messages as fast as it can. `None` when it is missing.

use std::ffi::{c_char, c_int, c_void, CString};
use std::time::{Duration, Instant};

const ZMQ_PULL: c_int = 7;
const ZMQ_PUSH: c_int = 8;
const ZMQ_LINGER: c_int = 17;

type CtxNew = unsafe extern "C" fn() -> *mut c_void;
type CtxTerm = unsafe extern "C" fn(*mut c_void) -> c_int;
type Socket = unsafe extern "C" fn(*mut c_void, c_int) -> *mut c_void;
type Endpoint = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;
type SendFn = unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_int) -> c_int;
type Recv = unsafe extern "C" fn(*mut c_void, *mut c_void, usize, c_int) -> c_int;
type SetOpt = unsafe extern "C" fn(*mut c_void, c_int, *const c_void, usize) -> c_int;
type Close = unsafe extern "C" fn(*mut c_void) -> c_int;

/// The few libzmq functions the benchmark needs.
#[derive(Clone, Copy)]
pub struct Zmq {
    ctx_new: CtxNew,
    ctx_term: CtxTerm,
    socket: Socket,
    bind: Endpoint,
    connect: Endpoint,
    send: SendFn,
    recv: Recv,
    setsockopt: SetOpt,
    close: Close,
}

/// A context or socket pointer, moved to the receiving thread.
struct Handle(*mut c_void);
// SAFETY: a ZeroMQ context is thread-safe; each socket is used by one
// thread at a time (created here, then used only by the thread it moves to).
unsafe impl Send for Handle {}

impl Zmq {
    /// libzmq, if the system has it.
    pub fn load() -> Option<Zmq> {
        // SAFETY: dlopen/dlsym with NUL-terminated names; each symbol is
        // cast to the type of its documented C prototype.
        unsafe {
            let library = libc::dlopen(c"libzmq.so.5".as_ptr(), libc::RTLD_NOW);
            if library.is_null() {
                return None;
            }
            let symbol = |name: &std::ffi::CStr| {
                let address = libc::dlsym(library, name.as_ptr());
                assert!(!address.is_null(), "libzmq lacks {name:?}");
                address
            };
            Some(Zmq {
                ctx_new: std::mem::transmute::<*mut c_void, CtxNew>(symbol(c"zmq_ctx_new")),
                ctx_term: std::mem::transmute::<*mut c_void, CtxTerm>(symbol(c"zmq_ctx_term")),
                socket: std::mem::transmute::<*mut c_void, Socket>(symbol(c"zmq_socket")),
                bind: std::mem::transmute::<*mut c_void, Endpoint>(symbol(c"zmq_bind")),
                connect: std::mem::transmute::<*mut c_void, Endpoint>(symbol(c"zmq_connect")),
                send: std::mem::transmute::<*mut c_void, SendFn>(symbol(c"zmq_send")),
                recv: std::mem::transmute::<*mut c_void, Recv>(symbol(c"zmq_recv")),
                setsockopt: std::mem::transmute::<*mut c_void, SetOpt>(symbol(c"zmq_setsockopt")),
                close: std::mem::transmute::<*mut c_void, Close>(symbol(c"zmq_close")),
            })
        }
    }

    /// One thread pushes `count` messages of `size` bytes over TCP on
    /// 127.0.0.1:`port` to a PULL socket read by another thread; the time
    /// from the first send until the last message was received.
    pub fn push_pull(self, port: u16, count: usize, size: usize) -> Duration {
        let endpoint = CString::new(format!("tcp://127.0.0.1:{port}")).unwrap();
        // SAFETY: the calls follow libzmq's documented contracts; every
        // returned pointer is checked, and each socket is closed by the
        // thread that used it last, before the context is terminated.
        unsafe {
            let context = (self.ctx_new)();
            assert!(!context.is_null());
            let pull = (self.socket)(context, ZMQ_PULL);
            assert!(!pull.is_null());
            assert_eq!((self.bind)(pull, endpoint.as_ptr()), 0, "zmq_bind");
            let pull = Handle(pull);
            let receiver = std::thread::spawn(move || {
                let pull = pull;
                let mut buffer = vec![0u8; size];
                for _ in 0..count {
                    let got = (self.recv)(pull.0, buffer.as_mut_ptr().cast(), size, 0);
                    assert_eq!(got as usize, size, "zmq_recv");
                }
                let done = Instant::now();
                (self.close)(pull.0);
                done
            });
            let push = (self.socket)(context, ZMQ_PUSH);
            assert!(!push.is_null());
            let linger: c_int = -1;
            (self.setsockopt)(
                push,
                ZMQ_LINGER,
                (&linger as *const c_int).cast(),
                std::mem::size_of::<c_int>(),
            );
            assert_eq!((self.connect)(push, endpoint.as_ptr()), 0, "zmq_connect");
            let message = vec![1u8; size];
            let started = Instant::now();
            for _ in 0..count {
                let sent = (self.send)(push, message.as_ptr().cast(), size, 0);
                assert_eq!(sent as usize, size, "zmq_send");
            }
            let done = receiver.join().unwrap();
            (self.close)(push);
            (self.ctx_term)(context);
            done - started
        }
    }
}
