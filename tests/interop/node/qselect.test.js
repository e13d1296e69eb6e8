// qselect.test.js - issue 13: ActiveMQ's selector header on queue
// subscriptions, through @stomp/stompjs over ws:// against a real broker:
// disjoint selectors split a queue in order, a message nobody matches waits
// without holding up the ones behind it and goes to a later consumer that
// matches, NACK brings a message back to a matching consumer only, and a bad
// selector is an ERROR naming the position. Run: node --test (meson test
// --suite interop).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');

const { startBroker, killAll } = require('./lib/broker');
const { withBroker } = require('./lib/with_broker');
const { connect, subscribe, receipt, uniq, close, Client, WebSocket } = require('./lib/stompjs');

test.after(killAll);

const T = { timeout: 30000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Publish with a receipt on the last one, so everything is in the queue.
async function publishAll(client, dest, list) {
  for (let i = 0; i < list.length; i++) {
    const headers = { ...list[i].headers };
    if (i === list.length - 1) {
      headers.receipt = `pub-${dest}-${i}`;
      const got = receipt(client, headers.receipt);
      client.publish({ destination: dest, body: list[i].body, headers });
      await got;
    } else {
      client.publish({ destination: dest, body: list[i].body, headers });
    }
  }
}

test('disjoint selectors split a queue, each consumer in queue order', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const red = await connect(url);
    const blue = await connect(url);
    const p = await connect(url);
    clients.push(red, blue, p);
    const q = uniq('queue', 'qsel');
    const cr = await subscribe(red.client, q, { selector: "color = 'red'" });
    const cb = await subscribe(blue.client, q, { selector: "color = 'blue' OR prio > 7" });
    const list = [];
    for (let i = 0; i < 30; i++) {
      const color = ['red', 'blue', 'green'][i % 3];
      list.push({ body: `${color}-${i}`, headers: { color, prio: String(i % 10) } });
    }
    await publishAll(p.client, q, list);
    const want = (pred) => list.filter((m) => pred(m.headers)).map((m) => m.body);
    const reds = want((h) => h.color === 'red');
    const blues = want((h) => h.color !== 'red' && (h.color === 'blue' || Number(h.prio) > 7));
    assert.deepEqual((await cr.take(reds.length)).map((m) => m.body), reds);
    assert.deepEqual((await cb.take(blues.length)).map((m) => m.body), blues);
    await sleep(200);
    assert.equal(cr.msgs.length, reds.length, 'no extra message');
    assert.equal(cb.msgs.length, blues.length, 'no extra message');
    // The green ones nobody matched waited: a consumer without a selector
    // takes them, in order.
    const any = await connect(url);
    clients.push(any);
    const ca = await subscribe(any.client, q);
    const rest = list.map((m) => m.body).filter((x) => !reds.includes(x) && !blues.includes(x));
    assert.deepEqual((await ca.take(rest.length)).map((m) => m.body), rest);
  }));

test('a waiting message goes to a later consumer that matches; NACK stays with matches', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const hi = await connect(url);
    const p = await connect(url);
    clients.push(hi, p);
    const q = uniq('queue', 'qsel-nack');
    const ch = await subscribe(hi.client, q, { selector: 'prio >= 5', ack: 'client-individual' });
    await publishAll(p.client, q, [
      { body: 'low', headers: { prio: '1' } },
      { body: 'high', headers: { prio: '9' } },
    ]);
    const [m] = await ch.take(1);
    assert.equal(m.body, 'high');
    assert.equal(m.headers.redelivered, 'false');
    m.nack();
    const [, again] = await ch.take(2);
    assert.equal(again.body, 'high');
    assert.equal(again.headers.redelivered, 'true');
    again.ack();
    const lo = await connect(url);
    clients.push(lo);
    const cl = await subscribe(lo.client, q, { selector: 'prio < 5' });
    assert.deepEqual((await cl.take(1)).map((x) => x.body), ['low']);
    await sleep(200);
    assert.equal(cl.msgs.length, 1);
    assert.equal(ch.msgs.length, 2);
  }));

test('a bad selector on a queue is an ERROR naming the position', T, () =>
  withBroker({}, async (b) => {
    const url = b.url('ws');
    const err = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no ERROR within 5 s')), 5000);
      const client = new Client({
        webSocketFactory: () => new WebSocket(url, ['v12.stomp']),
        connectHeaders: { host: '/', login: 'guest', passcode: 'guest' },
        reconnectDelay: 0,
        debug: () => {},
      });
      client.onConnect = () => {
        client.subscribe(uniq('queue', 'qsel-bad'), () => {}, { selector: "color = 'red' AND" });
      };
      client.onStompError = (f) => {
        clearTimeout(t);
        client.deactivate({ force: true }).catch(() => {});
        resolve(f);
      };
      client.activate();
    });
    assert.equal(err.headers.message, 'invalid selector');
    assert.match(err.body, /at \d+/);
  }));
