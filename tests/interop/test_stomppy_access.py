#!/usr/bin/python3
"""Interop test: stomp.py (Debian's python3-stomp 8) against Stampede's access
control (issue 11).

Makes a users file at test time from `stampede hash-password` output (alice,
bob) and an ACL file giving every user its own queues (`* readwrite
/queue/{login}.**`) and alice read on /topic/alerts.**, starts a broker
($STAMPEDE_BIN, --listen stomp://127.0.0.1:0 --workers 2 --users-file
--acl-file) and, through stomp.py: connects with login and passcode,
subscribes and sends on allowed destinations and receives; a wrong passcode
makes stomp.py's connect fail (ConnectFailedException, with the ERROR
"Bad CONNECT" on the listener); a denied SUBSCRIBE and a denied SEND get
on_error "access_refused" (body "access to DEST refused for user 'NAME' ...") and the connection closes, while other
clients keep working. Run with /usr/bin/python3 (it has python3-stomp).
"""
import os
import shutil
import subprocess
import tempfile
import unittest

from stomp.exception import ConnectFailedException
from stomppy_common import CLASSES, Collector, close, send, subscribe
from test_stomppy import start_broker, stop_broker

WAIT = 5.0
TMP = None
BROKER = None
PORT = None
LOG = None

PASSCODES = {"alice": "Alice-Interop-5e1f", "bob": "Bob-Interop-a2c9"}
ACL = """# each user its own queues; alerts are alice's to read
*      readwrite  /queue/{login}.**
alice  read       /topic/alerts.**
bob    write      /topic/alerts.**
"""


def binary():
    b = os.environ.get("STAMPEDE_TEST_BROKER") or os.environ.get("STAMPEDE_BIN")
    if not b:
        raise RuntimeError("STAMPEDE_BIN is not set")
    return b


def hash_password(pw):
    out = subprocess.run([binary(), "hash-password"], input=pw + "\n", capture_output=True,
                         text=True, timeout=20, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("$argon2id$v=19$"), out
    return lines[0]


def setUpModule():
    global TMP, BROKER, PORT, LOG
    TMP = tempfile.mkdtemp(prefix="stampede-interop-access-")
    users = os.path.join(TMP, "users")
    with open(users, "w", encoding="ascii") as f:
        for login, pw in PASSCODES.items():
            f.write("%s:%s\n" % (login, hash_password(pw)))
    acl = os.path.join(TMP, "acl")
    with open(acl, "w", encoding="ascii") as f:
        f.write(ACL)
    BROKER, PORT, LOG = start_broker(("--users-file", users, "--acl-file", acl))


def tearDownModule():
    with open(LOG, encoding="utf-8", errors="replace") as f:
        text = f.read()
    rc = stop_broker(BROKER, LOG)
    shutil.rmtree(TMP, ignore_errors=True)
    assert rc == 0, "broker exit status on SIGTERM: %r" % (rc,)
    for pw in PASSCODES.values():
        assert pw not in text, "the broker log shows a passcode"
    assert "wrong-Interop" not in text, "the broker log shows a passcode"


def open_conn(version="1.2"):
    """A stomp.py connection with a Collector; connect() is left to the caller
    (one attempt: no reconnecting after the broker refuses)."""
    conn = CLASSES[version]([("127.0.0.1", PORT)], reconnect_attempts_max=1)
    col = Collector()
    conn.set_listener("collector", col)
    return conn, col


def login(who, version="1.2"):
    conn, col = open_conn(version)
    conn.connect(who, PASSCODES[who], wait=True)
    col.wait_for(lambda: col.connected is not None, "CONNECTED")
    return conn, col


def expect_denied(test, conn, col, dest):
    col.wait_for(lambda: col.errors, "ERROR")
    err = col.errors[0]
    test.assertEqual(err.headers.get("message"), "access_refused", err.headers)
    test.assertTrue(err.body.startswith("access to %s refused for user '" % dest), err.body)
    test.assertEqual(err.headers.get("receipt-id"), "denied", err.headers)
    col.wait_for(lambda: col.disconnected, "close after the ERROR")


class StompPyAccess(unittest.TestCase):
    def test_login_and_allowed_destinations(self):
        for version in ("1.0", "1.1", "1.2"):
            conn, col = login("alice", version)
            self.assertEqual(col.connected.headers.get("version"), version)
            queue = "/queue/alice.interop-" + version
            subscribe(conn, col, queue, "q")
            send(conn, col, queue, "hello alice %s" % version)
            self.assertEqual(col.wait_messages(1)[0].body, "hello alice %s" % version)
            close(conn, col)
        # alice reads the alerts bob writes.
        alice, acol = login("alice")
        subscribe(alice, acol, "/topic/alerts.disk", "a")
        bob, bcol = login("bob")
        send(bob, bcol, "/topic/alerts.disk", "disk full")
        self.assertEqual(acol.wait_messages(1)[0].body, "disk full")
        close(bob, bcol)
        close(alice, acol)

    def test_wrong_passcode_fails_connect(self):
        conn, col = open_conn()
        with self.assertRaises(ConnectFailedException):
            conn.connect("alice", "wrong-Interop", wait=True)
        col.wait_for(lambda: col.errors, "ERROR")
        err = col.errors[0]
        self.assertEqual(err.headers.get("message"), "Bad CONNECT", err.headers)
        self.assertEqual(err.body, "Access refused for user 'alice'")
        self.assertIsNone(col.connected)
        # An unknown login gets the very same answer.
        conn, col = open_conn()
        with self.assertRaises(ConnectFailedException):
            conn.connect("mallory", "wrong-Interop", wait=True)
        col.wait_for(lambda: col.errors, "ERROR")
        self.assertEqual(col.errors[0].headers.get("message"), "Bad CONNECT")
        self.assertEqual(col.errors[0].body, "Access refused for user 'mallory'")

    def test_denied_subscribe_and_send(self):
        # A bystander reads its own queue throughout.
        by, bycol = login("bob")
        subscribe(by, bycol, "/queue/bob.inbox", "in")

        # bob's queue is not alice's to read.
        conn, col = login("alice")
        conn.subscribe("/queue/bob.inbox", id="x", receipt="denied")
        expect_denied(self, conn, col, "/queue/bob.inbox")
        # Nor to write.
        conn, col = login("alice")
        conn.send("/queue/bob.inbox", "intrusion", receipt="denied")
        expect_denied(self, conn, col, "/queue/bob.inbox")
        # bob may write the alerts but not read them.
        conn, col = login("bob")
        conn.subscribe("/topic/alerts.disk", id="y", receipt="denied")
        expect_denied(self, conn, col, "/topic/alerts.disk")

        # The bystander saw none of it and still works.
        send(by, bycol, "/queue/bob.inbox", "mine")
        got = bycol.wait_messages(1)
        self.assertEqual(got[0].body, "mine")
        self.assertEqual(bycol.errors, [])
        close(by, bycol)


if __name__ == "__main__":
    unittest.main(verbosity=2)
