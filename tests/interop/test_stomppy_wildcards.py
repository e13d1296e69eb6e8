#!/usr/bin/python3
"""Interop test: stomp.py (Debian's python3-stomp 8) subscribing to
RabbitMQ-style topic patterns on Stampede (issue 13).

Starts a broker ($STAMPEDE_BIN, --listen stomp://127.0.0.1:0 --workers 2)
and, through stomp.py 1.0/1.1/1.2 connections: `/topic/P.*.c` gets exactly
the topics with one word in between, `/topic/P.#` every topic under P and P
itself (zero words), each MESSAGE with the real destination and the pattern
subscription's id, one MESSAGE per matching subscription, in the order each
topic's messages were published; a selector filters a pattern subscription;
UNSUBSCRIBE stops the messages; a pattern of 129 words gets an ERROR and the
connection closes. Run with /usr/bin/python3 (it has python3-stomp).
"""
import unittest
import uuid

from stomppy_common import CLASSES, Collector, close, open_conn, send, subscribe
from test_stomppy import start_broker, stop_broker

BROKER = None
PORT = None
LOG = None


def setUpModule():
    global BROKER, PORT, LOG
    BROKER, PORT, LOG = start_broker()


def tearDownModule():
    rc = stop_broker(BROKER, LOG)
    assert rc == 0, "broker exit status on SIGTERM: %r" % (rc,)


def connect(version="1.2"):
    return open_conn(PORT, version)


def prefix():
    return "wc" + uuid.uuid4().hex[:10]


class Wildcards(unittest.TestCase):
    def test_star_and_hash_each_version(self):
        p = prefix()
        subs = {}
        for version, pattern in (("1.0", "%s.*.c"), ("1.1", "%s.#"), ("1.2", "%s.#.c")):
            conn, col = connect(version)
            subscribe(conn, col, "/topic/" + pattern % p, "s" + version)
            subs[version] = (conn, col)
        pub, pcol = connect("1.2")
        # 20 topics spread over both workers, plus the edge cases.
        topics = ["/topic/%s.%d.c" % (p, i) for i in range(20)]
        extra = ["/topic/%s" % p, "/topic/%s.c" % p, "/topic/%s.x.y.c" % p, "/topic/%s.x" % p]
        for t in topics + extra:
            send(pub, pcol, t, t)
        want = {
            "1.0": set(topics),
            "1.1": set(topics + extra),
            "1.2": set(topics + extra[1:3]),
        }
        for version, (conn, col) in subs.items():
            got = col.wait_messages(len(want[version]))
            self.assertEqual({m.headers["destination"] for m in got}, want[version], version)
            for m in got:
                self.assertEqual(m.body, m.headers["destination"])
                if version != "1.0":
                    self.assertEqual(m.headers["subscription"], "s" + version)
            # Nothing more: a last message to a topic everyone matches comes next.
            send(pub, pcol, "/topic/%s.z.c" % p, "end")
            col.wait_messages(len(want[version]) + 1)
            self.assertEqual(col.messages[-1].body, "end")
            close(conn, col)
        close(pub, pcol)

    def test_one_message_per_subscription_in_order(self):
        p = prefix()
        topic = "/topic/%s.a" % p
        conn, col = connect("1.2")
        subscribe(conn, col, topic, "exact")
        subscribe(conn, col, "/topic/%s.*" % p, "star")
        subscribe(conn, col, "/topic/%s.#" % p, "hash")
        pub, pcol = connect("1.1")
        for i in range(50):
            pub.send(topic, str(i))
        send(pub, pcol, topic, "50")
        got = col.wait_messages(153)
        for sid in ("exact", "star", "hash"):
            bodies = [m.body for m in got if m.headers["subscription"] == sid]
            self.assertEqual(bodies, [str(i) for i in range(51)], sid)
        close(pub, pcol)
        close(conn, col)

    def test_selector_and_unsubscribe(self):
        p = prefix()
        conn, col = connect("1.2")
        subscribe(conn, col, "/topic/%s.#" % p, "sel", selector="level > 2")
        pub, pcol = connect("1.2")
        send(pub, pcol, "/topic/%s.a" % p, "low", level="1")
        send(pub, pcol, "/topic/%s.b.c" % p, "high", level="5")
        got = col.wait_messages(1)
        self.assertEqual(got[0].body, "high")
        self.assertEqual(got[0].headers["destination"], "/topic/%s.b.c" % p)
        rid = "unsub-" + uuid.uuid4().hex[:6]
        conn.unsubscribe("sel", receipt=rid)
        col.wait_receipt(rid)
        send(pub, pcol, "/topic/%s.b.c" % p, "after", level="9")
        # A barrier through the subscriber's own connection.
        send(conn, col, "/topic/%s-other" % p, "x")
        self.assertEqual([m.body for m in col.messages], ["high"])
        close(pub, pcol)
        close(conn, col)

    def test_pattern_too_long(self):
        conn, col = connect("1.2")
        conn.subscribe("/topic/" + ".".join(["*"] * 129), id="long", receipt="r")
        col.wait_for(lambda: col.errors, "ERROR")
        self.assertEqual(col.errors[0].headers.get("message"), "pattern too long")
        col.wait_for(lambda: col.disconnected, "disconnect after ERROR")
        # 128 words are fine.
        conn, col = connect("1.2")
        subscribe(conn, col, "/topic/" + ".".join(["*"] * 128), "ok")
        close(conn, col)


if __name__ == "__main__":
    unittest.main(verbosity=2)
