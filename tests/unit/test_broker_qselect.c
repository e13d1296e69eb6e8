/* Unit tests of selectors on queue subscriptions (issue 13; src/broker/
 * qselect.c) through the broker harness (real workers, no sockets): a
 * message nobody matches waits without holding up the ones behind it, each
 * consumer gets its matches in queue order, and requeues, prefetch, expiry,
 * dead letters, bounds, a data dir and consumers coming and going keep
 * working. */
#include "broker_harness.h"
#include "broker/dest.h"
#include "broker/queue_int.h"
#include "broker/worker.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static bool running;

static void init(void)
{
    dir[0] = '\0';
}

static void fini(void)
{
    if (running)
        th_teardown();
    running = false;
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        (void)system(cmd);
    }
}

TestSuite(qselect, .init = init, .fini = fini);

static void setup(unsigned n, const char *f1, const char *f2)
{
    const char *flags[] = {f1, f2, NULL};
    th_setup(n, flags);
    running = true;
}

static void stop(void)
{
    th_teardown();
    running = false;
}

/* SEND to dest with header "color:<color>" (none when NULL) and body. */
static void send_c(struct th_conn *t, const char *dest, const char *color, const char *body)
{
    if (color)
        th_sendf(t, "SEND\ndestination:%s\ncolor:%s\n\n%s", dest, color, body);
    else
        th_sendf(t, "SEND\ndestination:%s\n\n%s", dest, body);
}

/* SUBSCRIBE id to dest with a selector (none when NULL), an ack mode and a
 * prefetch-count (none when NULL). */
static void sub_sel(struct th_conn *t, const char *id, const char *dest, const char *sel,
                    const char *ack, const char *prefetch)
{
    char s[256] = "", a[64] = "", p[64] = "";
    if (sel)
        snprintf(s, sizeof(s), "selector:%s\n", sel);
    if (ack)
        snprintf(a, sizeof(a), "ack:%s\n", ack);
    if (prefetch)
        snprintf(p, sizeof(p), "prefetch-count:%s\n", prefetch);
    th_sendf(t, "SUBSCRIBE\nid:%s\ndestination:%s\n%s%s%s\n", id, dest, s, a, p);
}

/* The next frame is a MESSAGE with this body; its ack id into ack (when
 * given). */
static struct stp_frame expect_body(struct th_conn *t, const char *body, char *ack, size_t len)
{
    struct stp_frame f = th_expect(t, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&f), body);
    if (ack) {
        const char *a = th_header(&f, "ack");
        cr_assert_not_null(a);
        snprintf(ack, len, "%s", a);
    }
    return f;
}

/* The depth of queue `name` on worker w (0 when it does not exist). */
static size_t depth(unsigned w, const char *name)
{
    static struct stp_qsnap snap[STP_QSNAP_MAX];
    size_t n = stp_queue_snapshot(th_worker(w), snap, STP_QSNAP_MAX);
    for (size_t i = 0; i < n; i++)
        if (strcmp(snap[i].name, name) == 0)
            return snap[i].depth;
    return 0;
}

/* The queue's own state (queue_int.h), to check the bounds it promises. */
static struct stp_queue *queue_of(unsigned w, const char *name)
{
    struct stp_queue *q = stp_map_get(&th_worker(w)->queues, name, strlen(name));
    cr_assert_not_null(q, "no queue %s", name);
    return q;
}

/* --- matching and waiting --- */

Test(qselect, two_consumers_with_disjoint_selectors_split_the_queue_in_order)
{
    setup(1, NULL, NULL);
    struct th_conn *pub = th_connect(0), *red = th_connect(0), *blue = th_connect(0);
    sub_sel(red, "r", "/queue/q", "color = 'red'", NULL, NULL);
    sub_sel(blue, "b", "/queue/q", "color = 'blue'", NULL, NULL);
    th_pump();
    const char *colors[] = {"red", "blue", "blue", "red", "red", "blue", "red"};
    for (int i = 0; i < 7; i++) {
        char body[16];
        snprintf(body, sizeof(body), "%s-%d", colors[i], i);
        send_c(pub, "/queue/q", colors[i], body);
    }
    th_pump();
    expect_body(red, "red-0", NULL, 0);
    expect_body(red, "red-3", NULL, 0);
    expect_body(red, "red-4", NULL, 0);
    expect_body(red, "red-6", NULL, 0);
    th_expect_none(red);
    expect_body(blue, "blue-1", NULL, 0);
    expect_body(blue, "blue-2", NULL, 0);
    expect_body(blue, "blue-5", NULL, 0);
    th_expect_none(blue);
    cr_assert_eq(depth(0, "/queue/q"), 0);
}

Test(qselect, a_message_nobody_matches_waits_and_the_ones_behind_it_flow)
{
    setup(1, NULL, NULL);
    struct th_conn *pub = th_connect(0), *red = th_connect(0);
    sub_sel(red, "r", "/queue/q", "color = 'red'", NULL, NULL);
    th_pump();
    send_c(pub, "/queue/q", "green", "green-0");
    send_c(pub, "/queue/q", NULL, "plain-1");
    send_c(pub, "/queue/q", "red", "red-2");
    send_c(pub, "/queue/q", "green", "green-3");
    send_c(pub, "/queue/q", "red", "red-4");
    th_pump();
    expect_body(red, "red-2", NULL, 0);
    expect_body(red, "red-4", NULL, 0);
    th_expect_none(red);
    cr_assert_eq(depth(0, "/queue/q"), 3, "the three others wait");

    /* A later consumer that matches gets them, in queue order. */
    struct th_conn *green = th_connect(0);
    sub_sel(green, "g", "/queue/q", "color = 'green'", NULL, NULL);
    th_pump();
    expect_body(green, "green-0", NULL, 0);
    expect_body(green, "green-3", NULL, 0);
    th_expect_none(green);
    /* One without a selector takes anything. */
    struct th_conn *any = th_connect(0);
    sub_sel(any, "a", "/queue/q", NULL, NULL, NULL);
    th_pump();
    expect_body(any, "plain-1", NULL, 0);
    th_expect_none(any);
    th_expect_none(red);
    cr_assert_eq(depth(0, "/queue/q"), 0);
}

Test(qselect, a_blank_selector_is_no_selector)
{
    setup(1, NULL, NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/q\nselector:  \n\n");
    th_pump();
    send_c(pub, "/queue/q", "green", "g");
    th_pump();
    expect_body(sub, "g", NULL, 0);
}

Test(qselect, consumers_with_the_same_selector_share_round_robin)
{
    setup(1, NULL, NULL);
    struct th_conn *pub = th_connect(0), *a = th_connect(0), *b = th_connect(0);
    sub_sel(a, "a", "/queue/q", "color = 'red'", NULL, NULL);
    sub_sel(b, "b", "/queue/q", "color = 'red'", NULL, NULL);
    th_pump();
    for (int i = 0; i < 10; i++) {
        char body[16];
        snprintf(body, sizeof(body), "r%d", i);
        send_c(pub, "/queue/q", "red", body);
        send_c(pub, "/queue/q", "blue", "blue");
    }
    th_pump();
    cr_assert_eq(th_pending_frames(a), 5);
    cr_assert_eq(th_pending_frames(b), 5);
    cr_assert_eq(depth(0, "/queue/q"), 10, "the blue ones wait");
}

/* The owner is another worker: the selector's text crosses the mailbox in
 * CONSUMER_ADD and is compiled there. */
Test(qselect, owner_on_another_worker)
{
    setup(2, NULL, NULL);
    const char *q = th_owned_by(1, "/queue/x", 0);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    sub_sel(sub, "s", q, "n > 2", NULL, NULL);
    th_pump();
    for (int i = 0; i < 5; i++)
        th_sendf(pub, "SEND\ndestination:%s\nn:%d\n\nn%d", q, i, i);
    th_pump();
    expect_body(sub, "n3", NULL, 0);
    expect_body(sub, "n4", NULL, 0);
    th_expect_none(sub);
    cr_assert_eq(depth(1, q), 3);
}

Test(qselect, mixed_with_a_consumer_without_selector)
{
    setup(1, NULL, NULL);
    struct th_conn *pub = th_connect(0), *red = th_connect(0), *any = th_connect(0);
    sub_sel(red, "r", "/queue/q", "color = 'red'", NULL, NULL);
    sub_sel(any, "a", "/queue/q", NULL, NULL, NULL);
    th_pump();
    enum { N = 40 };
    for (int i = 0; i < N; i++) {
        char body[16];
        snprintf(body, sizeof(body), "%d", i);
        send_c(pub, "/queue/q", i % 3 ? "blue" : "red", body);
    }
    th_pump();
    /* Every message once; the selector consumer only red ones; both in
     * queue order. */
    static bool seen[N];
    memset(seen, 0, sizeof(seen));
    struct th_conn *s[2] = {red, any};
    size_t nred = th_pending_frames(red);
    for (int k = 0; k < 2; k++) {
        int last = -1;
        struct stp_frame f;
        while (th_frame(s[k], &f)) {
            int i = atoi(th_body(&f));
            cr_assert(i > last && !seen[i], "%d out of order or twice", i);
            if (k == 0)
                cr_assert_str_eq(th_header(&f, "color"), "red");
            seen[i] = true;
            last = i;
        }
    }
    for (int i = 0; i < N; i++)
        cr_assert(seen[i], "%d never delivered", i);
    cr_assert_gt(nred, 0, "the selector consumer had its share");
}

Test(qselect, a_bad_queue_selector_is_an_error_with_its_position)
{
    setup(1, NULL, NULL);
    struct th_conn *c = th_connect(0);
    th_send(c, "SUBSCRIBE\nid:s\ndestination:/queue/x\nselector:color = \nreceipt:r\n\n");
    th_pump();
    struct stp_frame f = th_expect(c, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "invalid selector");
    cr_assert_str_eq(th_header(&f, "receipt-id"), "r");
    cr_assert_not_null(strstr(th_body(&f), "at 9"), "%s", th_body(&f));
}

/* --- prefetch, NACK, disconnect --- */

/* A selector consumer at its prefetch does not hold up another one. */
Test(qselect, prefetch_full_consumer_does_not_block_others)
{
    setup(1, NULL, NULL);
    struct th_conn *pub = th_connect(0), *red = th_connect(0), *blue = th_connect(0);
    char ack[64];
    sub_sel(red, "r", "/queue/q", "color = 'red'", "client-individual", "1");
    sub_sel(blue, "b", "/queue/q", "color = 'blue'", NULL, NULL);
    th_pump();
    send_c(pub, "/queue/q", "red", "red-0");
    send_c(pub, "/queue/q", "red", "red-1");
    send_c(pub, "/queue/q", "blue", "blue-2");
    send_c(pub, "/queue/q", "blue", "blue-3");
    th_pump();
    expect_body(red, "red-0", ack, sizeof(ack));
    th_expect_none(red);
    expect_body(blue, "blue-2", NULL, 0);
    expect_body(blue, "blue-3", NULL, 0);
    /* Its credit comes back with the ACK: the next red one. */
    th_sendf(red, "ACK\nid:%s\n\n", ack);
    th_pump();
    expect_body(red, "red-1", NULL, 0);
    th_expect_none(red);
}

Test(qselect, nack_requeues_to_the_head_for_a_matching_consumer)
{
    setup(1, NULL, NULL);
    struct th_conn *pub = th_connect(0), *red = th_connect(0), *blue = th_connect(0);
    char ack[64];
    sub_sel(red, "r", "/queue/q", "color = 'red'", "client-individual", "1");
    sub_sel(blue, "b", "/queue/q", "color = 'blue'", NULL, NULL);
    th_pump();
    send_c(pub, "/queue/q", "red", "red-0");
    send_c(pub, "/queue/q", "red", "red-1");
    th_pump();
    struct stp_frame f = expect_body(red, "red-0", ack, sizeof(ack));
    cr_assert_str_eq(th_header(&f, "redelivered"), "false");
    th_sendf(red, "NACK\nid:%s\n\n", ack);
    th_pump();
    /* Back at the head: before red-1, and never to the blue consumer. */
    f = expect_body(red, "red-0", ack, sizeof(ack));
    cr_assert_str_eq(th_header(&f, "redelivered"), "true");
    th_expect_none(blue);
    th_sendf(red, "ACK\nid:%s\n\n", ack);
    th_pump();
    expect_body(red, "red-1", NULL, 0);
}

/* A consumer leaving puts its unacked messages back; a matching consumer
 * gets them first, a non-matching one never. */
Test(qselect, disconnect_requeues_to_a_matching_consumer_in_order)
{
    setup(2, NULL, NULL);
    const char *q = th_owned_by(1, "/queue/d", 0);
    struct th_conn *pub = th_connect(0), *r1 = th_connect(0), *r2 = th_connect(1),
                   *blue = th_connect(0);
    sub_sel(r1, "r1", q, "color = 'red'", "client-individual", "3");
    sub_sel(blue, "b", q, "color = 'blue'", NULL, NULL);
    th_pump();
    for (int i = 0; i < 5; i++) {
        char body[16];
        snprintf(body, sizeof(body), "red-%d", i);
        send_c(pub, q, "red", body);
    }
    th_pump();
    cr_assert_eq(th_pending_frames(r1), 3);
    /* r2 (same selector, prefetch 1) joins: red-3 is the next for it. */
    sub_sel(r2, "r2", q, "color = 'red'", "client-individual", "1");
    th_pump();
    char ack[64];
    expect_body(r2, "red-3", ack, sizeof(ack));
    th_send(r1, "DISCONNECT\n\n");
    th_pump();
    /* r2 acks: the three r1 held come back first (at the head), then red-4. */
    th_sendf(r2, "ACK\nid:%s\n\n", ack);
    th_pump();
    const char *order[] = {"red-0", "red-1", "red-2", "red-4"};
    for (int i = 0; i < 4; i++) {
        struct stp_frame f = expect_body(r2, order[i], ack, sizeof(ack));
        cr_assert_str_eq(th_header(&f, "redelivered"), i < 3 ? "true" : "false");
        th_sendf(r2, "ACK\nid:%s\n\n", ack);
        th_pump();
    }
    th_expect_none(r2);
    th_expect_none(blue);
    cr_assert_eq(depth(1, q), 0);
}

/* A requeued message nobody present matches waits too, and goes to the next
 * consumer that matches it, ahead of what it matches behind it. */
Test(qselect, a_requeued_message_waits_for_its_next_match)
{
    setup(1, NULL, NULL);
    struct th_conn *pub = th_connect(0), *red = th_connect(0), *blue = th_connect(0);
    char ack[64];
    sub_sel(red, "r", "/queue/q", "color = 'red'", "client-individual", NULL);
    sub_sel(blue, "b", "/queue/q", "color = 'blue'", NULL, NULL);
    th_pump();
    send_c(pub, "/queue/q", "red", "red-0");
    th_pump();
    expect_body(red, "red-0", ack, sizeof(ack));
    send_c(pub, "/queue/q", "red", "red-1");
    send_c(pub, "/queue/q", "red", "red-2");
    th_pump();
    expect_body(red, "red-1", NULL, 0);
    expect_body(red, "red-2", NULL, 0);
    th_send(red, "UNSUBSCRIBE\nid:r\n\n");
    th_pump();
    cr_assert_eq(depth(0, "/queue/q"), 3);
    send_c(pub, "/queue/q", "red", "red-3");
    th_pump();
    th_expect_none(blue);
    struct th_conn *again = th_connect(0);
    sub_sel(again, "r", "/queue/q", "color LIKE 'r%'", NULL, NULL);
    th_pump();
    for (int i = 0; i < 4; i++) {
        char body[16];
        snprintf(body, sizeof(body), "red-%d", i);
        struct stp_frame f = expect_body(again, body, NULL, 0);
        cr_assert_str_eq(th_header(&f, "redelivered"), i < 3 ? "true" : "false");
    }
    th_expect_none(again);
}

/* While a new group is still looking through a deep queue (a thousand
 * messages a pass), a message put back at the head comes first. */
Test(qselect, requeue_while_a_new_group_scans)
{
    setup(1, NULL, NULL);
    struct th_conn *pub = th_connect(0), *hold = th_connect(0);
    sub_sel(hold, "h", "/queue/q", "color = 'red'", "client-individual", "1");
    th_pump();
    send_c(pub, "/queue/q", "red", "red-held");
    th_pump();
    expect_body(hold, "red-held", NULL, 0);
    enum { N = 5000 };
    for (int i = 0; i < N; i++)
        send_c(pub, "/queue/q", "blue", "blue");
    send_c(pub, "/queue/q", "red", "red-last");
    th_pump();
    /* The new group (LIKE: another text) looks through 5000 blue messages
     * lazily; one turn of the loop does not finish it. */
    struct th_conn *late = th_connect(0);
    sub_sel(late, "l", "/queue/q", "color LIKE 're%'", NULL, NULL);
    th_turn(0);
    cr_assert_gt(th_worker(0)->nqwork, 0, "the scan is split over loop turns");
    th_send(hold, "DISCONNECT\n\n");
    th_pump();
    struct stp_frame f = expect_body(late, "red-held", NULL, 0);
    cr_assert_str_eq(th_header(&f, "redelivered"), "true");
    expect_body(late, "red-last", NULL, 0);
    th_expect_none(late);
    cr_assert_eq(depth(0, "/queue/q"), N);
}

/* Messages taken from behind one that waits leave tombstones, compacted
 * away as they pile up; positions stay valid across the compaction. */
Test(qselect, takes_behind_a_waiting_message_compact_the_queue)
{
    setup(1, NULL, NULL);
    struct th_conn *pub = th_connect(0), *red = th_connect(0);
    char ack[64];
    sub_sel(red, "r", "/queue/t", "color = 'red'", "client-individual", "1");
    th_pump();
    send_c(pub, "/queue/t", "green", "green");
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        char body[16];
        snprintf(body, sizeof(body), "r%d", i);
        send_c(pub, "/queue/t", "red", body);
    }
    th_pump();
    for (int i = 0; i < N; i++) {
        char body[16];
        snprintf(body, sizeof(body), "r%d", i);
        th_pump();
        expect_body(red, body, ack, sizeof(ack));
        th_sendf(red, "ACK\nid:%s\n\n", ack);
    }
    th_pump();
    th_expect_none(red);
    cr_assert_eq(depth(0, "/queue/t"), 1);
    struct stp_queue *q = queue_of(0, "/queue/t");
    cr_assert_lt(q->ready.count, 64, "%zu entries for 1 message: tombstones compacted",
                 q->ready.count);
    struct th_conn *green = th_connect(0);
    sub_sel(green, "g", "/queue/t", "color = 'green'", NULL, NULL);
    th_pump();
    expect_body(green, "green", NULL, 0);
    cr_assert_eq(depth(0, "/queue/t"), 0);
}

/* Two groups match every message; one never has credit, so the other takes
 * everything and the first's list fills with stale positions, compacted
 * away; when its credit comes back it gets the next message, once. */
Test(qselect, a_stalled_group_list_of_stale_positions_is_compacted)
{
    setup(1, NULL, NULL);
    struct th_conn *pub = th_connect(0), *slow = th_connect(0), *fast = th_connect(0);
    char ack[64];
    sub_sel(slow, "s", "/queue/c", "n >= 0", "client-individual", "1");
    th_pump();
    th_send(pub, "SEND\ndestination:/queue/c\nn:0\n\nfirst");
    th_pump();
    expect_body(slow, "first", ack, sizeof(ack)); /* now at its prefetch */
    sub_sel(fast, "f", "/queue/c", "n < 1000000", NULL, NULL);
    th_pump();
    enum { N = 2000 };
    for (int i = 1; i <= N; i++)
        th_sendf(pub, "SEND\ndestination:/queue/c\nn:%d\n\nm%d", i, i);
    th_pump();
    cr_assert_eq(th_pending_frames(fast), N);
    cr_assert_eq(depth(0, "/queue/c"), 0);
    struct stp_queue *q = queue_of(0, "/queue/c");
    for (size_t i = 0; i < q->ngroups; i++)
        cr_assert_lt(q->groups[i]->list.count, 200, "a list of %zu stale positions",
                     q->groups[i]->list.count);
    th_expect_none(slow);
    th_sendf(slow, "ACK\nid:%s\n\n", ack);
    th_pump();
    th_expect_none(slow); /* nothing is waiting: no stale position is delivered */
    th_send(pub, "SEND\ndestination:/queue/c\nn:5\n\nlast");
    th_pump();
    size_t got = th_pending_frames(slow) + th_pending_frames(fast);
    cr_assert_eq(got, N + 1, "'last' delivered once");
}

/* --- expiry, dead letters, bounds --- */

Test(qselect, a_waiting_message_expires_and_is_dead_lettered)
{
    setup(1, "--dead-letter=yes", NULL);
    struct th_conn *pub = th_connect(0), *red = th_connect(0);
    sub_sel(red, "r", "/queue/e", "color = 'red'", NULL, NULL);
    th_pump();
    /* Two waiting green ones; the second (not at the head) has expired. */
    send_c(pub, "/queue/e", "green", "green-kept");
    th_send(pub, "SEND\ndestination:/queue/e\ncolor:green\nexpires:1\n\ngreen-old");
    send_c(pub, "/queue/e", "red", "red-1");
    th_pump();
    expect_body(red, "red-1", NULL, 0);
    cr_assert_eq(depth(0, "/queue/e"), 2);
    stp_queue_expire(th_worker(0)); /* the once-a-second sweep */
    th_pump();
    cr_assert_eq(depth(0, "/queue/e"), 1);
    cr_assert_eq(STP_STAT_GET(th_worker(0)->stats.msgs_expired), 1);
    struct th_conn *dlq = th_connect(0);
    th_send(dlq, "SUBSCRIBE\nid:d\ndestination:/queue/DLQ.e\n\n");
    th_pump();
    struct stp_frame f = expect_body(dlq, "green-old", NULL, 0);
    cr_assert_str_eq(th_header(&f, "x-death-reason"), "expired");
    struct th_conn *green = th_connect(0);
    sub_sel(green, "g", "/queue/e", "color = 'green'", NULL, NULL);
    th_pump();
    expect_body(green, "green-kept", NULL, 0);
    th_expect_none(green);
}

/* An expired message in a group's list is never delivered. */
Test(qselect, an_expired_match_is_not_delivered)
{
    setup(1, NULL, NULL);
    struct th_conn *pub = th_connect(0), *red = th_connect(0);
    char ack[64];
    sub_sel(red, "r", "/queue/e", "color = 'red'", "client-individual", "1");
    th_pump();
    send_c(pub, "/queue/e", "red", "red-0");
    th_send(pub, "SEND\ndestination:/queue/e\ncolor:red\nexpires:1\n\nred-old");
    send_c(pub, "/queue/e", "red", "red-2");
    th_pump();
    expect_body(red, "red-0", ack, sizeof(ack));
    th_sendf(red, "ACK\nid:%s\n\n", ack);
    th_pump();
    expect_body(red, "red-2", NULL, 0);
    cr_assert_eq(STP_STAT_GET(th_worker(0)->stats.msgs_expired), 1);
}

Test(qselect, nack_requeue_false_and_max_redeliveries_dead_letter)
{
    setup(1, "--dead-letter=yes", "--max-redeliveries=1");
    struct th_conn *pub = th_connect(0), *red = th_connect(0), *blue = th_connect(0);
    char ack[64];
    sub_sel(red, "r", "/queue/w", "color = 'red'", "client-individual", NULL);
    sub_sel(blue, "b", "/queue/w", "color = 'blue'", "client-individual", NULL);
    th_pump();
    send_c(pub, "/queue/w", "red", "poison");
    send_c(pub, "/queue/w", "blue", "rejected");
    th_pump();
    expect_body(blue, "rejected", ack, sizeof(ack));
    th_sendf(blue, "NACK\nid:%s\nrequeue:false\n\n", ack);
    for (int i = 0; i < 2; i++) {
        th_pump();
        expect_body(red, "poison", ack, sizeof(ack));
        th_sendf(red, "NACK\nid:%s\n\n", ack);
    }
    th_pump();
    th_expect_none(red); /* returned twice > 1 */
    th_expect_none(blue);
    struct th_conn *dlq = th_connect(0);
    th_send(dlq, "SUBSCRIBE\nid:d\ndestination:/queue/DLQ.w\n\n");
    th_pump();
    expect_body(dlq, "rejected", NULL, 0);
    expect_body(dlq, "poison", NULL, 0);
    cr_assert_eq(depth(0, "/queue/w"), 0);
}

Test(qselect, waiting_messages_count_toward_the_queue_bound)
{
    setup(1, "--queue-max-messages=10", NULL);
    struct th_conn *pub = th_connect(0), *red = th_connect(0);
    sub_sel(red, "r", "/queue/b", "color = 'red'", NULL, NULL);
    th_pump();
    for (int i = 0; i < 12; i++)
        send_c(pub, "/queue/b", "green", "g");
    th_pump();
    cr_assert(pub->c->paused, "a queue full of waiting messages pauses its publisher");
    cr_assert_eq(pub->c->throttled, 1);
    /* A consumer that takes them drains it: the publisher is resumed. */
    struct th_conn *green = th_connect(0);
    sub_sel(green, "g", "/queue/b", "color = 'green'", NULL, NULL);
    th_pump();
    cr_assert_eq(th_pending_frames(green), 12);
    cr_assert_not(pub->c->paused);
    cr_assert_eq(pub->c->throttled, 0);
}

/* --- a data dir --- */

Test(qselect, waiting_messages_survive_a_restart)
{
    snprintf(dir, sizeof(dir), "/tmp/stp-qsel-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char arg[128];
    snprintf(arg, sizeof(arg), "--data-dir=%s", dir);
    setup(1, arg, NULL);
    struct th_conn *pub = th_connect(0), *red = th_connect(0);
    sub_sel(red, "r", "/queue/p", "color = 'red'", NULL, NULL);
    th_pump();
    th_send(pub, "SEND\ndestination:/queue/p\npersistent:true\ncolor:green\n\ng0");
    th_send(pub, "SEND\ndestination:/queue/p\npersistent:true\ncolor:red\n\nr1");
    th_send(pub, "SEND\ndestination:/queue/p\npersistent:true\ncolor:green\nreceipt:x\n\ng2");
    cr_assert(th_await(pub, 5000));
    th_expect(pub, STP_CMD_RECEIPT);
    cr_assert(th_await(red, 5000));
    expect_body(red, "r1", NULL, 0);
    stop();

    setup(1, arg, NULL);
    cr_assert_eq(depth(0, "/queue/p"), 2);
    struct th_conn *green = th_connect(0);
    sub_sel(green, "g", "/queue/p", "color = 'green'", NULL, NULL);
    cr_assert(th_await(green, 5000));
    th_pump();
    expect_body(green, "g0", NULL, 0);
    expect_body(green, "g2", NULL, 0);
    th_expect_none(green);
}

/* --- bounded work --- */

/* 100k messages nobody matches: a consumer whose selector matches only the
 * last one looks through them a bounded number per loop turn, and another
 * connection on the same worker is answered meanwhile. */
Test(qselect, a_deep_queue_of_non_matching_messages_does_not_stall_the_worker)
{
    setup(1, "--queue-max-messages=200000", NULL);
    struct th_conn *pub = th_connect(0);
    enum { N = 100000 };
    for (int i = 0; i < N; i++) {
        th_send(pub, "SEND\ndestination:/queue/deep\ncolor:blue\n\nb");
        if (i % 5000 == 0)
            th_pump();
    }
    send_c(pub, "/queue/deep", "red", "needle");
    th_pump();
    cr_assert_eq(depth(0, "/queue/deep"), N + 1);
    struct th_conn *red = th_connect(0), *other = th_connect(0);
    sub_sel(red, "r", "/queue/deep", "color = 'red'", NULL, NULL);
    th_turn(0);
    th_expect_none(red);
    cr_assert_gt(th_worker(0)->nqwork, 0, "the scan is left for later turns");
    /* Another connection gets its answer within a few turns. */
    th_send(other, "SUBSCRIBE\nid:o\ndestination:/topic/t\nreceipt:quick\n\n");
    for (int i = 0; i < 3 && th_pending_frames(other) == 0; i++)
        th_turn(0);
    struct stp_frame f = th_expect(other, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&f, "receipt-id"), "quick");
    cr_assert_gt(th_worker(0)->nqwork, 0, "still scanning");
    /* The scan ends: the needle arrives, within a bounded number of turns. */
    for (int i = 0; i < 2000 && th_pending_frames(red) == 0; i++)
        th_pump();
    expect_body(red, "needle", NULL, 0);
    cr_assert_eq(th_worker(0)->nqwork, 0);
    /* Once the group is up to date, new messages are matched as they come:
     * a red one among more blue ones arrives at once. */
    send_c(pub, "/queue/deep", "blue", "b");
    send_c(pub, "/queue/deep", "red", "needle-2");
    th_pump();
    expect_body(red, "needle-2", NULL, 0);
    cr_assert_eq(depth(0, "/queue/deep"), N + 1);
}

/* Does message n pass consumer k's selector in the churn test? */
static bool churn_match(int k, int n)
{
    return k == 0 || n % (2 + k % 3) == k % 2;
}

/* Take t's frames: each a MESSAGE consumer k may get; marks seen[n]; the
 * last ack id into ack (empty when none). */
static unsigned churn_take(struct th_conn *t, int k, bool *seen, char *ack, size_t len)
{
    struct stp_frame f;
    unsigned n = 0;
    ack[0] = '\0';
    while (th_frame(t, &f)) {
        cr_assert_eq(f.cmd, STP_CMD_MESSAGE);
        int i = atoi(th_header(&f, "n"));
        cr_assert(churn_match(k, i), "consumer %d got n=%d", k, i);
        seen[i] = true;
        const char *a = th_header(&f, "ack");
        if (a)
            snprintf(ack, len, "%s", a);
        n++;
    }
    return n;
}

/* Consumers with several selectors (and one without) come and go while
 * messages flow and are acked or left unacked and dropped with their
 * connections: every message reaches only consumers that match it, each is
 * delivered in the end, and nothing leaks (ASan). */
Test(qselect, consumer_and_selector_churn)
{
    setup(2, NULL, NULL);
    const char *q = th_owned_by(1, "/queue/churn", 0);
    struct th_conn *pub = th_connect(0);
    enum { ROUNDS = 40, PER = 25, NCONS = 6 };
    static bool seen[ROUNDS * PER];
    memset(seen, 0, sizeof(seen));
    struct th_conn *cons[NCONS] = {0};
    char ack[64];
    int sent = 0;
    srand(7);
    for (int r = 0; r < ROUNDS; r++) {
        int k = rand() % NCONS;
        if (cons[k]) {
            churn_take(cons[k], k, seen, ack, sizeof(ack));
            th_send(cons[k], rand() % 2 ? "DISCONNECT\n\n" : "UNSUBSCRIBE\nid:s\n\n");
            cons[k] = NULL;
        } else {
            cons[k] = th_connect(rand() % 2);
            char sel[64];
            snprintf(sel, sizeof(sel), "n - n / %d * %d = %d", 2 + k % 3, 2 + k % 3, k % 2);
            sub_sel(cons[k], "s", q, k == 0 ? NULL : sel, k % 2 ? "auto" : "client",
                    k % 2 ? NULL : "3");
        }
        for (int i = 0; i < PER; i++, sent++)
            th_sendf(pub, "SEND\ndestination:%s\nn:%d\n\nm", q, sent);
        th_pump();
        for (int j = 0; j < NCONS; j++) {
            if (cons[j] && churn_take(cons[j], j, seen, ack, sizeof(ack)) && ack[0] && rand() % 2)
                th_sendf(cons[j], "ACK\nid:%s\n\n", ack); /* cumulative */
        }
        th_pump();
    }
    for (int j = 0; j < NCONS; j++) {
        if (cons[j]) {
            churn_take(cons[j], j, seen, ack, sizeof(ack));
            th_send(cons[j], "DISCONNECT\n\n");
        }
    }
    th_pump();
    /* What is left (never matched, or returned) goes to one without a
     * selector. */
    struct th_conn *drain = th_connect(0);
    sub_sel(drain, "d", q, NULL, NULL, NULL);
    th_pump();
    churn_take(drain, 0, seen, ack, sizeof(ack));
    for (int i = 0; i < sent; i++)
        cr_assert(seen[i], "n=%d never delivered", i);
    cr_assert_eq(depth(1, q), 0);
}
