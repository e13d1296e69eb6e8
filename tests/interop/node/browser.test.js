// browser.test.js - a real browser: Debian's headless Chromium driven by
// playwright-core (npm, pinned) opens page/index.html, served by this test on
// 127.0.0.1 together with the @stomp/stompjs UMD bundle from node_modules. The
// page connects over ws:// to a real broker (which allows only the page's
// Origin), subscribes, publishes a text and a binary message and receives
// them plus one sent by a TCP client; the test asserts what the page received.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const { need, modules } = require('./lib/deps');
const { startBroker, killAll } = require('./lib/broker');
const { TcpStomp } = require('./lib/stomp_tcp');

// After every test (also when one timed out), no broker is left running.
test.after(killAll);

const { chromium } = need('playwright-core');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

function serve() {
  const files = {
    '/': [path.join(__dirname, 'page', 'index.html'), 'text/html; charset=utf-8'],
    '/stomp.umd.min.js': [path.join(modules, '@stomp', 'stompjs', 'bundles', 'stomp.umd.min.js'),
      'text/javascript'],
  };
  const server = http.createServer((req, res) => {
    const f = files[req.url];
    if (!f) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': f[1], 'Cache-Control': 'no-store' });
    res.end(fs.readFileSync(f[0]));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('headless Chromium: stompjs page subscribes, publishes, receives text and binary', {
  timeout: 90000,
}, async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  const server = await serve();
  const origin = `http://127.0.0.1:${server.address().port}`;
  const broker = await startBroker({ args: ['--ws-allowed-origin', origin] });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'stampede-chromium-'));
  let browser = null;
  let tcp = null;
  const consoleLines = [];
  try {
    // A persistent context on a fresh profile directory is how playwright
    // takes --user-data-dir.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage();
    page.on('console', (m) => consoleLines.push(m.text()));
    page.setDefaultTimeout(20000);
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => typeof window.StompJs === 'object' && window.runStomp);

    const dest = `/topic/browser-${process.pid}`;
    const wsUrl = broker.url('ws');
    const run = page.evaluate(([u, d]) => window.runStomp(u, d, 3, 15000), [wsUrl, dest]);
    // Once the page is subscribed, a TCP client publishes to it too.
    await page.waitForFunction(() => window.subscribed === true, null, { timeout: 15000 });
    tcp = await TcpStomp.connect(broker.ports.stomp);
    await tcp.sendSync('SEND', { destination: dest, 'content-type': 'text/plain' }, 'from tcp');
    const result = await run;

    assert.deepEqual(result.errors, [], `page errors; console:\n${consoleLines.join('\n')}`);
    assert.equal(result.connected, '1.2');
    assert.equal(result.protocol, 'v12.stomp');
    assert.equal(result.messages.length, 3);
    const text = result.messages.find((m) => m.text && m.text.startsWith('hello'));
    const bin = result.messages.find((m) => m.text === null);
    const fromTcp = result.messages.find((m) => m.text === 'from tcp');
    assert.ok(text, `no text message: ${JSON.stringify(result.messages)}`);
    assert.equal(text.text, 'hello from chromium \u00e9\u2603');
    assert.equal(text.headers.destination, dest);
    assert.ok(bin, `no binary message: ${JSON.stringify(result.messages)}`);
    assert.deepEqual(bin.bytes, [0, 1, 2, 0xff, 0xfe, 0x80, 0xc3]);
    assert.equal(bin.headers['content-type'], 'application/octet-stream');
    assert.ok(fromTcp, `the TCP client's message did not reach the page`);
    // WebSocket message types as the browser saw them: STOMP frames with
    // UTF-8 bodies are text, the non-UTF-8 body is the one binary message.
    const kinds = result.frames.map((f) => f.type);
    assert.equal(kinds.filter((k) => k === 'binary').length, 1, JSON.stringify(result.frames));
    assert.ok(result.frames.some((f) => f.command === 'CONNECTED'), JSON.stringify(result.frames));
    assert.equal(result.frames.filter((f) => f.command === 'MESSAGE').length, 2,
      JSON.stringify(result.frames));
    assert.ok(consoleLines.includes('page: ready'), consoleLines.join('\n'));

    // A page from another origin is refused by --ws-allowed-origin.
    const other = await serve();
    try {
      const page2 = await browser.newPage();
      await page2.goto(`http://localhost:${other.address().port}/`);
      const r2 = await page2.evaluate(([u, d]) => window.runStomp(u, d, 1, 5000), [wsUrl, dest]);
      assert.equal(r2.connected, null, 'a page from another Origin connected');
      assert.ok(r2.errors.length > 0);
    } finally {
      other.close();
    }
  } finally {
    if (tcp) tcp.close();
    if (browser) await browser.close().catch(() => {});
    server.close();
    const code = await broker.stop();
    fs.rmSync(profile, { recursive: true, force: true });
    assert.equal(code, 0, `broker exit status ${code}; log:\n${broker.log()}`);
  }
});
