'use strict';
/**
 * Veltix for Node.js: a client and a server of the Veltix protocol (the
 * Python veltix 3.3.0's, byte for byte), on libveltix through koffi.
 *
 * Every handler and event runs on the JS thread, driven by Node's event
 * loop: nothing blocks it, and no library thread ever runs JS.
 */
const { EventEmitter } = require('node:events');
const native = require('./lib/native');
const { eventLoop } = require('./lib/loop');

const { koffi, constants, types, prototypes } = native;
const STATUS_NAMES = Object.fromEntries(
  Object.entries(constants)
    .filter(([name]) => name === 'VELTIX_OK' || name.startsWith('VELTIX_ERR_'))
    .map(([name, value]) => [value, name]));
const REASONS = ['server_closed', 'error', 'manual', 'peer_closed'];

/** A failed call: `code` is the status's name (e.g. 'VELTIX_ERR_TIMEOUT'), `detail` the library's words. */
class VeltixError extends Error {
  constructor(status, detail) {
    const api = native.native();
    super(`${api.veltix_status_str(status)}${detail ? `: ${detail}` : ''}`);
    this.name = 'VeltixError';
    this.status = status;
    this.code = STATUS_NAMES[status] || `VELTIX_STATUS_${status}`;
    this.detail = detail || '';
  }
}

/** The error of a call that returned `status` on this thread. */
function failure(status) {
  return new VeltixError(status, native.native().veltix_last_error());
}

function check(status) {
  if (status !== constants.VELTIX_OK) throw failure(status);
}

/** `payload` (a Buffer, a typed array or a string) as bytes. */
function bytes(payload) {
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  if (payload === undefined || payload === null) return Buffer.alloc(0);
  if (ArrayBuffer.isView(payload)) return payload;
  throw new TypeError('a payload is a Buffer, a typed array or a string');
}

/** The library's message at `pointer`, copied. */
function copyOf(pointer) {
  const api = native.native();
  const length = [0];
  const content = api.veltix_message_content(pointer, length);
  // Buffer.from(ArrayBuffer) would share the library's memory: copy it from a view.
  const payload = length[0] > 0 ? Buffer.from(new Uint8Array(koffi.view(content, length[0]))) : Buffer.alloc(0);
  return new Message(api.veltix_message_type(pointer), api.veltix_message_request_id(pointer), payload);
}

const messageRegistry = new FinalizationRegistry((pointer) => native.native().veltix_message_free(pointer));

/**
 * A received message: `type`, `requestId` and `payload` (a Buffer that is
 * yours). `reply()` needs the library's message, which a handler's message
 * has only while the handler runs; `clone()` keeps one to answer later.
 */
class Message {
  #native = null;
  #owned = false;

  constructor(type, requestId, payload) {
    this.type = type;
    this.requestId = requestId;
    this.payload = payload;
  }

  /** The payload as UTF-8 text. */
  get text() {
    return this.payload.toString('utf8');
  }

  /** A copy that holds a native message, so it can be answered at any time; `free()` releases it. */
  clone() {
    const copy = new Message(this.type, this.requestId, this.payload);
    copy.#native = native.native().veltix_message_clone(this.pointer);
    copy.#owned = true;
    messageRegistry.register(copy, copy.#native, copy);
    return copy;
  }

  /** Releases a clone's native message (the collector does it otherwise). */
  free() {
    if (this.#owned && this.#native) {
      messageRegistry.unregister(this);
      native.native().veltix_message_free(this.#native);
      this.#native = null;
    }
  }

  /** @internal The native message a reply answers. */
  get pointer() {
    if (!this.#native) {
      throw new Error(this.#owned
        ? 'this clone was freed'
        : 'the message belongs to the library only while its handler runs: reply inside the handler, or keep message.clone() to reply later');
    }
    return this.#native;
  }

  /** @internal Runs `fn(message)` with the library's `pointer` lent to the message for the call. */
  static lend(pointer, fn) {
    const message = copyOf(pointer);
    message.#native = pointer;
    try {
      fn(message);
    } finally {
      message.#native = null;
    }
  }
}

// Registrations: what each callback's user_data (a number) stands for.
// An entry holds its handler and a WeakRef to its client or server, never
// the object itself, so a forgotten client can still be collected.
const registrations = new Map();
let nextId = 1;

function register(entry) {
  const id = nextId++;
  registrations.set(id, entry);
  return id;
}

/**
 * Calls registration `id`'s handler with `args` and its owner as `this`
 * (the binding's own handlers are functions of their owner, so that they
 * need not hold it); what it throws is kept for after the dispatch.
 */
function run(id, ...args) {
  const entry = registrations.get(id);
  const owner = entry && entry.owner.deref();
  if (!owner) return;
  try {
    entry.handler.apply(owner, args);
  } catch (error) {
    owner._handlerFailed(error);
  }
}

/** As `run`, with the message at `pointer` lent for the call, after `before` (a peer id). */
function runWithMessage(id, pointer, ...before) {
  const entry = registrations.get(id);
  if (!entry || !entry.owner.deref()) return;
  Message.lend(pointer, (message) => run(id, ...before, message));
}

function settle(id, status, reply, detail) {
  const request = registrations.get(id);
  registrations.delete(id);
  if (!request) return;
  if (status === constants.VELTIX_OK) request.resolve(copyOf(reply));
  else request.reject(new VeltixError(status, detail || ''));
}

let trampolines = null;

// One C callback per kind, made once for the process.
function callbacks() {
  if (trampolines) return trampolines;
  const made = (fn, proto) => koffi.register(fn, koffi.pointer(proto));
  trampolines = {
    free: made((id) => registrations.delete(id), prototypes.free),
    connect: made((id) => run(id), prototypes.connect),
    disconnect: made((id, _client, state) => {
      const decoded = koffi.decode(state, types.disconnectState);
      const info = {
        permanent: decoded.permanent,
        attempt: decoded.attempt,
        retryMax: decoded.retry_max,
        reason: REASONS[decoded.reason] || decoded.reason,
        nextDelayMs: decoded.next_delay_ms,
        detail: native.native().veltix_last_error(),
      };
      run(id, info);
    }, prototypes.disconnect),
    message: made((id, _client, message) => runWithMessage(id, message), prototypes.message),
    reply: made((id, _client, status, reply, detail) => settle(id, status, reply, detail), prototypes.reply),
    serverConnect: made((id, _server, peer) => run(id, Number(peer)), prototypes.serverConnect),
    serverDisconnect: made(
      (id, _server, peer, reason) => run(id, Number(peer), REASONS[reason] || reason), prototypes.serverDisconnect),
    serverMessage: made(
      (id, _server, peer, message) => runWithMessage(id, message, Number(peer)), prototypes.serverMessage),
    serverReply: made(
      (id, _server, _peer, status, reply, detail) => settle(id, status, reply, detail), prototypes.serverReply),
    clusterState: made((id, _server, connected) => run(id, connected), prototypes.clusterState),
  };
  return trampolines;
}

// A client or a server dropped without close(): freed by the collector.
const handleRegistry = new FinalizationRegistry(({ key, free }) => {
  eventLoop().remove(key);
  free();
});

/**
 * What a client and a server share: the native handle, its place in the
 * event loop, registrations, requests and handler errors. `prefix` is
 * 'veltix_client' or 'veltix_server'.
 */
class Endpoint extends EventEmitter {
  #handle;
  #prefix;
  #key = Symbol('veltix handle');
  #busy = 0;
  #closing = false;
  #errors = [];

  constructor(prefix, configType, hostField, options, fields) {
    super();
    const api = native.native();
    callbacks();
    this.#prefix = prefix;
    const config = {};
    check(api[`${prefix}_config_init`](config, koffi.sizeof(configType)));
    if (options.host !== undefined) config[hostField] = options.host;
    for (const [option, field] of Object.entries(fields)) {
      if (options[option] !== undefined) config[field] = options[option];
    }
    for (const [option, field] of Object.entries(LIVENESS)) {
      if (options.liveness && options.liveness[option] !== undefined) config.liveness[field] = options.liveness[option];
    }
    config.max_workers = 0; // dispatch mode: handlers only on the JS thread
    const out = [null];
    check(api[`${prefix}_new`](config, out));
    const handle = out[0];
    this.#handle = handle;
    const free = () => api[`${prefix}_free`](handle);
    handleRegistry.register(this, { key: this.#key, free }, this);
    const fd = [0];
    check(api[`${prefix}_event_fd`](handle, fd));
    const weak = new WeakRef(this);
    eventLoop().add(this.#key, fd[0], () => {
      const self = weak.deref();
      if (self) self._dispatch();
    });
  }

  /** @internal The live handle; throws once closed. */
  get _handle() {
    if (!this.#handle || this.#closing) throw new Error(`this ${this.#prefix.slice(7)} is closed`);
    return this.#handle;
  }

  /** @internal A registration of `handler` for this object's callbacks; its user_data. */
  _register(handler) {
    return register({ handler, owner: new WeakRef(this) });
  }

  /** @internal Registers through `setter(user_data)`, dropping the registration if refused. */
  _registerWith(handler, setter) {
    const id = this._register(handler);
    const status = setter(id);
    if (status !== constants.VELTIX_OK) {
      registrations.delete(id);
      throw failure(status);
    }
  }

  /** @internal A request made by `send(user_data)`: a promise of its reply. */
  _request(send) {
    return new Promise((resolve, reject) => {
      const id = register({ resolve, reject });
      const status = send(id);
      if (status !== constants.VELTIX_OK) {
        registrations.delete(id);
        reject(failure(status));
      }
    });
  }

  /**
   * @internal Runs a blocking call on libuv's pool (`fn.async(...args)`), so
   * the JS thread keeps dispatching; the handle is not freed while it runs.
   */
  _offThread(fn, ...args) {
    const handle = this._handle;
    this.#busy++;
    return new Promise((resolve, reject) => {
      fn.async(handle, ...args, (error, status) => {
        this.#busy--;
        if (this.#closing && this.#busy === 0) this.#free();
        if (error) reject(error);
        else if (status !== constants.VELTIX_OK) reject(new VeltixError(status, ''));
        else resolve();
      });
    });
  }

  /** @internal A handler threw: kept, and emitted as 'error' once the dispatch returns. */
  _handlerFailed(error) {
    this.#errors.push(error);
  }

  /** @internal Runs the due callbacks (from the event loop), then emits what handlers threw. */
  _dispatch() {
    if (!this.#handle || this.#closing) return;
    const count = [0];
    const status = native.native()[`${this.#prefix}_dispatch`](this.#handle, 0, count);
    const errors = this.#errors.splice(0);
    check(status);
    for (const error of errors) this.emit('error', error);
  }

  /**
   * Frees it: a client disconnects first, a server closes every connection.
   * Pending requests fail with VELTIX_ERR_CLOSED. Safe to call twice, and
   * inside a handler.
   */
  close() {
    if (!this.#handle || this.#closing) return;
    this.#closing = true;
    handleRegistry.unregister(this);
    eventLoop().remove(this.#key);
    if (this.#busy > 0) {
      // A blocking call runs on the pool: end the connection so that it
      // returns at once, and free when it has.
      native.native()[`${this.#prefix}_${this.#prefix === 'veltix_client' ? 'disconnect' : 'close'}`](this.#handle);
    } else {
      this.#free();
    }
  }

  #free() {
    const handle = this.#handle;
    this.#handle = null;
    native.native()[`${this.#prefix}_free`](handle);
    const errors = this.#errors.splice(0);
    for (const error of errors) this.emit('error', error);
  }

  /** Ends the route of `type`. */
  unroute(type) {
    check(native.native()[`${this.#prefix}_unroute`](this._handle, type));
  }
}

const LIVENESS = {
  heartbeatIntervalMs: 'heartbeat_interval_ms',
  heartbeatTimeoutMs: 'heartbeat_timeout_ms',
  keepaliveIdleS: 'keepalive_idle_s',
  keepaliveIntervalS: 'keepalive_interval_s',
  keepaliveCount: 'keepalive_count',
};

const CLIENT_FIELDS = {
  port: 'port',
  bufferSize: 'buffer_size',
  maxMessageSize: 'max_message_size',
  handshakeTimeoutMs: 'handshake_timeout_ms',
  retry: 'retry',
  retryDelayMs: 'retry_delay_ms',
  retryDelayMaxMs: 'retry_delay_max_ms',
  retryJitter: 'retry_jitter',
  sendTimeoutMs: 'send_timeout_ms',
  maxQueuedMessages: 'max_queued_messages',
  maxQueuedBytes: 'max_queued_bytes',
  replySpinUs: 'reply_spin_us',
};

const SERVER_FIELDS = {
  port: 'port',
  bufferSize: 'buffer_size',
  maxConnection: 'max_connection',
  maxMessageSize: 'max_message_size',
  handshakeTimeoutMs: 'handshake_timeout_ms',
  maxOutboundBytes: 'max_outbound_bytes',
  maxQueuedMessages: 'max_queued_messages',
  maxQueuedBytes: 'max_queued_bytes',
  maxMemoryBytes: 'max_memory_bytes',
  idleTimeoutMs: 'idle_timeout_ms',
  replySpinUs: 'reply_spin_us',
  proxyProtocolFrom: 'proxy_protocol_from',
  clusterBus: 'cluster_bus',
  clusterName: 'cluster_name',
  clusterNodeId: 'cluster_node_id',
  ioThreads: 'io_threads',
};

function statsOf(get) {
  const stats = { struct_size: koffi.sizeof(types.stats) };
  check(get(stats));
  return {
    bytesIn: stats.bytes_in,
    bytesOut: stats.bytes_out,
    framesIn: stats.frames_in,
    framesOut: stats.frames_out,
    lastRttMs: stats.last_rtt_ms,
    msSinceLastFrame: stats.ms_since_last_frame,
  };
}

// The binding's own handlers: functions of their owner (`this`, see `run`),
// defined here because a function made inside a constructor shares its
// scope with the constructor's arrow functions, which hold `this`.
const CLIENT_HANDLERS = {
  connected() { this._connected(); },
  disconnected(info) { this._disconnected(info); },
  received(message) { this.emit('message', message); },
};

const SERVER_HANDLERS = {
  connected(peer) { this.emit('connect', peer); },
  disconnected(peer, reason) { this.emit('disconnect', peer, reason); },
  received(peer, message) { this.emit('message', peer, message); },
  clusterState(connected) { this.emit('clusterState', connected); },
};

/**
 * A Veltix client. Events: 'connect' (each completed handshake),
 * 'disconnect' (info: permanent, attempt, retryMax, reason, nextDelayMs,
 * detail), 'message' (every message no route takes), 'error' (what a
 * handler threw).
 */
class Client extends Endpoint {
  #connecting = null;

  /** @param {object} [options] host, port, retry, ... (see index.d.ts) */
  constructor(options = {}) {
    super('veltix_client', types.clientConfig, 'server_addr', options, CLIENT_FIELDS);
    const api = native.native();
    const t = callbacks();
    this._registerWith(CLIENT_HANDLERS.connected, (id) => api.veltix_client_on_connect(this._handle, t.connect, id, t.free));
    this._registerWith(CLIENT_HANDLERS.disconnected,
      (id) => api.veltix_client_on_disconnect(this._handle, t.disconnect, id, t.free));
    this._registerWith(CLIENT_HANDLERS.received, (id) => api.veltix_client_on_recv(this._handle, t.message, id, t.free));
  }

  /** @internal */
  _connected() {
    const connecting = this.#connecting;
    this.#connecting = null;
    if (connecting) connecting.resolve();
    this.emit('connect');
  }

  /** @internal */
  _disconnected(info) {
    if (info.permanent && this.#connecting) {
      const connecting = this.#connecting;
      this.#connecting = null;
      connecting.reject(new VeltixError(constants.VELTIX_ERR_CONNECT_FAILED, info.detail));
    }
    this.emit('disconnect', info);
  }

  /**
   * Connects in the background: resolves once the handshake is done,
   * rejects (VELTIX_ERR_CONNECT_FAILED, with the cause) when the client
   * gives up. Never blocks the event loop.
   */
  connect() {
    return new Promise((resolve, reject) => {
      if (this.#connecting) this.#connecting.reject(new VeltixError(constants.VELTIX_ERR_CONNECT_FAILED, 'a newer connect() replaced it'));
      this.#connecting = { resolve, reject };
      const status = native.native().veltix_client_connect_async(this._handle);
      if (status !== constants.VELTIX_OK) {
        this.#connecting = null;
        reject(failure(status));
      }
    });
  }

  /** Whether the handshake is done and the connection open. */
  get connected() {
    return native.native().veltix_client_is_connected(this._handle);
  }

  /** Sends `payload` (Buffer, typed array or string) as a message of `type`. */
  send(type, payload) {
    const data = bytes(payload);
    check(native.native().veltix_client_send(this._handle, type, data, data.length));
  }

  /** Answers `message` (a request) with a message of `type`, inside its handler or with a clone. */
  reply(message, type, payload) {
    const data = bytes(payload);
    check(native.native().veltix_client_reply(this._handle, message.pointer, type, data, data.length));
  }

  /** Sends a request: a promise of its reply, rejected on timeout (default 5000 ms) or when the connection ends. */
  request(type, payload, { timeoutMs = 5000 } = {}) {
    const data = bytes(payload);
    const t = callbacks();
    return this._request((id) =>
      native.native().veltix_client_request(this._handle, type, data, data.length, timeoutMs, t.reply, id));
  }

  /** Pings the server: a promise of the round trip in milliseconds. */
  async ping({ timeoutMs = 5000 } = {}) {
    const rtt = [0];
    await this._offThread(native.native().veltix_client_ping, timeoutMs, rtt);
    return rtt[0];
  }

  /** Sends messages of `type` to `handler(message)` instead of the 'message' event. */
  route(type, handler) {
    const t = callbacks();
    this._registerWith(handler,
      (id) => native.native().veltix_client_route(this._handle, type, t.message, id, t.free));
  }

  /** Disconnects; 'disconnect' follows (reason 'manual'). */
  disconnect() {
    check(native.native().veltix_client_disconnect(this._handle));
  }

  /** Starts a reconnection loop of at most `maxAttempts` attempts. */
  retry(maxAttempts) {
    check(native.native().veltix_client_retry(this._handle, maxAttempts));
  }

  /** Stops a reconnection loop. */
  stopRetry() {
    check(native.native().veltix_client_stop_retry(this._handle));
  }

  /** The connection's counters. */
  get stats() {
    return statsOf((stats) => native.native().veltix_client_stats(this._handle, stats));
  }
}

/**
 * A Veltix server. Events: 'connect' (peer), 'disconnect' (peer, reason),
 * 'message' (peer, message), 'clusterState' (connected: cluster mode's
 * bus reached or lost), 'error'. Peers are numeric ids, never reused.
 */
class Server extends Endpoint {
  /** @param {object} [options] host, port (0 picks one), maxConnection, ... (see index.d.ts) */
  constructor(options = {}) {
    super('veltix_server', types.serverConfig, 'host', options, SERVER_FIELDS);
    const api = native.native();
    const t = callbacks();
    this._registerWith(SERVER_HANDLERS.connected,
      (id) => api.veltix_server_on_connect(this._handle, t.serverConnect, id, t.free));
    this._registerWith(SERVER_HANDLERS.disconnected,
      (id) => api.veltix_server_on_disconnect(this._handle, t.serverDisconnect, id, t.free));
    this._registerWith(SERVER_HANDLERS.received,
      (id) => api.veltix_server_on_recv(this._handle, t.serverMessage, id, t.free));
    this._registerWith(SERVER_HANDLERS.clusterState,
      (id) => api.veltix_server_on_cluster_state(this._handle, t.clusterState, id, t.free));
  }

  /** Starts listening; returns the port (the one picked, for port 0). */
  listen() {
    check(native.native().veltix_server_start(this._handle));
    return this.port;
  }

  /**
   * Drains it for a rolling deploy: it stops listening, then closes its
   * connections `peersPerSecond` at a time (0: all at once), so that
   * clients that retry come back through the load balancer to other nodes.
   */
  drain(peersPerSecond = 0) {
    check(native.native().veltix_server_drain(this._handle, peersPerSecond));
  }

  /** The port it listens on; 0 before listen(). */
  get port() {
    return native.native().veltix_server_port(this._handle);
  }

  /** How many clients are connected. */
  get clientCount() {
    return Number(native.native().veltix_server_client_count(this._handle));
  }

  /** Sends messages of `type` to `handler(peer, message)` instead of the 'message' event. */
  route(type, handler) {
    const t = callbacks();
    this._registerWith(handler,
      (id) => native.native().veltix_server_route(this._handle, type, t.serverMessage, id, t.free));
  }

  /** Sends `payload` to `peer`. */
  send(peer, type, payload) {
    const data = bytes(payload);
    check(native.native().veltix_server_send(this._handle, peer, type, data, data.length));
  }

  /** Answers `message` from `peer`, inside its handler or with a clone. */
  reply(peer, message, type, payload) {
    const data = bytes(payload);
    check(native.native().veltix_server_reply(this._handle, peer, message.pointer, type, data, data.length));
  }

  /** Sends a request to `peer`: a promise of its reply. */
  request(peer, type, payload, { timeoutMs = 5000 } = {}) {
    const data = bytes(payload);
    const t = callbacks();
    return this._request((id) => native.native().veltix_server_request(
      this._handle, peer, type, data, data.length, timeoutMs, t.serverReply, id));
  }

  /** Pings `peer`: a promise of the round trip in milliseconds. */
  async ping(peer, { timeoutMs = 5000 } = {}) {
    const rtt = [0];
    await this._offThread(native.native().veltix_server_ping_client, peer, timeoutMs, rtt);
    return rtt[0];
  }

  /** Sends to every connected client but those in `except`; returns how many it was sent to. */
  broadcast(type, payload, except = []) {
    const data = bytes(payload);
    const sent = [0];
    const ids = except.map(BigInt);
    check(native.native().veltix_server_broadcast(this._handle, type, data, data.length,
      ids.length ? ids : null, ids.length, sent));
    return Number(sent[0]);
  }

  /** The connected clients' ids, in increasing order. */
  peers() {
    return idList((out, capacity, count) => native.native().veltix_server_peers(this._handle, out, capacity, count));
  }

  /** The clients whose tag `name` is `value` (any value if omitted). */
  peersWithTag(name, value = null) {
    return idList((out, capacity, count) =>
      native.native().veltix_server_peers_with_tag(this._handle, name, value, out, capacity, count));
  }

  /** Sets tag `name` of `peer` to `value`. */
  setTag(peer, name, value) {
    check(native.native().veltix_server_set_tag(this._handle, peer, name, value));
  }

  /** The value of tag `name` of `peer`, or undefined if it is not set. */
  getTag(peer, name) {
    const api = native.native();
    for (;;) {
      const length = [0];
      let status = api.veltix_server_get_tag(this._handle, peer, name, null, 0, length);
      if (status === constants.VELTIX_ERR_NOT_FOUND) return undefined;
      check(status);
      const buffer = Buffer.alloc(Number(length[0]) + 1);
      status = api.veltix_server_get_tag(this._handle, peer, name, buffer, buffer.length, length);
      if (status === constants.VELTIX_ERR_BUFFER_TOO_SMALL) continue; // set to a longer value meanwhile
      if (status === constants.VELTIX_ERR_NOT_FOUND) return undefined;
      check(status);
      return buffer.toString('utf8', 0, Number(length[0]));
    }
  }

  /** Removes tag `name` of `peer`; false if it was not set. */
  removeTag(peer, name) {
    const status = native.native().veltix_server_remove_tag(this._handle, peer, name);
    if (status === constants.VELTIX_ERR_NOT_FOUND) return false;
    check(status);
    return true;
  }

  /** Where `peer` connected from: { address, port }. */
  peerAddress(peer) {
    const buffer = Buffer.alloc(64);
    const port = [0];
    check(native.native().veltix_server_peer_address(this._handle, peer, buffer, buffer.length, port));
    return { address: buffer.toString('utf8', 0, buffer.indexOf(0)), port: port[0] };
  }

  /** Disconnects `peer`. */
  closeClient(peer) {
    check(native.native().veltix_server_close_client(this._handle, peer));
  }

  /**
   * Sends to every client whose tag `name` is `value` (any value if null),
   * on every node in cluster mode; returns how many of this server's
   * clients it was sent to.
   */
  sendToTag(name, value, type, payload) {
    const data = bytes(payload);
    const sent = [0];
    check(native.native().veltix_server_send_to_tag(this._handle, name, value, type, data, data.length, sent));
    return Number(sent[0]);
  }

  /** Cluster mode: the bus counters. */
  get clusterStats() {
    const stats = { struct_size: koffi.sizeof(types.clusterStats) };
    check(native.native().veltix_server_cluster_stats(this._handle, stats));
    return {
      connected: stats.connected,
      nodeId: stats.node_id,
      published: Number(stats.published),
      received: Number(stats.received),
      dropped: Number(stats.dropped),
      malformed: Number(stats.malformed),
      disconnects: Number(stats.disconnects),
    };
  }

  /** Cluster mode: every live node ({ nodeId, clients }, in node order) and their total of clients. */
  clusterNodes() {
    const api = native.native();
    for (;;) {
      const count = [0];
      check(api.veltix_server_cluster_nodes(this._handle, null, 0, count, null));
      const capacity = Number(count[0]) + 4;
      const out = Array.from({ length: capacity }, () => ({ node_id: 0, clients: 0 }));
      const total = [0];
      check(api.veltix_server_cluster_nodes(this._handle, out, capacity, count, total));
      if (Number(count[0]) <= capacity) {
        const nodes = out.slice(0, Number(count[0])).map((n) => ({ nodeId: n.node_id, clients: Number(n.clients) }));
        return { nodes, total: Number(total[0]) };
      }
    }
  }
}

/** The ids `list(out, capacity, count)` writes, asking for the count first. */
function idList(list) {
  for (;;) {
    const count = [0];
    check(list(null, 0, count));
    const capacity = Number(count[0]) + 16;
    const out = new BigUint64Array(capacity);
    check(list(out, capacity, count));
    if (Number(count[0]) <= capacity) return [...out.subarray(0, Number(count[0]))].map(Number);
  }
}

/** Loads libveltix from `path` (optional; see the README for where it is looked for). Returns its version. */
function load(path) {
  return native.load(path).veltix_version();
}

/** The version of the loaded library. */
function version() {
  return native.native().veltix_version();
}

module.exports = { Client, Server, Message, VeltixError, load, version, constants };
