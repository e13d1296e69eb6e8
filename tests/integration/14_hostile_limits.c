/*
 * 14_hostile_limits.c - issue 9's per-client bounds against a real broker:
 * subscriptions per connection, open transactions, frames and bytes per
 * transaction, unacked deliveries without prefetch-count, destination names
 * (length, control bytes), destinations in the whole broker, and a paused
 * publisher that keeps its heart-beat contract. Each bound answers with an
 * exact ERROR (then close) and leaves a bystander client working.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(hostile_limits, .init = h_init, .fini = h_fini, .timeout = 60);

Test(hostile_limits, subscriptions_per_connection)
{
    struct h_broker *b = H_START("--max-subscriptions", "5");
    struct h_conn *c = h_client(b, "1.2");
    for (int i = 0; i < 5; i++)
        h_subscribe(c, h_dest("topic", h_fmt("s%d", i)), h_fmt("%d", i), NULL, NULL);
    /* A freed slot can be used again. */
    h_unsubscribe(c, "4");
    h_subscribe(c, h_dest("topic", "s4b"), "4b", NULL, NULL);
    h_sendf(c, "SUBSCRIBE\nid:6\ndestination:%s\nreceipt:r6\n\n", h_dest("topic", "s6"));
    h_expect_error_msg(c, "r6", "too many subscriptions");
    /* The same with a 1.0 client (destination as id). */
    struct h_conn *d = h_client(b, "1.0");
    for (int i = 0; i < 5; i++)
        h_sendf(d, "SUBSCRIBE\ndestination:%s\n\n", h_dest("queue", h_fmt("v%d", i)));
    h_sendf(d, "SUBSCRIBE\ndestination:%s\n\n", h_dest("queue", "v5"));
    h_expect_error_msg(d, NULL, "too many subscriptions");
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

Test(hostile_limits, duplicate_subscription_id_among_many)
{
    struct h_broker *b = H_START0();
    struct h_conn *c = h_client(b, "1.2");
    for (int i = 0; i < 300; i++)
        h_sendf(c, "SUBSCRIBE\nid:%d\ndestination:%s\n\n", i, h_dest("topic", h_fmt("d%d", i)));
    h_sendf(c, "SUBSCRIBE\nid:150\ndestination:%s\nreceipt:dup\n\n", h_dest("topic", "other"));
    h_expect_error_msg(c, "dup", "Duplicated subscription identifier");
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

Test(hostile_limits, open_transactions)
{
    struct h_broker *b = H_START("--max-transactions", "3");
    struct h_conn *c = h_client(b, "1.2");
    for (int i = 0; i < 3; i++)
        h_sendf(c, "BEGIN\ntransaction:t%d\nreceipt:b%d\n\n", i, i);
    for (int i = 0; i < 3; i++)
        h_expect_receipt(c, h_fmt("b%d", i));
    /* Ending one makes room. */
    h_sendf(c, "ABORT\ntransaction:t0\n\n");
    h_sendf(c, "BEGIN\ntransaction:t3\nreceipt:b3\n\n");
    h_expect_receipt(c, "b3");
    h_sendf(c, "BEGIN\ntransaction:t4\nreceipt:b4\n\n");
    h_expect_error_msg(c, "b4", "too many transactions");
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

Test(hostile_limits, frames_per_transaction)
{
    struct h_broker *b = H_START("--max-transaction-frames", "5");
    const char *q = h_dest("queue", "tf");
    struct h_conn *c = h_client(b, "1.2");
    h_sendf(c, "BEGIN\ntransaction:t\n\n");
    for (int i = 0; i < 5; i++)
        h_sendf(c, "SEND\ndestination:%s\ntransaction:t\n\nm%d", q, i);
    h_sendf(c, "SEND\ndestination:%s\ntransaction:t\nreceipt:over\n\nm5", q);
    h_expect_error_msg(c, "over", "transaction too large");
    /* Nothing of the aborted transaction was delivered. */
    struct h_conn *s = h_client(b, "1.2");
    h_subscribe(s, q, "s", NULL, NULL);
    h_publish(s, q, "only", true);
    h_expect_msg(s, "only");
    h_expect_silence(s, 200);
    /* ACKs count too. */
    struct h_conn *a = h_client(b, "1.2");
    h_sendf(a, "BEGIN\ntransaction:t\n\n");
    for (int i = 0; i < 5; i++)
        h_sendf(a, "ACK\nid:1-%d\ntransaction:t\n\n", i + 1);
    h_sendf(a, "ACK\nid:1-9\ntransaction:t\nreceipt:ack\n\n");
    h_expect_error_msg(a, "ack", "transaction too large");
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

Test(hostile_limits, bytes_per_transaction_checked_when_buffered)
{
    struct h_broker *b = H_START("--max-transaction-bytes", "10KiB");
    const char *q = h_dest("queue", "tb");
    char *body = malloc(4001);
    cr_assert(body != NULL);
    memset(body, 'x', 4000);
    body[4000] = '\0';
    struct h_conn *c = h_client(b, "1.2");
    h_sendf(c, "BEGIN\ntransaction:t\n\n");
    h_sendf(c, "SEND\ndestination:%s\ntransaction:t\nreceipt:one\n\n%s", q, body);
    h_sendf(c, "SEND\ndestination:%s\ntransaction:t\nreceipt:two\n\n%s", q, body);
    /* Their RECEIPTs wait for COMMIT (issue 13): nothing comes yet. */
    h_expect_silence(c, 100);
    /* The third does not fit: ERROR at once, before any COMMIT. */
    h_sendf(c, "SEND\ndestination:%s\ntransaction:t\nreceipt:three\n\n%s", q, body);
    h_expect_error_msg(c, "three", "transaction too large");
    free(body);
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

Test(hostile_limits, unacked_without_prefetch_count)
{
    struct h_broker *b = H_START("--max-unacked", "5");
    const char *q = h_dest("queue", "ua");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", "client-individual", NULL);
    struct h_conn *p = h_client(b, "1.2");
    for (int i = 0; i < 12; i++)
        h_publish(p, q, h_fmt("m%d", i), i == 11);
    struct h_frame *got[5];
    for (int i = 0; i < 5; i++)
        got[i] = h_expect_msg(c, h_fmt("m%d", i));
    h_expect_silence(c, 300); /* the sixth waits for an ACK */
    /* Acked out of order, each ACK lets exactly one more through. */
    h_ack(c, got[3], NULL, true);
    h_expect_msg(c, "m5");
    h_expect_silence(c, 200);
    h_ack(c, got[0], NULL, true);
    h_expect_msg(c, "m6");
    /* A prefetch-count above the bound is lowered to it. */
    struct h_conn *d = h_client(b, "1.2");
    const char *q2 = h_dest("queue", "ua2");
    h_subscribe(d, q2, "s", "client", "prefetch-count:1000\n");
    for (int i = 0; i < 8; i++)
        h_publish(p, q2, h_fmt("n%d", i), i == 7);
    for (int i = 0; i < 5; i++)
        h_expect_msg(d, h_fmt("n%d", i));
    h_expect_silence(d, 300);
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

/* 1.0 and 1.1 clients ack by message-id: out of order, among many. */
Test(hostile_limits, message_id_acks_out_of_order)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "mid");
    struct h_conn *c = h_client(b, "1.1");
    h_subscribe(c, q, "s", "client-individual", NULL);
    struct h_conn *p = h_client(b, "1.2");
    enum { N = 200 };
    for (int i = 0; i < N; i++)
        h_publish(p, q, h_fmt("m%d", i), i == N - 1);
    struct h_frame *got[N];
    for (int i = 0; i < N; i++)
        got[i] = h_expect_msg(c, h_fmt("m%d", i));
    /* Every odd one, newest first; then NACK the evens: they come back, in
     * order, and are acked by their message-id again. */
    for (int i = N - 1; i >= 0; i -= 2)
        h_ack(c, got[i], NULL, false);
    for (int i = 0; i < N; i += 2)
        h_nack(c, got[i], NULL, false);
    for (int i = 0; i < N; i += 2) {
        struct h_frame *f = h_expect_msg(c, h_fmt("m%d", i));
        cr_assert_str_eq(h_hdr(f, "redelivered"), "true");
        h_ack(c, f, NULL, i == N - 2);
    }
    /* All settled: an ACK of one already acked is unknown. */
    h_sendf(c, "ACK\nmessage-id:%s\nsubscription:s\nreceipt:again\n\n",
            h_hdr(got[1], "message-id"));
    h_expect_error_msg(c, "again", "unknown message");
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

Test(hostile_limits, destination_names)
{
    struct h_broker *b = H_START("--max-destination-length", "64");
    char name[80];
    memset(name, 'n', sizeof name);
    memcpy(name, "/queue/", 7);
    name[64] = '\0'; /* exactly 64 bytes: fine */
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, name, "s", NULL, NULL);
    h_publish(c, name, "at-the-limit", true);
    h_expect_msg(c, "at-the-limit");
    name[64] = 'n';
    name[65] = '\0';
    struct h_conn *d = h_client(b, "1.2");
    h_sendf(d, "SEND\ndestination:%s\nreceipt:long\n\nx", name);
    h_expect_error_msg(d, "long", "destination too long");
    struct h_conn *e = h_client(b, "1.2");
    h_sendf(e, "SUBSCRIBE\nid:1\ndestination:%s\nreceipt:long\n\n", name);
    h_expect_error_msg(e, "long", "destination too long");
    /* Control bytes: a tab, an escaped CR (1.2), DEL. */
    static const char *const bad[] = {"/queue/a\tb", "/queue/a\\rb", "/topic/a\x7f"};
    for (size_t i = 0; i < 3; i++) {
        struct h_conn *x = h_client(b, "1.2");
        h_sendf(x, "SEND\ndestination:%s\nreceipt:ctl\n\nx", bad[i]);
        h_expect_error_msg(x, "ctl", "Invalid destination");
    }
    h_bystander_ok(b);
    h_publish(c, h_fmt("%.64s", name), "after", true);
    h_expect_msg(c, "after");
    h_broker_stop_ok(b);
}

Test(hostile_limits, destinations_in_the_broker)
{
    /* Two workers: the count is shared by every owner. */
    struct h_broker *b = H_START("--max-destinations", "4");
    const char *d[8];
    for (int i = 1; i < 8; i++)
        d[i] = h_dest(i == 3 || i == 7 ? "topic" : "queue", h_fmt("d%d", i));
    const char *t5 = h_dest("topic", "d5");
    struct h_conn *c = h_client(b, "1.2");
    /* Two queues with consumers, one topic with a subscriber, one queue
     * holding a message: four. */
    h_subscribe(c, d[1], "1", NULL, NULL);
    h_subscribe(c, d[2], "2", NULL, NULL);
    h_subscribe(c, d[3], "3", NULL, NULL);
    struct h_conn *p = h_client(b, "1.2");
    h_publish(p, d[4], "kept", true);
    /* A fifth by SEND, by SUBSCRIBE to a queue, and to a topic. */
    h_sendf(p, "SEND\ndestination:%s\nreceipt:five\n\nx", d[5]);
    h_expect_error_msg(p, NULL, "too many destinations");
    struct h_conn *q = h_client(b, "1.2");
    h_sendf(q, "SUBSCRIBE\nid:5\ndestination:%s\nreceipt:five\n\n", d[5]);
    h_expect_error_msg(q, NULL, "too many destinations");
    struct h_conn *t = h_client(b, "1.2");
    h_sendf(t, "SUBSCRIBE\nid:5\ndestination:%s\nreceipt:five\n\n", t5);
    h_expect_error_msg(t, NULL, "too many destinations");
    /* Existing destinations keep working; freeing one makes room. */
    struct h_conn *s = h_client(b, "1.2");
    h_subscribe(s, d[4], "4", NULL, NULL);
    h_expect_msg(s, "kept");
    h_disconnect(s); /* d4 is empty with no consumer: forgotten */
    h_unsubscribe(c, "3");
    h_sleep_ms(100); /* the interest change reaches the owner */
    struct h_conn *n = h_client(b, "1.2");
    h_subscribe(n, d[6], "6", NULL, NULL);
    h_subscribe(n, d[7], "7", NULL, NULL);
    h_publish(n, d[7], "fits", true);
    h_expect_msg(n, "fits");
    h_publish(n, d[1], "old", true);
    h_expect_msg(c, "old");
    h_broker_stop_ok(b);
}

/* A publisher paused by a full queue is not read, so its heart-beats go
 * unseen: it must not be closed for heart-beat silence while paused. */
Test(hostile_limits, paused_publisher_keeps_its_heartbeat_contract)
{
    struct h_broker *b = H_START("--queue-max-messages", "5", "--heartbeat-min", "100ms");
    const char *q = h_dest("queue", "hb");
    struct h_conn *p = h_dial(b);
    struct h_frame *f = h_stomp_connect(p, "1.2", NULL, NULL, "200,0", false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0);
    cr_assert_str_eq(h_hdr(f, "heart-beat"), "0,200");
    for (int i = 0; i < 20; i++)
        h_sendf(p, "SEND\ndestination:%s\n%s\nm%d", q, i == 19 ? "receipt:last\n" : "", i);
    /* Paused: keep beating for 1.5 s (> 2 x 200 ms) while nothing is read. */
    for (int i = 0; i < 15; i++) {
        h_sleep_ms(100);
        cr_assert_eq(h_send_raw(p, "\n", 1), 0, "publisher closed while paused");
    }
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, q, "s", NULL, NULL);
    for (int i = 0; i < 20; i++)
        h_expect_msg(c, h_fmt("m%d", i));
    h_expect_receipt(p, "last");
    cr_assert_eq(p->closed, 0);
    h_broker_stop_ok(b);
}

/* --- floods from a client that never reads while it sends --- */

/* Send `n` frames made by fmt (one %d) in one go on a connection with a tiny
 * receive buffer, without reading; then read what came back: at most
 * `receipts` RECEIPTs, then an ERROR with `message`, then the close. In
 * between, a bystander must still work: a new client on a new queue, or
 * `by` subscribed to `byq` when no new destination can be made. */
static void flood(struct h_broker *b, const char *fmt, int n, int receipts, const char *message,
                  struct h_conn *by, const char *byq)
{
    struct h_conn *c = h_dial_port(b->port, 4096);
    struct h_frame *f = h_stomp_connect(c, "1.2", NULL, NULL, NULL, false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0);
    size_t cap = (size_t)n * 160, len = 0;
    char *buf = malloc(cap);
    cr_assert(buf != NULL);
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(buf + len, cap - len, fmt, i);
        buf[len++] = '\0';
    }
    (void)h_send_raw(c, buf, len); /* the broker may close before the end */
    free(buf);
    h_sleep_ms(200);
    if (by) {
        struct h_conn *p = h_client(b, "1.2");
        h_publish(p, byq, "still-here", true);
        h_expect_msg(by, "still-here");
    } else {
        h_bystander_ok(b);
    }
    int got = 0;
    while ((f = h_read(c, H_WAIT)) != NULL && strcmp(f->cmd, "RECEIPT") == 0)
        got++;
    cr_assert(f != NULL, "closed after %d RECEIPTs without an ERROR", got);
    cr_assert_str_eq(f->cmd, "ERROR", "%s", h_show(f));
    cr_assert_str_eq(h_hdr(f, "message"), message, "%s", h_show(f));
    /* RECEIPTs still waiting for their fence when the ERROR is written are
     * never sent (nothing follows an ERROR): at most one per frame that
     * was within the bound. */
    cr_assert_leq(got, receipts, "%d RECEIPTs for %d frames within the bound", got, receipts);
    cr_assert(h_wait_closed(c, 3000, NULL), "not closed after the ERROR");
}

Test(hostile_limits, flood_of_subscriptions_never_read)
{
    struct h_broker *b = H_START0(); /* default --max-subscriptions 1000 */
    flood(b, h_fmt("SUBSCRIBE\nid:%%d\ndestination:%s\nreceipt:r\n\n", h_dest("topic", "fl")), 3000,
          1000, "too many subscriptions", NULL, NULL);
    h_broker_stop_ok(b);
}

Test(hostile_limits, flood_of_transactions_never_read)
{
    struct h_broker *b = H_START0(); /* default --max-transactions 100 */
    flood(b, "BEGIN\ntransaction:t%d\nreceipt:r\n\n", 1000, 100, "too many transactions", NULL,
          NULL);
    h_broker_stop_ok(b);
}

Test(hostile_limits, flood_of_destinations_never_read)
{
    struct h_broker *b = H_START("--max-destinations", "50");
    struct h_conn *by = h_client(b, "1.2");
    const char *byq = h_dest("queue", "by");
    h_subscribe(by, byq, "s", NULL, NULL);
    /* Queues that hold their message: each one lives on. */
    flood(b, h_fmt("SEND\ndestination:/queue/flood-%d-%%d\n\nx", (int)getpid()), 1000, 0,
          "too many destinations", by, byq);
    /* The queues the flood made still hold their messages, so the broker is
     * still full: a new queue is refused, the bystander's works. Which
     * SENDs made one depends on which owner counted first. */
    struct h_conn *c = h_client(b, "1.2");
    h_sendf(c, "SUBSCRIBE\nid:1\ndestination:%s\nreceipt:new\n\n", h_dest("queue", "new"));
    h_expect_error_msg(c, NULL, "too many destinations");
    struct h_conn *p = h_client(b, "1.2");
    h_publish(p, byq, "after", true);
    h_expect_msg(by, "after");
    h_broker_stop_ok(b);
}

/* After an ERROR the broker reads and drops input for a while so that the
 * ERROR is not lost to a reset; a client that keeps flooding is no longer
 * read after 16 MiB (its writes stall), instead of being read for the whole
 * linger. */
Test(hostile_limits, flood_after_error_is_cut_off)
{
    struct h_broker *b = H_START0();
    struct h_conn *c = h_client(b, "1.2");
    h_sendz(c, "FOO\n\n");
    static char junk[64 * 1024];
    memset(junk, 'j', sizeof junk);
    size_t sent = 0;
    int rc = 0;
    uint64_t t0 = h_now_ms();
    while (sent < (64u << 20) && h_now_ms() - t0 < 5000) {
        if ((rc = h_send_raw(c, junk, sizeof junk)) != 0)
            break;
        sent += sizeof junk;
    }
    cr_assert(rc != 0, "the broker still read after %zu bytes past its ERROR", sent);
    /* 16 MiB read, plus what the two kernels' socket buffers hold. */
    cr_assert_leq(sent, (size_t)48 << 20, "cut off only after %zu bytes", sent);
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

/* ACK/NACK frames held by a transaction keep only short ids: one longer than
 * any id the broker hands out is refused when it arrives, and a 1.1
 * subscription name is not kept at all (the message-id alone is resolved at
 * COMMIT, as RabbitMQ does), so 100 transactions x 10,000 frames cannot hold
 * 64 KiB names each. */
Test(hostile_limits, transaction_acks_keep_no_long_names)
{
    struct h_broker *b = H_START0();
    char big[2000];
    memset(big, 'i', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct h_conn *c = h_client(b, "1.2");
    h_sendf(c, "BEGIN\ntransaction:t\n\n");
    h_sendf(c, "ACK\nid:%s\ntransaction:t\nreceipt:long\n\n", big);
    h_expect_error_msg(c, "long", "unknown message");
    struct h_conn *d = h_client(b, "1.1");
    h_sendf(d, "BEGIN\ntransaction:t\n\n");
    h_sendf(d, "ACK\nmessage-id:1\nsubscription:%s\ntransaction:t\nreceipt:nosub\n\n", big);
    h_expect_silence(d, 100); /* held (short id), its receipt waits for COMMIT */
    h_sendf(d, "COMMIT\ntransaction:t\nreceipt:dc\n\n");
    h_expect_error_msg(d, "dc", "unknown message"); /* message-id 1 awaits no ACK */
    /* A 1.1 transactional ACK of a real delivery still works. */
    const char *q = h_dest("queue", "txack");
    struct h_conn *e = h_client(b, "1.1");
    h_subscribe(e, q, "s", "client", NULL);
    h_publish(e, q, "m", true);
    struct h_frame *f = h_expect_msg(e, "m");
    h_sendf(e, "BEGIN\ntransaction:t\n\n");
    h_ack(e, f, "t", false);
    h_sendf(e, "COMMIT\ntransaction:t\nreceipt:c\n\n");
    h_expect_receipt(e, "c");
    h_unsubscribe(e, "s");
    struct h_conn *g = h_client(b, "1.2");
    h_subscribe(g, q, "g", NULL, NULL);
    h_expect_silence(g, 200); /* acked: not redelivered */
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}
