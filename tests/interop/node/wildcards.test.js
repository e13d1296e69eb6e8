// wildcards.test.js - @stomp/stompjs (over ws://) subscribing to
// RabbitMQ-style topic patterns (issue 13): `*` takes one word, `#` zero or
// more, topics owned by both workers, the real destination and the pattern
// subscription's id on each MESSAGE, one MESSAGE per matching subscription
// in publish order, selectors, unsubscribe, and the ERROR for a pattern of
// more than 128 words. Each test starts its own broker (2 workers) and stops
// it with SIGTERM. Run: node --test (meson test --suite interop).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');

const { startBroker, killAll } = require('./lib/broker');
const { withBroker } = require('./lib/with_broker');
const { connect, subscribe, receipt, close } = require('./lib/stompjs');

test.after(killAll);

const T = { timeout: 30000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let seq = 0;
const prefix = () => `wc${process.pid}x${++seq}`;

// Publish with a receipt and wait for it: everything before it took effect.
async function publish(client, destination, body, headers = {}) {
  const id = `pub-${++seq}`;
  const got = receipt(client, id);
  client.publish({ destination, body, headers: { ...headers, receipt: id } });
  await got;
}

test('`*` and `#` get the matching topics of every owner, with the real destination', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const s = await connect(url);
    const p = await connect(url);
    clients.push(s, p);
    const pre = prefix();
    const star = await subscribe(s.client, `/topic/${pre}.*.c`, { id: 'star' });
    const hash = await subscribe(s.client, `/topic/${pre}.#`, { id: 'hash' });
    const topics = [];
    for (let i = 0; i < 16; i++) topics.push(`/topic/${pre}.${i}.c`);
    const others = [`/topic/${pre}`, `/topic/${pre}.c`, `/topic/${pre}.a.b.c`];
    for (const t of [...topics, ...others]) await publish(p.client, t, t);
    const got = await star.take(topics.length);
    assert.deepEqual(new Set(got.map((m) => m.headers.destination)), new Set(topics));
    for (const m of got) {
      assert.equal(m.body, m.headers.destination);
      assert.equal(m.headers.subscription, 'star');
    }
    const all = await hash.take(topics.length + others.length);
    assert.deepEqual(new Set(all.map((m) => m.headers.destination)),
      new Set([...topics, ...others]), '`#` also as zero words');
    assert.ok(all.every((m) => m.headers.subscription === 'hash'));
    await sleep(200);
    assert.equal(star.msgs.length, topics.length, 'nothing more for `*`');
    assert.equal(hash.msgs.length, topics.length + others.length, 'nothing more for `#`');
  }));

test('one MESSAGE per matching subscription, each in publish order', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const s = await connect(url);
    const p = await connect(url);
    clients.push(s, p);
    const pre = prefix();
    const t = `/topic/${pre}.x`;
    const subs = [
      await subscribe(s.client, t, { id: 'exact' }),
      await subscribe(s.client, `/topic/${pre}.*`, { id: 'star' }),
      await subscribe(s.client, '/topic/#', { id: 'all' }),
    ];
    const N = 40;
    for (let i = 0; i < N; i++) p.client.publish({ destination: t, body: String(i) });
    await publish(p.client, t, 'last');
    for (const c of subs) {
      const msgs = await c.take(N + 1);
      assert.deepEqual(msgs.map((m) => m.body),
        [...Array(N).keys()].map(String).concat(['last']));
    }
  }));

test('selectors filter a pattern subscription; unsubscribe stops it', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const s = await connect(url);
    const p = await connect(url);
    clients.push(s, p);
    const pre = prefix();
    const c = await subscribe(s.client, `/topic/${pre}.#`, { id: 'sel', selector: "color = 'red'" });
    await publish(p.client, `/topic/${pre}.a`, 'blue', { color: 'blue' });
    await publish(p.client, `/topic/${pre}.b`, 'red', { color: 'red' });
    const [m] = await c.take(1);
    assert.equal(m.body, 'red');
    assert.equal(m.headers.destination, `/topic/${pre}.b`);
    c.sub.unsubscribe();
    await publish(s.client, `/topic/${pre}-barrier`, 'x'); // the UNSUBSCRIBE took effect
    await publish(p.client, `/topic/${pre}.b`, 'red again', { color: 'red' });
    await sleep(200);
    assert.equal(c.msgs.length, 1);
  }));

test('a pattern of 129 words gets an ERROR', T, () =>
  withBroker({}, async (b, clients) => {
    const s = await connect(b.url('ws'));
    clients.push(s);
    const err = new Promise((resolve) => { s.client.onStompError = resolve; });
    s.client.subscribe(`/topic/${Array(129).fill('*').join('.')}`, () => {}, { id: 'long' });
    const f = await Promise.race([err, sleep(3000).then(() => null)]);
    assert.ok(f, 'no ERROR within 3 s');
    assert.equal(f.headers.message, 'pattern too long');
  }));
