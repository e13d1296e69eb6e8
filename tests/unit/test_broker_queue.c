/* Unit tests of queues (src/broker/queue.c) through the net's ops table,
 * without sockets (broker_harness.h): ack modes, requeue order, credit and
 * bounds, on one worker and with the queue owned by another worker. */
#include "broker_harness.h"
#include "stampede/mailbox.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fini(void)
{
    th_teardown();
}

TestSuite(queue, .fini = fini);

static void publish(struct th_conn *t, const char *dest, const char *body)
{
    char hdr[256];
    snprintf(hdr, sizeof(hdr), "SEND\ndestination:%s\n\n", dest);
    th_send_body(t, hdr, body, strlen(body));
}

Test(queue, auto_ack_delivers_in_order_once)
{
    th_setup(1, NULL);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    th_send(sub, "SUBSCRIBE\nid:s1\ndestination:/queue/a\n\n");
    th_pump();
    for (int i = 0; i < 5; i++) {
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        publish(pub, "/queue/a", body);
    }
    th_pump();
    for (int i = 0; i < 5; i++) {
        struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        cr_assert_str_eq(th_body(&f), body);
        cr_assert_str_eq(th_header(&f, "subscription"), "s1");
        cr_assert_null(th_header(&f, "ack"), "auto ack carries no ack id");
    }
    th_expect_none(sub);
    th_expect_none(pub);
}

/* The queue's owner is the other worker: SUBSCRIBE, SEND and the credit
 * (written-marks) all cross the mailboxes. */
Test(queue, owner_on_another_worker)
{
    th_setup(2, NULL);
    const char *dest = NULL;
    char name[32];
    for (int i = 0; i < 100 && !dest; i++) {
        snprintf(name, sizeof(name), "/queue/x%d", i);
        if (stp_owner_of(th_worker(0), name, strlen(name)) == 1)
            dest = name;
    }
    cr_assert_not_null(dest);
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    char frame[128];
    snprintf(frame, sizeof(frame), "SUBSCRIBE\nid:1\ndestination:%s\nreceipt:r1\n\n", dest);
    th_send(sub, frame);
    th_turn(0); /* the subscription is posted to worker 1, not answered yet */
    th_expect_none(sub);
    th_pump();
    struct stp_frame r = th_expect(sub, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&r, "receipt-id"), "r1");
    for (int i = 0; i < 3000; i++) /* past the owner's out-window of 2048 */
        publish(pub, dest, "x");
    th_pump();
    cr_assert_eq(th_pending_frames(sub), 3000);
}

/* --- helpers --- */

/* A queue name owned by worker `owner` (any name with one worker). */
static const char *queue_owned_by(unsigned owner, char *name, size_t size)
{
    for (int i = 0; i < 1000; i++) {
        snprintf(name, size, "/queue/q%d", i);
        if (stp_owner_of(th_worker(0), name, strlen(name)) == owner)
            return name;
    }
    cr_assert_fail("no queue name owned by worker %u", owner);
    return NULL;
}

static void publish_n(struct th_conn *t, const char *dest, int from, int to)
{
    for (int i = from; i < to; i++) {
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        publish(t, dest, body);
    }
}

static void subscribe(struct th_conn *t, const char *id, const char *dest, const char *ack,
                      const char *prefetch)
{
    char frame[256];
    int n = snprintf(frame, sizeof(frame), "SUBSCRIBE\nid:%s\ndestination:%s\n", id, dest);
    if (ack)
        n += snprintf(frame + n, sizeof(frame) - (size_t)n, "ack:%s\n", ack);
    if (prefetch)
        n += snprintf(frame + n, sizeof(frame) - (size_t)n, "prefetch-count:%s\n", prefetch);
    snprintf(frame + n, sizeof(frame) - (size_t)n, "\n");
    th_send(t, frame);
}

/* The next frame is MESSAGE m<i>, redelivered or not; its ack id (if the
 * frame has one) is copied to ack. */
static void expect_msg(struct th_conn *t, int i, bool redelivered, char *ack, size_t ack_size)
{
    struct stp_frame f = th_expect(t, STP_CMD_MESSAGE);
    char body[16];
    snprintf(body, sizeof(body), "m%d", i);
    cr_assert_str_eq(th_body(&f), body, "expected %s", body);
    const char *r = th_header(&f, "redelivered");
    if (redelivered)
        cr_assert(r && strcmp(r, "true") == 0, "%s should be marked redelivered", body);
    else
        cr_assert(r && strcmp(r, "false") == 0, "%s should be marked redelivered:false", body);
    if (ack) {
        const char *a = th_header(&f, "ack");
        cr_assert_not_null(a, "%s has no ack header", body);
        cr_assert_lt(strlen(a), ack_size);
        strcpy(ack, a);
    }
}

static void ack_id(struct th_conn *t, const char *cmd, const char *id)
{
    th_sendf(t, "%s\nid:%s\n\n", cmd, id);
}

/* Connections on worker 0; the queue on worker nworkers - 1. */
static const char *setup_queue(unsigned nworkers, const char *const *flags, char *name, size_t size)
{
    th_setup(nworkers, flags);
    return queue_owned_by(nworkers - 1, name, size);
}

/* --- 1. client-individual with a prefetch-count --- */

static void client_individual_prefetch(unsigned nworkers)
{
    char name[32], ack[5][64];
    const char *q = setup_queue(nworkers, NULL, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s1", q, "client-individual", "2");
    th_pump();
    publish_n(pub, q, 0, 5);
    th_pump();
    expect_msg(sub, 0, false, ack[0], sizeof(ack[0]));
    expect_msg(sub, 1, false, ack[1], sizeof(ack[1]));
    th_expect_none(sub); /* two unacked: no more credit */
    cr_assert_str_neq(ack[0], ack[1], "ack ids must differ");

    ack_id(sub, "ACK", ack[0]);
    th_pump();
    expect_msg(sub, 2, false, ack[2], sizeof(ack[2]));
    th_expect_none(sub); /* exactly one more */

    /* Out of order: m1 stays unacked, acking m2 frees one place. */
    ack_id(sub, "ACK", ack[2]);
    th_pump();
    expect_msg(sub, 3, false, ack[3], sizeof(ack[3]));
    th_expect_none(sub);

    ack_id(sub, "ACK", ack[1]);
    th_pump();
    expect_msg(sub, 4, false, ack[4], sizeof(ack[4]));
    th_expect_none(sub);
    ack_id(sub, "ACK", ack[3]);
    ack_id(sub, "ACK", ack[4]);
    th_pump();
    th_expect_none(sub);
    th_expect_none(pub);

    /* Credit is back to two: the next two go through, the third waits. */
    publish_n(pub, q, 5, 8);
    th_pump();
    expect_msg(sub, 5, false, NULL, 0);
    expect_msg(sub, 6, false, NULL, 0);
    th_expect_none(sub);
    cr_assert_not(sub->torn_down);
}

Test(queue, client_individual_prefetch_two)
{
    client_individual_prefetch(1);
}

Test(queue, client_individual_prefetch_two_owner_on_another_worker)
{
    client_individual_prefetch(2);
}

/* --- 2. ack:client is cumulative --- */

Test(queue, client_ack_is_cumulative)
{
    char name[32], ack[6][64];
    const char *q = setup_queue(1, NULL, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s1", q, "client", "3");
    th_pump();
    publish_n(pub, q, 0, 10);
    th_pump();
    for (int i = 0; i < 3; i++)
        expect_msg(sub, i, false, ack[i], sizeof(ack[i]));
    th_expect_none(sub);

    /* Acking the third settles all three: three places come back. */
    ack_id(sub, "ACK", ack[2]);
    th_pump();
    for (int i = 3; i < 6; i++)
        expect_msg(sub, i, false, ack[i], sizeof(ack[i]));
    th_expect_none(sub);

    /* m0 was settled by that ACK: naming it again is an ERROR, and the
     * connection closes. */
    ack_id(sub, "NACK", ack[0]);
    th_pump();
    struct stp_frame e = th_expect(sub, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&e, "message"), "unknown message");
    th_expect_none(sub);
    cr_assert(sub->torn_down);

    /* Its unacked m3..m5 go back (redelivered, in order, ahead of m6); the
     * settled m0..m2 are not delivered again. */
    struct th_conn *b = th_connect(0);
    subscribe(b, "s2", q, NULL, NULL);
    th_pump();
    for (int i = 3; i < 6; i++)
        expect_msg(b, i, true, NULL, 0);
    for (int i = 6; i < 10; i++)
        expect_msg(b, i, false, NULL, 0);
    th_expect_none(b);
    th_expect_none(pub);
}

/* Acking a later message of ack:client settles the earlier ones, even those
 * delivered before and not named: a second ACK of any of them is unknown. */
Test(queue, client_ack_upto_settles_earlier_ids)
{
    char name[32], ack[3][64];
    const char *q = setup_queue(1, NULL, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s1", q, "client", NULL);
    th_pump();
    publish_n(pub, q, 0, 3);
    th_pump();
    for (int i = 0; i < 3; i++)
        expect_msg(sub, i, false, ack[i], sizeof(ack[i]));
    ack_id(sub, "ACK", ack[1]);
    th_pump();
    th_expect_none(sub);
    ack_id(sub, "ACK", ack[0]);
    th_pump();
    struct stp_frame e = th_expect(sub, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&e, "message"), "unknown message");
    cr_assert(sub->torn_down);
    /* Only m2 was still unacked. */
    struct th_conn *b = th_connect(0);
    subscribe(b, "s2", q, NULL, NULL);
    th_pump();
    expect_msg(b, 2, true, NULL, 0);
    th_expect_none(b);
}

/* --- 3. NACK and a consumer leaving put messages back at the head --- */

static void nack_individual(unsigned nworkers)
{
    char name[32], ack[5][64], again[64];
    const char *q = setup_queue(nworkers, NULL, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *a = th_connect(0);
    subscribe(a, "s1", q, "client-individual", "5");
    th_pump();
    publish_n(pub, q, 0, 8);
    th_pump();
    for (int i = 0; i < 5; i++)
        expect_msg(a, i, false, ack[i], sizeof(ack[i]));
    th_expect_none(a); /* m5..m7 wait in the queue */

    /* A NACKed message goes back at the head, ahead of m5. */
    ack_id(a, "NACK", ack[1]);
    th_pump();
    expect_msg(a, 1, true, again, sizeof(again));
    th_expect_none(a);
    cr_assert_str_neq(again, ack[1], "a redelivery has a new ack id");
    ack_id(a, "NACK", ack[3]);
    th_pump();
    expect_msg(a, 3, true, NULL, 0);
    th_expect_none(a);

    /* The first delivery's id is settled by the NACK. */
    ack_id(a, "ACK", ack[1]);
    th_pump();
    struct stp_frame e = th_expect(a, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&e, "message"), "unknown message");
    cr_assert(a->torn_down);
    th_expect_none(pub);
}

Test(queue, nack_requeues_at_head_redelivered)
{
    nack_individual(1);
}

Test(queue, nack_requeues_at_head_redelivered_owner_on_another_worker)
{
    nack_individual(2);
}

/* ack:client NACK puts back everything up to the named message, in order. */
static void nack_cumulative(unsigned nworkers)
{
    char name[32], ack[5][64];
    const char *q = setup_queue(nworkers, NULL, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *a = th_connect(0);
    subscribe(a, "s1", q, "client", "5");
    th_pump();
    publish_n(pub, q, 0, 8);
    th_pump();
    for (int i = 0; i < 5; i++)
        expect_msg(a, i, false, ack[i], sizeof(ack[i]));
    th_expect_none(a);
    ack_id(a, "NACK", ack[2]);
    th_pump();
    for (int i = 0; i < 3; i++)
        expect_msg(a, i, true, NULL, 0);
    th_expect_none(a); /* m3, m4 and the three again: five unacked */
    struct th_conn *b = th_connect(nworkers - 1);
    subscribe(b, "s2", q, NULL, NULL);
    th_pump();
    for (int i = 5; i < 8; i++)
        expect_msg(b, i, false, NULL, 0);
    th_expect_none(b);
}

Test(queue, nack_client_ack_requeues_in_order)
{
    nack_cumulative(1);
}

Test(queue, nack_client_ack_requeues_in_order_owner_on_another_worker)
{
    nack_cumulative(2);
}

enum leave { LEAVE_DISCONNECT, LEAVE_UNSUBSCRIBE, LEAVE_CLOSE };

/* A consumer leaving puts every unacked message back at the head, in
 * delivery order, ahead of newer ones; an acked one is not among them. */
static void leave_requeues(unsigned nworkers, enum leave how)
{
    char name[32], ack[6][64];
    const char *q = setup_queue(nworkers, NULL, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *a = th_connect(0);
    subscribe(a, "s1", q, "client-individual", "5");
    th_pump();
    publish_n(pub, q, 0, 7);
    th_pump();
    for (int i = 0; i < 5; i++)
        expect_msg(a, i, false, ack[i], sizeof(ack[i]));
    th_expect_none(a);
    ack_id(a, "ACK", ack[2]);
    th_pump();
    expect_msg(a, 5, false, ack[5], sizeof(ack[5]));
    th_expect_none(a);
    /* a holds m0 m1 m3 m4 m5 unacked; m6 waits. */
    switch (how) {
    case LEAVE_DISCONNECT: {
        th_send(a, "DISCONNECT\nreceipt:bye\n\n");
        th_pump();
        struct stp_frame r = th_expect(a, STP_CMD_RECEIPT);
        cr_assert_str_eq(th_header(&r, "receipt-id"), "bye");
        cr_assert(a->torn_down);
        break;
    }
    case LEAVE_UNSUBSCRIBE:
        th_send(a, "UNSUBSCRIBE\nid:s1\n\n");
        th_pump();
        cr_assert_not(a->torn_down);
        break;
    case LEAVE_CLOSE:
        stp_conn_close(a->c, STP_CLOSE_NOW);
        th_pump();
        cr_assert(a->torn_down);
        break;
    }
    struct th_conn *b = th_connect(nworkers - 1);
    subscribe(b, "s2", q, NULL, NULL);
    th_pump();
    const int order[] = {0, 1, 3, 4, 5};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        expect_msg(b, order[i], true, NULL, 0);
    expect_msg(b, 6, false, NULL, 0);
    th_expect_none(b);
    publish_n(pub, q, 7, 8);
    th_pump();
    expect_msg(b, 7, false, NULL, 0);
    th_expect_none(b);
    th_expect_none(a);
}

Test(queue, disconnect_requeues_unacked_in_order)
{
    leave_requeues(1, LEAVE_DISCONNECT);
}

Test(queue, unsubscribe_requeues_unacked_in_order)
{
    leave_requeues(1, LEAVE_UNSUBSCRIBE);
}

Test(queue, close_requeues_unacked_in_order)
{
    leave_requeues(1, LEAVE_CLOSE);
}

Test(queue, disconnect_requeues_unacked_in_order_owner_on_another_worker)
{
    leave_requeues(2, LEAVE_DISCONNECT);
}

Test(queue, close_requeues_unacked_in_order_owner_on_another_worker)
{
    leave_requeues(2, LEAVE_CLOSE);
}

/* An auto-ack consumer that unsubscribes with deliveries queued for writing
 * (not yet written): they will be written, so they are not given to anyone
 * else. */
Test(queue, auto_ack_unsubscribe_does_not_duplicate_queued)
{
    char name[32];
    const char *q = setup_queue(1, NULL, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *a = th_connect(0);
    subscribe(a, "s1", q, NULL, NULL);
    th_pump();
    th_hold_writes(a, true);
    publish_n(pub, q, 0, 3);
    th_pump();               /* m0..m2 in flight on the socket */
    publish_n(pub, q, 3, 5); /* m3, m4 queued behind that write */
    th_send(a, "UNSUBSCRIBE\nid:s1\n\n");
    struct th_conn *b = th_connect(0);
    subscribe(b, "s2", q, NULL, NULL);
    th_pump();
    th_expect_none(b);
    publish_n(pub, q, 5, 6);
    th_hold_writes(a, false);
    th_pump();
    for (int i = 0; i < 5; i++)
        expect_msg(a, i, false, NULL, 0);
    th_expect_none(a);
    expect_msg(b, 5, false, NULL, 0);
    th_expect_none(b);
}

/* An auto-ack consumer dropped at once with deliveries in flight: the broker
 * cannot know they arrived, so they go to the next consumer, marked. */
Test(queue, auto_ack_close_requeues_unwritten)
{
    char name[32];
    const char *q = setup_queue(1, NULL, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *a = th_connect(0);
    subscribe(a, "s1", q, NULL, NULL);
    th_pump();
    publish_n(pub, q, 0, 2);
    th_pump();
    expect_msg(a, 0, false, NULL, 0);
    expect_msg(a, 1, false, NULL, 0);
    th_hold_writes(a, true);
    publish_n(pub, q, 2, 5);
    th_pump();
    stp_conn_close(a->c, STP_CLOSE_NOW);
    th_pump();
    cr_assert(a->torn_down);
    struct th_conn *b = th_connect(0);
    subscribe(b, "s2", q, NULL, NULL);
    th_pump();
    for (int i = 2; i < 5; i++)
        expect_msg(b, i, true, NULL, 0);
    th_expect_none(b);
}

/* --- 4. round robin --- */

static void round_robin(unsigned nworkers)
{
    char name[32];
    const char *q = setup_queue(nworkers, NULL, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *s[2] = {th_connect(0), th_connect(nworkers - 1)};
    subscribe(s[0], "a", q, NULL, NULL);
    th_pump();
    subscribe(s[1], "b", q, NULL, NULL);
    th_pump();
    enum { N = 20 };
    publish_n(pub, q, 0, N);
    th_pump();
    cr_assert_eq(th_pending_frames(s[0]), N / 2);
    cr_assert_eq(th_pending_frames(s[1]), N / 2);
    /* Strict alternation: one gets the even messages, the other the odd,
     * each in order. */
    struct stp_frame f = th_expect(s[0], STP_CMD_MESSAGE);
    int first = strcmp(th_body(&f), "m0") == 0 ? 0 : 1;
    cr_assert_str_eq(th_body(&f), first ? "m1" : "m0");
    for (int i = first + 2; i < N; i += 2)
        expect_msg(s[0], i, false, NULL, 0);
    for (int i = !first; i < N; i += 2)
        expect_msg(s[1], i, false, NULL, 0);
    th_expect_none(s[0]);
    th_expect_none(s[1]);
}

Test(queue, round_robin_two_auto_consumers)
{
    round_robin(1);
}

Test(queue, round_robin_two_auto_consumers_owner_on_another_worker)
{
    round_robin(2);
}

/* A consumer without credit is skipped, not waited for. */
Test(queue, round_robin_skips_consumer_without_credit)
{
    char name[32], ack[64];
    const char *q = setup_queue(1, NULL, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *a = th_connect(0), *b = th_connect(0);
    subscribe(a, "a", q, "client-individual", "1");
    subscribe(b, "b", q, NULL, NULL);
    th_pump();
    publish_n(pub, q, 0, 6);
    th_pump();
    cr_assert_eq(th_pending_frames(a), 1);
    cr_assert_eq(th_pending_frames(b), 5);
    struct stp_frame f = th_expect(a, STP_CMD_MESSAGE);
    strcpy(ack, th_header(&f, "ack"));
    int got = strcmp(th_body(&f), "m0") == 0 ? 0 : 1;
    for (int i = 0; i < 6; i++)
        if (i != got)
            expect_msg(b, i, false, NULL, 0);
    ack_id(a, "ACK", ack);
    th_pump();
    th_expect_none(a); /* nothing waits in the queue */
}

/* --- 5. credit by writes --- */

Test(queue, auto_ack_credit_is_the_out_window)
{
    char name[32];
    const char *q = setup_queue(1, NULL, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    subscribe(sub, "s1", q, NULL, NULL);
    th_pump();
    th_hold_writes(sub, true);
    enum { N = 5000, WINDOW = 2048 };
    publish_n(pub, q, 0, N);
    th_pump();
    /* Nothing written is known: one window of deliveries, no more. */
    cr_assert_eq(th_pending_frames(sub), WINDOW);
    th_pump();
    cr_assert_eq(th_pending_frames(sub), WINDOW);
    cr_assert_eq(sub->writes, 2); /* CONNECTED, then the window */
    th_hold_writes(sub, false);
    th_pump();
    cr_assert_eq(th_pending_frames(sub), N);
    for (int i = 0; i < N; i++)
        expect_msg(sub, i, false, NULL, 0);
    th_expect_none(sub);
    th_expect_none(pub);
}

/* The window counts per consumer: a second consumer with its writes
 * flowing gets everything the stalled one cannot take. */
Test(queue, stalled_consumer_does_not_block_others)
{
    char name[32];
    const char *q = setup_queue(1, NULL, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *a = th_connect(0), *b = th_connect(0);
    subscribe(a, "a", q, NULL, NULL);
    subscribe(b, "b", q, NULL, NULL);
    th_pump();
    th_hold_writes(a, true);
    enum { N = 6000, WINDOW = 2048 };
    for (int i = 0; i < N; i += 100) {
        publish_n(pub, q, i, i + 100);
        th_pump();
    }
    th_hold_writes(a, false);
    th_pump();
    size_t na = th_pending_frames(a), nb = th_pending_frames(b);
    cr_assert_eq(na + nb, N);
    cr_assert_eq(na, WINDOW, "a stalled consumer got %zu", na);
    /* Every message once, each consumer's share in order. */
    static bool seen[N];
    memset(seen, 0, sizeof(seen));
    struct th_conn *s[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        int last = -1;
        struct stp_frame f;
        while (th_frame(s[k], &f)) {
            cr_assert_eq(f.cmd, STP_CMD_MESSAGE);
            int i = atoi(th_body(&f) + 1);
            cr_assert(i > last && i < N && !seen[i], "m%d out of order or twice", i);
            seen[i] = true;
            last = i;
        }
    }
}

/* --- 6. bounds --- */

Test(queue, max_messages_pauses_publisher_until_drained)
{
    char name[32], ack[64];
    const char *flags[] = {"--queue-max-messages", "10", NULL};
    const char *q = setup_queue(1, flags, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    enum { N = 20 };
    publish_n(pub, q, 0, N);
    th_pump();
    cr_assert(pub->c->paused, "a publisher of a full queue is paused");
    cr_assert_eq(pub->c->throttled, 1);
    th_expect_none(pub);

    /* One taken: 10 left, not below 90% of the bound yet (checked before
     * the loop runs: a resume would let the publisher refill the queue). */
    subscribe(sub, "s1", q, "client-individual", "1");
    cr_assert(pub->c->paused);
    cr_assert_eq(pub->c->throttled, 1);
    th_pump();
    expect_msg(sub, 0, false, ack, sizeof(ack));
    th_expect_none(sub);
    cr_assert(pub->c->paused);
    cr_assert_eq(pub->c->throttled, 1);

    /* The ACK lets m1 go: 9 of 10 left, the publisher is resumed at once. */
    ack_id(sub, "ACK", ack);
    cr_assert_not(pub->c->paused, "resumed at 90%% of the bound");
    cr_assert_eq(pub->c->throttled, 0);
    /* Its unread SENDs fill the queue over the bound again. */
    th_pump();
    cr_assert(pub->c->paused);
    cr_assert_eq(pub->c->throttled, 1);

    for (int i = 1; i < N; i++) {
        expect_msg(sub, i, false, ack, sizeof(ack));
        th_expect_none(sub);
        ack_id(sub, "ACK", ack);
        th_pump();
    }
    th_expect_none(sub);
    cr_assert_not(pub->c->paused);
    cr_assert_eq(pub->c->throttled, 0);
    th_expect_none(pub);
    cr_assert_not(pub->torn_down);
}

Test(queue, max_messages_auto_consumer_drains_all_in_order)
{
    char name[32];
    const char *flags[] = {"--queue-max-messages", "10", NULL};
    const char *q = setup_queue(2, flags, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *sub = th_connect(1);
    enum { N = 20 };
    publish_n(pub, q, 0, N);
    th_pump();
    cr_assert(pub->c->paused);
    cr_assert_gt(pub->c->throttled, 0);
    th_expect_none(pub);
    subscribe(sub, "s1", q, NULL, NULL);
    th_pump();
    for (int i = 0; i < N; i++)
        expect_msg(sub, i, false, NULL, 0);
    th_expect_none(sub);
    cr_assert_not(pub->c->paused);
    cr_assert_eq(pub->c->throttled, 0);
    /* And it publishes again. */
    publish_n(pub, q, N, N + 1);
    th_pump();
    expect_msg(sub, N, false, NULL, 0);
}

Test(queue, max_bytes_pauses_publisher)
{
    char name[32];
    const char *flags[] = {"--queue-max-bytes", "1000", NULL};
    const char *q = setup_queue(1, flags, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    char body[200];
    memset(body, 'x', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    publish(pub, q, body); /* ~200 bytes: under the bound */
    th_pump();
    cr_assert_not(pub->c->paused);
    for (int i = 0; i < 5; i++)
        publish(pub, q, body);
    th_pump();
    cr_assert(pub->c->paused, "over 1000 bytes queued");
    subscribe(sub, "s1", q, NULL, NULL);
    th_pump();
    cr_assert_eq(th_pending_frames(sub), 6);
    cr_assert_not(pub->c->paused);
}

/* --- 8. --max-unacked bounds every client-ack subscription --- */

Test(queue, prefetch_above_max_unacked_is_clamped)
{
    char name[32], ack[64];
    const char *flags[] = {"--max-unacked", "3", NULL};
    const char *q = setup_queue(1, flags, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *sub = th_connect(0), *sub2 = th_connect(0);
    subscribe(sub, "s1", q, "client-individual", "100");
    th_pump();
    th_expect_none(sub); /* no ERROR: the prefetch-count is lowered */
    publish_n(pub, q, 0, 5);
    th_pump();
    expect_msg(sub, 0, false, ack, sizeof(ack));
    expect_msg(sub, 1, false, NULL, 0);
    expect_msg(sub, 2, false, NULL, 0);
    th_expect_none(sub);
    cr_assert_not(sub->torn_down);
    ack_id(sub, "ACK", ack);
    th_pump();
    expect_msg(sub, 3, false, NULL, 0);
    th_expect_none(sub);
    /* No prefetch-count asked: --max-unacked too. */
    subscribe(sub2, "s2", q, "client", NULL);
    publish_n(pub, q, 5, 10);
    th_pump();
    cr_assert_eq(th_pending_frames(sub), 0);
    cr_assert_eq(th_pending_frames(sub2), 3);
}

Test(queue, invalid_prefetch_count_is_an_error)
{
    th_setup(1, NULL);
    struct th_conn *sub = th_connect(0);
    th_send(sub, "SUBSCRIBE\nid:s1\ndestination:/queue/a\nack:client\nprefetch-count:-1\n\n");
    th_pump();
    struct stp_frame e = th_expect(sub, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&e, "message"), "invalid prefetch-count");
    th_expect_none(sub);
    cr_assert(sub->torn_down);
}

/* --- the queue on another worker: deliveries crossing the mailboxes --- */

/* Deliveries still in the consumer worker's mailbox when it unsubscribes
 * are dropped there and put back by the owner: the next consumer gets them,
 * in order, once. */
Test(queue, unsubscribe_with_deliveries_in_the_mailbox)
{
    char name[32];
    const char *q = setup_queue(2, NULL, name, sizeof(name));
    struct th_conn *a = th_connect(0), *pub = th_connect(1), *b = th_connect(1);
    subscribe(a, "s1", q, NULL, NULL);
    th_pump();
    publish_n(pub, q, 0, 3); /* routed on worker 1: three QDELIVERs posted to worker 0 */
    cr_assert_eq(stp_mailbox_depth(th_broker()->mb, 0), 3);
    th_send(a, "UNSUBSCRIBE\nid:s1\n\n");
    subscribe(b, "s2", q, NULL, NULL);
    th_pump();
    th_expect_none(a);
    cr_assert_eq(th_pending_frames(b), 3);
    for (int i = 0; i < 3; i++) {
        struct stp_frame f = th_expect(b, STP_CMD_MESSAGE);
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        cr_assert_str_eq(th_body(&f), body);
    }
    publish_n(pub, q, 3, 4);
    th_pump();
    expect_msg(b, 3, false, NULL, 0);
    th_expect_none(b);
}

/* A SUBSCRIBE with a receipt: the RECEIPT comes before any MESSAGE, even
 * when the queue already holds messages. */
Test(queue, subscribe_receipt_precedes_queued_messages)
{
    char name[32];
    const char *q = setup_queue(2, NULL, name, sizeof(name));
    struct th_conn *pub = th_connect(0), *sub = th_connect(0);
    publish_n(pub, q, 0, 3);
    th_pump();
    th_sendf(sub, "SUBSCRIBE\nid:s1\ndestination:%s\nack:client-individual\nreceipt:r1\n\n", q);
    th_pump();
    struct stp_frame r = th_expect(sub, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&r, "receipt-id"), "r1");
    for (int i = 0; i < 3; i++)
        expect_msg(sub, i, false, NULL, 0);
    th_expect_none(sub);
}

/* Mailbox back-pressure pauses publishers only: a consumer whose ACKs free
 * the queue keeps being read while the worker's mailboxes are backed up. */
Test(queue, a_backlog_pauses_publishers_not_acking_consumers)
{
    th_setup(2, NULL);
    const char *dest = th_owned_by(1, "/queue/bp", 0);
    struct th_conn *sub = th_connect(0), *pub = th_connect(0);
    th_sendf(sub, "SUBSCRIBE\nid:s\ndestination:%s\nack:client-individual\n\n", dest);
    publish(pub, dest, "first");
    th_pump();
    struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
    char ack[64];
    snprintf(ack, sizeof(ack), "%s", th_header(&f, "ack"));
    /* Worker 1 does not run: worker 0's ring to it fills up. */
    for (int i = 0; i < 5000 && !pub->c->paused; i++)
        publish(pub, dest, "more");
    cr_assert(pub->c->paused, "the publisher is paused once the mailbox is backed up");
    cr_assert(stp_worker_backlogged(th_worker(0)));
    th_sendf(sub, "ACK\nid:%s\n\n", ack);
    cr_assert_not(sub->c->paused, "an ACK does not pause its consumer");
    th_pump();
}

/* A STOMP 1.1 connection (CONNECTED read). */
static struct th_conn *connect11(unsigned worker)
{
    struct th_conn *t = th_open(worker);
    th_send(t, "CONNECT\naccept-version:1.1\nhost:/\n\n");
    th_pump();
    struct stp_frame f = th_expect(t, STP_CMD_CONNECTED);
    cr_assert_str_eq(th_header(&f, "version"), "1.1");
    return t;
}

/* RabbitMQ accepts a 1.1 ACK whose subscription header is missing or names
 * another subscription: the message-id alone finds the delivery. */
Test(queue, stomp11_ack_by_message_id_alone)
{
    th_setup(1, NULL);
    struct th_conn *pub = th_connect(0), *sub = connect11(0);
    th_send(sub, "SUBSCRIBE\nid:a\ndestination:/queue/other\nack:client-individual\n\n");
    th_send(sub, "SUBSCRIBE\nid:s\ndestination:/queue/q11\nack:client-individual\n\n");
    publish(pub, "/queue/q11", "one");
    publish(pub, "/queue/q11", "two");
    th_pump();
    char id1[32], id2[32];
    struct stp_frame f = th_expect(sub, STP_CMD_MESSAGE);
    snprintf(id1, sizeof(id1), "%s", th_header(&f, "message-id"));
    f = th_expect(sub, STP_CMD_MESSAGE);
    snprintf(id2, sizeof(id2), "%s", th_header(&f, "message-id"));
    th_sendf(sub, "ACK\nmessage-id:%s\nreceipt:r1\n\n", id1);                 /* none */
    th_sendf(sub, "ACK\nmessage-id:%s\nsubscription:a\nreceipt:r2\n\n", id2); /* another */
    th_pump();
    f = th_expect(sub, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&f, "receipt-id"), "r1");
    f = th_expect(sub, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&f, "receipt-id"), "r2");
    cr_assert_eq(STP_STAT_GET(th_worker(0)->stats.msgs_acked), 2);
    /* A made-up subscription id is no subscription at all: also fine. */
    th_sendf(sub, "ACK\nmessage-id:%s\nsubscription:nope\n\n", id2);
    th_pump();
    f = th_expect(sub, STP_CMD_ERROR); /* already acked: unknown now */
    cr_assert_str_eq(th_header(&f, "message"), "unknown message");
}
