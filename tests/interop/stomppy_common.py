"""Helpers shared by the stomp.py interop tests (plain and TLS): a listener
that records what a connection receives and waits with timeouts, and
SUBSCRIBE/SEND/DISCONNECT that use receipts as barriers."""
import threading
import uuid

import stomp

WAIT = 5.0

# stomp.py's connection class for each STOMP version.
CLASSES = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}


class Collector(stomp.ConnectionListener):
    """Records everything a connection receives; waits with timeouts."""

    def __init__(self):
        self.cv = threading.Condition()
        self.connected = None
        self.messages = []
        self.receipts = []
        self.errors = []
        self.disconnected = False
        self.heartbeats = 0

    def _add(self, fn):
        with self.cv:
            fn()
            self.cv.notify_all()

    def on_connected(self, frame):
        self._add(lambda: setattr(self, "connected", frame))

    def on_message(self, frame):
        self._add(lambda: self.messages.append(frame))

    def on_receipt(self, frame):
        self._add(lambda: self.receipts.append(frame.headers.get("receipt-id")))

    def on_error(self, frame):
        self._add(lambda: self.errors.append(frame))

    def on_disconnected(self):
        self._add(lambda: setattr(self, "disconnected", True))

    def on_heartbeat(self):
        self._add(lambda: setattr(self, "heartbeats", self.heartbeats + 1))

    def wait_for(self, pred, what, timeout=WAIT):
        with self.cv:
            if not self.cv.wait_for(pred, timeout):
                raise AssertionError("timed out waiting for %s (messages=%s receipts=%s errors=%s)"
                                     % (what, [m.body for m in self.messages], self.receipts,
                                        [e.headers for e in self.errors]))

    def wait_messages(self, n):
        self.wait_for(lambda: len(self.messages) >= n, "%d messages" % n)
        return list(self.messages[:n])

    def wait_receipt(self, rid):
        self.wait_for(lambda: rid in self.receipts, "receipt %s" % rid)


def open_conn(port, version="1.2", headers=None):
    """A stomp.py connection of `version` to 127.0.0.1:port, CONNECTED (as
    guest, with the extra CONNECT headers given), with a Collector."""
    conn = CLASSES[version]([("127.0.0.1", port)])
    col = Collector()
    conn.set_listener("collector", col)
    conn.connect("guest", "guest", wait=True, headers=headers or {})
    col.wait_for(lambda: col.connected is not None, "CONNECTED")
    return conn, col


def name(kind, tag="interop"):
    return "/%s/%s-%s" % (kind, tag, uuid.uuid4().hex[:10])


def subscribe(conn, col, dest, sid, ack="auto", **headers):
    rid = "sub-" + uuid.uuid4().hex[:8]
    conn.subscribe(dest, id=sid, ack=ack, receipt=rid, **headers)
    col.wait_receipt(rid)


def send(conn, col, dest, body, **headers):
    rid = "send-" + uuid.uuid4().hex[:8]
    conn.send(dest, body, receipt=rid, **headers)
    col.wait_receipt(rid)


def close(conn, col):
    rid = "bye-" + uuid.uuid4().hex[:8]
    conn.disconnect(receipt=rid)
    # stomp.py marks the connection closed on the receipt before it calls the
    # listeners, so wait for our listener to see it too.
    col.wait_receipt(rid)
    col.wait_for(lambda: col.disconnected, "close after the DISCONNECT receipt")
