// stompjs.test.js - @stomp/stompjs (npm, pinned in package-lock.json) in node
// against a real broker over ws:// (and one test over wss://): pub/sub, a
// queue with client acks (ACK, NACK, redelivery), binary bodies, heart-beats,
// receipts, 1 MiB messages, and TCP <-> WebSocket both ways. Each test starts
// its own broker and stops it with SIGTERM. Run: node --test (meson test
// --suite interop).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const { startBroker, killAll } = require('./lib/broker');
const { withBroker } = require('./lib/with_broker');
const { TcpStomp } = require('./lib/stomp_tcp');
const { connect, subscribe, receipt, uniq, close, WebSocket } = require('./lib/stompjs');

// After every test (also when one timed out), no broker is left running.
test.after(killAll);

const T = { timeout: 30000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('pub/sub: two stompjs subscribers get every message in order with its headers', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const s1 = await connect(url);
    const s2 = await connect(url);
    const p = await connect(url);
    clients.push(s1, s2, p);
    assert.equal(s1.frame.headers.version, '1.2');
    assert.equal(s1.sock.protocol, 'v12.stomp', 'the broker chose the highest subprotocol');
    const dest = uniq('topic', 'pubsub');
    const c1 = await subscribe(s1.client, dest);
    const c2 = await subscribe(s2.client, dest);
    const N = 20;
    for (let i = 0; i < N; i++) {
      p.client.publish({ destination: dest, body: `message ${i} \u00e9\u20ac`,
        headers: { 'x-index': String(i), 'x-tricky': 'a:b\nc\\d' } });
    }
    for (const c of [c1, c2]) {
      const msgs = await c.take(N);
      msgs.forEach((m, i) => {
        assert.equal(m.body, `message ${i} \u00e9\u20ac`);
        assert.equal(m.headers['x-index'], String(i));
        assert.equal(m.headers['x-tricky'], 'a:b\nc\\d', 'escaped header round trip');
        assert.equal(m.headers.destination, dest);
        assert.ok(m.headers['message-id']);
      });
    }
    assert.equal(s1.raw.binary, 0, 'UTF-8 bodies came as text frames');
    await sleep(200);
    assert.equal(c1.msgs.length, N, 'no extra message');
  }));

test('queue with client acks: ACK, NACK redelivers, unacked go to the next consumer', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const cons = await connect(url);
    const prod = await connect(url);
    clients.push(cons, prod);
    const q = uniq('queue', 'acks');
    const c = await subscribe(cons.client, q, { ack: 'client-individual' });
    for (let i = 0; i < 3; i++) prod.client.publish({ destination: q, body: `job ${i}` });
    const [m0, m1, m2] = await c.take(3);
    assert.deepEqual([m0.body, m1.body, m2.body], ['job 0', 'job 1', 'job 2']);
    m0.ack();
    m1.nack();
    const [again] = (await c.take(4)).slice(3);
    assert.equal(again.body, 'job 1', 'the NACKed message comes again');
    assert.equal(again.headers.redelivered, 'true');
    again.ack();
    // job 2 stays unacknowledged: another consumer gets it when this one leaves.
    await close(cons);
    clients.splice(clients.indexOf(cons), 1);
    const next = await connect(url);
    clients.push(next);
    const c2 = await subscribe(next.client, q, { ack: 'client' });
    const [m] = await c2.take(1);
    assert.equal(m.body, 'job 2');
    assert.equal(m.headers.redelivered, 'true');
    m.ack();
    const r = `ack-${Date.now()}`;
    const got = receipt(next.client, r);
    next.client.publish({ destination: uniq('topic', 'fence'), body: 'x', headers: { receipt: r } });
    await got;
    await sleep(200);
    assert.equal(c2.msgs.length, 1, 'job 0 and job 1 were acknowledged: not delivered again');
  }));

test('binary bodies (non-UTF-8 bytes, NULs) arrive intact in binary frames', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const sub = await connect(url);
    const pub = await connect(url);
    clients.push(sub, pub);
    const dest = uniq('topic', 'binary');
    const c = await subscribe(sub.client, dest);
    const all = Uint8Array.from({ length: 256 }, (_, i) => i); // every byte value
    const invalid = new Uint8Array([0xff, 0xfe, 0x00, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0x00]);
    pub.client.publish({ destination: dest, binaryBody: all,
      headers: { 'content-type': 'application/octet-stream' } });
    pub.client.publish({ destination: dest, binaryBody: invalid });
    const textBefore = sub.raw.text;
    const [m1, m2] = await c.take(2);
    assert.deepEqual(Buffer.from(m1.binaryBody), Buffer.from(all));
    assert.equal(m1.headers['content-length'], '256');
    assert.equal(m1.headers['content-type'], 'application/octet-stream');
    assert.deepEqual(Buffer.from(m2.binaryBody), Buffer.from(invalid));
    assert.equal(sub.raw.binary, 2, 'non-UTF-8 bodies came as binary WebSocket frames');
    assert.equal(sub.raw.text, textBefore);
  }));

test('heart-beats 200/200: negotiated, server beats arrive, the connection stays up 2 s', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const c = await connect(url, { hbIn: 200, hbOut: 200 });
    clients.push(c);
    const [sx, sy] = c.frame.headers['heart-beat'].split(',').map(Number);
    assert.ok(sx > 0 && sx <= 200, `server send interval ${sx}`);
    assert.ok(sy > 0 && sy <= 200, `server receive interval ${sy}`);
    const beats0 = c.raw.beats;
    await sleep(2000);
    assert.equal(c.raw.closed, false, 'the connection closed during the heart-beats');
    assert.ok(c.client.connected, 'stompjs no longer connected');
    const beats = c.raw.beats - beats0;
    assert.ok(beats >= 5, `${beats} server heart-beats ("\\n" frames) in 2 s at ${sx} ms`);
    const dest = uniq('topic', 'hb');
    const col = await subscribe(c.client, dest);
    c.client.publish({ destination: dest, body: 'still here' });
    const [m] = await col.take(1);
    assert.equal(m.body, 'still here');
  }));

test('receipts: SEND, SUBSCRIBE and UNSUBSCRIBE each get theirs (watchForReceipt)', T, () =>
  withBroker({}, async (b, clients) => {
    const c = await connect(b.url('ws'));
    clients.push(c);
    const dest = uniq('topic', 'receipts');
    const rs = receipt(c.client, 'sub-1');
    const sub = c.client.subscribe(dest, () => {}, { receipt: 'sub-1' });
    assert.equal((await rs).headers['receipt-id'], 'sub-1');
    const waits = [];
    for (let i = 0; i < 5; i++) {
      waits.push(receipt(c.client, `send-${i}`));
      c.client.publish({ destination: dest, body: `r${i}`, headers: { receipt: `send-${i}` } });
    }
    const frames = await Promise.all(waits);
    frames.forEach((f, i) => assert.equal(f.headers['receipt-id'], `send-${i}`));
    const ru = receipt(c.client, 'unsub-1');
    sub.unsubscribe({ receipt: 'unsub-1' });
    assert.equal((await ru).headers['receipt-id'], 'unsub-1');
  }));

test('a 1 MiB text message and a 1 MiB binary message', T, () =>
  withBroker({}, async (b, clients) => {
    const url = b.url('ws');
    const sub = await connect(url);
    const pub = await connect(url);
    clients.push(sub, pub);
    const dest = uniq('topic', 'big');
    const c = await subscribe(sub.client, dest);
    const text = 'abcdefghijklmnop'.repeat(65536); // 1 MiB
    const bin = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 7 + (i >> 10)) & 0xff);
    pub.client.publish({ destination: dest, body: text });
    pub.client.publish({ destination: dest, binaryBody: bin });
    const [m1, m2] = await c.take(2, 15000);
    assert.equal(m1.body.length, 1 << 20);
    assert.ok(m1.body === text, '1 MiB text differs');
    assert.equal(m2.binaryBody.length, 1 << 20);
    assert.ok(Buffer.from(m2.binaryBody).equals(Buffer.from(bin)), '1 MiB binary differs');
    // stompjs splitting a text frame into 16 KiB WebSocket messages (one
    // STOMP frame over 64 messages), and sending every frame binary.
    const split = await connect(url, { config: { splitLargeFrames: true,
      maxWebSocketChunkSize: 16 * 1024 } });
    const binary = await connect(url, { config: { forceBinaryWSFrames: true } });
    clients.push(split, binary);
    const sent0 = split.raw.sent;
    split.client.publish({ destination: dest, body: text });
    assert.ok(split.raw.sent - sent0 >= 64, `one 1 MiB SEND went in ${split.raw.sent - sent0} messages`);
    binary.client.publish({ destination: dest, body: text });
    assert.equal(binary.raw.sentBinary, binary.raw.sent, 'forceBinaryWSFrames: all binary');
    const [, , m3, m4] = await c.take(4, 15000);
    assert.ok(m3.body === text, '1 MiB text sent in 16 KiB pieces differs');
    assert.ok(m4.body === text, '1 MiB text sent in a binary frame differs');
  }));

test('TCP publisher -> stompjs subscriber and stompjs publisher -> TCP subscriber', T, () =>
  withBroker({}, async (b, clients) => {
    const ws = await connect(b.url('ws'));
    clients.push(ws);
    const tcp = await TcpStomp.connect(b.ports.stomp);
    try {
      const topic = uniq('topic', 'bridge');
      const col = await subscribe(ws.client, topic);
      await tcp.sendSync('SEND', { destination: topic, 'content-type': 'text/plain' },
        'from tcp \u00fc');
      const bytes = Buffer.from([0, 0xff, 0x80, 10, 0, 0xfe]);
      await tcp.sendSync('SEND', { destination: topic }, bytes);
      const [t1, t2] = await col.take(2);
      assert.equal(t1.body, 'from tcp \u00fc');
      assert.ok(Buffer.from(t2.binaryBody).equals(bytes), 'binary body from TCP differs');

      await tcp.sendSync('SUBSCRIBE', { destination: topic, id: 't1' });
      ws.client.publish({ destination: topic, body: 'from ws' });
      ws.client.publish({ destination: topic, binaryBody: new Uint8Array([1, 0, 0xff]) });
      const f1 = await tcp.next();
      assert.equal(f1.command, 'MESSAGE');
      assert.equal(f1.body.toString(), 'from ws');
      const f2 = await tcp.next();
      assert.ok(f2.body.equals(Buffer.from([1, 0, 0xff])));

      // A queue both ways.
      const q = uniq('queue', 'bridge');
      ws.client.publish({ destination: q, body: 'q from ws' });
      await tcp.sendSync('SUBSCRIBE', { destination: q, id: 'q1', ack: 'client-individual' });
      const qm = await tcp.next();
      assert.equal(qm.body.toString(), 'q from ws');
      await tcp.sendSync('ACK', { id: qm.headers.ack });
      await tcp.sendSync('UNSUBSCRIBE', { id: 'q1' });
      const qc = await subscribe(ws.client, q, { ack: 'client-individual' });
      await tcp.sendSync('SEND', { destination: q }, 'q from tcp');
      const [wm] = await qc.take(1);
      assert.equal(wm.body, 'q from tcp');
      wm.ack();
    } finally {
      tcp.close();
    }
  }));

test('wss:// with a self-signed certificate made at test time', T, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stampede-wss-'));
  try {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt',
      'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    { stdio: 'ignore', timeout: 10000 });
    await withBroker({ listen: ['stomp://127.0.0.1:0', 'wss://127.0.0.1:0/ws'],
      args: ['--tls-cert', cert, '--tls-key', key] }, async (b, clients) => {
      const url = b.url('wss');
      assert.match(url, /^wss:\/\/127\.0\.0\.1:\d+\/ws$/);
      // Without trusting the certificate the TLS handshake fails.
      await assert.rejects(connect(url, { timeoutMs: 3000 }), /WebSocket|closed|CONNECTED/);
      const opts = { wsOptions: { rejectUnauthorized: false } };
      const sub = await connect(url, opts);
      const pub = await connect(url, opts);
      clients.push(sub, pub);
      assert.equal(sub.frame.headers.version, '1.2');
      const dest = uniq('topic', 'wss');
      const c = await subscribe(sub.client, dest);
      pub.client.publish({ destination: dest, body: 'over TLS' });
      pub.client.publish({ destination: dest, binaryBody: new Uint8Array([0xde, 0xad, 0xbe, 0xef]) });
      const [m1, m2] = await c.take(2);
      assert.equal(m1.body, 'over TLS');
      assert.ok(Buffer.from(m2.binaryBody).equals(Buffer.from([0xde, 0xad, 0xbe, 0xef])));
      // /healthz and /metrics over TLS on the same listener: the two wss
      // clients (and the request itself) counted as transport "wss".
      const get = (p) => new Promise((resolve, reject) => {
        const req = https.get(`https://127.0.0.1:${b.ports.wss}${p}`,
          { rejectUnauthorized: false, timeout: 3000 }, (res) => {
            let body = '';
            res.on('data', (d) => { body += d; });
            res.on('end', () => resolve({ status: res.statusCode, body }));
          });
        req.on('timeout', () => req.destroy(new Error(`GET ${p} timed out`)));
        req.on('error', reject);
      });
      const h = await get('/healthz');
      assert.equal(h.status, 200);
      assert.equal(JSON.parse(h.body).status, 'ok');
      const m = await get('/metrics');
      assert.equal(m.status, 200);
      const wss = Number((m.body.match(/^stampede_connections\{transport="wss"\} (\d+)$/m) || [])[1]);
      assert.ok(wss >= 3, `stampede_connections{transport="wss"} = ${wss} with 2 clients + 1 request`);
      // TCP -> wss too.
      const tcp = await TcpStomp.connect(b.ports.stomp);
      await tcp.sendSync('SEND', { destination: dest }, 'from tcp to wss');
      tcp.close();
      const [, , m3] = await c.take(3);
      assert.equal(m3.body, 'from tcp to wss');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a plain ws client is refused a wrong path with 404 (ws package)', T, () =>
  withBroker({}, async (b) => {
    const url = `ws://127.0.0.1:${b.ports.ws}/nope`;
    const status = await new Promise((resolve, reject) => {
      const s = new WebSocket(url, ['v12.stomp']);
      const t = setTimeout(() => reject(new Error('no answer in 3 s')), 3000);
      s.on('unexpected-response', (req, res) => { clearTimeout(t); resolve(res.statusCode); s.terminate(); });
      s.on('open', () => { clearTimeout(t); reject(new Error('opened')); });
      s.on('error', () => {});
    });
    assert.equal(status, 404);
  }));
