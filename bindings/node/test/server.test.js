'use strict';
// The server, against the binding's own client (in this process) and
// against the reference veltix 3.3.0 client (tests/support/ref_client.py,
// run by the Python in VELTIX_TEST_PYTHON).
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const readline = require('node:readline');
const { spawn } = require('node:child_process');
const v8 = require('node:v8');
const vm = require('node:vm');
const veltix = require('..');
const { until, next } = require('./helpers');

const ECHO = 200;
const ASK = 212;
const ANSWER = 213;
const BROADCAST = 203;
const REFERENCE_CLIENT = path.join(__dirname, '..', '..', '..', 'tests', 'support', 'ref_client.py');

/** A listening server on a free port of 127.0.0.1 that echoes type 200. */
function echoServer() {
  const server = new veltix.Server({ host: '127.0.0.1', port: 0 });
  server.route(ECHO, (peer, message) => server.reply(peer, message, ECHO, message.payload));
  server.listen();
  return server;
}

/** A client of `server`, connected, and the peer id the server gave it. */
async function joined(server) {
  const client = new veltix.Client({ host: '127.0.0.1', port: server.port });
  const connected = next(server, 'connect');
  await client.connect();
  const [peer] = await connected;
  return { client, peer };
}

test('a server answers the binding\'s client, and sees it come and go', async () => {
  const server = echoServer();
  const { client, peer } = await joined(server);
  assert.deepEqual(server.peers(), [peer]);
  assert.equal(server.clientCount, 1);
  const address = server.peerAddress(peer);
  assert.equal(address.address, '127.0.0.1');
  assert.ok(address.port > 0);
  assert.equal((await client.request(ECHO, 'hello')).text, 'hello');
  assert.ok((await server.ping(peer)) > 0);
  const left = next(server, 'disconnect');
  client.close();
  assert.deepEqual(await left, [peer, 'peer_closed']);
  server.close();
});

test('requests, broadcasts, tags and closeClient reach the binding\'s client', async () => {
  const server = echoServer();
  const { client, peer } = await joined(server);
  const broadcasts = [];
  client.route(ASK, (message) => client.reply(message, ANSWER, `answer:${message.text}`));
  client.route(BROADCAST, (message) => broadcasts.push(message.text));
  const answer = await server.request(peer, ASK, 'q');
  assert.equal(answer.type, ANSWER);
  assert.equal(answer.text, 'answer:q');
  assert.equal(server.broadcast(BROADCAST, 'to all'), 1);
  assert.equal(server.broadcast(BROADCAST, 'to nobody', [peer]), 0);
  await until(() => broadcasts.length === 1, 'the broadcast');
  assert.deepEqual(broadcasts, ['to all']);

  server.setTag(peer, 'room', 'lobby');
  assert.equal(server.getTag(peer, 'room'), 'lobby');
  assert.deepEqual(server.peersWithTag('room', 'lobby'), [peer]);
  assert.deepEqual(server.peersWithTag('room', 'hall'), []);
  assert.deepEqual(server.peersWithTag('room'), [peer]);
  assert.equal(server.removeTag(peer, 'room'), true);
  assert.equal(server.removeTag(peer, 'room'), false);
  assert.equal(server.getTag(peer, 'room'), undefined);

  const ended = next(client, 'disconnect');
  server.closeClient(peer);
  const [info] = await ended;
  assert.equal(info.reason, 'server_closed');
  client.close();
  server.close();
});

test('ioThreads reaches the config: two loops serve two clients and broadcast to both', async () => {
  assert.throws(() => new veltix.Server({ port: 0, ioThreads: 257 }), /io_threads/);
  const server = new veltix.Server({ host: '127.0.0.1', port: 0, ioThreads: 2 });
  server.route(ECHO, (peer, message) => server.reply(peer, message, ECHO, message.payload));
  server.listen();
  const joinedBoth = [await joined(server), await joined(server)];
  const got = [];
  for (const { client } of joinedBoth) {
    client.route(BROADCAST, (message) => got.push(message.text));
  }
  const echoes = await Promise.all(joinedBoth.map(({ client }, index) => client.request(ECHO, `echo ${index}`)));
  assert.deepEqual(echoes.map((reply) => reply.text), ['echo 0', 'echo 1']);
  assert.equal(server.broadcast(BROADCAST, 'to both'), 2);
  await until(() => got.length === 2, 'the broadcasts');
  assert.deepEqual(got, ['to both', 'to both']);
  for (const { client } of joinedBoth) client.close();
  server.close();
});

test('a message kept with clone() can be answered after its handler', async () => {
  const server = echoServer();
  const { client, peer } = await joined(server);
  let kept = null;
  client.route(ASK, (message) => { kept = message.clone(); });
  const answer = server.request(peer, ASK, 'later');
  await until(() => kept !== null, 'the request');
  client.reply(kept, ANSWER, 'answered later');
  kept.free();
  assert.equal((await answer).text, 'answered later');
  assert.throws(() => client.reply(kept, ANSWER, 'again'), /freed/);
  client.close();
  server.close();
});

test('a client dropped without close() is freed by the collector: the server sees it leave', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  const server = echoServer();
  const peer = await (async () => (await joined(server)).peer)();
  const left = next(server, 'disconnect', 10000);
  const tick = () => new Promise((resolve) => setTimeout(resolve, 10));
  let gone = false;
  left.then(() => { gone = true; }, () => {});
  for (let i = 0; i < 100 && !gone; i++) {
    await tick();
    gc();
  }
  assert.deepEqual(await left, [peer, 'peer_closed']);
  server.close();
});

test('the PROXY protocol\'s trust list reaches the config, which checks it', () => {
  assert.throws(() => new veltix.Server({ port: 0, proxyProtocolFrom: 'not an address' }), (error) => {
    assert.equal(error.code, 'VELTIX_ERR_INVALID_ARGUMENT');
    assert.match(error.detail, /proxy_protocol_from/);
    return true;
  });
  const server = new veltix.Server({ host: '127.0.0.1', port: 0, proxyProtocolFrom: '10.0.0.0/8' });
  assert.ok(server.listen() > 0);
  server.close();
});

test('cluster settings reach the config; an unreachable bus is reported and local sends go on', async () => {
  assert.throws(() => new veltix.Server({ port: 0, clusterBus: 'rediss://127.0.0.1:1' }), (error) => {
    assert.equal(error.code, 'VELTIX_ERR_INVALID_ARGUMENT');
    assert.match(error.detail, /cluster_bus/);
    return true;
  });
  // Nothing listens on port 1: the first attempt fails.
  const server = new veltix.Server({
    host: '127.0.0.1', port: 0, clusterBus: 'redis://127.0.0.1:1', clusterName: 'node', clusterNodeId: 42,
  });
  const state = next(server, 'clusterState');
  server.listen();
  const { client, peer } = await joined(server);
  assert.deepEqual(await state, [false]);
  assert.equal(Math.floor(peer / 2 ** 37), 42);
  const stats = server.clusterStats;
  assert.equal(stats.nodeId, 42);
  assert.equal(stats.connected, false);
  server.setTag(peer, 'room', 'red');
  const got = next(client, 'message');
  assert.equal(server.sendToTag('room', 'red', 220, 'to the room'), 1);
  assert.equal(server.sendToTag('room', null, 221, 'any value'), 1);
  assert.equal(server.sendToTag('room', 'blue', 222, 'nobody'), 0);
  assert.equal((await got)[0].text, 'to the room');
  assert.deepEqual(server.clusterNodes(), { nodes: [{ nodeId: 42, clients: 1 }], total: 1 });
  assert.equal(server.clusterStats.dropped, stats.dropped + 3);
  client.close();
  server.close();
});

test('drain() closes the connections and stops listening', async () => {
  const server = echoServer();
  const { client, peer } = await joined(server);
  const left = next(server, 'disconnect');
  const ended = next(client, 'disconnect');
  server.drain(0);
  assert.deepEqual(await left, [peer, 'manual']);
  await ended;
  const late = new veltix.Client({ host: '127.0.0.1', port: server.port });
  await assert.rejects(late.connect(), { code: 'VELTIX_ERR_CONNECT_FAILED' });
  late.close();
  client.close();
  server.close();
});

test('the reference client gets answers, requests and broadcasts from the binding\'s server', async () => {
  const python = process.env.VELTIX_TEST_PYTHON;
  assert.ok(python, 'set VELTIX_TEST_PYTHON to a Python with veltix 3.3.0');
  const server = echoServer();
  const connected = next(server, 'connect');
  const reference = spawn(python, [REFERENCE_CLIENT, '--port', String(server.port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = [];
  // Its JSON lines; the reference's own log lines share stdout.
  readline.createInterface({ input: reference.stdout }).on('line', (line) => {
    if (line.startsWith('{')) lines.push(JSON.parse(line));
  });
  reference.stdin.write('{"op": "connect"}\n{"op": "request", "type": 200, "text": "hello"}\n');
  const [peer] = await connected;
  const answer = await server.request(peer, ASK, 'async');
  assert.equal(answer.type, ANSWER);
  assert.equal(answer.text, 'answer:async');
  assert.ok((await server.ping(peer)) > 0);
  assert.equal(server.broadcast(BROADCAST, 'to python'), 1);
  await until(() => lines.some((line) => line.event === 'recv' && line.text === 'to python')
    && lines.some((line) => line.op === 'request'), 'the reference client\'s lines');
  const request = lines.find((line) => line.op === 'request');
  assert.equal(request.reply.text, 'hello');
  assert.equal(request.reply.type, ECHO);
  const exited = next(reference, 'exit');
  reference.stdin.end();
  await exited;
  server.close();
});
