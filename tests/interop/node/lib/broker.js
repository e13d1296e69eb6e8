// broker.js - starts a real build/stampede ($STAMPEDE_BIN) for one test:
// listeners on 127.0.0.1 port 0, the bound ports read from the "listening on"
// lines of its stderr, stopped with SIGTERM (SIGKILL after 5 s). Every wait
// has a deadline.
'use strict';
const { spawn } = require('node:child_process');

// Brokers still running when this process ends (a test timed out, meson
// killed us) are killed too, so none is left behind.
const live = new Set();
function killAll() {
  for (const c of live) {
    try { c.kill('SIGKILL'); } catch (e) { /* already gone */ }
  }
  live.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    killAll();
    process.exit(128 + (sig === 'SIGTERM' ? 15 : 2));
  });
}

// $STAMPEDE_TEST_BROKER (a ThreadSanitizer build, scripts/dev.sh) wins over
// the STAMPEDE_BIN meson sets per test.
function bin() {
  const b = process.env.STAMPEDE_TEST_BROKER || process.env.STAMPEDE_BIN;
  if (!b) throw new Error('STAMPEDE_BIN is not set (run through meson test --suite interop)');
  return b;
}

// listen: list of URLs such as 'stomp://127.0.0.1:0', 'ws://127.0.0.1:0/ws'.
// Resolves { ports: {stomp, ws, wss}, url(scheme), log(), stop() }.
function startBroker({ listen = ['stomp://127.0.0.1:0', 'ws://127.0.0.1:0/ws'], args = [],
  timeoutMs = 5000 } = {}) {
  const argv = [];
  for (const l of listen) argv.push('--listen', l);
  argv.push('--workers', '2', ...args);
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('STAMPEDE_')) delete env[k];
  const child = spawn(bin(), argv, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  child.on('exit', () => live.delete(child));
  let log = '';
  const ports = {};
  const paths = {};
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`broker did not log its ${listen.length} listeners in ${timeoutMs} ms:\n${log}`));
    }, timeoutMs);
    const broker = {
      child, ports,
      log: () => log,
      url: (scheme) => `${scheme}://127.0.0.1:${ports[scheme]}${paths[scheme] || ''}`,
      stop: () => stop(child),
    };
    child.stderr.on('data', (d) => {
      log += d.toString();
      for (const m of log.matchAll(/listening on ([a-z+]+):\/\/[^\s]*?:(\d+)(\/[^\s]*)?\n/g)) {
        ports[m[1]] = Number(m[2]);
        if (m[3]) paths[m[1]] = m[3];
      }
      if (Object.keys(ports).length >= listen.length && !broker.ready) {
        broker.ready = true;
        clearTimeout(timer);
        resolve(broker);
      }
    });
    child.on('exit', (code, sig) => {
      if (!broker.ready) {
        clearTimeout(timer);
        reject(new Error(`broker exited at start (${code ?? sig}):\n${log}`));
      }
    });
  });
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.exitCode);
      return;
    }
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', (code, sig) => {
      clearTimeout(kill);
      resolve(code ?? sig);
    });
    child.kill('SIGTERM');
  });
}

module.exports = { startBroker, killAll };
