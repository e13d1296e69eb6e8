/*
 * test_broker_compat.c - issue 13's compatibility details on the real
 * workers (tests/unit/broker_harness.h):
 *
 * - prefetch-count bounds unacked topic messages in client ack modes: the
 *   rest wait in the subscription's backlog, in order, and come as ACKs free
 *   room (cumulative in `client`, one by one in `client-individual`); a NACK
 *   gives the message back to the same subscription, redelivered:true, and
 *   NACK requeue:false drops it; 1.0/1.1 ack topic messages by message-id;
 *   a subscriber that never acks is cut as a slow consumer once its backlog
 *   passes --max-pending-output;
 * - ERROR texts are RabbitMQ's for the same conditions.
 */
#include "broker_harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

static void fini(void)
{
    th_teardown();
}

TestSuite(compat, .fini = fini);

static void expect_receipt(struct th_conn *t, const char *id)
{
    struct stp_frame f = th_expect(t, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&f, "receipt-id"), id);
}

/* The next MESSAGE, its body `body`; returns its ack header (1.2) or
 * message-id (copied to a static buffer) and its redelivered header. */
static const char *expect_msg(struct th_conn *t, const char *body, const char *hdr,
                              const char *redelivered)
{
    static char v[128];
    struct stp_frame f = th_expect(t, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), body);
    if (redelivered)
        cr_assert_str_eq(th_header(&f, "redelivered"), redelivered, "%s", body);
    const char *h = th_header(&f, hdr);
    cr_assert_not_null(h, "MESSAGE %s has no %s header", body, hdr);
    snprintf(v, sizeof(v), "%s", h);
    return v;
}

static void publish(struct th_conn *pub, const char *dest, int from, int to)
{
    for (int i = from; i <= to; i++)
        th_sendf(pub, "SEND\ndestination:%s\n\nm%d", dest, i);
    th_sendf(pub, "SEND\ndestination:%s\nreceipt:p%d\n\nend-marker", dest, to);
    th_pump();
    char id[32];
    snprintf(id, sizeof(id), "p%d", to);
    expect_receipt(pub, id);
}

static struct th_conn *subscriber(unsigned worker, const char *dest, const char *ack,
                                  const char *extra)
{
    struct th_conn *s = th_connect(worker);
    th_sendf(s, "SUBSCRIBE\nid:s\ndestination:%s\nack:%s\n%sreceipt:sub\n\n", dest, ack, extra);
    th_pump();
    expect_receipt(s, "sub");
    return s;
}

/* Only the prefetch's worth is outstanding; an ACK of one (individual)
 * lets exactly one more through, in order. */
Test(compat, topic_prefetch_client_individual)
{
    th_setup(2, NULL);
    const char *t = th_owned_by(1, "/topic/pf", 0);
    struct th_conn *s = subscriber(0, t, "client-individual", "prefetch-count:3\n");
    struct th_conn *pub = th_connect(1);
    publish(pub, t, 1, 9);
    char acks[3][128];
    for (int i = 0; i < 3; i++) {
        char body[8];
        snprintf(body, sizeof(body), "m%d", i + 1);
        snprintf(acks[i], sizeof(acks[i]), "%s", expect_msg(s, body, "ack", "false"));
    }
    th_expect_none(s); /* m4.. wait for room */
    /* ACK the second: one more (m4), still in order. */
    th_sendf(s, "ACK\nid:%s\n\n", acks[1]);
    th_pump();
    const char *a4 = expect_msg(s, "m4", "ack", "false");
    (void)a4;
    th_expect_none(s);
    /* ACK of the same id again: nothing awaits it. */
    th_sendf(s, "ACK\nid:%s\nreceipt:again\n\n", acks[1]);
    th_pump();
    struct stp_frame e = th_expect(s, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&e, "message"), "unknown message");
}

/* `client` acks are cumulative: acking the third frees three places. */
Test(compat, topic_prefetch_client_cumulative)
{
    th_setup(1, NULL);
    struct th_conn *s = subscriber(0, "/topic/cum", "client", "prefetch-count:3\n");
    struct th_conn *pub = th_connect(0);
    publish(pub, "/topic/cum", 1, 7);
    expect_msg(s, "m1", "ack", NULL);
    expect_msg(s, "m2", "ack", NULL);
    const char *a3 = expect_msg(s, "m3", "ack", NULL);
    th_expect_none(s);
    th_sendf(s, "ACK\nid:%s\n\n", a3);
    th_pump();
    expect_msg(s, "m4", "ack", NULL);
    expect_msg(s, "m5", "ack", NULL);
    const char *a6 = expect_msg(s, "m6", "ack", NULL);
    th_expect_none(s);
    th_sendf(s, "ACK\nid:%s\n\n", a6);
    th_pump();
    const char *a7 = expect_msg(s, "m7", "ack", NULL);
    const char *a8 = expect_msg(s, "end-marker", "ack", NULL);
    (void)a7;
    th_sendf(s, "ACK\nid:%s\nreceipt:done\n\n", a8);
    th_pump();
    expect_receipt(s, "done");
    th_expect_none(s);
}

/* Without prefetch-count, --max-unacked bounds a topic subscription too. */
Test(compat, topic_client_ack_bounded_by_max_unacked)
{
    const char *flags[] = {"--max-unacked", "2", NULL};
    th_setup(1, flags);
    struct th_conn *s = subscriber(0, "/topic/mu", "client-individual", "");
    struct th_conn *pub = th_connect(0);
    publish(pub, "/topic/mu", 1, 4);
    const char *a1 = expect_msg(s, "m1", "ack", NULL);
    char first[128];
    snprintf(first, sizeof(first), "%s", a1);
    expect_msg(s, "m2", "ack", NULL);
    th_expect_none(s);
    th_sendf(s, "ACK\nid:%s\n\n", first);
    th_pump();
    expect_msg(s, "m3", "ack", NULL);
    th_expect_none(s);
}

/* RabbitMQ's per-subscription queue: a NACKed topic message comes back to
 * the same subscription first, redelivered:true; requeue:false drops it. */
Test(compat, topic_nack_redelivers_to_the_same_subscription)
{
    th_setup(2, NULL);
    const char *t = th_owned_by(1, "/topic/nk", 0);
    struct th_conn *s = subscriber(0, t, "client-individual", "prefetch-count:2\n");
    struct th_conn *pub = th_connect(1);
    publish(pub, t, 1, 3);
    char a1[128];
    snprintf(a1, sizeof(a1), "%s", expect_msg(s, "m1", "ack", "false"));
    expect_msg(s, "m2", "ack", "false");
    th_expect_none(s);
    th_sendf(s, "NACK\nid:%s\n\n", a1);
    th_pump();
    char r1[128];
    snprintf(r1, sizeof(r1), "%s", expect_msg(s, "m1", "ack", "true"));
    cr_assert_str_neq(r1, a1, "a redelivery gets a new ack id");
    th_expect_none(s);
    /* requeue:false: dropped, and m3 takes its place. */
    th_sendf(s, "NACK\nid:%s\nrequeue:false\n\n", r1);
    th_pump();
    expect_msg(s, "m3", "ack", "false");
    th_expect_none(s);
}

/* `client` NACK is cumulative too: every outstanding one up to it comes
 * back, in order. */
Test(compat, topic_cumulative_nack_keeps_order)
{
    th_setup(1, NULL);
    struct th_conn *s = subscriber(0, "/topic/cn", "client", "prefetch-count:3\n");
    struct th_conn *pub = th_connect(0);
    publish(pub, "/topic/cn", 1, 3);
    expect_msg(s, "m1", "ack", NULL);
    char a2[128];
    snprintf(a2, sizeof(a2), "%s", expect_msg(s, "m2", "ack", NULL));
    expect_msg(s, "m3", "ack", NULL);
    th_expect_none(s);
    th_sendf(s, "NACK\nid:%s\n\n", a2);
    th_pump();
    expect_msg(s, "m1", "ack", "true");
    expect_msg(s, "m2", "ack", "true");
    th_expect_none(s); /* m3 still out, end-marker waits */
}

/* STOMP 1.0 and 1.1 ack topic messages by message-id; 1.1 with a made-up
 * subscription header too. */
static struct th_conn *connect_v(unsigned worker, const char *v)
{
    struct th_conn *t = th_open(worker);
    th_sendf(t, "CONNECT\naccept-version:%s\nhost:/\n\n", v);
    th_pump();
    th_expect(t, STP_CMD_CONNECTED);
    return t;
}

Test(compat, topic_ack_by_message_id_1_0_and_1_1)
{
    th_setup(2, NULL);
    const char *t = th_owned_by(1, "/topic/mid", 0);
    struct th_conn *s10 = connect_v(0, "1.0"), *s11 = connect_v(1, "1.1");
    th_sendf(s10, "SUBSCRIBE\ndestination:%s\nack:client\nprefetch-count:1\nreceipt:a\n\n", t);
    th_sendf(s11,
             "SUBSCRIBE\nid:x\ndestination:%s\nack:client-individual\nprefetch-count:1\n"
             "receipt:b\n\n",
             t);
    th_pump();
    expect_receipt(s10, "a");
    expect_receipt(s11, "b");
    struct th_conn *pub = th_connect(1);
    publish(pub, t, 1, 1);
    char id10[64], id11[64];
    snprintf(id10, sizeof(id10), "%s", expect_msg(s10, "m1", "message-id", NULL));
    snprintf(id11, sizeof(id11), "%s", expect_msg(s11, "m1", "message-id", NULL));
    th_expect_none(s10);
    th_expect_none(s11);
    th_sendf(s10, "ACK\nmessage-id:%s\n\n", id10);
    th_sendf(s11, "ACK\nmessage-id:%s\nsubscription:made-up\n\n", id11);
    th_pump();
    expect_msg(s10, "end-marker", "message-id", NULL);
    expect_msg(s11, "end-marker", "message-id", NULL);
    /* An id nothing awaits is an ERROR now that topic messages are kept. */
    th_sendf(s11, "ACK\nmessage-id:%s\nsubscription:x\n\n", id11);
    th_pump();
    struct stp_frame e = th_expect(s11, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&e, "message"), "unknown message");
}

/* ACK inside a transaction frees room at COMMIT, not before. */
Test(compat, topic_transactional_ack)
{
    th_setup(1, NULL);
    struct th_conn *s = subscriber(0, "/topic/tx", "client-individual", "prefetch-count:1\n");
    struct th_conn *pub = th_connect(0);
    publish(pub, "/topic/tx", 1, 1);
    char a1[128];
    snprintf(a1, sizeof(a1), "%s", expect_msg(s, "m1", "ack", NULL));
    th_send(s, "BEGIN\ntransaction:t\n\n");
    th_sendf(s, "ACK\nid:%s\ntransaction:t\n\n", a1);
    th_pump();
    th_expect_none(s);
    th_send(s, "COMMIT\ntransaction:t\nreceipt:c\n\n");
    th_pump();
    /* The ACK took effect at COMMIT: the next one comes, then the RECEIPT. */
    expect_msg(s, "end-marker", "ack", NULL);
    expect_receipt(s, "c");
    th_expect_none(s);
}

/* A subscriber that never acks: its backlog counts toward
 * --max-pending-output, so it is cut as a slow consumer (at 4x at once),
 * not kept growing. Auto-ack subscribers of the same topic are not hurt. */
Test(compat, never_acking_topic_subscriber_is_a_slow_consumer)
{
    const char *flags[] = {"--max-pending-output", "64KiB", "--slow-consumer-grace", "0", NULL};
    th_setup(1, flags);
    struct th_conn *s = subscriber(0, "/topic/na", "client", "prefetch-count:1\n");
    struct th_conn *fine = subscriber(0, "/topic/na", "auto", "");
    struct th_conn *pub = th_connect(0);
    char body[1024 + 1];
    memset(body, 'x', 1024);
    body[1024] = '\0';
    for (int i = 0; i < 200; i++) {
        th_sendf(pub, "SEND\ndestination:/topic/na\n\n%s", body);
        if (i % 20 == 0)
            th_pump();
    }
    th_pump();
    expect_msg(s, body, "ack", NULL);
    struct stp_frame e = th_expect(s, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&e, "message"), "slow consumer");
    cr_assert(s->torn_down);
    for (int i = 0; i < 200; i++) {
        struct stp_frame f = th_expect(fine, STP_CMD_MESSAGE);
        cr_assert_eq(f.body.len, 1024);
    }
    th_expect_none(fine);
    cr_assert_not(fine->torn_down);
}

/* Auto-ack topic subscriptions are not bounded by a prefetch. */
Test(compat, auto_ack_topic_ignores_prefetch)
{
    th_setup(1, NULL);
    struct th_conn *s = subscriber(0, "/topic/au", "auto", "prefetch-count:1\n");
    struct th_conn *pub = th_connect(0);
    publish(pub, "/topic/au", 1, 5);
    for (int i = 1; i <= 5; i++) {
        char b[8];
        snprintf(b, sizeof(b), "m%d", i);
        struct stp_frame f = th_expect(s, STP_CMD_MESSAGE);
        cr_assert_str_eq(th_body(&f), b);
        cr_assert_null(th_header(&f, "ack"));
    }
}

/* --- ERROR texts (RabbitMQ's) --- */

static void expect_error(struct th_conn *t, const char *message, const char *body)
{
    struct stp_frame f = th_expect(t, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), message);
    if (body)
        cr_assert_str_eq(th_body(&f), body);
}

Test(compat, error_texts_destinations)
{
    th_setup(1, NULL);
    struct th_conn *c = th_connect(0);
    th_send(c, "SEND\ndestination:/foo\n\nx");
    th_pump();
    expect_error(c, "Unknown destination",
                 "'/foo' is not a valid destination.\nValid destination types are: /topic/, "
                 "/queue/, /temp-queue/, /reply-queue/.");
    c = th_connect(0);
    th_send(c, "SUBSCRIBE\nid:1\ndestination:/queue/\n\n");
    th_pump();
    expect_error(c, "Invalid destination",
                 "'/queue/' is not a valid destination: the name after the prefix cannot be "
                 "blank.");
    c = th_connect(0);
    th_send(c, "SEND\n\nx");
    th_pump();
    expect_error(c, "Missing destination", "SEND must include a 'destination' header.");
    c = th_connect(0);
    th_send(c, "SUBSCRIBE\nid:1\n\n");
    th_pump();
    expect_error(c, "Missing destination", "SUBSCRIBE must include a 'destination' header.");
}

Test(compat, error_texts_subscriptions_and_commands)
{
    th_setup(1, NULL);
    struct th_conn *c = th_connect(0);
    th_send(c, "SUBSCRIBE\nid:T_1\ndestination:/topic/a\n\n");
    th_send(c, "SUBSCRIBE\nid:T_1\ndestination:/topic/b\n\n");
    th_pump();
    expect_error(c, "Duplicated subscription identifier",
                 "A subscription identified by 'T_1' already exists.");
    c = th_connect(0);
    th_send(c, "UNSUBSCRIBE\nid:nope\n\n");
    th_pump();
    expect_error(c, "No subscription found",
                 "UNSUBSCRIBE must refer to an existing subscription.\nSubscription to 'nope' "
                 "not found.");
    c = th_connect(0);
    th_send(c, "FOO\n\n");
    th_pump();
    expect_error(c, "Bad command", NULL);
    c = th_connect(0);
    th_send(c, "MESSAGE\n\n");
    th_pump();
    expect_error(c, "Bad command",
                 "Could not interpret command MESSAGE: it is not one a client may send.");
    c = th_open(0);
    th_send(c, "SEND\ndestination:/topic/a\n\nx");
    th_pump();
    expect_error(c, "Illegal command", NULL);
    c = th_open(0);
    th_send(c, "CONNECT\naccept-version:2.0\n\n");
    th_pump();
    expect_error(c, "Version mismatch", "Supported versions are 1.0,1.1,1.2");
    c = th_connect(0);
    th_send(c, "ACK\n\n");
    th_pump();
    expect_error(c, "Missing header", "ACK must include the 'id' header.");
    c = th_connect(0);
    th_send(c, "COMMIT\n\n");
    th_pump();
    expect_error(c, "Missing transaction", "COMMIT must include a 'transaction' header.");
    c = th_connect(0);
    th_send(c, "ABORT\ntransaction:zz\n\n");
    th_pump();
    expect_error(c, "Bad transaction",
                 "Invalid transaction identifier: 'zz' (ABORT names a transaction that was not "
                 "begun).");
}

/* A wrong passcode and an unknown login look the same: only the login the
 * client sent differs. */
Test(compat, error_texts_refused_login)
{
    const char *flags[] = {"--user", "alice:right", NULL};
    th_setup(1, flags);
    const char *tries[][2] = {{"alice", "wrong"}, {"mallory", "wrong"}, {"mallory", "right"}};
    for (int i = 0; i < 3; i++) {
        struct th_conn *c = th_open(0);
        th_sendf(c, "CONNECT\naccept-version:1.2\nhost:/\nlogin:%s\npasscode:%s\n\n", tries[i][0],
                 tries[i][1]);
        cr_assert(th_await(c, 5000));
        char want[64];
        snprintf(want, sizeof(want), "Access refused for user '%s'", tries[i][0]);
        struct stp_frame f = th_expect(c, STP_CMD_ERROR);
        cr_assert_str_eq(th_header(&f, "message"), "Bad CONNECT");
        cr_assert_str_eq(th_body(&f), want);
        /* Nothing else tells them apart: the same headers. */
        cr_assert_null(th_header(&f, "receipt-id"));
        cr_assert_str_eq(th_header(&f, "content-type"), "text/plain");
    }
    /* Control bytes in the login come back as '?'. */
    struct th_conn *c = th_open(0);
    th_send(c, "CONNECT\naccept-version:1.2\nhost:/\nlogin:a\tb\npasscode:x\n\n");
    cr_assert(th_await(c, 5000));
    expect_error(c, "Bad CONNECT", "Access refused for user 'a?b'");
}

/* A client string quoted in an ERROR body is cut at 256 bytes: a 60 KiB
 * subscription id does not come back whole. */
Test(compat, error_body_quotes_are_bounded)
{
    th_setup(1, NULL);
    static char id[60 * 1024 + 1], frame[70 * 1024];
    memset(id, 'i', sizeof(id) - 1);
    struct th_conn *c = th_connect(0);
    snprintf(frame, sizeof(frame), "SUBSCRIBE\nid:%s\ndestination:/topic/q1\n\n", id);
    th_send(c, frame);
    snprintf(frame, sizeof(frame), "SUBSCRIBE\nid:%s\ndestination:/topic/q2\n\n", id);
    th_send(c, frame);
    th_pump();
    struct stp_frame f = th_expect(c, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "Duplicated subscription identifier");
    char want[512];
    snprintf(want, sizeof(want), "A subscription identified by '%.256s' already exists.", id);
    cr_assert_str_eq(th_body(&f), want);
    /* The same for a destination. */
    static char dest[8 * 1024 + 1];
    memset(dest, 'd', sizeof(dest) - 1);
    dest[0] = '/';
    c = th_connect(0);
    snprintf(frame, sizeof(frame), "SEND\ndestination:%s\n\nx", dest);
    th_send(c, frame);
    th_pump();
    f = th_expect(c, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "Unknown destination");
    cr_assert_lt(strlen(th_body(&f)), 256 + 130);
}
