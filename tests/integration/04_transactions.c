/*
 * 04_transactions.c - BEGIN/COMMIT/ABORT against a real broker: SEND, ACK and
 * NACK inside a transaction take effect at COMMIT and in order, ABORT discards,
 * a connection that ends with an open transaction aborts it, and unknown or
 * duplicate transactions are ERRORs.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

TestSuite(transactions, .init = h_init, .fini = h_fini, .timeout = 20);

/* Receipts asked for by frames inside a transaction: they come when COMMIT
 * (or ABORT) ends it, in frame order, before COMMIT's own (issue 13). */
static struct {
    struct h_conn *c;
    const char *rid;
} held[256];
static size_t nheld;

static void hold_receipt(struct h_conn *c, const char *rid)
{
    cr_assert_lt(nheld, sizeof(held) / sizeof(held[0]));
    held[nheld].c = c;
    held[nheld++].rid = rid;
}

/* The held receipts of c, in order (the others stay held). */
static void expect_held(struct h_conn *c)
{
    size_t keep = 0;
    for (size_t i = 0; i < nheld; i++) {
        if (held[i].c == c)
            h_expect_receipt(c, held[i].rid);
        else
            held[keep++] = held[i];
    }
    nheld = keep;
}

static void frame_with_receipt(struct h_conn *c, const char *text)
{
    const char *rid = h_rid(c);
    h_sendf(c, "%sreceipt:%s\n\n", text, rid);
    if (strncmp(text, "COMMIT", 6) == 0 || strncmp(text, "ABORT", 5) == 0)
        expect_held(c);
    h_expect_receipt(c, rid);
}

static void tx_send(struct h_conn *c, const char *tx, const char *dest, const char *body)
{
    const char *rid = h_rid(c);
    h_sendf(c, "SEND\ndestination:%s\ntransaction:%s\nreceipt:%s\n\n%s", dest, tx, rid, body);
    hold_receipt(c, rid);
}

/* ACK or NACK of f inside transaction tx, with a receipt held until it ends. */
static void tx_settle(struct h_conn *c, struct h_frame *f, const char *tx, bool nack)
{
    const char *rid = h_rid(c);
    h_sendf(c, "%s\nid:%s\ntransaction:%s\nreceipt:%s\n\n", nack ? "NACK" : "ACK", h_hdr(f, "ack"),
            tx, rid);
    hold_receipt(c, rid);
}

Test(transactions, sends_take_effect_at_commit_in_order)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "tx"), *t = h_dest("topic", "tx");
    struct h_conn *cq = h_client(b, "1.2"), *ct = h_client(b, "1.1"), *p = h_client(b, "1.2");
    h_subscribe(cq, q, "q", NULL, NULL);
    h_subscribe(ct, t, "t", NULL, NULL);
    frame_with_receipt(p, "BEGIN\ntransaction:tx-1\n");
    for (int i = 0; i < 10; i++) {
        tx_send(p, "tx-1", q, h_fmt("q%d", i));
        tx_send(p, "tx-1", t, h_fmt("t%d", i));
    }
    /* Not yet: a plain SEND after them arrives first. */
    h_publish(p, q, "plain-q", true);
    h_publish(p, t, "plain-t", true);
    h_expect_msg(cq, "plain-q");
    h_expect_msg(ct, "plain-t");
    frame_with_receipt(p, "COMMIT\ntransaction:tx-1\n");
    for (int i = 0; i < 10; i++) {
        struct h_frame *f = h_expect_msg(cq, h_fmt("q%d", i));
        cr_assert(h_hdr(f, "transaction") == NULL, "MESSAGE carries transaction: %s", h_show(f));
        h_expect_msg(ct, h_fmt("t%d", i));
    }
    /* The transaction is over: a later plain SEND follows. */
    h_publish(p, q, "after", true);
    h_expect_msg(cq, "after");
    h_broker_stop_ok(b);
}

Test(transactions, abort_discards)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "abort");
    struct h_conn *c = h_client(b, "1.2"), *p = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    frame_with_receipt(p, "BEGIN\ntransaction:doomed\n");
    tx_send(p, "doomed", q, "ghost-1");
    tx_send(p, "doomed", q, "ghost-2");
    frame_with_receipt(p, "ABORT\ntransaction:doomed\n");
    h_publish(p, q, "marker", true);
    h_expect_msg(c, "marker");
    h_expect_silence(c, 200);
    /* The id can be used again after ABORT. */
    frame_with_receipt(p, "BEGIN\ntransaction:doomed\n");
    tx_send(p, "doomed", q, "second-life");
    frame_with_receipt(p, "COMMIT\ntransaction:doomed\n");
    h_expect_msg(c, "second-life");
    h_broker_stop_ok(b);
}

Test(transactions, ack_in_transaction)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "txack");
    struct h_conn *c = h_client(b, "1.2"), *p = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client-individual", NULL);
    h_publish(p, q, "m0", false);
    h_publish(p, q, "m1", true);
    struct h_frame *f0 = h_expect_msg(c, "m0"), *f1 = h_expect_msg(c, "m1");
    frame_with_receipt(c, "BEGIN\ntransaction:ta\n");
    tx_settle(c, f0, "ta", false);
    frame_with_receipt(c, "ABORT\ntransaction:ta\n"); /* m0 stays unacked */
    frame_with_receipt(c, "BEGIN\ntransaction:tb\n");
    tx_settle(c, f1, "tb", false);
    frame_with_receipt(c, "COMMIT\ntransaction:tb\n"); /* m1 acked */
    h_close(c);
    struct h_conn *c2 = h_client(b, "1.2");
    h_subscribe(c2, q, "s", "auto", NULL);
    struct h_frame *f = h_expect_msg(c2, "m0");
    cr_assert_str_eq(h_hdr(f, "redelivered"), "true");
    h_publish(p, q, "marker", true);
    h_expect_msg(c2, "marker");
    h_broker_stop_ok(b);
}

Test(transactions, nack_in_transaction)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "txnack");
    struct h_conn *c = h_client(b, "1.2"), *p = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client-individual", "prefetch-count:1\n");
    h_publish(p, q, "n0", false);
    h_publish(p, q, "n1", true);
    struct h_frame *f = h_expect_msg(c, "n0");
    frame_with_receipt(c, "BEGIN\ntransaction:tn\n");
    tx_settle(c, f, "tn", true);
    /* Not yet: n0 is still held, so no credit and no redelivery. */
    h_expect_silence(c, 200);
    frame_with_receipt(c, "COMMIT\ntransaction:tn\n");
    f = h_expect_msg(c, "n0");
    cr_assert_str_eq(h_hdr(f, "redelivered"), "true");
    h_ack(c, f, NULL, true);
    h_expect_msg(c, "n1");
    h_broker_stop_ok(b);
}

Test(transactions, mixed_frames_apply_in_order)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "mixed"), *q2 = h_dest("queue", "mixed-out");
    struct h_conn *c = h_client(b, "1.2"), *p = h_client(b, "1.2"), *o = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client-individual", "prefetch-count:1\n");
    h_subscribe(o, q2, "o", NULL, NULL);
    h_publish(p, q, "in-0", false);
    h_publish(p, q, "in-1", true);
    struct h_frame *f = h_expect_msg(c, "in-0");
    /* Consume-transform-produce: ACK the input and SEND outputs in one transaction. */
    frame_with_receipt(c, "BEGIN\ntransaction:ctp\n");
    tx_send(c, "ctp", q2, "out-a");
    tx_settle(c, f, "ctp", false);
    tx_send(c, "ctp", q2, "out-b");
    h_expect_silence(o, 150);
    frame_with_receipt(c, "COMMIT\ntransaction:ctp\n");
    h_expect_msg(o, "out-a");
    h_expect_msg(o, "out-b");
    /* The ACK freed the prefetch slot. */
    h_expect_msg(c, "in-1");
    h_broker_stop_ok(b);
}

static void disconnect_aborts(bool abrupt)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "dangling");
    struct h_conn *p = h_client(b, "1.2"), *other = h_client(b, "1.2");
    frame_with_receipt(p, "BEGIN\ntransaction:open\n");
    tx_send(p, "open", q, "never");
    if (abrupt)
        h_reset(p);
    else
        h_disconnect(p);
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    h_publish(other, q, "marker", true);
    h_expect_msg(c, "marker");
    h_expect_silence(c, 200);
    h_broker_stop_ok(b);
}

Test(transactions, disconnect_with_open_transaction_aborts)
{
    disconnect_aborts(false);
}

Test(transactions, reset_with_open_transaction_aborts)
{
    disconnect_aborts(true);
}

Test(transactions, unknown_transaction_is_error)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "unknown");
    const char *frames[] = {
        "SEND\ndestination:%s\ntransaction:nope\nreceipt:e1\n\nx",
        "COMMIT\ntransaction:nope\nreceipt:e1\n\n%s",
        "ABORT\ntransaction:nope\nreceipt:e1\n\n%s",
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        struct h_conn *c = h_client(b, "1.2");
        h_sendf(c, frames[i], i == 0 ? q : "");
        h_expect_error(c, "e1");
    }
    /* The unknown-transaction SEND did not reach the queue. */
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    h_publish(c, q, "marker", true);
    h_expect_msg(c, "marker");
    /* ACK inside an unknown transaction. */
    struct h_conn *p = h_client(b, "1.2"), *a = h_client(b, "1.2");
    const char *q2 = h_dest("queue", "unknown-ack");
    h_subscribe(a, q2, "s", "client-individual", NULL);
    h_publish(p, q2, "m", true);
    struct h_frame *f = h_expect_msg(a, "m");
    h_sendf(a, "ACK\nid:%s\ntransaction:nope\nreceipt:e2\n\n", h_hdr(f, "ack"));
    h_expect_error(a, "e2");
    h_broker_stop_ok(b);
}

Test(transactions, begin_twice_is_error)
{
    struct h_broker *b = H_START0();
    struct h_conn *c = h_client(b, "1.2");
    frame_with_receipt(c, "BEGIN\ntransaction:twice\n");
    h_sendz(c, "BEGIN\ntransaction:twice\nreceipt:b2\n\n");
    h_expect_error(c, "b2");
    h_broker_stop_ok(b);
}

Test(transactions, commit_ends_the_transaction)
{
    struct h_broker *b = H_START0();
    struct h_conn *c = h_client(b, "1.2");
    frame_with_receipt(c, "BEGIN\ntransaction:once\n");
    frame_with_receipt(c, "COMMIT\ntransaction:once\n");
    h_sendz(c, "COMMIT\ntransaction:once\nreceipt:c2\n\n");
    h_expect_error(c, "c2");
    struct h_conn *d = h_client(b, "1.2");
    frame_with_receipt(d, "BEGIN\ntransaction:once\n");
    frame_with_receipt(d, "ABORT\ntransaction:once\n");
    h_sendz(d, "SEND\ndestination:/queue/x\ntransaction:once\nreceipt:c3\n\nx");
    h_expect_error(d, "c3");
    h_broker_stop_ok(b);
}

Test(transactions, ids_are_per_connection_and_versions)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "percon");
    const char *vers[] = {"1.0", "1.1", "1.2"};
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    struct h_conn *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = h_client(b, vers[i]);
        frame_with_receipt(p[i], "BEGIN\ntransaction:same\n");
        tx_send(p[i], "same", q, h_fmt("from-%s", vers[i]));
    }
    for (int i = 2; i >= 0; i--)
        frame_with_receipt(p[i], "COMMIT\ntransaction:same\n");
    for (int i = 2; i >= 0; i--)
        h_expect_msg(c, h_fmt("from-%s", vers[i]));
    h_broker_stop_ok(b);
}
