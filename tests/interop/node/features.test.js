// features.test.js - @stomp/stompjs (node, over ws://) with issue 13's temp
// queues (RPC: reply-to:/temp-queue/NAME, replies through stompjs's
// onUnhandledMessage since the automatic subscription is the broker's, the
// way RxStomp's RPC uses RabbitMQ) and durable topic subscriptions in
// RabbitMQ's dialect (durable:true, auto-delete:false, an id) and ActiveMQ's
// (client-id + activemq.subscriptionName). Each test starts its own broker.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');

const { startBroker, killAll } = require('./lib/broker');
const { withBroker } = require('./lib/with_broker');
const { connect, subscribe, receipt, uniq, close } = require('./lib/stompjs');

test.after(killAll);

const T = { timeout: 30000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const RABBIT = { durable: 'true', 'auto-delete': 'false' };

// Wait until pred() holds, for at most ms.
async function until(pred, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('RPC through a temp queue: the reply comes back on /temp-queue/NAME', T, () =>
  withBroker({}, async (b, clients) => {
    const server = await connect(b.url('ws'));
    const caller = await connect(b.url('ws'));
    clients.push(server, caller);
    const rpc = uniq('queue', 'rpc');
    const requests = await subscribe(server.client, rpc);
    const replies = [];
    caller.client.onUnhandledMessage = (m) => replies.push(m);
    for (let i = 0; i < 3; i++) {
      caller.client.publish({ destination: rpc, body: `q${i}`,
        headers: { 'reply-to': '/temp-queue/rpc-replies', 'correlation-id': String(i) } });
      const req = (await requests.take(i + 1))[i];
      assert.match(req.headers['reply-to'], /^\/reply-queue\/stp\.gen-[A-Za-z0-9_-]{22}$/);
      server.client.publish({ destination: req.headers['reply-to'], body: `a${i}`,
        headers: { 'correlation-id': req.headers['correlation-id'] } });
      await until(() => replies.length === i + 1, `reply ${i}`);
      assert.equal(replies[i].body, `a${i}`);
      assert.equal(replies[i].headers.subscription, '/temp-queue/rpc-replies');
      assert.equal(replies[i].headers['correlation-id'], String(i));
    }
  }));

test('RabbitMQ durable subscription: kept while away, delivered in order on return', T, () =>
  withBroker({}, async (b, clients) => {
    const topic = uniq('topic', 'dsub');
    let sub = await connect(b.url('ws'));
    const pub = await connect(b.url('ws'));
    clients.push(pub);
    await subscribe(sub.client, topic, { id: 'dash', ...RABBIT });
    await close(sub);
    for (let i = 0; i < 10; i++) pub.client.publish({ destination: topic, body: `e${i}` });
    const r = receipt(pub.client, 'pub-done');
    pub.client.publish({ destination: '/queue/sync', body: '', headers: { receipt: 'pub-done' } });
    await r;
    sub = await connect(b.url('ws'));
    clients.push(sub);
    const c = await subscribe(sub.client, topic, { id: 'dash', ...RABBIT });
    const got = await c.take(10);
    assert.deepEqual(got.map((m) => m.body), [...Array(10).keys()].map((i) => `e${i}`));
    assert.ok(got.every((m) => m.headers.subscription === 'dash' && m.headers.destination === topic));
    // A second holder gets an ERROR.
    const other = await connect(b.url('ws'));
    clients.push(other);
    const err = new Promise((resolve) => { other.client.onStompError = resolve; });
    other.client.subscribe(topic, () => {}, { id: 'dash', ...RABBIT });
    assert.equal((await err).headers.message, 'durable subscription in use');
  }));

test('ActiveMQ durable subscription: client-id plus activemq.subscriptionName', T, () =>
  withBroker({}, async (b, clients) => {
    const topic = uniq('topic', 'amq');
    const amq = { 'activemq.subscriptionName': 'ledger' };
    let sub = await connect(b.url('ws'), { headers: { 'client-id': 'books' } });
    await subscribe(sub.client, topic, { ack: 'client-individual', ...amq });
    await close(sub);
    const pub = await connect(b.url('ws'));
    clients.push(pub);
    for (let i = 0; i < 4; i++) pub.client.publish({ destination: topic, body: `t${i}` });
    const r = receipt(pub.client, 'done');
    pub.client.publish({ destination: '/queue/sync', body: '', headers: { receipt: 'done' } });
    await r;
    sub = await connect(b.url('ws'), { headers: { 'client-id': 'books' } });
    clients.push(sub);
    const c = await subscribe(sub.client, topic, { ack: 'client-individual', ...amq });
    const got = await c.take(4);
    assert.deepEqual(got.map((m) => m.body), ['t0', 't1', 't2', 't3']);
    got.forEach((m) => m.ack());
    // Removed with UNSUBSCRIBE naming it: nothing is kept afterwards.
    const u = receipt(sub.client, 'gone');
    c.sub.unsubscribe({ ...amq, receipt: 'gone' });
    await u;
    // Receipted: it reaches the topic before the subscription is made again.
    const l = receipt(pub.client, 'lost');
    pub.client.publish({ destination: topic, body: 'lost', headers: { receipt: 'lost' } });
    await l;
    const c2 = await subscribe(sub.client, topic, { ack: 'auto', ...amq });
    await sleep(200);
    assert.equal(c2.msgs.length, 0);
  }));
