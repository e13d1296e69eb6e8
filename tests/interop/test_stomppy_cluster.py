#!/usr/bin/python3
"""Interop test: stomp.py (Debian's python3-stomp 8) against two Stampede
nodes joined by a real nats-server (issue 14), all on loopback ports chosen
here: a subscriber on one node gets what stomp.py publishes on the other, in
order, once, in every STOMP version; a pattern subscription and a durable
subscription (RabbitMQ's dialect) work across nodes. The NATS server runs
with JetStream, so queues span the nodes too: a stomp.py consumer on each
node (client-individual acks) and a stomp.py producer, each message consumed
exactly once; a NACK on one node redelivers it.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from stomppy_common import Collector, close, name, open_conn, send, subscribe
from test_stomppy import start_broker, stop_broker

NATS = NATS_LOG = NATS_STORE = None
NATS_PORT = 0
NODES = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nats():
    binary = os.environ.get("ITEST_NATS_SERVER", "/usr/sbin/nats-server")
    if not os.path.exists(binary):
        raise RuntimeError("%s is missing: run scripts/dev.sh deps" % binary)
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="stampede-nats-", suffix=".log", delete=False)
    store = tempfile.mkdtemp(prefix="stampede-nats-js-")
    proc = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(log.name, errors="replace") as f:
            if "Server is ready" in f.read():
                return proc, port, log.name, store
        time.sleep(0.02)
    proc.kill()
    shutil.rmtree(store, ignore_errors=True)
    raise RuntimeError("nats-server did not start")


def nats_request(subject, payload, timeout=3.0):
    """A core-NATS request from a plain socket (no client library): the
    first reply's payload (bytes), or None within the timeout."""
    with socket.create_connection(("127.0.0.1", NATS_PORT), timeout=timeout) as s:
        data = payload.encode()
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.py 1\r\n'
                  + ("PUB %s _INBOX.py %d\r\n" % (subject, len(data))).encode() + data + b"\r\n")
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(rb"MSG _INBOX\.py 1 (\d+)\r\n", buf)
            if m and len(buf) >= m.end() + int(m.group(1)):
                return buf[m.end():m.end() + int(m.group(1))]
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
    return None


def wait_pulls(queue, want, timeout=10.0):
    """Until JetStream's consumer of `queue` (a name of [a-z0-9-], so its
    subject is stp.q.NAME) has `want` pulls waiting: one per node at rest."""
    token = ('"filter_subject":"stp.q.%s"' % queue[len("/queue/"):]).encode()
    deadline = time.monotonic() + timeout
    reply = None
    while time.monotonic() < deadline:
        reply = nats_request("$JS.API.CONSUMER.LIST.STP_QUEUES", '{"offset":0}') or b""
        for consumer in reply.split(b'{"stream_name"'):
            m = re.search(rb'"num_waiting":(\d+)', consumer)
            if token in consumer and m and int(m.group(1)) >= want:
                return
        time.sleep(0.02)
    raise AssertionError("fewer than %d pulls waiting for %s: %r" % (want, queue, reply))


def wait_connected(log):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(log, errors="replace") as f:
            if re.search(r"cluster: connected to NATS at", f.read()):
                return
        time.sleep(0.02)
    raise RuntimeError("node did not reach NATS")


def setUpModule():
    global NATS, NATS_LOG, NATS_STORE, NATS_PORT
    NATS, port, NATS_LOG, NATS_STORE = start_nats()
    NATS_PORT = port
    for node in ("py-a", "py-b"):
        proc, sport, log = start_broker(("--cluster", "nats://127.0.0.1:%d" % port,
                                         "--node-name", node))
        NODES.append((proc, sport, log))
        wait_connected(log)


def tearDownModule():
    rcs = [stop_broker(proc, log) for proc, _, log in NODES]
    NATS.terminate()
    NATS.wait(10)
    os.unlink(NATS_LOG)
    shutil.rmtree(NATS_STORE, ignore_errors=True)
    assert rcs == [0, 0], "node exit statuses on SIGTERM: %r" % (rcs,)


def port(i):
    return NODES[i][1]


class AcrossNodes(unittest.TestCase):
    def test_publish_on_one_node_receive_on_the_other_every_version(self):
        for version in ("1.0", "1.1", "1.2"):
            topic = name("topic", "x" + version.replace(".", ""))
            sub, scol = open_conn(port(1), version)
            subscribe(sub, scol, topic, "s1")  # its RECEIPT: NATS has the interest
            pub, pcol = open_conn(port(0), version)
            for i in range(50):
                pub.send(topic, "m%d" % i, headers={"x-seq": str(i)})
            send(pub, pcol, topic, "last")
            got = scol.wait_messages(51)
            self.assertEqual([m.body for m in got], ["m%d" % i for i in range(50)] + ["last"])
            self.assertEqual(got[7].headers["x-seq"], "7")
            self.assertEqual(got[0].headers["destination"], topic)
            time.sleep(0.2)
            self.assertEqual(len(scol.messages), 51, "a message arrived twice")
            close(pub, pcol)
            close(sub, scol)

    def test_pattern_subscription_gets_remote_topics(self):
        base = name("topic", "pat")
        sub, scol = open_conn(port(1))
        subscribe(sub, scol, base + ".*", "star")
        subscribe(sub, scol, base + ".#", "hash")
        pub, pcol = open_conn(port(0))
        send(pub, pcol, base + ".eu", "one word")
        send(pub, pcol, base + ".eu.paris", "two words")
        got = scol.wait_messages(3)
        pairs = sorted((m.headers["subscription"], m.body) for m in got)
        self.assertEqual(pairs, [("hash", "one word"), ("hash", "two words"),
                                 ("star", "one word")])
        time.sleep(0.2)
        self.assertEqual(len(scol.messages), 3)
        close(pub, pcol)
        close(sub, scol)

    def test_durable_subscription_keeps_remote_messages_while_away(self):
        topic = name("topic", "dur")
        headers = {"durable": "true", "auto-delete": "false"}
        sub, scol = open_conn(port(1), headers={"client-id": "py-cluster"})
        subscribe(sub, scol, topic, "d1", **headers)
        close(sub, scol)
        pub, pcol = open_conn(port(0))
        for i in range(5):
            send(pub, pcol, topic, "kept %d" % i)
        sub, scol = open_conn(port(1), headers={"client-id": "py-cluster"})
        subscribe(sub, scol, topic, "d1", **headers)
        self.assertEqual([m.body for m in scol.wait_messages(5)],
                         ["kept %d" % i for i in range(5)])
        close(pub, pcol)
        close(sub, scol)


class AckingCollector(Collector):
    """A Collector that ACKs each MESSAGE (STOMP 1.2) as it arrives."""

    def __init__(self, conn):
        super().__init__()
        self.conn = conn

    def on_message(self, frame):
        super().on_message(frame)
        self.conn.ack(frame.headers["ack"])


def acking_consumer(port_, dest, sid, prefetch):
    conn, col = open_conn(port_)
    acker = AckingCollector(conn)
    conn.set_listener("acker", acker)
    subscribe(conn, col, dest, sid, ack="client-individual", **{"prefetch-count": str(prefetch)})
    return conn, col, acker


class QueuesAcrossNodes(unittest.TestCase):
    def test_each_message_consumed_exactly_once_over_two_nodes(self):
        queue = name("queue", "once")
        consumers = [acking_consumer(port(i), queue, "c%d" % i, 10) for i in (0, 1)]
        wait_pulls(queue, 2)  # both nodes' first pull waits at JetStream (for the spread below)
        pub, pcol = open_conn(port(0))
        n = 100
        for i in range(n - 1):
            pub.send(queue, "q%d" % i)
        send(pub, pcol, queue, "q%d" % (n - 1))  # its RECEIPT: all stored in JetStream
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if sum(len(a.messages) for _, _, a in consumers) >= n:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # a duplicate would show up by now
        bodies = [m.body for _, _, a in consumers for m in a.messages]
        per_node = [len(a.messages) for _, _, a in consumers]
        self.assertEqual(len(bodies), n, "per node: %r" % per_node)
        self.assertEqual(sorted(bodies), sorted("q%d" % i for i in range(n)))
        for _, _, a in consumers:  # each consumer sees the queue's order
            seq = [int(m.body[1:]) for m in a.messages]
            self.assertEqual(seq, sorted(seq))
            self.assertTrue(all(m.headers["redelivered"] == "false" for m in a.messages))
        # One queue over both nodes: the node without the producer's
        # connection gets some too (prefetch-count 10 keeps either from
        # taking all).
        self.assertTrue(all(a.messages for _, _, a in consumers),
                        "per node: %r" % [len(a.messages) for _, _, a in consumers])
        close(pub, pcol)
        for conn, col, _ in consumers:
            close(conn, col)

    def test_nack_on_one_node_redelivers(self):
        queue = name("queue", "nack")
        pub, pcol = open_conn(port(0))
        send(pub, pcol, queue, "again")
        ca, cacol = open_conn(port(1))  # the other node: stored there, fetched here
        subscribe(ca, cacol, queue, "a", ack="client-individual", **{"prefetch-count": "1"})
        first = cacol.wait_messages(1)[0]
        self.assertEqual((first.body, first.headers["redelivered"]), ("again", "false"))
        cb, cbcol = open_conn(port(0))
        subscribe(cb, cbcol, queue, "b", ack="client-individual", **{"prefetch-count": "1"})
        ca.nack(first.headers["ack"])
        cols = (cacol, cbcol)
        deadline = time.monotonic() + 5
        while sum(len(c.messages) for c in cols) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(sum(len(c.messages) for c in cols), 2, "no redelivery within 5 s")
        again = (cacol.messages[1:] + cbcol.messages)[0]
        self.assertEqual((again.body, again.headers["redelivered"]), ("again", "true"))
        owner = ca if again in cacol.messages else cb
        owner.ack(again.headers["ack"])
        time.sleep(0.5)
        self.assertEqual(sum(len(c.messages) for c in cols), 2, "delivered again after its ACK")
        for conn, col in ((pub, pcol), (ca, cacol), (cb, cbcol)):
            close(conn, col)


if __name__ == "__main__":
    unittest.main(verbosity=2)
