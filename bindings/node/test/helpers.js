'use strict';
// What the binding's tests share: the server they talk to, and waiting
// for events with a bound.
const { once } = require('node:events');

/** The port of the server under test (echoing type 200), from VELTIX_PORT. */
function serverPort() {
  const port = Number(process.env.VELTIX_PORT);
  if (!port) throw new Error('set VELTIX_PORT to the port of a Veltix server on 127.0.0.1 that echoes type 200');
  return port;
}

/** Resolves when `condition()` holds, checking every few ms; rejects after `ms`. */
async function until(condition, what, ms = 10000) {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** The arguments of `emitter`'s next `event`, within `ms`. */
async function next(emitter, event, ms = 10000) {
  return once(emitter, event, { signal: AbortSignal.timeout(ms) });
}

module.exports = { serverPort, until, next };
