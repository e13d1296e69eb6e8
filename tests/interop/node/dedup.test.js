// dedup.test.js - publish de-duplication (issue 13) with @stomp/stompjs in
// node over ws://: a SEND whose dedup-id its destination already saw within
// --dedup-window is receipted but not delivered again (queue and topic), the
// header reaches subscribers, ids are per destination, the window ends, and
// a persistent SEND's id survives a restart with --data-dir. Each test starts
// its own broker and stops it with SIGTERM. Run: node --test.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { startBroker, killAll } = require('./lib/broker');
const { withBroker } = require('./lib/with_broker');
const { connect, subscribe, receipt, uniq, close } = require('./lib/stompjs');

test.after(killAll);

const T = { timeout: 30000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let rseq = 0;
// Publish with a receipt and wait for it (it comes for a duplicate too).
async function publish(client, destination, body, headers = {}) {
  const id = `send-${++rseq}`;
  const got = receipt(client, id);
  client.publish({ destination, body, headers: { ...headers, receipt: id } });
  await got;
}

for (const kind of ['queue', 'topic']) {
  test(`a repeated dedup-id on a ${kind} is receipted but delivered once`, T, () =>
    withBroker({}, async (b, clients) => {
      const s = await connect(b.url('ws'));
      const p = await connect(b.url('ws'));
      clients.push(s, p);
      const dest = uniq(kind, 'dedup');
      const c = await subscribe(s.client, dest);
      await publish(p.client, dest, 'first', { 'dedup-id': 'order-1' });
      await publish(p.client, dest, 'again', { 'dedup-id': 'order-1' });
      await publish(p.client, dest, 'second', { 'dedup-id': 'order-2' });
      await publish(p.client, dest, 'plain');
      await publish(p.client, dest, 'plain');
      const msgs = await c.take(4);
      assert.deepEqual(msgs.map((m) => m.body), ['first', 'second', 'plain', 'plain']);
      assert.equal(msgs[0].headers['dedup-id'], 'order-1');
      await sleep(200);
      assert.equal(c.msgs.length, 4);
    }));
}

test('ids are per destination', T, () =>
  withBroker({}, async (b, clients) => {
    const s = await connect(b.url('ws'));
    const p = await connect(b.url('ws'));
    clients.push(s, p);
    const qa = uniq('queue', 'a');
    const qb = uniq('queue', 'b');
    const ca = await subscribe(s.client, qa);
    const cb = await subscribe(s.client, qb);
    await publish(p.client, qa, 'to-a', { 'dedup-id': 'same' });
    await publish(p.client, qb, 'to-b', { 'dedup-id': 'same' });
    assert.equal((await ca.take(1))[0].body, 'to-a');
    assert.equal((await cb.take(1))[0].body, 'to-b');
  }));

test('an id is new again once the window has passed', T, () =>
  withBroker({ args: ['--dedup-window', '300ms'] }, async (b, clients) => {
    const s = await connect(b.url('ws'));
    const p = await connect(b.url('ws'));
    clients.push(s, p);
    const dest = uniq('queue', 'exp');
    const c = await subscribe(s.client, dest);
    await publish(p.client, dest, 'one', { 'dedup-id': 'e' });
    await publish(p.client, dest, 'dup', { 'dedup-id': 'e' });
    await sleep(500);
    await publish(p.client, dest, 'two', { 'dedup-id': 'e' });
    assert.deepEqual((await c.take(2)).map((m) => m.body), ['one', 'two']);
  }));

test('a persistent id survives a restart with --data-dir', T, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stampede-stompjs-dedup-'));
  const dest = uniq('queue', 'dur');
  try {
    await withBroker({ args: ['--data-dir', dir] }, async (b, clients) => {
      const p = await connect(b.url('ws'));
      clients.push(p);
      await publish(p.client, dest, 'kept', { persistent: 'true', 'dedup-id': 'd1' });
    });
    await withBroker({ args: ['--data-dir', dir] }, async (b, clients) => {
      const p = await connect(b.url('ws'));
      const s = await connect(b.url('ws'));
      clients.push(p, s);
      await publish(p.client, dest, 'dup', { persistent: 'true', 'dedup-id': 'd1' });
      await publish(p.client, dest, 'new', { persistent: 'true', 'dedup-id': 'd2' });
      const c = await subscribe(s.client, dest);
      assert.deepEqual((await c.take(2)).map((m) => m.body), ['kept', 'new']);
      await sleep(200);
      assert.equal(c.msgs.length, 2);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
