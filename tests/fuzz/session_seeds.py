#!/usr/bin/env python3
"""Write the seed inputs of fuzz_session (tests/fuzz/corpus/session/).

Each seed is byte 0 (the broker's limits, 0-3: see conf_args in
fuzz_session.c) and a list of operations, written here by name with the same
argument bytes fuzz_session.c reads. Run from the repository root:
    python3 tests/fuzz/session_seeds.py
"""
import os

OPS = ["CONNECT", "SEND", "SEND2", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK", "BEGIN",
       "COMMIT", "ABORT", "DISCONNECT", "RAW", "EOL", "FLUSH", "PARTIAL", "SYNC", "USE",
       "CLOSE"]

# Destinations (index into dests[]): 0 /queue/a, 2 /topic/a, 6 /queue/r, 7 /topic/r.
QA, TA, QR, TR = 0, 2, 6, 7
V10, V11, V12, VALL = 0, 1, 2, 3  # CONNECT accept-version
RECEIPT_CONNECT = 64
AUTO, CLIENT, INDIV = 1 << 2, 2 << 2, 3 << 2  # SUBSCRIBE ack mode
PF1, PF2, PF3, PF10 = 2 << 5, 3 << 5, 4 << 5, 5 << 5  # prefetch-count
SMALL = lambda n: 0x40 | n  # SEND body taken from the input
MEDIUM = lambda k: 0x80 | k  # 200 + 20 k bytes
LARGE = lambda k: 0xC0 | k  # 2000 + 1000 k bytes
R, TXN, CL = 1, 2, 4  # SEND flags


def enc(conf, *ops):
    out = bytearray([conf])
    for op in ops:
        name, *args = op
        out.append(OPS.index(name))
        for a in args:
            out += a if isinstance(a, (bytes, bytearray)) else bytes([a])
    return bytes(out)


def send(dest, body, flags=0, txn=None, data=b""):
    args = [dest, body, flags]
    if flags & TXN:
        args.append(txn or 0)
    return ("SEND", *args, data)


SEEDS = {
    # Topic round trip, 1.2.
    "topic_roundtrip": enc(3, ("CONNECT", V12 | RECEIPT_CONNECT), ("FLUSH",),
                           ("SUBSCRIBE", TA, 0 | AUTO, R), ("FLUSH",),
                           send(TA, SMALL(5), R | CL, data=b"hello"), ("FLUSH",),
                           ("DISCONNECT", 1), ("FLUSH",)),
    # Queue with client acks between two clients, acks and nacks.
    "queue_client_ack": enc(0, ("CONNECT", V12), ("SUBSCRIBE", QR, 0 | CLIENT | PF2, R), ("FLUSH",),
                            ("USE", 1), ("CONNECT", V12), send(QR, SMALL(3), 0, data=b"one"),
                            send(QR, MEDIUM(10), 0), send(QR, SMALL(3), R, data=b"two"),
                            ("FLUSH",), ("USE", 0), ("SYNC", 0), ("ACK", 0, 64 | 1), ("FLUSH",),
                            ("NACK", 0, 64), ("SYNC", 0), ("UNSUBSCRIBE", 64), ("FLUSH",)),
    # 1.0 and 1.1 clients: message-id acks, client-individual.
    "old_versions": enc(3, ("CONNECT", V10), ("SUBSCRIBE", QA, 1 | INDIV, R), ("FLUSH",),
                        ("USE", 1), ("CONNECT", V11), ("SUBSCRIBE", TA, 0 | CLIENT, R),
                        send(QA, SMALL(2), 0, data=b"q1"), send(TA, SMALL(2), R, data=b"t1"),
                        ("FLUSH",), ("SYNC", 0), ("ACK", 0, 64 | 1), ("FLUSH",), ("USE", 0),
                        ("ACK", 0, 64 | 1), ("FLUSH",)),
    # Transactions: SENDs and an ACK committed, another aborted.
    "transactions": enc(0, ("CONNECT", V12), ("SUBSCRIBE", QA, 0 | CLIENT | PF1, 0),
                        ("BEGIN", 0), send(QA, SMALL(1), TXN, 0, b"a"),
                        send(QA, SMALL(1), TXN, 0, b"b"), ("COMMIT", 8), ("FLUSH",), ("SYNC", 0),
                        ("BEGIN", 1), ("ACK", 0, 64 | TXN | (1 << 2)), ("ABORT", 1 | 8),
                        ("FLUSH",)),
    # Issue 9 bug 2's shape: a client-ack consumer with a full window, then in
    # one write (after a partial frame, so it lands in the connection's own
    # read buffer) a transaction whose COMMIT throttles and whose ACK drains.
    "throttle_ack_commit": enc(0, ("CONNECT", V12), ("SUBSCRIBE", QR, 0 | CLIENT | PF3, R),
                               ("FLUSH",), ("USE", 1), ("CONNECT", V12),
                               send(QR, SMALL(1), 0, data=b"1"), send(QR, SMALL(1), 0, data=b"2"),
                               send(QR, SMALL(1), R, data=b"3"), ("FLUSH",), ("USE", 0), ("SYNC", 0),
                               ("BEGIN", 0), send(QR, MEDIUM(40), TXN, 0),
                               send(QR, MEDIUM(40), TXN, 0), send(QR, MEDIUM(40), TXN, 0),
                               send(QR, MEDIUM(40), TXN, 0), ("ACK", 0, 64 | TXN),
                               ("COMMIT", 8), ("PARTIAL", 0, 9), ("FLUSH",), ("SYNC", 0)),
    # A slow consumer (never reads... much) of a topic and large messages.
    "slow_topic": enc(2, ("CONNECT", V12), ("SUBSCRIBE", TR, 0 | AUTO, R), ("FLUSH",), ("USE", 1),
                      ("CONNECT", V12), send(TR, LARGE(3), 0), send(TR, LARGE(3), 0),
                      send(TR, LARGE(3), R), ("FLUSH",), ("SYNC", 0)),
    # Found by fuzz_session on 60b1eed (issue 9 bug 3): a 1.1 publisher's
    # header named "\\n" (an escaped LF) reached a 1.0 subscriber as a raw
    # LF, which broke the frame (the client could not parse it).
    "bug3_lf_header_to_v10": enc(3, ("CONNECT", V10), ("SUBSCRIBE", QA, 1 | INDIV, R), ("SYNC", 0),
                                 ("USE", 1), ("CONNECT", V11), ("SUBSCRIBE", TA, CLIENT, R),
                                 send(QA, 0, 0x40, data=bytes([0x3D, 0x41, 0xF1, 0x41])),
                                 ("FLUSH",)),
    # Heart-beats both ways every 5 ms (limits 2 allow 1 ms), a publisher
    # paused by the memory budget stays connected while silent.
    "heartbeats": enc(2, ("CONNECT", V12 | 32, 2), ("SUBSCRIBE", QA, 0 | CLIENT | PF1, R),
                      ("FLUSH",), ("USE", 1), ("CONNECT", V12 | 32, 2),
                      send(QA, LARGE(4), 0), send(QA, LARGE(4), 0), send(QA, LARGE(4), R),
                      ("FLUSH",), ("SYNC", 15), ("USE", 0), ("EOL", 0), ("FLUSH",),
                      ("SYNC", 15)),
    # Issue 13: a durable subscription (ActiveMQ's: client-id from CONNECT's
    # host flag, activemq.subscriptionName) left and removed, and a request
    # with reply-to:/temp-queue/t answered on the rewritten reply queue.
    "durable_and_temp": enc(0, ("CONNECT", V12 | 16), ("SUBSCRIBE", TA, 0 | CLIENT, R | 32),
                            ("FLUSH",), send(TA, 0, R), ("FLUSH",),
                            ("UNSUBSCRIBE", 0 | 64), ("FLUSH",),
                            send(TA, 0, R), ("SUBSCRIBE", TA, 0 | AUTO, R | 32), ("FLUSH",),
                            ("SUBSCRIBE", QR, 1 | AUTO, R), ("FLUSH",),
                            send(QR, 0, R | 0x20, data=bytes([1, 12])), ("FLUSH",),
                            ("UNSUBSCRIBE", 0 | 32 | 64), ("FLUSH",)),
    # Frames split at odd points, heart-beats, garbage after CONNECT.
    "split_raw": enc(1, ("CONNECT", VALL), ("PARTIAL", 0, 5), ("EOL", 1), ("FLUSH",),
                     send(QA, SMALL(4), R, data=b"ab\x00c"), ("PARTIAL", 0, 20), ("FLUSH",),
                     ("RAW", 12, b"BOGUS\nx:y\n\n\x00"), ("FLUSH",)),
}


def main():
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "session")
    os.makedirs(d, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
