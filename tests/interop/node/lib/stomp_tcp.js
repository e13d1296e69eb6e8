// stomp_tcp.js - a tiny STOMP 1.2 client over plain TCP (node's net module)
// for the TCP <-> WebSocket tests: its own frame reader (content-length
// bodies, heart-beat EOLs), no dependency on the project's code.
'use strict';
const net = require('node:net');

class TcpStomp {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.frames = [];
    this.waiters = [];
    this.closed = false;
    sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.parse(); });
    sock.on('close', () => { this.closed = true; this.wake(); });
    sock.on('error', () => {});
  }

  static connect(port, { timeoutMs = 3000 } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      const t = setTimeout(() => { sock.destroy(); reject(new Error('TCP connect timeout')); },
        timeoutMs);
      sock.once('connect', async () => {
        clearTimeout(t);
        const c = new TcpStomp(sock);
        try {
          c.send('CONNECT', { 'accept-version': '1.2', host: '/' });
          const f = await c.next(timeoutMs);
          if (f.command !== 'CONNECTED') throw new Error(`CONNECT got ${f.command}`);
          resolve(c);
        } catch (e) { sock.destroy(); reject(e); }
      });
      sock.once('error', (e) => { clearTimeout(t); reject(e); });
    });
  }

  static escape(v) {
    return String(v).replace(/\\/g, '\\\\').replace(/\r/g, '\\r').replace(/\n/g, '\\n')
      .replace(/:/g, '\\c');
  }

  static unescape(v) {
    return v.replace(/\\(.)/g, (_, c) => ({ n: '\n', r: '\r', c: ':', '\\': '\\' })[c]);
  }

  send(command, headers = {}, body = Buffer.alloc(0)) {
    const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
    let head = command + '\n';
    const h = { ...headers };
    if (command === 'SEND') h['content-length'] = b.length;
    for (const [k, v] of Object.entries(h)) {
      head += command === 'CONNECT' ? `${k}:${v}\n` : `${TcpStomp.escape(k)}:${TcpStomp.escape(v)}\n`;
    }
    this.sock.write(Buffer.concat([Buffer.from(head + '\n'), b, Buffer.from([0])]));
  }

  parse() {
    for (;;) {
      let i = 0;
      while (i < this.buf.length && (this.buf[i] === 0x0a || this.buf[i] === 0x0d)) i++;
      this.buf = this.buf.subarray(i);
      const end = this.buf.indexOf('\n\n');
      if (end < 0) return;
      const lines = this.buf.subarray(0, end).toString().split('\n').map((l) => l.replace(/\r$/, ''));
      const command = lines.shift();
      const headers = {};
      for (const l of lines) {
        const c = l.indexOf(':');
        const k = TcpStomp.unescape(l.slice(0, c));
        if (!(k in headers)) headers[k] = command === 'CONNECTED' ? l.slice(c + 1) : TcpStomp.unescape(l.slice(c + 1));
      }
      const start = end + 2;
      let stop;
      if (headers['content-length'] !== undefined) {
        stop = start + Number(headers['content-length']);
        if (this.buf.length < stop + 1) return;
      } else {
        stop = this.buf.indexOf(0, start);
        if (stop < 0) return;
      }
      const body = Buffer.from(this.buf.subarray(start, stop));
      this.buf = this.buf.subarray(stop + 1);
      this.frames.push({ command, headers, body });
      this.wake();
    }
  }

  wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  // The next frame within timeoutMs (rejects on timeout or close).
  async next(timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      if (this.closed) throw new Error('TCP STOMP connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`);
      await new Promise((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
    return this.frames.shift();
  }

  // Send with a receipt and wait for it; frames that come before the RECEIPT
  // stay queued for next().
  async sendSync(command, headers = {}, body = undefined) {
    const id = `r-${Math.random().toString(36).slice(2)}`;
    this.send(command, { ...headers, receipt: id }, body);
    const kept = [];
    try {
      for (;;) {
        const f = await this.next();
        if (f.command === 'RECEIPT' && f.headers['receipt-id'] === id) return;
        if (f.command === 'ERROR') throw new Error(`ERROR: ${f.headers.message}`);
        kept.push(f);
      }
    } finally {
      this.frames.unshift(...kept);
    }
  }

  close() { this.sock.destroy(); }
}

module.exports = { TcpStomp };
