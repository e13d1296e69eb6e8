/*
 * 22_compat.c - issue 13's compatibility details against the real broker
 * over TCP:
 *
 * - prefetch-count bounds unacked topic messages in client ack modes (the
 *   rest wait, in order, and come as ACKs free room; NACK gives a message
 *   back to the same subscription, redelivered:true); a subscriber that
 *   never acks is cut as a slow consumer instead of growing the broker;
 * - the ERROR texts are RabbitMQ's for the same conditions, the details in
 *   the body; a refused login looks the same whichever part was wrong.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <string.h>

TestSuite(compat, .fini = h_fini);

static void publish_n(struct h_conn *p, const char *dest, int n)
{
    for (int i = 1; i <= n; i++)
        h_publish(p, dest, h_fmt("m%d", i), i == n);
}

Test(compat, topic_prefetch_bounds_client_individual)
{
    struct h_broker *b = H_START0();
    const char *t = h_dest("topic", "pf");
    struct h_conn *s = h_client(b, "1.2"), *p = h_client(b, "1.2");
    h_subscribe(s, t, "s", "client-individual", "prefetch-count:2\n");
    publish_n(p, t, 5);
    struct h_frame *f1 = h_expect_msg(s, "m1");
    struct h_frame *f2 = h_expect_msg(s, "m2");
    cr_assert_str_eq(h_hdr(f1, "redelivered"), "false");
    h_expect_silence(s, 300); /* m3.. wait for an ACK */
    h_ack(s, f2, NULL, false);
    h_expect_msg(s, "m3");
    h_expect_silence(s, 200);
    h_ack(s, f1, NULL, false);
    struct h_frame *f4 = h_expect_msg(s, "m4");
    h_expect_silence(s, 200);
    /* NACK: m4 comes back first, marked redelivered. */
    h_nack(s, f4, NULL, false);
    struct h_frame *r4 = h_expect_msg(s, "m4");
    cr_assert_str_eq(h_hdr(r4, "redelivered"), "true", "%s", h_show(r4));
    h_ack(s, r4, NULL, true);
    h_expect_msg(s, "m5");
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

/* --max-redeliveries bounds a topic subscription's NACKs too: a client that
 * NACKs forever does not get the message forever (it is dropped, counted
 * as rejected); the messages behind it and other subscribers go on. */
Test(compat, topic_nack_redeliveries_are_bounded)
{
    struct h_broker *b = H_START_WS(2, "--max-redeliveries", "2");
    const char *t = h_dest("topic", "nackloop");
    struct h_conn *s = h_client(b, "1.2"), *other = h_client(b, "1.2");
    struct h_conn *p = h_client(b, "1.2");
    h_subscribe(s, t, "s", "client-individual", "prefetch-count:1\n");
    h_subscribe(other, t, "o", NULL, "");
    publish_n(p, t, 2);
    /* The first delivery and 2 redeliveries of m1; the third NACK drops it
     * and m2 (waiting behind the prefetch) comes next. */
    struct h_frame *f = h_expect_msg(s, "m1");
    cr_assert_str_eq(h_hdr(f, "redelivered"), "false");
    for (int k = 0; k < 2; k++) {
        h_nack(s, f, NULL, false);
        f = h_expect_msg(s, "m1");
        cr_assert_str_eq(h_hdr(f, "redelivered"), "true", "%s", h_show(f));
    }
    h_nack(s, f, NULL, false);
    f = h_expect_msg(s, "m2");
    cr_assert_str_eq(h_hdr(f, "redelivered"), "false");
    h_ack(s, f, NULL, true);
    h_expect_silence(s, 300);
    h_expect_msg(other, "m1");
    h_expect_msg(other, "m2");
    const char *m = h_http_get(h_listener_port(b, "ws"), "/metrics");
    cr_assert_eq(h_metric(m, "stampede_messages_rejected_total"), 1);
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

/* 1.1: cumulative `client` acks by message-id, with a made-up subscription
 * header, as RabbitMQ's own test suite sends. */
Test(compat, topic_prefetch_client_1_1)
{
    struct h_broker *b = H_START0();
    const char *t = h_dest("topic", "pf11");
    struct h_conn *s = h_client(b, "1.1"), *p = h_client(b, "1.2");
    h_subscribe(s, t, "s", "client", "prefetch-count:3\n");
    publish_n(p, t, 6);
    h_expect_msg(s, "m1");
    h_expect_msg(s, "m2");
    struct h_frame *f3 = h_expect_msg(s, "m3");
    h_expect_silence(s, 300);
    h_sendf(s, "ACK\nmessage-id:%s\nsubscription:made-up\nreceipt:a\n\n", h_hdr(f3, "message-id"));
    h_expect_receipt(s, "a");
    h_expect_msg(s, "m4");
    h_expect_msg(s, "m5");
    h_expect_msg(s, "m6");
    h_broker_stop_ok(b);
}

/* A client-ack topic subscriber that never acks: its waiting messages count
 * toward --max-pending-output, so it gets ERROR slow consumer and is closed;
 * an auto-ack subscriber of the same topic keeps receiving everything. */
Test(compat, never_acking_topic_subscriber_is_cut)
{
    struct h_broker *b = H_START("--max-pending-output", "64KiB", "--slow-consumer-grace", "200ms");
    const char *t = h_dest("topic", "na");
    struct h_conn *s = h_client(b, "1.2"), *ok = h_client(b, "1.2"), *p = h_client(b, "1.2");
    h_subscribe(s, t, "s", "client", "prefetch-count:1\n");
    h_subscribe(ok, t, "s", NULL, NULL);
    static char body[2048 + 1];
    memset(body, 'y', 2048);
    const int n = 100; /* 200 KiB: over the bound */
    for (int i = 0; i < n; i++)
        h_publish(p, t, body, false);
    h_expect_msg(s, body);
    h_sleep_ms(400); /* past the grace */
    h_publish(p, t, "after the grace", true);
    struct h_frame *e = h_expect_error_msg(s, NULL, "slow consumer");
    (void)e;
    for (int i = 0; i < n; i++)
        h_expect_msg(ok, body);
    h_expect_msg(ok, "after the grace");
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

/* --- ERROR texts --- */

static struct h_frame *error_for(struct h_broker *b, const char *version, const char *frames,
                                 const char *message)
{
    struct h_conn *c = h_client(b, version);
    h_sendz(c, frames);
    return h_expect_error_msg(c, NULL, message);
}

Test(compat, error_texts_are_rabbitmqs)
{
    struct h_broker *b = H_START0();
    struct h_frame *f;
    f = error_for(b, "1.2", "SEND\ndestination:/exchange/x\n\nx", "Unknown destination");
    cr_assert_str_eq(f->body, "'/exchange/x' is not a valid destination.\nValid destination types "
                              "are: /topic/, /queue/, /temp-queue/, /reply-queue/.");
    f = error_for(b, "1.2", "SUBSCRIBE\nid:1\ndestination:/topic/\n\n", "Invalid destination");
    cr_assert(strstr(f->body, "'/topic/' is not a valid destination"), "%s", f->body);
    f = error_for(b, "1.1", "SUBSCRIBE\nid:1\n\n", "Missing destination");
    cr_assert_str_eq(f->body, "SUBSCRIBE must include a 'destination' header.");
    f = error_for(b, "1.2", "SEND\n\nx", "Missing destination");
    cr_assert_str_eq(f->body, "SEND must include a 'destination' header.");
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, "/topic/dup", "T_1", NULL, NULL);
    h_sendz(c, "SUBSCRIBE\nid:T_1\ndestination:/topic/dup2\n\n");
    f = h_expect_error_msg(c, NULL, "Duplicated subscription identifier");
    cr_assert_str_eq(f->body, "A subscription identified by 'T_1' already exists.");
    f = error_for(b, "1.2", "BOGUS\n\n", "Bad command");
    f = error_for(b, "1.2", "UNSUBSCRIBE\nid:zz\n\n", "No subscription found");
    f = error_for(b, "1.0", "ACK\n\n", "Missing header");
    cr_assert_str_eq(f->body, "ACK must include the 'message-id' header.");
    f = error_for(b, "1.2", "BEGIN\n\n", "Missing transaction");
    f = error_for(b, "1.2", "COMMIT\ntransaction:nope\n\n", "Bad transaction");
    cr_assert(strncmp(f->body, "Invalid transaction identifier: 'nope'", 38) == 0, "%s", f->body);
    /* Before CONNECT. */
    c = h_dial(b);
    h_sendz(c, "SEND\ndestination:/topic/x\n\nx");
    f = h_expect_error_msg(c, NULL, "Illegal command");
    c = h_dial(b);
    h_sendz(c, "CONNECT\naccept-version:9.9\nhost:/\n\n");
    f = h_expect_error_msg(c, NULL, "Version mismatch");
    cr_assert_str_eq(f->body, "Supported versions are 1.0,1.1,1.2");
    h_broker_stop_ok(b);
}

Test(compat, refused_login_looks_the_same)
{
    struct h_broker *b = H_START("--user", "alice:right-Pass");
    const char *tries[][2] = {{"alice", "wrong"}, {"nobody", "wrong"}, {"nobody", "right-Pass"}};
    struct h_frame *first = NULL;
    for (int i = 0; i < 3; i++) {
        h_set_source(h_fmt("127.0.22.%d", i + 1)); /* no backoff from the others */
        struct h_conn *c = h_dial(b);
        struct h_frame *f = h_stomp_connect(c, "1.2", tries[i][0], tries[i][1], NULL, false);
        cr_assert(f && strcmp(f->cmd, "ERROR") == 0, "%s", f ? h_show(f) : "no answer");
        cr_assert_str_eq(h_hdr(f, "message"), "Bad CONNECT");
        cr_assert_str_eq(f->body, h_fmt("Access refused for user '%s'", tries[i][0]));
        if (!first)
            first = f;
        /* The same header lines, in the same order, whatever was wrong. */
        cr_assert_eq(f->nheaders, first->nheaders, "%s vs %s", h_show(f), h_show(first));
        for (size_t k = 0; k < f->nheaders; k++) {
            cr_assert_str_eq(f->names[k], first->names[k]);
            if (strcmp(f->names[k], "content-length") != 0)
                cr_assert_str_eq(f->values[k], first->values[k]);
        }
    }
    h_set_source(NULL);
    h_broker_stop_ok(b);
}
