'use strict';
// The client against a server on 127.0.0.1 (VELTIX_PORT) that echoes type
// 200 with its request id: the reference veltix 3.3.0 server or
// libveltix's C echo server.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const v8 = require('node:v8');
const vm = require('node:vm');
const veltix = require('..');
const { serverPort, until, next } = require('./helpers');

const ECHO = 200;
const UNANSWERED = 221; // a type both servers leave unanswered
const port = serverPort();

async function connected(options = {}) {
  const client = new veltix.Client({ host: '127.0.0.1', port, ...options });
  await client.connect();
  return client;
}

test('the library loads and reports its version', () => {
  assert.match(veltix.version(), /^\d+\.\d+\.\d+/);
});

test('the loop is a poll, or the timer where VELTIX_NODE_LOOP=timer asks for it', () => {
  const { eventLoop } = require('../lib/loop');
  assert.equal(eventLoop().constructor.name, process.env.VELTIX_NODE_LOOP === 'timer' ? 'TimerLoop' : 'PollLoop');
});

test('connect() resolves after the connect event, without blocking the event loop', async () => {
  const client = new veltix.Client({ host: '127.0.0.1', port });
  let events = 0;
  client.on('connect', () => events++);
  const connecting = client.connect();
  // It returned before the handshake: the event loop does the rest.
  assert.equal(client.connected, false);
  assert.equal(events, 0);
  await connecting;
  assert.equal(events, 1);
  assert.equal(client.connected, true);
  client.close();
});

test('a route receives the echo of every send: Buffers, typed arrays, strings, empty payloads', async () => {
  const client = await connected();
  const got = [];
  client.route(ECHO, (message) => {
    assert.equal(message.type, ECHO);
    got.push(message.text);
  });
  for (let i = 0; i < 50; i++) client.send(ECHO, `message ${i}`);
  client.send(ECHO, Buffer.from('buffer'));
  client.send(ECHO, new Uint8Array([0x61, 0x72, 0x72, 0x61, 0x79]));
  client.send(ECHO, '');
  await until(() => got.length === 53, 'the echoes');
  // The reference server answers on a thread pool, in any order.
  for (let i = 0; i < 50; i++) assert.ok(got.includes(`message ${i}`), `echo of message ${i}`);
  assert.ok(got.includes('buffer') && got.includes('array') && got.includes(''));
  assert.throws(() => client.send(ECHO, 42), TypeError);
  client.close();
});

test('request() resolves with the reply, whose payload is a copy that outlives its callback', async () => {
  const client = await connected();
  const payload = Buffer.from([0, 1, 2, 255, 32, 0]);
  const replies = await Promise.all(Array.from({ length: 20 }, () => client.request(ECHO, payload)));
  // More traffic reuses the library's buffers.
  await Promise.all(Array.from({ length: 20 }, (_, i) => client.request(ECHO, `other ${i}`)));
  for (const reply of replies) {
    assert.equal(reply.type, ECHO);
    assert.ok(reply.requestId > 0);
    assert.deepEqual(reply.payload, payload);
  }
  client.close();
});

test('a request that gets no reply rejects with VELTIX_ERR_TIMEOUT', async () => {
  const client = await connected();
  await assert.rejects(client.request(UNANSWERED, 'nobody answers', { timeoutMs: 100 }), (error) => {
    assert.ok(error instanceof veltix.VeltixError);
    assert.equal(error.code, 'VELTIX_ERR_TIMEOUT');
    assert.equal(error.status, veltix.constants.VELTIX_ERR_TIMEOUT);
    assert.ok(error.detail.length > 0 && error.message.endsWith(error.detail));
    return true;
  });
  client.close();
});

test('close() rejects a pending request with VELTIX_ERR_CLOSED', async () => {
  const client = await connected();
  const pending = client.request(UNANSWERED, 'pending', { timeoutMs: 60000 });
  client.close();
  await assert.rejects(pending, { code: 'VELTIX_ERR_CLOSED' });
});

test('ping() resolves with the round trip; stats count the traffic', async () => {
  const client = await connected();
  const rtt = await client.ping();
  assert.ok(rtt > 0 && rtt < 5000, `rtt ${rtt}`);
  await client.request(ECHO, 'counted');
  const stats = client.stats;
  assert.ok(stats.framesOut >= 2 && stats.framesIn >= 2);
  assert.ok(stats.bytesIn > 0 && stats.bytesOut > 0 && stats.lastRttMs > 0);
  client.close();
});

test('close() during a ping frees the client once the ping has returned', async () => {
  const client = await connected();
  const ping = client.ping({ timeoutMs: 5000 });
  client.close();
  await ping.then(() => {}, (error) => assert.ok(error instanceof veltix.VeltixError));
  assert.throws(() => client.send(ECHO, 'x'), /closed/);
});

test('unroute hands the type to the message event; a handler that throws is reported as error', async () => {
  const client = await connected();
  client.route(ECHO, () => assert.fail('unrouted'));
  client.unroute(ECHO);
  const seen = [];
  client.on('message', (message) => {
    seen.push(message.text);
    if (seen.length === 1) throw new Error('boom in a handler');
  });
  const failed = next(client, 'error');
  client.send(ECHO, 'first');
  client.send(ECHO, 'second');
  const [error] = await failed;
  assert.equal(error.message, 'boom in a handler');
  await until(() => seen.length === 2, 'both messages');
  client.close();
});

test('a refused connect() rejects with the cause, after a permanent disconnect event', async () => {
  const refused = new veltix.Client({ host: '127.0.0.1', port: 1 });
  const disconnected = next(refused, 'disconnect');
  await assert.rejects(refused.connect(), (error) => {
    assert.equal(error.code, 'VELTIX_ERR_CONNECT_FAILED');
    assert.match(error.detail, /refused/);
    return true;
  });
  const [info] = await disconnected;
  assert.equal(info.permanent, true);
  assert.equal(info.reason, 'error');
  refused.close();
});

test('disconnect() reports a manual, permanent end', async () => {
  const client = await connected();
  const disconnected = next(client, 'disconnect');
  client.disconnect();
  const [info] = await disconnected;
  assert.equal(info.reason, 'manual');
  assert.equal(info.permanent, true);
  client.close();
});

test('errors carry the status name and the library\'s detail; options reach the config', async () => {
  const client = new veltix.Client({ host: '127.0.0.1', port });
  assert.throws(() => client.send(ECHO, 'x'), { code: 'VELTIX_ERR_NOT_CONNECTED' });
  client.close();
  assert.throws(() => new veltix.Client({ port, bufferSize: 0 }), (error) => {
    assert.equal(error.code, 'VELTIX_ERR_INVALID_ARGUMENT');
    assert.match(error.detail, /buffer_size/);
    return true;
  });
  const configured = await connected({
    host: 'localhost', retry: 2, retryDelayMs: 10, retryDelayMaxMs: 100, retryJitter: true, replySpinUs: 0,
    liveness: { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 5000 },
  });
  assert.equal((await configured.request(ECHO, 'configured')).text, 'configured');
  configured.close();
});

test('close() is idempotent, and a closed client refuses calls', async () => {
  const client = await connected();
  client.close();
  client.close();
  assert.throws(() => client.send(ECHO, 'x'), /closed/);
});

test('a reply outside its handler is refused, with what to do instead', async () => {
  const client = await connected();
  let kept = null;
  client.route(ECHO, (message) => { kept = message; });
  client.send(ECHO, 'keep me');
  await until(() => kept !== null, 'the echo');
  assert.throws(() => client.reply(kept, ECHO, 'late'), /clone/);
  assert.equal(kept.text, 'keep me');
  client.close();
});

test('100 clients share one poll of the event loop, and each gets its echoes', async () => {
  const clients = await Promise.all(Array.from({ length: 100 }, () => connected()));
  const counts = clients.map(() => 0);
  clients.forEach((client, i) => client.route(ECHO, () => counts[i]++));
  clients.forEach((client) => { client.send(ECHO, 'a'); client.send(ECHO, 'b'); });
  await until(() => counts.every((count) => count === 2), 'every echo');
  for (const client of clients) client.close();
});

test('a client dropped without close() is collected and freed', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  const weak = await (async () => {
    const client = await connected();
    client.route(ECHO, () => {});
    client.on('message', () => {});
    return new WeakRef(client);
  })();
  // deref() keeps the target alive until the job ends: collect in a job of its own.
  const tick = () => new Promise((resolve) => setTimeout(resolve, 10));
  for (let i = 0; i < 50; i++) {
    await tick();
    gc();
    await tick();
    if (weak.deref() === undefined) break;
  }
  assert.equal(weak.deref(), undefined, 'collected');
});

test('process.exit() ends a program at once, even with a client open', () => {
  const script = `
    const veltix = require(${JSON.stringify(path.join(__dirname, '..'))});
    const client = new veltix.Client({ host: '127.0.0.1', port: ${port} });
    client.connect().then(() => process.exit(3));`;
  const started = Date.now();
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10000 });
  assert.equal(run.status, 3, run.stderr);
  assert.ok(Date.now() - started < 5000, 'it exited at once');
});

test('a program exits once its clients are closed', () => {
  const script = `
    const veltix = require(${JSON.stringify(path.join(__dirname, '..'))});
    const client = new veltix.Client({ host: '127.0.0.1', port: ${port} });
    client.connect().then(() => client.request(${ECHO}, 'bye')).then((reply) => {
      console.log(reply.text);
      client.close();
    });`;
  const started = Date.now();
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10000 });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'bye');
  assert.ok(Date.now() - started < 5000, 'it exited at once');
});
