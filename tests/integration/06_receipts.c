/*
 * 06_receipts.c - RECEIPT for every frame that can carry a receipt header, and
 * receipts as barriers across workers: after the RECEIPT of a SUBSCRIBE a SEND
 * from any other connection reaches the subscriber; after the RECEIPT of a SEND
 * the message is ordered ahead of anything sent later by anyone; DISCONNECT
 * with a receipt gets the RECEIPT and then a close.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

TestSuite(receipts, .init = h_init, .fini = h_fini, .timeout = 25);

Test(receipts, every_frame_type)
{
    struct h_broker *b = H_START0();
    const char *vers[] = {"1.0", "1.1", "1.2"};
    for (int v = 0; v < 3; v++) {
        const char *q = h_dest("queue", "rcpt");
        struct h_conn *c = h_client(b, vers[v]);
        h_sendf(c, "SUBSCRIBE\ndestination:%s\nid:s1\nack:client\nreceipt:sub-1\n\n", q);
        h_expect_receipt(c, "sub-1");
        h_sendf(c, "SEND\ndestination:%s\nreceipt:send-1\n\nm", q);
        h_expect_receipt(c, "send-1");
        struct h_frame *f = h_expect_msg(c, "m");
        h_sendz(c, "BEGIN\ntransaction:t1\nreceipt:begin-1\n\n");
        h_expect_receipt(c, "begin-1");
        h_sendz(c, "COMMIT\ntransaction:t1\nreceipt:commit-1\n\n");
        h_expect_receipt(c, "commit-1");
        h_sendz(c, "BEGIN\ntransaction:t2\nreceipt:begin-2\n\n");
        h_expect_receipt(c, "begin-2");
        h_sendz(c, "ABORT\ntransaction:t2\nreceipt:abort-1\n\n");
        h_expect_receipt(c, "abort-1");
        if (v == 2) {
            h_sendf(c, "NACK\nid:%s\nreceipt:nack-1\n\n", h_hdr(f, "ack"));
            h_expect_receipt(c, "nack-1");
            f = h_expect_msg(c, "m");
            h_sendf(c, "ACK\nid:%s\nreceipt:ack-1\n\n", h_hdr(f, "ack"));
        } else if (v == 1) {
            h_sendf(c, "NACK\nmessage-id:%s\nsubscription:s1\nreceipt:nack-1\n\n",
                    h_hdr(f, "message-id"));
            h_expect_receipt(c, "nack-1");
            f = h_expect_msg(c, "m");
            h_sendf(c, "ACK\nmessage-id:%s\nsubscription:s1\nreceipt:ack-1\n\n",
                    h_hdr(f, "message-id"));
        } else {
            h_sendf(c, "ACK\nmessage-id:%s\nreceipt:ack-1\n\n", h_hdr(f, "message-id"));
        }
        h_expect_receipt(c, "ack-1");
        h_sendz(c, "UNSUBSCRIBE\nid:s1\nreceipt:unsub-1\n\n");
        h_expect_receipt(c, "unsub-1");
        h_sendz(c, "DISCONNECT\nreceipt:disc-1\n\n");
        h_expect_receipt(c, "disc-1");
        struct h_frame *more = NULL;
        cr_assert(h_wait_closed(c, 3000, &more), "v%s: not closed after DISCONNECT receipt (%s)",
                  vers[v], more ? h_show(more) : "still open");
    }
    h_broker_stop_ok(b);
}

Test(receipts, receipt_id_escaping_and_frames_without_receipt)
{
    struct h_broker *b = H_START0();
    struct h_conn *c = h_client(b, "1.2");
    const char *q = h_dest("queue", "rid");
    /* 1.2: the receipt value "a:b" travels escaped both ways. */
    h_sendf(c, "SEND\ndestination:%s\nreceipt:a\\cb\n\nx", q);
    h_expect_receipt(c, "a:b");
    /* No receipt header, no RECEIPT: the next frame we see is the one we asked for. */
    h_sendf(c, "SEND\ndestination:%s\n\ny", q);
    h_sendz(c, "BEGIN\ntransaction:t\n\n");
    h_sendz(c, "ABORT\ntransaction:t\n\n");
    h_sendf(c, "SEND\ndestination:%s\nreceipt:last\n\nz", q);
    h_expect_receipt(c, "last");
    h_expect_silence(c, 100);
    h_broker_stop_ok(b);
}

Test(receipts, subscribe_receipt_is_a_barrier_across_workers)
{
    struct h_broker *b = h_broker_start_ex(4, true, NULL, NULL);
    enum { NPUB = 6, ROUNDS = 15 };
    struct h_conn *pubs[NPUB];
    for (int i = 0; i < NPUB; i++)
        pubs[i] = h_client(b, "1.2");
    for (int r = 0; r < ROUNDS; r++) {
        /* A fresh subscriber connection and destination each round, so owners and
         * workers vary. */
        const char *t = h_dest("topic", "sb");
        struct h_conn *s = h_client(b, r % 2 ? "1.1" : "1.2");
        h_subscribe(s, t, "s", NULL, NULL);
        for (int i = 0; i < NPUB; i++)
            h_sendf(pubs[i], "SEND\ndestination:%s\n\nr%d-p%d", t, r, i);
        bool seen[NPUB] = {false};
        for (int i = 0; i < NPUB; i++) {
            struct h_frame *f = h_expect(s, "MESSAGE", H_WAIT);
            int rr = -1, pp = -1;
            cr_assert(sscanf(f->body, "r%d-p%d", &rr, &pp) == 2 && rr == r && pp >= 0 &&
                          pp < NPUB && !seen[pp],
                      "round %d: unexpected %s", r, h_show(f));
            seen[pp] = true;
        }
        h_close(s);
    }
    h_broker_stop_ok(b);
}

Test(receipts, send_receipt_orders_across_connections)
{
    struct h_broker *b = h_broker_start_ex(4, true, NULL, NULL);
    enum { NPUB = 6, ROUNDS = 40 };
    struct h_conn *pubs[NPUB];
    for (int i = 0; i < NPUB; i++)
        pubs[i] = h_client(b, "1.2");
    const char *t = h_dest("topic", "so"), *q = h_dest("queue", "so");
    struct h_conn *st = h_client(b, "1.2");
    h_subscribe(st, t, "t", NULL, NULL);
    /* Each SEND waits for its RECEIPT before the next connection sends: the receipt
     * says the message is at its owner, so the order is fixed. */
    for (int r = 0; r < ROUNDS; r++) {
        h_publish(pubs[r % NPUB], t, h_fmt("t%d", r), true);
        h_publish(pubs[(r * 5 + 1) % NPUB], q, h_fmt("q%d", r), true);
    }
    for (int r = 0; r < ROUNDS; r++)
        h_expect_msg(st, h_fmt("t%d", r));
    struct h_conn *sq = h_client(b, "1.2");
    h_subscribe(sq, q, "q", NULL, NULL);
    for (int r = 0; r < ROUNDS; r++)
        h_expect_msg(sq, h_fmt("q%d", r));
    h_broker_stop_ok(b);
}

Test(receipts, unsubscribe_receipt_is_a_barrier)
{
    struct h_broker *b = h_broker_start_ex(3, true, NULL, NULL);
    const char *q = h_dest("queue", "ub");
    struct h_conn *p = h_client(b, "1.2");
    for (int r = 0; r < 8; r++) {
        /* After the UNSUBSCRIBE receipt the old consumer gets no more queue messages:
         * everything sent afterwards waits for the next consumer. */
        struct h_conn *c = h_client(b, "1.2");
        h_subscribe(c, q, "s", NULL, NULL);
        h_unsubscribe(c, "s");
        h_publish(p, q, h_fmt("u%d", r), true);
        struct h_conn *d = h_client(b, "1.2");
        h_subscribe(d, q, "s", NULL, NULL);
        h_expect_msg(d, h_fmt("u%d", r));
        h_expect_silence(c, 20);
        h_close(c);
        h_close(d);
    }
    h_broker_stop_ok(b);
}

Test(receipts, disconnect_receipt_then_close_and_effects_done)
{
    struct h_broker *b = h_broker_start_ex(3, true, NULL, NULL);
    for (int r = 0; r < 6; r++) {
        const char *q = h_dest("queue", "dr");
        struct h_conn *p = h_client(b, r % 2 ? "1.1" : "1.2");
        for (int i = 0; i < 20; i++)
            h_sendf(p, "SEND\ndestination:%s\n\nd%d", q, i);
        /* After DISCONNECT's RECEIPT every SEND before it is in the queue. */
        h_disconnect(p);
        struct h_conn *c = h_client(b, "1.2");
        h_subscribe(c, q, "s", NULL, NULL);
        for (int i = 0; i < 20; i++)
            h_expect_msg(c, h_fmt("d%d", i));
    }
    h_broker_stop_ok(b);
}
