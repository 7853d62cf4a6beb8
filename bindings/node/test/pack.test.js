'use strict';
// The package as users get it: `npm pack` with the library in prebuilds/,
// installed into an empty folder, where the README's example runs (with
// no VELTIX_LIBRARY: it must find its own copy) and its TypeScript
// declarations compile in strict mode against a program that uses them.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { serverPort } = require('./helpers');

const PACKAGE = path.join(__dirname, '..');
const FILE_NAME = { win32: 'veltix.dll', darwin: 'libveltix.dylib' }[process.platform] || 'libveltix.so';

function npm(args, cwd) {
  return execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8' });
}

/** The first ```js block of the README. */
function readmeExample() {
  const readme = fs.readFileSync(path.join(PACKAGE, 'README.md'), 'utf8');
  return readme.match(/```js\n([\s\S]*?)```/)[1];
}

test('the packed package installs, finds its library, and runs the README example', { timeout: 240000 }, () => {
  const library = process.env.VELTIX_LIBRARY;
  assert.ok(library, 'set VELTIX_LIBRARY to the libveltix to pack');
  const port = serverPort();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'veltix-pack-'));
  try {
    const staged = path.join(work, 'package');
    fs.mkdirSync(staged);
    for (const entry of ['package.json', 'index.js', 'index.d.ts', 'lib', 'README.md']) {
      fs.cpSync(path.join(PACKAGE, entry), path.join(staged, entry), { recursive: true });
    }
    const prebuilds = path.join(staged, 'prebuilds', `${process.platform}-${process.arch}`);
    fs.mkdirSync(prebuilds, { recursive: true });
    fs.copyFileSync(library, path.join(prebuilds, FILE_NAME));
    const tarball = npm(['pack', '--pack-destination', work], staged).trim().split('\n').pop();

    const app = path.join(work, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), '{"name": "app", "version": "1.0.0", "private": true}\n');
    npm(['install', path.join(work, tarball), 'typescript@5', '@types/node@20'], app);
    assert.ok(fs.existsSync(path.join(app, 'node_modules', 'veltix', 'prebuilds', `${process.platform}-${process.arch}`, FILE_NAME)));

    fs.writeFileSync(path.join(app, 'example.js'), readmeExample());
    const env = { ...process.env };
    delete env.VELTIX_LIBRARY;
    delete env.NODE_PATH;
    const output = execFileSync(process.execPath, ['example.js', String(port)], { cwd: app, env, encoding: 'utf8', timeout: 30000 });
    assert.match(output, /^echo: hello$/m);
    assert.match(output, /^reply: are you there\?$/m);
    assert.match(output, /^ping: \d+\.\d{3} ms$/m);

    fs.writeFileSync(path.join(app, 'typed.ts'), `
      import { Client, Server, Message, VeltixError, DisconnectInfo } from 'veltix';
      async function use(): Promise<number> {
        const client = new Client({ host: '127.0.0.1', port: 8080, liveness: { heartbeatIntervalMs: 100 } });
        client.on('disconnect', (info: DisconnectInfo) => console.log(info.reason, info.detail));
        client.route(200, (message: Message) => client.reply(message, 201, message.payload));
        await client.connect();
        const reply: Message = await client.request(200, 'x', { timeoutMs: 100 });
        const server = new Server({ port: 0 });
        server.on('message', (peer: number, message: Message) => server.send(peer, message.type, message.text));
        const port: number = server.listen();
        server.close();
        client.close();
        return reply.payload.length + port + (await client.ping());
      }
      use().catch((error: unknown) => { if (error instanceof VeltixError) console.log(error.code, error.detail); });
    `);
    execFileSync(process.execPath, [path.join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '--strict', '--noEmit',
      '--target', 'es2020', '--module', 'commonjs', '--esModuleInterop', 'typed.ts'], { cwd: app, encoding: 'utf8' });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
