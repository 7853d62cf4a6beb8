'use strict';
// Drives dispatch from Node's event loop. Each client and server is in
// dispatch mode, and its event descriptor (an eventfd on Linux, a socket
// elsewhere) is readable while callbacks are due. One poll(2) over all of
// them, plus a wake descriptor of our own, runs on one thread of libuv's
// pool (an asynchronous koffi call); when it returns, the ready handles
// are dispatched on the JS thread and the poll starts again. So an idle
// client costs no CPU, and a thousand clients cost one pool thread.
//
// Where poll(2) is not available (Windows), or with VELTIX_NODE_LOOP=timer,
// a 1 ms interval timer dispatches every handle instead.
const { koffi } = require('./native');

const POLLIN = 0x1;
const POLLFD_SIZE = 8; // struct pollfd { int fd; short events; short revents; }

/** libc's poll, eventfd or pipe, read and write, on this system. */
function loadLibc() {
  if (process.platform === 'linux') {
    const libc = koffi.load('libc.so.6');
    return {
      poll: libc.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)'),
      eventfd: libc.func('int eventfd(unsigned int initval, int flags)'),
      read: libc.func('intptr_t read(int fd, _Out_ uint8_t *buf, size_t count)'),
      write: libc.func('intptr_t write(int fd, const uint8_t *buf, size_t count)'),
    };
  }
  const name = { darwin: 'libSystem.B.dylib', freebsd: 'libc.so.7' }[process.platform];
  if (!name) return null;
  const libc = koffi.load(name);
  return {
    poll: libc.func('int poll(_Inout_ uint8_t *fds, unsigned int nfds, int timeout)'),
    pipe: libc.func('int pipe(_Out_ int *fds)'),
    fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
    read: libc.func('intptr_t read(int fd, _Out_ uint8_t *buf, size_t count)'),
    write: libc.func('intptr_t write(int fd, const uint8_t *buf, size_t count)'),
  };
}

/** A descriptor pair to interrupt a poll with: { readFd, writeFd, bytes }. */
function makeWake(libc) {
  if (libc.eventfd) {
    const EFD_NONBLOCK = 0o4000;
    const EFD_CLOEXEC = 0o2000000;
    const fd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw new Error('eventfd failed');
    return { readFd: fd, writeFd: fd, bytes: 8 };
  }
  const fds = [0, 0];
  if (libc.pipe(fds) !== 0) throw new Error('pipe failed');
  const F_SETFL = 4;
  const O_NONBLOCK = 4; // macOS and the BSDs
  for (const fd of fds) libc.fcntl(fd, F_SETFL, O_NONBLOCK);
  return { readFd: fds[0], writeFd: fds[1], bytes: 1 };
}

class PollLoop {
  constructor(libc) {
    this.libc = libc;
    this.wake = makeWake(libc);
    this.watched = new Map();
    this.polling = false;
    this.woken = false;
    const one = Buffer.alloc(8);
    one.writeUInt8(1, 0);
    this.wakeBytes = one.subarray(0, this.wake.bytes);
    this.drainBuffer = Buffer.alloc(64);
    // Node waits for the pool's running work before it exits, so a poll
    // without end would hold process.exit() forever: end it first.
    process.on('exit', () => {
      this.watched.clear();
      if (this.polling) this.libc.write(this.wake.writeFd, this.wakeBytes, this.wakeBytes.length);
    });
  }

  /** Watches `fd`; `dispatch()` runs on the JS thread whenever it is readable. */
  add(key, fd, dispatch) {
    this.watched.set(key, { fd, dispatch });
    this.restart();
  }

  remove(key) {
    if (this.watched.delete(key)) this.restart();
  }

  // Starts a poll, or wakes the running one so that it polls the new set.
  restart() {
    if (!this.polling) {
      this.poll();
    } else if (!this.woken) {
      this.woken = true;
      this.libc.write(this.wake.writeFd, this.wakeBytes, this.wakeBytes.length);
    }
  }

  poll() {
    if (this.watched.size === 0) return;
    const entries = [...this.watched.values()];
    const fds = Buffer.alloc(POLLFD_SIZE * (entries.length + 1));
    entries.forEach((entry, i) => {
      fds.writeInt32LE(entry.fd, i * POLLFD_SIZE);
      fds.writeInt16LE(POLLIN, i * POLLFD_SIZE + 4);
    });
    fds.writeInt32LE(this.wake.readFd, entries.length * POLLFD_SIZE);
    fds.writeInt16LE(POLLIN, entries.length * POLLFD_SIZE + 4);
    this.polling = true;
    this.libc.poll.async(fds, entries.length + 1, -1, (error) => {
      this.polling = false;
      if (this.woken) {
        while (this.libc.read(this.wake.readFd, this.drainBuffer, this.drainBuffer.length) > 0);
        this.woken = false;
      }
      const current = new Set(this.watched.values());
      try {
        if (error) throw error;
        entries.forEach((entry, i) => {
          // Ready, and still watched (not closed while the poll ran).
          if (fds.readInt16LE(i * POLLFD_SIZE + 6) !== 0 && current.has(entry)) entry.dispatch();
        });
      } finally {
        this.poll();
      }
    });
  }
}

class TimerLoop {
  constructor() {
    this.watched = new Map();
    this.timer = null;
  }

  add(key, fd, dispatch) {
    this.watched.set(key, { dispatch });
    if (!this.timer) {
      this.timer = setInterval(() => {
        for (const entry of [...this.watched.values()]) entry.dispatch();
      }, 1);
    }
  }

  remove(key) {
    this.watched.delete(key);
    if (this.watched.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}

let loop = null;

/** The process's one loop: a poll where the system has one, else a timer. */
function eventLoop() {
  if (!loop) {
    const libc = process.env.VELTIX_NODE_LOOP === 'timer' ? null : loadLibc();
    loop = libc ? new PollLoop(libc) : new TimerLoop();
  }
  return loop;
}

module.exports = { eventLoop };
