// A Node.js host using libveltix in dispatch mode through koffi: every
// callback runs on the JS thread, inside veltix_client_dispatch(), called
// from a timer of the event loop. Nothing blocks the loop (connect is
// veltix_client_connect_async), and free never waits for a callback
// marshalled to this thread.
//
//   node node_client.js <path to libveltix.so> <port> [runs]
//
// Each run: connect_async and wait for on_connect, send 20 messages of type
// 200 (echoed by the server), receive every echo through a route, one
// veltix_client_request whose reply arrives in a callback, unroute type 200
// so the next echo reaches on_recv instead, disconnect and
// free (which delivers on_disconnect on this thread). Then a connect_async
// to a port that refuses: the permanent on_disconnect arrives with the
// cause in veltix_last_error(). Prints "OK <runs>" at the end.
'use strict';
const koffi = require('koffi');

const [libPath, portText, runsText] = process.argv.slice(2);
if (!libPath || !portText) {
  console.error('usage: node node_client.js <libveltix.so> <port> [runs]');
  process.exit(2);
}
const port = Number(portText);
const runs = Number(runsText || '20');
const MESSAGES = 20;

const lib = koffi.load(libPath);
koffi.struct('veltix_client_config_t', {
  struct_size: 'uint32_t',
  server_addr: 'const char *',
  port: 'uint16_t',
  buffer_size: 'uint32_t',
  max_message_size: 'uint32_t',
  handshake_timeout_ms: 'uint32_t',
  max_workers: 'uint32_t',
  retry: 'uint32_t',
  retry_delay_ms: 'uint32_t',
  send_timeout_ms: 'uint32_t',
  max_queued_messages: 'uint32_t',
  max_queued_bytes: 'uint32_t',
});
koffi.struct('veltix_disconnect_state_t', {
  permanent: 'bool',
  attempt: 'uint32_t',
  retry_max: 'uint32_t',
  reason: 'int32_t',
});
const ConnectFn = koffi.proto('void veltix_connect_fn(void *user_data, void *client)');
const FreeFn = koffi.proto('void veltix_free_fn(void *user_data)');
const MessageFn = koffi.proto('void veltix_message_fn(void *user_data, void *client, void *message)');
const DisconnectFn = koffi.proto(
  'void veltix_disconnect_fn(void *user_data, void *client, veltix_disconnect_state_t *state)');
const ReplyFn = koffi.proto(
  'void veltix_reply_fn(void *user_data, void *client, int32_t status, void *reply, const char *error)');

const api = {
  configInit: lib.func(
    'int32_t veltix_client_config_init(_Out_ veltix_client_config_t *config, size_t struct_size)'),
  clientNew: lib.func('int32_t veltix_client_new(veltix_client_config_t *config, _Out_ void **out)'),
  free: lib.func('void veltix_client_free(void *client)'),
  route: lib.func(
    'int32_t veltix_client_route(void *client, uint16_t type, veltix_message_fn *fn, void *user_data, veltix_free_fn *free_user_data)'),
  onDisconnect: lib.func(
    'int32_t veltix_client_on_disconnect(void *client, veltix_disconnect_fn *fn, void *user_data, void *free_user_data)'),
  onConnect: lib.func(
    'int32_t veltix_client_on_connect(void *client, veltix_connect_fn *fn, void *user_data, void *free_user_data)'),
  connectAsync: lib.func('int32_t veltix_client_connect_async(void *client)'),
  onRecv: lib.func(
    'int32_t veltix_client_on_recv(void *client, veltix_message_fn *fn, void *user_data, void *free_user_data)'),
  unroute: lib.func('int32_t veltix_client_unroute(void *client, uint16_t type)'),
  disconnect: lib.func('int32_t veltix_client_disconnect(void *client)'),
  send: lib.func('int32_t veltix_client_send(void *client, uint16_t type, const char *data, size_t len)'),
  request: lib.func(
    'int32_t veltix_client_request(void *client, uint16_t type, const char *data, size_t len, uint32_t timeout_ms, veltix_reply_fn *on_reply, void *user_data)'),
  dispatch: lib.func('int32_t veltix_client_dispatch(void *client, int32_t timeout_ms, void *out_count)'),
  content: lib.func('const char *veltix_message_content(void *message, void *out_len)'),
  lastError: lib.func('const char *veltix_last_error(void)'),
  statusStr: lib.func('const char *veltix_status_str(int32_t status)'),
};

function check(status, what) {
  if (status !== 0) {
    throw new Error(`${what}: ${api.statusStr(status)} (${api.lastError()})`);
  }
}

// State the callbacks fill; callbacks are registered once, for the program.
let echoes = [];
let replies = [];
let received = [];
// free_user_data of the route: called once, on this thread, by unroute.
let routeFreed = 0;
const onRouteFree = koffi.register(() => {
  routeFreed += 1;
}, koffi.pointer(FreeFn));
const onRecv = koffi.register((_, __, message) => {
  received.push(api.content(message, null));
}, koffi.pointer(MessageFn));
let disconnects = [];
let connects = 0;
const onConnect = koffi.register(() => {
  connects += 1;
}, koffi.pointer(ConnectFn));
const onEcho = koffi.register((_, __, message) => {
  echoes.push(api.content(message, null));
}, koffi.pointer(MessageFn));
const onDisconnect = koffi.register((_, __, state) => {
  const decoded = koffi.decode(state, 'veltix_disconnect_state_t');
  disconnects.push(decoded.reason);
  disconnects.permanent = decoded.permanent;
  disconnects.cause = api.lastError();
}, koffi.pointer(DisconnectFn));
const onReply = koffi.register((_, __, status, reply, error) => {
  replies.push({ status, text: reply ? api.content(reply, null) : error });
}, koffi.pointer(ReplyFn));

// Runs dispatch from the event loop (a timer) until `done()` holds.
function dispatchUntil(client, done, what) {
  return new Promise((resolve, reject) => {
    let ticks = 0;
    const timer = setInterval(() => {
      try {
        check(api.dispatch(client, 0, null), 'dispatch');
        if (done()) {
          clearInterval(timer);
          resolve();
        } else if (++ticks > 2000) {
          clearInterval(timer);
          reject(new Error(`${what}: not within 2000 ticks`));
        }
      } catch (error) {
        clearInterval(timer);
        reject(error);
      }
    }, 1);
  });
}

function newClient(toPort) {
  const config = {};
  check(api.configInit(config, koffi.sizeof('veltix_client_config_t')), 'config_init');
  config.server_addr = '127.0.0.1';
  config.port = toPort;
  config.max_workers = 0; // dispatch mode
  const out = [null];
  check(api.clientNew(config, out), 'veltix_client_new');
  const client = out[0];
  check(api.onConnect(client, onConnect, null, null), 'on_connect');
  check(api.onDisconnect(client, onDisconnect, null, null), 'on_disconnect');
  return client;
}

async function run(index) {
  echoes = [];
  replies = [];
  disconnects = [];
  connects = 0;
  const client = newClient(port);
  routeFreed = 0;
  check(api.route(client, 200, onEcho, null, onRouteFree), 'route');
  check(api.connectAsync(client), 'connect_async');
  await dispatchUntil(client, () => connects === 1, 'on_connect');
  const expected = [];
  for (let i = 1; i <= MESSAGES; i++) {
    const text = `run ${index} message ${i}`;
    expected.push(text);
    check(api.send(client, 200, text, Buffer.byteLength(text)), 'send');
  }
  await dispatchUntil(client, () => echoes.length >= MESSAGES, 'echoes');
  // The reference server replies from a pool of threads: any order.
  if (JSON.stringify([...echoes].sort()) !== JSON.stringify(expected.sort())) {
    throw new Error(`echoes differ: ${echoes}`);
  }
  const question = `request of run ${index}`;
  check(api.request(client, 200, question, Buffer.byteLength(question), 5000, onReply, null), 'request');
  await dispatchUntil(client, () => replies.length >= 1, 'the reply');
  if (replies[0].status !== 0 || replies[0].text !== question) {
    throw new Error(`reply: ${JSON.stringify(replies[0])}`);
  }
  // Without the route, the echo goes to on_recv.
  received = [];
  check(api.onRecv(client, onRecv, null, null), 'on_recv');
  if (routeFreed !== 0) {
    throw new Error('released while still registered');
  }
  check(api.unroute(client, 200), 'unroute');
  if (routeFreed !== 1) {
    throw new Error(`unroute released the route ${routeFreed} times`);
  }
  const last = `unrouted ${index}`;
  check(api.send(client, 200, last, Buffer.byteLength(last)), 'send');
  await dispatchUntil(client, () => received.length >= 1, 'the on_recv message');
  if (received[0] !== last || echoes.length !== MESSAGES) {
    throw new Error(`on_recv: ${JSON.stringify(received)}, route: ${echoes.length}`);
  }
  check(api.disconnect(client), 'disconnect');
  const started = Date.now();
  api.free(client); // runs the due on_disconnect on this thread
  if (Date.now() - started > 1000) {
    throw new Error('free took over a second');
  }
  if (disconnects.length !== 1 || disconnects[0] !== 2) {
    throw new Error(`on_disconnect calls: ${JSON.stringify(disconnects)}`);
  }
}

(async () => {
  for (let index = 1; index <= runs; index++) {
    await run(index);
  }
  // A refused connection (port 1: nothing listens there).
  disconnects = [];
  const refused = newClient(1);
  check(api.connectAsync(refused), 'connect_async');
  await dispatchUntil(refused, () => disconnects.permanent === true, 'the permanent on_disconnect');
  if (disconnects[0] !== 1 || !disconnects.cause.includes('refused')) {
    throw new Error(`refused: ${JSON.stringify(disconnects)} ${disconnects.cause}`);
  }
  api.free(refused);
  console.log(`OK ${runs}`);
})().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
