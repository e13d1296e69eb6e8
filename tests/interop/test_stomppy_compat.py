#!/usr/bin/python3
"""Interop test: issue 13's compatibility details as stomp.py sees them.

- STOMP 1.1 ACK/NACK with a missing or made-up `subscription` header is
  resolved by message-id (RabbitMQ's own suite sends a made-up one);
- the RECEIPT of a SEND, ACK or NACK inside a transaction arrives at COMMIT,
  not before;
- every MESSAGE carries redelivered:true|false (false the first time, true
  after a NACK on a queue or a topic);
- prefetch-count bounds unacked topic messages in client ack modes;
- ERROR texts are RabbitMQ's (on_error's frame headers and body).

Starts its own broker like test_stomppy.py. Run with /usr/bin/python3.
"""
import time
import unittest
import uuid

from stomp.exception import ConnectFailedException
from stomppy_common import CLASSES, Collector, close, name, send, subscribe
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


def connect(version="1.2", port=None, login=None, passcode=None, wait=True):
    conn = CLASSES[version]([("127.0.0.1", port or PORT)], reconnect_attempts_max=1)
    col = Collector()
    conn.set_listener("collector", col)
    if wait:
        conn.connect(login, passcode, wait=True)
        col.wait_for(lambda: col.connected is not None, "CONNECTED")
    return conn, col


def subscribe_h(conn, col, dest, sid, ack, headers):
    rid = "sub-" + uuid.uuid4().hex[:8]
    conn.subscribe(dest, id=sid, ack=ack, headers=headers, receipt=rid)
    col.wait_receipt(rid)


def quiet(col, n, secs=0.3):
    """Nothing beyond n messages arrives for secs."""
    time.sleep(secs)
    with col.cv:
        assert len(col.messages) == n, [m.body for m in col.messages]


def expect_error(test, col, message, body=None):
    col.wait_for(lambda: col.errors, "ERROR " + message)
    err = col.errors[0]
    test.assertEqual(err.headers.get("message"), message, err.headers)
    if body is not None:
        test.assertEqual(err.body, body)
    col.wait_for(lambda: col.disconnected, "close after the ERROR")
    return err


class StompPyCompat(unittest.TestCase):
    # --- (a) STOMP 1.1 ACK/NACK resolved by message-id ---

    def test_1_1_ack_without_or_with_made_up_subscription(self):
        q = name("queue", "ack11")
        conn, col = connect("1.1")
        subscribe(conn, col, q, "real", ack="client-individual")
        for body in ("a", "b", "c"):
            send(conn, col, q, body)
        msgs = col.wait_messages(3)
        # No subscription header at all (stomp.py's ack() insists on one:
        # send the frame as a client that leaves it out would).
        conn.send_frame("ACK", {"message-id": msgs[0].headers["message-id"], "receipt": "r-a"})
        col.wait_receipt("r-a")
        # A made-up subscription, as RabbitMQ's own suite sends.
        conn.ack(msgs[1].headers["message-id"], "made-up", receipt="r-b")
        col.wait_receipt("r-b")
        # NACK with a made-up subscription: c comes back, redelivered.
        conn.nack(msgs[2].headers["message-id"], "nobody", receipt="r-c")
        col.wait_receipt("r-c")
        again = col.wait_messages(4)[3]
        self.assertEqual(again.body, "c")
        self.assertEqual(again.headers.get("redelivered"), "true")
        conn.ack(again.headers["message-id"], "real", receipt="r-d")
        col.wait_receipt("r-d")
        self.assertEqual(col.errors, [])
        close(conn, col)
        # Nothing is left on the queue: a new consumer gets only a new message.
        conn, col = connect("1.1")
        subscribe(conn, col, q, "again", ack="auto")
        send(conn, col, q, "fresh")
        self.assertEqual([m.body for m in col.wait_messages(1)], ["fresh"])
        quiet(col, 1)
        close(conn, col)

    # --- (b) receipts inside a transaction come at COMMIT ---

    def test_transactional_receipts_arrive_at_commit(self):
        q = name("queue", "txr")
        sub, scol = connect()
        subscribe(sub, scol, q, "s", ack="client-individual")
        pub, pcol = connect()
        send(pub, pcol, q, "one")
        send(pub, pcol, q, "two")
        m1, m2 = scol.wait_messages(2)
        tx = sub.begin()
        sub.ack(m1.headers["ack"], transaction=tx, receipt="ack-in-tx")
        sub.nack(m2.headers["ack"], transaction=tx, receipt="nack-in-tx")
        ptx = pub.begin()
        pub.send(q, "three", transaction=ptx, receipt="send-in-tx")
        time.sleep(0.5)
        self.assertNotIn("ack-in-tx", scol.receipts)
        self.assertNotIn("nack-in-tx", scol.receipts)
        self.assertNotIn("send-in-tx", pcol.receipts)
        quiet(scol, 2)  # neither the NACK's redelivery nor "three" yet
        pub.commit(ptx, receipt="pub-commit")
        pcol.wait_receipt("pub-commit")
        self.assertLess(pcol.receipts.index("send-in-tx"), pcol.receipts.index("pub-commit"))
        sub.commit(tx, receipt="sub-commit")
        scol.wait_receipt("sub-commit")
        self.assertLess(scol.receipts.index("ack-in-tx"), scol.receipts.index("nack-in-tx"))
        self.assertLess(scol.receipts.index("nack-in-tx"), scol.receipts.index("sub-commit"))
        later = scol.wait_messages(4)[2:]
        self.assertEqual(sorted(m.body for m in later), ["three", "two"])
        for m in later:
            self.assertEqual(m.headers.get("redelivered"), "true" if m.body == "two" else "false")
        close(pub, pcol)
        close(sub, scol)

    # --- (c) redelivered on every MESSAGE ---

    def test_every_message_carries_redelivered(self):
        for version in ("1.0", "1.1", "1.2"):
            t, q = name("topic", "rd"), name("queue", "rd")
            conn, col = connect(version)
            subscribe(conn, col, t, "t", ack="auto")
            subscribe(conn, col, q, "q", ack="client-individual")
            send(conn, col, t, "topic-msg")
            send(conn, col, q, "queue-msg")
            msgs = col.wait_messages(2)
            for m in msgs:
                self.assertEqual(m.headers.get("redelivered"), "false", (version, m.headers))
            qm = [m for m in msgs if m.body == "queue-msg"][0]
            if version == "1.0":
                # 1.0 has no NACK: the consumer leaving puts it back.
                conn.unsubscribe("q")
                subscribe(conn, col, q, "q2", ack="client")
            elif version == "1.1":
                conn.nack(qm.headers["message-id"], "q")
            else:
                conn.nack(qm.headers["ack"])
            m = col.wait_messages(3)[2]
            self.assertEqual((m.body, m.headers.get("redelivered")), ("queue-msg", "true"),
                             (version, m.headers))
            close(conn, col)

    # --- prefetch-count on topics in client ack modes ---

    def test_topic_prefetch_client_individual(self):
        t = name("topic", "pf")
        sub, scol = connect()
        subscribe_h(sub, scol, t, "s", "client-individual", {"prefetch-count": "2"})
        pub, pcol = connect()
        for i in range(1, 6):
            send(pub, pcol, t, "m%d" % i)
        m1, m2 = scol.wait_messages(2)
        quiet(scol, 2)
        sub.ack(m2.headers["ack"])
        self.assertEqual(scol.wait_messages(3)[2].body, "m3")
        quiet(scol, 3)
        # NACK m1: it comes back (redelivered) before m4.
        sub.nack(m1.headers["ack"])
        r1 = scol.wait_messages(4)[3]
        self.assertEqual((r1.body, r1.headers.get("redelivered")), ("m1", "true"))
        quiet(scol, 4)
        sub.ack(r1.headers["ack"])
        sub.ack(scol.messages[2].headers["ack"])
        self.assertEqual([m.body for m in scol.wait_messages(6)[4:]], ["m4", "m5"])
        close(pub, pcol)
        close(sub, scol)

    def test_topic_prefetch_client_cumulative_1_0(self):
        t = name("topic", "pf10")
        sub, scol = connect("1.0")
        subscribe_h(sub, scol, t, "s", "client", {"prefetch-count": "3"})
        pub, pcol = connect()
        for i in range(1, 8):
            send(pub, pcol, t, "m%d" % i)
        first = scol.wait_messages(3)
        quiet(scol, 3)
        sub.ack(first[2].headers["message-id"])  # cumulative: all three
        self.assertEqual([m.body for m in scol.wait_messages(6)[3:]], ["m4", "m5", "m6"])
        quiet(scol, 6)
        close(pub, pcol)
        close(sub, scol)

    # --- ERROR texts as stomp.py's on_error sees them ---

    def test_error_texts(self):
        conn, col = connect()
        conn.subscribe("/foo", id="1", ack="auto")
        expect_error(self, col, "Unknown destination",
                     "'/foo' is not a valid destination.\n"
                     "Valid destination types are: /topic/, /queue/, /temp-queue/, /reply-queue/.")
        conn, col = connect()
        conn.subscribe("/topic/dup-py", id="T_1", ack="auto")
        conn.subscribe("/topic/dup-py2", id="T_1", ack="auto")
        expect_error(self, col, "Duplicated subscription identifier",
                     "A subscription identified by 'T_1' already exists.")
        conn, col = connect()
        conn.send_frame("SEND", {"receipt": "x"}, "no destination")
        err = expect_error(self, col, "Missing destination",
                           "SEND must include a 'destination' header.")
        self.assertEqual(err.headers.get("receipt-id"), "x")
        conn, col = connect()
        conn.send("/queue/", "blank")
        expect_error(self, col, "Invalid destination")
        conn, col = connect("1.1")
        conn.unsubscribe("never")
        expect_error(self, col, "No subscription found")
        conn, col = connect()
        conn.commit("not-begun")
        expect_error(self, col, "Bad transaction")

    def test_refused_login_texts(self):
        proc, port, log = start_broker(("--user", "alice:Right-Pass-9"))
        try:
            bodies, header_names = [], []
            for login, pw in (("alice", "wrong"), ("mallory", "wrong"), ("mallory", "Right-Pass-9")):
                conn, col = connect(port=port, wait=False)
                with self.assertRaises(ConnectFailedException):
                    conn.connect(login, pw, wait=True)
                err = expect_error(self, col, "Bad CONNECT")
                bodies.append(err.body)
                header_names.append(sorted(k for k in err.headers if k != "content-length"))
            self.assertEqual(header_names[0], header_names[1])
            self.assertEqual(header_names[0], header_names[2])
            self.assertEqual(bodies, ["Access refused for user 'alice'",
                                      "Access refused for user 'mallory'",
                                      "Access refused for user 'mallory'"])
        finally:
            self.assertEqual(stop_broker(proc, log), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
