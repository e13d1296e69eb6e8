// with_broker.js - run one test body against a fresh broker: withBroker(opts,
// fn) starts it (startBroker(opts)), calls fn(broker, clients), then closes
// every client fn pushed to `clients` and stops the broker, asserting it
// exits 0 (its log in the message otherwise) - also when fn threw.
'use strict';
const assert = require('node:assert/strict');

const { startBroker } = require('./broker');
const { close } = require('./stompjs');

async function withBroker(opts, fn) {
  const b = await startBroker(opts);
  const clients = [];
  try {
    await fn(b, clients);
  } finally {
    for (const c of clients) await close(c);
    const code = await b.stop();
    assert.equal(code, 0, `broker exit status ${code}; log:\n${b.log()}`);
  }
}

module.exports = { withBroker };
