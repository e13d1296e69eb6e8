/* Unit tests of topics (src/broker/topic.c: the owner's interest table, each
 * worker's local subscriber lists) through the net's ops table, without
 * sockets (broker_harness.h). */
#include "broker_harness.h"
#include "stampede/counter.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fini(void)
{
    th_teardown();
}

TestSuite(topic, .fini = fini);

Test(topic, every_subscriber_on_every_worker_gets_it)
{
    th_setup(2, NULL);
    struct th_conn *pub = th_connect(0), *a = th_connect(0), *b = th_connect(1);
    th_send(a, "SUBSCRIBE\nid:a\ndestination:/topic/t\n\n");
    th_send(b, "SUBSCRIBE\nid:b\ndestination:/topic/t\n\n");
    th_pump();
    th_send(pub, "SEND\ndestination:/topic/t\n\nhello");
    th_pump();
    struct stp_frame f = th_expect(a, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "hello");
    cr_assert_str_eq(th_header(&f, "subscription"), "a");
    f = th_expect(b, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "hello");
    cr_assert_str_eq(th_header(&f, "subscription"), "b");
    th_expect_none(a);
    th_expect_none(b);
    th_expect_none(pub);
}

/* --- helpers --- */

static void publish(struct th_conn *t, const char *dest, const char *body)
{
    char hdr[256];
    snprintf(hdr, sizeof(hdr), "SEND\ndestination:%s\n\n", dest);
    th_send_body(t, hdr, body, strlen(body));
}

static void subscribe(struct th_conn *t, const char *id, const char *dest)
{
    th_sendf(t, "SUBSCRIBE\nid:%s\ndestination:%s\nreceipt:sub-%s\n\n", id, dest, id);
    th_pump();
    struct stp_frame r = th_expect(t, STP_CMD_RECEIPT);
    char want[64];
    snprintf(want, sizeof(want), "sub-%s", id);
    cr_assert_str_eq(th_header(&r, "receipt-id"), want);
}

static void unsubscribe(struct th_conn *t, const char *id)
{
    th_sendf(t, "UNSUBSCRIBE\nid:%s\nreceipt:unsub-%s\n\n", id, id);
    th_pump();
    struct stp_frame r = th_expect(t, STP_CMD_RECEIPT);
    char want[64];
    snprintf(want, sizeof(want), "unsub-%s", id);
    cr_assert_str_eq(th_header(&r, "receipt-id"), want);
}

/* The next frame of t is a MESSAGE of subscription `sub` with body `body`. */
static void expect_msg(struct th_conn *t, const char *sub, const char *body)
{
    struct stp_frame f = th_expect(t, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_header(&f, "subscription"), sub);
    cr_assert_str_eq(th_body(&f), body);
}

static uint64_t dropped(unsigned worker)
{
    return STP_STAT_GET(th_worker(worker)->stats.msgs_dropped);
}

static size_t ndests(void)
{
    return atomic_load(&th_broker()->ndests);
}

/* --- interest across workers --- */

/* Three workers, the topic owned by worker 1, subscribers on all three (two
 * on worker 0): each gets every message exactly once, in the publisher's
 * order. */
Test(topic, interest_across_workers_exactly_once_in_order)
{
    th_setup(3, NULL);
    const char *topic = th_owned_by(1, "/topic/t", 0);
    struct th_conn *pub = th_connect(2);
    struct th_conn *subs[4] = {th_connect(0), th_connect(0), th_connect(1), th_connect(2)};
    const char *ids[4] = {"a0", "b0", "c1", "d2"};
    for (int i = 0; i < 4; i++)
        subscribe(subs[i], ids[i], topic);
    for (int i = 0; i < 100; i++) {
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        publish(pub, topic, body);
    }
    th_pump();
    for (int s = 0; s < 4; s++) {
        cr_assert_eq(th_pending_frames(subs[s]), 100, "subscriber %s got %zu frames", ids[s],
                     th_pending_frames(subs[s]));
        for (int i = 0; i < 100; i++) {
            char body[16];
            snprintf(body, sizeof(body), "m%d", i);
            expect_msg(subs[s], ids[s], body);
        }
        th_expect_none(subs[s]);
    }
    th_expect_none(pub);
    cr_assert_eq(dropped(0) + dropped(1) + dropped(2), 0);
    cr_assert_eq(ndests(), 1);
}

/* Two publishers on different workers, interleaved: every subscriber sees
 * one and the same order, and each publisher's own order within it. */
Test(topic, every_subscriber_sees_the_same_order)
{
    th_setup(3, NULL);
    const char *topic = th_owned_by(0, "/topic/o", 0);
    struct th_conn *p1 = th_connect(1), *p2 = th_connect(2);
    struct th_conn *subs[3] = {th_connect(0), th_connect(1), th_connect(2)};
    for (int i = 0; i < 3; i++)
        subscribe(subs[i], "s", topic);
    for (int i = 0; i < 50; i++) {
        char body[16];
        snprintf(body, sizeof(body), "p1-%d", i);
        publish(p1, topic, body);
        snprintf(body, sizeof(body), "p2-%d", i);
        publish(p2, topic, body);
        if (i % 7 == 0)
            th_turn(2); /* vary the interleaving at the owner */
    }
    th_pump();
    char order[100][16];
    for (int s = 0; s < 3; s++) {
        int next1 = 0, next2 = 0;
        cr_assert_eq(th_pending_frames(subs[s]), 100);
        for (int i = 0; i < 100; i++) {
            struct stp_frame f = th_expect(subs[s], STP_CMD_MESSAGE);
            const char *b = th_body(&f);
            if (s == 0)
                snprintf(order[i], sizeof(order[i]), "%s", b);
            else
                cr_assert_str_eq(b, order[i], "subscriber %d differs at %d", s, i);
            int n = atoi(b + 3);
            if (strncmp(b, "p1-", 3) == 0)
                cr_assert_eq(n, next1++, "p1 out of order");
            else
                cr_assert_eq(n, next2++, "p2 out of order");
        }
        th_expect_none(subs[s]);
    }
}

/* --- UNSUBSCRIBE --- */

Test(topic, unsubscribe_last_local_subscriber)
{
    th_setup(2, NULL);
    const char *topic = th_owned_by(1, "/topic/u", 0);
    struct th_conn *pub = th_connect(0);
    struct th_conn *a = th_connect(0), *b = th_connect(1), *b2 = th_connect(1);
    subscribe(a, "a", topic);
    subscribe(b, "b", topic);
    subscribe(b2, "b2", topic);
    publish(pub, topic, "one");
    th_pump();
    expect_msg(a, "a", "one");
    expect_msg(b, "b", "one");
    expect_msg(b2, "b2", "one");

    /* a was worker 0's only subscriber. */
    unsubscribe(a, "a");
    publish(pub, topic, "two");
    th_pump();
    th_expect_none(a);
    expect_msg(b, "b", "two");
    expect_msg(b2, "b2", "two");

    /* One of worker 1's two: the other still gets them. */
    unsubscribe(b2, "b2");
    publish(pub, topic, "three");
    th_pump();
    th_expect_none(a);
    th_expect_none(b2);
    expect_msg(b, "b", "three");
    cr_assert_eq(dropped(1), 0);

    /* The last one anywhere: the owner forgets the topic (so worker 0's
     * interest was withdrawn too) and drops what comes next. */
    unsubscribe(b, "b");
    cr_assert_eq(ndests(), 0);
    publish(pub, topic, "four");
    th_pump();
    cr_assert_eq(dropped(1), 1);
    th_expect_none(a);
    th_expect_none(b);
    th_expect_none(b2);

    /* Subscribing again (same id) works again. */
    subscribe(a, "a", topic);
    cr_assert_eq(ndests(), 1);
    publish(pub, topic, "five");
    th_pump();
    expect_msg(a, "a", "five");
    th_expect_none(b);
    th_expect_none(b2);
    cr_assert_eq(dropped(1), 1);
    th_expect_none(pub);
}

/* UNSUBSCRIBE of worker 0's last subscriber while another worker keeps the
 * topic alive: the owner must stop sending to worker 0, visible when worker
 * 0 gets a subscriber again only through its fresh interest. */
Test(topic, resubscribe_on_same_worker_after_last_left)
{
    th_setup(2, NULL);
    const char *topic = th_owned_by(1, "/topic/r", 0);
    struct th_conn *pub = th_connect(1), *a = th_connect(0), *b = th_connect(1);
    subscribe(a, "a", topic);
    subscribe(b, "b", topic);
    /* Unsubscribe and subscribe again without waiting in between: the -1
     * and +1 reach the owner in order. */
    th_send(a, "UNSUBSCRIBE\nid:a\n\n");
    th_sendf(a, "SUBSCRIBE\nid:a2\ndestination:%s\nreceipt:r\n\n", topic);
    th_pump();
    th_expect(a, STP_CMD_RECEIPT);
    for (int i = 0; i < 3; i++) {
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        publish(pub, topic, body);
    }
    th_pump();
    for (int i = 0; i < 3; i++) {
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        expect_msg(a, "a2", body);
        expect_msg(b, "b", body);
    }
    th_expect_none(a);
    th_expect_none(b);
}

/* --- DISCONNECT --- */

Test(topic, disconnect_removes_subscriber_then_drops)
{
    th_setup(2, NULL);
    const char *topic = th_owned_by(1, "/topic/d", 0);
    struct th_conn *pub = th_connect(0), *a = th_connect(0), *b = th_connect(1);
    /* Nobody subscribes yet: dropped, at the owner. */
    publish(pub, topic, "early");
    th_pump();
    cr_assert_eq(dropped(1), 1);
    cr_assert_eq(dropped(0), 0);

    subscribe(a, "a", topic);
    subscribe(b, "b", topic);
    th_send(a, "DISCONNECT\nreceipt:bye\n\n");
    th_pump();
    struct stp_frame r = th_expect(a, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&r, "receipt-id"), "bye");
    th_expect_none(a);
    cr_assert(a->torn_down);
    cr_assert_null(a->c, "the disconnected connection was not freed");

    publish(pub, topic, "one");
    th_pump();
    expect_msg(b, "b", "one");
    th_expect_none(a);
    cr_assert_eq(dropped(1), 1);

    /* The last subscriber leaves without a receipt: the topic goes, and
     * every message to it is dropped and counted. */
    th_send(b, "DISCONNECT\n\n");
    th_pump();
    cr_assert(b->torn_down);
    cr_assert_null(b->c);
    th_expect_none(b);
    cr_assert_eq(ndests(), 0);
    for (int i = 0; i < 5; i++)
        publish(pub, topic, "late");
    th_pump();
    cr_assert_eq(dropped(1), 6);
    cr_assert_eq(dropped(0), 0);
    th_expect_none(pub);
}

/* --- one connection, two subscriptions --- */

Test(topic, two_subscriptions_of_one_connection)
{
    th_setup(2, NULL);
    const char *topic = th_owned_by(1, "/topic/two", 0);
    struct th_conn *pub = th_connect(1), *a = th_connect(0);
    subscribe(a, "x", topic);
    subscribe(a, "y", topic);
    publish(pub, topic, "one");
    th_pump();
    /* Each with its own subscription header, in subscription order. */
    expect_msg(a, "x", "one");
    expect_msg(a, "y", "one");
    th_expect_none(a);

    /* Dropping one leaves the other (the worker still has a subscriber). */
    unsubscribe(a, "x");
    publish(pub, topic, "two");
    th_pump();
    expect_msg(a, "y", "two");
    th_expect_none(a);
    cr_assert_eq(ndests(), 1);

    unsubscribe(a, "y");
    cr_assert_eq(ndests(), 0);
    publish(pub, topic, "three");
    th_pump();
    th_expect_none(a);
    cr_assert_eq(dropped(1), 1);
}

/* --- --max-destinations --- */

static const char *const two_dests[] = {"--max-destinations", "2", NULL};

Test(topic, max_destinations_refuses_a_third_topic)
{
    th_setup(2, two_dests);
    const char *t1 = th_owned_by(0, "/topic/a", 0);
    const char *t2 = th_owned_by(1, "/topic/b", 1);
    const char *t3 = th_owned_by(1, "/topic/c", 2);
    struct th_conn *pub = th_connect(1), *a = th_connect(0), *other = th_connect(1);
    struct th_conn *a2 = th_connect(0), *o2 = th_connect(1);
    subscribe(a, "1", t1);
    subscribe(a, "2", t2);
    subscribe(other, "2", t2); /* the same topic again: no new destination */
    cr_assert_eq(ndests(), 2);
    th_sendf(a, "SUBSCRIBE\nid:3\ndestination:%s\nreceipt:r3\n\n", t3);
    /* a2 subscribes to it on the same worker before the owner answered
     * (no interest of its own is posted), o2 on the owner's worker: all
     * three are refused. */
    th_sendf(a2, "SUBSCRIBE\nid:3\ndestination:%s\nreceipt:r3\n\n", t3);
    th_sendf(o2, "SUBSCRIBE\nid:3\ndestination:%s\nreceipt:r3\n\n", t3);
    th_pump();
    struct th_conn *refused[] = {a, a2, o2};
    for (int i = 0; i < 3; i++) {
        struct stp_frame e = th_expect(refused[i], STP_CMD_ERROR);
        cr_assert_str_eq(th_header(&e, "message"), "too many destinations");
        cr_assert_str_eq(th_body(&e),
                         "The broker holds --max-destinations queues and topics already.");
        th_expect_none(refused[i]);
        cr_assert(refused[i]->torn_down);
        cr_assert_null(refused[i]->c, "the refused connection %d was not freed", i);
    }
    /* a's subscriptions went with it: t1 is gone, t2 is kept by `other`. */
    cr_assert_eq(ndests(), 1);
    publish(pub, t2, "still");
    publish(pub, t3, "nobody");
    th_pump();
    expect_msg(other, "2", "still");
    th_expect_none(other);
    cr_assert_eq(dropped(1), 1);

    /* Room again: a new topic is accepted. */
    subscribe(other, "3", t3);
    cr_assert_eq(ndests(), 2);
    publish(pub, t3, "now");
    th_pump();
    expect_msg(other, "3", "now");
    th_expect_none(pub);
}

/* --- a SUBSCRIBE's RECEIPT comes before its first MESSAGE --- */

/* b subscribes (with a receipt) on a worker that already has a subscriber,
 * so deliveries reach b's worker before the owner answered b's fence: they
 * are held until the RECEIPT is out. */
Test(topic, first_message_never_overtakes_the_receipt)
{
    th_setup(2, NULL);
    const char *topic = th_owned_by(1, "/topic/h", 0);
    struct th_conn *pub = th_connect(1), *a = th_connect(0), *b = th_connect(0);
    subscribe(a, "a", topic);
    th_sendf(b, "SUBSCRIBE\nid:b\ndestination:%s\nreceipt:rb\n\n", topic);
    publish(pub, topic, "m1"); /* at the owner: posted to worker 0 at once */
    th_turn(0);                /* m1 reaches a, and b's subscription */
    expect_msg(a, "a", "m1");
    th_expect_none(b); /* held: b's fence is not answered yet */
    th_pump();
    struct stp_frame r = th_expect(b, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&r, "receipt-id"), "rb");
    expect_msg(b, "b", "m1");
    th_expect_none(b);
    th_expect_none(a);
}

/* Issue 13: every MESSAGE carries redelivered, false on a first delivery
 * (RabbitMQ's clients read it unconditionally), topics and queues alike. */
Test(topic, every_message_says_whether_it_is_redelivered)
{
    th_setup(1, NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    th_send(sub, "SUBSCRIBE\nid:t\ndestination:/topic/r\n\n");
    th_send(sub, "SUBSCRIBE\nid:q\ndestination:/queue/r\n\n");
    th_pump();
    th_send(pub, "SEND\ndestination:/topic/r\n\nt");
    th_send(pub, "SEND\ndestination:/queue/r\n\nq");
    th_pump();
    for (int i = 0; i < 2; i++) {
        struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
        cr_assert_str_eq(th_header(&f, "redelivered"), "false");
    }
}

/* Issue 13: ActiveMQ's selector header on a topic subscription filters
 * what it gets (other subscribers of the topic are not affected); one that
 * does not compile is an ERROR naming where. */
Test(topic, selector_filters_a_topic_subscription)
{
    th_setup(2, NULL);
    struct th_conn *pub = th_connect(0), *sel = th_connect(1), *all = th_connect(1);
    th_send(sel, "SUBSCRIBE\nid:s\ndestination:/topic/orders\n"
                 "selector:type = 'order' AND priority > 5\n\n");
    th_send(all, "SUBSCRIBE\nid:a\ndestination:/topic/orders\n\n");
    th_pump();
    th_send(pub, "SEND\ndestination:/topic/orders\ntype:order\npriority:9\n\nyes-1");
    th_send(pub, "SEND\ndestination:/topic/orders\ntype:order\npriority:2\n\nno-low");
    th_send(pub, "SEND\ndestination:/topic/orders\ntype:quote\npriority:9\n\nno-type");
    th_send(pub, "SEND\ndestination:/topic/orders\npriority:9\n\nno-missing");
    th_send(pub, "SEND\ndestination:/topic/orders\ntype:order\npriority:10\n\nyes-2");
    th_pump();
    struct stp_frame f = th_expect(sel, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "yes-1");
    f = th_expect(sel, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), "yes-2");
    th_expect_none(sel);
    for (int i = 0; i < 5; i++)
        th_expect(all, STP_CMD_MESSAGE);
    th_expect_none(all);
}

Test(topic, a_bad_selector_is_an_error_with_its_position)
{
    th_setup(1, NULL);
    struct th_conn *c = th_connect(0);
    th_send(c, "SUBSCRIBE\nid:s\ndestination:/topic/x\nselector:a = \nreceipt:r\n\n");
    th_pump();
    struct stp_frame f = th_expect(c, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "invalid selector");
    cr_assert_str_eq(th_header(&f, "receipt-id"), "r");
    cr_assert_not_null(strstr(th_body(&f), "at "), "%s", th_body(&f));
}

/* Issue 13: a burst that takes a healthy subscriber's output over
 * --max-pending-output (two large messages at once) does not cut it; only
 * staying over for --slow-consumer-grace, or 4x the bound, does. */
Test(topic, a_burst_over_the_output_bound_is_not_a_slow_consumer)
{
    const char *flags[] = {"--max-pending-output=64KiB", "--max-frame-size=1MiB", NULL};
    th_setup(1, flags);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/topic/big\n\n");
    th_pump();
    static char body[60 * 1024];
    memset(body, 'x', sizeof(body));
    th_hold_writes(sub, true); /* the client has not read yet */
    th_send_body(pub, "SEND\ndestination:/topic/big\n\n", body, sizeof(body));
    th_send_body(pub, "SEND\ndestination:/topic/big\n\n", body, sizeof(body));
    th_pump();
    cr_assert_not_null(sub->c, "cut for a burst of two messages");
    cr_assert_eq(sub->c->closing, STP_OPEN);
    th_hold_writes(sub, false); /* it reads */
    th_pump();
    th_expect(sub, STP_CMD_MESSAGE);
    th_expect(sub, STP_CMD_MESSAGE);
    /* A client that stops reading for good is cut at 4x the bound. */
    th_hold_writes(sub, true);
    for (int i = 0; i < 6 && sub->c && sub->c->closing == STP_OPEN; i++) {
        th_send_body(pub, "SEND\ndestination:/topic/big\n\n", body, sizeof(body));
        th_pump();
    }
    cr_assert(!sub->c || sub->c->closing != STP_OPEN, "never cut");
}
