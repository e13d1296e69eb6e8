/* Unit tests of receipts as fences and of transactions
 * (src/broker/session_send.c) through the net's ops table, without sockets
 * (broker_harness.h). */
#include "broker_harness.h"
#include "stampede/counter.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fini(void)
{
    th_teardown();
}

TestSuite(txn, .fini = fini);

Test(txn, nothing_is_delivered_before_commit)
{
    th_setup(1, NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/q\n\n");
    th_pump();
    th_send(pub, "BEGIN\ntransaction:t1\n\n");
    th_send(pub, "SEND\ndestination:/queue/q\ntransaction:t1\n\none");
    th_send(pub, "SEND\ndestination:/queue/q\ntransaction:t1\n\ntwo");
    th_pump();
    th_expect_none(sub);
    th_send(pub, "COMMIT\ntransaction:t1\nreceipt:c\n\n");
    th_pump();
    struct stp_frame m = th_expect(sub, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&m), "one");
    m = th_expect(sub, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&m), "two");
    struct stp_frame r = th_expect(pub, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&r, "receipt-id"), "c");
}

/* --- helpers --- */

static void expect_receipt(struct th_conn *t, const char *id)
{
    struct stp_frame r = th_expect(t, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&r, "receipt-id"), id);
}

static void expect_msg(struct th_conn *t, const char *body)
{
    struct stp_frame f = th_expect(t, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), body);
}

/* Subscribe t to dest (id s) and wait for the RECEIPT. */
static void consume(struct th_conn *t, const char *dest, const char *extra)
{
    th_sendf(t, "SUBSCRIBE\nid:s\ndestination:%s\n%sreceipt:sub\n\n", dest, extra);
    th_pump();
    expect_receipt(t, "sub");
}

/* After th_pump: the next frame of t is an ERROR with this message and body,
 * nothing follows, and the connection was torn down and freed. */
static void expect_error(struct th_conn *t, const char *message, const char *body)
{
    struct stp_frame e;
    cr_assert(th_frame(t, &e), "expected ERROR %s, got nothing", message);
    cr_assert_eq(e.cmd, STP_CMD_ERROR, "expected ERROR %s, got %s", message, stp_cmd_name(e.cmd));
    cr_assert_str_eq(th_header(&e, "message"), message);
    if (body)
        cr_assert_str_eq(th_body(&e), body);
    th_expect_none(t);
    cr_assert(t->torn_down, "the connection was not torn down after ERROR");
    cr_assert_null(t->c, "the connection was not freed after ERROR");
}

/* --- receipts as barriers --- */

/* The queue's owner is worker 1: the RECEIPT waits for its answer, which
 * comes only after it took the message. */
Test(txn, receipt_waits_for_the_remote_owner)
{
    th_setup(2, NULL);
    const char *q = th_owned_by(1, "/queue/f", 0);
    struct th_conn *pub = th_connect(0);
    th_sendf(pub, "SEND\ndestination:%s\nreceipt:r1\n\nhello", q);
    th_turn(0);
    th_turn(0);
    th_expect_none(pub); /* worker 1 has not run: no answer yet */
    th_turn(1);          /* the owner takes the message and answers */
    th_expect_none(pub);
    th_turn(0); /* the answer arrives: the RECEIPT goes out */
    expect_receipt(pub, "r1");
    th_pump();
    th_expect_none(pub);
    /* The message is in its queue: a consumer subscribing now gets it. */
    struct th_conn *sub = th_connect(0);
    consume(sub, q, "");
    expect_msg(sub, "hello");
    th_expect_none(sub);
}

/* Receipts of frames touching different owners come back in frame order,
 * even when a later frame's owner answers first. */
Test(txn, receipts_in_frame_order_across_owners)
{
    th_setup(3, NULL);
    const char *q2 = th_owned_by(2, "/queue/a", 0);
    const char *q1 = th_owned_by(1, "/queue/b", 1);
    const char *q0 = th_owned_by(0, "/queue/c", 2);
    const char *t1 = th_owned_by(1, "/topic/d", 3);
    struct th_conn *c = th_connect(0);
    th_sendf(c, "SEND\ndestination:%s\nreceipt:r1\n\none", q2);
    th_sendf(c, "SEND\ndestination:%s\nreceipt:r2\n\ntwo", q1);
    th_sendf(c, "SEND\ndestination:%s\nreceipt:r3\n\nthree", q0); /* local owner */
    th_sendf(c, "SUBSCRIBE\nid:x\ndestination:%s\nreceipt:r4\n\n", t1);
    th_send(c, "BEGIN\ntransaction:t\nreceipt:r5\n\n"); /* touches no owner */
    /* Worker 1 answers r2's and r4's fences; r1 (worker 2) still waits, and
     * everything behind it. */
    th_turn(0);
    th_turn(1);
    th_turn(0);
    th_turn(1);
    th_turn(0);
    th_expect_none(c);
    th_pump();
    const char *ids[] = {"r1", "r2", "r3", "r4", "r5"};
    for (int i = 0; i < 5; i++)
        expect_receipt(c, ids[i]);
    th_expect_none(c);
    /* Every SEND took effect. */
    struct th_conn *k = th_connect(1);
    const char *qs[] = {q2, q1, q0}, *bodies[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        char sid[8], rid[8];
        snprintf(sid, sizeof(sid), "k%d", i);
        snprintf(rid, sizeof(rid), "rk%d", i);
        th_sendf(k, "SUBSCRIBE\nid:%s\ndestination:%s\nreceipt:%s\n\n", sid, qs[i], rid);
        th_pump();
        expect_receipt(k, rid);
        expect_msg(k, bodies[i]);
    }
    th_expect_none(k);
}

/* An ERROR answering a bad frame comes after the RECEIPT of an earlier frame
 * that waits for a remote owner; then the connection ends and nothing it
 * sent after the bad frame takes effect. */
Test(txn, error_after_pending_receipt)
{
    th_setup(2, NULL);
    const char *q = th_owned_by(1, "/queue/e", 0);
    struct th_conn *sub = th_connect(1), *pub = th_connect(0);
    consume(sub, q, "");
    th_sendf(pub, "SEND\ndestination:%s\nreceipt:r1\n\none", q);
    th_send(pub, "SEND\nreceipt:bad\n\nno destination");
    th_sendf(pub, "SEND\ndestination:%s\n\nafter", q);
    th_turn(0);
    th_expect_none(pub); /* neither the RECEIPT nor the ERROR yet */
    cr_assert_not(pub->torn_down);
    th_pump();
    expect_receipt(pub, "r1");
    struct stp_frame e = th_expect(pub, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&e, "message"), "Missing destination");
    cr_assert_str_eq(th_header(&e, "receipt-id"), "bad");
    th_expect_none(pub);
    cr_assert(pub->torn_down);
    cr_assert_null(pub->c);
    expect_msg(sub, "one");
    th_expect_none(sub);
}

/* --- ABORT, and transactions that do not exist --- */

Test(txn, abort_drops_the_buffered_sends)
{
    th_setup(2, NULL);
    const char *q = th_owned_by(1, "/queue/ab", 0);
    struct th_conn *sub = th_connect(1), *pub = th_connect(0);
    consume(sub, q, "");
    th_send(pub, "BEGIN\ntransaction:t\n\n");
    th_sendf(pub, "SEND\ndestination:%s\ntransaction:t\n\none", q);
    th_sendf(pub, "SEND\ndestination:%s\ntransaction:t\n\ntwo", q);
    th_send(pub, "ABORT\ntransaction:t\nreceipt:a\n\n");
    th_pump();
    expect_receipt(pub, "a");
    th_expect_none(sub);
    /* The name is free again, and a new transaction of it commits only its
     * own SENDs. */
    th_sendf(pub, "SEND\ndestination:%s\n\nplain", q);
    th_send(pub, "BEGIN\ntransaction:t\n\n");
    th_sendf(pub, "SEND\ndestination:%s\ntransaction:t\n\nthree", q);
    th_send(pub, "COMMIT\ntransaction:t\nreceipt:c\n\n");
    th_pump();
    expect_receipt(pub, "c");
    expect_msg(sub, "plain");
    expect_msg(sub, "three");
    th_expect_none(sub);
    th_expect_none(pub);
}

Test(txn, commit_of_unknown_transaction)
{
    th_setup(1, NULL);
    struct th_conn *c = th_connect(0);
    th_send(c, "COMMIT\ntransaction:nope\nreceipt:r\n\n");
    th_pump();
    expect_error(
        c, "Bad transaction",
        "Invalid transaction identifier: 'nope' (COMMIT names a transaction that was not begun).");
}

Test(txn, abort_of_unknown_transaction)
{
    th_setup(1, NULL);
    struct th_conn *c = th_connect(0);
    th_send(c, "ABORT\ntransaction:nope\n\n");
    th_pump();
    expect_error(
        c, "Bad transaction",
        "Invalid transaction identifier: 'nope' (ABORT names a transaction that was not begun).");
}

/* A committed transaction is gone: COMMIT of it again is an ERROR. */
Test(txn, commit_twice)
{
    th_setup(1, NULL);
    struct th_conn *sub = th_connect(0), *c = th_connect(0);
    consume(sub, "/queue/ct", "");
    th_send(c, "BEGIN\ntransaction:t\n\n");
    th_send(c, "SEND\ndestination:/queue/ct\ntransaction:t\n\nonce");
    th_send(c, "COMMIT\ntransaction:t\n\n");
    th_send(c, "COMMIT\ntransaction:t\n\n");
    th_pump();
    expect_error(
        c, "Bad transaction",
        "Invalid transaction identifier: 't' (COMMIT names a transaction that was not begun).");
    expect_msg(sub, "once");
    th_expect_none(sub);
}

Test(txn, begin_of_an_open_transaction)
{
    th_setup(1, NULL);
    struct th_conn *sub = th_connect(0), *c = th_connect(0);
    consume(sub, "/queue/b", "");
    th_send(c, "BEGIN\ntransaction:t\n\n");
    th_send(c, "SEND\ndestination:/queue/b\ntransaction:t\n\nheld");
    th_send(c, "BEGIN\ntransaction:t\nreceipt:again\n\n");
    th_pump();
    expect_error(c, "transaction already exists",
                 "BEGIN names a transaction that is already open.");
    th_expect_none(sub); /* the open transaction was aborted with the connection */
}

Test(txn, send_in_unknown_transaction)
{
    th_setup(1, NULL);
    struct th_conn *sub = th_connect(0), *c = th_connect(0);
    consume(sub, "/queue/u", "");
    th_send(c, "BEGIN\ntransaction:t\n\n");
    th_send(c, "SEND\ndestination:/queue/u\ntransaction:other\n\nlost");
    th_pump();
    expect_error(
        c, "Bad transaction",
        "Invalid transaction identifier: 'other' (SEND names a transaction that was not begun).");
    th_expect_none(sub);
}

Test(txn, ack_in_unknown_transaction)
{
    th_setup(1, NULL);
    struct th_conn *c = th_connect(0);
    th_send(c, "ACK\nid:1-1\ntransaction:nope\n\n");
    th_pump();
    expect_error(
        c, "Bad transaction",
        "Invalid transaction identifier: 'nope' (ACK names a transaction that was not begun).");
}

Test(txn, begin_without_transaction_header)
{
    th_setup(1, NULL);
    struct th_conn *c = th_connect(0);
    th_send(c, "BEGIN\nreceipt:r\n\n");
    th_pump();
    expect_error(c, "Missing transaction", "BEGIN must include a 'transaction' header.");
}

/* --- bounds --- */

static const char *const two_txns[] = {"--max-transactions", "2", NULL};

Test(txn, max_transactions)
{
    th_setup(2, two_txns);
    const char *q = th_owned_by(1, "/queue/m", 0);
    struct th_conn *sub = th_connect(1), *c = th_connect(0);
    consume(sub, q, "");
    th_send(c, "BEGIN\ntransaction:a\n\n");
    th_send(c, "BEGIN\ntransaction:b\n\n");
    th_sendf(c, "SEND\ndestination:%s\ntransaction:a\n\nfrom-a", q);
    /* A committed transaction no longer counts. */
    th_send(c, "COMMIT\ntransaction:a\nreceipt:ca\n\n");
    th_send(c, "BEGIN\ntransaction:c\nreceipt:bc\n\n");
    th_sendf(c, "SEND\ndestination:%s\ntransaction:b\n\nfrom-b", q);
    th_sendf(c, "SEND\ndestination:%s\ntransaction:c\n\nfrom-c", q);
    th_pump();
    expect_receipt(c, "ca");
    expect_receipt(c, "bc");
    expect_msg(sub, "from-a");
    th_expect_none(sub);
    /* b and c are open: a third is refused. */
    th_send(c, "BEGIN\ntransaction:d\n\n");
    th_pump();
    expect_error(c, "too many transactions",
                 "This connection has --max-transactions transactions open.");
    th_expect_none(sub); /* nothing of b or c */
}

static const char *const three_frames[] = {"--max-transaction-frames", "3", NULL};

Test(txn, max_transaction_frames)
{
    th_setup(2, three_frames);
    const char *q = th_owned_by(1, "/queue/fr", 0);
    struct th_conn *sub = th_connect(1), *c = th_connect(0);
    consume(sub, q, "");
    th_send(c, "BEGIN\ntransaction:t1\n\n");
    th_send(c, "BEGIN\ntransaction:t2\n\n");
    for (int i = 0; i < 3; i++) {
        th_sendf(c, "SEND\ndestination:%s\ntransaction:t1\n\nt1-%d", q, i);
        th_sendf(c, "SEND\ndestination:%s\ntransaction:t2\n\nt2-%d", q, i);
    }
    /* Each transaction holds 3, at the bound: t2 commits. */
    th_send(c, "COMMIT\ntransaction:t2\nreceipt:c2\n\n");
    th_pump();
    expect_receipt(c, "c2");
    for (int i = 0; i < 3; i++) {
        char body[16];
        snprintf(body, sizeof(body), "t2-%d", i);
        expect_msg(sub, body);
    }
    th_expect_none(sub);
    /* t1's 4th frame is refused when it arrives. */
    th_sendf(c, "SEND\ndestination:%s\ntransaction:t1\n\nt1-3", q);
    th_send(c, "COMMIT\ntransaction:t1\n\n");
    th_pump();
    expect_error(c, "transaction too large",
                 "The transaction holds --max-transaction-frames frames already.");
    th_expect_none(sub); /* nothing of t1 */
}

/* An ACK in a transaction is one of its frames too. */
Test(txn, max_transaction_frames_counts_acks)
{
    th_setup(1, three_frames);
    struct th_conn *sub = th_connect(0), *pub = th_connect(0);
    consume(sub, "/queue/fa", "ack:client-individual\n");
    for (int i = 0; i < 2; i++)
        th_sendf(pub, "SEND\ndestination:/queue/fa\n\nm%d", i);
    th_pump();
    char acks[2][32];
    for (int i = 0; i < 2; i++) {
        struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
        snprintf(acks[i], sizeof(acks[i]), "%s", th_header(&f, "ack"));
    }
    th_send(sub, "BEGIN\ntransaction:t\n\n");
    th_send(sub, "SEND\ndestination:/queue/other\ntransaction:t\n\nx");
    th_sendf(sub, "ACK\nid:%s\ntransaction:t\n\n", acks[0]);
    th_sendf(sub, "ACK\nid:%s\ntransaction:t\n\n", acks[1]);
    th_send(sub, "SEND\ndestination:/queue/other\ntransaction:t\n\ny");
    th_pump();
    expect_error(sub, "transaction too large",
                 "The transaction holds --max-transaction-frames frames already.");
    /* Nothing was committed: both messages were never acked, so they are
     * back in the queue for the next consumer, and /queue/other is empty. */
    struct th_conn *k = th_connect(0);
    consume(k, "/queue/fa", "");
    expect_msg(k, "m0");
    expect_msg(k, "m1");
    th_expect_none(k);
    struct th_conn *o = th_connect(0);
    consume(o, "/queue/other", "");
    th_expect_none(o);
}

/* The bytes a transaction holds for one SEND are its message's shared tail:
 * "destination:D\ncontent-length:N\n\n" + body + NUL. */
static size_t tail_bytes(const char *dest, size_t body)
{
    char hdr[128];
    int n = snprintf(hdr, sizeof(hdr), "destination:%s\ncontent-length:%zu\n\n", dest, body);
    return (size_t)n + body + 1;
}

static const char *const one_kib[] = {"--max-transaction-bytes", "1KiB", NULL};

/* Two SENDs in transaction t on c, of `total` message bytes together. */
static void fill(struct th_conn *c, const char *q, size_t total)
{
    size_t first = 500;
    size_t rest = total - tail_bytes(q, first);
    size_t second = rest - (tail_bytes(q, rest) - rest);
    cr_assert_eq(tail_bytes(q, first) + tail_bytes(q, second), total);
    static char body[1024];
    memset(body, 'x', sizeof(body));
    char hdr[128];
    snprintf(hdr, sizeof(hdr), "SEND\ndestination:%s\ntransaction:t\n\n", q);
    th_send(c, "BEGIN\ntransaction:t\n\n");
    th_send_body(c, hdr, body, first);
    th_send_body(c, hdr, body, second);
}

Test(txn, max_transaction_bytes)
{
    th_setup(2, one_kib);
    const char *q = th_owned_by(1, "/queue/by", 0);
    struct th_conn *sub = th_connect(1), *c = th_connect(0), *d = th_connect(0);
    consume(sub, q, "");
    /* 1KiB is 1024 bytes: a transaction of exactly that is accepted. */
    fill(c, q, 1024);
    th_send(c, "COMMIT\ntransaction:t\nreceipt:c\n\n");
    th_pump();
    expect_receipt(c, "c");
    cr_assert_eq(th_pending_frames(sub), 2);
    th_expect(sub, STP_CMD_MESSAGE);
    th_expect(sub, STP_CMD_MESSAGE);
    /* One byte more: the SEND that would pass the bound is refused. */
    fill(d, q, 1025);
    th_send(d, "COMMIT\ntransaction:t\n\n");
    th_pump();
    expect_error(d, "transaction too large",
                 "The transaction would hold more than --max-transaction-bytes.");
    th_expect_none(sub); /* nothing of d's transaction */
    th_expect_none(c);
}

/* --- ACK inside a transaction --- */

/* prefetch-count:1: the next message comes only once the first is acked,
 * which a transactional ACK does at COMMIT. */
Test(txn, transactional_ack_takes_effect_at_commit)
{
    th_setup(2, NULL);
    const char *q = th_owned_by(1, "/queue/ack", 0);
    struct th_conn *pub = th_connect(1), *sub = th_connect(0);
    consume(sub, q, "ack:client-individual\nprefetch-count:1\n");
    th_sendf(pub, "SEND\ndestination:%s\n\nm0", q);
    th_sendf(pub, "SEND\ndestination:%s\n\nm1", q);
    th_pump();
    struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "m0");
    char ack[32];
    snprintf(ack, sizeof(ack), "%s", th_header(&f, "ack"));
    th_expect_none(sub);
    th_send(sub, "BEGIN\ntransaction:t\n\n");
    th_sendf(sub, "ACK\nid:%s\ntransaction:t\nreceipt:a\n\n", ack);
    th_pump();
    /* Its RECEIPT waits for COMMIT (issue 13): it has not taken effect. */
    th_expect_none(sub); /* still unacked: no credit for m1, no receipt */
    cr_assert_eq(STP_STAT_GET(th_worker(1)->stats.msgs_acked), 0);
    th_send(sub, "COMMIT\ntransaction:t\nreceipt:c\n\n");
    th_pump();
    cr_assert_eq(STP_STAT_GET(th_worker(1)->stats.msgs_acked), 1);
    /* The ack took effect at the owner before the fences were answered. */
    f = th_expect(sub, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "m1");
    cr_assert_str_eq(th_header(&f, "redelivered"), "false");
    expect_receipt(sub, "a");
    expect_receipt(sub, "c");
    th_expect_none(sub);
}

/* ABORT drops a transactional ACK: the message stays unacked and goes back
 * to the queue when its consumer leaves. */
Test(txn, aborted_ack_leaves_the_message_unacked)
{
    th_setup(2, NULL);
    const char *q = th_owned_by(1, "/queue/ab", 0);
    struct th_conn *pub = th_connect(1), *sub = th_connect(0);
    consume(sub, q, "ack:client\nprefetch-count:1\n");
    th_sendf(pub, "SEND\ndestination:%s\n\nm0", q);
    th_sendf(pub, "SEND\ndestination:%s\n\nm1", q);
    th_pump();
    struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "m0");
    char ack[32];
    snprintf(ack, sizeof(ack), "%s", th_header(&f, "ack"));
    th_send(sub, "BEGIN\ntransaction:t\n\n");
    th_sendf(sub, "ACK\nid:%s\ntransaction:t\n\n", ack);
    th_send(sub, "ABORT\ntransaction:t\nreceipt:a\n\n");
    th_pump();
    expect_receipt(sub, "a");
    th_expect_none(sub);
    cr_assert_eq(STP_STAT_GET(th_worker(1)->stats.msgs_acked), 0);
    th_send(sub, "DISCONNECT\nreceipt:bye\n\n");
    th_pump();
    expect_receipt(sub, "bye");
    cr_assert_null(sub->c);
    struct th_conn *k = th_connect(0);
    consume(k, q, "");
    f = th_expect(k, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "m0");
    cr_assert_str_eq(th_header(&f, "redelivered"), "true");
    expect_msg(k, "m1");
    th_expect_none(k);
}

/* --- DISCONNECT with a transaction open --- */

Test(txn, disconnect_aborts_open_transaction)
{
    th_setup(2, NULL);
    const char *q = th_owned_by(1, "/queue/dc", 0);
    struct th_conn *sub = th_connect(1), *pub = th_connect(0);
    consume(sub, q, "");
    th_sendf(pub, "SEND\ndestination:%s\n\nplain", q);
    th_send(pub, "BEGIN\ntransaction:t\n\n");
    th_sendf(pub, "SEND\ndestination:%s\ntransaction:t\n\nheld1", q);
    th_sendf(pub, "SEND\ndestination:%s\ntransaction:t\n\nheld2", q);
    th_send(pub, "DISCONNECT\nreceipt:bye\n\n");
    th_turn(0);
    th_expect_none(pub); /* the DISCONNECT's fence waits for worker 1 */
    th_pump();
    expect_receipt(pub, "bye");
    th_expect_none(pub);
    cr_assert(pub->torn_down);
    cr_assert_null(pub->c);
    expect_msg(sub, "plain");
    th_expect_none(sub);
}

/* --- atomicity of COMMIT --- */

/* COMMIT is all or nothing. A 1.2 ACK inside a transaction is only stored
 * when it arrives; at COMMIT every ACK/NACK is resolved before anything is
 * applied, so one that names no delivery awaiting acknowledgement (made up,
 * or acked outside the transaction meanwhile) makes the COMMIT an ERROR
 * that delivers none of the transaction's SENDs. (Found by this test: the
 * SENDs before such an ACK used to be delivered.) */
Test(txn, commit_with_a_failing_ack_takes_no_effect)
{
    th_setup(2, NULL);
    const char *q = th_owned_by(1, "/queue/pc", 0);
    struct th_conn *sub = th_connect(1), *c = th_connect(0);
    consume(sub, q, "");
    consume(c, "/queue/mine", "ack:client-individual\n");
    th_send(c, "BEGIN\ntransaction:t\n\n");
    th_sendf(c, "SEND\ndestination:%s\ntransaction:t\n\nfirst", q);
    th_send(c, "ACK\nid:1-7\ntransaction:t\n\n"); /* names no delivery */
    th_sendf(c, "SEND\ndestination:%s\ntransaction:t\n\nsecond", q);
    th_send(c, "COMMIT\ntransaction:t\nreceipt:c\n\n");
    th_pump();
    expect_error(c, "unknown message", NULL);
    th_expect_none(sub); /* not even "first" */
}

/* Issue 13: the RECEIPT of a SEND inside a transaction means it took
 * effect, so it comes at COMMIT, in frame order, before COMMIT's own; ABORT
 * answers them too (the frames are done: dropped). */
Test(txn, receipts_of_transactional_frames_come_at_commit)
{
    th_setup(2, NULL);
    const char *q = th_owned_by(1, "/queue/tr", 0);
    struct th_conn *pub = th_connect(0), *sub = th_connect(1);
    consume(sub, q, "");
    th_send(pub, "BEGIN\ntransaction:t\nreceipt:b\n\n");
    th_sendf(pub, "SEND\ndestination:%s\ntransaction:t\nreceipt:s1\n\nm1", q);
    th_sendf(pub, "SEND\ndestination:%s\ntransaction:t\nreceipt:s2\n\nm2", q);
    th_pump();
    expect_receipt(pub, "b");
    th_expect_none(pub);
    th_expect_none(sub);
    th_send(pub, "COMMIT\ntransaction:t\nreceipt:c\n\n");
    th_pump();
    expect_receipt(pub, "s1");
    expect_receipt(pub, "s2");
    expect_receipt(pub, "c");
    struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "m1");
    f = th_expect(sub, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "m2");

    th_send(pub, "BEGIN\ntransaction:u\n\n");
    th_sendf(pub, "SEND\ndestination:%s\ntransaction:u\nreceipt:s3\n\nm3", q);
    th_pump();
    th_expect_none(pub);
    th_send(pub, "ABORT\ntransaction:u\nreceipt:x\n\n");
    th_pump();
    expect_receipt(pub, "s3");
    expect_receipt(pub, "x");
    th_expect_none(sub);
}
