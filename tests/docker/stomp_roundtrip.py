#!/usr/bin/python3
"""stomp_roundtrip.py - one STOMP round trip against a broker, for the Docker test.

    stomp_roundtrip.py URL [--timeout SECONDS] [--login LOGIN --passcode PASSCODE]
                           [--send-url URL2] [--expect-refused]

URL is stomp://HOST:PORT, stomp+ssl://HOST:PORT, ws://HOST:PORT/PATH or
wss://HOST:PORT/PATH (TLS certificates are not verified: the test made them). The script CONNECTs (1.2,
with login and passcode headers when given), SUBSCRIBEs to a fresh
/topic/docker-test-N with a receipt, waits for the RECEIPT, SENDs one message,
and expects exactly that MESSAGE back on its subscription, then DISCONNECTs
with a receipt.

--send-url URL2 makes it a round trip across two brokers (a cluster's nodes):
the subscription stays on URL, and the SEND goes out on a second connection
to URL2 (same login), with a receipt that must come before the MESSAGE is
awaited on URL; both connections DISCONNECT with a receipt. Exit 0 and one line saying what happened, or exit 1 and a line
saying which step failed and what arrived.

--send-persistent QUEUE:BODY sends one persistent:true message to /queue/QUEUE
and waits for its RECEIPT (on disk in the broker's journal); --receive
QUEUE:BODY subscribes to /queue/QUEUE and expects exactly that message first
(the Docker test kills the container in between and starts a new one on the
same volume).

--expect-refused turns it around: the CONNECT must be answered with
ERROR message:Bad CONNECT, body "Access refused for user 'LOGIN'" (the broker's answer to a bad login, or to an
unauthenticated client from another host when no users are configured). Exit
0 only then; exit 1 when the broker said CONNECTED or anything else.

Raw frames over a socket (or one WebSocket), no client library, so a failure
names the exact frame. Uses only the standard library, plus python3-websockets
for ws:// and wss://.
"""
import argparse
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


def connect_frame(login, passcode):
    # CONNECT headers are not escaped (STOMP 1.2), so a passcode may hold ':'.
    headers = [("accept-version", "1.2"), ("host", "/"), ("heart-beat", "0,0")]
    if login is not None:
        headers.append(("login", login))
    if passcode is not None:
        headers.append(("passcode", passcode))
    return encode("CONNECT", headers)


def refused(link, login, passcode):
    """The CONNECT must get ERROR message:Bad CONNECT; returns its text."""
    link.send(connect_frame(login, passcode))
    cmd, headers, body = link.recv()
    if cmd == "CONNECTED":
        raise Failure("CONNECT was accepted (CONNECTED %r), expected ERROR Bad CONNECT"
                      % headers)
    text = body.decode("utf-8", "replace").strip()
    if (cmd != "ERROR" or headers.get("message") != "Bad CONNECT"
            or text != "Access refused for user '%s'" % (login or "")):
        raise Failure("CONNECT: expected ERROR message:Bad CONNECT (Access refused for user "
                      "'%s'), got %s %r %r" % (login or "", cmd, headers, body[:200]))
    return "ERROR message:Bad CONNECT (%s)" % text


def roundtrip(link, label, login, passcode, send_link=None):
    """Subscribe on link, SEND on send_link (another broker) or link itself,
    expect the MESSAGE on link."""
    tag = "%d-%d" % (os.getpid(), int(time.time() * 1000))
    dest = "/topic/docker-test-" + tag
    text = ("hello from the host over %s, %s" % (label, tag)).encode()
    link.send(connect_frame(login, passcode))
    headers, _ = expect(link, "CONNECTED", "CONNECT", version="1.2")
    link.send(encode("SUBSCRIBE", [("id", "0"), ("destination", dest), ("ack", "auto"),
                                   ("receipt", "sub-1")]))
    expect(link, "RECEIPT", "SUBSCRIBE", receipt_id="sub-1")
    send = [("destination", dest), ("content-type", "text/plain"),
            ("content-length", str(len(text)))]
    if send_link is None:
        link.send(encode("SEND", send, text))
    else:
        send_link.send(connect_frame(login, passcode))
        expect(send_link, "CONNECTED", "CONNECT (--send-url)", version="1.2")
        send_link.send(encode("SEND", send + [("receipt", "send-1")], text))
        expect(send_link, "RECEIPT", "SEND (--send-url)", receipt_id="send-1")
    _, body = expect(link, "MESSAGE", "SEND", destination=dest, subscription="0")
    if body != text:
        raise Failure("MESSAGE body is %r, expected %r" % (body, text))
    link.send(encode("DISCONNECT", [("receipt", "bye")]))
    expect(link, "RECEIPT", "DISCONNECT", receipt_id="bye")
    if send_link is not None:
        send_link.send(encode("DISCONNECT", [("receipt", "bye")]))
        expect(send_link, "RECEIPT", "DISCONNECT (--send-url)", receipt_id="bye")
    return headers.get("server", "?")


def send_persistent(link, login, passcode, queue, text):
    link.send(connect_frame(login, passcode))
    expect(link, "CONNECTED", "CONNECT", version="1.2")
    link.send(encode("SEND", [("destination", "/queue/" + queue), ("persistent", "true"),
                              ("receipt", "p-1"), ("content-length", str(len(text)))], text))
    expect(link, "RECEIPT", "SEND persistent", receipt_id="p-1")


def receive(link, login, passcode, queue, text):
    link.send(connect_frame(login, passcode))
    expect(link, "CONNECTED", "CONNECT", version="1.2")
    link.send(encode("SUBSCRIBE", [("id", "0"), ("destination", "/queue/" + queue),
                                   ("ack", "client-individual")]))
    headers, body = expect(link, "MESSAGE", "SUBSCRIBE", subscription="0", persistent="true")
    if body != text:
        raise Failure("MESSAGE body is %r, expected %r" % (body, text))
    link.send(encode("ACK", [("id", headers.get("ack", "")), ("receipt", "a-1")]))
    expect(link, "RECEIPT", "ACK", receipt_id="a-1")


def open_link(url, deadline):
    if url.scheme in ("stomp", "stomp+ssl"):
        return SocketLink(url, deadline)
    return WebSocketLink(url, deadline)


def main():
    ap = argparse.ArgumentParser(description="One STOMP round trip (or refusal) against a broker.")
    ap.add_argument("url")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds for the whole exchange")
    ap.add_argument("--login", help="CONNECT's login header")
    ap.add_argument("--passcode", help="CONNECT's passcode header")
    ap.add_argument("--send-persistent", metavar="QUEUE:BODY",
                    help="send one persistent message, wait for its RECEIPT")
    ap.add_argument("--receive", metavar="QUEUE:BODY",
                    help="expect that message on /queue/QUEUE (and ACK it)")
    ap.add_argument("--send-url", metavar="URL2",
                    help="SEND on a second connection to this broker (a cluster's other node)")
    ap.add_argument("--expect-refused", action="store_true",
                    help="succeed only when CONNECT gets ERROR message:access refused")
    args = ap.parse_args()
    url = urllib.parse.urlparse(args.url)
    deadline = time.monotonic() + args.timeout
    what = "refusal" if args.expect_refused else "round trip"
    link = send_link = None
    send_url = urllib.parse.urlparse(args.send_url) if args.send_url else None
    for u in (url, send_url):
        if u is not None and u.scheme not in ("stomp", "stomp+ssl", "ws", "wss"):
            print("unsupported URL scheme %r" % u.scheme, file=sys.stderr)
            return 2
    try:
        link = open_link(url, deadline)
        if send_url is not None:
            send_link = open_link(send_url, deadline)
        for mode, fn in (("send-persistent", send_persistent), ("receive", receive)):
            arg = getattr(args, mode.replace("-", "_"))
            if arg:
                what = mode
                queue, _, text = arg.partition(":")
                fn(link, args.login, args.passcode, queue, text.encode())
                print("%s over %s ok (/queue/%s)" % (mode, url.scheme, queue))
                return 0
        if args.expect_refused:
            why = refused(link, args.login, args.passcode)
            print("refusal over %s ok: %s" % (url.scheme, why))
            return 0
        server = roundtrip(link, url.scheme, args.login, args.passcode, send_link)
        print("%sround trip over %s ok (server %s%s)"
              % ("SEND on %s, MESSAGE on %s: " % (args.send_url, args.url) if send_link else "",
                 url.scheme, server, ", login %s" % args.login if args.login else ""))
        return 0
    except Exception as e:  # Failure, socket and TLS errors, a refused upgrade
        why = str(e) if isinstance(e, Failure) else "%s: %s" % (type(e).__name__, e)
        print("%s over %s failed: %s" % (what, url.scheme, why))
        return 1
    finally:
        for lk in (link, send_link):
            if lk:
                try:
                    lk.close()
                except Exception:
                    pass


if __name__ == "__main__":
    sys.exit(main())
