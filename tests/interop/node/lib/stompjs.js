// stompjs.js - @stomp/stompjs clients over the `ws` package for the node
// tests: connect with a deadline, subscribe with a receipt, collect messages
// with a deadline. Every wait is bounded.
'use strict';
const { need } = require('./deps');

const { Client } = need('@stomp/stompjs');
const WebSocket = need('ws');
// stompjs v7 needs TextEncoder/TextDecoder (node has them) and a WebSocket
// implementation: it only uses our factory, but keep the global for safety.
Object.assign(global, { WebSocket });

const PROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

// config: more stompjs Client options (e.g. splitLargeFrames).
// Resolves { client, frame (CONNECTED), sock (the ws socket), raw } where raw
// counts the server's WebSocket messages: raw.text, raw.binary, raw.beats
// (messages that are exactly "\n"), raw.sent / raw.sentBinary (messages the
// client sent).
function connect(url, { hbIn = 0, hbOut = 0, wsOptions = {}, headers = {}, timeoutMs = 5000,
  config = {} } = {}) {
  const raw = { text: 0, binary: 0, beats: 0, closed: false, sent: 0, sentBinary: 0 };
  let sock = null;
  const client = new Client({
    webSocketFactory: () => {
      sock = new WebSocket(url, PROTOCOLS, wsOptions);
      sock.on('message', (data, isBinary) => {
        if (isBinary) raw.binary++;
        else raw.text++;
        if (!isBinary && data.toString() === '\n') raw.beats++;
      });
      sock.on('close', () => { raw.closed = true; });
      const send = sock.send.bind(sock);
      sock.send = (data, ...rest) => {
        raw.sent++;
        if (typeof data !== 'string') raw.sentBinary++;
        return send(data, ...rest);
      };
      return sock;
    },
    connectHeaders: { host: '/', login: 'guest', passcode: 'guest', ...headers },
    heartbeatIncoming: hbIn,
    heartbeatOutgoing: hbOut,
    reconnectDelay: 0,
    connectionTimeout: timeoutMs,
    debug: () => {},
    ...config,
  });
  return new Promise((resolve, reject) => {
    const fail = (why) => {
      clearTimeout(t);
      client.deactivate({ force: true }).catch(() => {});
      reject(new Error(why));
    };
    const t = setTimeout(() => fail(`stompjs: no CONNECTED from ${url} within ${timeoutMs} ms`),
      timeoutMs);
    client.onConnect = (frame) => { clearTimeout(t); resolve({ client, frame, sock, raw }); };
    client.onStompError = (f) => fail(`stompjs: ERROR ${f.headers.message}: ${f.body}`);
    client.onWebSocketError = (e) => fail(`stompjs: WebSocket error ${e && (e.message || e.type)}`);
    client.onWebSocketClose = (e) => fail(`stompjs: WebSocket closed (${e && e.code})`);
    client.activate();
  });
}

let seq = 0;
function uniq(kind, tag) {
  seq++;
  return `/${kind}/${tag}-${process.pid}-${seq}`;
}

// Wait for a receipt id (after registering with watchForReceipt).
function receipt(client, id, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no RECEIPT ${id} within ${timeoutMs} ms`)), timeoutMs);
    client.watchForReceipt(id, (f) => { clearTimeout(t); resolve(f); });
  });
}

// Subscribe and wait for the SUBSCRIBE's receipt. Returns a collector:
// { sub, msgs, take(n, timeoutMs) } where take waits for n messages in all.
async function subscribe(client, dest, headers = {}) {
  const msgs = [];
  let wake = null;
  const id = `sub-${++seq}`;
  const got = receipt(client, id);
  const sub = client.subscribe(dest, (m) => {
    msgs.push(m);
    if (wake) wake();
  }, { ...headers, receipt: id });
  await got;
  return {
    sub,
    msgs,
    async take(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (msgs.length < n) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`${dest}: ${msgs.length} of ${n} messages within ${timeoutMs} ms`);
        await new Promise((r) => {
          const t = setTimeout(r, left);
          wake = () => { clearTimeout(t); wake = null; r(); };
        });
      }
      return msgs.slice(0, n);
    },
  };
}

async function close(c) {
  if (!c) return;
  c.client.onWebSocketClose = () => {};
  await Promise.race([c.client.deactivate(), new Promise((r) => setTimeout(r, 3000))]);
}

module.exports = { connect, subscribe, receipt, uniq, close, WebSocket, Client };
