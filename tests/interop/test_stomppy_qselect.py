#!/usr/bin/python3
"""Interop test (issue 13): ActiveMQ's selector header on queue subscriptions,
through stomp.py (Debian's python3-stomp 8) against a real broker.

Consumers with disjoint selectors split a queue, each in queue order; a
message nobody matches waits while the ones behind it flow, then goes to a
later consumer that matches; a NACKed message comes back to a matching
consumer only; a bad selector is an ERROR naming the position. Each client is
1.0, 1.1 or 1.2. Run with /usr/bin/python3.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stomp  # noqa: E402
from stomppy_common import CLASSES, Collector, close, name, open_conn, send, subscribe  # noqa: E402
from test_stomppy import start_broker, stop_broker  # noqa: E402

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


def settle(col, seconds=0.3):
    """Nothing more arrives for a while (used only to check nothing extra
    came, never to wait for something expected)."""
    n = len(col.messages)
    time.sleep(seconds)
    return len(col.messages) == n


class QueueSelectors(unittest.TestCase):
    def test_disjoint_selectors_split_a_queue_in_order(self):
        queue = name("queue", "qsel-split")
        red, rcol = connect("1.2")
        blue, bcol = connect("1.1")
        subscribe(red, rcol, queue, "r", selector="color = 'red' AND n < 100")
        subscribe(blue, bcol, queue, "b", selector="color = 'blue'")
        pub, pcol = connect("1.0")
        colors = ["red", "blue", "blue", "red", "green", "red", "blue"]
        for i, c in enumerate(colors):
            send(pub, pcol, queue, "%s-%d" % (c, i), color=c, n=str(i))
        reds = rcol.wait_messages(3)
        blues = bcol.wait_messages(3)
        self.assertEqual([m.body for m in reds], ["red-0", "red-3", "red-5"])
        self.assertEqual([m.body for m in blues], ["blue-1", "blue-2", "blue-6"])
        self.assertTrue(settle(rcol) and settle(bcol, 0.05), "an extra message arrived")
        # The green one waited; a consumer without a selector takes it.
        any_, acol = connect("1.2")
        subscribe(any_, acol, queue, "a")
        self.assertEqual([m.body for m in acol.wait_messages(1)], ["green-4"])
        for conn, col in ((red, rcol), (blue, bcol), (pub, pcol), (any_, acol)):
            close(conn, col)

    def test_waiting_messages_go_to_a_later_matching_consumer(self):
        queue = name("queue", "qsel-wait")
        red, rcol = connect("1.2")
        subscribe(red, rcol, queue, "r", selector="color = 'red'")
        pub, pcol = connect("1.2")
        for i in range(10):
            send(pub, pcol, queue, "m%d" % i, color="red" if i % 5 == 4 else "green")
        self.assertEqual([m.body for m in rcol.wait_messages(2)], ["m4", "m9"])
        green, gcol = connect("1.1")
        subscribe(green, gcol, queue, "g", selector="color LIKE 'gr__n'")
        got = gcol.wait_messages(8)
        self.assertEqual([m.body for m in got], ["m%d" % i for i in range(10) if i % 5 != 4])
        for conn, col in ((red, rcol), (pub, pcol), (green, gcol)):
            close(conn, col)

    def test_nack_comes_back_to_a_matching_consumer(self):
        queue = name("queue", "qsel-nack")
        red, rcol = connect("1.2")
        blue, bcol = connect("1.2")
        subscribe(red, rcol, queue, "r", ack="client-individual", selector="prio >= 5")
        subscribe(blue, bcol, queue, "b", selector="prio < 5")
        pub, pcol = connect("1.2")
        send(pub, pcol, queue, "urgent", prio="9")
        first = rcol.wait_messages(1)[0]
        self.assertEqual(first.headers.get("redelivered"), "false")
        red.nack(first.headers["ack"], receipt="n1")
        rcol.wait_receipt("n1")
        again = rcol.wait_messages(2)[1]
        self.assertEqual(again.body, "urgent")
        self.assertEqual(again.headers.get("redelivered"), "true")
        red.ack(again.headers["ack"], receipt="a1")
        rcol.wait_receipt("a1")
        self.assertTrue(settle(bcol), "the other consumer got a message it does not match")
        for conn, col in ((red, rcol), (blue, bcol), (pub, pcol)):
            close(conn, col)

    def test_a_bad_selector_is_an_error_with_its_position(self):
        conn, col = connect("1.2")
        conn.subscribe(name("queue", "qsel-bad"), id="s", selector="color = 'red' OR",
                       receipt="x")
        col.wait_for(lambda: col.errors, "an ERROR")
        err = col.errors[0]
        self.assertEqual(err.headers.get("message"), "invalid selector")
        self.assertEqual(err.headers.get("receipt-id"), "x")
        self.assertIn("at ", err.body)
        col.wait_for(lambda: col.disconnected, "the connection closed after the ERROR")


if __name__ == "__main__":
    unittest.main(verbosity=2)
