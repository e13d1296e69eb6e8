#!/usr/bin/python3
"""stomp_roundtrip.py - one STOMP round trip against a broker, for the Docker test.

    stomp_roundtrip.py URL [--timeout SECONDS]

URL is stomp://HOST:PORT, stomp+ssl://HOST:PORT, ws://HOST:PORT/PATH or
wss://HOST:PORT/PATH (TLS certificates are not verified: the test made them). The script CONNECTs (1.2),
SUBSCRIBEs to a fresh /topic/docker-test-N with a receipt, waits for the
RECEIPT, SENDs one message, and expects exactly that MESSAGE back on its
subscription, then DISCONNECTs with a receipt. Exit 0 and one line saying what
happened, or exit 1 and a line saying which step failed and what arrived.

Raw frames over a socket (or one WebSocket), no client library, so a failure
names the exact frame. Uses only the standard library, plus python3-websockets
for ws:// and wss://.
"""
import os
import socket
import ssl
import sys
import time
import urllib.parse


class Failure(Exception):
    pass


def encode(command, headers, body=b""):
    lines = [command] + ["%s:%s" % kv for kv in headers]
    return ("\n".join(lines) + "\n\n").encode() + body + b"\0"


def parse_one(buf):
    """(frame, rest) when buf holds a whole frame, else (None, buf).
    Leading EOLs (heart-beats) are skipped."""
    buf = buf.lstrip(b"\r\n")
    end = buf.find(b"\n\n")
    crlf = buf.find(b"\r\n\r\n")
    if crlf != -1 and (end == -1 or crlf < end):
        head, start = buf[:crlf].decode("utf-8", "replace"), crlf + 4
    elif end != -1:
        head, start = buf[:end].decode("utf-8", "replace"), end + 2
    else:
        return None, buf
    lines = head.replace("\r\n", "\n").split("\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name, value)
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(buf) < start + n + 1:
            return None, buf
        body, rest = buf[start:start + n], buf[start + n + 1:]
    else:
        nul = buf.find(b"\0", start)
        if nul == -1:
            return None, buf
        body, rest = buf[start:nul], buf[nul + 1:]
    return (lines[0], headers, body), rest


class SocketLink:
    def __init__(self, url, deadline):
        self.deadline = deadline
        raw = socket.create_connection((url.hostname, url.port), timeout=5)
        if url.scheme == "stomp+ssl":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            raw = ctx.wrap_socket(raw, server_hostname=url.hostname)
        self.sock = raw
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def recv(self):
        while True:
            frame, self.buf = parse_one(self.buf)
            if frame:
                return frame
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise Failure("timed out waiting for a frame (have %r)" % self.buf[:200])
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise Failure("timed out waiting for a frame (have %r)" % self.buf[:200])
            if not data:
                raise Failure("the broker closed the connection (have %r)" % self.buf[:200])
            self.buf += data

    def close(self):
        self.sock.close()


class WebSocketLink:
    """Blocking wrapper over python3-websockets' asyncio client."""

    def __init__(self, url, deadline):
        import asyncio
        import websockets

        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.deadline = deadline
        self.buf = b""
        tls = None
        if url.scheme == "wss":
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        self.ws = self.loop.run_until_complete(
            websockets.connect(url.geturl(), subprotocols=["v12.stomp"], open_timeout=5, ssl=tls))

    def send(self, data):
        self.loop.run_until_complete(self.ws.send(data.decode()))

    def recv(self):
        import asyncio

        while True:
            frame, self.buf = parse_one(self.buf)
            if frame:
                return frame
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise Failure("timed out waiting for a frame")
            try:
                msg = self.loop.run_until_complete(asyncio.wait_for(self.ws.recv(), left))
            except asyncio.TimeoutError:
                raise Failure("timed out waiting for a frame (have %r)" % self.buf[:200])
            except Exception as e:  # the connection closed
                raise Failure("the WebSocket closed: %s" % e)
            self.buf += msg.encode() if isinstance(msg, str) else msg

    def close(self):
        self.loop.run_until_complete(self.ws.close())
        self.loop.close()


def expect(link, command, step, **want):
    cmd, headers, body = link.recv()
    if cmd != command:
        raise Failure("%s: expected %s, got %s %r %r" % (step, command, cmd, headers, body[:200]))
    for name, value in want.items():
        name = name.replace("_", "-")
        if headers.get(name) != value:
            raise Failure("%s: %s header is %r, expected %r" % (step, name, headers.get(name), value))
    return headers, body


def roundtrip(link, label):
    tag = "%d-%d" % (os.getpid(), int(time.time() * 1000))
    dest = "/topic/docker-test-" + tag
    text = ("hello from the host over %s, %s" % (label, tag)).encode()
    link.send(encode("CONNECT", [("accept-version", "1.2"), ("host", "/"),
                                 ("heart-beat", "0,0")]))
    headers, _ = expect(link, "CONNECTED", "CONNECT", version="1.2")
    link.send(encode("SUBSCRIBE", [("id", "0"), ("destination", dest), ("ack", "auto"),
                                   ("receipt", "sub-1")]))
    expect(link, "RECEIPT", "SUBSCRIBE", receipt_id="sub-1")
    link.send(encode("SEND", [("destination", dest), ("content-type", "text/plain"),
                              ("content-length", str(len(text)))], text))
    _, body = expect(link, "MESSAGE", "SEND", destination=dest, subscription="0")
    if body != text:
        raise Failure("MESSAGE body is %r, expected %r" % (body, text))
    link.send(encode("DISCONNECT", [("receipt", "bye")]))
    expect(link, "RECEIPT", "DISCONNECT", receipt_id="bye")
    return headers.get("server", "?")


def main():
    if len(sys.argv) < 2:
        print("usage: stomp_roundtrip.py URL [--timeout SECONDS]", file=sys.stderr)
        return 2
    url = urllib.parse.urlparse(sys.argv[1])
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--timeout" else 10.0
    deadline = time.monotonic() + timeout
    link = None
    try:
        if url.scheme in ("stomp", "stomp+ssl"):
            link = SocketLink(url, deadline)
        elif url.scheme in ("ws", "wss"):
            link = WebSocketLink(url, deadline)
        else:
            print("unsupported URL scheme %r" % url.scheme, file=sys.stderr)
            return 2
        server = roundtrip(link, url.scheme)
        print("round trip over %s ok (server %s)" % (url.scheme, server))
        return 0
    except Exception as e:  # Failure, socket and TLS errors, a refused upgrade
        why = str(e) if isinstance(e, Failure) else "%s: %s" % (type(e).__name__, e)
        print("round trip over %s failed: %s" % (url.scheme, why))
        return 1
    finally:
        if link:
            try:
                link.close()
            except Exception:
                pass


if __name__ == "__main__":
    sys.exit(main())
