// compat.test.js - issue 13's compatibility details as @stomp/stompjs sees
// them (over ws://): STOMP 1.1 ACK/NACK with a made-up subscription resolved
// by message-id; the RECEIPT of a SEND/ACK/NACK inside a transaction comes
// at COMMIT, not before; redelivered:true|false on every MESSAGE;
// prefetch-count bounding unacked topic messages in client ack modes; and
// RabbitMQ's ERROR texts through onStompError. Each test starts its own
// broker and stops it with SIGTERM. Run: node --test (meson test --suite
// interop).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');

const { startBroker, killAll } = require('./lib/broker');
const { withBroker } = require('./lib/with_broker');
const { need } = require('./lib/deps');
const { connect, subscribe, receipt, uniq, close } = require('./lib/stompjs');

const { Versions } = need('@stomp/stompjs');

test.after(killAll);

const T = { timeout: 30000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Publish with a receipt and wait for it.
async function publishR(c, dest, body, headers = {}) {
  const id = `p-${uniq('r', 'x').slice(3)}`;
  const got = receipt(c.client, id);
  c.client.publish({ destination: dest, body, headers: { ...headers, receipt: id } });
  await got;
}

// After connect, ERROR frames are collected instead of failing the connect.
function collectErrors(c) {
  const errors = [];
  c.client.onStompError = (f) => errors.push(f);
  c.client.onWebSocketClose = () => {};
  return errors;
}

async function waitFor(pred, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('STOMP 1.1: ACK and NACK with a made-up subscription are resolved by message-id', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const cons = await connect(url, { config: { stompVersions: new Versions(['1.1']) } });
    const prod = await connect(url);
    clients.push(cons, prod);
    assert.equal(cons.frame.headers.version, '1.1');
    const errors = collectErrors(cons);
    const q = uniq('queue', 'ack11');
    const c = await subscribe(cons.client, q, { ack: 'client-individual' });
    for (const body of ['a', 'b']) await publishR(prod, q, body);
    const [ma, mb] = await c.take(2);
    assert.equal(ma.headers.redelivered, 'false');
    // ACK a with a subscription this connection never had.
    const ra = receipt(cons.client, 'ack-a');
    cons.client.ack(ma.headers['message-id'], 'made-up', { receipt: 'ack-a' });
    await ra;
    // NACK b with one too: b comes back, redelivered.
    const rb = receipt(cons.client, 'nack-b');
    cons.client.nack(mb.headers['message-id'], 'no-such-sub', { receipt: 'nack-b' });
    await rb;
    const [, , again] = await c.take(3);
    assert.equal(again.body, 'b');
    assert.equal(again.headers.redelivered, 'true');
    again.ack();
    await publishR(prod, q, 'c');
    const [, , , mc] = await c.take(4);
    assert.equal(mc.body, 'c');
    await sleep(200);
    assert.equal(c.msgs.length, 4, 'a was acked for good: never redelivered');
    assert.deepEqual(errors, []);
  }));

test('the RECEIPT of a SEND, ACK or NACK in a transaction comes at COMMIT', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const cons = await connect(url);
    const prod = await connect(url);
    clients.push(cons, prod);
    const q = uniq('queue', 'txr');
    const c = await subscribe(cons.client, q, { ack: 'client-individual' });
    await publishR(prod, q, 'one');
    await publishR(prod, q, 'two');
    const [m1, m2] = await c.take(2);
    const seen = [];
    const watch = (client, id) => client.watchForReceipt(id, () => seen.push(id));
    watch(cons.client, 'ack-in-tx');
    watch(cons.client, 'nack-in-tx');
    watch(prod.client, 'send-in-tx');
    const stx = cons.client.begin();
    m1.ack({ transaction: stx.id, receipt: 'ack-in-tx' });
    m2.nack({ transaction: stx.id, receipt: 'nack-in-tx' });
    const ptx = prod.client.begin();
    prod.client.publish({ destination: q, body: 'three',
      headers: { transaction: ptx.id, receipt: 'send-in-tx' } });
    await sleep(500);
    assert.deepEqual(seen, [], 'no receipt before COMMIT');
    assert.equal(c.msgs.length, 2, 'nothing applied before COMMIT');
    ptx.commit();
    await waitFor(() => seen.includes('send-in-tx'), 'the SEND receipt after COMMIT');
    stx.commit();
    await waitFor(() => seen.includes('nack-in-tx'), 'the ACK/NACK receipts after COMMIT');
    assert.ok(seen.indexOf('ack-in-tx') < seen.indexOf('nack-in-tx'), seen.join(','));
    const later = (await c.take(4)).slice(2);
    const byBody = Object.fromEntries(later.map((m) => [m.body, m.headers.redelivered]));
    assert.deepEqual(byBody, { two: 'true', three: 'false' });
  }));

test('every MESSAGE carries redelivered: topic, queue, after NACK', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const s = await connect(url);
    clients.push(s);
    const t = uniq('topic', 'rd');
    const q = uniq('queue', 'rd');
    const ct = await subscribe(s.client, t);
    const cq = await subscribe(s.client, q, { ack: 'client' });
    await publishR(s, t, 'topic');
    await publishR(s, q, 'queue');
    const [mt] = await ct.take(1);
    const [mq] = await cq.take(1);
    assert.equal(mt.headers.redelivered, 'false');
    assert.equal(mq.headers.redelivered, 'false');
    mq.nack();
    const [, again] = await cq.take(2);
    assert.equal(again.body, 'queue');
    assert.equal(again.headers.redelivered, 'true');
    again.ack();
  }));

test('prefetch-count bounds unacked topic messages with client acks', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const s = await connect(url);
    const p = await connect(url);
    clients.push(s, p);
    const t = uniq('topic', 'pf');
    const c = await subscribe(s.client, t, { ack: 'client', 'prefetch-count': '2' });
    for (let i = 1; i <= 6; i++) await publishR(p, t, `m${i}`);
    const [, m2] = await c.take(2);
    await sleep(300);
    assert.equal(c.msgs.length, 2, 'only the prefetch is outstanding');
    m2.ack(); // cumulative: m1 and m2
    const [, , m3, m4] = await c.take(4);
    assert.deepEqual([m3.body, m4.body], ['m3', 'm4']);
    await sleep(200);
    assert.equal(c.msgs.length, 4);
    // NACK m4 (cumulative: m3 too): both come back, in order, redelivered.
    m4.nack();
    const back = (await c.take(6)).slice(4);
    assert.deepEqual(back.map((m) => [m.body, m.headers.redelivered]),
      [['m3', 'true'], ['m4', 'true']]);
    back[1].ack();
    const rest = (await c.take(8)).slice(6);
    assert.deepEqual(rest.map((m) => m.body), ['m5', 'm6']);
  }));

test('ERROR texts are RabbitMQ\'s, seen through onStompError', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const cases = [
      [{ destination: '/amq/queue/x' }, 'Unknown destination',
        "'/amq/queue/x' is not a valid destination.\nValid destination types are: /topic/, /queue/, /temp-queue/, /reply-queue/."],
      [{ destination: '/queue/' }, 'Invalid destination', null],
    ];
    for (const [headers, message, body] of cases) {
      const c = await connect(url);
      clients.push(c);
      const errors = collectErrors(c);
      c.client.subscribe(headers.destination, () => {}, {});
      await waitFor(() => errors.length > 0, message);
      assert.equal(errors[0].headers.message, message);
      if (body !== null) assert.equal(errors[0].body, body);
    }
    const d = await connect(url);
    clients.push(d);
    const errors = collectErrors(d);
    d.client.subscribe('/topic/dup-js', () => {}, { id: 'T_1' });
    d.client.subscribe('/topic/dup-js2', () => {}, { id: 'T_1' });
    await waitFor(() => errors.length > 0, 'Duplicated subscription identifier');
    assert.equal(errors[0].headers.message, 'Duplicated subscription identifier');
    assert.equal(errors[0].body, "A subscription identified by 'T_1' already exists.");
  }));

test('a refused login: Bad CONNECT, Access refused for user NAME, whatever was wrong', T, () =>
  withBroker({ args: ['--user', 'alice:Right-Pass-3'] }, async (b) => {
    const url = b.url('ws');
    for (const [login, passcode] of [['alice', 'wrong'], ['mallory', 'wrong'],
      ['mallory', 'Right-Pass-3']]) {
      await assert.rejects(connect(url, { headers: { login, passcode } }),
        (e) => e.message === `stompjs: ERROR Bad CONNECT: Access refused for user '${login}'`);
    }
    const ok = await connect(url, { headers: { login: 'alice', passcode: 'Right-Pass-3' } });
    await close(ok);
  }));
