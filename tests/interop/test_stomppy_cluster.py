#!/usr/bin/python3
"""Interop test: stomp.py (Debian's python3-stomp 8) against two Stampede
nodes joined by a real nats-server (issue 14), all on loopback ports chosen
here: a subscriber on one node gets what stomp.py publishes on the other, in
order, once, in every STOMP version; a pattern subscription and a durable
subscription (RabbitMQ's dialect) work across nodes.
"""
import os
import re
import socket
import subprocess
import tempfile
import time
import unittest

from stomppy_common import close, name, open_conn, send, subscribe
from test_stomppy import start_broker, stop_broker

NATS = NATS_LOG = None
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
    proc = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(log.name, errors="replace") as f:
            if "Server is ready" in f.read():
                return proc, port, log.name
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("nats-server did not start")


def wait_connected(log):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(log, errors="replace") as f:
            if re.search(r"cluster: connected to NATS at", f.read()):
                return
        time.sleep(0.02)
    raise RuntimeError("node did not reach NATS")


def setUpModule():
    global NATS, NATS_LOG
    NATS, port, NATS_LOG = start_nats()
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
