#!/usr/bin/python3
"""Interop test: publish de-duplication (issue 13) through stomp.py.

A SEND whose dedup-id header its destination already saw within
--dedup-window is receipted but not delivered again, on queues and topics,
for 1.0, 1.1 and 1.2 clients; the header reaches subscribers; the window
ends (a broker with --dedup-window 300ms); an id over 256 bytes gets an
ERROR; with --data-dir a persistent SEND's id survives a restart.
Run with /usr/bin/python3 (the interpreter that has python3-stomp).
"""
import shutil
import tempfile
import time
import unittest

from stomppy_common import CLASSES, Collector, close, name, send, subscribe
from test_stomppy import start_broker, stop_broker


def connect(port, version="1.2"):
    conn = CLASSES[version]([("127.0.0.1", port)])
    col = Collector()
    conn.set_listener("c", col)
    conn.connect(wait=True)
    return conn, col


class Broker:
    """A broker of its own for one test class (extra flags)."""

    def __init__(self, *extra):
        self.proc, self.port, self.log = start_broker(extra)

    def stop(self):
        rc = stop_broker(self.proc, self.log)
        assert rc == 0, "broker exit status on SIGTERM: %r" % (rc,)


class DedupWindow(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.broker = Broker()

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()

    def check(self, kind, version):
        dest = name(kind, "dedup")
        sub, scol = connect(self.broker.port)
        subscribe(sub, scol, dest, "s")
        pub, pcol = connect(self.broker.port, version)
        send(pub, pcol, dest, "first", **{"dedup-id": "order-1"})
        send(pub, pcol, dest, "again", **{"dedup-id": "order-1"})  # receipted, dropped
        send(pub, pcol, dest, "second", **{"dedup-id": "order-2"})
        send(pub, pcol, dest, "plain")
        send(pub, pcol, dest, "plain")  # no id: never dropped
        msgs = scol.wait_messages(4)
        self.assertEqual([m.body for m in msgs], ["first", "second", "plain", "plain"])
        self.assertEqual(msgs[0].headers.get("dedup-id"), "order-1")
        time.sleep(0.2)
        self.assertEqual(len(scol.messages), 4)
        close(pub, pcol)
        close(sub, scol)

    def test_queue_each_version(self):
        for v in ("1.0", "1.1", "1.2"):
            with self.subTest(version=v):
                self.check("queue", v)

    def test_topic(self):
        self.check("topic", "1.2")

    def test_ids_are_per_destination(self):
        a, b = name("queue", "a"), name("queue", "b")
        sub, scol = connect(self.broker.port)
        subscribe(sub, scol, a, "a")
        subscribe(sub, scol, b, "b")
        pub, pcol = connect(self.broker.port)
        send(pub, pcol, a, "to-a", **{"dedup-id": "same"})
        send(pub, pcol, b, "to-b", **{"dedup-id": "same"})
        self.assertEqual(sorted(m.body for m in scol.wait_messages(2)), ["to-a", "to-b"])
        close(pub, pcol)
        close(sub, scol)

    def test_transaction(self):
        dest = name("queue", "tx")
        sub, scol = connect(self.broker.port)
        subscribe(sub, scol, dest, "s")
        pub, pcol = connect(self.broker.port)
        tx = pub.begin()
        pub.send(dest, "in-tx", transaction=tx, **{"dedup-id": "t"})
        pub.send(dest, "in-tx-dup", transaction=tx, **{"dedup-id": "t"})
        pub.commit(tx)
        send(pub, pcol, dest, "after-dup", **{"dedup-id": "t"})
        send(pub, pcol, dest, "end")
        self.assertEqual([m.body for m in scol.wait_messages(2)], ["in-tx", "end"])
        close(pub, pcol)
        close(sub, scol)

    def test_long_id_is_an_error(self):
        pub, pcol = connect(self.broker.port)
        pub.send(name("queue", "long"), "x", **{"dedup-id": "k" * 257})
        pcol.wait_for(lambda: pcol.errors, "ERROR")
        self.assertEqual(pcol.errors[0].headers.get("message"), "dedup-id too long")
        pcol.wait_for(lambda: pcol.disconnected, "close after the ERROR")


class DedupExpiry(unittest.TestCase):
    def test_id_is_new_again_after_the_window(self):
        broker = Broker("--dedup-window", "300ms")
        try:
            dest = name("queue", "exp")
            sub, scol = connect(broker.port)
            subscribe(sub, scol, dest, "s")
            pub, pcol = connect(broker.port)
            send(pub, pcol, dest, "one", **{"dedup-id": "e"})
            send(pub, pcol, dest, "dup", **{"dedup-id": "e"})
            time.sleep(0.5)
            send(pub, pcol, dest, "two", **{"dedup-id": "e"})
            self.assertEqual([m.body for m in scol.wait_messages(2)], ["one", "two"])
            close(pub, pcol)
            close(sub, scol)
        finally:
            broker.stop()


class DedupDurable(unittest.TestCase):
    def test_persistent_id_survives_a_restart(self):
        data = tempfile.mkdtemp(prefix="stampede-interop-dedup-")
        try:
            dest = name("queue", "dur")
            broker = Broker("--data-dir", data)
            try:
                pub, pcol = connect(broker.port)
                send(pub, pcol, dest, "kept", persistent="true", **{"dedup-id": "d1"})
                close(pub, pcol)
            finally:
                broker.stop()
            broker = Broker("--data-dir", data)
            try:
                pub, pcol = connect(broker.port)
                send(pub, pcol, dest, "dup", persistent="true", **{"dedup-id": "d1"})
                send(pub, pcol, dest, "new", persistent="true", **{"dedup-id": "d2"})
                sub, scol = connect(broker.port)
                subscribe(sub, scol, dest, "s")
                self.assertEqual([m.body for m in scol.wait_messages(2)], ["kept", "new"])
                time.sleep(0.2)
                self.assertEqual(len(scol.messages), 2)
                close(pub, pcol)
                close(sub, scol)
            finally:
                broker.stop()
        finally:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
