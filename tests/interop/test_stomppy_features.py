#!/usr/bin/python3
"""Interop test: stomp.py (Debian's python3-stomp 8) with issue 13's temp
queues (request/reply through reply-to:/temp-queue/NAME) and durable topic
subscriptions in RabbitMQ's dialect (durable:true, auto-delete:false) and
ActiveMQ's (client-id + activemq.subscriptionName), against a real broker
started here (2 workers, loopback, port 0). A durable subscription is also
checked across a kill -9 of a broker with --data-dir.
"""
import os
import shutil
import signal
import tempfile
import time
import unittest

from stomppy_common import CLASSES, Collector, close, name, open_conn, send, subscribe
from test_stomppy import start_broker, stop_broker

WAIT = 5.0
BROKER = PORT = LOG = None


def setUpModule():
    global BROKER, PORT, LOG
    BROKER, PORT, LOG = start_broker()


def tearDownModule():
    rc = stop_broker(BROKER, LOG)
    assert rc == 0, "broker exit status on SIGTERM: %r" % (rc,)


def connect(version="1.2", port=None, client_id=None):
    return open_conn(port or PORT, version, {"client-id": client_id} if client_id else None)


RABBIT = {"durable": "true", "auto-delete": "false"}


class TempQueues(unittest.TestCase):
    def test_request_reply(self):
        rpc = name("queue", "rpc")
        server, scol = connect("1.2")
        subscribe(server, scol, rpc, "srv")
        client, ccol = connect("1.1")
        for i in range(3):
            client.send(rpc, "question %d" % i, headers={"reply-to": "/temp-queue/answers"})
            req = scol.wait_messages(i + 1)[i]
            reply_to = req.headers["reply-to"]
            self.assertTrue(reply_to.startswith("/reply-queue/"), reply_to)
            send(server, scol, reply_to, "answer %d" % i, **{"correlation-id": str(i)})
            rep = ccol.wait_messages(i + 1)[i]
            self.assertEqual(rep.body, "answer %d" % i)
            self.assertEqual(rep.headers["subscription"], "/temp-queue/answers")
            self.assertEqual(rep.headers["correlation-id"], str(i))
        # One reply queue per connection and name.
        self.assertEqual(len({m.headers["reply-to"] for m in scol.messages}), 1)
        close(client, ccol)
        close(server, scol)

    def test_reply_queue_is_not_for_others(self):
        rpc = name("queue", "rpc")
        server, scol = connect()
        subscribe(server, scol, rpc, "srv")
        client, ccol = connect()
        client.send(rpc, "q", headers={"reply-to": "/temp-queue/x"})
        reply_to = scol.wait_messages(1)[0].headers["reply-to"]
        thief, tcol = connect()
        thief.subscribe(reply_to, id="steal")
        tcol.wait_for(lambda: tcol.errors, "ERROR for subscribing to a reply queue")
        self.assertEqual(tcol.errors[0].headers["message"], "Invalid destination")
        send(server, scol, reply_to, "still mine")
        self.assertEqual(ccol.wait_messages(1)[0].body, "still mine")
        close(client, ccol)
        close(server, scol)


class DurableSubscriptions(unittest.TestCase):
    def test_rabbitmq_dialect(self):
        topic = name("topic", "dsub")
        sub, col = connect()
        subscribe(sub, col, topic, "d1", **RABBIT)
        pub, pcol = connect()
        send(pub, pcol, topic, "live")
        self.assertEqual(col.wait_messages(1)[0].body, "live")
        close(sub, col)
        for i in range(5):
            send(pub, pcol, topic, "away %d" % i)
        sub, col = connect("1.1")
        subscribe(sub, col, topic, "d1", **RABBIT)
        got = col.wait_messages(5)
        self.assertEqual([m.body for m in got], ["away %d" % i for i in range(5)])
        self.assertTrue(all(m.headers["destination"] == topic for m in got))
        # A second holder is refused while this one holds it.
        other, ocol = connect()
        other.subscribe(topic, id="d1", **RABBIT)
        ocol.wait_for(lambda: ocol.errors, "ERROR for a second holder")
        self.assertEqual(ocol.errors[0].headers["message"], "durable subscription in use")
        # UNSUBSCRIBE durable:true removes it.
        rid = "u-1"
        sub.unsubscribe(id="d1", headers={"durable": "true", "receipt": rid})
        col.wait_receipt(rid)
        send(pub, pcol, topic, "after removal")
        subscribe(sub, col, topic, "d1", **RABBIT)
        time.sleep(0.2)
        self.assertEqual(len(col.messages), 5)
        close(sub, col)
        close(pub, pcol)

    def test_activemq_dialect(self):
        topic = name("topic", "amq")
        sub, col = connect(client_id="reporting")
        subscribe(sub, col, topic, "s", ack="client-individual",
                  **{"activemq.subscriptionName": "daily"})
        close(sub, col)
        pub, pcol = connect()
        for i in range(3):
            send(pub, pcol, topic, "r%d" % i)
        sub, col = connect(client_id="reporting")
        subscribe(sub, col, topic, "s2", ack="client-individual",
                  **{"activemq.subscriptionName": "daily"})
        got = col.wait_messages(3)
        self.assertEqual([m.body for m in got], ["r0", "r1", "r2"])
        for m in got:
            sub.ack(m.headers["ack"])
        close(sub, col)
        close(pub, pcol)

    def test_selector_filters_what_is_kept(self):
        topic = name("topic", "sel")
        amq = {"activemq.subscriptionName": "eu", "selector": "region = 'eu'"}
        sub, col = connect(client_id="sel-client")
        subscribe(sub, col, topic, "s", **amq)
        close(sub, col)
        pub, pcol = connect()
        for i, region in enumerate(["eu", "us", "eu", "apac"]):
            send(pub, pcol, topic, "o%d" % i, region=region)
        sub, col = connect(client_id="sel-client")
        subscribe(sub, col, topic, "s", **amq)
        self.assertEqual([m.body for m in col.wait_messages(2)], ["o0", "o2"])
        time.sleep(0.2)
        self.assertEqual(len(col.messages), 2)
        close(sub, col)
        close(pub, pcol)

    def test_survives_kill9_with_a_data_dir(self):
        data = tempfile.mkdtemp(prefix="stampede-interop-dsub-")
        try:
            proc, port, log = start_broker(["--data-dir", data])
            sub, col = connect(port=port)
            subscribe(sub, col, "/topic/crash", "d", ack="client", **RABBIT)
            close(sub, col)
            pub, pcol = connect(port=port)
            for i in range(10):
                send(pub, pcol, "/topic/crash", "p%d" % i, persistent="true")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=5)
            proc, port, log2 = start_broker(["--data-dir", data])
            sub, col = connect(port=port)
            subscribe(sub, col, "/topic/crash", "d", ack="client", **RABBIT)
            got = col.wait_messages(10)
            self.assertEqual([m.body for m in got], ["p%d" % i for i in range(10)])
            close(sub, col)
            self.assertEqual(stop_broker(proc, log2), 0)
            os.unlink(log)
        finally:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
