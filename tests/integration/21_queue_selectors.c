/*
 * 21_queue_selectors.c - ActiveMQ's selector header on queue subscriptions
 * (issue 13) against a real broker: consumers with disjoint selectors split a
 * queue, each in queue order; a message nobody matches waits without holding
 * up the ones behind it and goes to a later consumer that matches; NACK and a
 * consumer leaving put messages back for a matching consumer; a bad selector
 * is an ERROR naming the position; a waiting message expires into its DLQ;
 * waiting persistent messages survive a restart; and a queue of 100k
 * messages nobody matches does not keep the broker from answering others.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp_dir[128];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void qsel_fini(void)
{
    h_fini();
    if (tmp_dir[0])
        nftw(tmp_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmp_dir[0] = '\0';
}

TestSuite(queue_selectors, .init = h_init, .fini = qsel_fini, .timeout = 120);

/* SEND body with a color header (none when NULL); the last of a batch asks
 * for a receipt. */
static void send_color(struct h_conn *p, const char *q, const char *color, const char *body,
                       bool receipt)
{
    const char *c = color ? h_fmt("color:%s\n", color) : "";
    if (!receipt) {
        h_sendf(p, "SEND\ndestination:%s\n%s\n%s", q, c, body);
        return;
    }
    const char *r = h_rid(p);
    h_sendf(p, "SEND\ndestination:%s\nreceipt:%s\n%s\n%s", q, r, c, body);
    h_expect_receipt(p, r);
}

static void sub_sel(struct h_conn *c, const char *q, const char *id, const char *sel,
                    const char *ack, const char *extra)
{
    h_subscribe(c, q, id, ack, h_fmt("%s%s", sel ? h_fmt("selector:%s\n", sel) : "", extra));
}

Test(queue_selectors, disjoint_selectors_split_a_queue_in_order)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "split");
    struct h_conn *red = h_client(b, "1.2"), *blue = h_client(b, "1.1"), *p = h_client(b, "1.0");
    sub_sel(red, q, "r", "color = 'red'", NULL, "");
    sub_sel(blue, q, "b", "color IN ('blue', 'navy')", NULL, "");
    enum { N = 60 };
    for (int i = 0; i < N; i++)
        send_color(p, q,
                   i % 3 == 0   ? "red"
                   : i % 3 == 1 ? "blue"
                                : "navy",
                   h_fmt("m%d", i), i == N - 1);
    for (int i = 0; i < N; i++) {
        struct h_frame *f = h_expect_msg(i % 3 == 0 ? red : blue, h_fmt("m%d", i));
        cr_assert_str_eq(h_hdr(f, "destination"), q);
    }
    h_expect_silence(red, 200);
    h_expect_silence(blue, 50);
    h_broker_stop_ok(b);
}

Test(queue_selectors, a_message_nobody_matches_waits_for_a_later_consumer)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "wait");
    struct h_conn *red = h_client(b, "1.2"), *p = h_client(b, "1.2");
    sub_sel(red, q, "r", "color = 'red'", NULL, "");
    send_color(p, q, "green", "g0", false);
    send_color(p, q, NULL, "plain1", false);
    send_color(p, q, "red", "r2", false);
    send_color(p, q, "green", "g3", false);
    send_color(p, q, "red", "r4", true);
    h_expect_msg(red, "r2");
    h_expect_msg(red, "r4");
    h_expect_silence(red, 200);

    struct h_conn *green = h_client(b, "1.2");
    sub_sel(green, q, "g", "color LIKE 'gr%'", NULL, "");
    h_expect_msg(green, "g0");
    h_expect_msg(green, "g3");
    struct h_conn *any = h_client(b, "1.2");
    h_subscribe(any, q, "a", NULL, "");
    h_expect_msg(any, "plain1");
    h_expect_silence(any, 200);
    h_expect_silence(green, 50);
    h_broker_stop_ok(b);
}

/* STOMP 1.2 escapes in the selector header (':' as \c) are decoded before
 * the owner compiles it. */
Test(queue_selectors, an_escaped_selector_header)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "esc");
    struct h_conn *c = h_client(b, "1.2"), *p = h_client(b, "1.2");
    sub_sel(c, q, "s", "at = '10\\c30'", NULL, "");
    h_sendf(p, "SEND\ndestination:%s\nat:10\\c31\n\nno", q);
    h_sendf(p, "SEND\ndestination:%s\nat:10\\c30\n\nyes", q);
    h_expect_msg(c, "yes");
    h_expect_silence(c, 200);
    h_broker_stop_ok(b);
}

Test(queue_selectors, a_bad_selector_is_an_error_with_its_position)
{
    struct h_broker *b = H_START0();
    struct h_conn *c = h_client(b, "1.2");
    h_sendf(c, "SUBSCRIBE\nid:s\ndestination:%s\nselector:color = 'red' AND\nreceipt:x\n\n",
            h_dest("queue", "bad"));
    struct h_frame *f = h_expect_error_msg(c, "x", "invalid selector");
    cr_assert(strstr(f->body, "at ") != NULL, "no position: %s", f->body);
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

Test(queue_selectors, nack_and_disconnect_requeue_to_a_matching_consumer)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "nack");
    struct h_conn *r1 = h_client(b, "1.2"), *blue = h_client(b, "1.2"), *p = h_client(b, "1.2");
    sub_sel(r1, q, "r1", "color = 'red'", "client-individual", "prefetch-count:2\n");
    sub_sel(blue, q, "b", "color = 'blue'", NULL, "");
    send_color(p, q, "red", "red0", false);
    send_color(p, q, "red", "red1", true);
    struct h_frame *f0 = h_expect_msg(r1, "red0");
    h_expect_msg(r1, "red1");
    h_nack(r1, f0, NULL, true);
    struct h_frame *again = h_expect_msg(r1, "red0");
    cr_assert_str_eq(h_hdr(again, "redelivered"), "true");
    /* r1 leaves with both unacked: they go back to the head in the order
     * r1 got them (red1, then red0 again), and to r2, which matches, never to
     * the blue consumer. */
    h_close(r1);
    struct h_conn *r2 = h_client(b, "1.2");
    sub_sel(r2, q, "r2", "color <> 'blue'", NULL, "");
    cr_assert_str_eq(h_hdr(h_expect_msg(r2, "red1"), "redelivered"), "true");
    cr_assert_str_eq(h_hdr(h_expect_msg(r2, "red0"), "redelivered"), "true");
    h_expect_silence(blue, 200);
    h_broker_stop_ok(b);
}

/* A message nobody matches expires where it waits (behind another waiting
 * one, not at the head) and goes to its DLQ. */
Test(queue_selectors, a_waiting_message_expires_into_its_dlq)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "exp");
    struct h_conn *red = h_client(b, "1.2"), *p = h_client(b, "1.2"), *d = h_client(b, "1.2");
    sub_sel(red, q, "r", "color = 'red'", NULL, "");
    send_color(p, q, "green", "kept", false);
    h_sendf(p, "SEND\ndestination:%s\ncolor:green\nexpiration:300\n\nold", q);
    send_color(p, q, "red", "r", true);
    h_expect_msg(red, "r");
    h_subscribe(d, h_fmt("/queue/DLQ.%s", q + strlen("/queue/")), "d", NULL, "");
    /* Swept once a second: well within 5 s. */
    struct h_frame *f = h_read(d, 5000);
    cr_assert_not_null(f, "the expired message never reached the DLQ");
    cr_assert_str_eq(f->body, "old");
    cr_assert_str_eq(h_hdr(f, "x-death-reason"), "expired");
    struct h_conn *green = h_client(b, "1.2");
    sub_sel(green, q, "g", "color = 'green'", NULL, "");
    h_expect_msg(green, "kept");
    h_expect_silence(green, 200);
    h_broker_stop_ok(b);
}

Test(queue_selectors, waiting_persistent_messages_survive_a_restart)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/stampede-itest-qsel-%d-XXXXXX", (int)getpid());
    cr_assert(mkdtemp(tmp_dir) != NULL, "mkdtemp: %s", strerror(errno));
    const char *q = h_dest("queue", "dur");
    struct h_broker *b = H_START("--data-dir", tmp_dir);
    struct h_conn *red = h_client(b, "1.2"), *p = h_client(b, "1.2");
    sub_sel(red, q, "r", "color = 'red'", NULL, "");
    h_sendf(p, "SEND\ndestination:%s\npersistent:true\ncolor:green\n\ng0", q);
    h_sendf(p, "SEND\ndestination:%s\npersistent:true\ncolor:red\n\nr1", q);
    h_sendf(p, "SEND\ndestination:%s\npersistent:true\ncolor:green\nreceipt:x\n\ng2", q);
    h_expect_receipt(p, "x");
    h_expect_msg(red, "r1");
    h_broker_stop_ok(b);

    b = H_START("--data-dir", tmp_dir);
    struct h_conn *green = h_client(b, "1.2");
    sub_sel(green, q, "g", "color = 'green'", NULL, "");
    h_expect_msg(green, "g0");
    h_expect_msg(green, "g2");
    h_expect_silence(green, 200);
    h_broker_stop_ok(b);
}

/* 100k messages nobody matches on a one-worker broker; a consumer whose
 * selector matches only the last one: the worker looks through them in
 * bounded passes, and another connection is answered meanwhile. No timing is
 * asserted beyond generous deadlines. */
Test(queue_selectors, a_deep_queue_nobody_matches_does_not_stall_the_broker)
{
    struct h_broker *b = H_START_W(1, "--queue-max-messages", "200000");
    const char *q = h_dest("queue", "deep");
    struct h_conn *p = h_client(b, "1.2");
    enum { N = 100000, BATCH = 1000 };
    static char buf[BATCH * 64];
    for (int i = 0; i < N; i += BATCH) {
        size_t len = 0;
        for (int k = 0; k < BATCH; k++)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                    "SEND\ndestination:%s\ncolor:blue\n\nb%c", q, '\0');
        h_send(p, buf, len);
    }
    send_color(p, q, "red", "needle", true);

    struct h_conn *red = h_client(b, "1.2"), *other = h_client(b, "1.2");
    const char *r = h_rid(red);
    h_sendf(red, "SUBSCRIBE\nid:r\ndestination:%s\nselector:color = 'red'\nreceipt:%s\n\n", q, r);
    /* Meanwhile: another connection's round trip on another queue. */
    uint64_t t0 = h_now_ms();
    const char *oq = h_dest("queue", "other");
    h_subscribe(other, oq, "o", NULL, "");
    h_publish(other, oq, "hello", true);
    h_expect_msg(other, "hello");
    cr_assert(h_now_ms() - t0 < 10000, "another connection waited %llu ms",
              (unsigned long long)(h_now_ms() - t0));
    h_expect_receipt(red, r);
    struct h_frame *f = h_read(red, 30000);
    cr_assert_not_null(f, "the matching message never came");
    cr_assert_str_eq(f->body, "needle");
    /* Up to date now: a new match arrives at once. */
    send_color(p, q, "blue", "b", false);
    send_color(p, q, "red", "needle-2", true);
    h_expect_msg(red, "needle-2");
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

/* Hostile: one connection subscribes to one queue many times, each with a
 * different selector at the language's bounds (long LIKE patterns over long
 * header values), and floods it; the broker keeps answering others and
 * delivers what matches. */
Test(queue_selectors, many_expensive_selectors_on_one_queue)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "hostile");
    struct h_conn *h = h_client(b, "1.2"), *p = h_client(b, "1.2");
    enum { SUBS = 64 };
    static char sel[1100], val[1100];
    for (int s = 0; s < SUBS; s++) {
        /* '%a%a%a...%<s>': no backtracking blow-up, but real work per message */
        size_t n = 0;
        for (int k = 0; k < 300; k++)
            sel[n++] = k % 2 ? 'a' : '%';
        n += (size_t)snprintf(sel + n, sizeof(sel) - n, "%%z%d", s);
        sel[n] = '\0';
        h_sendf(h, "SUBSCRIBE\nid:s%d\ndestination:%s\nselector:v LIKE '%s'\n\n", s, q, sel);
    }
    memset(val, 'a', 1000);
    for (int i = 0; i < 200; i++) {
        snprintf(val + 1000, sizeof(val) - 1000, "z%d", i % SUBS);
        h_sendf(p, "SEND\ndestination:%s\nv:%s\n\nm%d", q, val, i);
    }
    h_bystander_ok(b);
    /* Each of the 200 goes to the one subscription ending in its z<k> (some
     * also match z<k>0..: any match is fine); all arrive. */
    int got = 0;
    for (int i = 0; i < 200; i++) {
        struct h_frame *f = h_read(h, 10000);
        cr_assert_not_null(f, "only %d of 200 arrived", got);
        cr_assert_str_eq(f->cmd, "MESSAGE");
        got++;
    }
    h_broker_stop_ok(b);
}
