#!/usr/bin/python3
"""Interop test: stomp.py (Debian's python3-stomp 8) as a real client of Stampede.

Starts its own broker ($STAMPEDE_BIN, --listen stomp://127.0.0.1:0 --workers 2),
reads the bound port from the "listening on" log line, runs pub/sub on a topic,
a queue with client-individual acks, receipts, transactions, heart-beats and
1.0/1.1/1.2 connections through stomp.py, and stops the broker (exit 0 on SIGTERM).
Run with /usr/bin/python3 (the interpreter that has python3-stomp).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import stomp
from stomppy_common import CLASSES, Collector, close, name, send, subscribe

WAIT = 5.0
BROKER = None
PORT = None
LOG = None


def start_broker(extra=()):
    # $STAMPEDE_TEST_BROKER (a ThreadSanitizer build, scripts/dev.sh) wins over
    # the STAMPEDE_BIN meson sets per test.
    binary = os.environ.get("STAMPEDE_TEST_BROKER") or os.environ.get("STAMPEDE_BIN")
    if not binary:
        raise RuntimeError("STAMPEDE_BIN is not set")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAMPEDE_")}
    log = tempfile.NamedTemporaryFile(prefix="stampede-interop-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [binary, "--listen", "stomp://127.0.0.1:0", "--workers", "2", *extra],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(log.name, encoding="utf-8", errors="replace") as f:
            text = f.read()
        m = re.search(r"listening on stomp://[^\s:]+:(\d+)\s*\n", text)
        if m:
            return proc, int(m.group(1)), log.name
        if proc.poll() is not None:
            raise RuntimeError("broker exited (%s) at start:\n%s" % (proc.returncode, text))
        time.sleep(0.01)
    proc.kill()
    raise RuntimeError("broker did not log 'listening on' within 5 s")


def stop_broker(proc, log):
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = "timeout"
    if rc != 0:
        with open(log, encoding="utf-8", errors="replace") as f:
            sys.stderr.write(f.read())
    if not os.environ.get("ITEST_KEEP_LOGS"):
        os.unlink(log)
    return rc


def setUpModule():
    global BROKER, PORT, LOG
    BROKER, PORT, LOG = start_broker()


def tearDownModule():
    rc = stop_broker(BROKER, LOG)
    assert rc == 0, "broker exit status on SIGTERM: %r" % (rc,)


def connect(version="1.2", **kw):
    conn = CLASSES[version]([("127.0.0.1", PORT)], **kw)
    col = Collector()
    conn.set_listener("collector", col)
    conn.connect("guest", "guest", wait=True)
    col.wait_for(lambda: col.connected is not None, "CONNECTED")
    return conn, col


class StompPy(unittest.TestCase):
    def test_connected_headers_each_version(self):
        for version in ("1.0", "1.1", "1.2"):
            conn, col = connect(version)
            hdrs = col.connected.headers
            self.assertEqual(hdrs.get("version"), version, hdrs)
            self.assertTrue(hdrs.get("server", "").startswith("stampede/"), hdrs)
            self.assertTrue(hdrs.get("session"), hdrs)
            close(conn, col)

    def test_topic_pubsub(self):
        topic = name("topic")
        subs = [connect(v) for v in ("1.0", "1.1", "1.2", "1.2")]
        for i, (conn, col) in enumerate(subs):
            subscribe(conn, col, topic, "s%d" % i)
        pub, pcol = connect("1.2")
        bodies = ["hello %d héllo ✓" % i for i in range(5)]
        for b in bodies:
            send(pub, pcol, topic, b, **{"x-custom": "a:b", "content-type": "text/plain"})
        for i, (conn, col) in enumerate(subs):
            got = col.wait_messages(5)
            self.assertEqual([m.body for m in got], bodies)
            for m in got:
                self.assertEqual(m.headers.get("destination"), topic)
                self.assertEqual(m.headers.get("subscription"), "s%d" % i)
                self.assertTrue(m.headers.get("message-id"))
                if i > 0:  # 1.1/1.2 unescape the ':' in the value
                    self.assertEqual(m.headers.get("x-custom"), "a:b")
                self.assertNotIn("receipt", m.headers)
            close(conn, col)
        close(pub, pcol)

    def test_queue_client_individual(self):
        queue = name("queue")
        pub, pcol = connect("1.2")
        for i in range(6):
            send(pub, pcol, queue, "q%d" % i)
        cons, ccol = connect("1.2")
        subscribe(cons, ccol, queue, "c", ack="client-individual")
        got = ccol.wait_messages(6)
        self.assertEqual([m.body for m in got], ["q%d" % i for i in range(6)])
        for m in got[::2]:  # ack q0, q2, q4
            self.assertIn("ack", m.headers)
            rid = "ack-" + m.body
            cons.ack(m.headers["ack"], receipt=rid)
            ccol.wait_receipt(rid)
        close(cons, ccol)
        cons2, ccol2 = connect("1.2")
        subscribe(cons2, ccol2, queue, "c2", ack="client-individual")
        again = ccol2.wait_messages(3)
        self.assertEqual([m.body for m in again], ["q1", "q3", "q5"])
        for m in again:
            self.assertEqual(m.headers.get("redelivered"), "true", m.headers)
            cons2.ack(m.headers["ack"])
        close(cons2, ccol2)
        close(pub, pcol)

    def test_queue_round_robin_and_nack(self):
        queue = name("queue")
        a, acol = connect("1.2")
        b, bcol = connect("1.1")
        subscribe(a, acol, queue, "a", ack="client-individual", **{"prefetch-count": "1"})
        subscribe(b, bcol, queue, "b", ack="auto")
        pub, pcol = connect("1.2")
        send(pub, pcol, queue, "first")
        send(pub, pcol, queue, "second")
        acol.wait_for(lambda: acol.messages or bcol.messages, "a dispatch")
        bcol.wait_for(lambda: len(acol.messages) + len(bcol.messages) >= 2, "two dispatches")
        self.assertEqual(len(acol.messages), 1, "round-robin: a got %s" %
                         [m.body for m in acol.messages])
        m = acol.messages[0]
        a.nack(m.headers["ack"], receipt="n1")
        acol.wait_receipt("n1")
        # the NACKed message is redelivered (to a or b) with redelivered:true
        def redelivered():
            return [x for x in acol.messages[1:] + bcol.messages[1:]
                    if x.body == m.body and x.headers.get("redelivered") == "true"]
        acol.wait_for(lambda: redelivered(), "redelivery of %s" % m.body)
        for c, col in ((a, acol), (b, bcol), (pub, pcol)):
            close(c, col)

    def test_transactions(self):
        queue = name("queue")
        cons, ccol = connect("1.2")
        subscribe(cons, ccol, queue, "t")
        pub, pcol = connect("1.2")
        tx = pub.begin()
        for i in range(3):
            # The RECEIPT of a transactional SEND comes when COMMIT applies it.
            pub.send(queue, "tx%d" % i, transaction=tx, receipt="tx%d" % i)
        send(pub, pcol, queue, "plain")
        ccol.wait_messages(1)
        self.assertEqual(ccol.messages[0].body, "plain", "transactional SENDs leaked early")
        self.assertEqual([r for r in pcol.receipts if r.startswith("tx")], [],
                         "transactional SENDs receipted before COMMIT")
        pub.commit(tx, receipt="commit")
        pcol.wait_receipt("commit")
        self.assertEqual([r for r in pcol.receipts if r.startswith("tx") or r == "commit"],
                         ["tx0", "tx1", "tx2", "commit"])
        got = ccol.wait_messages(4)
        self.assertEqual([m.body for m in got], ["plain", "tx0", "tx1", "tx2"])
        self.assertNotIn("transaction", got[1].headers)
        tx2 = pub.begin()
        pub.send(queue, "aborted", transaction=tx2)
        pub.abort(tx2, receipt="abort")
        pcol.wait_receipt("abort")
        send(pub, pcol, queue, "after")
        got = ccol.wait_messages(5)
        self.assertEqual(got[4].body, "after")
        time.sleep(0.1)
        self.assertEqual(len(ccol.messages), 5, [m.body for m in ccol.messages])
        close(cons, ccol)
        close(pub, pcol)

    def test_acks_1_0_and_1_1(self):
        queue = name("queue")
        pub, pcol = connect("1.2")
        for i in range(4):
            send(pub, pcol, queue, "v%d" % i)
        c10, col10 = connect("1.0")
        subscribe(c10, col10, queue, "x", ack="client")
        got = col10.wait_messages(4)
        c10.ack(got[1].headers["message-id"], receipt="a10")  # cumulative: v0, v1
        col10.wait_receipt("a10")
        close(c10, col10)
        c11, col11 = connect("1.1")
        subscribe(c11, col11, queue, "y", ack="client-individual")
        got = col11.wait_messages(2)
        self.assertEqual([m.body for m in got], ["v2", "v3"])
        for m in got:
            c11.ack(m.headers["message-id"], m.headers["subscription"], receipt="a-" + m.body)
            col11.wait_receipt("a-" + m.body)
        close(c11, col11)
        close(pub, pcol)

    def test_heartbeats(self):
        conn, col = connect("1.2", heartbeats=(200, 200))
        self.assertEqual(col.connected.headers.get("heart-beat"), "200,200")
        time.sleep(1.5)
        self.assertFalse(col.disconnected, "heart-beating client was disconnected")
        self.assertGreaterEqual(col.heartbeats, 3, "server heart-beats seen: %d" % col.heartbeats)
        queue = name("queue")
        subscribe(conn, col, queue, "h")
        send(conn, col, queue, "alive")
        self.assertEqual(col.wait_messages(1)[0].body, "alive")
        close(conn, col)

    def test_error_on_unknown_destination(self):
        conn, col = connect("1.2")
        conn.send("/nowhere/x", "x", receipt="bad")
        col.wait_for(lambda: col.errors, "ERROR")
        err = col.errors[0]
        self.assertIn("message", err.headers)
        self.assertEqual(err.headers.get("receipt-id"), "bad")
        col.wait_for(lambda: col.disconnected, "disconnect after ERROR")


if __name__ == "__main__":
    unittest.main(verbosity=2)
